"""One volume: a `.dat` of needle records, its `.idx` log and its `.vif` (spec §4).

Files are `<collection>_<vid>.dat/.idx/.vif` (`<vid>.*` for the empty collection), plus a
`.sdx` (sorted index, memory-mapped) for sealed volumes and the `mmap` index kind. `path(ext)`
names each (storage/volume_paths.py); every file a volume creates or deletes is first checked to
resolve inside its directory.

Writes append one record at the current end of `.dat` (always 8-aligned) with one pwrite; if
it fails `.dat` is cut back to where it was, so a failed write leaves nothing behind. Its `.idx`
entry goes to an in-memory batch that one pwrite appends to `.idx` (see `Volume._flush_idx` for
when), except with `-fsync=always`, where every write pwrites and fsyncs both files. The needle
map is updated at once, and reads never look at `.idx`. A read is one needle-map lookup and one
pread of the whole record, decoded and CRC-checked; a wrong cookie reads as not found, corrupt
bytes are never returned. A large needle is streamed: `verify` checks all of its data first
(remembered per record, module `integrity`), then `iter_data` hands out chunks.

In group-commit mode an acknowledgement waits for an fsync of `.dat` only; `.idx` is fsynced
lazily (within a second of a request, and on close), off the acknowledgement path.

Opening recovers from a crash, treating `.dat` as the truth (the reference only goes read-only,
spec §4.12; docs/compat.md): index entries pointing past the end of `.dat`, or at a record
that is not theirs, are cut from `.idx` (and a partial last entry), as is everything from the
first all-zero entry on (a page of an unsynced `.idx` lost in a power loss); records after the
last indexed sound one are walked in file order, checked, and indexed. The walk tells torn
records from rotted ones (the rule and why it is safe in every `-fsync` mode: `scan.py`): the
first torn record (short, or a footer its append never wrote) and everything after it is cut
from `.dat`; a rotted record (complete, but its data fails its CRC) is not a crash's doing and
may hold an acknowledged write, so it stays on disk and in the index, is logged and listed by
`corrupt_needles`, and reads answer it as corrupt; the walk goes on past it.
"""

from __future__ import annotations

import ctypes
import enum
import errno
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from seaweed_py.errors import (
    BadRequest,
    CookieMismatch,
    CorruptNeedle,
    CorruptVolume,
    DiskFull,
    NeedleNotFound,
    StorageError,
    VolumeFull,
    VolumeReadOnly,
)
from seaweed_py.formats.collection import parse_collection
from seaweed_py.formats.crc import checksum_matches, crc32c
from seaweed_py.formats.idx import (
    IDX4,
    IdxLayout,
    encode_entry,
    entry_dtype,
    layout_for,
)
from seaweed_py.formats.needle import (
    FLAG_HAS_TTL,
    NEEDLE_HEADER,
    NEEDLE_HEADER_SIZE,
    VERSION_3,
    Needle,
    decode_needle,
    encode_needle,
    encode_needle_head,
    encode_needle_tail,
    encode_tombstone,
    record_length,
    tail_length,
)
from seaweed_py.formats.replica_placement import ReplicaPlacement
from seaweed_py.formats.superblock import SUPERBLOCK_SIZE, SuperBlock
from seaweed_py.formats.ttl import Ttl
from seaweed_py.formats.vif import VolumeInfo
from seaweed_py.storage import volume_read as _read
from seaweed_py.storage.group_commit import (
    SETTLED,
    Committer,
    GroupCommitter,
    sync_file,
)
from seaweed_py.storage.integrity import CorruptNeedles, CorruptRecord, VerifiedMemo
from seaweed_py.storage.needle_map import (
    IndexHit,
    IndexStats,
    LiveArrays,
    MemoryNeedleMap,
    MmapNeedleMap,
    NeedleMap,
    replay_index,
)
from seaweed_py.storage.scan import read_superblock, scan_records
from seaweed_py.storage.volume_paths import (
    VOLUME_FILE_SUFFIXES,
    check_inside,
    volume_base_name,
)
from seaweed_py.storage.volume_read import READ_CHUNK, CheckedRecord, NeedleLocation

__all__ = [
    "DEFAULT_SIZE_LIMIT",
    "DISK_FULL",
    "CheckedRecord",
    "DeleteResult",
    "FsyncMode",
    "IndexHit",
    "NeedleLocation",
    "RecoveryReport",
    "Volume",
    "VolumeStatus",
    "WriteResult",
]

log = logging.getLogger(__name__)

DEFAULT_SIZE_LIMIT: Final = 30 << 30  # -volumeSizeLimitMB 30720
DISK_FULL: Final = "disk full"
"""`Volume.read_only_reason` after ENOSPC: writes answer 507, and it clears by itself."""
INDEX_KINDS: Final = ("memory", "mmap")
_TRIM_AFTER: Final = 1 << 20  # .idx bytes above which a load returns its scratch memory
_IDX4_MAX_DAT: Final = IDX4.max_dat_size
# One page of .idx entries per pwrite (256 IDX4 / 240 IDX5 entries): the syscall is then a
# negligible share of a write, while a crash leaves recovery at most that many records to
# rescan from .dat; a larger batch saves nothing measurable.
_IDX_BATCH_BYTES: Final = 4096
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


@dataclass(frozen=True, slots=True)
class DeleteResult:
    size: int  # body Size of the deleted needle (what DELETE reports, quirk A5)
    durable: Future[None]


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


@dataclass(frozen=True, slots=True)
class VolumeStatus:
    """What a heartbeat and `/status` report of one volume."""

    id: int
    collection: str
    size: int
    file_count: int
    delete_count: int
    deleted_byte_count: int
    read_only: bool
    replica_placement: ReplicaPlacement
    ttl: Ttl
    version: int
    compact_revision: int
    modified_at_second: int
    max_file_key: int
    content_size: int
    """Body bytes of every put ever indexed (what `/status` calls Size; `size` is `.dat`'s)."""
    disk_type: str = "hdd"


class Volume:
    """A volume open for reads and (unless read-only) writes. One writer at a time (a lock
    serialises writes and deletes); reads take no lock."""

    def __init__(
        self,
        directory: Path,
        volume_id: int,
        collection: str,
        *,
        index_kind: str,
        fsync_mode: FsyncMode,
        committer: Committer | None,
        size_limit: int,
        clock_ns: Callable[[], int],
    ) -> None:
        if index_kind not in INDEX_KINDS:
            raise ValueError(f"index kind must be one of {INDEX_KINDS}: {index_kind!r}")
        self.id = volume_id
        self.collection = parse_collection(collection)
        self.directory = Path(directory)
        self.name = volume_base_name(self.collection, volume_id)
        """The base name of the volume's files: `<collection>_<vid>` or `<vid>`."""
        self.index_kind = index_kind
        self.fsync_mode = fsync_mode
        self._own_committer = committer is None and fsync_mode is FsyncMode.GROUP
        self._committer: Committer | None = GroupCommitter() if self._own_committer else committer
        self._clock_ns = clock_ns
        self._lock = threading.Lock()
        self._dat = -1
        self._idx = -1
        self._closed = False
        self._size_limit = size_limit
        # Set by _load:
        self.superblock = SuperBlock()
        self.info = VolumeInfo()
        self.layout = IDX4
        self.version = VERSION_3
        self._tail = tail_length(VERSION_3)
        self._end = 0
        self._idx_end = 0  # where the next entry goes: .idx on disk, then _idx_batch
        self._idx_batch = bytearray()  # entries not yet written to .idx, ending at _idx_end
        self._idx_batch_since = 0  # clock_ns of the append that started the batch
        self._idx_batch_full = _IDX_BATCH_BYTES
        self._last_append_ns = 0
        self.modified_at_second = 0
        self._writable_files = True
        self.recovery = RecoveryReport()
        # Set when the volume stops taking writes on its own: DISK_FULL (cleared by itself once
        # the store finds room again, `clear_disk_full`) or an index write failure.
        self.read_only_reason = ""
        self._corrupt = CorruptNeedles(volume_id)
        self._verified = VerifiedMemo()
        self._map: NeedleMap = MemoryNeedleMap(
            (np.empty(0, np.uint64), np.empty(0, np.uint64), np.empty(0, np.int32)), IndexStats()
        )

    def path(self, ext: str) -> Path:
        """The path of this volume's file with extension `ext` (`.dat`, `.idx`, `.sdx.tmp`...),
        by concatenation: a dotted collection (`my.bucket_3`) keeps its whole name."""
        return self.directory / (self.name + ext)

    def _checked(self, *exts: str) -> list[Path]:
        """`path(ext)` of each, once every one is known to resolve inside the directory
        (`PathEscapesDirectory` otherwise): called before files are created or deleted."""
        paths = [self.path(ext) for ext in exts]
        check_inside(self.directory, *paths)
        return paths

    def _write_vif(self, info: VolumeInfo) -> None:
        vif, _ = self._checked(".vif", ".vif.tmp")
        _write_file_durably(vif, info.to_json().encode())

    # ------------------------------------------------------------------ create / open

    @classmethod
    def create(
        cls,
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
        _sync_dir(v.directory)
        v._load()
        return v

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        volume_id: int,
        *,
        collection: str = "",
        index_kind: str = "memory",
        fsync_mode: FsyncMode = FsyncMode.GROUP,
        committer: Committer | None = None,
        size_limit: int = DEFAULT_SIZE_LIMIT,
        clock_ns: Callable[[], int] = time.time_ns,
        writable: bool = True,
    ) -> Volume:
        """Open an existing volume, repairing a crashed tail (module docstring).

        With `writable=False` (offline tools) no file is changed: the volume is read-only, a
        torn tail is ignored rather than cut, and the index is kept in memory."""
        v = cls(
            Path(directory),
            volume_id,
            collection,
            index_kind=index_kind,
            fsync_mode=fsync_mode,
            committer=committer,
            size_limit=size_limit,
            clock_ns=clock_ns,
        )
        v._load(writable)
        return v

    def _load(self, writable: bool = True) -> None:
        dat_path = self.path(".dat")
        vif_path = self.path(".vif")
        if not dat_path.exists():
            raise CorruptVolume("volume has no .dat file", volume_id=self.id, path=str(dat_path))
        vif_text = vif_path.read_bytes() if vif_path.exists() else b""
        self.info = VolumeInfo.from_json(vif_text)
        self.layout = layout_for(self.info.bytes_offset, self.id)
        self._idx_batch_full = _IDX_BATCH_BYTES // self.layout.entry_size * self.layout.entry_size
        self._writable_files = writable and os.access(dat_path, os.W_OK)
        flags = os.O_RDWR if self._writable_files else os.O_RDONLY
        try:
            self._dat = os.open(dat_path, flags | getattr(os, "O_CLOEXEC", 0))
            self._load_files(vif_text)
        except BaseException:
            self._close_fds()
            if self._own_committer and self._committer is not None:
                self._committer.close()
            raise

    def _load_files(self, vif_text: bytes) -> None:
        dat_size = os.fstat(self._dat).st_size
        self.superblock = read_superblock(self._dat, volume_id=self.id)
        self.version = self.superblock.version
        if self.version not in (2, 3):
            raise CorruptVolume(
                f"needle version {self.version} is not supported", volume_id=self.id
            )
        self._tail = tail_length(self.version)
        if self.info.replication:
            self.superblock = replace(
                self.superblock, replica_placement=ReplicaPlacement.parse(self.info.replication)
            )
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
        entries, idx_size = _load_idx(self._idx, self.layout)
        live, stats = self._recover(entries, idx_size, dat_size)
        del entries
        self.modified_at_second = int(os.fstat(self._dat).st_mtime)
        self._map = self._make_map(live, stats, sealed=self.read_only, in_units=True)
        del live
        if idx_size > _TRIM_AFTER:
            release_free_memory()

    def _make_map(
        self, live: LiveArrays, stats: IndexStats, *, sealed: bool, in_units: bool = False
    ) -> NeedleMap:
        """A map of `live` (byte offsets, or 8-byte units with `in_units`)."""
        if (sealed or self.index_kind == "mmap") and self._writable_files:
            if in_units:
                live = (live[0], live[1].astype(np.uint64) << np.uint64(3), live[2])
            return MmapNeedleMap(self.path(".sdx"), live, stats, self.layout)
        return MemoryNeedleMap(live, stats, self.layout, in_units=in_units)

    # ------------------------------------------------------------------ recovery

    def _recover(
        self, entries: LiveArrays, idx_size: int, dat_size: int
    ) -> tuple[LiveArrays, IndexStats]:
        """Check `.idx` against `.dat`, index unindexed records, cut torn tails, keep and
        report rotted records (module docstring; the torn/rotted rule is `scan.py`'s).

        `entries` are (keys, offsets in 8-byte units, sizes) in file order; so are the live
        entries returned."""
        keys, units, sizes = entries
        w = self.layout.entry_size
        block = self.superblock.block_size
        keep = self._entries_inside(units, sizes, dat_size, block)
        keep = _before_first_hole(keys, units, sizes, keep)
        keep, checked = self._last_sound_entry(keys, units, sizes, keep)
        keys, units, sizes = keys[:keep], units[:keep], sizes[:keep]
        scan_from, last_ns = block, 0
        last = int(np.argmax(units)) if keep else 0
        if keep and int(units[last]):
            off, size = int(units[last]) * 8, max(int(sizes[last]), 0)
            scan_from = off + record_length(size, self.version)
            # Usually the record `_last_sound_entry` just read: not read again.
            last_ns = checked[1] if checked and checked[0] == off else self._append_ns_at(off, size)
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
                if size == 0 and self._is_live(rec.key, live, state):
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
        self,
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
                off < block
                or off + NEEDLE_HEADER_SIZE + max(int(sizes[i]), 0) + self._tail > dat_size
            ):
                return int(i)
        return len(units)

    def _is_live(self, key: int, live: LiveArrays, state: dict[int, int]) -> bool:
        """Whether `key` is live before a scanned record: a Size-0 record of a live key is a
        tombstone; of a key not live, an empty file (the two are byte-identical)."""
        if key in state:
            return state[key] >= 0
        keys = live[0]
        i = int(np.searchsorted(keys, np.uint64(key)))
        return i < len(keys) and int(keys[i]) == key

    def _last_sound_entry(
        self,
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
            rotted = self._rotted_header(record, off, int(keys[i]), want)
            if rotted is not None:
                return keep, (off, rotted)
            keep -= 1
        return keep, None

    def _rotted_header(self, record: bytes, offset: int, key: int, size: int) -> int | None:
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

    def _append_ns_at(self, offset: int, size: int) -> int:
        """AppendAtNs of the record at `offset` (0 for version 2)."""
        if self.version != VERSION_3:
            return 0
        tail = os.pread(self._dat, 12, offset + NEEDLE_HEADER_SIZE + size)
        return int.from_bytes(tail[4:12], "big") if len(tail) == 12 else 0

    # ------------------------------------------------------------------ properties

    @property
    def read_only(self) -> bool:
        return self.info.read_only or not self._writable_files or bool(self.read_only_reason)

    @property
    def replica_placement(self) -> ReplicaPlacement:
        return self.superblock.replica_placement

    @property
    def ttl(self) -> Ttl:
        return self.superblock.ttl

    @property
    def compact_revision(self) -> int:
        return self.superblock.compaction_revision

    @property
    def size(self) -> int:
        """Length of `.dat` in bytes."""
        return self._end

    @property
    def size_limit(self) -> int:
        return min(self._size_limit, self.layout.max_dat_size)

    @size_limit.setter
    def size_limit(self, value: int) -> None:
        self._size_limit = value

    @property
    def stats(self) -> IndexStats:
        return self._map.stats

    @property
    def file_count(self) -> int:
        return self._map.stats.file_count

    @property
    def delete_count(self) -> int:
        return self._map.stats.delete_count

    @property
    def deleted_byte_count(self) -> int:
        return self._map.stats.deleted_bytes

    @property
    def content_size(self) -> int:
        return self._map.stats.content_size

    @property
    def max_file_key(self) -> int:
        return self._map.stats.max_key

    @property
    def live_count(self) -> int:
        return len(self._map)

    @property
    def needle_map(self) -> NeedleMap:
        return self._map

    def garbage_level(self) -> float:
        """Deleted bytes over content bytes (spec §9.1)."""
        s = self._map.stats
        if not s.content_size:
            return 0.0
        if s.delete_count and not s.deleted_bytes:
            return max(0.0, (self._end - s.content_size - SUPERBLOCK_SIZE) / self._end)
        return s.deleted_bytes / s.content_size

    def status(self) -> VolumeStatus:
        """The heartbeat fields. Also writes out `.idx` entries batched since the last append
        (`_flush_idx`) unless a write holds the lock: each pulse then bounds how long an idle
        volume's entries stay in memory only, and the caller (an event loop) never waits."""
        if self._idx_batch and self._lock.acquire(blocking=False):
            try:
                if not self._closed:
                    self._flush_idx()
            finally:
                self._lock.release()
        s = self._map.stats
        return VolumeStatus(
            id=self.id,
            collection=self.collection,
            size=self._end,
            file_count=s.file_count,
            delete_count=s.delete_count,
            deleted_byte_count=s.deleted_bytes,
            read_only=self.read_only,
            replica_placement=self.replica_placement,
            ttl=self.ttl,
            version=self.version,
            compact_revision=self.compact_revision,
            modified_at_second=self.modified_at_second,
            max_file_key=s.max_key,
            content_size=s.content_size,
        )

    # ------------------------------------------------------------------ reads (volume_read.py)

    lookup = _read.lookup
    read = _read.read
    read_at = _read.read_at
    read_checked = _read.read_checked
    is_current = _read.is_current
    record_at = _read.record_at
    read_meta = _read.read_meta
    verified = _read.verified
    verify = _read.verify
    iter_data = _read.iter_data
    corrupt_needles = _read.corrupt_needles
    iter_needles = _read.iter_needles
    _meta_at = _read._meta_at

    # ------------------------------------------------------------------ writes

    def write(self, needle: Needle) -> WriteResult:
        """Append `needle` (AppendAtNs set here). An identical re-upload appends nothing and
        returns `unchanged=True`; a different cookie for a live key raises CookieMismatch."""
        with self._lock:
            self._check_writable()
            hit = self._map.get(needle.key)
            if hit is not None:
                old = self._existing(needle.key, needle.cookie, hit)
                if old is not None and self._same(old, needle):
                    return WriteResult(hit.offset, hit.size, True, SETTLED)
            ts = self._next_append_ns()
            record = encode_needle(needle, self.version, append_at_ns=ts)
            size: int = NEEDLE_HEADER.unpack_from(record)[2]
            offset = self._append((record,), len(record), needle.key, size)
            self._map.put(needle.key, offset, size)
            self._last_append_ns = ts
            return WriteResult(offset, size, False, self._durable())

    def write_streamed(
        self, needle: Needle, data_size: int, chunks: Iterable[bytes | memoryview]
    ) -> WriteResult:
        """Append a needle whose data arrives in chunks (`needle.data` is ignored; its
        checksum is computed here). The chunks must add up to `data_size` exactly, else
        nothing is kept and BadRequest is raised. Holds the volume's write lock throughout.

        Neither the new data nor the live needle it replaces is ever held whole. An identical
        re-upload appends nothing: while the chunks equal the stored data (compared with
        preads as they arrive) nothing is written, and at the first difference the equal
        prefix is copied from the old record and the append goes on from there."""
        with self._lock:
            self._check_writable()
            hit = self._map.get(needle.key)
            old = self._existing_meta(needle.key, needle.cookie, hit) if hit is not None else None
            chunks = iter(chunks)
            same, crc = 0, 0  # bytes equal to the old data, their CRC
            first: bytes | memoryview = b""  # the chunk that differs
            if (
                old is not None
                and data_size
                and old.data_size == data_size
                and self._same_meta(
                    old.needle, replace(needle, data=b"", checksum=old.needle.checksum)
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
                        return WriteResult(hit.offset, hit.size, True, SETTLED)
                # A difference, a wrong length (which `parts` refuses) or a bad checksum on the
                # old record (the same data is then stored anew): append.
            ts = self._next_append_ns()
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

            offset = self._append(parts(), total, needle.key, size)
            self._map.put(needle.key, offset, size)
            self._last_append_ns = ts
            return WriteResult(offset, size, False, self._durable())

    def delete(self, key: int, cookie: int) -> DeleteResult:
        """Append a tombstone (carrying the deleted needle's checksum, quirk A23) and its
        index entry. Unknown or already deleted: NeedleNotFound; wrong cookie: CookieMismatch.

        The volume server also uses this to roll back a write whose replication failed
        (quirk A20)."""
        with self._lock:
            if self.read_only and not self.info.read_only_can_delete:
                raise self._read_only_error()
            if not self._writable_files:
                raise VolumeReadOnly("volume files are not writable", volume_id=self.id)
            hit = self._map.get(key)
            if hit is None:
                raise NeedleNotFound("needle not found", volume_id=self.id, key=f"{key:x}")
            offset, size = hit
            head = os.pread(self._dat, NEEDLE_HEADER_SIZE, offset)
            stored_cookie = NEEDLE_HEADER.unpack_from(head)[0] if len(head) == 16 else None
            if stored_cookie != cookie:
                raise CookieMismatch(
                    "cookie does not match the stored needle", volume_id=self.id, key=f"{key:x}"
                )
            crc_bytes = os.pread(self._dat, 4, offset + NEEDLE_HEADER_SIZE + size)
            checksum = int.from_bytes(crc_bytes, "big") if len(crc_bytes) == 4 else 0
            ts = self._next_append_ns()
            record = encode_tombstone(cookie, key, checksum, ts, self.version)
            self._append((record,), len(record), key, -1)
            deleted = self._map.delete(key)
            self._last_append_ns = ts
            return DeleteResult(size if deleted is None else deleted, self._durable())

    def _existing(self, key: int, cookie: int, hit: IndexHit) -> Needle | None:
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

    def _existing_meta(self, key: int, cookie: int, hit: IndexHit) -> NeedleLocation | None:
        """`_existing` without the data: its metadata and where the data lies."""
        try:
            return self._meta_at(key, cookie, hit, CookieMismatch)
        except CorruptNeedle as exc:
            log.error("overwriting a corrupt needle: %s", exc)
            return None

    def _same(self, old: Needle, new: Needle) -> bool:
        """An identical re-upload: same data and metadata (last-modified aside: a retry's
        clock differs). Never on TTL volumes or TTL needles, whose clock a re-upload
        restarts, as in the reference."""
        return self._same_meta(old, new) and old.data == new.data

    def _same_meta(self, old: Needle, new: Needle) -> bool:
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

    def check_writable(self) -> None:
        """Raise what a write would raise now for a closed or read-only volume (without the
        lock: a caller's early refusal, before it reads a body; the write checks again)."""
        self._check_writable()

    def _check_writable(self) -> None:
        if self._closed:
            raise VolumeReadOnly("volume is closed", volume_id=self.id)
        if self.read_only:
            raise self._read_only_error()

    def _read_only_error(self) -> StorageError:
        """Why a write is refused: `DiskFull` (507) while the volume is read-only only
        because its disk filled, which passes by itself; `VolumeReadOnly` otherwise."""
        if self.read_only_reason == DISK_FULL and not self.info.read_only and self._writable_files:
            return DiskFull(f"volume is read-only: {DISK_FULL}", volume_id=self.id)
        return VolumeReadOnly("volume is read-only", volume_id=self.id)

    def _next_append_ns(self) -> int:
        return max(self._clock_ns(), self._last_append_ns + 1)

    def _append(self, parts: Iterable[bytes | memoryview], total: int, key: int, size: int) -> int:
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
                    _pwrite_all(self._dat, part, pos)
                    pos += len(part)
            if pos != offset + total:
                raise CorruptVolume(
                    f"record of {pos - offset} bytes, expected {total}",
                    volume_id=self.id,
                    offset=offset,
                )
            entry = encode_entry(key, offset, size, self.layout)
            if self.fsync_mode is FsyncMode.ALWAYS:
                _pwrite_all(self._idx, entry, idx_at)
                sync_file(self._dat)
                sync_file(self._idx)
        except OSError as exc:
            self._truncate_back(offset, idx_at)
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
            self._truncate_back(offset, idx_at)
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

    def _flush_idx(self) -> None:
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
            _pwrite_all(self._idx, bytes(batch), self._idx_end - len(batch))
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

    def _truncate_back(self, dat_end: int, idx_end: int) -> None:
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

    def _durable(self) -> Future[None]:
        if self._committer is not None and self.fsync_mode is FsyncMode.GROUP:
            # The .idx is synced lazily: recovery rebuilds its lost tail from the .dat.
            return self._committer.request((self._dat,), lazy=(self._idx,))
        return SETTLED

    # ------------------------------------------------------------------ state changes

    def set_read_only(self, read_only: bool, *, persist: bool = True) -> None:
        """Mark the volume (persisted in `.vif` unless `persist` is False). A sealed volume's
        index becomes a memory-mapped `.sdx`; a writable one goes back to its index kind."""
        with self._lock:
            self._flush_idx()  # a sealed volume's .idx is complete on disk
            if not read_only:
                self.read_only_reason = ""
            if read_only == self.info.read_only:
                return
            new_info = replace(self.info, read_only=read_only)
            if self._writable_files:  # every file this may write or delete, before any is
                self._checked(".vif", ".vif.tmp", ".sdx", ".sdx.tmp")
            if persist and self._writable_files:
                self._write_vif(new_info)
            self.info = new_info
            old = self._map
            want = "mmap" if self.read_only or self.index_kind == "mmap" else "memory"
            if old.kind == want:
                old.merge()  # a sealed .sdx holds every entry
                return
            self._map = self._make_map(old.live_arrays(), old.stats, sealed=want == "mmap")
            old.close()
            if want == "memory":
                sdx, _ = self._checked(".sdx", ".sdx.tmp")
                sdx.unlink(missing_ok=True)

    def clear_disk_full(self) -> bool:
        """Take writes again after a full disk (the caller found room on it): clears the
        DISK_FULL reason, and only that one, and writes the `.idx` entries a failed flush
        kept (a failure sets the reason again). True if the volume is now writable."""
        with self._lock:
            if self.read_only_reason != DISK_FULL or self._closed:
                return False
            self.read_only_reason = ""
            self._flush_idx()
            return not self.read_only

    def files_missing(self) -> bool:
        """Whether `.dat` or `.idx` has been unlinked (or replaced) since the volume opened."""
        for fd, suffix in ((self._dat, ".dat"), (self._idx, ".idx")):
            if fd < 0:
                continue
            try:
                st = os.fstat(fd)
                on_disk = os.stat(self.path(suffix))
            except OSError:
                return True
            if st.st_nlink == 0 or (st.st_ino, st.st_dev) != (on_disk.st_ino, on_disk.st_dev):
                return True
        return False

    def sync(self) -> None:
        """Write the batched `.idx` entries and fsync `.dat` and `.idx` now."""
        with self._lock:
            self._flush_idx()
            self._sync_files()

    def _sync_files(self) -> None:
        if self._dat >= 0 and self._writable_files:
            sync_file(self._dat)
        if self._idx >= 0 and self._writable_files:
            sync_file(self._idx)

    def close(self) -> None:
        """Flush and close. Pending group commits are honoured first."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._flush_idx()
                if self._writable_files and self._committer is not None and self._idx >= 0:
                    # A round after every queued request on our fds: none of them may meet a
                    # closed (or reused) descriptor later.
                    self._committer.request((self._dat, self._idx)).result()
                elif self._writable_files:
                    self._sync_files()
            finally:
                if self._own_committer and self._committer is not None:
                    self._committer.close()
                self._map.close()
                self._close_fds()

    def _close_fds(self) -> None:
        for fd in (self._dat, self._idx):
            if fd >= 0:
                os.close(fd)
        self._dat = self._idx = -1
        self._idx_batch.clear()  # what close could not write, the next open rebuilds

    def removable_files(self) -> list[Path]:
        """Every path `destroy` unlinks; `PathEscapesDirectory` if one resolves outside the
        directory (check this before giving the volume up: `destroy` then deletes nothing)."""
        return self._checked(*VOLUME_FILE_SUFFIXES)

    def destroy(self) -> None:
        """Close and delete every file of the volume (none if one resolves outside the
        directory: `PathEscapesDirectory` is raised before the volume is closed)."""
        doomed = self.removable_files()
        self.close()
        for path in doomed:
            path.unlink(missing_ok=True)
        _sync_dir(self.directory)

    def __repr__(self) -> str:
        return f"<Volume {self.id} {self.path('.dat')} end={self._end} live={len(self._map)}>"


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


def _pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    # The usual case is one call; after a short one the rest is redone from the start (the
    # same bytes to the same place).
    if os.pwrite(fd, data, offset) == len(data):
        return
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        if n <= 0:
            raise OSError(f"short write at offset {offset}")
        view = view[n:]
        offset += n


def _load_idx(fd: int, layout: IdxLayout) -> tuple[LiveArrays, int]:
    """The whole entries of an `.idx` as native columns (keys, offsets in 8-byte units,
    sizes), and the file's size.

    One read straight into a numpy record array, byte-swapped in place: no intermediate copy
    of a file that holds 160 MB at 10M needles. The columns are strided views of that array.
    """
    size = os.fstat(fd).st_size if fd >= 0 else 0
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


_FALLOC_FL_KEEP_SIZE: Final = 1


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


def _write_file_durably(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
