"""Large request bodies, spooled to an unnamed temporary file in a data directory.

httpkit hands bodies above its streaming threshold to the handler as an async stream. Holding
such a body in memory would cost its size several times over (chunks, the joined body, the
multipart slice, the copy sent to each replica). Spooling keeps memory flat whatever the size:
chunks are appended to the file from a worker thread as they arrive, and every later pass (the
multipart framing, the MD5 and gzip checks, the append to the volume with its CRC, the
forward to each replica) reads the file back with `pread` in bounded pieces. The file is never
`mmap`ed: pages touched through a mapping count in the server's RSS, so a scan of a mapped
1 GiB body grows the process by 1 GiB (it did: 1.1 GB peak for a 1 GiB upload). The file has no
name (`O_TMPFILE`-like `TemporaryFile`), so nothing is left behind if the process dies, and
closing it frees its blocks.

`SpooledBody` offers what the upload parser needs of a body (`len`, `find`, small slices) and
the two ways of reading it: `chunks`, one pass through a reused buffer for one consumer, and
`read_at`, fresh bytes that may be kept or read from several threads at once (the forwards).
"""

from __future__ import annotations

import asyncio
import errno
import os
import tempfile
from collections.abc import AsyncIterable, Iterator
from typing import BinaryIO

from seaweed_py.errors import BadRequest, DiskFull

__all__ = ["MAX_SLICE", "SpooledBody", "SpooledPart", "spool"]

_FLUSH_AT = 1 << 20
CHUNK = 1 << 20
"""The piece size of every pass over a spooled body."""
MAX_SLICE = 1 << 20
"""The largest slice of a spooled body taken into memory (a multipart header block)."""


class SpooledBody:
    """A request body in a temporary file, read back in bounded pieces."""

    def __init__(self, file: BinaryIO, size: int) -> None:
        self._file = file
        self._fd = file.fileno()
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, span: slice) -> bytes:
        """A small slice (at most `MAX_SLICE` bytes): the framing around the data."""
        start, stop, _ = span.indices(self.size)
        if stop - start > MAX_SLICE:
            raise BadRequest(f"multipart framing of more than {MAX_SLICE} bytes")
        return self.read_at(start, max(0, stop - start))

    def find(self, sub: bytes, start: int = 0, end: int | None = None) -> int:
        """`bytes.find` over the file: a pass through one reused buffer, overlapping by
        `len(sub) - 1` bytes so a match across two pieces is found."""
        end = self.size if end is None else min(end, self.size)
        start = max(start, 0)
        if not sub:
            return start if start <= end else -1
        buffer = bytearray(CHUNK + len(sub))
        view = memoryview(buffer)
        pos = start
        while end - pos >= len(sub):
            got = os.preadv(self._fd, [view[: min(len(buffer), end - pos)]], pos)
            if got < len(sub):
                return -1
            found = buffer.find(sub, 0, got)
            if found >= 0:
                return pos + found
            pos += got - len(sub) + 1
        return -1

    def chunks(self, start: int, end: int) -> Iterator[memoryview]:
        """`[start, end)` in pieces of at most `CHUNK` bytes, each a view of one reused buffer:
        valid until the next piece is asked for (a consumer that keeps one must copy it)."""
        buffer = bytearray(min(CHUNK, max(0, end - start)))
        view = memoryview(buffer)
        pos = start
        while pos < end:
            got = os.preadv(self._fd, [view[: min(CHUNK, end - pos)]], pos)
            if got <= 0:
                raise OSError(errno.EIO, f"spool file ends at {pos}, expected {end}")
            pos += got
            yield view[:got]

    def read_at(self, pos: int, size: int) -> bytes:
        """`size` bytes at `pos`, as new bytes (thread-safe: `pread` keeps no file offset)."""
        data = os.pread(self._fd, size, pos)
        if len(data) != size:
            raise OSError(errno.EIO, f"spool file ends before {pos + size}")
        return data

    def part(self, start: int, end: int) -> SpooledPart:
        return SpooledPart(self, start, end)

    def close(self) -> None:
        self._file.close()


class SpooledPart:
    """The file's bytes within a spooled body (`[start, end)`): a `client.replicate`
    `BodySource`, and what the volume appends."""

    __slots__ = ("_body", "end", "size", "start")

    def __init__(self, body: SpooledBody, start: int, end: int) -> None:
        self._body = body
        self.start = start
        self.end = end
        self.size = end - start

    def read_at(self, pos: int, size: int) -> bytes:
        return self._body.read_at(self.start + pos, size)

    def chunks(self) -> Iterator[memoryview]:
        return self._body.chunks(self.start, self.end)


def _temporary_file(directory: str) -> BinaryIO:
    return tempfile.TemporaryFile(dir=directory)


def _write(file: BinaryIO, pieces: list[bytes]) -> None:
    try:
        file.write(b"".join(pieces))
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise DiskFull("no space left to receive the upload") from exc
        raise


async def spool(chunks: AsyncIterable[bytes], directory: str) -> SpooledBody:
    """Receive the whole body into a temporary file under `directory`. A failure while
    receiving (the client gone, a timeout, a full disk) closes and so frees the file."""
    file = await asyncio.to_thread(_temporary_file, directory)
    try:
        pending: list[bytes] = []
        buffered = size = 0
        async for chunk in chunks:
            pending.append(chunk)
            buffered += len(chunk)
            if buffered >= _FLUSH_AT:
                await asyncio.to_thread(_write, file, pending)
                size += buffered
                pending, buffered = [], 0
        if pending:
            await asyncio.to_thread(_write, file, pending)
            size += buffered
        await asyncio.to_thread(file.flush)
        if size == 0:
            raise ValueError("a spooled body cannot be empty")  # httpkit streams large ones only
        return SpooledBody(file, size)
    except BaseException:
        file.close()
        raise
