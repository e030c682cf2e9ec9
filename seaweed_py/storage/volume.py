"""One volume: a `.dat` of needle records, its `.idx` log and its `.vif` (spec §4).

Files are `<collection>_<vid>.dat/.idx/.vif` (`<vid>.*` for the empty collection), plus a
`.sdx` (sorted index, memory-mapped) for sealed volumes and the `mmap` index kind. `path(ext)`
names each (storage/volume_paths.py); every file a volume creates or deletes is first checked to
resolve inside its directory.

`Volume` owns the files, the lock and the state every concern shares. Its methods are split
by concern, as SeaweedFS splits its Volume (`volume_loading.go`, `volume_read.go`,
`volume_write.go`; each module's docstring tells how its part works):

- `volume_loading.py`: create, open, recover a crashed tail, build the needle map, preallocate;
- `volume_read.py`: lookups, reads, verification of large needles, corrupt needles, reads of
  deleted needles;
- `volume_write.py`: appends, deletes, `.idx` batching, truncate-back, durability;
- `volume_tier.py`: the `.dat` in an S3 bucket (upload, download, loading, deletes);
- `volume_vacuum.py`: compaction (compact, commit, cleanup, and the recovery of an
  interrupted one), reads across a commit, expiry of TTL volumes;
- `volume_replica.py`: what replicas compare and exchange (needle states, digests, records
  for a peer, a peer's newer record or deletion applied, the snapshot a copy reads);
- `volume_scrub.py`: every live needle read back and checked, a batch at a time;
- here: the state and what it reports (`status`), sealing (`set_read_only`), taking writes
  again after a full disk, sync, close, destroy.

A module's functions take the volume as `self` and are bound in `Volume`'s body as methods: a
call costs what a method call costs (the read hot path stays one lookup and one pread), the
body lists the whole API in one place, and mypy checks each function against `Volume`. A
function only its own module calls stays a module function there; the private ones another
module calls (`_flush_idx`, `_meta_at`, `_make_map`) are bound too.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

import numpy as np

from seaweed_py.errors import VolumeNotFound
from seaweed_py.formats.collection import parse_collection
from seaweed_py.formats.idx import IDX4, decode_entry
from seaweed_py.formats.needle import VERSION_3, tail_length
from seaweed_py.formats.replica_placement import ReplicaPlacement
from seaweed_py.formats.superblock import SUPERBLOCK_SIZE, SuperBlock
from seaweed_py.formats.ttl import Ttl
from seaweed_py.formats.vif import RemoteFile, VolumeInfo
from seaweed_py.storage import volume_loading as _loading
from seaweed_py.storage import volume_read as _read
from seaweed_py.storage import volume_replica as _replica
from seaweed_py.storage import volume_scrub as _scrub
from seaweed_py.storage import volume_tier as _tier
from seaweed_py.storage import volume_vacuum as _vacuum
from seaweed_py.storage import volume_write as _write
from seaweed_py.storage.backend import DatFile, LocalDatFile
from seaweed_py.storage.group_commit import Committer, GroupCommitter, sync_file, write_file_durably
from seaweed_py.storage.integrity import CorruptNeedles, VerifiedMemo
from seaweed_py.storage.journal import Journal
from seaweed_py.storage.needle_map import (
    IndexHit,
    IndexStats,
    MemoryNeedleMap,
    NeedleMap,
    TailingMap,
)
from seaweed_py.storage.shared import (
    ATS_END,
    DAT_END,
    DELETED,
    FILES,
    FLAGS,
    HOLDER,
    IDX_END,
    INCARNATION,
    LAST_NS,
    MODIFIED,
    READ_ONLY,
    STAGE,
    VID,
    SharedLock,
    WorkerShare,
)
from seaweed_py.storage.stamps import STAMP_SUFFIX, StampLog
from seaweed_py.storage.volume_loading import DEFAULT_SIZE_LIMIT, RecoveryReport, sync_dir
from seaweed_py.storage.volume_paths import VOLUME_FILE_SUFFIXES, check_inside, volume_base_name
from seaweed_py.storage.volume_read import CheckedRecord, NeedleLocation
from seaweed_py.storage.volume_vacuum import CommitResult, Compaction, CompactResult
from seaweed_py.storage.volume_write import (
    DISK_FULL,
    IDX_BATCH_BYTES,
    DeleteResult,
    FsyncMode,
    WriteResult,
)

__all__ = [
    "DEFAULT_SIZE_LIMIT",
    "DISK_FULL",
    "CheckedRecord",
    "CommitResult",
    "CompactResult",
    "DeleteResult",
    "FsyncMode",
    "IndexHit",
    "NeedleLocation",
    "RecoveryReport",
    "Volume",
    "VolumeStatus",
    "WriteResult",
]

INDEX_KINDS: Final = ("memory", "mmap")


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
    remote_storage_name: str = ""
    """`s3.default`... for a tiered volume (its `size` is then the object's)."""
    remote_storage_key: str = ""
    garbage_ratio: float = 0.0
    """`Volume.garbage_level()`: what vacuum compares with its threshold."""


class Volume:
    """A volume open for reads and (unless read-only) writes. One writer at a time (a lock
    serialises writes and deletes); reads take no lock. Made by `create` or `open`; the
    methods bound below live in the module their section names (module docstring)."""

    def __init__(
        self,
        directory: Path,
        volume_id: int,
        collection: str,
        *,
        index_kind: str,
        fsync_mode: FsyncMode,
        committer: Committer | None,
        journal: Journal | None = None,
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
        self._journal = journal if fsync_mode is FsyncMode.GROUP else None
        self._own_committer = (
            committer is None and journal is None and fsync_mode is FsyncMode.GROUP
        )
        self._committer: Committer | None = GroupCommitter() if self._own_committer else committer
        self._clock_ns = clock_ns
        self._lock: threading.Lock | SharedLock = threading.Lock()
        self._share: WorkerShare | None = None  # set by `share`: served by several workers
        self._slot = 0  # index of this volume's words in the share
        self._idx_seen = 0  # .idx bytes the needle map has taken in (shared mode)
        self._files_seen = 0  # the share's count of vacuum commits this process follows
        self._incarnation = 0  # the claim of the share's slot this object belongs to
        self._pid = 0  # this process's, marking the share's slot while it holds the lock
        self._closing = False
        self._tail_lock = threading.Lock()
        self._dat = -1
        self._idx = -1
        self._closed = False
        self.data: DatFile = LocalDatFile(-1)
        """Where the `.dat` bytes are read from: the local file, or its object in a bucket."""
        self._pread = self.data.pread
        self.remote: RemoteFile | None = None
        """The remote file (`.vif` `files[0]`) of a tiered volume; None for a local one."""
        self.index_dirty = False
        """A tiered volume's `.idx` changed since it was last sent beside its data object."""
        self.index_unchecked = False
        """A tiered volume loaded whose `.idx` was not yet compared with the bucket's copy (a
        delete acknowledged just before a crash left it unsent, and `index_dirty` forgotten)."""
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
        self._idx_batch_full = IDX_BATCH_BYTES
        self._last_append_ns = 0
        self.modified_at_second = 0
        self._writable_files = True
        self.recovery = RecoveryReport()
        # Set when the volume stops taking writes on its own: DISK_FULL (cleared by itself once
        # the store finds room again, `clear_disk_full`) or an index write failure.
        self.read_only_reason = ""
        self._stamps = StampLog(self.path(STAMP_SUFFIX), volume_id, writable=False)
        """The stamp log (storage/stamps.py); opened by `_load` for a local volume."""
        self._corrupt = CorruptNeedles(volume_id)
        self._verified = VerifiedMemo()
        self._map: NeedleMap = MemoryNeedleMap(
            (np.empty(0, np.uint64), np.empty(0, np.uint64), np.empty(0, np.int32)), IndexStats()
        )
        # Vacuum (volume_vacuum.py): the compaction between compact and commit; how many
        # commits swapped the files in (a streamed read relocates when it changed); the
        # descriptors and map they replaced, kept for reads begun before the last one.
        self._compaction: Compaction | None = None
        self._generation = 0
        self._swapping = False
        self._retired: list[int] = []
        self._retired_map: NeedleMap | None = None
        self._newest: tuple[int, int] | None = None
        """(offset, AppendAtNs) of the newest live needle (None: to be looked up), for the
        expiry of TTL volumes."""

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

    def _use_data(self, data: DatFile) -> None:
        self.data = data
        self._pread = data.pread  # the read hot path's one call

    def _write_vif(self, info: VolumeInfo) -> None:
        vif, _ = self._checked(".vif", ".vif.tmp")
        write_file_durably(vif, info.to_json().encode())

    # ------------------------------------------------------------------ loading: volume_loading.py

    create = classmethod(_loading.create_volume)
    open = classmethod(_loading.open_volume)
    attach = classmethod(_loading.attach_volume)
    _make_map = _loading._make_map
    _load = _loading._load
    _append_ns_at = _loading._append_ns_at

    # ------------------------------------------------------------------ properties

    @property
    def read_only(self) -> bool:
        return (
            self.info.read_only
            or not self._writable_files
            or bool(self.read_only_reason)
            or self.remote is not None
        )

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
        share = self._share
        if share is not None:
            published = int(share.words[self._slot + DAT_END])
            if share.words[self._slot + FILES] != self._files_seen:
                return published  # of the files another worker's vacuum commit put in
            return max(self._end, published)
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
        self._catch_up()
        return self._map.stats.file_count

    @property
    def delete_count(self) -> int:
        self._catch_up()
        return self._map.stats.delete_count

    @property
    def deleted_byte_count(self) -> int:
        self._catch_up()
        return self._map.stats.deleted_bytes

    @property
    def content_size(self) -> int:
        self._catch_up()
        return self._map.stats.content_size

    @property
    def max_file_key(self) -> int:
        self._catch_up()
        return self._map.stats.max_key

    @property
    def live_count(self) -> int:
        return len(self._map)

    @property
    def needle_map(self) -> NeedleMap:
        return self._map

    def garbage_level(self) -> float:
        """Deleted bytes over content bytes (spec §9.1)."""
        self._catch_up()  # (with several workers: their writes and deletes too)
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
        self._catch_up()
        share = self._share
        if share is not None:  # another worker's write or delete may be the last change
            modified = int(share.words[self._slot + MODIFIED])
            self.modified_at_second = max(self.modified_at_second, modified)
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
            size=self.size,
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
            remote_storage_name=remote_name(self.remote),
            remote_storage_key=self.remote.key if self.remote is not None else "",
            garbage_ratio=self.garbage_level(),
        )

    # ------------------------------------------------------------------ reads: volume_read.py

    lookup = _read.lookup
    read = _read.read
    read_at = _read.read_at
    read_checked = _read.read_checked
    is_current = _read.is_current
    record_at = _read.record_at
    record_span = _read.record_span
    read_meta = _read.read_meta
    verified = _read.verified
    verify = _read.verify
    iter_data = _read.iter_data
    corrupt_needles = _read.corrupt_needles
    iter_needles = _read.iter_needles
    _meta_at = _read._meta_at

    # ------------------------------------------------------------------ writes: volume_write.py

    write = _write.write
    write_streamed = _write.write_streamed
    delete = _write.delete
    check_writable = _write.check_writable
    _flush_idx = _write._flush_idx

    # ------------------------------------------------------------------ replicas: volume_replica.py

    states = _replica.states
    digest = _replica.digest
    record_for_peer = _replica.record_for_peer
    apply_put = _replica.apply_put
    apply_delete = _replica.apply_delete
    repair_corrupt = _replica.repair_corrupt
    scrub_pass = _scrub.scrub_pass
    copy_snapshot = _replica.copy_snapshot
    read_for_copy = _replica.read_for_copy

    # ------------------------------------------------------------------ tiering: volume_tier.py

    tier_upload = _tier.tier_upload
    tier_download = _tier.tier_download
    upload_index = _tier.upload_index
    # ------------------------------------------------------------------ vacuum: volume_vacuum.py

    compact = _vacuum.compact
    commit_compact = _vacuum.commit_compact
    cleanup_compact = _vacuum.cleanup_compact
    relocate = _vacuum.relocate
    _await_swap = _vacuum.await_swap
    _swapped_since = _vacuum.swapped_since
    expired = _vacuum.expired
    expired_long_enough = _vacuum.expired_long_enough

    @property
    def compacting(self) -> bool:
        """Between `compact` and `commit_compact`/`cleanup_compact` (in any worker)."""
        return self._compaction is not None or self._compacting_shared()

    def _compacting_shared(self) -> bool:
        share = self._share
        return share is not None and share.words[self._slot + STAGE] != _vacuum.NONE

    # ------------------------------------------------------------------ several workers

    def share(self, share: WorkerShare, *, claim: bool) -> None:
        """Serve this volume from several processes (storage/shared.py). The process that
        opened (and repaired) it `claim`s a slot and publishes where its files end; the others,
        which `attach`ed it, follow that slot. From now on the volume's lock holds across the
        processes, every append's `.idx` entry is written before it is let go, and the needle
        map takes in the entries the others appended before each lookup."""
        slot = share.volume_slot(self.id, claim=claim)
        if slot is None:
            raise VolumeNotFound("volume has no slot in the worker share", volume_id=self.id)
        thread_lock = self._lock
        if isinstance(thread_lock, SharedLock):
            raise RuntimeError("already shared")
        with thread_lock:
            self._share, self._slot = share, slot
            self._pid = os.getpid()
            self._stamps.share(self._stamps_end)
            if claim:
                self._flush_idx()
                self._publish()
                if self.info.read_only:  # the slot starts clear: a saved mark must hold
                    share.words[slot + FLAGS] |= READ_ONLY
            self._idx_seen = self._idx_end
            self._files_seen = int(share.words[slot + FILES])
            self._incarnation = int(share.words[slot + INCARNATION])
            self._lock = SharedLock(
                share, share.volume_lock(slot), thread_lock, self._take_shared, self._publish
            )
            self._share_corrupt()
            if not isinstance(self._map, TailingMap):
                self._map = TailingMap(self._map, self._catch_up)

    def _take_shared(self) -> None:
        """The lock was just taken: adopt where the other workers left the files."""
        assert self._share is not None
        w, b = self._share.words, self._slot
        # A vacuum commit to follow, or to finish for a worker that died in it; not for an
        # object the store is letting go of (its volume tiered, replaced or deleted since).
        if not self._closing and not self.replaced_elsewhere():
            if self._compacting_shared() and _vacuum.dead_committer(self):
                _vacuum.recover_commit(self)
            if w[b + FILES] != self._files_seen:
                _vacuum.follow_commit(self)  # another worker committed a vacuum: new files
        self._refresh_marks()
        # Set: the lock's last holder died holding it (storage/shared.py `HOLDER`).
        self._stamps.adopt(int(w[b + ATS_END]), cut=bool(w[b + HOLDER]))
        w[b + HOLDER] = self._pid
        self._end = w[b + DAT_END]
        if not self._idx_batch:  # else: a failed flush left entries only this process has
            self._idx_end = w[b + IDX_END]
        self._last_append_ns = max(self._last_append_ns, w[b + LAST_NS])
        self.modified_at_second = max(self.modified_at_second, int(w[b + MODIFIED]))
        self._catch_up()

    def _publish(self) -> None:
        """Before the lock is let go: `.idx` written, the ends published."""
        assert self._share is not None
        if self._idx_batch and not self._closed:
            self._flush_idx()
        w, b = self._share.words, self._slot
        w[b + DAT_END] = self._end
        w[b + IDX_END] = self._idx_end - len(self._idx_batch)
        w[b + LAST_NS] = self._last_append_ns
        w[b + MODIFIED] = max(w[b + MODIFIED], self.modified_at_second)
        w[b + ATS_END] = self._stamps.end
        w[b + HOLDER] = 0
        self._idx_seen = max(self._idx_seen, self._idx_end)

    def _share_corrupt(self) -> None:
        """Corrupt needles found by any worker are listed (and logged once) by every worker,
        those of the files of this compaction revision (storage/integrity.py)."""
        share, slot, revision = self._share, self._slot, self.compact_revision
        assert share is not None
        self._corrupt.share(
            lambda record: share.note_corrupt(slot, revision, record),
            lambda: share.corrupt_of(slot, revision),
        )

    def _stamps_end(self) -> int:
        """Where the stamp log ends, as the last holder of the lock published it."""
        assert self._share is not None
        return int(self._share.words[self._slot + ATS_END])

    def recover_from(self, pid: int) -> bool:
        """Worker `pid` died: if it held this volume's lock, take the lock once (taking it
        after a dead holder cuts what that one left past the published ends:
        `_take_shared`). Whether it held it."""
        share = self._share
        if share is None or pid == 0 or share.words[self._slot + HOLDER] != pid:
            return False
        with self._lock:
            pass
        return True

    def replaced_elsewhere(self) -> bool:
        """Whether another worker deleted this volume or put another in its place since this
        object attached (a volume created again, mounted again, brought back from its bucket):
        the store lets go of it and attaches what is there now."""
        share = self._share
        if share is None:
            return False
        w, b = share.words, self._slot
        return bool(
            w[b + FLAGS] & DELETED
            or w[b + VID] != self.id + 1
            or w[b + INCARNATION] != self._incarnation
        )

    def _refresh_marks(self) -> None:
        """Adopt a read-only mark another worker set or cleared."""
        assert self._share is not None
        read_only = bool(self._share.words[self._slot + FLAGS] & READ_ONLY)
        if read_only != self.info.read_only:
            self.info = replace(self.info, read_only=read_only)

    def _catch_up(self) -> None:
        """Take into the needle map the `.idx` entries other workers appended."""
        share = self._share
        if share is None:
            return
        w, b = share.words, self._slot
        if w[b + FILES] != self._files_seen and not (self._closed or self._closing):
            # Another worker committed a vacuum: reattach under the lock (`_take_shared`),
            # which a commit holds until the share describes the new files. A thread of
            # this process holding it has reattached already: it never gets here.
            with self._lock:
                pass
        if w[b + IDX_END] <= self._idx_seen:
            return
        with self._tail_lock:
            end = w[b + IDX_END]
            seen = self._idx_seen
            if end <= seen or self._closed or w[b + FILES] != self._files_seen:
                return
            buf = os.pread(self._idx, end - seen, seen)
            inner = self._map.inner if isinstance(self._map, TailingMap) else self._map
            width = self.layout.entry_size
            for pos in range(0, len(buf) - width + 1, width):
                key, offset, size = decode_entry(buf, pos, self.layout)
                if offset and size >= 0:
                    inner.put(key, offset, size)
                else:
                    inner.delete(key)
            self._idx_seen = seen + len(buf) // width * width
            self._newest = None  # another worker's write may be the newest (TTL expiry)

    # ------------------------------------------------------------------ state changes

    def set_read_only(self, read_only: bool, *, persist: bool = True) -> None:
        """Mark the volume (persisted in `.vif` unless `persist` is False). A sealed volume's
        index becomes a memory-mapped `.sdx`; a writable one goes back to its index kind."""
        with self._lock:
            self._flush_idx()  # a sealed volume's .idx is complete on disk
            if not read_only and self.read_only_reason != _tier.TIERING:
                # The upload clears its own reason when it ends: a MarkWritable meanwhile must
                # not let a second upload or a compaction start.
                self.read_only_reason = ""
            if read_only == self.info.read_only:
                return
            new_info = replace(self.info, read_only=read_only)
            if self._writable_files:  # every file this may write or delete, before any is
                self._checked(".vif", ".vif.tmp", ".sdx", ".sdx.tmp")
            if persist and self._writable_files:
                self._write_vif(new_info)
            self.info = new_info
            if self._share is not None:  # each worker's map stays in memory: no .sdx to share
                flags = self._share.words[self._slot + FLAGS]
                self._share.words[self._slot + FLAGS] = (
                    flags | READ_ONLY if read_only else flags & ~READ_ONLY
                )
                return
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
        """Whether `.dat` or `.idx` has been unlinked (or replaced) since the volume opened.
        Not while a vacuum's commit renames its own files into place and reopens them."""
        generation = self._generation
        if self._committing():
            return False
        missing = self._files_replaced()
        return missing and not self._committing() and not self._swapped_since(generation)

    def _committing(self) -> bool:
        state = self._compaction
        if state is not None and state.committing:
            return True
        share = self._share  # another worker's commit, or one this worker is to follow
        return share is not None and (
            share.words[self._slot + STAGE] == _vacuum.COMMITTING
            or share.words[self._slot + FILES] != self._files_seen
        )

    def _files_replaced(self) -> bool:
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

    def sync_data(self) -> None:
        """fsync `.dat` and `.idx` without the lock (a journal checkpoint, which may run
        while a writer holding it waits for journal space). The batched `.idx` entries stay
        batched: recovery rebuilds them from `.dat`."""
        dat, idx = self._dat, self._idx
        if not self._writable_files or self._closed:
            return
        share = self._share
        if share is not None and share.words[self._slot + FILES] != self._files_seen:
            # Another worker committed a vacuum this one has not followed yet: these
            # descriptors are the old files, and the other workers append to the new ones.
            for suffix in (".dat", ".idx"):
                fd = os.open(self.path(suffix), os.O_RDONLY | os.O_CLOEXEC)
                try:
                    sync_file(fd)
                finally:
                    os.close(fd)
            return
        for fd in (dat, idx, self._stamps.fd):  # (the stamp log is synced lazily too)
            if fd >= 0:
                sync_file(fd)

    def _sync_files(self) -> None:
        if self._dat >= 0 and self._writable_files:
            sync_file(self._dat)
        if self._idx >= 0 and self._writable_files:
            sync_file(self._idx)
        self._stamps.sync()

    def close(self) -> None:
        """Flush and close. Pending group commits are honoured first."""
        self._closing = True  # (with several workers: taking the lock follows nothing)
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._compaction is not None:
                # A copy under way stops; its files go at the next open (an uncommitted
                # vacuum is rolled back).
                self._compaction.aborted = True
                self._compaction = None
            try:
                self._flush_idx()
                if self._writable_files and self._journal is not None:
                    self._sync_files()  # what the journal holds of it is then durable twice
                elif self._writable_files and self._committer is not None and self._idx >= 0:
                    # A round after every queued request on our fds: none of them may meet a
                    # closed (or reused) descriptor later.
                    fds = tuple(fd for fd in (self._dat, self._idx, self._stamps.fd) if fd >= 0)
                    self._committer.request(fds).result()
                elif self._writable_files:
                    self._sync_files()
            finally:
                if self._own_committer and self._committer is not None:
                    self._committer.close()
                self._map.close()
                self._close_fds()

    def _close_fds(self) -> None:
        for fd in (self._dat, self._idx, *self._retired):
            if fd >= 0:
                os.close(fd)
        self._dat = self._idx = -1
        self._retired = []
        if self._retired_map is not None:
            self._retired_map.close()
            self._retired_map = None
        self._stamps.close()
        self._idx_batch.clear()  # what close could not write, the next open rebuilds

    def removable_files(self) -> list[Path]:
        """Every path `destroy` unlinks; `PathEscapesDirectory` if one resolves outside the
        directory (check this before giving the volume up: `destroy` then deletes nothing)."""
        return self._checked(*VOLUME_FILE_SUFFIXES)

    def destroy(self) -> None:
        """Close and delete every file of the volume (none if one resolves outside the
        directory: `PathEscapesDirectory` is raised before the volume is closed). The disk's
        journal checkpoints first: none of its entries may be replayed into a volume that
        later takes this one's id."""
        doomed = self.removable_files()
        if self._share is not None:
            with self._lock:  # no worker is appending: the others find it deleted
                self._share.words[self._slot + FLAGS] |= DELETED
        self.close()
        if self._journal is not None:
            self._journal.checkpoint()
        for path in doomed:
            path.unlink(missing_ok=True)
        sync_dir(self.directory)

    def __repr__(self) -> str:
        return f"<Volume {self.id} {self.path('.dat')} end={self._end} live={len(self._map)}>"


def remote_name(remote: RemoteFile | None) -> str:
    """`<type>.<id>` of a remote file, `""` for none."""
    return f"{remote.backend_type}.{remote.backend_id}" if remote is not None else ""
