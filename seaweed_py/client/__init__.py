"""aiohttp clients: the public SDK (`AsyncClient`, `Client`) and the servers' internal links.

The SDK is documented in `seaweed_py.client.sdk`; chunk manifests in `seaweed_py.client.manifest`.
"""

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
