"""Chunk manifests: how a large file is stored as several needles (spec §13).

A file larger than the chunk size is uploaded as chunks, each its own needle with its own fid,
plus one *manifest* needle (flag 0x80, written with `?cm=true`) at the file's fid. The manifest's
data is JSON; volume servers expand it on GET into the concatenated chunks (`X-File-Store:
chunked`) and delete the chunks before the manifest on DELETE.

```json
{"name":"big.iso","mime":"application/octet-stream","size":10485760,
 "chunks":[{"fid":"3,02a1b2c3d4","offset":0,"size":4194304}, ...]}
```

| field | type | meaning |
|---|---|---|
| `name` | string, omitted when empty | file name served in `Content-Disposition` |
| `mime` | string, omitted when empty | content type served for the whole file |
| `size` | integer, omitted when 0 | file length in bytes |
| `chunks[].fid` | string | the chunk's file id |
| `chunks[].offset` | integer | byte position of the chunk in the file |
| `chunks[].size` | integer | chunk length in bytes |

Readers sort chunks by `offset`. Quirk A24: `weed upload` splits a file whose size is an exact
multiple of the chunk size into one extra empty chunk; `plan_chunks` does not (docs/compat.md),
and `decode_manifest` accepts manifests that carry one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from seaweed_py.errors import BadRequest
from seaweed_py.formats.fid import parse_file_id

__all__ = ["ChunkInfo", "ChunkManifest", "decode_manifest", "encode_manifest", "plan_chunks"]


@dataclass(frozen=True, slots=True)
class ChunkInfo:
    """One chunk of a large file."""

    fid: str
    offset: int
    size: int


@dataclass(frozen=True, slots=True)
class ChunkManifest:
    """The manifest needle's content; `chunks` are sorted by offset."""

    name: str
    mime: str
    size: int
    chunks: tuple[ChunkInfo, ...]


def plan_chunks(size: int, chunk_size: int) -> list[tuple[int, int]]:
    """(offset, length) of each chunk of a `size`-byte file: full chunks, then the remainder.

    An exact multiple gives no trailing empty chunk (we deliberately differ from quirk A24).
    """
    if chunk_size <= 0:
        raise ValueError(f"chunk size must be positive, got {chunk_size}")
    return [(off, min(chunk_size, size - off)) for off in range(0, size, chunk_size)]


def encode_manifest(manifest: ChunkManifest) -> bytes:
    """Compact JSON in the reference's field order, empty fields omitted like Go `omitempty`."""
    obj: dict[str, Any] = {}
    if manifest.name:
        obj["name"] = manifest.name
    if manifest.mime:
        obj["mime"] = manifest.mime
    if manifest.size:
        obj["size"] = manifest.size
    if manifest.chunks:
        obj["chunks"] = [{"fid": c.fid, "offset": c.offset, "size": c.size}
                         for c in sorted(manifest.chunks, key=lambda c: c.offset)]
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def decode_manifest(data: bytes) -> ChunkManifest:
    """Parse manifest JSON; raises `BadRequest` naming what is wrong."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"chunk manifest is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise BadRequest("chunk manifest is not a JSON object")
    chunks = []
    for i, raw in enumerate(obj.get("chunks") or []):
        try:
            chunk = ChunkInfo(str(raw["fid"]), int(raw.get("offset", 0)), int(raw.get("size", 0)))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise BadRequest(f"chunk manifest entry {i} is malformed: {raw!r}") from None
        parse_file_id(chunk.fid)
        if chunk.offset < 0 or chunk.size < 0:
            raise BadRequest(f"chunk manifest entry {i} has a negative offset or size")
        chunks.append(chunk)
    chunks.sort(key=lambda c: c.offset)
    try:
        size = int(obj.get("size") or 0)
    except (TypeError, ValueError):
        raise BadRequest(f"chunk manifest size is not an integer: {obj.get('size')!r}") from None
    return ChunkManifest(str(obj.get("name") or ""), str(obj.get("mime") or ""), size,
                         tuple(chunks))
