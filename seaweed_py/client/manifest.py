"""Chunk manifests on the client side: how the SDK splits a large file (spec §13).

A file larger than the chunk size is uploaded as chunks, each its own needle with its own fid,
plus one *manifest* needle (flag 0x80, written with `?cm=true`) at the file's fid. Volume servers
expand it on GET into the concatenated chunks (`X-File-Store: chunked`) and delete the chunks
before the manifest on DELETE.

The manifest types and their JSON codec live in `seaweed_py.formats.chunk_manifest` (the layout
is documented there), shared with the volume server; this module re-exports them under the SDK's
names and adds the split itself. Quirk A24: `weed upload` splits a file whose size is an exact
multiple of the chunk size into one extra empty chunk; `plan_chunks` does not (docs/compat.md),
and `decode_manifest` accepts manifests that carry one.
"""

from __future__ import annotations

from seaweed_py.formats.chunk_manifest import ChunkInfo, ChunkManifest
from seaweed_py.formats.chunk_manifest import load_chunk_manifest as decode_manifest

__all__ = ["ChunkInfo", "ChunkManifest", "decode_manifest", "encode_manifest", "plan_chunks"]


def plan_chunks(size: int, chunk_size: int) -> list[tuple[int, int]]:
    """(offset, length) of each chunk of a `size`-byte file: full chunks, then the remainder.

    An exact multiple gives no trailing empty chunk (we deliberately differ from quirk A24).
    """
    if chunk_size <= 0:
        raise ValueError(f"chunk size must be positive, got {chunk_size}")
    return [(off, min(chunk_size, size - off)) for off in range(0, size, chunk_size)]


def encode_manifest(manifest: ChunkManifest) -> bytes:
    """The manifest needle's data: `manifest.to_json()` (compact, `omitempty`, chunks sorted)."""
    return manifest.to_json()
