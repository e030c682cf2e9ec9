"""The receiving end of a volume copy: files written under a `.note`, all or nothing.

A copy (maintenance spec §4; the volume server's `volume/copy.py` drives it) streams the
source's `.dat`, `.idx` and stamp log (`.ats`) into files of the final names, in order and in
pieces, while a `<base>.note` saying where they come from sits beside them. `commit` syncs
them, writes the source's `.vif`, syncs the directory and only then removes the note and opens
the volume; `abort` deletes everything. A process that dies in between leaves the note, and the
next start deletes that volume's files instead of loading them (`Store.load`), as the
reference does with its `.note`: a copy is never half there. The note names the process too:
with several workers, the leader deletes the copies of a worker that died as soon as it sees it
gone (`Store.recover_from`), so that the volume can be copied there again before a restart.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Final

from seaweed_py.errors import BadRequest, Conflict, PathEscapesDirectory
from seaweed_py.storage.volume_loading import sync_dir
from seaweed_py.storage.volume_paths import check_inside, volume_base_name

if TYPE_CHECKING:
    from seaweed_py.storage.store import Store
    from seaweed_py.storage.volume import Volume

__all__ = ["COPY_NOTE", "IncomingCopy", "remove_partial_copies"]

log = logging.getLogger(__name__)

COPY_NOTE: Final = ".note"
_FILES: Final = {"dat": ".dat", "idx": ".idx", "ats": ".ats"}
_LEFTOVERS: Final = (".dat", ".idx", ".ats", ".vif", ".vif.tmp", ".sdx", COPY_NOTE)
_PID: Final = "by process "


class IncomingCopy:
    """One volume being copied into `directory` (made by `Store.begin_copy`)."""

    def __init__(
        self, store: Store, directory: Path, volume_id: int, collection: str, source: str
    ) -> None:
        self._store = store
        self.directory = directory
        self.volume_id = volume_id
        self.collection = collection
        self.base = volume_base_name(collection, volume_id)
        paths = [directory / (self.base + ext) for ext in (*_LEFTOVERS,)]
        check_inside(directory, *paths)
        if any(p.exists() for p in paths):
            raise Conflict("files of this volume are already in the directory", volume_id=volume_id)
        note = directory / (self.base + COPY_NOTE)
        note.write_text(f"copying from {source}\n{_PID}{os.getpid()}\n")
        sync_dir(directory)
        self._fds: dict[str, int] = {}
        self.written: dict[str, int] = dict.fromkeys(_FILES, 0)
        self._done = False

    def write(self, file: str, offset: int, data: bytes) -> None:
        """Put `data` at `offset` of the copy's `file` (`dat`, `idx` or `ats`); pieces come
        in order, so `offset` is what was written so far."""
        if file not in _FILES:
            raise BadRequest(f"no volume file {file!r}")
        if offset != self.written[file]:
            raise BadRequest(f"{file} piece at {offset}, expected {self.written[file]}")
        fd = self._fds.get(file)
        if fd is None:
            path = self.directory / (self.base + _FILES[file])
            fd = self._fds[file] = os.open(
                path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644
            )
        view = memoryview(data)
        pos = offset
        while view:
            n = os.pwrite(fd, view, pos)
            view, pos = view[n:], pos + n
        self.written[file] = pos

    def commit(self, vif: bytes) -> Volume:
        """Make the copy a volume of the store (synced, the note removed last)."""
        for file in _FILES:
            if file not in self._fds and file != "ats":
                self.write(file, 0, b"")
        for fd in self._fds.values():
            os.fsync(fd)
        vif_path = self.directory / (self.base + ".vif")
        tmp = self.directory / (self.base + ".vif.tmp")
        tmp.write_bytes(vif)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, vif_path)
        self._close()
        sync_dir(self.directory)
        (self.directory / (self.base + COPY_NOTE)).unlink()
        sync_dir(self.directory)
        self._done = True
        return self._store.finish_copy(self)

    def abort(self) -> None:
        """Delete what was written (nothing stays of a failed copy)."""
        if self._done:
            return
        self._done = True
        self._close()
        for ext in _LEFTOVERS:
            (self.directory / (self.base + ext)).unlink(missing_ok=True)
        sync_dir(self.directory)
        self._store.forget_copy(self)

    def _close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def remove_partial_copies(directory: Path, pid: int | None = None) -> list[str]:
    """Delete the files of every volume a copy left half-written (its `.note` still there;
    with `pid`, only those of that process, which died); the base names removed."""
    removed = []
    for entry in sorted(os.listdir(directory)):
        if not entry.endswith(COPY_NOTE):
            continue
        if pid is not None and _copier(directory / entry) != pid:
            continue
        base = entry[: -len(COPY_NOTE)]
        paths = [directory / (base + ext) for ext in _LEFTOVERS]
        try:
            check_inside(directory, *paths)
        except PathEscapesDirectory:  # a planted symlink: left for an operator
            log.error("not removing the partial copy %s: a file leads outside", base)
            continue
        for path in paths:
            path.unlink(missing_ok=True)
        log.warning("removed the partial copy of volume %s (its copy never finished)", base)
        removed.append(base)
    if removed:
        sync_dir(directory)
    return removed


def _copier(note: Path) -> int | None:
    """The pid a copy's note names (None: unreadable, or a note of an earlier version)."""
    try:
        text = note.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(_PID) and line[len(_PID) :].isdigit():
            return int(line[len(_PID) :])
    return None
