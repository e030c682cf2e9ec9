"""Writes of a volume: appends, deletes, index batching, truncate-back, and durability.

Writes append one record at the current end of `.dat` (always 8-aligned) with one pwrite; if
it fails `.dat` is cut back to where it was (`_truncate_back`), so a failed write leaves
nothing behind. Its `.idx` entry goes to an in-memory batch that one pwrite appends to `.idx`
(see `_flush_idx` for when), except with `-fsync=always`, where every write pwrites and
fsyncs both files. The needle map is updated at once, and reads never look at `.idx`. One
write at a time: each holds the volume's lock.

In group-commit mode an acknowledgement waits for an fsync of `.dat` only; `.idx` is fsynced
lazily (within a second of a request, and on close), off the acknowledgement path.

The functions here are methods of `Volume` (volume.py binds them, hence their `self`); the
ones only this module calls stay module functions.
"""

from __future__ import annotations

import enum
import errno
import itertools
import logging
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final

from seaweed_py.errors import (
    BadRequest,
    CookieMismatch,
    CorruptNeedle,
    CorruptVolume,
    DiskFull,
    NeedleNotFound,
    StorageError,
    VolumeFull,
    VolumeNotFound,
    VolumeReadOnly,
)
from seaweed_py.formats.crc import checksum_matches, crc32c
from seaweed_py.formats.idx import IDX4, encode_entry
from seaweed_py.formats.needle import (
    FLAG_HAS_TTL,
    NEEDLE_HEADER,
    NEEDLE_HEADER_SIZE,
    Needle,
    decode_needle,
    encode_needle,
    encode_needle_head,
    encode_needle_tail,
    encode_tombstone,
    record_length,
)
from seaweed_py.storage import volume_tier as _tier
from seaweed_py.storage.group_commit import SETTLED, pwrite_all, sync_file
from seaweed_py.storage.journal import MAX_ENTRY
from seaweed_py.storage.needle_map import IndexHit
from seaweed_py.storage.stamps import next_stamp
from seaweed_py.storage.volume_read import READ_CHUNK, NeedleLocation

if TYPE_CHECKING:
    from seaweed_py.storage.volume import Volume

__all__ = ["DISK_FULL", "DeleteResult", "FsyncMode", "WriteResult"]

log = logging.getLogger(__name__)

DISK_FULL: Final = "disk full"
"""`Volume.read_only_reason` after ENOSPC: writes answer 507, and it clears by itself."""
_IDX4_MAX_DAT: Final = IDX4.max_dat_size
# One page of .idx entries per pwrite (256 IDX4 / 240 IDX5 entries): the syscall is then a
# negligible share of a write, while a crash leaves recovery at most that many records to
# rescan from .dat; a larger batch saves nothing measurable.
IDX_BATCH_BYTES: Final = 4096
# How old the oldest batched entry may get before the next append flushes the batch: a slow
# trickle of writes reaches .idx about as soon as the lazy .idx fsync (LAZY_SYNC_INTERVAL, 1 s)
# could cover it, instead of waiting for a full page; and with large records, what a crash
# leaves recovery to rescan (and CRC) stays about a quarter second of writing, not 256 records.
_IDX_BATCH_AGE_NS: Final = 250_000_000


class FsyncMode(enum.Enum):
    """When a write counts as durable (its `durable` future resolves)."""

    NONE = "none"  # in the page cache: survives a process crash, not a power loss
    GROUP = "group"  # after a shared fsync by the group-commit thread
    ALWAYS = "always"  # after an fsync of this write, before write() returns


@dataclass(frozen=True, slots=True)
class WriteResult:
    offset: int
    size: int
    unchanged: bool
    durable: Future[None]
    stamp: int = 0
    """The time the record stands for (storage/stamps.py): what replicas are told to keep."""


@dataclass(frozen=True, slots=True)
class DeleteResult:
    size: int  # body Size of the deleted needle (what DELETE reports, quirk A5)
    durable: Future[None]
    stamp: int = 0
    """The time the delete stands for (0 on a tiered volume: no record is appended)."""


def write(self: Volume, needle: Needle, *, origin_ns: int | None = None) -> WriteResult:
    """Append `needle` (AppendAtNs set here; `origin_ns`: the time a replicated write stands
    for, its first server's stamp, storage/stamps.py). An identical re-upload appends nothing
    and returns `unchanged=True`; a different cookie for a live key raises CookieMismatch."""
    with self._lock:
        _check_writable(self)
        hit = self._map.get(needle.key)
        if hit is not None:
            old = _existing(self, needle.key, needle.cookie, hit)
            if old is not None and _same(self, old, needle):
                stamp = self._stamps.origin_of(needle.key, old.append_at_ns)
                return WriteResult(hit.offset, hit.size, True, SETTLED, stamp)
        return put_record(self, needle, origin_ns)


def put_record(self: Volume, needle: Needle, origin_ns: int | None) -> WriteResult:
    """Append `needle` as its key's live record, whatever holds the key now (the caller
    holds the lock and has decided it may)."""
    ts = _next_append_ns(self, origin_ns)
    record = encode_needle(needle, self.version, append_at_ns=ts)
    size: int = NEEDLE_HEADER.unpack_from(record)[2]
    offset = _append(self, (record,), len(record), needle.key, size)
    durable = _durable(self, offset, record)
    self._map.put(needle.key, offset, size)
    self._last_append_ns = ts
    self._newest = (offset, ts)
    self._stamps.note_put(needle.key, ts, origin_ns, needle.cookie)
    return WriteResult(offset, size, False, durable, ts if origin_ns is None else origin_ns)


def write_streamed(
    self: Volume,
    needle: Needle,
    data_size: int,
    chunks: Iterable[bytes | memoryview],
    *,
    origin_ns: int | None = None,
) -> WriteResult:
    """Append a needle whose data arrives in chunks (`needle.data` is ignored; its
    checksum is computed here). The chunks must add up to `data_size` exactly, else
    nothing is kept and BadRequest is raised. Holds the volume's write lock throughout.

    Neither the new data nor the live needle it replaces is ever held whole. An identical
    re-upload appends nothing: while the chunks equal the stored data (compared with
    preads as they arrive) nothing is written, and at the first difference the equal
    prefix is copied from the old record and the append goes on from there. `origin_ns` as
    for `write`."""
    with self._lock:
        _check_writable(self)
        hit = self._map.get(needle.key)
        old = _existing_meta(self, needle.key, needle.cookie, hit) if hit is not None else None
        chunks = iter(chunks)
        same, crc = 0, 0  # bytes equal to the old data, their CRC
        first: bytes | memoryview = b""  # the chunk that differs
        if (
            old is not None
            and data_size
            and old.data_size == data_size
            and _same_meta(
                self, old.needle, replace(needle, data=b"", checksum=old.needle.checksum)
            )
        ):
            for chunk in chunks:
                if (
                    same + len(chunk) > data_size
                    or os.pread(self._dat, len(chunk), old.data_offset + same) != chunk
                ):
                    first = chunk
                    break
                crc = crc32c(chunk, crc)
                same += len(chunk)
            else:
                if same == data_size and checksum_matches(old.needle.checksum, crc):
                    assert hit is not None
                    stamp = self._stamps.origin_of(needle.key, old.needle.append_at_ns)
                    return WriteResult(hit.offset, hit.size, True, SETTLED, stamp)
            # A difference, a wrong length (which `parts` refuses) or a bad checksum on the
            # old record (the same data is then stored anew): append.
        ts = _next_append_ns(self, origin_ns)
        head = encode_needle_head(needle, data_size, self.version)
        size: int = NEEDLE_HEADER.unpack_from(head)[2]
        total = record_length(size, self.version)

        def parts() -> Iterator[bytes | memoryview]:
            yield head
            pos = 0
            while pos < same:
                assert old is not None
                piece = os.pread(self._dat, min(READ_CHUNK, same - pos), old.data_offset + pos)
                if not piece:
                    raise CorruptVolume(
                        "record shrank while being copied",
                        volume_id=self.id,
                        offset=old.data_offset + pos,
                    )
                pos += len(piece)
                yield piece
            got, sum_ = same, crc
            for chunk in itertools.chain((first,), chunks) if first else chunks:
                got += len(chunk)
                if got > data_size:
                    raise BadRequest(
                        "upload longer than announced",
                        volume_id=self.id,
                        key=f"{needle.key:x}",
                        expected=data_size,
                    )
                sum_ = crc32c(chunk, sum_)
                yield chunk
            if got != data_size:
                raise BadRequest(
                    "upload shorter than announced",
                    volume_id=self.id,
                    key=f"{needle.key:x}",
                    expected=data_size,
                    got=got,
                )
            yield encode_needle_tail(
                needle, data_size, self.version, checksum=sum_, append_at_ns=ts
            )

        offset = _append(self, parts(), total, needle.key, size)
        durable = _durable(self, offset, None)
        self._map.put(needle.key, offset, size)
        self._last_append_ns = ts
        self._newest = (offset, ts)
        self._stamps.note_put(needle.key, ts, origin_ns, needle.cookie)
        stamp = ts if origin_ns is None else origin_ns
        return WriteResult(offset, size, False, durable, stamp)


def delete(self: Volume, key: int, cookie: int, *, origin_ns: int | None = None) -> DeleteResult:
    """Append a tombstone (carrying the deleted needle's checksum, quirk A23) and its
    index entry, and log the delete (storage/stamps.py; `origin_ns` as for `write`).
    Unknown or already deleted: NeedleNotFound; wrong cookie: CookieMismatch.

    The volume server also uses this to roll back a write whose replication failed
    (quirk A20). On a tiered volume only `.idx` gets the tombstone (volume_tier.py)."""
    if self.remote is not None:
        return _tier.delete_remote(self, key, cookie)
    with self._lock:
        if self.replaced_elsewhere():
            raise VolumeNotFound("volume was deleted", volume_id=self.id)
        if self.read_only and not self.info.read_only_can_delete:
            raise _read_only_error(self)
        if not self._writable_files:
            raise VolumeReadOnly("volume files are not writable", volume_id=self.id)
        hit = self._map.get(key)
        if hit is None:
            raise NeedleNotFound("needle not found", volume_id=self.id, key=f"{key:x}")
        head = os.pread(self._dat, NEEDLE_HEADER_SIZE, hit.offset)
        stored_cookie = NEEDLE_HEADER.unpack_from(head)[0] if len(head) == 16 else None
        if stored_cookie != cookie:
            raise CookieMismatch(
                "cookie does not match the stored needle", volume_id=self.id, key=f"{key:x}"
            )
        return tombstone(self, key, cookie, hit, origin_ns)


def tombstone(
    self: Volume, key: int, cookie: int, hit: IndexHit, origin_ns: int | None
) -> DeleteResult:
    """Append the tombstone of the live needle `key` at `hit` (the caller holds the lock and
    has checked the cookie) and log the delete."""
    offset, size = hit
    crc_bytes = os.pread(self._dat, 4, offset + NEEDLE_HEADER_SIZE + size)
    checksum = int.from_bytes(crc_bytes, "big") if len(crc_bytes) == 4 else 0
    ts = _next_append_ns(self, origin_ns)
    record = encode_tombstone(cookie, key, checksum, ts, self.version)
    durable = _durable(self, _append(self, (record,), len(record), key, -1), record)
    deleted = self._map.delete(key)
    self._last_append_ns = ts
    if self._newest is not None and self._newest[0] == offset:
        self._newest = None  # the newest live needle is another one now: found on demand
    stamp = ts if origin_ns is None else origin_ns
    self._stamps.note_delete(key, ts, stamp, cookie)
    return DeleteResult(size if deleted is None else deleted, durable, stamp)


def _existing(self: Volume, key: int, cookie: int, hit: IndexHit) -> Needle | None:
    """The live needle `key` for an overwrite: CookieMismatch if `cookie` differs; None
    when its record does not decode (it is then simply replaced)."""
    offset = hit.offset
    record = self.record_at(hit)
    if len(record) >= NEEDLE_HEADER_SIZE and NEEDLE_HEADER.unpack_from(record)[0] != cookie:
        raise CookieMismatch(
            "cookie does not match the stored needle", volume_id=self.id, key=f"{key:x}"
        )
    try:
        return decode_needle(record, self.version, volume_id=self.id, offset=offset)
    except CorruptNeedle as exc:
        log.error("overwriting a corrupt needle: %s", exc)
        return None


def _existing_meta(self: Volume, key: int, cookie: int, hit: IndexHit) -> NeedleLocation | None:
    """`_existing` without the data: its metadata and where the data lies."""
    try:
        return self._meta_at(key, cookie, hit, CookieMismatch)
    except CorruptNeedle as exc:
        log.error("overwriting a corrupt needle: %s", exc)
        return None


def _same(self: Volume, old: Needle, new: Needle) -> bool:
    """An identical re-upload: same data and metadata (last-modified aside: a retry's
    clock differs). Never on TTL volumes or TTL needles, whose clock a re-upload
    restarts, as in the reference."""
    return _same_meta(self, old, new) and old.data == new.data


def _same_meta(self: Volume, old: Needle, new: Needle) -> bool:
    """`_same` short of comparing the data bytes: checksum, flags, name, mime, pairs."""
    if self.ttl or new.flags & FLAG_HAS_TTL:
        return False
    return (
        old.checksum == new.checksum
        and old.flags == new.flags
        and old.name == new.name
        and old.mime == new.mime
        and old.pairs == new.pairs
    )


def check_writable(self: Volume) -> None:
    """Raise what a write would raise now for a closed or read-only volume (without the
    lock: a caller's early refusal, before it reads a body; the write checks again)."""
    _check_writable(self)


def _check_writable(self: Volume) -> None:
    if self._closed:
        raise VolumeReadOnly("volume is closed", volume_id=self.id)
    if self.replaced_elsewhere():
        raise VolumeNotFound("volume was deleted", volume_id=self.id)
    if self.read_only:
        raise _read_only_error(self)


def _read_only_error(self: Volume) -> StorageError:
    """Why a write is refused: `DiskFull` (507) while the volume is read-only only
    because its disk filled, which passes by itself; `VolumeReadOnly` otherwise."""
    if self.read_only_reason == DISK_FULL and not self.info.read_only and self._writable_files:
        return DiskFull(f"volume is read-only: {DISK_FULL}", volume_id=self.id)
    return VolumeReadOnly("volume is read-only", volume_id=self.id)


def _next_append_ns(self: Volume, origin_ns: int | None = None) -> int:
    return next_stamp(origin_ns, self._last_append_ns, self._clock_ns())


def _append(
    self: Volume, parts: Iterable[bytes | memoryview], total: int, key: int, size: int
) -> int:
    """Write one record (given as parts adding up to `total` bytes) at the end of `.dat`
    and batch its `.idx` entry (`-fsync=always`: write and sync both); on any failure cut
    both files back and re-raise."""
    offset = self._end
    end = offset + total
    # `size_limit` spelled out: every layout addresses at least IDX4's reach.
    if end > self._size_limit or (end > _IDX4_MAX_DAT and end > self.layout.max_dat_size):
        raise VolumeFull(
            f"volume would exceed its size limit of {self.size_limit} bytes",
            volume_id=self.id,
            size=offset,
            needed=total,
        )
    idx_at = self._idx_end
    try:
        pos = offset
        for part in parts:
            if part:
                pwrite_all(self._dat, part, pos)
                pos += len(part)
        if pos != offset + total:
            raise CorruptVolume(
                f"record of {pos - offset} bytes, expected {total}",
                volume_id=self.id,
                offset=offset,
            )
        entry = encode_entry(key, offset, size, self.layout)
        if self.fsync_mode is FsyncMode.ALWAYS:
            pwrite_all(self._idx, entry, idx_at)
            sync_file(self._dat)
            sync_file(self._idx)
    except OSError as exc:
        _truncate_back(self, offset, idx_at)
        if exc.errno != errno.ENOSPC:
            raise
        # Stop taking writes until the disk has room again (the store checks every pulse,
        # or an operator marks the volume writable); the heartbeat reports it read-only,
        # so the master stops assigning to it.
        self.read_only_reason = DISK_FULL
        raise DiskFull(
            "no space left for the append; volume is now read-only",
            volume_id=self.id,
            offset=offset,
            needed=total,
        ) from exc
    except BaseException:
        _truncate_back(self, offset, idx_at)
        raise
    self._end = offset + total
    self._idx_end = idx_at + len(entry)
    now = self._clock_ns()
    self.modified_at_second = now // 1_000_000_000
    if self.fsync_mode is not FsyncMode.ALWAYS:
        batch = self._idx_batch
        if not batch:
            self._idx_batch_since = now
        batch += entry
        age = now - self._idx_batch_since
        # (A clock stepped back counts as aged: the age bound must hold whatever the clock.)
        if len(batch) >= self._idx_batch_full or not 0 <= age < _IDX_BATCH_AGE_NS:
            self._flush_idx()
    return offset


def _flush_idx(self: Volume) -> None:
    """Append the batched `.idx` entries with one pwrite (caller holds the lock, or owns
    the volume alone). Called when the batch fills a page or has aged on an append, and
    before anything that reads, seals, cuts, syncs or closes `.idx`.

    A failure is logged and loses nothing: every batched entry's record is already in
    `.dat` (and the needle map serves it), and `.idx` is only where the next open starts
    from; recovery indexes every whole record after the last indexed one. So the batch is
    kept and the next flush writes it again, whole, from the same offset: a short or failed
    write leaves a prefix of those same bytes there, which that flush overwrites
    identically and completes. If no flush succeeds before a crash, the file ends with
    good entries and at most a partial one, which recovery cuts. `_truncate_back` cuts the
    file to the flushed length, so bytes of a failed flush can never outlive a batch that
    shrank. The volume turns read-only, like a failed append, so a broken or full disk
    stops taking writes (and the batch stops growing) until an operator marks it writable,
    which the next append's flush then retries."""
    batch = self._idx_batch
    if not batch:
        return
    try:
        pwrite_all(self._idx, bytes(batch), self._idx_end - len(batch))
    except OSError as exc:
        log.error(
            "volume %d: could not write %d .idx entries at %d (rebuilt from .dat "
            "on the next open): %s",
            self.id,
            len(batch) // self.layout.entry_size,
            self._idx_end - len(batch),
            exc,
        )
        if not self._closed:
            self.read_only_reason = (
                DISK_FULL
                if exc.errno == errno.ENOSPC
                else f"index write failed: {exc.strerror or exc}"
            )
        return
    batch.clear()


def _truncate_back(self: Volume, dat_end: int, idx_end: int) -> None:
    """Take back the appends after `dat_end`/`idx_end`: cut `.dat`, drop their batched
    entries, and cut `.idx` to what remains of it on disk."""
    on_disk = self._idx_end - len(self._idx_batch)
    if idx_end >= on_disk:
        del self._idx_batch[idx_end - on_disk :]
    else:  # a flush already wrote some of them
        self._idx_batch.clear()
        on_disk = idx_end
    try:
        os.ftruncate(self._dat, dat_end)
        os.ftruncate(self._idx, on_disk)
        # Made durable at once: a power loss must not bring back the cut entry, whose
        # slot the next append reuses, in a lazily synced .idx (see _recover).
        sync_file(self._dat)
        sync_file(self._idx)
    except OSError as exc:  # the next open repairs what is left
        log.error("volume %d: could not cut back a failed write: %s", self.id, exc)
    self._end = dat_end
    self._idx_end = idx_end


def _durable(self: Volume, offset: int, record: bytes | None) -> Future[None]:
    """The future of the record just appended at `offset` (caller holds the lock).

    With a journal (storage/journal.py) a record is journaled, or, too large for it or
    given only as streamed parts (`record` None), synced to `.dat` before the lock is
    released: no later record of the volume can be acknowledged before it."""
    journal = self._journal
    if journal is not None:
        if record is not None and len(record) <= MAX_ENTRY:
            try:
                return journal.append(self.id, self.superblock.compaction_revision, offset, record)
            except OSError:
                _truncate_back(self, offset, self._idx_end - self.layout.entry_size)
                raise
        try:
            sync_file(self._dat)
        except OSError as exc:  # as a failed round: the write is reported failed
            failed: Future[None] = Future()
            failed.set_exception(exc)
            return failed
        return SETTLED
    stamps = self._stamps
    if self._committer is not None and self.fsync_mode is FsyncMode.GROUP:
        # The .idx is synced lazily: recovery rebuilds its lost tail from the .dat. So is the
        # stamp log (storage/stamps.py says what its lost tail costs).
        lazy = (self._idx, stamps.fd) if stamps.dirty else (self._idx,)
        stamps.dirty = False
        return self._committer.request((self._dat,), lazy=lazy)
    if stamps.dirty and self.fsync_mode is FsyncMode.ALWAYS:
        stamps.sync()
    return SETTLED
