"""Loading a volume: creating one, opening one, and recovering from a crash on open.

Opening first finishes (or undoes) a vacuum a crash interrupted (`volume_vacuum`), then
recovers from a crash, treating `.dat` as the truth (the reference only goes read-only,
spec §4.12; docs/compat.md): index entries pointing past the end of `.dat`, or at a record
that is not theirs, are cut from `.idx` (and a partial last entry), as is everything from the
first all-zero entry on (a page of an unsynced `.idx` lost in a power loss); records after the
last indexed sound one are walked in file order, checked, and indexed. The walk tells torn
records from rotted ones (the rule and why it is safe in every `-fsync` mode: `scan.py`): the
first torn record (short, or a footer its append never wrote) and everything after it is cut
from `.dat`; a rotted record (complete, but its data fails its CRC) is not a crash's doing and
may hold an acknowledged write, so it stays on disk and in the index, is logged and listed by
`corrupt_needles`, and reads answer it as corrupt; the walk goes on past it.

The `.idx` is read in one go into numpy columns (`_load_idx`), and the needle map built from
the live entries (`_make_map`: in memory, or a memory-mapped `.sdx` for sealed volumes and the
`mmap` index kind). A new volume's `.dat` may have disk reserved for it (`_reserve`).

The functions here are methods of `Volume` (volume.py binds them, hence their `self` or
`cls`); the ones only this module calls stay module functions.
"""

from __future__ import annotations

import ctypes
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from seaweed_py.errors import CorruptNeedle, CorruptVolume, VolumeNotFound
from seaweed_py.formats.idx import IDX4, IdxLayout, encode_entry, entry_dtype, layout_for
from seaweed_py.formats.needle import (
    NEEDLE_HEADER,
    NEEDLE_HEADER_SIZE,
    VERSION_3,
    decode_needle,
    record_length,
    tail_length,
)
from seaweed_py.formats.replica_placement import ReplicaPlacement
from seaweed_py.formats.superblock import SuperBlock
from seaweed_py.formats.ttl import Ttl
from seaweed_py.formats.vif import VolumeInfo
from seaweed_py.storage import volume_tier
from seaweed_py.storage import volume_vacuum as _vacuum
from seaweed_py.storage.backend import Backends, LocalDatFile
from seaweed_py.storage.group_commit import Committer
from seaweed_py.storage.integrity import CorruptRecord
from seaweed_py.storage.journal import Journal, JournalEntry
from seaweed_py.storage.needle_map import (
    IndexStats,
    LiveArrays,
    MemoryNeedleMap,
    MmapNeedleMap,
    NeedleMap,
    replay_index,
)
from seaweed_py.storage.scan import read_superblock, scan_records
from seaweed_py.storage.shared import (
    ATS_END,
    DAT_END,
    DELETED,
    FLAGS,
    IDX_END,
    LAST_NS,
    WorkerShare,
)
from seaweed_py.storage.stamps import STAMP_SUFFIX, StampLog
from seaweed_py.storage.volume_write import IDX_BATCH_BYTES, FsyncMode

if TYPE_CHECKING:
    from seaweed_py.storage.volume import Volume

__all__ = ["DEFAULT_SIZE_LIMIT", "RecoveryReport", "release_free_memory"]

log = logging.getLogger(__name__)

DEFAULT_SIZE_LIMIT: Final = 30 << 30  # -volumeSizeLimitMB 30720
_TRIM_AFTER: Final = 1 << 20  # .idx bytes above which a load returns its scratch memory
_FALLOC_FL_KEEP_SIZE: Final = 1  # fallocate(2) mode: reserve without growing the file


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What opening a volume had to repair (all zero for a clean volume)."""

    idx_entries_dropped: int = 0
    idx_bytes_cut: int = 0
    records_indexed: int = 0
    dat_bytes_cut: int = 0

    def __bool__(self) -> bool:
        return bool(
            self.idx_entries_dropped
            or self.idx_bytes_cut
            or self.records_indexed
            or self.dat_bytes_cut
        )


def create_volume(
    cls: type[Volume],
    directory: str | os.PathLike[str],
    volume_id: int,
    *,
    collection: str = "",
    replica_placement: ReplicaPlacement | None = None,
    ttl: Ttl | None = None,
    large_disk: bool = False,
    index_kind: str = "memory",
    fsync_mode: FsyncMode = FsyncMode.GROUP,
    committer: Committer | None = None,
    journal: Journal | None = None,
    size_limit: int = DEFAULT_SIZE_LIMIT,
    clock_ns: Callable[[], int] = time.time_ns,
    preallocate: int = 0,
) -> Volume:
    """Create a new, empty volume; refuses to overwrite an existing `.dat`. `preallocate`
    bytes of disk are reserved for the `.dat` (see `_reserve`)."""
    v = cls(
        Path(directory),
        volume_id,
        collection,
        index_kind=index_kind,
        fsync_mode=fsync_mode,
        committer=committer,
        journal=journal,
        size_limit=size_limit,
        clock_ns=clock_ns,
    )
    # Checked before the first file appears, so a refusal leaves nothing behind.
    dat, idx, _, _ = v._checked(".dat", ".idx", ".vif", ".vif.tmp")
    if index_kind == "mmap":
        v._checked(".sdx", ".sdx.tmp")
    if dat.exists():
        raise FileExistsError(f"volume {volume_id} already exists: {dat}")
    ttl = ttl or Ttl.EMPTY
    sb = SuperBlock(replica_placement=replica_placement or ReplicaPlacement(), ttl=ttl)
    expire = clock_ns() // 1_000_000_000 + ttl.seconds if ttl else 0
    info = VolumeInfo(
        version=sb.version,
        replication=str(sb.replica_placement),
        bytes_offset=5 if large_disk else 4,
        expire_at_sec=expire,
    )
    v._write_vif(info)
    with open(dat, "xb") as f:
        f.write(sb.encode())
        f.flush()
        if preallocate > 0:
            _reserve(f.fileno(), preallocate, dat)
        os.fsync(f.fileno())
    idx.write_bytes(b"")
    sync_dir(v.directory)
    _load(v)
    return v


def open_volume(
    cls: type[Volume],
    directory: str | os.PathLike[str],
    volume_id: int,
    *,
    collection: str = "",
    index_kind: str = "memory",
    fsync_mode: FsyncMode = FsyncMode.GROUP,
    committer: Committer | None = None,
    journal: Journal | None = None,
    replay: Sequence[JournalEntry] = (),
    size_limit: int = DEFAULT_SIZE_LIMIT,
    clock_ns: Callable[[], int] = time.time_ns,
    writable: bool = True,
    backends: Backends | None = None,
) -> Volume:
    """Open an existing volume, repairing a crashed tail (module docstring). `replay`:
    the disk journal's entries of this volume, written back into `.dat` before the tail
    is checked (storage/journal.py).

    With `writable=False` (offline tools) no file is changed: the volume is read-only, a
    torn tail is ignored rather than cut, and the index is kept in memory. A volume whose
    `.vif` names a remote file is read from the bucket `backends` holds (volume_tier.py;
    `BackendNotFound` when it holds none of that name)."""
    v = cls(
        Path(directory),
        volume_id,
        collection,
        index_kind=index_kind,
        fsync_mode=fsync_mode,
        committer=committer,
        journal=journal,
        size_limit=size_limit,
        clock_ns=clock_ns,
    )
    _load(v, writable, backends, replay)
    return v


def attach_volume(
    cls: type[Volume],
    directory: str | os.PathLike[str],
    volume_id: int,
    share: WorkerShare,
    *,
    collection: str = "",
    fsync_mode: FsyncMode = FsyncMode.GROUP,
    journal: Journal | None = None,
    size_limit: int = DEFAULT_SIZE_LIMIT,
    clock_ns: Callable[[], int] = time.time_ns,
    backends: Backends | None = None,
) -> Volume:
    """Open a volume another worker opened, repaired and shares (storage/shared.py): no
    file is changed here; the map is built from `.idx` up to the end the share publishes,
    and the files end where it says."""
    v = cls(
        Path(directory),
        volume_id,
        collection,
        index_kind="memory",
        fsync_mode=fsync_mode,
        committer=None,
        journal=journal,
        size_limit=size_limit,
        clock_ns=clock_ns,
    )
    slot = share.volume_slot(volume_id, claim=False)
    if slot is None or share.words[slot + FLAGS] & DELETED:
        raise VolumeNotFound("volume is not shared by the other workers", volume_id=volume_id)
    vif = v.path(".vif")
    v.info = VolumeInfo.from_json(vif.read_bytes() if vif.exists() else b"")
    v.layout = layout_for(v.info.bytes_offset, v.id)
    v._idx_batch_full = IDX_BATCH_BYTES // v.layout.entry_size * v.layout.entry_size
    if v.info.files:
        # Tiered: loaded as an offline tool would (its map in memory, no `.sdx` written
        # beside the leader's), then its `.idx` opened for the deletes it takes.
        _load(v, False, backends)
        try:
            if os.access(v.path(".idx"), os.W_OK):
                fd = os.open(v.path(".idx"), os.O_RDWR | os.O_CLOEXEC)
                os.close(v._idx)
                v._idx, v._writable_files = fd, True
            v.share(share, claim=False)
        except BaseException:
            v._close_fds()
            raise
        return v
    try:
        attach_files(v, share, slot)
        v._stamps = StampLog(v.path(STAMP_SUFFIX), v.id, writable=v._writable_files)
        v._stamps.load(limit=int(share.words[slot + ATS_END]))
        v.share(share, claim=False)
    except BaseException:
        v._close_fds()
        raise
    return v


def attach_files(self: Volume, share: WorkerShare, slot: int) -> None:
    """Open the local `.dat`/`.idx` of a volume other workers share (at `slot`), with the
    map built from `.idx` up to the end the share publishes; changes no file (`attach`,
    and a worker following another's vacuum commit). The caller closes the descriptors on
    failure."""
    vif = self.path(".vif")
    self.info = VolumeInfo.from_json(vif.read_bytes() if vif.exists() else b"")
    self.layout = layout_for(self.info.bytes_offset, self.id)
    self._idx_batch_full = IDX_BATCH_BYTES // self.layout.entry_size * self.layout.entry_size
    self._writable_files = os.access(self.path(".dat"), os.W_OK)
    flags = (os.O_RDWR if self._writable_files else os.O_RDONLY) | os.O_CLOEXEC
    self._dat = os.open(self.path(".dat"), flags)
    self._use_data(LocalDatFile(self._dat))
    self._idx = os.open(self.path(".idx"), flags)
    self.superblock = read_superblock(self._dat, volume_id=self.id)
    self.version = self.superblock.version
    self._tail = tail_length(self.version)
    if self.info.replication:
        self.superblock = replace(
            self.superblock, replica_placement=ReplicaPlacement.parse(self.info.replication)
        )
    idx_end = share.words[slot + IDX_END]
    (keys, units, sizes), _ = _load_idx(self._idx, self.layout, limit=idx_end)
    live, stats = replay_index(keys, units, sizes)
    self._idx_end = len(keys) * self.layout.entry_size
    self._end = share.words[slot + DAT_END]
    self._last_append_ns = share.words[slot + LAST_NS]
    self.modified_at_second = int(os.fstat(self._dat).st_mtime)
    self._map = MemoryNeedleMap(live, stats, self.layout, in_units=True)


def _load(
    self: Volume,
    writable: bool = True,
    backends: Backends | None = None,
    replay: Sequence[JournalEntry] = (),
    *,
    finish_vacuum: bool = True,
) -> None:
    """Open the volume's files (`finish_vacuum=False`: a vacuum's own commit reopening the
    files it installed, its marker still there; not an interrupted commit)."""
    dat_path = self.path(".dat")
    vif_path = self.path(".vif")
    if finish_vacuum:
        self._checked(*_vacuum.COMPACTION_SUFFIXES)
        done = _vacuum.finish_interrupted(self.directory, self.name, writable=writable)
        if done:
            log.warning("volume %d: %s", self.id, done)
    vif_text = vif_path.read_bytes() if vif_path.exists() else b""
    self.info = VolumeInfo.from_json(vif_text)
    self.layout = layout_for(self.info.bytes_offset, self.id)
    self._idx_batch_full = IDX_BATCH_BYTES // self.layout.entry_size * self.layout.entry_size
    if self.info.files:  # tiered: a local .dat, if kept, is not read (spec §6)
        try:
            volume_tier.load_remote(self, backends, writable)
        except BaseException:
            self._close_fds()
            if self._own_committer and self._committer is not None:
                self._committer.close()
            raise
        return
    if not dat_path.exists():
        raise CorruptVolume("volume has no .dat file", volume_id=self.id, path=str(dat_path))
    self._writable_files = writable and os.access(dat_path, os.W_OK)
    flags = os.O_RDWR if self._writable_files else os.O_RDONLY
    try:
        self._dat = os.open(dat_path, flags | getattr(os, "O_CLOEXEC", 0))
        self._use_data(LocalDatFile(self._dat))
        _load_files(self, vif_text, replay)
    except BaseException:
        self._close_fds()
        if self._own_committer and self._committer is not None:
            self._committer.close()
        raise


def _load_files(self: Volume, vif_text: bytes, replay: Sequence[JournalEntry] = ()) -> None:
    self.superblock = read_superblock(self._dat, volume_id=self.id)
    if replay and self._writable_files:
        _replay(self, replay)
    dat_size = os.fstat(self._dat).st_size
    self.version = self.superblock.version
    if self.version not in (2, 3):
        raise CorruptVolume(f"needle version {self.version} is not supported", volume_id=self.id)
    apply_vif(self)
    if not vif_text.strip() and self._writable_files:
        self.info = VolumeInfo(
            version=self.version,
            replication=str(self.superblock.replica_placement),
            bytes_offset=self.layout.offset_bytes,
        )
        self._write_vif(self.info)
    idx_path = self.path(".idx")
    if not idx_path.exists() and self._writable_files:
        self._checked(".idx")
        idx_path.write_bytes(b"")
    if idx_path.exists():
        self._idx = os.open(
            idx_path,
            (os.O_RDWR if self._writable_files else os.O_RDONLY) | getattr(os, "O_CLOEXEC", 0),
        )
    self._stamps = StampLog(self.path(STAMP_SUFFIX), self.id, writable=self._writable_files)
    self._stamps.load()
    entries, idx_size = _load_idx(self._idx, self.layout)
    live, stats = _recover(self, entries, idx_size, dat_size)
    del entries
    self.modified_at_second = int(os.fstat(self._dat).st_mtime)
    self._map = self._make_map(live, stats, sealed=self.read_only, in_units=True)
    del live
    if idx_size > _TRIM_AFTER:
        release_free_memory()


def apply_vif(self: Volume) -> None:
    """What the `.vif` says over the superblock: the record tail of the needle version, and
    the replication when it names one."""
    self._tail = tail_length(self.version)
    if self.info.replication:
        self.superblock = replace(
            self.superblock, replica_placement=ReplicaPlacement.parse(self.info.replication)
        )


def _replay(self: Volume, entries: Sequence[JournalEntry]) -> None:
    """Write the journaled records back where they were appended (those of this `.dat`'s
    compaction revision), then sync: after this, `.dat` holds every acknowledged record."""
    revision = self.superblock.compaction_revision
    written = 0
    for e in entries:
        if e.revision != revision or e.offset < self.superblock.block_size:
            continue
        if os.pread(self._dat, len(e.record), e.offset) != e.record:
            os.pwrite(self._dat, e.record, e.offset)
            written += 1
    if written:
        os.fdatasync(self._dat)
        log.warning(
            "volume %d: %d of %d journaled records written back", self.id, written, len(entries)
        )


def _make_map(
    self: Volume, live: LiveArrays, stats: IndexStats, *, sealed: bool, in_units: bool = False
) -> NeedleMap:
    """A map of `live` (byte offsets, or 8-byte units with `in_units`)."""
    if (sealed or self.index_kind == "mmap") and self._writable_files:
        if in_units:
            live = (live[0], live[1].astype(np.uint64) << np.uint64(3), live[2])
        return MmapNeedleMap(self.path(".sdx"), live, stats, self.layout)
    return MemoryNeedleMap(live, stats, self.layout, in_units=in_units)


def _recover(
    self: Volume, entries: LiveArrays, idx_size: int, dat_size: int
) -> tuple[LiveArrays, IndexStats]:
    """Check `.idx` against `.dat`, index unindexed records, cut torn tails, keep and
    report rotted records (module docstring; the torn/rotted rule is `scan.py`'s).

    `entries` are (keys, offsets in 8-byte units, sizes) in file order; so are the live
    entries returned."""
    keys, units, sizes = entries
    w = self.layout.entry_size
    block = self.superblock.block_size
    keep = _entries_inside(self, units, sizes, dat_size, block)
    keep = _before_first_hole(keys, units, sizes, keep)
    keep, checked = _last_sound_entry(self, keys, units, sizes, keep)
    keys, units, sizes = keys[:keep], units[:keep], sizes[:keep]
    scan_from, last_ns = block, 0
    last = int(np.argmax(units)) if keep else 0
    if keep and int(units[last]):
        off, size = int(units[last]) * 8, max(int(sizes[last]), 0)
        scan_from = off + record_length(size, self.version)
        # Usually the record `_last_sound_entry` just read: not read again.
        last_ns = checked[1] if checked and checked[0] == off else _append_ns_at(self, off, size)
    if scan_from > dat_size and self._writable_files:
        # The last indexed record lost (part of) its padding only.
        os.pwrite(self._dat, bytes(scan_from - dat_size), dat_size)
        dat_size = scan_from
    live, stats = replay_index(keys, units, sizes)
    new_entries: list[tuple[int, int, int]] = []
    good_end = min(scan_from, dat_size)
    if scan_from < dat_size:
        state: dict[int, int] = {}  # keys the scan touched: live size, or -1
        for rec in scan_records(
            self._dat, scan_from, dat_size, self.version, volume_id=self.id, after_ns=last_ns
        ):
            if rec.fatal:
                log.warning("volume %d: cutting .dat at %d: %s", self.id, rec.offset, rec.error)
                break
            if rec.error is not None:
                self._corrupt.note(CorruptRecord(rec.key, rec.offset, rec.size, rec.error))
            size = rec.size
            if size == 0 and _is_live(self, rec.key, live, state):
                new_entries.append((rec.key, rec.offset, -1))  # a tombstone
                state[rec.key] = -1
            else:
                new_entries.append((rec.key, rec.offset, size))
                state[rec.key] = size
            last_ns = max(last_ns, rec.append_at_ns)
            good_end = rec.offset + rec.length
    dat_cut = max(0, dat_size - good_end)
    if good_end > dat_size and self._writable_files:
        os.pwrite(self._dat, bytes(good_end - dat_size), dat_size)  # lost padding only
    elif dat_cut and self._writable_files:
        os.ftruncate(self._dat, good_end)
    if new_entries:
        more = np.array(new_entries, dtype=np.int64).reshape(-1, 3)
        live, stats = replay_index(
            np.concatenate((keys, more[:, 0].astype(np.uint64))),
            np.concatenate((units.astype(np.uint64), more[:, 1].astype(np.uint64) >> 3)),
            np.concatenate((sizes, more[:, 2].astype(np.int32))),
        )
    # Entries the walk found again as `.idx` has them (rotted records after the last sound
    # indexed one) stay where they are: a volume with a rotted last record reopens without
    # rewriting its index, and without reporting a repair.
    same = _same_entries(entries, keep, new_entries)
    cut_idx_at = (keep + same) * w
    fresh = new_entries[same:]
    idx_cut = idx_size - cut_idx_at
    if self._writable_files and self._idx >= 0 and (idx_cut or fresh):
        tail = b"".join(encode_entry(k, o, s, self.layout) for k, o, s in fresh)
        os.ftruncate(self._idx, cut_idx_at)
        if tail:
            os.pwrite(self._idx, tail, cut_idx_at)
        os.fdatasync(self._idx)
        if dat_cut:
            os.fdatasync(self._dat)
    self._end = good_end if self._writable_files else dat_size
    self._idx_end = cut_idx_at + len(fresh) * w
    self.recovery = RecoveryReport(
        idx_entries_dropped=len(entries[0]) - keep - same,
        idx_bytes_cut=idx_size - len(entries[0]) * w,
        records_indexed=len(fresh),
        dat_bytes_cut=dat_cut,
    )
    if self.recovery:
        log.warning("volume %d recovered on open: %s", self.id, self.recovery)
    self._last_append_ns = last_ns
    return live, stats


def _entries_inside(
    self: Volume,
    units: npt.NDArray[np.unsignedinteger[Any]],
    sizes: npt.NDArray[np.int32],
    dat_size: int,
    block: int,
) -> int:
    """How many leading entries point at records inside `.dat`.

    Entries whose record would run past the end mean the `.idx` got ahead of the `.dat`
    (a crash lost the `.dat` write): `.idx` is cut at the first one, and the scan after
    it re-indexes any later record that did reach the `.dat`. Only entries near the end
    can run past it, so just those are measured (a full pass makes 80 MB temporaries at
    10M needles)."""
    if not len(units):
        return 0
    reach = NEEDLE_HEADER_SIZE + max(int(sizes.max()), 0) + self._tail
    near_end = max(0, dat_size - reach) // 8
    low = (block + 7) // 8  # units below the first needle (0 is a remote-tier delete)
    suspects = np.flatnonzero((units > near_end) | ((units < low) & (units != 0)))
    for i in suspects:
        off = int(units[i]) * 8
        if off and (
            off < block or off + NEEDLE_HEADER_SIZE + max(int(sizes[i]), 0) + self._tail > dat_size
        ):
            return int(i)
    return len(units)


def _is_live(self: Volume, key: int, live: LiveArrays, state: dict[int, int]) -> bool:
    """Whether `key` is live before a scanned record: a Size-0 record of a live key is a
    tombstone; of a key not live, an empty file (the two are byte-identical)."""
    if key in state:
        return state[key] >= 0
    keys = live[0]
    i = int(np.searchsorted(keys, np.uint64(key)))
    return i < len(keys) and int(keys[i]) == key


def _last_sound_entry(
    self: Volume,
    keys: npt.NDArray[np.uint64],
    units: npt.NDArray[np.unsignedinteger[Any]],
    sizes: npt.NDArray[np.int32],
    keep: int,
) -> tuple[int, tuple[int, int] | None]:
    """Set aside trailing entries whose record is not theirs or does not check out (CRC):
    the walk of `.dat` after the last sound one decides about their records again, cutting
    torn ones and indexing rotted ones anew. Returns how many entries stay, and the byte
    offset and AppendAtNs of the sound record (None if none was read).

    After a power loss the last records' pages may be missing (zeros) even though their
    `.idx` entries made it; such writes were never acknowledged as durable."""
    while keep:
        i = keep - 1
        off = int(units[i]) * 8
        if off == 0:
            return keep, None
        want = max(int(sizes[i]), 0)
        record = os.pread(self._dat, NEEDLE_HEADER_SIZE + want + self._tail, off)
        try:
            n = decode_needle(record, self.version, volume_id=self.id, offset=off)
            if n.key == int(keys[i]) and NEEDLE_HEADER.unpack_from(record)[2] == want:
                return keep, (off, n.append_at_ns)
        except CorruptNeedle:
            pass  # the walk reports it, or cuts it
        rotted = _rotted_header(self, record, off, int(keys[i]), want)
        if rotted is not None:
            return keep, (off, rotted)
        keep -= 1
    return keep, None


def _rotted_header(self: Volume, record: bytes, offset: int, key: int, size: int) -> int | None:
    """The AppendAtNs of the indexed record `record` if only its header's Size rotted, else
    None: its header names the entry's `key` with another Size, and read with the entry's
    `size` instead, its data matches its CRC. That proves the entry right and the record
    whole (an `.idx` entry a power loss tore, its Size zeroed, proves nothing: a record
    without data has no CRC, and no other Size lines up data with its CRC), so it is kept
    and reported; the walk could not step over it (its Size is wrong), but the entry
    knows where it ends."""
    if size <= 0 or len(record) < NEEDLE_HEADER_SIZE + size + self._tail:
        return None
    stored_key, stored_size = NEEDLE_HEADER.unpack_from(record)[1:]
    if stored_key != key or stored_size == size:
        return None
    mended = record[:12] + size.to_bytes(4, "big") + record[NEEDLE_HEADER_SIZE:]
    try:
        append_at_ns = decode_needle(mended, self.version).append_at_ns
    except CorruptNeedle:
        return None
    reason = f"header Size {stored_size} does not match the index's {size}"
    self._corrupt.note(CorruptRecord(key, offset, size, reason))
    return append_at_ns


def _append_ns_at(self: Volume, offset: int, size: int) -> int:
    """AppendAtNs of the record at `offset` (0 for version 2)."""
    if self.version != VERSION_3:
        return 0
    tail = os.pread(self._dat, 12, offset + NEEDLE_HEADER_SIZE + size)
    return int.from_bytes(tail[4:12], "big") if len(tail) == 12 else 0


def _before_first_hole(
    keys: npt.NDArray[np.uint64],
    units: npt.NDArray[np.unsignedinteger[Any]],
    sizes: npt.NDArray[np.int32],
    keep: int,
) -> int:
    """How many of the first `keep` entries come before the first all-zero one.

    The .idx is fsynced lazily (group commit), so after a power loss any entry appended since
    its last sync may read back as zeros, the later ones correct (pages reach the disk in any
    order; a page never written reads as zeros). Everything from the first hole on is cut and
    re-indexed from the .dat, which holds every acknowledged record. No real entry is all
    zero: weedpy's records start past the superblock, and offset 0 marks only remote-tier
    deletes, of keys the master never hands out as 0."""
    hole = np.flatnonzero((keys[:keep] == 0) & (units[:keep] == 0) & (sizes[:keep] == 0))
    return int(hole[0]) if len(hole) else keep


def _same_entries(entries: LiveArrays, start: int, found: list[tuple[int, int, int]]) -> int:
    """How many leading entries of `found` (key, byte offset, size) equal the `.idx` entries
    from `start` on (offsets in 8-byte units)."""
    keys, units, sizes = entries
    for n, entry in enumerate(found):
        i = start + n
        if i >= len(keys) or (int(keys[i]), int(units[i]) * 8, int(sizes[i])) != entry:
            return n
    return len(found)


def _load_idx(fd: int, layout: IdxLayout, *, limit: int | None = None) -> tuple[LiveArrays, int]:
    """The whole entries of an `.idx` (its first `limit` bytes) as native columns (keys,
    offsets in 8-byte units, sizes), and the file's size (or `limit`).

    One read straight into a numpy record array, byte-swapped in place: no intermediate copy
    of a file that holds 160 MB at 10M needles. The columns are strided views of that array.
    """
    size = os.fstat(fd).st_size if fd >= 0 else 0
    if limit is not None:
        size = min(size, limit)
    dtype = entry_dtype(layout)
    buf = np.empty(size // layout.entry_size, dtype=dtype)
    view = buf.data.cast("B")
    pos = 0
    while pos < len(view):
        got = os.preadv(fd, [view[pos:]], pos)
        if got <= 0:
            raise CorruptVolume("index shrank while being read", size=size, read=pos)
        pos += got
    view.release()
    buf.byteswap(inplace=True)
    native = buf.view(dtype.newbyteorder("="))
    units: npt.NDArray[np.unsignedinteger[Any]] = native["units"]
    if layout is not IDX4:
        units = units.astype(np.uint64) | (native["units_high"].astype(np.uint64) << np.uint64(32))
    return (native["key"], units, native["size"]), size


def release_free_memory() -> None:
    """Hand memory freed after a big index load back to the OS.

    glibc keeps freed blocks below its (self-raising) mmap threshold in the heap; after a
    load's temporaries that is tens of bytes per needle of RSS that nothing uses."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to do
        return
    libc.malloc_trim(0)


def _reserve(fd: int, length: int, path: Path) -> None:
    """Reserve `length` bytes of disk for the file without growing it, as the reference's
    `-volumePreallocate` does (`fallocate` with FALLOC_FL_KEEP_SIZE, which the stdlib's
    `posix_fallocate` cannot ask for): the file still ends at its last record, so the open
    checks stay as they are, and appends land in space reserved in one piece. Best effort,
    like the reference: where the file system or the platform cannot, or the disk lacks the
    room, a warning is logged and the volume works as usual."""
    try:
        fallocate = ctypes.CDLL(None, use_errno=True).fallocate
    except (OSError, AttributeError):
        log.warning("%s: cannot preallocate %d bytes: no fallocate here", path, length)
        return
    fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
    fallocate.restype = ctypes.c_int
    if fallocate(fd, _FALLOC_FL_KEEP_SIZE, 0, length) != 0:
        err = ctypes.get_errno()
        log.warning("%s: cannot preallocate %d bytes: %s", path, length, os.strerror(err))


def sync_dir(directory: Path) -> None:
    """fsync `directory`, so that files created in it or deleted from it stay so after a power
    loss (a file's own fsync does not cover its directory entry)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
