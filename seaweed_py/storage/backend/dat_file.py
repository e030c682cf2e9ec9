"""Where a volume reads its `.dat` bytes from: a local file or an object in a bucket.

One small interface, `DatFile`, is all the volume engine reads through:

| member | meaning |
|---|---|
| `pread(length, offset) -> bytes` | the bytes at `offset`, as `os.pread`; fewer only past the end |
| `read_spans(spans) -> list[bytes]` | each (offset, length) span; neighbours fetched together |
| `remote` | True when reads cross the network (the server then reads off the event loop) |
| `chunk_size` | bytes per read when streaming or verifying a large needle |
| `size` | length of the data |

`LocalDatFile.pread` is `os.pread` with the volume's descriptor bound (a C partial: the local
read hot path costs what it did). `RemoteDatFile`
reads one object of an `S3Backend`: a read is one ranged GET unless the `RangeCache` holds it;
`read_spans` merges spans closer than `COALESCE_GAP` into one request (at most `MAX_SPAN` bytes
each) and cuts the answers back apart. A remote answer shorter than asked (inside the object's
recorded size) is an error, never a short read (the reference accepted them silently before
4.40, tiering spec §3).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from typing import Final, Protocol

from seaweed_py.errors import NotFound, RemoteStorageError
from seaweed_py.storage.backend.cache import RangeCache
from seaweed_py.storage.backend.s3 import S3Backend

__all__ = [
    "COALESCE_GAP",
    "MAX_SPAN",
    "DatFile",
    "LocalDatFile",
    "RemoteDatFile",
    "coalesce",
    "read_merged",
]

COALESCE_GAP: Final = 1 << 20
"""Spans closer than this are read with one request: an S3 GET costs about what 1 MiB of
transfer does, so reading the gap is cheaper than a second round trip."""
MAX_SPAN: Final = 16 << 20
"""Largest merged read: bounds the memory one batch holds per request."""
REMOTE_CHUNK: Final = 4 << 20
"""Bytes per request when a large needle streams from a bucket (weed's -readBufferSizeMB 4)."""
LOCAL_CHUNK: Final = 1 << 20


class DatFile(Protocol):
    remote: bool
    chunk_size: int

    @property
    def size(self) -> int: ...

    def pread(self, length: int, offset: int) -> bytes: ...

    def read_spans(self, spans: Sequence[tuple[int, int]]) -> list[bytes]: ...


class LocalDatFile:
    """A `.dat` on local disk, read with pread on the volume's descriptor."""

    remote = False
    chunk_size = LOCAL_CHUNK

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pread: Callable[[int, int], bytes] = functools.partial(os.pread, fd)

    @property
    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def read_spans(self, spans: Sequence[tuple[int, int]]) -> list[bytes]:
        return read_merged(lambda o, n: os.pread(self.fd, n, o), spans)


class RemoteDatFile:
    """The `.dat` object `key` of `store`, `size` bytes long (as `.vif` records it)."""

    remote = True
    chunk_size = REMOTE_CHUNK

    def __init__(
        self, store: S3Backend, key: str, size: int, cache: RangeCache | None = None
    ) -> None:
        self.store = store
        self.key = key
        self._size = size
        self.cache = cache

    @property
    def size(self) -> int:
        return self._size

    def pread(self, length: int, offset: int) -> bytes:
        length = max(0, min(length, self._size - offset))
        if length == 0:
            return b""
        cache = self.cache
        if cache is not None:
            hit = cache.get(self.key, offset, length)
            if hit is not None:
                return hit
        try:
            data = self.store.read_range(self.key, offset, length)
        except NotFound as exc:  # the index names it: the object is lost, not the needle
            raise RemoteStorageError(exc.message) from None
        self._check(offset, length, data)
        if cache is not None:
            cache.put(self.key, offset, data)
        return data

    def read_spans(self, spans: Sequence[tuple[int, int]]) -> list[bytes]:
        """Each span's bytes: cached ones from the cache, the rest merged into few requests."""
        clamped = [(o, max(0, min(n, self._size - o))) for o, n in spans]
        out: list[bytes | None] = [None] * len(clamped)
        missing: list[int] = []
        for i, (o, n) in enumerate(clamped):
            if n == 0:
                out[i] = b""
            elif self.cache is not None and (hit := self.cache.get(self.key, o, n)) is not None:
                out[i] = hit
            else:
                missing.append(i)
        if missing:
            merged = coalesce([clamped[i] for i in missing])
            try:
                got = self.store.read_ranges(self.key, [(o, n) for o, n, _ in merged])
            except NotFound as exc:
                raise RemoteStorageError(exc.message) from None
            for (start, length, members), data in zip(merged, got, strict=True):
                self._check(start, length, data)
                for m in members:
                    o, n = clamped[missing[m]]
                    piece = data[o - start : o - start + n]
                    out[missing[m]] = piece
                    if self.cache is not None:
                        self.cache.put(self.key, o, piece)
        return [b if b is not None else b"" for b in out]

    def _check(self, offset: int, length: int, data: bytes) -> None:
        if len(data) != length:
            raise RemoteStorageError(
                f"read {self.store.name}/{self.key} at offset {offset} answered "
                f"{len(data)} of {length} bytes"
            )


def coalesce(
    spans: Sequence[tuple[int, int]], gap: int = COALESCE_GAP, limit: int = MAX_SPAN
) -> list[tuple[int, int, list[int]]]:
    """Merge (offset, length) spans, in any order, into reads: (offset, length, indexes of the
    spans it covers). Spans whose gap is below `gap` share a read while it stays within
    `limit` bytes (a single larger span is its own read)."""
    order = sorted(range(len(spans)), key=lambda i: spans[i][0])
    merged: list[tuple[int, int, list[int]]] = []
    start = end = -1
    members: list[int] = []
    for i in order:
        o, n = spans[i]
        if members and o - end <= gap and max(end, o + n) - start <= limit:
            end = max(end, o + n)
            members.append(i)
            continue
        if members:
            merged.append((start, end - start, members))
        start, end, members = o, o + n, [i]
    if members:
        merged.append((start, end - start, members))
    return merged


def read_merged(
    read_at: Callable[[int, int], bytes],
    spans: Sequence[tuple[int, int]],
    gap: int = COALESCE_GAP,
) -> list[bytes]:
    """`read_spans` over a `read_at(offset, length)`: neighbours read together."""
    out: list[bytes] = [b""] * len(spans)
    for start, length, members in coalesce(spans, gap):
        data = read_at(start, length)
        for m in members:
            o, n = spans[m]
            out[m] = data[o - start : o - start + n]
    return out
