"""Walk the needle records of a `.dat` in file order (recovery, `weedpy fix`, export).

Records are read in large blocks (one pread per ~4 MiB, or per record when a record is bigger)
and checked with the formats codec. A record whose header cannot be trusted (Size negative or
running past the end of the file, key 0, or a truncated header) ends the walk: without a Size there
is no way to find the next record. A record whose bytes fail the check (CRC, field bounds) is
reported and the walk goes on, since its header still says where the next one starts.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from seaweed_py.errors import CorruptNeedle, CorruptVolume
from seaweed_py.formats.needle import (
    NEEDLE_HEADER,
    NEEDLE_HEADER_SIZE,
    decode_needle,
    record_length,
    tail_length,
)
from seaweed_py.formats.superblock import SUPERBLOCK_SIZE, SuperBlock, superblock_length

__all__ = ["Record", "read_superblock", "scan_records"]

_BLOCK: Final = 4 << 20


def read_superblock(fd: int, *, volume_id: int) -> SuperBlock:
    """The superblock at the start of the open `.dat` `fd` (a second pread only for an extra
    part)."""
    head = os.pread(fd, SUPERBLOCK_SIZE, 0)
    if len(head) < SUPERBLOCK_SIZE:
        raise CorruptVolume("superblock truncated", volume_id=volume_id, size=len(head))
    length = superblock_length(head)
    return SuperBlock.decode(
        head if length == len(head) else os.pread(fd, length, 0), volume_id=volume_id
    )


@dataclass(frozen=True, slots=True)
class Record:
    """One record found in a `.dat`.

    `error` is None for a sound record. `fatal` means the header itself is bad: `length` is
    unknown (0) and nothing after `offset` can be walked.
    """

    offset: int
    cookie: int
    key: int
    size: int
    length: int
    checksum: int
    append_at_ns: int
    error: str | None = None
    fatal: bool = False


def scan_records(
    fd: int,
    start: int,
    end: int,
    version: int,
    *,
    verify: bool = True,
    volume_id: int | None = None,
) -> Iterator[Record]:
    """Records from byte `start` up to byte `end` of the open `.dat` `fd`."""
    tail = tail_length(version)
    buf = b""
    buf_at = start
    pos = start
    while pos < end:
        if end - pos < NEEDLE_HEADER_SIZE:
            yield Record(pos, 0, 0, 0, 0, 0, 0, f"{end - pos} trailing bytes", fatal=True)
            return
        rel = pos - buf_at
        if rel + NEEDLE_HEADER_SIZE > len(buf):
            buf = os.pread(fd, min(_BLOCK, end - pos), pos)
            buf_at, rel = pos, 0
        cookie, key, size = NEEDLE_HEADER.unpack_from(buf, rel)
        if key == 0:
            # No file id can name key 0, so no needle has it; a zero header is what a power
            # loss leaves where the data pages of an extended file never reached the disk.
            yield Record(pos, cookie, key, size, 0, 0, 0, "zeroed header (key 0)", fatal=True)
            return
        if size < 0 or pos + NEEDLE_HEADER_SIZE + size + tail > end:
            yield Record(
                pos,
                cookie,
                key,
                size,
                0,
                0,
                0,
                f"header Size {size} runs past the end ({end})",
                fatal=True,
            )
            return
        length = record_length(size, version)
        need = NEEDLE_HEADER_SIZE + size + tail  # the padding of the last record may be cut
        if rel + need > len(buf):
            buf = os.pread(fd, max(min(_BLOCK, end - pos), need), pos)
            buf_at, rel = pos, 0
        record = buf[rel : rel + need]
        error: str | None = None
        checksum = append_at_ns = 0
        try:
            n = decode_needle(record, version, verify=verify, volume_id=volume_id, offset=pos)
            checksum, append_at_ns = n.checksum, n.append_at_ns
        except CorruptNeedle as exc:
            error = exc.message
        yield Record(pos, cookie, key, size, length, checksum, append_at_ns, error)
        pos += length
