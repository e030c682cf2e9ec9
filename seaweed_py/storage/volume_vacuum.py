"""Vacuum of a volume (spec §9.3): compact, commit, clean up; and TTL expiry of volumes (§9.5).

**Compact** copies every live needle into `<base>.cpd` (a superblock with the compaction
revision + 1, then the records) and its index entries into `<base>.cpx`, while reads and
writes go on against `.dat`/`.idx`. Needles are copied in `.dat` order, byte for byte: each
keeps its AppendAtNs (never restamped: a needle's TTL runs from it, compat row A14), so the
compacted file, like every file weedpy writes, holds its records in AppendAtNs order, which
the recovery rule of `scan.py` relies on (the reference copies in key order; docs/compat.md).
Dropped: needles whose own TTL has passed (§9.6, counted from their AppendAtNs) and records
that fail their checks (CRC, header). `-compactionMBps` throttles the copy
(`bytes_per_second`); it is refused up front when the disk cannot hold it.

**Commit** appends to `.cpd`/`.cpx` what `.idx` gained since the copy began (writes copied,
deletes of copied keys copied as their tombstones: again byte for byte, in file order), most of
it while writes go on; then, under the volume's lock (writes and deletes wait, reads go on), the
last entries, an fsync of both files, the marker `<base>.cpc`, the renames `.cpd` → `.dat` and
`.cpx` → `.idx` and the reopen of the files; once the lock is released, a sync of the directory
and the marker's removal.
**Cleanup** deletes an uncommitted `.cpd`/`.cpx`.

Crash safety, step by step (a SIGKILL anywhere, then an open: `finish_interrupted`, which
`volume_loading` runs first):

| crash during / after | on disk | the open |
|---|---|---|
| compact, or commit before the marker | `.dat`/`.idx` intact, maybe `.cpd`/`.cpx` | deletes `.cpd`/`.cpx` (roll back) |
| marker written | `.cpc`, `.cpd`, `.cpx`, old `.dat`/`.idx` | renames both (roll forward) |
| first rename | `.cpc`, `.cpx`, new `.dat`, old `.idx` | renames `.cpx` |
| second rename (the reopen, writes after it) | `.cpc`, new `.dat`/`.idx` (either name, until the directory is synced) | renames what is left, removes the marker |

The marker is written only once `.cpd`/`.cpx` are complete and synced, so rolling forward
never installs a partial copy; without it the old files are whole, since a compaction never
writes them. Every write acknowledged before the commit took the lock is in the replayed
`.idx` tail (appends are serialised, and the batch is flushed first), so it is in the copy;
and a write after the reopen lands in the new files, which the marker, durable before any
rename, makes the volume's whatever a crash leaves of the renames.

Reads take no lock, so a commit swaps the files under the lock and keeps the old descriptors
open until the next commit: a read that found its needle in the old index and reads the new
file at the old offset fails its checks, takes the lock (so the swap is done), and reads
again (`volume_read`); a streamed read carries the generation it started in
(`NeedleLocation.generation`) and `relocate`s when a commit passed. The compacted files open
and serve in `weed` 4.48 and the reverse (`tests/parity/test_vacuum_files.py`).

**The journal** (storage/journal.py) holds records addressed to a `.dat` by offset. Those
the old `.dat` received since the last checkpoint are in the copy (the commit replays the
`.idx` tail and syncs `.cpd` before its marker), and each entry carries the compaction
revision of the `.dat` it was appended to: a replay after a crash skips the old file's
entries once the new one (revision + 1) is in place, whatever the renames left
(tests/fault/test_storage_journal.py cuts the power after a commit).

**Several workers** (`-workers=N`, storage/shared.py): the master's compact, commit and
cleanup may each reach another worker, so the compaction's stage (copying, copied,
committing), the pid of the worker at it and what a commit needs (revision, `.idx` start,
size before, copy ends; the copied keys are `.cpx`'s) live in the volume's slot of the
share, under the volume's cross-process lock. A commit bumps the slot's files count; every
other worker, at its next lookup or when it next takes the lock, retires its descriptors and
map as a commit does and attaches the new files (`follow_commit`); appends another worker
made during the copy are in `.idx`, which the commit replays. A copy whose worker died blocks
nothing; a worker that died committing (the lock is let go by the kernel) is rolled forward
or back by the next lock holder exactly as an open would (`recover_commit`). Only the leader
removes expired TTL volumes; the others let go of them as of any deleted volume.

A TTL volume **expires** once its newest live needle is older than the volume's TTL (its
.dat holding more than the superblock; a delete never extends its life, a restart keeps it); the volume server then leaves it out of heartbeats and
deletes it `min(TTL/10, 10 min)` later (`expired`, `expired_long_enough`).
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt

from seaweed_py.errors import (
    Conflict,
    CorruptNeedle,
    DiskFull,
    NeedleNotFound,
    StorageError,
    VolumeReadOnly,
)
from seaweed_py.formats.crc import crc32c
from seaweed_py.formats.idx import IdxLayout, decode_entries, encode_entries
from seaweed_py.formats.needle import (
    FLAG_HAS_TTL,
    NEEDLE_HEADER,
    NEEDLE_HEADER_SIZE,
    decode_needle,
    record_length,
)
from seaweed_py.formats.superblock import SUPERBLOCK_SIZE
from seaweed_py.storage import volume_loading as _loading
from seaweed_py.storage.group_commit import pwrite_all, sync_file
from seaweed_py.storage.integrity import VerifiedMemo
from seaweed_py.storage.needle_map import TailingMap
from seaweed_py.storage.shared import (
    CP_CPD_END,
    CP_CPX_END,
    CP_IDX_START,
    CP_REVISION,
    CP_SIZE_BEFORE,
    DAT_END,
    FILES,
    IDX_END,
    LAST_NS,
    STAGE,
    STAGE_PID,
)
from seaweed_py.storage.volume_tier import TIERING

if TYPE_CHECKING:
    from seaweed_py.storage.volume import Volume
    from seaweed_py.storage.volume_read import NeedleLocation

__all__ = ["COMPACTION_SUFFIXES", "CommitResult", "CompactResult", "finish_interrupted"]

log = logging.getLogger(__name__)

COMPACTION_SUFFIXES: Final = (".cpd", ".cpx", ".cpc")
_WINDOW: Final = 4 << 20  # bytes of .dat read per pread while copying (or one bigger record)
_FLUSH: Final = 1 << 20  # bytes of copied records written to .cpd per pwrite (and pause)
_ENTRIES_PER_WRITE: Final = 1 << 16
_LOCKED_ENTRIES: Final = 1024  # .idx entries a commit replays under the lock at most, mostly
_CATCH_UP_PASSES: Final = 4
_MAX_TTL_GRACE: Final = 600.0


@dataclass(frozen=True, slots=True)
class CompactResult:
    """What a compaction copied into `.cpd` and what it left behind."""

    needles: int
    """Live needles copied."""
    copied_bytes: int
    """Bytes of records copied (the live data the throughput counts)."""
    expired: int
    """Needles dropped because their TTL had passed."""
    corrupt: int
    """Records dropped because they fail their checks."""
    size_before: int
    """`.dat` bytes when the compaction began."""
    compacted_size: int
    """`.cpd` bytes (before the commit replays what came in meanwhile)."""
    seconds: float


@dataclass(frozen=True, slots=True)
class CommitResult:
    """What a commit changed: `.dat` bytes before and after, records replayed."""

    size_before: int
    size_after: int
    replayed: int
    read_only: bool
    seconds: float

    @property
    def reclaimed(self) -> int:
        return max(0, self.size_before - self.size_after)


@dataclass
class Compaction:
    """A compaction between `compact` and `commit_compact`/`cleanup_compact` (the volume's
    `_compaction`)."""

    revision: int
    idx_start: int
    """Bytes of `.idx` whose entries the copy covers; the commit replays the rest."""
    size_before: int
    done: bool = False
    copied: npt.NDArray[np.uint64] = field(default_factory=lambda: np.empty(0, np.uint64))
    """The keys copied, sorted: live in `.cpd` (a replayed delete of another key is skipped:
    its tombstone would read as an empty file there)."""
    copied_cpd_end: int = 0
    copied_cpx_end: int = 0
    aborted: bool = False
    # The commit's replay: how far `.idx` is replayed, the CRC of those entries (checked under
    # the lock), where `.cpd`/`.cpx` end now, the keys it changed (live in the copy or not).
    committing: bool = False
    replayed_to: int = 0
    replayed_crc: int = 0
    replayed: int = 0
    cpd_end: int = 0
    cpx_end: int = 0
    live: dict[int, bool] = field(default_factory=dict)


# ------------------------------------------------------------------ compact


def compact(
    self: Volume,
    *,
    bytes_per_second: int = 0,
    preallocate: int = 0,
    disk_free: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> CompactResult:
    """Copy the live needles into `.cpd`/`.cpx` (module docstring); blocks for as long as the
    copy takes (`bytes_per_second` 0: as fast as the disk goes). `disk_free`: bytes free on the
    volume's file system, if known; a copy that would not fit raises `DiskFull` before any
    file is written. A second compaction, or one of a closed volume, raises `Conflict` /
    `VolumeReadOnly`. On any failure the partial copy is removed and the volume is as it was."""
    started = monotonic()
    cpd, cpx, _ = self._checked(*COMPACTION_SUFFIXES)
    with self._lock:
        if self._closed:
            raise VolumeReadOnly("volume is closed", volume_id=self.id)
        if self._compaction is not None or _shared_stage(self) != NONE:
            raise Conflict("volume is being vacuumed already", volume_id=self.id)
        if self.read_only_reason == TIERING:
            # The upload sends the .dat as it is now: a commit meanwhile would pair that
            # object with the compacted .idx, whose offsets it does not hold.
            raise Conflict("volume is being tiered: compact it once it is up", volume_id=self.id)
        if self.data.remote:
            # Its .dat is an object in a bucket (volume_tier.py): the master's pass downloads,
            # compacts and re-uploads it across its holders (client/tier_vacuum.py).
            raise Conflict(
                "a tiered volume is not compacted where it lies: "
                "/vol/vacuum?volumeId= downloads, compacts and re-uploads it",
                volume_id=self.id,
            )
        self._flush_idx()
        if self._idx_batch:
            raise StorageError(
                "cannot compact: .idx entries could not be written", volume_id=self.id
            )
        keys, offsets, sizes = self._map.live_arrays()
        state = Compaction(self.compact_revision, self._idx_end, self._end)
        self._compaction = state
        _set_stage(self, COPYING)
        source = os.dup(self._dat)  # a close of the volume meanwhile cannot pull it away
    try:
        order = np.argsort(offsets, kind="stable")
        keys, offsets, sizes = keys[order], offsets[order], sizes[order]
        lengths = _record_lengths(sizes, self._tail)
        needed = SUPERBLOCK_SIZE + int(lengths.sum()) + len(keys) * self.layout.entry_size
        if disk_free is not None and needed > disk_free:
            raise DiskFull(
                f"not enough free space to vacuum: the copy needs {needed} bytes, "
                f"{disk_free} are free",
                volume_id=self.id,
            )
        copier = _Copier(self, state, source, bytes_per_second, sleep, monotonic)
        result = copier.run(cpd, cpx, keys, offsets, sizes, lengths, preallocate)
    except BaseException as exc:
        with self._lock:
            if self._compaction is state:
                self._compaction = None
            if _owns_stage(self, COPYING):
                _set_stage(self, NONE)
        _unlink(cpd, cpx)
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            raise DiskFull("no space left for the vacuum's copy", volume_id=self.id) from exc
        raise
    finally:
        os.close(source)
    return replace(result, seconds=monotonic() - started)


def _record_lengths(sizes: npt.NDArray[np.int32], tail: int) -> npt.NDArray[np.int64]:
    """`record_length` of each body Size (records are padded to 8, never by 0 bytes: A1)."""
    unpadded = NEEDLE_HEADER_SIZE + np.maximum(sizes.astype(np.int64), 0) + tail
    lengths: npt.NDArray[np.int64] = unpadded + 8 - unpadded % 8
    return lengths


class _Copier:
    """One compaction's copy: reads `.dat` in windows, checks each record, writes the kept
    ones to `.cpd` in large pieces and their entries to `.cpx`."""

    def __init__(
        self,
        volume: Volume,
        state: Compaction,
        source: int,
        bytes_per_second: int,
        sleep: Callable[[float], None],
        monotonic: Callable[[], float],
    ) -> None:
        self.v = volume
        self.state = state
        self.source = source
        self.rate = bytes_per_second
        self.sleep = sleep
        self.monotonic = monotonic
        self.now_s = volume._clock_ns() / 1e9
        self.expired = 0
        self.corrupt = 0

    def run(
        self,
        cpd_path: Path,
        cpx_path: Path,
        keys: npt.NDArray[np.uint64],
        offsets: npt.NDArray[np.uint64],
        sizes: npt.NDArray[np.int32],
        lengths: npt.NDArray[np.int64],
        preallocate: int,
    ) -> CompactResult:
        v = self.v
        flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
        cpd = os.open(cpd_path, flags, 0o644)
        try:
            cpx = os.open(cpx_path, flags, 0o644)
            try:
                if preallocate > 0:
                    _loading._reserve(cpd, preallocate, cpd_path)
                head = replace(
                    v.superblock, compaction_revision=(v.compact_revision + 1) & 0xFFFF
                ).encode()
                pwrite_all(cpd, head, 0)
                kept = self._copy(cpd, keys, offsets, sizes, lengths, len(head))
                new_offsets, kept_index = kept
                kept_keys = keys[kept_index]
                entries_end = _write_entries(
                    cpx, kept_keys, new_offsets, sizes[kept_index], v.layout, 0
                )
                sync_file(cpd)
                sync_file(cpx)
                end = os.fstat(cpd).st_size
            finally:
                os.close(cpx)
        finally:
            os.close(cpd)
        with v._lock:
            state = self.state
            if self._stopped():
                raise VolumeReadOnly("the vacuum was cleaned up meanwhile", volume_id=v.id)
            state.cpd_end = state.copied_cpd_end = end
            state.cpx_end = state.copied_cpx_end = entries_end
            state.replayed_to = state.idx_start
            state.copied = np.sort(kept_keys)
            state.done = True
            _publish_copy(v, state)
        copied = int(lengths[kept_index].sum())
        log.info(
            "volume %d compacted: %d needles (%d bytes) copied, %d expired and %d corrupt "
            "dropped, %d -> %d bytes",
            v.id,
            len(kept_keys),
            copied,
            self.expired,
            self.corrupt,
            self.state.size_before,
            end,
        )
        return CompactResult(
            needles=len(kept_keys),
            copied_bytes=copied,
            expired=self.expired,
            corrupt=self.corrupt,
            size_before=self.state.size_before,
            compacted_size=end,
            seconds=0.0,
        )

    def _copy(
        self,
        cpd: int,
        keys: npt.NDArray[np.uint64],
        offsets: npt.NDArray[np.uint64],
        sizes: npt.NDArray[np.int32],
        lengths: npt.NDArray[np.int64],
        at: int,
    ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.intp]]:
        """Copy the records (in offset order) to `cpd` from `at` on: their new offsets and
        the indices of the ones kept."""
        n = len(keys)
        new_offsets = np.empty(n, np.uint64)
        kept = np.empty(n, np.intp)
        count = 0
        out = bytearray()
        out_at = at
        started = self.monotonic()
        written = 0
        offs, lens, ks, szs = offsets.tolist(), lengths.tolist(), keys.tolist(), sizes.tolist()
        i = 0
        while i < n:
            if self._stopped():
                raise VolumeReadOnly("volume closed during its vacuum", volume_id=self.v.id)
            window_start = offs[i]
            j = i + 1
            while j < n and offs[j] + lens[j] - window_start <= _WINDOW:
                j += 1
            window_end = offs[j - 1] + lens[j - 1]
            buf = os.pread(self.source, window_end - window_start, window_start)
            for r in range(i, j):
                start = offs[r] - window_start
                record = buf[start : start + lens[r]]
                if not self._keep(record, ks[r], szs[r], offs[r], lens[r]):
                    continue
                new_offsets[count] = out_at + len(out)
                kept[count] = r
                count += 1
                out += record
                if len(out) >= _FLUSH:
                    pwrite_all(cpd, out, out_at)
                    out_at += len(out)
                    written += len(out)
                    out.clear()
                    self._throttle(started, written)
            i = j
        if out:
            pwrite_all(cpd, out, out_at)
            written += len(out)
            self._throttle(started, written)
        return new_offsets[:count], kept[:count]

    def _stopped(self) -> bool:
        """Whether this copy was asked to stop: its volume closed, or cleaned up by this
        worker or (with several workers) another one."""
        return self.state.aborted or (
            self.v._share is not None and not _owns_stage(self.v, COPYING)
        )

    def _keep(self, record: bytes, key: int, size: int, offset: int, length: int) -> bool:
        """Whether the record of live needle `key` is copied: it is whole, its header is the
        index's, it decodes and matches its CRC, and its own TTL has not passed."""
        v = self.v
        reason = ""
        if len(record) < length:
            reason = "record truncated"
        else:
            stored_key, stored_size = NEEDLE_HEADER.unpack_from(record)[1:]
            if stored_key != key or stored_size != size:
                reason = "record header does not match the index"
            elif size:
                try:
                    needle = decode_needle(record, v.version, volume_id=v.id, offset=offset)
                except CorruptNeedle as exc:
                    reason = exc.message
                else:
                    ttl = needle.ttl.seconds if needle.flags & FLAG_HAS_TTL else 0
                    # No AppendAtNs (version 2): the age is unknown, the needle is kept (A14).
                    if (
                        ttl
                        and needle.append_at_ns
                        and self.now_s >= needle.append_at_ns / 1e9 + ttl
                    ):
                        self.expired += 1
                        return False
        if reason:
            self.corrupt += 1
            log.error(
                "volume %d: vacuum drops corrupt needle %x at offset %d: %s",
                v.id,
                key,
                offset,
                reason,
            )
            return False
        return True

    def _throttle(self, started: float, written: int) -> None:
        if not self.rate:
            return
        ahead = written / self.rate - (self.monotonic() - started)
        if ahead > 0:
            self.sleep(ahead)


def _write_entries(
    fd: int,
    keys: npt.NDArray[np.uint64],
    offsets: npt.NDArray[np.uint64],
    sizes: npt.NDArray[np.int32],
    layout: IdxLayout,
    at: int,
) -> int:
    """Write index entries to `fd` from byte `at`, a block at a time; the end offset."""
    for start in range(0, len(keys), _ENTRIES_PER_WRITE):
        stop = start + _ENTRIES_PER_WRITE
        block = encode_entries(keys[start:stop], offsets[start:stop], sizes[start:stop], layout)
        pwrite_all(fd, block, at)
        at += len(block)
    return at


# ------------------------------------------------------------------ commit


def commit_compact(self: Volume) -> CommitResult:
    """Install the finished compaction (module docstring): replay, sync, marker, renames,
    reopen. Most of the replay runs before the lock is taken (`_catch_up`), so writes and
    deletes wait only for its last few entries, the syncs, the renames and the reopen.
    Without a finished compaction, or if the volume's revision changed, `Conflict`. A failure
    before the marker drops the compaction (the volume is as it was); one after it turns the
    volume read-only (its files are then between the two states, which the next open
    completes)."""
    started = time.monotonic()
    cpd, cpx, cpc = self._checked(*COMPACTION_SUFFIXES)
    dat, idx = self.path(".dat"), self.path(".idx")
    with self._lock:
        state = _committable(self, cpd, cpx)
        state.committing = True
        _set_stage(self, COMMITTING)
    try:
        _catch_up(self, state, cpd, cpx)
        with self._lock:
            _still_committable(self, state)
            size_before = self._end
            if not _replayed_intact(self, state):
                _restart_replay(state, cpd, cpx)
            # (No wait here for a group-commit round, as close() does: a small write on the
            # event loop may be waiting for this lock, and the loop is what runs the journal's
            # rounds. What the journal holds of the old files is in the copy, synced below;
            # its entries carry the old compaction revision, so a replay after a crash never
            # writes them into the new `.dat`. A volume outside a store syncs through its own
            # committer, which finds the old descriptors open until the next commit.)
            _replay(self, state, cpd, cpx, self._idx_end)
            write_marker(cpc, state.revision)
            try:
                rename(cpd, dat)
                rename(cpx, idx)
                _reopen(self)
                _published_commit(self)
            except BaseException as exc:
                self.read_only_reason = f"vacuum commit failed: {exc}"
                log.error("volume %d: vacuum commit failed after its marker: %s", self.id, exc)
                raise
            finally:
                self._compaction = None
                _set_stage(self, NONE)
            size_after, read_only = self._end, self.read_only
        # With the lock released: the renames made durable, then the marker removed. Until
        # then the marker is, so a crash rolls forward, and the writes that reached the new
        # files meanwhile are in them whichever of their names the disk kept.
        _loading.sync_dir(self.directory)
        remove_marker(cpc)
    except BaseException:
        with self._lock:
            if self._compaction is state:  # failed before the marker: as if never compacted
                self._compaction = None
                if _owns_stage(self, COMMITTING):
                    _set_stage(self, NONE)
                _unlink(cpd, cpx, cpc)
        raise
    log.info(
        "volume %d vacuumed: %d -> %d bytes, %d records replayed",
        self.id,
        size_before,
        size_after,
        state.replayed,
    )
    return CommitResult(
        size_before=size_before,
        size_after=size_after,
        replayed=state.replayed,
        read_only=read_only,
        seconds=time.monotonic() - started,
    )


def _committable(self: Volume, cpd: Path, cpx: Path) -> Compaction:
    """The finished compaction a commit may install (caller holds the lock)."""
    state = _shared_compaction(self, cpx) if self._share is not None else self._compaction
    if state is None or not state.done or state.committing:
        raise Conflict(
            "no finished compaction to commit"
            if state is None
            else "the compaction is still copying"
            if not state.done
            else "the compaction is being committed",
            volume_id=self.id,
        )
    if self._closed or not self._writable_files:
        raise VolumeReadOnly("volume files are not writable", volume_id=self.id)
    if self.compact_revision != state.revision:
        self._compaction = None
        _unlink(cpd, cpx)
        raise Conflict("the volume was compacted meanwhile", volume_id=self.id)
    return state


def _still_committable(self: Volume, state: Compaction) -> None:
    """Between the steps of a commit (caller holds the lock): the volume was not closed
    meanwhile, and every `.idx` entry is on disk."""
    if self._closed or self._compaction is not state:
        raise VolumeReadOnly("volume closed during its vacuum", volume_id=self.id)
    self._flush_idx()
    if self._idx_batch:
        raise StorageError("cannot commit: .idx entries could not be written", volume_id=self.id)


def _catch_up(self: Volume, state: Compaction, cpd: Path, cpx: Path) -> None:
    """Replay what came in since the copy while writes go on, until what is left fits the
    lock's share (`_LOCKED_ENTRIES`); a few passes at most, so a steady stream of writes
    cannot hold the commit off."""
    for _ in range(_CATCH_UP_PASSES):
        with self._lock:
            _still_committable(self, state)
            end = self._idx_end
        if end - state.replayed_to <= _LOCKED_ENTRIES * self.layout.entry_size:
            return
        _replay(self, state, cpd, cpx, end)


def _replayed_intact(self: Volume, state: Compaction) -> bool:
    """Whether the `.idx` entries replayed without the lock are still there as they were
    (caller holds the lock): a write whose `-fsync=always` sync failed is cut back out of the
    `.idx`, and its record must not reach the copy."""
    length = state.replayed_to - state.idx_start
    return length == 0 or crc32c(os.pread(self._idx, length, state.idx_start)) == state.replayed_crc


def _restart_replay(state: Compaction, cpd: Path, cpx: Path) -> None:
    """Forget what was replayed: the copies end where the compaction left them."""
    os.truncate(cpd, state.copied_cpd_end)
    os.truncate(cpx, state.copied_cpx_end)
    state.cpd_end, state.cpx_end = state.copied_cpd_end, state.copied_cpx_end
    state.replayed_to, state.replayed_crc, state.replayed = state.idx_start, 0, 0
    state.live.clear()


def _replay(self: Volume, state: Compaction, cpd_path: Path, cpx_path: Path, end: int) -> None:
    """Append to `.cpd`/`.cpx` what `.idx` holds from `state.replayed_to` to `end` (all on
    disk): each write's record, and each delete's tombstone when the key is live in the copy
    (both byte for byte, in file order); then sync both. Needs no lock: records and flushed
    entries do not change (`_replayed_intact` checks the one exception)."""
    length = end - state.replayed_to
    if length <= 0:
        return
    tail = os.pread(self._idx, length, state.replayed_to)
    if len(tail) != length:
        raise StorageError("the .idx shrank during the vacuum", volume_id=self.id)
    keys, offsets, sizes = decode_entries(tail, self.layout)
    live = state.live

    def in_copy(key: int) -> bool:
        if key in live:
            return live[key]
        i = int(np.searchsorted(state.copied, np.uint64(key)))
        return i < len(state.copied) and int(state.copied[i]) == key

    out = bytearray()
    entries: list[tuple[int, int, int]] = []
    at = state.cpd_end
    for key, offset, size in zip(keys.tolist(), offsets.tolist(), sizes.tolist(), strict=True):
        if size < 0 and not in_copy(key):
            continue  # its needle was dropped (expired, corrupt) or never copied
        record_len = record_length(max(size, 0), self.version)
        record = os.pread(self._dat, record_len, offset)
        if len(record) != record_len:
            raise StorageError(
                "a record the .idx names is missing from .dat", volume_id=self.id, offset=offset
            )
        entries.append((key, at + len(out), size))
        out += record
        live[key] = size >= 0
    flags = os.O_RDWR | getattr(os, "O_CLOEXEC", 0)
    cpd = os.open(cpd_path, flags)
    try:
        cpx = os.open(cpx_path, flags)
        try:
            cpx_end = state.cpx_end
            if out:
                pwrite_all(cpd, out, at)
                k = np.array([e[0] for e in entries], np.uint64)
                o = np.array([e[1] for e in entries], np.uint64)
                s = np.array([e[2] for e in entries], np.int32)
                cpx_end = _write_entries(cpx, k, o, s, self.layout, cpx_end)
            sync_file(cpd)
            sync_file(cpx)
        finally:
            os.close(cpx)
    finally:
        os.close(cpd)
    state.cpd_end, state.cpx_end = at + len(out), cpx_end
    state.replayed_crc = crc32c(tail, state.replayed_crc)
    state.replayed_to = end
    state.replayed += len(entries)


def _reopen(self: Volume) -> None:
    """Open the renamed files in place of the old ones (caller holds the lock).

    Everything slow (opening, checking, building the needle map) happens on the side, in a
    volume object of its own; then the state moves over with `_swapping` set, and the
    generation goes up before it is cleared, so a lock-free read that straddled the swap can
    tell (`_swapped_since`). The old descriptors and map stay open until the next commit,
    for reads that began before this one (`volume_read`)."""
    fresh = _fresh(self)
    fresh._load(self._writable_files, finish_vacuum=False)
    swap_in(self, fresh)


def swap_in(self: Volume, fresh: Volume) -> None:
    """Move the files, map and state of `fresh` (the volume's files as they are now, opened
    on the side) into the volume (caller holds the lock; `_reopen`)."""
    fresh._stamps.close()  # a vacuum leaves the stamp log as it is: this volume keeps its own
    for fd in self._retired:
        os.close(fd)
    if self._retired_map is not None:
        self._retired_map.close()
    self._retired = [fd for fd in (self._dat, self._idx) if fd >= 0]
    self._retired_map = self._map
    self._swapping = True
    try:
        self._map = fresh._map
        self._dat, self._idx = fresh._dat, fresh._idx
        self._use_data(fresh.data)
        # A read-only mark held in memory (persist=false: a tiered vacuum's hold on deletes, an
        # operator's) outlives the swap: the fresh load read only the .vif's.
        info = replace(fresh.info, read_only=self.info.read_only or fresh.info.read_only)
        self.superblock, self.info, self.version = fresh.superblock, info, fresh.version
        self._tail, self._end, self._idx_end = fresh._tail, fresh._end, fresh._idx_end
        self._last_append_ns = fresh._last_append_ns
        self.modified_at_second = fresh.modified_at_second
        self.recovery = fresh.recovery
        self._corrupt = fresh._corrupt
        self._verified = VerifiedMemo()
        self._newest = None
        if self._share is not None:
            self._map = TailingMap(self._map, self._catch_up)
            self._idx_seen = self._idx_end
            self._share_corrupt()
        self._generation += 1
    finally:
        self._swapping = False


def await_swap(self: Volume) -> None:
    """Return once no commit is swapping the files in (a few assignments: a read that
    failed its checks waits for them to end, then reads again)."""
    while self._swapping:
        time.sleep(0)  # hands the interpreter to the committing thread


def swapped_since(self: Volume, generation: int) -> bool:
    """Whether a commit swapped the files since (or is swapping them while) a read of
    `generation` ran."""
    return self._swapping or self._generation != generation


# ------------------------------------------------------------------ several workers

# A compaction's stage in the worker share (storage/shared.py): with `-workers=N` the master's
# compact, commit and cleanup calls may each reach another worker, so what a commit needs of
# the copy is in the share (and `.cpx`), not only in the memory of the worker that copied.
NONE: Final = 0
COPYING: Final = 1
COPIED: Final = 2
COMMITTING: Final = 3


def _shared_stage(self: Volume) -> int:
    """The compaction stage the share records (caller holds the lock); NONE without a share,
    and when the worker copying died (its partial files are overwritten or cleaned up). A
    worker that died committing is recovered from as soon as the lock is taken
    (`recover_commit`)."""
    share = self._share
    if share is None:
        return NONE
    w, b = share.words, self._slot
    stage = int(w[b + STAGE])
    if stage == COPYING and not _alive(int(w[b + STAGE_PID])):
        w[b + STAGE] = NONE
        return NONE
    return stage


def _set_stage(self: Volume, stage: int) -> None:
    """Record this worker's compaction stage (caller holds the lock)."""
    share = self._share
    if share is not None:
        w, b = share.words, self._slot
        w[b + STAGE_PID] = os.getpid()
        w[b + STAGE] = stage


def _owns_stage(self: Volume, stage: int) -> bool:
    """Whether the share records this worker at `stage` (always, without a share)."""
    share = self._share
    if share is None:
        return True
    w, b = share.words, self._slot
    return int(w[b + STAGE]) == stage and int(w[b + STAGE_PID]) == os.getpid()


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _publish_copy(self: Volume, state: Compaction) -> None:
    """The copy is done (caller holds the lock): what a commit by any worker needs."""
    share = self._share
    if share is None:
        return
    w, b = share.words, self._slot
    w[b + CP_REVISION] = state.revision
    w[b + CP_IDX_START] = state.idx_start
    w[b + CP_SIZE_BEFORE] = state.size_before
    w[b + CP_CPD_END] = state.copied_cpd_end
    w[b + CP_CPX_END] = state.copied_cpx_end
    _set_stage(self, COPIED)


def _shared_compaction(self: Volume, cpx: Path) -> Compaction | None:
    """The compaction a commit in this worker may take up (caller holds the lock): this
    worker's own, or one another worker copied, rebuilt from the share and `.cpx` (the keys
    it copied); None if the share records none (a stale one of this worker is dropped)."""
    assert self._share is not None
    stage = _shared_stage(self)
    state = self._compaction
    if stage == NONE:
        self._compaction = None
        return None
    if stage == COPYING:
        raise Conflict("the compaction is still copying", volume_id=self.id)
    if stage == COMMITTING:
        raise Conflict("the compaction is being committed", volume_id=self.id)
    if state is not None and state.done and not state.committing:
        return state
    w, b = self._share.words, self._slot
    cpd_end, cpx_end = int(w[b + CP_CPD_END]), int(w[b + CP_CPX_END])
    fd = os.open(cpx, os.O_RDONLY | os.O_CLOEXEC)
    try:
        raw = os.pread(fd, cpx_end, 0)
    finally:
        os.close(fd)
    if len(raw) != cpx_end:
        raise StorageError("the vacuum's .cpx is shorter than its copy", volume_id=self.id)
    keys, _, _ = decode_entries(raw, self.layout)
    idx_start = int(w[b + CP_IDX_START])
    log.info("volume %d: committing the compaction another worker copied", self.id)
    state = Compaction(
        int(w[b + CP_REVISION]),
        idx_start,
        int(w[b + CP_SIZE_BEFORE]),
        done=True,
        copied=np.sort(keys),
        copied_cpd_end=cpd_end,
        copied_cpx_end=cpx_end,
        replayed_to=idx_start,
        cpd_end=cpd_end,
        cpx_end=cpx_end,
    )
    self._compaction = state
    return state


def _published_commit(self: Volume) -> None:
    """The committed files are in (caller holds the lock): the other workers reattach."""
    share = self._share
    if share is not None:
        w, b = share.words, self._slot
        w[b + FILES] += 1
        self._files_seen = int(w[b + FILES])


def follow_commit(self: Volume) -> None:
    """Another worker committed a vacuum of this volume (caller holds the lock, so the
    share describes the new files): drop the old descriptors and map as a commit does (kept
    for reads under way until the next one) and attach the new files."""
    assert self._share is not None
    with self._tail_lock:
        fresh = _fresh(self)
        try:
            _loading.attach_files(fresh, self._share, self._slot)
        except BaseException:
            fresh._close_fds()
            raise
        swap_in(self, fresh)
        self._compaction = None
        self._files_seen = int(self._share.words[self._slot + FILES])
    log.info("volume %d: following the vacuum another worker committed", self.id)


def recover_commit(self: Volume) -> None:
    """The worker committing a vacuum of this volume died holding the lock (caller holds it
    now): finish or undo its commit as an open after a crash would (`finish_interrupted`),
    then open the volume's files as they are and let every worker reattach."""
    assert self._share is not None
    done = finish_interrupted(self.directory, self.name, writable=self._writable_files)
    log.warning("volume %d: a worker died committing its vacuum: %s", self.id, done or "-")
    with self._tail_lock:
        fresh = _fresh(self)
        fresh._load(self._writable_files, finish_vacuum=False)
        swap_in(self, fresh)
        self._compaction = None
        _published_commit(self)
        _set_stage(self, NONE)
        w, b = self._share.words, self._slot
        w[b + DAT_END], w[b + IDX_END] = self._end, self._idx_end
        w[b + LAST_NS] = max(int(w[b + LAST_NS]), self._last_append_ns)


def dead_committer(self: Volume) -> bool:
    """Whether the share records a commit by a worker that died (caller holds the lock)."""
    assert self._share is not None
    w, b = self._share.words, self._slot
    return int(w[b + STAGE]) == COMMITTING and not _alive(int(w[b + STAGE_PID]))


def _fresh(self: Volume) -> Volume:
    """A volume object of this one's files, not yet opened."""
    return type(self)(
        self.directory,
        self.id,
        self.collection,
        index_kind=self.index_kind,
        fsync_mode=self.fsync_mode,
        committer=self._committer,
        journal=self._journal,
        size_limit=self._size_limit,
        clock_ns=self._clock_ns,
    )


# ------------------------------------------------------------------ cleanup and crashes


def cleanup_compact(self: Volume) -> bool:
    """Drop an uncommitted compaction and its files; False if there was none. A compaction
    still copying is asked to stop (its copy removes its files)."""
    cpd, cpx, _ = self._checked(*COMPACTION_SUFFIXES)
    with self._lock:
        state = self._compaction
        stage = _shared_stage(self)
        if stage == COMMITTING or (state is not None and state.committing):
            raise Conflict("the compaction is being committed", volume_id=self.id)
        if stage == COPYING and not _owns_stage(self, COPYING):
            _set_stage(self, NONE)  # the worker copying sees it and stops (its files go)
            return True
        _set_stage(self, NONE)
        if state is None:
            found = cpd.exists() or cpx.exists()
            _unlink(cpd, cpx)
            return found or stage == COPIED
        if not state.done:
            state.aborted = True
            return True
        self._compaction = None
    _unlink(cpd, cpx)
    return True


def finish_interrupted(volume_dir: Path, name: str, *, writable: bool) -> str:
    """Before a volume opens: complete a commit a crash interrupted (its marker exists: roll
    forward) or delete the files of an uncommitted compaction (roll back). What it did, for
    the log ("" if nothing). With `writable=False` nothing is changed, and a commit caught
    between its renames (the `.dat` new, the `.idx` old) cannot be opened: `StorageError`."""
    base = volume_dir / name
    cpd, cpx, cpc = (Path(f"{base}{ext}") for ext in COMPACTION_SUFFIXES)
    if cpc.exists():
        if not writable:
            if not cpd.exists() and cpx.exists():
                raise StorageError(
                    "an interrupted vacuum commit must finish first: open the volume writable "
                    "(start the volume server)",
                    path=str(cpc),
                )
            return ""
        if cpd.exists():
            rename(cpd, Path(f"{base}.dat"))
        if cpx.exists():
            rename(cpx, Path(f"{base}.idx"))
        _loading.sync_dir(volume_dir)
        remove_marker(cpc)
        return "finished an interrupted vacuum commit (rolled forward)"
    if writable and (cpd.exists() or cpx.exists()):
        _unlink(cpd, cpx)
        _loading.sync_dir(volume_dir)
        return "deleted the files of an uncommitted vacuum (rolled back)"
    return ""


def write_marker(path: Path, revision: int) -> None:
    """The commit marker: from here on the compacted files are the volume (roll forward)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        pwrite_all(fd, f"{revision + 1}\n".encode(), 0)
        os.fsync(fd)
    finally:
        os.close(fd)
    _loading.sync_dir(path.parent)


def rename(source: Path, target: Path) -> None:
    os.replace(source, target)


def remove_marker(path: Path) -> None:
    """The commit is complete (its renames durable): a marker that a crash keeps anyway only
    has the next open remove it."""
    path.unlink(missing_ok=True)


def _unlink(*paths: Path) -> None:
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            log.error("cannot remove %s: %s", path, exc)


# ------------------------------------------------------------------ reads across a commit


def relocate(self: Volume, loc: NeedleLocation) -> NeedleLocation:
    """`loc` as of the volume's current files: itself if no commit passed since it was made,
    else the same record where the commit moved it (the copy is byte for byte, so the same
    position in its data). `NeedleNotFound` if the needle is gone (deleted, then vacuumed)
    or replaced meanwhile."""
    if not self._swapped_since(loc.generation):
        return loc
    key = loc.needle.key
    while True:
        self._await_swap()
        generation = self._generation
        hit = self._map.get(key)
        if hit is not None and hit.size == loc.hit.size:
            try:
                fresh = self._meta_at(key, loc.needle.cookie, hit, NeedleNotFound, note=False)
            except (CorruptNeedle, NeedleNotFound):
                fresh = None
        else:
            fresh = None
        if not self._swapped_since(generation):
            break
    if fresh is None or (fresh.needle.checksum, fresh.needle.append_at_ns) != (
        loc.needle.checksum,
        loc.needle.append_at_ns,
    ):
        raise NeedleNotFound(
            "needle deleted or replaced while it was read", volume_id=self.id, key=f"{key:x}"
        )
    assert hit is not None
    delta = hit.offset - loc.hit.offset
    return replace(loc, data_offset=loc.data_offset + delta, hit=hit, generation=generation)


# ------------------------------------------------------------------ TTL volumes


def expired(self: Volume, now_s: float) -> bool:
    """A TTL volume whose newest needle is older than the volume's TTL (spec §9.5)."""
    ttl = self.ttl.seconds
    if ttl:
        self._catch_up()  # another worker's write may be the newest
    return (
        bool(ttl)
        and self.size > self.superblock.block_size
        and now_s >= _newest_needle_s(self) + ttl
    )


def expired_long_enough(self: Volume, now_s: float) -> bool:
    """`expired`, and for `min(TTL/10, 10 min)` more: the volume's files may go."""
    ttl = self.ttl.seconds
    grace = min(ttl / 10, _MAX_TTL_GRACE)
    return self.expired(now_s) and now_s >= _newest_needle_s(self) + ttl + grace


def _newest_needle_s(self: Volume) -> float:
    """When the newest live needle was written (Unix seconds): its AppendAtNs, looked up in
    the index when unknown (after an open, a vacuum, or a delete of that needle; writes keep
    it); the last record's when no needle is live; the `.dat`'s last change for records
    without AppendAtNs (version 2)."""
    if self._newest is None:
        _, offsets, sizes = self._map.live_arrays()
        if len(offsets) and not self.data.remote:
            i = int(np.argmax(offsets))
            offset = int(offsets[i])
            self._newest = (offset, self._append_ns_at(offset, int(sizes[i])))
        else:
            self._newest = (0, self._last_append_ns)
    ns = self._newest[1]
    return ns / 1e9 if ns else float(self.modified_at_second)
