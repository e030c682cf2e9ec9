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
"""

from __future__ import annotations

import logging
import os
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
        self._end = 0
        self._origins: dict[int, tuple[int, int]] = {}  # key -> (stamp, origin)
        self.dirty = False
        """Appended since the last `sync`."""

    def load(self) -> None:
        """Open the log if there is one and keep its `ORIGIN` entries in memory."""
        if not self.path.exists():
            return
        flags = os.O_RDWR if self._writable else os.O_RDONLY
        self._fd = os.open(self.path, flags | getattr(os, "O_CLOEXEC", 0))
        size = os.fstat(self._fd).st_size
        self._end = size - size % STAMP_ENTRY_SIZE
        if size != self._end:
            log.warning(
                "volume %d: %s ends in a partial entry (%d bytes), ignored",
                self._volume_id,
                self.path.name,
                size - self._end,
            )
        for key, (at, origin, _) in self._read().newest(StampKind.ORIGIN).items():
            self._origins[key] = (at, origin)

    @property
    def fd(self) -> int:
        return self._fd

    @property
    def size(self) -> int:
        """Bytes of whole entries written."""
        return self._end

    def origin_of(self, key: int, stamp: int) -> int:
        """The time the record of `key` stamped `stamp` stands for."""
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
        return self._read().newest(StampKind.DELETE)

    def read_at(self, offset: int, size: int) -> bytes:
        """Raw bytes of the log (a copy of the volume streams them)."""
        if self._fd < 0:
            return b""
        return os.pread(self._fd, max(0, min(size, self._end - offset)), offset)

    def sync(self) -> None:
        if self._fd >= 0 and self._writable:
            sync_file(self._fd)
        self.dirty = False

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _read(self) -> Stamps:
        chunks = []
        pos = 0
        while pos < self._end and self._fd >= 0:
            piece = os.pread(self._fd, min(_READ_BLOCK, self._end - pos), pos)
            if not piece:
                break
            chunks.append(piece)
            pos += len(piece)
        return decode_stamps(b"".join(chunks))

    def _append(self, key: int, stamp: int, origin: int, cookie: int, kind: StampKind) -> None:
        if not self._writable:
            return
        if self._fd < 0:
            self._fd = os.open(
                self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644
            )
            self._end = 0
        entry = encode_stamp(key, stamp, origin, cookie, kind)
        try:
            written = os.pwrite(self._fd, entry, self._end)
        except OSError as exc:
            # The record is in .dat already; losing its stamp costs only precision (module
            # docstring), never the record.
            log.error("volume %d: could not append to %s: %s", self._volume_id, self.path, exc)
            return
        if written == len(entry):
            self._end += written
            self.dirty = True
