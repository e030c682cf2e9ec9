"""What one volume knows about the soundness of its needles beyond a single read.

* `CorruptNeedles`: the records found rotted (a complete record whose bytes fail their CRC or
  field checks; see `scan.py` for how rotted differs from torn), by whoever found them: the
  recovery walk on open, or a read. They stay on disk and in the index, and are answered as
  corrupt until an overwrite or delete repairs the key; this list is what logs, the volume
  server's metrics and its callers report. The first sighting of a record is logged at ERROR
  (volume, key, offset, reason); repeats are not, so a hot corrupt blob cannot flood the log.
  With several workers (storage/shared.py) a sighting also goes to the share's table: it is
  logged by the first worker to find it, and every worker lists what any of them found.
* `VerifiedMemo`: the large needles whose whole data passed its CRC, so a read streamed from
  disk need not read the data twice on every request (`Volume.verify`).

Both are bounded, and both are keyed by the record's byte offset in the `.dat` with the volume's
compaction revision: a record at an offset never changes while the volume is open (appends only
go past the end; a failed append is cut back before anything could read it), an overwrite or a
delete moves the key to another record, a vacuum bumps the revision, and a deleted and
re-created volume is another `Volume` object with its own memo.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = ["CorruptNeedles", "CorruptRecord", "VerifiedMemo"]

log = logging.getLogger(__name__)

# Rotted records remembered per volume; past this only `CorruptNeedles.seen` grows (a disk
# rotting everywhere must not grow memory without bound; `weedpy fix` lists them all).
_CORRUPT_LIMIT: Final = 1024
# Verified large needles (over 1 MiB each) remembered per volume: 4096 cover at least 4 GiB of
# hot data for a few hundred KiB of memory.
_VERIFIED_LIMIT: Final = 4096


@dataclass(frozen=True, slots=True)
class CorruptRecord:
    """A record that fails its checks: key and body Size from its header, offset in `.dat`."""

    key: int
    offset: int
    size: int
    reason: str


class CorruptNeedles:
    """The rotted records one volume has found (safe to share between threads)."""

    def __init__(self, volume_id: int, limit: int = _CORRUPT_LIMIT) -> None:
        self._volume_id = volume_id
        self._limit = limit
        self._found: dict[int, CorruptRecord] = {}
        self._lock = threading.Lock()
        self.seen = 0  # distinct records found, including those past the limit
        self._publish: Callable[[CorruptRecord], bool] | None = None
        self._shared: Callable[[], list[CorruptRecord]] | None = None

    def share(
        self,
        publish: Callable[[CorruptRecord], bool],
        shared: Callable[[], list[CorruptRecord]],
    ) -> None:
        """Several workers serve the volume: `publish` adds a sighting to their table (False:
        another worker had, and logged it), `shared` lists the table's (module docstring)."""
        self._publish, self._shared = publish, shared
        with self._lock:
            found = list(self._found.values())
        for record in found:  # (found before: on open, logged then)
            publish(record)

    def note(self, record: CorruptRecord) -> None:
        """Remember `record`; log it the first time it is seen (by any worker)."""
        with self._lock:
            if record.offset in self._found:
                return
            self.seen += 1
            if len(self._found) < self._limit:
                self._found[record.offset] = record
        if self._publish is not None and not self._publish(record):
            return
        log.error(
            "volume %d: corrupt needle key=%x offset=%d size=%d kept (answered as corrupt "
            "until repaired): %s",
            self._volume_id,
            record.key,
            record.offset,
            record.size,
            record.reason,
        )

    def records(self) -> list[CorruptRecord]:
        """Every remembered record (and with several workers, what the others found), by
        offset."""
        with self._lock:
            found = dict(self._found)
        if self._shared is not None:
            for r in self._shared():
                found.setdefault(r.offset, r)
        return sorted(found.values(), key=lambda r: r.offset)


class VerifiedMemo:
    """Keys of records whose data passed its CRC, oldest dropped first past `limit`."""

    def __init__(self, limit: int = _VERIFIED_LIMIT) -> None:
        self._limit = limit
        self._keys: dict[tuple[int, int], None] = {}
        self._lock = threading.Lock()

    def __contains__(self, key: tuple[int, int]) -> bool:
        return key in self._keys

    def add(self, key: tuple[int, int]) -> None:
        with self._lock:
            if len(self._keys) >= self._limit and key not in self._keys:
                del self._keys[next(iter(self._keys))]
            self._keys[key] = None

    def discard(self, key: tuple[int, int]) -> None:
        with self._lock:
            self._keys.pop(key, None)

    def __len__(self) -> int:
        return len(self._keys)
