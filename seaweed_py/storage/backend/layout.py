"""Names of a tiered volume's objects in its bucket.

| object | key | content |
|---|---|---|
| data | `<prefix><base>/<uuid>` | the `.dat`, byte for byte (superblock included) |
| index | `<prefix><base>/<uuid>.idx` | the `.idx` as at upload, sent again after deletes |
| info | `<prefix><base>/<uuid>.vif` | the `.vif`, its `files[0]` naming the data object |

`<base>` is the volume's file base name (`<collection>_<vid>` or `<vid>`), `<uuid>` a fresh
UUIDv4 per upload. weed 4.48 names the data object by the bare UUID at the bucket root and keeps
the volume → key mapping only in the local `.vif` (tiering spec §3); weedpy's keys sit in a
"directory" per volume with the `.idx` and `.vif` beside the data, so a volume server that has
nothing of a volume finds and mounts it from the bucket alone (one listing of that directory).
weed reads either kind of key from `.vif` (docs/compat.md).
"""

from __future__ import annotations

import re
import uuid

__all__ = ["dat_key", "parse_upload_key", "sidecar_keys", "upload_of", "upload_prefix"]

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def dat_key(prefix: str, base: str, token: uuid.UUID | None = None) -> str:
    """A fresh data key for the volume whose files are named `base`."""
    return f"{prefix}{base}/{token or uuid.uuid4()}"


def sidecar_keys(data_key: str) -> tuple[str, str]:
    """(`.idx` key, `.vif` key) beside the data object `data_key`."""
    return data_key + ".idx", data_key + ".vif"


def upload_prefix(prefix: str, base: str) -> str:
    """The "directory" holding every upload of volume `base` (for a listing)."""
    return f"{prefix}{base}"


def parse_upload_key(prefix: str, base: str, key: str) -> str | None:
    """The data key whose `.vif` is `key`, if `key` is one of volume `base`'s (not of a
    volume whose base merely starts the same way)."""
    match = re.fullmatch(re.escape(f"{prefix}{base}/") + f"({_UUID})" + r"\.vif", key)
    return key[: -len(".vif")] if match else None


def upload_of(prefix: str, base: str, key: str) -> str | None:
    """The data key of the upload of volume `base` that object `key` belongs to (its data, `.idx`
    or `.vif`), or None for any other object: an upload cut short may have left any of them."""
    match = re.fullmatch(re.escape(f"{prefix}{base}/") + f"({_UUID})" + r"(?:\.idx|\.vif)?", key)
    return f"{prefix}{base}/{match.group(1)}" if match else None
