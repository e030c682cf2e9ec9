"""Walk the needle records of a `.dat` in file order (recovery, `weedpy fix`, export), and
tell a torn record from a rotted one.

Records are read in large blocks (one pread per ~4 MiB, or per record when a record is bigger)
and checked with the formats codec. A record is one of:

* **sound**: it decodes and its data matches its CRC;
* **torn** (`Record.fatal`): provably never written whole, so no write that was acknowledged
  as durable can depend on it or on anything after it (see below); the walk ends there;
* **rotted** (`Record.error` set, not fatal): complete, with a footer that this write wrote,
  but its bytes fail a check (CRC, field bounds). Its header still says where the next record
  starts, so the walk goes on.

The rule, in the order it is applied:

1. Fewer than 16 bytes left, a header with key 0, a negative Size, or a body and footer
   (checksum, AppendAtNs) running past the end of the file: torn. No file id names key 0, so
   a zero header is a page that never reached the disk, and without a Size there is no way
   to find the next record anyway.
2. The record has data, decodes and its CRC matches: sound, whatever its footer says. A
   Size-0 record (a tombstone or an empty file) has no data to check, and a header whose Size
   bytes were never written reads as one: in version 3 it is torn if its AppendAtNs is 0 (every
   writer sets it; the order test of rule 3 is not applied here, since it would call sound
   empty files of a volume the reference compacted torn), else sound. A body with Size > 0 but
   no data is never written (empty data is stored as Size 0) and fails to decode: zeros whose
   zero checksum would match the empty data.
3. Otherwise the footer decides. Torn if the stored checksum is 0, if (version 3) AppendAtNs
   is 0, or if AppendAtNs is not after the AppendAtNs of the record before it in the file
   (`after_ns`): weedpy writes a real checksum and a non-zero AppendAtNs in every record with
   data, and keeps AppendAtNs strictly increasing per volume (`max(now, last + 1)`, compat row
   A14; tombstones included), so such a footer was not written by this record's append.
   Anything else is rotted.

Why cutting at a torn record loses nothing acknowledged, in every durability mode: a write is
acknowledged after its record is in the page cache (`-fsync=none`, which promises survival of
a process crash only: the page cache keeps every completed pwrite, so the only torn record a
crash can leave is the one being written), or after an fsync that started after the record was
written (`group`, `always`). A record that never reached the disk whole was therefore not
covered by a completed fsync, and neither was any record written after it, since appends are
serialised and an fsync covers everything written before it started. The rule only ever calls
a record torn on evidence that its bytes were never all written (zeros or bytes where this
append's footer must be, or a file too short); a record whose footer is this append's own but
whose data does not match is kept and reported, even though a power loss that lost one page in
the middle of an unacknowledged record (file systems may write pages in any order) looks the
same: keeping it costs a "corrupt" answer for a write that never succeeded, cutting it could
destroy an acknowledged one. Version-2 records have no AppendAtNs: only rule 1 and the zero
checksum of rule 3 apply. A volume whose records are not in AppendAtNs order (the reference's
vacuum copies needles in key order) could see a rotted record called torn by the AppendAtNs
order; weedpy volumes are always in that order (weedpy's vacuum copies records in file order,
each keeping its AppendAtNs: storage/volume_vacuum.py).
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
    VERSION_3,
    decode_footer,
    decode_needle,
    record_length,
    tail_length,
)
from seaweed_py.formats.superblock import SUPERBLOCK_SIZE, SuperBlock, superblock_length

__all__ = ["Record", "read_superblock", "scan_records", "torn_footer"]

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

    `error` is None for a sound record; for a rotted one it says what failed (`append_at_ns`
    is then the stored, unverified one; `checksum` 0). `fatal` means the record is torn (rule
    in the module docstring): `length` is 0 and nothing from `offset` on is a record.
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
    after_ns: int = 0,
) -> Iterator[Record]:
    """Records from byte `start` up to byte `end` of the open `.dat` `fd`; `after_ns` is the
    AppendAtNs of the record before `start` (0: none)."""
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
            torn = None if size else torn_footer(checksum, append_at_ns, version, after_ns, False)
        except CorruptNeedle as exc:
            error = exc.message
            checksum, append_at_ns = decode_footer(record, version)
            torn = torn_footer(checksum, append_at_ns, version, after_ns)
            checksum = 0
        if torn is not None:
            reason = torn if error is None else f"{error}; {torn}"
            yield Record(pos, cookie, key, size, 0, 0, 0, reason, fatal=True)
            return
        yield Record(pos, cookie, key, size, length, checksum, append_at_ns, error)
        after_ns = append_at_ns
        pos += length


def torn_footer(
    checksum: int, append_at_ns: int, version: int, after_ns: int, has_data: bool = True
) -> str | None:
    """Why the footer of a complete record was not written by its own append (the record is
    torn), or None. Rules 2 and 3 of the module docstring: for a record that failed its
    checks (None: it rotted), or for a Size-0 one (`has_data` False: only a zero AppendAtNs
    counts, since its checksum field is a copy, or 0, and the record is otherwise sound).
    `after_ns` is the AppendAtNs of the record before it."""
    if has_data and checksum == 0:
        return "torn: the checksum was never written"
    if version < VERSION_3:
        return None
    if append_at_ns == 0:
        return "torn: the footer was never written (AppendAtNs 0)"
    if has_data and append_at_ns <= after_ns:
        return f"torn: AppendAtNs {append_at_ns} is not after the previous record's {after_ns}"
    return None
