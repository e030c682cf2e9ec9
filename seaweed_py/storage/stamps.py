"""A volume's stamp log (`<base>.ats`, layout in `formats/stamp_log.py`) and the stamping rule
of its records.

**Stamping.** Every record appended to a volume gets an AppendAtNs greater than the one before
it in the file: `storage/scan.py` tells a torn record from a rotted one by that order, so it
must hold whatever a write claims. A record of this server's own gets `max(now, last + 1)`.
A replicated write or delete carries the time its first server stamped it (`origin`); it is
stored as the record's own stamp when that keeps the order, i.e. when `last < origin ≤ now +
MAX_AHEAD_NS`, and otherwise the record gets `max(now, last + 1)` and the log keeps `origin`
beside it (an `ORIGIN` entry). The order is thus never broken, the volume's clock never runs
more than `MAX_AHEAD_NS` ahead of this server's (a peer with a fast clock cannot drag it), and
the time a record stands for is always known exactly: the log's origin where there is one for
that (key, stamp), else the record's stamp.

**Deletes** are logged (`DELETE`, with the time they stand for) whether or not they append a
tombstone: a vacuum removes tombstones from `.dat`, and a delete of a key this volume did not
hold appends nothing, but anti-entropy must still know that the key was deleted and when.

The log is written with the volume's lock held, one 32-byte pwrite per entry, and synced like
`.idx` (lazily: a power loss may lose the last second of entries, which leaves a record's later
stamp instead of its origin, or forgets a recent delete that the tombstone in `.dat` or a peer
still knows). Nothing on the read path touches it: `ORIGIN` entries are kept in memory (one per
key, the newest), `DELETE` entries are read from the file when a replica comparison asks.

**Several workers** (storage/shared.py) append to one log. Where it ends is published in the
volume's shared slot like the ends of `.dat` and `.idx`: the lock's taker adopts it (`adopt`),
appends there, and publishes its new end when it lets go. Each process takes in the `ORIGIN`
entries the others appended (up to the published end) before it answers `origin_of`, and
reads up to the published end for `deletions` and a copy. What a worker killed while holding
the lock wrote past the published end was never published: the next appender starts where the
published end says, and the lock's next taker, finding the dead holder's mark in the slot,
cuts the file there first (`adopt(cut=True)`), so neither a torn entry nor an entry of an
unacknowledged record it overwrote is ever read or built on.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Final

from seaweed_py.formats.stamp_log import (
    STAMP_ENTRY_SIZE,
    StampKind,
    Stamps,
    decode_stamps,
    encode_stamp,
)
from seaweed_py.storage.group_commit import sync_file

__all__ = ["MAX_AHEAD_NS", "STAMP_SUFFIX", "StampLog", "next_stamp"]

log = logging.getLogger(__name__)

STAMP_SUFFIX: Final = ".ats"
MAX_AHEAD_NS: Final = 60 * 1_000_000_000
"""How far ahead of this server's clock a replicated record's origin may set the volume's."""
_READ_BLOCK: Final = 1 << 20


def next_stamp(origin_ns: int | None, last_ns: int, now_ns: int) -> int:
    """The AppendAtNs of the next record (module docstring)."""
    if origin_ns is not None and last_ns < origin_ns <= now_ns + MAX_AHEAD_NS:
        return origin_ns
    return max(now_ns, last_ns + 1)


class StampLog:
    """The `.ats` of one volume. Appends are made under the volume's lock."""

    def __init__(self, path: Path, volume_id: int, *, writable: bool) -> None:
        self.path = path
        self._volume_id = volume_id
        self._writable = writable
        self._fd = -1
        self._closed = False
        self._end = 0  # where this process appends next (adopted under the volume's lock)
        self._seen = 0  # bytes whose ORIGIN entries `_origins` has taken in
        self._published: Callable[[], int] | None = None  # set by `share`
        self._fold = threading.Lock()  # `_seen`, `_origins` and opening `_fd`
        self._origins: dict[int, tuple[int, int]] = {}  # key -> (stamp, origin)
        self.dirty = False
        """Appended since the last `sync`."""

    def load(self, limit: int | None = None) -> None:
        """Open the log if there is one and keep its `ORIGIN` entries in memory (`limit`:
        only its first bytes, where the other workers say it ends)."""
        if not self.path.exists():
            return
        flags = os.O_RDWR if self._writable else os.O_RDONLY
        self._fd = os.open(self.path, flags | getattr(os, "O_CLOEXEC", 0))
        size = os.fstat(self._fd).st_size
        whole = size - size % STAMP_ENTRY_SIZE
        if limit is None and size != whole:
            log.warning(
                "volume %d: %s ends in a partial entry (%d bytes), ignored",
                self._volume_id,
                self.path.name,
                size - whole,
            )
        self._end = whole if limit is None else min(limit, whole)
        for key, (at, origin, _) in self._read(self._end).newest(StampKind.ORIGIN).items():
            self._origins[key] = (at, origin)
        self._seen = self._end

    def share(self, published: Callable[[], int]) -> None:
        """Several workers append to this log; `published` reads where it ends (module
        docstring)."""
        self._published = published

    def adopt(self, end: int, *, cut: bool = False) -> None:
        """The volume's lock was just taken: the log ends at `end` (the other workers'
        entries taken in). `cut`: its last holder died holding the lock; what it wrote past
        `end` goes."""
        self._take_in(end)
        self._end = end
        if cut and self._writable and self._open():
            try:
                if os.fstat(self._fd).st_size > end:
                    os.ftruncate(self._fd, end)
                    log.warning(
                        "volume %d: %s cut back to %d bytes (a worker died appending)",
                        self._volume_id,
                        self.path.name,
                        end,
                    )
            except OSError as exc:  # the next append overwrites it anyway
                log.error("volume %d: cannot cut %s: %s", self._volume_id, self.path, exc)

    @property
    def fd(self) -> int:
        return self._fd

    @property
    def end(self) -> int:
        """Where this process appends next (published when the volume's lock is let go)."""
        return self._end

    @property
    def size(self) -> int:
        """Bytes of whole entries written (by any worker)."""
        published = self._published
        return self._end if published is None else max(self._end, published())

    def origin_of(self, key: int, stamp: int) -> int:
        """The time the record of `key` stamped `stamp` stands for."""
        published = self._published
        if published is not None and published() > self._seen:
            self._take_in(published())
        found = self._origins.get(key)
        return found[1] if found is not None and found[0] == stamp else stamp

    def note_put(self, key: int, stamp: int, origin: int | None, cookie: int) -> None:
        """A put of `key` was appended with `stamp`, standing for `origin` (None: itself)."""
        if origin is None or origin == stamp:
            self._origins.pop(key, None)
            return
        self._append(key, stamp, origin, cookie, StampKind.ORIGIN)
        self._origins[key] = (stamp, origin)

    def note_delete(self, key: int, stamp: int, origin: int, cookie: int) -> None:
        """`key` (its needle's `cookie`) was deleted at `origin`; `stamp` is its tombstone's
        AppendAtNs here (0: none was appended)."""
        self._origins.pop(key, None)
        self._append(key, stamp, origin, cookie, StampKind.DELETE)

    def deletions(self) -> dict[int, tuple[int, int, int]]:
        """key → (tombstone stamp or 0, origin, cookie) of the newest delete of each key."""
        return self._read(self.size).newest(StampKind.DELETE)

    def read_at(self, offset: int, size: int) -> bytes:
        """Raw bytes of the log (a copy of the volume streams them)."""
        end = self.size
        if not self._open():
            return b""
        return os.pread(self._fd, max(0, min(size, end - offset)), offset)

    def sync(self) -> None:
        if self._fd >= 0 and self._writable:
            sync_file(self._fd)
        self.dirty = False

    def close(self) -> None:
        with self._fold:
            self._closed = True
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def _open(self, *, create: bool = False) -> bool:
        """Whether the log is open (opened now if another worker, or this append, made it)."""
        if self._fd >= 0:
            return True
        with self._fold:
            if self._fd >= 0:
                return True
            if self._closed:
                return False
            flags = (os.O_RDWR if self._writable else os.O_RDONLY) | getattr(os, "O_CLOEXEC", 0)
            try:
                self._fd = os.open(self.path, flags | (os.O_CREAT if create else 0), 0o644)
            except FileNotFoundError:
                return False
        return True

    def _take_in(self, end: int) -> None:
        """Fold the `ORIGIN` and `DELETE` entries other workers appended up to `end`, in file
        order, into `_origins`."""
        if end <= self._seen or not self._open():
            return
        with self._fold:
            seen = self._seen
            if end <= seen or self._fd < 0:
                return
            piece = os.pread(self._fd, end - seen, seen)
            whole = len(piece) - len(piece) % STAMP_ENTRY_SIZE
            new = decode_stamps(piece[:whole])
            for key, at, origin, kind in zip(
                new.keys.tolist(),
                new.at.tolist(),
                new.origin.tolist(),
                new.kinds.tolist(),
                strict=True,
            ):
                if kind == StampKind.ORIGIN:
                    self._origins[key] = (at, origin)
                else:
                    self._origins.pop(key, None)
            self._seen = seen + whole

    def _read(self, end: int) -> Stamps:
        chunks = []
        pos = 0
        while pos < end and self._open():
            piece = os.pread(self._fd, min(_READ_BLOCK, end - pos), pos)
            if not piece:
                break
            chunks.append(piece)
            pos += len(piece)
        return decode_stamps(b"".join(chunks))

    def _append(self, key: int, stamp: int, origin: int, cookie: int, kind: StampKind) -> None:
        if not self._writable or not self._open(create=True):
            return
        entry = encode_stamp(key, stamp, origin, cookie, kind)
        try:
            written = os.pwrite(self._fd, entry, self._end)
        except OSError as exc:
            # The record is in .dat already; losing its stamp costs only precision (module
            # docstring), never the record.
            log.error("volume %d: could not append to %s: %s", self._volume_id, self.path, exc)
            return
        if written == len(entry):
            with self._fold:
                if self._seen == self._end:  # (it holds every entry before this one)
                    self._seen += written
            self._end += written
            self.dirty = True
