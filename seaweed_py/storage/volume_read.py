"""Reads of a volume: lookups, whole small needles, streamed large ones, and what was corrupt.

A read is one needle-map lookup and one pread of the whole record, decoded and CRC-checked;
a wrong cookie reads as not found, corrupt bytes are never returned. The index (`IndexHit`)
answers where a needle lies; `read_at` reads it from there without a second lookup, and
`read_checked` also hands back the record it checked, for `is_current` to tell cheaply later
whether an answer built from it still holds (the volume server's answer cache). A large
needle is streamed: `verify` checks all of its data first (remembered per record, module
`integrity`), then `iter_data` hands out chunks. A deleted key's last live version is found
by scanning `.idx` backwards (`read_deleted`, spec §3.3).

Reads take no lock, so a vacuum's commit (`volume_vacuum`), which swaps the volume's files and
index under the lock, can come between a read's lookup and its pread: the read then finds
another record where it looks, and a read that fails its checks after a commit is done once
more, with the index and files of one generation (`_reread`; the replaced files stay open until
the next commit, so a pread is never on a closed descriptor). A streamed read remembers the
generation it began in (`NeedleLocation.generation`) and follows its needle when a commit
moved it (`Volume.relocate`). The functions here are methods of `Volume` (volume.py binds them, hence
their `self`); the ones only this module calls stay module functions.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final

import numpy as np

from seaweed_py.errors import CookieMismatch, CorruptNeedle, CorruptVolume, NeedleNotFound
from seaweed_py.formats.crc import checksum_matches, crc32c
from seaweed_py.formats.idx import decode_entries
from seaweed_py.formats.needle import (
    NEEDLE_HEAD_SIZE,
    NEEDLE_HEADER,
    NEEDLE_HEADER_SIZE,
    Needle,
    decode_needle,
    decode_needle_meta,
)
from seaweed_py.storage.integrity import CorruptRecord
from seaweed_py.storage.needle_map import IndexHit

if TYPE_CHECKING:
    from seaweed_py.storage.volume import Volume

__all__ = ["CheckedRecord", "NeedleLocation"]

READ_CHUNK: Final = 1 << 20  # bytes per pread of a streamed needle (or a copied one)
_VERIFY_CHUNK: Final = 1 << 20  # bytes read per pread when a large needle is verified
_SCAN_ENTRIES: Final = 1 << 16  # .idx entries per block of a backward scan


@dataclass(frozen=True, slots=True)
class NeedleLocation:
    """Where a needle's data lies, for streaming large bodies with preads.

    `needle` has every field but `data`; its checksum is the stored one, unverified
    (`Volume.verify` checks the data against it). `hit` is where the record lies, as
    `Volume.lookup` answers it, in the files of `generation` (a vacuum commit makes new ones).
    """

    needle: Needle
    data_offset: int
    data_size: int
    hit: IndexHit
    generation: int = 0


@dataclass(frozen=True, slots=True)
class CheckedRecord:
    """The stored bytes of the live needle `key`'s record where `hit` said it lay, as a read
    found them sound (`Volume.read_checked`). A caller keeps it beside what it built from the
    needle and asks `Volume.is_current` whether that still holds."""

    key: int
    hit: IndexHit
    record: bytes


def lookup(self: Volume, key: int) -> IndexHit | None:
    """Where the live needle `key` lies (byte offset, body Size), or None."""
    return self._map.get(key)


def read(self: Volume, key: int, cookie: int, *, read_deleted: bool = False) -> Needle:
    """The needle `key`, CRC-checked. Unknown, deleted or wrong cookie: NeedleNotFound.

    With `read_deleted`, a deleted key reads as its last live version while the record is
    still in `.dat` (until a vacuum; spec §3.3); one deleted at Size 0 stays not found."""
    hit = self._map.get(key)
    if hit is None and read_deleted:
        hit = _last_put(self, key)
    if hit is None:
        raise NeedleNotFound("needle not found", volume_id=self.id, key=f"{key:x}")
    return self.read_at(key, cookie, hit)


def read_at(
    self: Volume, key: int, cookie: int, hit: IndexHit, record: bytes | None = None
) -> Needle:
    """`read` of the needle `lookup(key)` just answered `hit` for (saves a second lookup
    on the read hot path); `record` is `record_at(hit)` if the caller has it already."""
    try:
        return _decode_at(self, key, cookie, hit, record)
    except CorruptNeedle as exc:
        if self._generation or self._swapping:
            return _reread(self, key, cookie)
        self._corrupt.note(CorruptRecord(key, hit.offset, hit.size, exc.message))
        raise


def _reread(self: Volume, key: int, cookie: int) -> Needle:
    """`read` once more, after a read failed its checks on a volume a vacuum has committed
    to: its lookup and its pread may have straddled the swap of the files (module
    docstring). Waits for a swap under way to end first."""
    self._await_swap()
    hit = self._map.get(key)
    if hit is None:
        raise NeedleNotFound("needle not found", volume_id=self.id, key=f"{key:x}")
    try:
        return _decode_at(self, key, cookie, hit, None)
    except CorruptNeedle as exc:
        self._corrupt.note(CorruptRecord(key, hit.offset, hit.size, exc.message))
        raise


def _decode_at(self: Volume, key: int, cookie: int, hit: IndexHit, record: bytes | None) -> Needle:
    """The needle of the record at `hit` (read now unless given): NeedleNotFound for another
    cookie, CorruptNeedle for bytes that fail a check."""
    offset, size = hit
    if record is None:
        record = self._pread(NEEDLE_HEADER_SIZE + size + self._tail, offset)
    if len(record) >= NEEDLE_HEADER_SIZE:
        stored_cookie, stored_key, _ = NEEDLE_HEADER.unpack_from(record)
        if stored_cookie != cookie and stored_key == key:
            raise NeedleNotFound("needle not found", volume_id=self.id, key=f"{key:x}")
        if stored_key != key:
            raise CorruptNeedle(
                "record holds another key",
                volume_id=self.id,
                offset=offset,
                key=f"{key:x}",
                found=f"{stored_key:x}",
            )
    return decode_needle(record, self.version, volume_id=self.id, offset=offset)


def read_checked(
    self: Volume, key: int, cookie: int, hit: IndexHit
) -> tuple[Needle, CheckedRecord]:
    """`read_at`, and the record it checked, for `is_current` to compare with later."""
    record = self.record_at(hit)
    return self.read_at(key, cookie, hit, record), CheckedRecord(key, hit, record)


def is_current(self: Volume, checked: CheckedRecord) -> bool:
    """Whether `checked` is still its key's live record, byte for byte: the index points
    where it did and the bytes there are unchanged (one lookup and one pread, nothing
    decoded; an overwrite, a delete or bytes that rotted since all answer False). Takes
    no lock: fine on the event loop."""
    hit = checked.hit
    return (
        self._map.holds(checked.key, hit)
        and self._pread(NEEDLE_HEADER_SIZE + hit.size + self._tail, hit.offset) == checked.record
    )


def record_span(self: Volume, hit: IndexHit) -> tuple[int, int]:
    """(offset, length) of the record `hit` points at, as `record_at` reads it: for callers
    that read many records at once (`DatFile.read_spans`) and check each with `read_at`."""
    return hit.offset, NEEDLE_HEADER_SIZE + hit.size + self._tail


def record_at(self: Volume, hit: IndexHit) -> bytes:
    """The stored bytes of the record `hit` (from `lookup`) points at, unchecked: for a
    caller that compares them with a record `read_at` checked before (one pread)."""
    offset, size = hit
    return self._pread(NEEDLE_HEADER_SIZE + size + self._tail, offset)


def _last_put(self: Volume, key: int) -> IndexHit | None:
    """Where the newest put of `key` in `.idx` lies, None if there is none or it has
    Size 0.

    The in-memory map forgets a deleted needle's offset, so this scans `.idx` backwards in
    blocks: admin reads of deleted needles are rare and may cost a file scan (and wait for
    the write lock, to write out the batched entries first)."""
    with self._lock:
        self._flush_idx()
        unwritten = bytes(self._idx_batch)  # left by a failed flush
        on_disk = self._idx_end - len(unwritten)
    for buf in _idx_blocks_backwards(self, unwritten, on_disk):
        keys, offsets, sizes = decode_entries(buf, self.layout)
        for i in np.flatnonzero(keys == key)[::-1].tolist():
            offset, size = int(offsets[i]), int(sizes[i])
            if offset and size >= 0:  # not a delete (spec §4.9)
                return IndexHit(offset, size) if size else None
    return None


def _idx_blocks_backwards(self: Volume, unwritten: bytes, on_disk: int) -> Iterator[bytes]:
    """Whole `.idx` entries in blocks, newest block first: `unwritten`, then the file's
    first `on_disk` bytes from the end."""
    if unwritten:
        yield unwritten
    w = self.layout.entry_size
    end = on_disk - on_disk % w
    block = _SCAN_ENTRIES * w
    while end > 0:
        start = max(0, end - block)
        buf = os.pread(self._idx, end - start, start)
        if len(buf) != end - start:
            raise CorruptVolume("index shrank while being scanned", volume_id=self.id, offset=start)
        yield buf
        end = start


def read_meta(self: Volume, key: int, cookie: int) -> NeedleLocation:
    """Metadata and data position of `key`, for streaming a large body (two small preads).

    Check the data with `iter_data`, which verifies the CRC at the end."""
    while True:
        self._await_swap()
        generation = self._generation
        try:
            hit = self._map.get(key)
            if hit is None:
                raise NeedleNotFound("needle not found", volume_id=self.id, key=f"{key:x}")
            loc = self._meta_at(key, cookie, hit, NeedleNotFound, note=False)
        except (CorruptNeedle, NeedleNotFound) as exc:
            if self._swapped_since(generation):
                continue  # a vacuum commit swapped the files meanwhile: look again
            if isinstance(exc, CorruptNeedle) and hit is not None:
                self._corrupt.note(CorruptRecord(key, hit.offset, hit.size, exc.message))
            raise
        if not self._swapped_since(generation):
            return replace(loc, generation=generation)


def _meta_at(
    self: Volume,
    key: int,
    cookie: int,
    hit: IndexHit,
    wrong_cookie: type[NeedleNotFound | CookieMismatch],
    *,
    note: bool = True,
) -> NeedleLocation:
    """`read_meta` of the record `hit` points at; a cookie other than the stored one
    raises `wrong_cookie` (checked before the metadata is decoded). A record that is not
    `hit`'s is listed as corrupt, unless `note` is False (the caller decides)."""
    offset, size = hit
    head = self._pread(NEEDLE_HEAD_SIZE, offset)
    if len(head) < NEEDLE_HEADER_SIZE:
        raise CorruptNeedle("record truncated", volume_id=self.id, offset=offset, key=f"{key:x}")
    stored_cookie, stored_key, stored_size = NEEDLE_HEADER.unpack_from(head)
    if stored_key != key or stored_size != size:
        exc = CorruptNeedle(
            "record header does not match the index",
            volume_id=self.id,
            offset=offset,
            key=f"{key:x}",
        )
        if note:
            self._corrupt.note(CorruptRecord(key, offset, size, exc.message))
        raise exc
    if stored_cookie != cookie:
        raise wrong_cookie(
            "cookie does not match the stored needle"
            if wrong_cookie is CookieMismatch
            else "needle not found",
            volume_id=self.id,
            key=f"{key:x}",
        )
    data_size = int.from_bytes(head[16:20], "big") if size else 0
    tail_at = offset + NEEDLE_HEAD_SIZE + data_size if size else offset + NEEDLE_HEADER_SIZE
    tail = self._pread(offset + NEEDLE_HEADER_SIZE + size + self._tail - tail_at, tail_at)
    needle, data_size = decode_needle_meta(
        head, tail, self.version, volume_id=self.id, offset=offset
    )
    return NeedleLocation(needle, offset + NEEDLE_HEAD_SIZE, data_size, hit, self._generation)


def verified(self: Volume, loc: NeedleLocation) -> bool:
    """Whether the record of `loc` passed `verify` before (remembered per record and
    compaction revision, module `integrity`): a dict lookup, fine on the event loop. False
    for a record a vacuum commit has moved since (`verify` finds it)."""
    return (
        loc.generation == self._generation
        and (loc.hit.offset, self.compact_revision) in self._verified
    )


def verify(self: Volume, loc: NeedleLocation) -> None:
    """Check the whole data of `loc` (from `read_meta`) against its stored CRC, so that a
    streamed answer can start only once its needle is known sound, and remember that it
    passed (`verified`). A mismatch raises CorruptNeedle and lists the needle in
    `corrupt_needles`. Memory stays bounded: one reused buffer of at most `_VERIFY_CHUNK`
    bytes, whatever the needle's size. Blocks: run it off the event loop. Checked again
    from the start where a vacuum commit moved the needle meanwhile."""
    buf = memoryview(bytearray(min(_VERIFY_CHUNK, loc.data_size)))
    while True:
        loc = self.relocate(loc)
        generation = loc.generation
        crc = 0
        pos, stop = loc.data_offset, loc.data_offset + loc.data_size
        if self.data.remote:  # a ranged GET per chunk (4 MiB), each buffer new
            while pos < stop:
                piece = self._pread(min(self.data.chunk_size, stop - pos), pos)
                if not piece:
                    break
                crc = crc32c(piece, crc)
                pos += len(piece)
        while pos < stop:
            got = os.preadv(self._dat, [buf[: stop - pos]], pos)
            if got <= 0:
                break
            crc = crc32c(buf[:got], crc)
            pos += got
        if self._swapped_since(generation):
            continue
        stored = loc.needle.checksum
        if pos < stop:
            raise _corrupt_data(self, loc, "data truncated")
        if loc.data_size and not checksum_matches(stored, crc):
            raise _corrupt_data(self, loc, f"crc mismatch: stored {stored:08x}, data {crc:08x}")
        self._verified.add((loc.hit.offset, self.compact_revision))
        return


def iter_data(
    self: Volume, loc: NeedleLocation, chunk_size: int = READ_CHUNK, *, verify: bool = True
) -> Iterator[bytes]:
    """The data of `loc` in chunks. With `verify` (a whole needle), the last chunk is held
    back until the CRC matches and CorruptNeedle is raised instead of it: a reader never
    receives every byte of a corrupt needle. The volume server calls `verify` first, so
    this only catches bytes that rotted since; the needle is then no longer remembered as
    verified. A range cannot be checked on its own: pass `verify=False`. A vacuum commit
    between two chunks moves the reading to where the needle lies now (`Volume.relocate`;
    `NeedleNotFound` if it was deleted and vacuumed away meanwhile), and a chunk read while
    the files were swapped is read again there."""
    crc = 0
    held = b""
    chunk_size = max(chunk_size, self.data.chunk_size) if self.data.remote else chunk_size
    loc = self.relocate(loc)
    pos, stop = loc.data_offset, loc.data_offset + loc.data_size
    while pos < stop:
        if self._swapped_since(loc.generation):
            moved = self.relocate(loc)
            pos += moved.data_offset - loc.data_offset
            stop += moved.data_offset - loc.data_offset
            loc = moved
        chunk = self._pread(min(chunk_size, stop - pos), pos)
        if self._swapped_since(loc.generation):
            continue
        if not chunk:
            raise _corrupt_data(self, loc, "data truncated", at=pos)
        crc = crc32c(chunk, crc)
        pos += len(chunk)
        if pos < stop or not verify:
            yield chunk
        else:
            held = chunk
    stored = loc.needle.checksum
    if verify and loc.data_size and not checksum_matches(stored, crc):
        raise _corrupt_data(self, loc, f"crc mismatch: stored {stored:08x}, data {crc:08x}")
    if held:
        yield held


def _corrupt_data(
    self: Volume, loc: NeedleLocation, reason: str, at: int | None = None
) -> CorruptNeedle:
    """The error for the data of `loc` failing its check (at byte `at`, if not the record's
    start), noted as corrupt and no longer remembered as verified."""
    offset, size = loc.hit
    key = loc.needle.key
    self._verified.discard((offset, self.compact_revision))
    self._corrupt.note(CorruptRecord(key, offset, size, reason))
    return CorruptNeedle(reason, volume_id=self.id, offset=at or offset, key=f"{key:x}")


def corrupt_needles(self: Volume) -> list[CorruptRecord]:
    """The live needles found corrupt (on open, or by a read) that no overwrite or delete
    has replaced since: reads answer them as corrupt."""
    return [r for r in self._corrupt.records() if self._map.get(r.key) == (r.offset, r.size)]


def iter_needles(self: Volume) -> Iterator[tuple[int, Needle | CorruptNeedle]]:
    """Every live needle in key order, as (offset, needle), or (offset, the error) for a
    record that fails its checks. For offline tools (export): no cookie is asked."""
    keys, offsets, sizes = self._map.live_arrays()
    for key, offset, size in zip(keys.tolist(), offsets.tolist(), sizes.tolist(), strict=True):
        record = self._pread(NEEDLE_HEADER_SIZE + size + self._tail, offset)
        try:
            needle = decode_needle(record, self.version, volume_id=self.id, offset=offset)
            if needle.key != key:
                raise CorruptNeedle(
                    "record holds another key", volume_id=self.id, offset=offset, key=f"{key:x}"
                )
            yield offset, needle
        except CorruptNeedle as exc:
            yield offset, exc
