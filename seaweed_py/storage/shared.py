"""State the worker processes of one volume server share (`weedpy volume -workers=N`).

Several processes serve every volume; appends stay serialised and crash-safe because each
volume's append runs under a lock that holds across processes, and the little state an append
needs (where `.dat` and `.idx` end, the last AppendAtNs) lives in a shared slot that the lock's
holder reads when it takes the lock and publishes when it lets go. The needle map stays private
to each process and follows `.idx`, which in this mode gets every entry before the lock is let
go: a process reads the entries others appended since it last looked (`Volume` does, before a
lookup and when it takes the lock). The journal of each directory keeps its write position,
sync point and checkpoint the same way (storage/journal.py).

File `<first -dir>/weedpy.workers`, memory-mapped by every worker (little-endian u64 words):

| words | what |
|---|---|
| 0 | magic `WPYWORK2` |
| 1 | epoch: bumped whenever the set of volumes or their read-only marks change |
| 2 | entries used in the corrupt needle table |
| 8 + 8*i .. | journal of directory `i` (at most `MAX_LOCATIONS`): pos, synced, filled, checkpoint, seq, failed (errno of a failed sync, 0) |
| 520 + 32*s .. | volume slot `s` (`MAX_VOLUMES`): vid + 1 (0 = free), flags, `.dat` end, `.idx` end, last AppendAtNs, files (bumped by each vacuum commit), then the vacuum's compaction: stage, pid of the worker running it, and what a commit needs (storage/volume_vacuum.py), then the count of the slot's claims, the last change (seconds), the stamp log's end (storage/stamps.py), the pid of the worker holding the volume's lock (0: none); the rest zero |
| 262664 + 16*w .. | worker `w`'s counters (`MAX_WORKERS`, `COUNTERS` each): each worker adds to its own row only, readers sum the rows (volume/stats.py) |
| 263688 + 12*e .. | corrupt needle `e` (`CORRUPT_ENTRIES`): vid + 1, the slot's claim count, compaction revision, offset, key, body size, reason length, reason (UTF-8, `_REASON_BYTES`): what one worker found, listed by every worker |

Locks are POSIX record locks (`fcntl.lockf`) on single bytes of that file, one byte per volume
slot, journal and checkpoint: they belong to the process (a `threading.Lock` beside each keeps
the threads of one process apart), and the kernel drops them when their process dies, so a
worker killed while holding one blocks nobody. The file is opened once per process and never
closed before the process ends (closing any descriptor of a file drops a process's record
locks on it).
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from seaweed_py.storage.integrity import CorruptRecord

__all__ = [
    "ATS_END",
    "CORRUPT_ENTRIES",
    "COUNTERS",
    "CP_CPD_END",
    "CP_CPX_END",
    "CP_IDX_START",
    "CP_REVISION",
    "CP_SIZE_BEFORE",
    "DELETED",
    "FAILED",
    "FILES",
    "HOLDER",
    "INCARNATION",
    "MAX_LOCATIONS",
    "MAX_VOLUMES",
    "MAX_WORKERS",
    "MODIFIED",
    "READ_ONLY",
    "SHARE_FILE",
    "STAGE",
    "STAGE_PID",
    "SharedLock",
    "WorkerShare",
]

SHARE_FILE: Final = "weedpy.workers"
MAX_LOCATIONS: Final = 64
MAX_VOLUMES: Final = 8192
MAX_WORKERS: Final = 64
COUNTERS: Final = 16
CORRUPT_ENTRIES: Final = 1024
_MAGIC: Final = int.from_bytes(b"WPYWORK2", "little")
_JOURNAL_BASE: Final = 8
_JOURNAL_WORDS: Final = 8
_VOLUME_BASE: Final = _JOURNAL_BASE + MAX_LOCATIONS * _JOURNAL_WORDS
_VOLUME_WORDS: Final = 32
_COUNTER_BASE: Final = _VOLUME_BASE + MAX_VOLUMES * _VOLUME_WORDS
_CORRUPT_BASE: Final = _COUNTER_BASE + MAX_WORKERS * COUNTERS
_CORRUPT_WORDS: Final = 12
_REASON_BYTES: Final = (_CORRUPT_WORDS - 7) * 8
_SIZE: Final = (_CORRUPT_BASE + CORRUPT_ENTRIES * _CORRUPT_WORDS) * 8
assert (_COUNTER_BASE, _CORRUPT_BASE) == (262664, 263688)  # as the docstring's table says
_CORRUPT_USED: Final = 2
# Lock bytes (past the end of the data: record locks need no bytes behind them).
_TABLE_LOCK: Final = 1 << 30
_JOURNAL_LOCK: Final = _TABLE_LOCK + 1
_CHECKPOINT_LOCK: Final = _JOURNAL_LOCK + MAX_LOCATIONS
_VOLUME_LOCK: Final = _CHECKPOINT_LOCK + MAX_LOCATIONS
_DEADLOCK_RETRY: Final = 0.0002  # seconds before asking again for a lock refused as EDEADLK

# Volume slot words
VID, FLAGS, DAT_END, IDX_END, LAST_NS, FILES = range(6)
# ... and the compaction's (volume_vacuum.py)
STAGE, STAGE_PID, CP_REVISION, CP_IDX_START, CP_SIZE_BEFORE, CP_CPD_END, CP_CPX_END = range(6, 13)
# ... and a count of the claims of the slot: a worker holding a volume of an older claim lets
# go of it (deleted and created again, mounted again, or the slot reused by another volume).
INCARNATION: Final = 13
MODIFIED: Final = 14  # the volume's last change, Unix seconds (any worker's)
ATS_END: Final = 15  # where the stamp log ends (storage/stamps.py)
# The pid of the worker holding the volume's lock, set when it takes it and cleared when it lets
# go: found set by the next taker, its holder died with it (and what it wrote past the
# published ends was never published).
HOLDER: Final = 16
# Flags
DELETED: Final = 1
READ_ONLY: Final = 2
# Journal words; FAILED: the errno of the first failed fdatasync of the journal, 0 if none
POS, SYNCED, FILLED, CHECKPOINT, SEQ, FAILED = range(6)


class WorkerShare:
    """The shared file of one volume server's workers (module docstring)."""

    def __init__(self, directory: str | os.PathLike[str], *, create: bool) -> None:
        """`create`: the first worker makes the file anew (a stale one from an earlier run
        is reset); the others open it."""
        self.path = Path(directory) / SHARE_FILE
        flags = os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT | os.O_TRUNC if create else 0)
        self.fd = os.open(self.path, flags, 0o600)
        if create:
            os.ftruncate(self.fd, _SIZE)
        self._mm = mmap.mmap(self.fd, _SIZE)
        self.words = memoryview(self._mm).cast("Q")
        if create:
            self.words[0] = _MAGIC
        elif self.words[0] != _MAGIC:
            raise OSError(f"{self.path} is not a worker share file")
        self._table = threading.Lock()

    # ------------------------------------------------------------------ epoch

    @property
    def epoch(self) -> int:
        return self.words[1]

    def bump(self) -> None:
        """Tell every worker that volumes came, went or changed marks."""
        with self.locked(_TABLE_LOCK, self._table):
            self.words[1] += 1

    # ------------------------------------------------------------------ slots

    def journal_base(self, location: int) -> int:
        """Index in `words` of directory `location`'s journal words."""
        if not 0 <= location < MAX_LOCATIONS:
            raise ValueError(f"at most {MAX_LOCATIONS} directories with several workers")
        return _JOURNAL_BASE + location * _JOURNAL_WORDS

    def journal_locks(self, location: int) -> tuple[int, int]:
        """Lock bytes of directory `location`'s journal and of its checkpoints."""
        return _JOURNAL_LOCK + location, _CHECKPOINT_LOCK + location

    def volume_slot(self, vid: int, *, claim: bool) -> int | None:
        """The slot of volume `vid`; with `claim`, a fresh one if it has none (a slot a
        deleted volume left is reused). None if it has none and `claim` is False."""
        with self.locked(_TABLE_LOCK, self._table):
            free = None
            for s in range(MAX_VOLUMES):
                base = _VOLUME_BASE + s * _VOLUME_WORDS
                held = self.words[base + VID]
                if held == vid + 1:
                    if claim:
                        self._reset(base)
                    return base
                if free is None and (held == 0 or self.words[base + FLAGS] & DELETED):
                    free = s
                if held == 0:
                    break
            if not claim:
                return None
            if free is None:
                raise OSError(f"more than {MAX_VOLUMES} volumes with several workers")
            base = _VOLUME_BASE + free * _VOLUME_WORDS
            self._reset(base)
            self.words[base + VID] = vid + 1
            return base

    def _reset(self, base: int) -> None:
        """A slot claimed anew: every word zero but its claim count, which goes up."""
        for w in range(1, _VOLUME_WORDS):
            if w != INCARNATION:
                self.words[base + w] = 0
        self.words[base + INCARNATION] += 1

    def volume_lock(self, slot_base: int) -> int:
        return _VOLUME_LOCK + (slot_base - _VOLUME_BASE) // _VOLUME_WORDS

    # ------------------------------------------------------------------ counters

    def counters(self, worker: int) -> memoryview:
        """Worker `worker`'s row of counters (it alone adds to it)."""
        if not 0 <= worker < MAX_WORKERS:
            raise ValueError(f"at most {MAX_WORKERS} workers")
        base = _COUNTER_BASE + worker * COUNTERS
        return self.words[base : base + COUNTERS]

    def counter_total(self, index: int) -> int:
        """Counter `index` summed over every worker's row."""
        return sum(self.words[_COUNTER_BASE + index : _CORRUPT_BASE : COUNTERS])

    # ------------------------------------------------------------------ corrupt needles

    def note_corrupt(self, slot_base: int, revision: int, found: CorruptRecord) -> bool:
        """Add a corrupt needle of the volume at `slot_base` (its record of compaction
        `revision`) to the table; False if another worker had (it logged it then). A full
        table takes no more (each finder then logs its own)."""
        vid, claim = self.words[slot_base + VID], self.words[slot_base + INCARNATION]
        reason = found.reason.encode("utf-8", "replace")[:_REASON_BYTES]
        with self.locked(_TABLE_LOCK, self._table):
            used = self.words[_CORRUPT_USED]
            for e in range(used):
                b = _CORRUPT_BASE + e * _CORRUPT_WORDS
                if tuple(self.words[b : b + 4]) == (vid, claim, revision, found.offset):
                    return False
            if used >= CORRUPT_ENTRIES:
                return True
            b = _CORRUPT_BASE + used * _CORRUPT_WORDS
            head = (vid, claim, revision, found.offset, found.key, found.size, len(reason))
            for i, value in enumerate(head):
                self.words[b + i] = value
            self._mm[(b + 7) * 8 : (b + 7) * 8 + len(reason)] = reason
            self.words[_CORRUPT_USED] = used + 1
        return True

    def corrupt_of(self, slot_base: int, revision: int) -> list[CorruptRecord]:
        """The table's corrupt needles of the volume at `slot_base` (this claim of it, records
        of compaction `revision`)."""
        vid, claim = self.words[slot_base + VID], self.words[slot_base + INCARNATION]
        found = []
        for e in range(min(self.words[_CORRUPT_USED], CORRUPT_ENTRIES)):
            b = _CORRUPT_BASE + e * _CORRUPT_WORDS
            if tuple(self.words[b : b + 3]) != (vid, claim, revision):
                continue
            offset, key, size, length = self.words[b + 3 : b + 7].tolist()
            start = (b + 7) * 8
            reason = bytes(self._mm[start : start + min(length, _REASON_BYTES)])
            found.append(CorruptRecord(key, offset, size, reason.decode("utf-8", "replace")))
        return found

    # ------------------------------------------------------------------ locks

    def lock(self, byte: int, *, blocking: bool = True) -> bool:
        while True:
            try:
                fcntl.lockf(self.fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB), 1, byte)
            except BlockingIOError:
                return False
            except OSError as exc:
                # The kernel tracks record locks per process, not per thread: one thread of a
                # worker holding a volume's lock while another of its threads holds the
                # journal's looks like a cycle to it when a second worker waits for both.
                # Every lock here is taken in one order (table, volume, checkpoint, journal),
                # but for the table's when a corrupt needle is noted, and whoever holds the
                # table's waits for no other: no real cycle exists. Wait a moment, ask again.
                if exc.errno != errno.EDEADLK:
                    raise
                time.sleep(_DEADLOCK_RETRY)
                continue
            return True

    def unlock(self, byte: int) -> None:
        fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, byte)

    def locked(self, byte: int, thread_lock: threading.Lock) -> SharedLock:
        return SharedLock(self, byte, thread_lock)


class SharedLock:
    """A lock over the threads of this process and the other workers: a `threading.Lock`
    and a record lock on one byte of the share. `on_acquire` runs once both are held (read
    the shared state), `on_release` before they are let go (publish it)."""

    def __init__(
        self,
        share: WorkerShare,
        byte: int,
        thread_lock: threading.Lock | None = None,
        on_acquire: Callable[[], None] | None = None,
        on_release: Callable[[], None] | None = None,
    ) -> None:
        self._share = share
        self._byte = byte
        self._thread = thread_lock or threading.Lock()
        self._on_acquire = on_acquire
        self._on_release = on_release

    def acquire(self, blocking: bool = True) -> bool:
        if not self._thread.acquire(blocking):
            return False
        try:
            if not self._share.lock(self._byte, blocking=blocking):
                self._thread.release()
                return False
        except BaseException:
            self._thread.release()
            raise
        try:
            if self._on_acquire is not None:
                self._on_acquire()
        except BaseException:
            self._share.unlock(self._byte)
            self._thread.release()
            raise
        return True

    def release(self) -> None:
        try:
            if self._on_release is not None:
                self._on_release()
        finally:
            self._share.unlock(self._byte)
            self._thread.release()

    def locked(self) -> bool:
        return self._thread.locked()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
