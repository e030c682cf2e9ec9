"""Tiered volumes: the `.dat` as one object in an S3-compatible bucket, the `.idx` kept local
(tiering spec §5-§7), as SeaweedFS's `volume_tier.go`.

A volume is tiered when its `.vif` names a remote file (`files[0]`). Then:

- its reads go through `Volume.data`, a `RemoteDatFile` (ranged GETs, a shared range cache);
  a local `.dat`, kept by `-keepLocalDatFile`, is never read (weed reads the bucket too);
- it is read-only: writes are refused; deletes append a tombstone entry `(key, offset 0,
  size -1)` to `.idx` only, as the reference's do since 4.24, and nothing is written remotely;
  while it is marked read-only in memory (weed's noWriteOrDelete: a tiered upload or vacuum
  holds deletes so while holders move to an object whose `.idx` must miss none) deletes are
  refused too, and a load forgets that mark (weed ignores the `.vif`'s `readOnly` there);
- loading reads no remote byte but the 8-byte superblock (one ranged GET; a failure is logged
  and the `.vif`'s version and replication stand in) and checks `.idx` alone, without the
  recovery walk of `.dat` (there is nothing local to repair); the needle map is the sealed one;
- a backend this server has no settings for fails that volume's load alone
  (`BackendNotFound`), the server goes on.

`tier_upload` (the server side of `volume.tier.upload`): writes stop (the volume turns
read-only for the duration), `.idx` is flushed and synced, the `.dat` is uploaded (multipart) under a
fresh key, then the `.idx` and the new `.vif` beside it (storage/backend/layout.py), so that any
server can mount the volume from the bucket alone; the `.vif` is saved locally (fsynced), reads
switch to the object, and the local `.dat` is deleted unless kept. A failure before the local
`.vif` is saved leaves the volume as it was (writable again); objects already sent are deleted.

`tier_download` reverses it: the object is downloaded to `.dat.tmp` (fsynced, its mtime
restored), renamed to `.dat`, `files[0]` removed from `.vif` (fsynced) and then, unless kept,
the objects deleted; the caller (`Store`) reopens the volume from its local files. Tombstones
written while tiered exist only in `.idx` (spec §5.2).

`fetch_sidecars` is the mount of a volume a server does not have: its `.idx` and `.vif` from
beside the data object (the newest upload of the volume, or a given key), read whole before
anything local changes (`Sidecars.write` then puts them in place).

`forget_upload` deletes an earlier upload of a volume (data object, `.idx`, `.vif`) once no
holder reads it: a vacuum of a tiered volume re-uploads it under a fresh key and the holders
move to that one first (`client/tiering.py`). Only keys of that volume's own uploads qualify,
and never the one the volume is read from here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from seaweed_py.errors import (
    BadRequest,
    Conflict,
    CookieMismatch,
    CorruptVolume,
    NeedleNotFound,
    NotFound,
    RemoteStorageError,
    StorageError,
    VolumeReadOnly,
)
from seaweed_py.formats.idx import encode_entry
from seaweed_py.formats.needle import NEEDLE_HEADER, NEEDLE_HEADER_SIZE
from seaweed_py.formats.superblock import SUPERBLOCK_SIZE, SuperBlock
from seaweed_py.formats.vif import RemoteFile, VolumeInfo
from seaweed_py.storage.backend import Backends, RangeCache, RemoteDatFile, S3Backend
from seaweed_py.storage.backend.layout import (
    dat_key,
    parse_upload_key,
    sidecar_keys,
    upload_of,
    upload_prefix,
)
from seaweed_py.storage.group_commit import SETTLED, sync_file, write_file_durably
from seaweed_py.storage.needle_map import NeedleMap, replay_index

if TYPE_CHECKING:
    from seaweed_py.storage.volume import DeleteResult, Volume

__all__ = [
    "TIERING",
    "Sidecars",
    "fetch_sidecars",
    "forget_upload",
    "list_uploads",
    "tier_download",
    "tier_upload",
]

log = logging.getLogger(__name__)

TIERING = "being tiered"
"""`Volume.read_only_reason` while the `.dat` is uploaded."""

Progress = Callable[[int], None]


def tier_upload(
    self: Volume,
    store: S3Backend,
    backends: Backends,
    *,
    keep_local: bool = False,
    progress: Progress | None = None,
) -> tuple[RemoteFile, bool]:
    """Move the `.dat` to `store` (module docstring); (the remote file, whether it was there
    already: a tiered volume is left as it is, as weed's rerun is a no-op, but its `.idx` is
    sent beside the object again, so that a holder mounting the object next sees every delete
    made here)."""
    if self.remote is not None:
        upload_index(self, force=True)
        return self.remote, True
    with self._lock:
        if self._closed:
            raise VolumeReadOnly("volume is closed", volume_id=self.id)
        if self.read_only_reason == TIERING:
            raise Conflict("volume is already being tiered", volume_id=self.id)
        if self.compacting:
            # Its commit would swap the .dat and .idx under the upload (see `compact`).
            raise Conflict("volume is being vacuumed: tier it once that ends", volume_id=self.id)
        previous_reason = self.read_only_reason
        self.read_only_reason = TIERING
        self._flush_idx()
        self._sync_files()
    sent: list[str] = []
    try:
        dat = self.path(".dat")
        modified = int(os.stat(dat).st_mtime)
        key = dat_key(store.settings.prefix, self.name)
        size = store.upload_file(key, dat, progress)
        sent.append(key)
        remote = RemoteFile(
            backend_type="s3",
            backend_id=store.settings.backend_id,
            key=key,
            offset=0,
            file_size=size,
            modified_time=modified,
            extension=".dat",
        )
        info = replace(self.info, files=(remote, *self.info.files))
        idx_key, vif_key = sidecar_keys(key)
        store.upload_file(idx_key, self.path(".idx"))
        sent.append(idx_key)
        stored = replace(info, read_only=_persisted_read_only(self))
        store.put_bytes(vif_key, stored.to_json().encode())
        sent.append(vif_key)
        with self._lock:
            self._write_vif(stored)
            self.info = info
            self.remote = remote
            self._use_data(RemoteDatFile(store, key, size, backends.cache))
            self._end = size
            self.read_only_reason = previous_reason
            if self._dat >= 0:
                os.close(self._dat)
                self._dat = -1
            self._map = _sealed(self)
        if not keep_local:
            (dat_path,) = self._checked(".dat")
            dat_path.unlink(missing_ok=True)
            _sync_dir(self.directory)
    except BaseException:
        with self._lock:
            if self.read_only_reason == TIERING:
                self.read_only_reason = previous_reason
        if self.remote is None:
            _forget(store, sent)
        raise
    log.info("volume %d tiered to %s as %s (%d bytes)", self.id, store.name, key, size)
    return remote, False


def tier_download(
    self: Volume, *, keep_remote: bool = False, progress: Progress | None = None
) -> RemoteFile:
    """Bring the `.dat` back from its bucket (module docstring); the remote file it was.
    The volume is closed afterwards: the caller reopens it from its local files."""
    remote = self.remote
    data = self.data
    if remote is None or not isinstance(data, RemoteDatFile):
        raise Conflict(f"volume {self.id} is already on local disk", volume_id=self.id)
    store = data.store
    dat, tmp = self._checked(".dat", ".dat.tmp")
    store.download_file(remote.key, tmp, remote.file_size, progress)
    if remote.modified_time:
        os.utime(tmp, (remote.modified_time, remote.modified_time))
    with self._lock:
        self._flush_idx()
        os.replace(tmp, dat)
        _sync_dir(self.directory)
        info = replace(self.info, files=self.info.files[1:])
        self._write_vif(replace(info, read_only=_persisted_read_only(self)))
        self.info = info
    self.close()
    if not keep_remote:
        _forget(store, [remote.key, *sidecar_keys(remote.key)])
        if data.cache is not None:
            data.cache.forget(remote.key)
    log.info("volume %d downloaded from %s %s", self.id, store.name, remote.key)
    return remote


def _persisted_read_only(self: Volume) -> bool:
    """The read-only mark of the `.vif` on disk: an operator's `volume.mark -readonly`. A mark
    held in memory for a tiering step (`persist=false`) must not outlive the process by being
    written with the remote file's change (a restart would leave the volume read-only for
    good)."""
    try:
        return VolumeInfo.from_json(self.path(".vif").read_bytes()).read_only
    except FileNotFoundError:
        return False


def upload_index(self: Volume, *, force: bool = False) -> bool:
    """Send the `.idx` beside the data object again if deletes changed it since (the volume
    server does every pulse), so a mount from the bucket sees them; whether it did. `force`
    sends it even if no delete is known to have changed it (a restart forgets that one did).
    A failure leaves it marked for the next try."""
    data = self.data
    if self.remote is None or not isinstance(data, RemoteDatFile) or self._closed:
        return False  # closed: replaced by a mount, whose files share its `.idx` path
    idx_key, _ = sidecar_keys(self.remote.key)
    if self.index_unchecked and not (self.index_dirty or force):
        self.index_dirty = _bucket_index_behind(self, data.store, self.remote.key)
        self.index_unchecked = False
    if not (self.index_dirty or force):
        return False
    with self._lock:
        self.index_dirty = False
    try:
        data.store.upload_file(idx_key, self.path(".idx"))
    except BaseException:
        self.index_dirty = True
        raise
    return True


def _bucket_index_behind(self: Volume, store: S3Backend, key: str) -> bool:
    """Whether the bucket's copy of the `.idx` beside data object `key` is shorter than the
    local one (once after a load: a delete acknowledged before a crash may never have been
    sent). Deletes only append, so a shorter copy misses some; a longer one holds deletes another holder sent while this
    one was away, and sending ours would take them back. A failed HEAD raises: tried again at
    the next pulse."""
    idx_key, _ = sidecar_keys(key)
    local = os.stat(self.path(".idx")).st_size
    try:
        remote = store.head(idx_key).size
    except NotFound:
        try:
            store.head(key)
        except NotFound:
            log.error("volume %d: %s %s is gone from the bucket", self.id, store.name, idx_key)
            return False
        return True
    if remote > local:
        log.warning(
            "volume %d: the bucket's %s (%d bytes) is longer than this .idx (%d): another "
            "holder sent deletes this one has not seen; not sending it",
            self.id,
            idx_key,
            remote,
            local,
        )
    return remote < local


def load_remote(self: Volume, backends: Backends | None, writable: bool) -> None:
    """`Volume._load` for a tiered volume (module docstring)."""
    from seaweed_py.storage import volume_loading

    remote = self.info.files[0]
    if backends is None:
        backends = Backends()
    name = f"{remote.backend_type}.{remote.backend_id}"
    data = backends.remote_file(remote)  # BackendNotFound: this volume is not loaded
    self.remote = remote
    self._use_data(data)
    self._writable_files = writable
    try:
        self.superblock = SuperBlock.decode(data.pread(SUPERBLOCK_SIZE, 0), volume_id=self.id)
        self.version = self.superblock.version
    except (StorageError, ValueError) as exc:
        log.warning(
            "volume %d: superblock of %s %s not read (%s); using .vif",
            self.id,
            name,
            remote.key,
            exc,
        )
        self.version = self.info.version or self.version
    if self.version not in (2, 3):
        raise CorruptVolume(f"needle version {self.version} is not supported", volume_id=self.id)
    volume_loading.apply_vif(self)
    self.index_unchecked = True
    # weed ignores the .vif's readOnly for a tiered volume (read-only, deletable); a mark
    # taken for an upload or a vacuum (and saved by the upload) is not kept across a load.
    self.info = replace(self.info, read_only=False)
    idx_path = self.path(".idx")
    if not idx_path.exists():
        raise CorruptVolume("tiered volume has no .idx file", volume_id=self.id, path=str(idx_path))
    flags = os.O_RDWR if writable else os.O_RDONLY
    self._idx = os.open(idx_path, flags | getattr(os, "O_CLOEXEC", 0))
    entries, idx_size = volume_loading._load_idx(self._idx, self.layout)
    w = self.layout.entry_size
    whole = idx_size - idx_size % w
    if whole != idx_size and writable:
        log.warning("volume %d: cutting a partial .idx entry", self.id)
        os.ftruncate(self._idx, whole)
    self._idx_end = whole
    live, stats = replay_index(*entries)
    self._end = remote.file_size
    self.modified_at_second = remote.modified_time or int(os.stat(self.path(".vif")).st_mtime)
    self._map = self._make_map(live, stats, sealed=True, in_units=True)
    log.info("volume %d is tiered to %s as %s", self.id, name, remote.key)


def delete_remote(self: Volume, key: int, cookie: int) -> DeleteResult:
    """A delete on a tiered volume: the cookie checked against the record's header (one
    ranged GET), then a tombstone entry `(key, 0, -1)` appended to `.idx` (synced); nothing is
    written remotely."""
    from seaweed_py.storage.volume_write import DeleteResult

    with self._lock:
        if self._closed or not self._writable_files:
            raise VolumeReadOnly("volume files are not writable", volume_id=self.id)
        if self.info.read_only and not self.info.read_only_can_delete:
            # Marked read-only (weed's noWriteOrDelete): a tiered vacuum or upload holds
            # deletes while holders move to a new object, whose .idx must miss none of them.
            raise VolumeReadOnly(
                "tiered volume is marked read-only: deletes are held", volume_id=self.id
            )
        hit = self._map.get(key)
        if hit is None:
            raise NeedleNotFound("needle not found", volume_id=self.id, key=f"{key:x}")
        head = self.data.pread(NEEDLE_HEADER_SIZE, hit[0])
        if len(head) != NEEDLE_HEADER_SIZE or NEEDLE_HEADER.unpack_from(head)[0] != cookie:
            raise CookieMismatch(
                "cookie does not match the stored needle", volume_id=self.id, key=f"{key:x}"
            )
        self._flush_idx()
        entry = encode_entry(key, 0, -1, self.layout)
        os.pwrite(self._idx, entry, self._idx_end)
        sync_file(self._idx)
        self._idx_end += len(entry)
        deleted = self._map.delete(key)
        self.index_dirty = True
        self.modified_at_second = self._clock_ns() // 1_000_000_000
        return DeleteResult(hit[1] if deleted is None else deleted, SETTLED)


@dataclass(frozen=True, slots=True)
class Sidecars:
    """The `.idx` and `.vif` beside an upload's data object `key`, read from the bucket."""

    key: str
    info: VolumeInfo
    idx: bytes
    vif: bytes

    def write(self, directory: Path, base: str) -> None:
        """Write them as `<base>.idx` and `<base>.vif` into `directory`, durably."""
        for ext, data in ((".idx", self.idx), (".vif", self.vif)):
            write_file_durably(directory / (base + ext), data)
        _sync_dir(directory)


def fetch_sidecars(store: S3Backend, base: str, key: str = "") -> Sidecars:
    """The `.idx` and `.vif` beside the data object `key` (or the newest upload of volume
    `base` in the bucket), checked; nothing local is changed, so that a mount replacing a
    copy gives it up only once they are in hand. `NotFound` when the bucket has no upload of
    that volume."""
    if not key:
        key = _newest_upload(store, base)
    idx_key, vif_key = sidecar_keys(key)
    vif_text = store.read_object(vif_key)
    info = VolumeInfo.from_json(vif_text)
    if not info.files or info.files[0].key != key:
        raise RemoteStorageError(f"{store.name}/{vif_key} does not describe the object {key}")
    idx = store.read_object(idx_key)
    if len(idx) % (info.bytes_offset + 12 if info.bytes_offset else 16):
        raise RemoteStorageError(f"{store.name}/{idx_key} is not whole .idx entries")
    return Sidecars(key, info, idx, vif_text)


def forget_upload(
    store: S3Backend, cache: RangeCache | None, base: str, key: str, in_use: str | None
) -> list[str]:
    """Delete upload `key` of the volume whose files are named `base` (module docstring); the
    keys deleted. `BadRequest` for a key that is not one of that volume's uploads, `Conflict`
    for `in_use`, the one read here."""
    if parse_upload_key(store.settings.prefix, base, key + ".vif") is None:
        raise BadRequest(f"{key!r} is not an upload of volume {base} in {store.name}")
    if key == in_use:
        raise Conflict(f"volume {base} is still read from {store.name} {key}")
    keys = [key, *sidecar_keys(key)]
    _forget(store, keys)
    if cache is not None:
        cache.forget(key)
    log.info("upload %s of volume %s deleted from %s", key, base, store.name)
    return keys


def list_uploads(store: S3Backend, base: str) -> list[str]:
    """The data keys of every upload of volume `base` of which some object is in the bucket
    (its data, `.idx` or `.vif`: an upload cut short leaves any of them), sorted."""
    prefix = store.settings.prefix
    found = {
        data
        for o in store.list(upload_prefix(prefix, base))
        if (data := upload_of(prefix, base, o.key)) is not None
    }
    return sorted(found)


def _newest_upload(store: S3Backend, base: str) -> str:
    prefix = store.settings.prefix
    found = [
        (o.modified, data)
        for o in store.list(upload_prefix(prefix, base))
        if (data := parse_upload_key(prefix, base, o.key)) is not None
    ]
    if not found:
        raise NotFound(f"no upload of volume {base} in {store.name}")
    return max(found)[1]


def _sealed(self: Volume) -> NeedleMap:
    """The volume's needle map in its sealed (read-only) form."""
    old = self._map
    if old.kind == "mmap":
        old.merge()
        return old
    fresh = self._make_map(old.live_arrays(), old.stats, sealed=True)
    old.close()
    return fresh


def _forget(store: S3Backend, keys: list[str]) -> None:
    for key in keys:
        try:
            store.delete(key)
        except StorageError as exc:
            log.error("could not delete %s/%s: %s", store.name, key, exc)


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
