"""aiohttp clients: the public SDK (`AsyncClient`, `Client`) and the servers' internal links.

The SDK is documented in `seaweed_py.client.sdk`; chunk manifests in `seaweed_py.client.manifest`.
Its names are imported on first use: the servers import this package for their internal links
(`client.http`, `client.replicate`...) and have no use for the SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from seaweed_py.client.locations import Location, LocationCache
    from seaweed_py.client.manifest import ChunkInfo, ChunkManifest
    from seaweed_py.client.sdk import (
        DEFAULT_CHUNK_SIZE,
        Assignment,
        AsyncClient,
        Client,
        Progress,
        ReadableBinary,
        UploadResult,
        UploadSource,
    )

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "Assignment",
    "AsyncClient",
    "ChunkInfo",
    "ChunkManifest",
    "Client",
    "Location",
    "LocationCache",
    "Progress",
    "ReadableBinary",
    "UploadResult",
    "UploadSource",
]

# The module of each name not in `sdk`.
_HOMES = {
    "Location": "locations",
    "LocationCache": "locations",
    "ChunkInfo": "manifest",
    "ChunkManifest": "manifest",
}


def __getattr__(name: str) -> object:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOMES.get(name, 'sdk')}"), name)
    globals()[name] = value
    return value
