"""Names of a tiered volume's objects in its bucket.

| object | key | content |
|---|---|---|
| data | `<prefix><base>-<uuid>` | the `.dat`, byte for byte (superblock included) |
| index | `<prefix><base>-<uuid>.idx` | the `.idx` as it was at upload (or at the last re-upload) |
| info | `<prefix><base>-<uuid>.vif` | the `.vif`, its `files[0]` naming the data object |

`<base>` is the volume's file base name (`<collection>_<vid>` or `<vid>`), `<uuid>` a fresh
UUIDv4 per upload. weed 4.48 names the data object by the bare UUID at the bucket root and keeps
the volume → key mapping only in the local `.vif` (tiering spec §3); weedpy's names carry the
volume, and its `.idx` and `.vif` lie beside the data, so a volume server that has nothing of a
volume can find and mount it from the bucket alone (`find_uploads`). weed reads either kind of key
from `.vif` (docs/compat.md).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

__all__ = ["Upload", "dat_key", "parse_upload_key", "sidecar_keys", "upload_prefix"]

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@dataclass(frozen=True, slots=True)
class Upload:
    """One upload of a volume found in a bucket: its data key and when its `.vif` was written."""

    dat_key: str
    modified: float


def dat_key(prefix: str, base: str, token: uuid.UUID | None = None) -> str:
    """A fresh data key for the volume whose files are named `base`."""
    return f"{prefix}{base}-{token or uuid.uuid4()}"


def sidecar_keys(data_key: str) -> tuple[str, str]:
    """(`.idx` key, `.vif` key) beside the data object `data_key`."""
    return data_key + ".idx", data_key + ".vif"


def upload_prefix(prefix: str, base: str) -> str:
    """What every object of every upload of volume `base` starts with (for a listing)."""
    return f"{prefix}{base}-"


def parse_upload_key(prefix: str, base: str, key: str) -> str | None:
    """The data key whose `.vif` is `key`, if `key` is one of volume `base`'s (not of a
    volume whose base merely starts the same way)."""
    match = re.fullmatch(re.escape(f"{prefix}{base}-") + f"({_UUID})" + r"\.vif", key)
    return key[: -len(".vif")] if match else None
