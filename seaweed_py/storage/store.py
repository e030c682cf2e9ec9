"""The volumes of one volume server, across its data directories.

Each directory (`DiskLocation`) holds at most `max_volumes` volumes and a `vol_dir.uuid` naming
it, so the master can tell when one directory is served twice. On `load()` every volume found
is opened (directories in parallel); a volume is recognised by its `.idx` or `.vif` file, and
its collection is the text before the last `_` of the base name (spec §4.1), so collection
names may contain `_`. An `.idx` or `.vif` whose name is not one `volume_base_name` builds
(storage/volume_paths.py: a collection `formats.collection` refuses, a vid with leading zeros)
is skipped with one log line and never opened.

Collection names given to `allocate` and `delete_collection` are parsed by
`formats.collection.parse_collection` (`InvalidCollection`, 400); volume files are checked to
resolve inside their directory before they are created or deleted (`PathEscapesDirectory`).

A volume whose disk filled turns read-only (`DISK_FULL`); `reopen_full_volumes()`, which the
volume server calls every pulse, lets it take writes again once its directory has room
(`DISK_FULL_MARGIN`).

Tiered volumes (storage/volume_tier.py) are read through `backends` (storage/backend), which
the store is given at construction (empty: the server has no S3 settings; its tiered volumes
then fail to load, one log line each, and the rest serve). A tiered volume takes no slot of its
directory. `tier_upload`, `tier_download` and `mount_remote` are the volume server's tiering
calls; a deleted tiered volume leaves its object in the bucket (another holder may still read
it; docs/compat.md).
Vacuum (`compact_volume`, `commit_compaction`, `cleanup_compaction`; storage/volume_vacuum.py)
copies at most `compaction_bytes_per_second` (`-compactionMBps`) and is refused when the
volume's disk has no room for the copy. TTL volumes that expired (`expired_volumes`) are left
out of heartbeats, and deleted once expired long enough (`remove_expired_volumes`, every
pulse).
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from seaweed_py.errors import (
    BadRequest,
    Conflict,
    DirectoryInUse,
    DiskFull,
    NoFreeSlots,
    VolumeNotFound,
    WeedError,
)
from seaweed_py.formats.collection import parse_collection
from seaweed_py.formats.replica_placement import ReplicaPlacement
from seaweed_py.formats.ttl import Ttl
from seaweed_py.formats.vif import RemoteFile
from seaweed_py.storage.backend import Backends
from seaweed_py.storage.directories import check_directory
from seaweed_py.storage.journal import (
    DEFAULT_RING,
    JOURNAL_FILE,
    Journal,
    JournalEntry,
    read_entries,
)
from seaweed_py.storage.shared import DELETED, FLAGS, WorkerShare
from seaweed_py.storage.volume import (
    DEFAULT_SIZE_LIMIT,
    DISK_FULL,
    CommitResult,
    CompactResult,
    FsyncMode,
    Volume,
    VolumeStatus,
)
from seaweed_py.storage.volume_copy import IncomingCopy, remove_partial_copies
from seaweed_py.storage.volume_loading import sync_dir
from seaweed_py.storage.volume_paths import parse_volume_file_name, volume_base_name

__all__ = ["DISK_FULL_MARGIN", "DiskLocation", "Store", "held_directory"]

log = logging.getLogger(__name__)

DISK_FULL_MARGIN: Final = 64 << 20
"""Free bytes a volume's directory needs before a volume read-only because its disk filled takes
writes again, or 1 % of the file system if that is more (the default of `weed volume
-minFreeSpace`, below which the reference stops writing): room for a few large needles, so a
disk hovering at full does not flip its volumes between writable and full every pulse."""

_UUID_FILE = "vol_dir.uuid"
_LOCK_FILE = ".weedpy.lock"


@dataclass(frozen=True)
class DiskLocation:
    """One data directory. `max_volumes` 0 means: as many as its free space holds."""

    directory: str | os.PathLike[str]
    max_volumes: int = 8

    @property
    def path(self) -> Path:
        return Path(self.directory)


class Store:
    """Every volume of one server. Thread-safe for admin calls; `get` takes no lock."""

    def __init__(
        self,
        locations: Sequence[DiskLocation],
        *,
        index_kind: str = "memory",
        fsync_mode: FsyncMode = FsyncMode.GROUP,
        large_disk: bool = False,
        size_limit: int = DEFAULT_SIZE_LIMIT,
        clock_ns: Callable[[], int] = time.time_ns,
        journal_ring: int = DEFAULT_RING,
        disk_usage: Callable[[Path], tuple[int, int, int]] = shutil.disk_usage,
        backends: Backends | None = None,
        compaction_bytes_per_second: int = 0,
    ) -> None:
        """With `-fsync=group` each directory gets a write-ahead journal of `journal_ring`
        bytes (storage/journal.py): a commit round is one fdatasync of it.
        `disk_usage`: (total, used, free) bytes of the file system holding a directory.
        `compaction_bytes_per_second`: how fast a vacuum may copy (0: no limit)."""
        if not locations:
            raise ValueError("a store needs at least one directory")
        self.locations = list(locations)
        self.index_kind = index_kind
        self.fsync_mode = fsync_mode
        self.large_disk = large_disk
        self._size_limit = size_limit
        self._clock_ns = clock_ns
        self._journal_ring = journal_ring
        self.journals: list[Journal | None] = [None] * len(self.locations)
        self._share: WorkerShare | None = None
        self._epoch = 0
        self._volumes: dict[int, Volume] = {}
        self._where: dict[int, int] = {}  # volume id -> index into locations
        self._copies: dict[int, tuple[int, IncomingCopy]] = {}  # copies under way: slots held
        self._uuids: list[str] = []
        self._lock = threading.Lock()
        self.load_errors: dict[str, str] = {}  # file base -> why it could not be opened
        self.disk_usage = disk_usage
        self.compaction_bytes_per_second = compaction_bytes_per_second
        self._locks: list[int] = []  # fds holding each directory's lock
        self.backends = backends or Backends()

    # ------------------------------------------------------------------ start-up

    def load(self) -> None:
        """Check the directories, lock them, read or create their uuids, open every volume.
        A directory that is missing, not a directory or not writable raises
        `DirectoryUnusable` (a mistyped `-dir` is refused, as `weed volume` refuses it, not
        created); one another process holds raises `DirectoryInUse`."""
        for loc in self.locations:
            check_directory(loc.directory, "dir")
        try:
            for loc in self.locations:
                self._locks.append(_lock_directory(loc.path))
        except DirectoryInUse:
            for fd in self._locks:
                os.close(fd)
            self._locks.clear()
            raise
        self._uuids = [_directory_uuid(loc.path) for loc in self.locations]
        with ThreadPoolExecutor(max_workers=len(self.locations)) as pool:
            found = list(pool.map(self._load_location, range(len(self.locations))))
        for i, journal in enumerate(self.journals):
            path = self.locations[i].path / JOURNAL_FILE
            if journal is not None:
                journal.begin()  # every volume replayed and repaired: a checkpoint
            elif path.exists():  # replayed: stale from now on, as appends go on
                path.unlink()
                sync_dir(self.locations[i].path)
        for i, volumes in enumerate(found):
            for v in volumes:
                if v.id in self._volumes:
                    other = self._volumes[v.id]
                    log.error(
                        "volume %d found twice: %s and %s; keeping the first",
                        v.id,
                        other.path(".dat"),
                        v.path(".dat"),
                    )
                    v.close()
                    continue
                self._volumes[v.id] = v
                self._where[v.id] = i

    def _load_location(self, i: int) -> list[Volume]:
        """The volumes of location `i`, opened with its journal's entries replayed."""
        loc = self.locations[i]
        remove_partial_copies(loc.path)
        entries, end = read_entries(loc.path / JOURNAL_FILE)
        replay: dict[int, list[JournalEntry]] = {}
        for e in entries:
            replay.setdefault(e.volume_id, []).append(e)
        if self.fsync_mode is FsyncMode.GROUP:
            self.journals[i] = Journal(
                loc.path,
                functools.partial(self._sync_location, i),
                ring=self._journal_ring,
                start=end,
            )
        failed: set[int] = set()
        seen: set[tuple[str, int]] = set()
        strangers: set[str] = set()
        volumes: list[Volume] = []
        for entry in sorted(os.listdir(loc.path)):
            parsed = parse_volume_file_name(entry)
            if parsed is None:
                self._skip_stranger(loc.path, entry, strangers)
                continue
            if parsed in seen:
                continue
            seen.add(parsed)
            collection, vid = parsed
            base = str(loc.path / volume_base_name(collection, vid))
            if not os.path.exists(base + ".dat") and not _names_remote_file(base + ".vif"):
                continue
            try:
                volumes.append(self._open(loc.path, vid, collection, replay.get(vid, ()), i))
            except (WeedError, OSError, ValueError) as exc:
                log.error("cannot load volume %s: %s", base, exc)
                self.load_errors[base] = str(exc)
                failed.add(vid)
        if failed & replay.keys():
            _keep_aside(loc.path / JOURNAL_FILE)
        return volumes

    def _skip_stranger(self, directory: Path, entry: str, strangers: set[str]) -> None:
        """Log (once per base name) an `.idx`/`.vif` whose name no volume of ours has."""
        stem, dot, ext = entry.rpartition(".")
        if not dot or ext not in ("idx", "vif") or stem in strangers:
            return
        strangers.add(stem)
        why = "not a volume file name (<collection>_<vid>, formats/collection.py); not opened"
        log.error("skipping %s.*: %s", directory / stem, why)
        self.load_errors[str(directory / stem)] = why

    def _open(
        self,
        directory: Path,
        vid: int,
        collection: str,
        replay: Sequence[JournalEntry] = (),
        i: int = 0,
    ) -> Volume:
        """Open volume `vid` of location `i` (`replay`: its journal entries, at load)."""
        return Volume.open(
            directory,
            vid,
            collection=collection,
            index_kind=self.index_kind,
            fsync_mode=self.fsync_mode,
            journal=self.journals[i],
            replay=replay,
            size_limit=self._size_limit,
            clock_ns=self._clock_ns,
            backends=self.backends,
        )

    # ------------------------------------------------------------------ several workers

    def share_workers(self, share: WorkerShare) -> None:
        """After `load`: let other worker processes `attach` to this store's volumes and
        journals (storage/shared.py)."""
        with self._lock:
            for i, journal in enumerate(self.journals):
                if journal is not None:
                    journal.share(share, i, claim=True)
            for v in self._volumes.values():
                v.share(share, claim=True)
            self._share, self._epoch = share, share.epoch

    def attach(self, share: WorkerShare) -> None:
        """Instead of `load`, in a worker that did not load the store: follow the volumes
        and journals the loading worker shares. Changes no file."""
        self._share, self._epoch = share, share.epoch
        self._uuids = [_directory_uuid(loc.path) for loc in self.locations]
        for i, loc in enumerate(self.locations):
            if self.fsync_mode is FsyncMode.GROUP:
                journal = Journal(
                    loc.path, functools.partial(self._sync_location, i), ring=self._journal_ring
                )
                journal.share(share, i, claim=False)
                self.journals[i] = journal
        self._follow()

    def _follow(self) -> None:
        """Open the volumes other workers created, let go of those they deleted, adopt
        read-only marks (a worker that sees the share's epoch move calls this)."""
        share = self._share
        assert share is not None
        with self._lock:
            self._epoch = share.epoch
            for vid, v in list(self._volumes.items()):
                tiered = _names_remote_file(str(v.path(".vif")))
                if v.replaced_elsewhere() or tiered != (v.remote is not None):
                    # Gone, or tiered or brought back by another worker: let go of this
                    # object (a changed one is attached again below).
                    del self._volumes[vid]
                    del self._where[vid]
                    v.close()
                else:
                    v._refresh_marks()
            for i, loc in enumerate(self.locations):
                for collection, vid in _volume_names(loc.path):
                    if vid in self._volumes:
                        continue
                    slot = share.volume_slot(vid, claim=False)
                    if slot is None or share.words[slot + FLAGS] & DELETED:
                        continue  # a copy under way (or left by a dead worker), or deleted
                    try:
                        self._volumes[vid] = Volume.attach(
                            loc.path,
                            vid,
                            share,
                            collection=collection,
                            fsync_mode=self.fsync_mode,
                            journal=self.journals[i],
                            size_limit=self._size_limit,
                            clock_ns=self._clock_ns,
                            backends=self.backends,
                        )
                        self._where[vid] = i
                    except (WeedError, OSError, ValueError) as exc:
                        log.error("cannot follow volume %d in %s: %s", vid, loc.path, exc)

    def _changed(self) -> None:
        """Tell the other workers that volumes came, went or changed marks."""
        if self._share is not None:
            self._share.bump()
            self._epoch = self._share.epoch

    # ------------------------------------------------------------------ queries

    def get(self, volume_id: int) -> Volume | None:
        share = self._share
        if share is not None and share.words[1] != self._epoch:
            self._follow()
        return self._volumes.get(volume_id)

    def _current(self) -> dict[int, Volume]:
        """The volumes, after following what other workers changed."""
        share = self._share
        if share is not None and share.words[1] != self._epoch:
            self._follow()
        return self._volumes

    def volumes(self) -> list[Volume]:
        return list(self._current().values())

    def volume_infos(self) -> list[VolumeStatus]:
        return [v.status() for v in list(self._current().values())]

    @property
    def location_uuids(self) -> list[str]:
        return list(self._uuids)

    def _capacity(self, i: int) -> int:
        loc = self.locations[i]
        if loc.max_volumes > 0:
            return loc.max_volumes
        # 0 = auto: what the free space holds, on top of what is already there.
        free = shutil.disk_usage(loc.path).free
        return self._count(i) + max(0, free // max(1, self._size_limit))

    def _count(self, i: int) -> int:
        """Volumes taking a slot of directory `i` (a tiered one takes none), copies under way
        included."""
        held = sum(
            1
            for vid, w in self._where.items()
            if w == i and (v := self._volumes.get(vid)) is not None and v.remote is None
        )
        return held + sum(1 for w, _ in self._copies.values() if w == i)

    @property
    def max_volume_count(self) -> int:
        self._current()
        return sum(self._capacity(i) for i in range(len(self.locations)))

    @property
    def free_slots(self) -> int:
        self._current()
        return sum(max(0, self._capacity(i) - self._count(i)) for i in range(len(self.locations)))

    @property
    def max_file_key(self) -> int:
        return max((v.max_file_key for v in list(self._current().values())), default=0)

    @property
    def volume_size_limit(self) -> int:
        return self._size_limit

    @volume_size_limit.setter
    def volume_size_limit(self, value: int) -> None:
        """Adopt the master's limit (sent in heartbeat answers) for every volume."""
        self._size_limit = value
        for v in list(self._volumes.values()):
            v.size_limit = value

    # ------------------------------------------------------------------ admin

    def allocate(
        self,
        volume_id: int,
        *,
        collection: str = "",
        replica_placement: ReplicaPlacement | None = None,
        ttl: Ttl | None = None,
        preallocate: int = 0,
    ) -> Volume:
        """Create a volume in the directory with the fewest volumes that has a free slot,
        reserving `preallocate` bytes of disk for its `.dat` (`Volume.create`)."""
        collection = parse_collection(collection)
        self._current()  # a volume another worker allocated is a conflict here too
        with self._lock:
            if volume_id in self._volumes:
                raise Conflict("volume already exists", volume_id=volume_id)
            candidates = [
                i for i in range(len(self.locations)) if self._count(i) < self._capacity(i)
            ]
            if not candidates:
                raise NoFreeSlots("no free volume slot on this server", volume_id=volume_id)
            i = min(candidates, key=self._count)
            v = Volume.create(
                self.locations[i].path,
                volume_id,
                collection=collection,
                replica_placement=replica_placement,
                ttl=ttl,
                large_disk=self.large_disk,
                index_kind=self.index_kind,
                fsync_mode=self.fsync_mode,
                journal=self.journals[i],
                size_limit=self._size_limit,
                clock_ns=self._clock_ns,
                preallocate=preallocate,
            )
            if self._share is not None:
                v.share(self._share, claim=True)
            self._volumes[volume_id] = v
            self._where[volume_id] = i
        self._changed()
        return v

    def delete_volume(self, volume_id: int, *, only_empty: bool = False) -> None:
        """Close the volume and delete its files."""
        self._current()  # (one another worker copied in is deleted here too)
        with self._lock:
            v = self._volumes.get(volume_id)
            if v is None:
                raise VolumeNotFound("volume not found on this server", volume_id=volume_id)
            if only_empty and v.live_count:
                raise Conflict("volume is not empty", volume_id=volume_id, needles=v.live_count)
            v.removable_files()  # a file outside the directory: refused, the volume stays
            del self._volumes[volume_id]
            del self._where[volume_id]
        v.destroy()
        self._changed()

    def delete_collection(self, collection: str) -> list[int]:
        """Delete every volume of `collection`; returns their ids. If a file of one resolves
        outside its directory, none is deleted (`PathEscapesDirectory`)."""
        collection = parse_collection(collection)
        self._current()
        with self._lock:
            doomed = [v for v in self._volumes.values() if v.collection == collection]
            for v in doomed:
                v.removable_files()
            for v in doomed:
                del self._volumes[v.id]
                del self._where[v.id]
        for v in doomed:
            v.destroy()
        if doomed:
            self._changed()
        return [v.id for v in doomed]

    def begin_copy(
        self, volume_id: int, collection: str, dat_size: int, source: str
    ) -> IncomingCopy:
        """Start receiving a copy of volume `volume_id` (storage/volume_copy.py) in the
        directory with the fewest volumes that has a free slot and room for `dat_size` bytes
        (and `DISK_FULL_MARGIN` more). A volume this server holds is a `Conflict`, unless its
        files were deleted under it (scenario 12): that one is dropped and copied afresh."""
        collection = parse_collection(collection)
        self._current()  # a volume another worker holds is a conflict here too
        with self._lock:
            old = self._volumes.get(volume_id)
            if old is not None and not old.files_missing():
                raise Conflict("volume already exists", volume_id=volume_id)
            if volume_id in self._copies:
                raise Conflict("volume is being copied here already", volume_id=volume_id)
            if old is not None:
                log.warning("volume %d lost its files: dropped, to be copied again", volume_id)
                del self._volumes[volume_id]
                del self._where[volume_id]
                old.destroy()  # what is left of its files
                if self._share is not None:
                    self._share.bump()  # the other workers let go of it too
            candidates = [
                i for i in range(len(self.locations)) if self._count(i) < self._capacity(i)
            ]
            if not candidates:
                raise NoFreeSlots("no free volume slot on this server", volume_id=volume_id)
            roomy = [i for i in candidates if self._room_for(i, dat_size)]
            if not roomy:
                raise DiskFull(
                    f"no directory has {dat_size} bytes free for the copy", volume_id=volume_id
                )
            i = min(roomy, key=self._count)
            copy = IncomingCopy(self, self.locations[i].path, volume_id, collection, source)
            self._copies[volume_id] = (i, copy)
        return copy

    def _room_for(self, i: int, size: int) -> bool:
        try:
            total, _, free = self.disk_usage(self.locations[i].path)
        except OSError:
            return False
        return free >= size + max(DISK_FULL_MARGIN, total // 100)

    def finish_copy(self, copy: IncomingCopy) -> Volume:
        """Open a committed copy and serve it (IncomingCopy.commit calls this)."""
        i, _ = self._copies[copy.volume_id]
        try:
            v = self._open(copy.directory, copy.volume_id, copy.collection)
            if self._share is not None:
                v.share(self._share, claim=True)
        except BaseException:
            with self._lock:
                self._copies.pop(copy.volume_id, None)
            raise
        with self._lock:
            self._copies.pop(copy.volume_id, None)
            self._volumes[v.id] = v
            self._where[v.id] = i
        self._changed()  # every worker serves it from now on
        return v

    def forget_copy(self, copy: IncomingCopy) -> None:
        with self._lock:
            self._copies.pop(copy.volume_id, None)

    def reopen_full_volumes(self) -> list[int]:
        """Let volumes read-only because their disk filled take writes again where their
        directory has room now; their ids. Probes disks (statvfs) only when some volume is
        full: call it off the event loop."""
        reopened: list[int] = []
        room: dict[Path, bool] = {}
        full = [v for v in list(self._volumes.values()) if v.read_only_reason == DISK_FULL]
        for v in sorted(full, key=lambda v: v.id):
            if v.directory not in room:
                room[v.directory] = self._has_room(v.directory)
            if room[v.directory] and v.clear_disk_full():
                log.info("volume %d takes writes again: its disk has room", v.id)
                reopened.append(v.id)
        return reopened

    def _has_room(self, directory: Path) -> bool:
        try:
            total, _, free = self.disk_usage(directory)
        except OSError as exc:
            log.warning("cannot read the free space of %s: %s", directory, exc)
            return False
        return free >= max(DISK_FULL_MARGIN, total // 100)

    # ------------------------------------------------------------------ tiering

    def require(self, volume_id: int) -> Volume:
        """The volume, or `VolumeNotFound`."""
        v = self._volumes.get(volume_id)
        if v is None:
            raise VolumeNotFound("volume not found on this server", volume_id=volume_id)
        return v

    _volume = require

    def check_tierable(self, volume_id: int, dest: str, collection: str | None) -> None:
        """What `tier_upload` would refuse before it starts: no such volume, another
        collection, a destination no setting names (`BackendNotFound`)."""
        v = self._volume(volume_id)
        _check_collection(v, collection)
        if v.remote is None:
            self.backends.get(dest)

    def dat_size(self, volume_id: int) -> int:
        return self._volume(volume_id).size

    def tier_upload(
        self,
        volume_id: int,
        dest: str,
        *,
        keep_local: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[RemoteFile, bool]:
        """Move volume `volume_id`'s `.dat` to the bucket `dest` names (storage/volume_tier.py);
        (the remote file, whether it was there already: then its `.idx` is sent beside the
        object again, so that a holder mounting it next misses no delete made here). Blocks for
        the whole upload."""
        v = self._volume(volume_id)
        if v.remote is not None:
            v.upload_index(force=True)
            return v.remote, True
        uploaded = v.tier_upload(
            self.backends.get(dest), self.backends, keep_local=keep_local, progress=progress
        )
        self._changed()
        return uploaded

    def check_downloadable(self, volume_id: int, collection: str | None) -> RemoteFile:
        v = self._volume(volume_id)
        _check_collection(v, collection)
        if v.remote is None:
            raise Conflict(f"volume {volume_id} is already on local disk", volume_id=volume_id)
        return v.remote

    def tier_download(
        self,
        volume_id: int,
        *,
        keep_remote: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> RemoteFile:
        """Bring volume `volume_id`'s `.dat` back and reopen it as a local volume."""
        v = self._volume(volume_id)
        held = v.info.read_only  # in memory (a tiered vacuum's hold): passed on, not saved
        remote = v.tier_download(keep_remote=keep_remote, progress=progress)
        with self._lock:
            fresh = self._open(v.directory, v.id, v.collection, i=self._where.get(v.id, 0))
            if held and not fresh.info.read_only:
                fresh.set_read_only(True, persist=False)
            if self._share is not None:
                fresh.share(self._share, claim=True)
            self._volumes[volume_id] = fresh
        self._changed()
        return remote

    def mount_remote(
        self, volume_id: int, collection: str, source: str, *, key: str = "", replace: bool = False
    ) -> Volume:
        """Serve volume `volume_id` from the bucket `source` names, from the `.idx` and `.vif`
        beside its data object (`key`, or the volume's newest upload): no local byte of it is
        needed. With `replace`, this server's own copy (a replica) is given up first; without,
        a volume already here is a `Conflict`."""
        from seaweed_py.storage.volume_tier import fetch_sidecars

        collection = parse_collection(collection)
        store = self.backends.get(source)
        with self._lock:
            old = self._volumes.get(volume_id)
            if old is not None:
                if old.remote is not None and (not key or old.remote.key == key):
                    return old
                if not replace:
                    raise Conflict("volume already exists", volume_id=volume_id)
                old.removable_files()
            candidates = [
                i for i in range(len(self.locations)) if self._count(i) < self._capacity(i)
            ]
            i = self._where.get(volume_id, min(candidates or [0], key=self._count))
            directory = self.locations[i].path
        base = volume_base_name(collection, volume_id)
        # Read before the copy it replaces is given up: a bucket that fails leaves it serving.
        sidecars = fetch_sidecars(store, base, key)
        # A copy marked read-only (a tiered vacuum holds deletes on every holder until they
        # all read one object) passes the mark to what replaces it.
        held = old is not None and old.info.read_only
        if old is not None:
            with self._lock:
                self._volumes.pop(volume_id, None)
                self._where.pop(volume_id, None)
            old.destroy()
        sidecars.write(directory, base)
        v = self._open(directory, volume_id, collection, i=i)
        if held:
            v.set_read_only(True, persist=False)
        if self._share is not None:
            v.share(self._share, claim=True)
        with self._lock:
            self._volumes[volume_id] = v
            self._where[volume_id] = i
        self._changed()
        log.info(
            "volume %d mounted from %s as %s", volume_id, store.name, v.remote and v.remote.key
        )
        return v

    def forget_upload(self, volume_id: int, source: str, key: str) -> list[str]:
        """Delete an earlier upload `key` of volume `volume_id` from the bucket `source` names
        (`volume_tier.forget_upload`); the keys deleted. Blocks on the network."""
        from seaweed_py.storage.volume_tier import forget_upload

        v = self._volume(volume_id)
        in_use = v.remote.key if v.remote is not None else None
        base = volume_base_name(v.collection, volume_id)
        return forget_upload(self.backends.get(source), self.backends.cache, base, key, in_use)

    def list_uploads(self, volume_id: int, source: str) -> list[str]:
        """The data keys of every upload of volume `volume_id` in the bucket `source` names
        (`volume_tier.list_uploads`), whether or not a holder reads it. Blocks on the network."""
        from seaweed_py.storage.volume_tier import list_uploads

        v = self._volume(volume_id)
        return list_uploads(self.backends.get(source), volume_base_name(v.collection, volume_id))

    def upload_dirty_indexes(self) -> list[int]:
        """Send the `.idx` of each tiered volume that deletes changed beside its data object
        (`Volume.upload_index`); the ids sent. Blocks on the network: off the event loop."""
        sent: list[int] = []
        for v in list(self._volumes.values()):
            try:
                if v.upload_index():
                    sent.append(v.id)
            except (WeedError, OSError) as exc:  # OSError: replaced (a mount) or deleted meanwhile
                if self._volumes.get(v.id) is v:
                    log.warning("volume %d: .idx not sent to its bucket yet: %s", v.id, exc)
        return sent

    def mark_read_only(self, volume_id: int, read_only: bool, *, persist: bool = True) -> None:
        self._held(volume_id).set_read_only(read_only, persist=persist)
        self._changed()

    def _held(self, volume_id: int) -> Volume:
        v = self.get(volume_id)
        if v is None:
            raise VolumeNotFound("volume not found on this server", volume_id=volume_id)
        return v

    # ------------------------------------------------------------------ vacuum and TTL

    def compact_volume(self, volume_id: int, *, preallocate: int = 0) -> CompactResult:
        """Copy the volume's live needles aside (`Volume.compact`), at most
        `compaction_bytes_per_second`; `DiskFull` up front when its disk lacks the room.
        Blocks for the whole copy."""
        v = self._held(volume_id)
        try:
            free: int | None = self.disk_usage(v.directory)[2]
        except OSError as exc:
            log.warning("cannot read the free space of %s: %s", v.directory, exc)
            free = None
        return v.compact(
            bytes_per_second=self.compaction_bytes_per_second,
            preallocate=preallocate,
            disk_free=free,
        )

    def commit_compaction(self, volume_id: int) -> CommitResult:
        return self._held(volume_id).commit_compact()

    def cleanup_compaction(self, volume_id: int) -> bool:
        return self._held(volume_id).cleanup_compact()

    def expired_volumes(self) -> list[int]:
        """TTL volumes whose newest needle outlived the volume's TTL (spec §9.5): left out of
        heartbeats, so the master forgets them."""
        now = self._clock_ns() / 1e9
        return [v.id for v in list(self._current().values()) if v.expired(now)]

    def remove_expired_volumes(self) -> list[int]:
        """Delete the TTL volumes expired for `min(TTL/10, 10 min)` more; their ids. Blocks:
        call it off the event loop."""
        now = self._clock_ns() / 1e9
        removed = []
        for v in [v for v in list(self._current().values()) if v.expired_long_enough(now)]:
            try:
                self.delete_volume(v.id)
            except (WeedError, OSError) as exc:
                log.error("cannot delete expired volume %d: %s", v.id, exc)
                continue
            log.info("deleted volume %d: its TTL (%s) expired", v.id, v.ttl)
            removed.append(v.id)
        return removed

    def _sync_location(self, i: int) -> None:
        """Sync every volume of location `i`: a checkpoint of its journal."""
        for vid, where in list(self._where.items()):
            v = self._volumes.get(vid)
            if where == i and v is not None:
                v.sync_data()

    def close(self) -> None:
        """Close every volume (each syncs), then the journals."""
        with self._lock:
            volumes = list(self._volumes.values())
            self._volumes.clear()
            self._where.clear()
        _close_all(volumes)
        for i, journal in enumerate(self.journals):
            if journal is not None:
                journal.close()
                self.journals[i] = None
        for fd in self._locks:
            os.close(fd)  # releases the flock
        self._locks.clear()

    def recover_from(self, pid: int) -> list[int]:
        """Worker `pid` died: take once the lock of each volume it held, so that what it left
        past the published ends is cut now (`Volume.recover_from`), not at the next
        append, and delete the copies it left half-written (storage/volume_copy.py); the
        ids of the volumes it held."""
        with self._lock:
            for loc in self.locations:
                remove_partial_copies(loc.path, pid)
        return [v.id for v in list(self._current().values()) if v.recover_from(pid)]

    def missing_volumes(self) -> list[int]:
        """Volumes whose `.dat` or `.idx` was deleted from disk while open (scenario 12)."""
        return [v.id for v in list(self._volumes.values()) if v.files_missing()]


def _check_collection(v: Volume, collection: str | None) -> None:
    if collection is not None and collection != v.collection:
        raise BadRequest(
            f"existing collection:{v.collection} unexpected input: {collection}", volume_id=v.id
        )


def _names_remote_file(vif: str) -> bool:
    """Whether the `.vif` at `vif` names a remote `.dat` (a tiered volume has no local one)."""
    from seaweed_py.formats.vif import VolumeInfo

    try:
        with open(vif, "rb") as f:
            return bool(VolumeInfo.from_json(f.read(1 << 20)).files)
    except (OSError, WeedError):
        return False


def _close_all(volumes: Iterable[Volume]) -> None:
    for v in volumes:
        try:
            v.close()
        except OSError as exc:
            log.error("closing volume %d: %s", v.id, exc)


@contextmanager
def held_directory(directory: Path) -> Iterator[None]:
    """Hold a data directory's lock, as a volume server does, for an offline tool: raises
    `DirectoryInUse` while a server (or another tool) holds it."""
    fd = _lock_directory(directory)
    try:
        yield
    finally:
        os.close(fd)


def _volume_names(directory: Path) -> list[tuple[str, int]]:
    """(collection, vid) of every volume in `directory`: a `.dat`, or a tiered `.vif`."""
    found: set[tuple[str, int]] = set()
    for entry in os.listdir(directory):
        parsed = parse_volume_file_name(entry)
        if parsed is None:
            continue
        base = str(directory / volume_base_name(*parsed))
        if os.path.exists(base + ".dat") or _names_remote_file(base + ".vif"):
            found.add(parsed)
    return sorted(found, key=lambda cv: cv[1])


def _keep_aside(path: Path) -> None:
    """Keep a journal whose entries could not all be replayed (a volume with entries did
    not open) under another name, for an operator: resetting it would drop them."""
    aside = path.with_name(f"{path.name}.{time.strftime('%Y%m%dT%H%M%S')}.unreplayed")
    shutil.copyfile(path, aside)
    log.error("%s: entries of volumes that did not open are kept in %s", path, aside)


def _lock_directory(directory: Path) -> int:
    """Hold an exclusive flock on `<dir>/.weedpy.lock` until the store closes: a second
    server on the same directory would corrupt every volume in it (scenario 21)."""
    fd = os.open(directory / _LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DirectoryInUse(
            "dir", directory, f"in use by another process (it holds {_LOCK_FILE})"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _directory_uuid(directory: Path) -> str:
    path = directory / _UUID_FILE
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        text = ""
    if text:
        return text
    text = str(uuid.uuid4())
    tmp = path.with_name(_UUID_FILE + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return text
