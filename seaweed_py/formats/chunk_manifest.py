"""Chunk manifests: a needle (flag 0x80) whose data lists the chunks of a large file (spec §13.1).

This is the one codec for manifests: volume servers decode them to serve and delete large files,
and the SDK (`seaweed_py.client.manifest`) encodes the manifests it uploads.

```json
{"name":"big.iso","mime":"application/octet-stream","size":10485760,
 "chunks":[{"fid":"3,02a1b2c3d4","offset":0,"size":4194304}, ...]}
```

| field | JSON | notes |
|---|---|---|
| `name` | string, omitted when empty | file name |
| `mime` | string, omitted when empty | MIME type |
| `size` | int64, omitted when 0 | logical file size |
| `chunks` | list, omitted when empty | `fid` (string), `offset` (byte position in the file), `size` |

The manifest may be stored gzipped (flag 0x01); `load_chunk_manifest` inflates it. Chunks are
kept sorted by offset, as readers stream them in that order; `to_json` writes them sorted too.
Field names match case-insensitively and unknown fields are ignored, as Go's `encoding/json`
does; chunk fids must be valid file ids and offsets and sizes non-negative, else
`InvalidChunkManifest` (`InvalidChunkFileId`, also an `InvalidFileId`, for a bad fid). A chunk
keeps its fid as written (re-encoding writes it unchanged); `.file_id` parses it. Quirk A24: `weed upload` gives a file whose size is an exact multiple of the chunk size a
trailing empty chunk; such manifests decode like any other.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from seaweed_py.errors import InvalidChunkFileId, InvalidChunkManifest, InvalidFileId
from seaweed_py.formats.fid import FileId, parse_file_id

__all__ = ["ChunkInfo", "ChunkManifest", "load_chunk_manifest"]

_INT64_MAX = (1 << 63) - 1


@dataclass(frozen=True, slots=True, init=False)
class ChunkInfo:
    """One chunk of a large file: `size` bytes at `offset`, stored as the needle `fid`."""

    fid: str
    offset: int
    size: int

    def __init__(self, fid: str | FileId, offset: int, size: int) -> None:
        # The text is what the JSON carries; a FileId is accepted for callers that hold one.
        object.__setattr__(self, "fid", fid if isinstance(fid, str) else str(fid))
        object.__setattr__(self, "offset", offset)
        object.__setattr__(self, "size", size)

    @property
    def file_id(self) -> FileId:
        """The parsed fid (raises `InvalidFileId` for a chunk built by hand with a bad one)."""
        return parse_file_id(self.fid)


@dataclass(frozen=True, slots=True)
class ChunkManifest:
    """A manifest needle's content; decoding sorts `chunks` by offset."""

    name: str = ""
    mime: str = ""
    size: int = 0
    chunks: tuple[ChunkInfo, ...] = ()

    @property
    def total_chunk_size(self) -> int:
        """Length of the stream a read serves: the sum of the chunk sizes."""
        return sum(c.size for c in self.chunks)

    def to_json(self) -> bytes:
        """Compact JSON in the reference's field order, Go's `omitempty` rules, chunks sorted."""
        obj: dict[str, Any] = {}
        if self.name:
            obj["name"] = self.name
        if self.mime:
            obj["mime"] = self.mime
        if self.size:
            obj["size"] = self.size
        if self.chunks:
            obj["chunks"] = [
                {"fid": c.fid, "offset": c.offset, "size": c.size}
                for c in sorted(self.chunks, key=_by_offset)
            ]
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> ChunkManifest:
        try:
            obj = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise InvalidChunkManifest(f"chunk manifest is not JSON: {e}") from None
        if not isinstance(obj, dict):
            raise InvalidChunkManifest("chunk manifest is not a JSON object")
        fields = _fold(obj)
        raw_chunks = fields.get("chunks")
        raw_chunks = [] if raw_chunks is None else raw_chunks
        if not isinstance(raw_chunks, list):
            raise InvalidChunkManifest("chunk manifest 'chunks' is not a list")
        chunks = sorted((_chunk(c, i) for i, c in enumerate(raw_chunks)), key=_by_offset)
        return cls(
            name=_text(fields, "name"),
            mime=_text(fields, "mime"),
            size=_number(fields, "size", "manifest"),
            chunks=tuple(chunks),
        )


def load_chunk_manifest(data: bytes, gzipped: bool = False) -> ChunkManifest:
    """Parse a manifest needle's data, inflating it first when the needle is gzipped."""
    if gzipped:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise InvalidChunkManifest(f"gzipped chunk manifest does not inflate: {e}") from None
    return ChunkManifest.from_json(data)


def _by_offset(c: ChunkInfo) -> int:
    return c.offset


def _fold(obj: Mapping[str, Any]) -> dict[str, Any]:
    # encoding/json matches keys case-insensitively; the last duplicate wins.
    return {k.lower(): v for k, v in obj.items()}


def _chunk(raw: object, index: int) -> ChunkInfo:
    if not isinstance(raw, dict):
        raise InvalidChunkManifest(f"chunk {index} is not a JSON object")
    fields = _fold(raw)
    fid = _text(fields, "fid")
    try:
        parse_file_id(fid)
    except InvalidFileId as e:
        raise InvalidChunkFileId(f"chunk {index}: {e.message}") from None
    where = f"chunk {index}"
    return ChunkInfo(fid, _number(fields, "offset", where), _number(fields, "size", where))


def _text(fields: Mapping[str, Any], name: str) -> str:
    value = fields.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidChunkManifest(f"chunk manifest {name!r} is not a string: {value!r}")
    return value


def _number(fields: Mapping[str, Any], name: str, where: str) -> int:
    value = fields.get(name)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _INT64_MAX:
        raise InvalidChunkManifest(f"{where} {name!r} is not a non-negative integer: {value!r}")
    return value
