"""Large request bodies, spooled to an unnamed temporary file in a data directory and mapped.

httpkit hands bodies above its streaming threshold to the handler as an async stream. Holding
such a body in memory would cost its size several times over (chunks, the joined body, the
multipart slice); spooling keeps memory flat: chunks are appended to the file from a worker
thread as they arrive, the multipart framing is then parsed on a read-only `mmap`, and the
file's bytes are appended to the volume in slices. The file has no name (`O_TMPFILE`-like
`TemporaryFile`), so nothing is left behind if the process dies.
"""

from __future__ import annotations

import asyncio
import mmap
import tempfile
from collections.abc import AsyncIterable, Iterator
from typing import BinaryIO

__all__ = ["SpooledBody", "spool"]

_FLUSH_AT = 1 << 20
_SLICE = 1 << 20


class SpooledBody:
    """A request body in a temporary file, mapped read-only."""

    def __init__(self, file: BinaryIO, size: int) -> None:
        self._file = file
        self.size = size
        self.map = mmap.mmap(file.fileno(), size, access=mmap.ACCESS_READ)

    def slices(self, start: int, end: int) -> Iterator[bytes]:
        """`[start, end)` of the body in slices of at most 1 MiB."""
        for pos in range(start, end, _SLICE):
            yield self.map[pos : min(pos + _SLICE, end)]

    def read(self, start: int, end: int) -> bytes:
        return self.map[start:end]

    def close(self) -> None:
        self.map.close()
        self._file.close()


def _temporary_file(directory: str) -> BinaryIO:
    return tempfile.TemporaryFile(dir=directory)


async def spool(chunks: AsyncIterable[bytes], directory: str) -> SpooledBody:
    """Receive the whole body into a temporary file under `directory`."""
    file = await asyncio.to_thread(_temporary_file, directory)
    try:
        pending: list[bytes] = []
        buffered = size = 0
        async for chunk in chunks:
            pending.append(chunk)
            buffered += len(chunk)
            if buffered >= _FLUSH_AT:
                await asyncio.to_thread(file.write, b"".join(pending))
                size += buffered
                pending, buffered = [], 0
        if pending:
            await asyncio.to_thread(file.write, b"".join(pending))
            size += buffered
        await asyncio.to_thread(file.flush)
        if size == 0:
            raise ValueError("a spooled body cannot be empty")
        return SpooledBody(file, size)
    except BaseException:
        file.close()
        raise
