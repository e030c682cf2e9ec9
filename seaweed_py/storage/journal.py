"""The per-disk write-ahead journal: group commit at one fdatasync per round, whatever the number
of volumes written.

Without it, a group-commit round fsyncs every `.dat` it touched, one after another; each append
grew its file, so each fdatasync also commits file-system metadata. Measured on the 2-core
development VM (ext4 on a virtual disk, median of 300 rounds of 1.1 KB appends): one appended
file 0.35-0.50 ms, eight appended files 1.6 ms in sequence (2.9-5.8 ms in parallel threads:
they queue on the file system's journal), and one fdatasync of an overwrite inside a file whose
blocks were already written 0.18-0.21 ms (0.28-0.31 ms into `fallocate`d, unwritten blocks,
whose extents the sync must convert). So every small record (tombstones too) is also written
here, the journal is what a round syncs, and the volumes' own files are synced in the
background (a checkpoint), a few times a minute under load.

File `<dir>/weedpy.journal` (weedpy's own; `weed` neither reads nor needs it):

| bytes | what |
|---|---|
| 0..511, 512..1023 | two header slots, written alternately: `b"WPYJ"`, version u16, pad u16, seq u64, ring size u64, checkpoint LSN u64, CRC-32C u32 of the bytes before it (little-endian); the valid slot with the higher seq wins |
| 4096.. | the ring: LSN `l` (a byte position in an endless log) lives at `4096 + l % size` |

An entry, 8-aligned, never split across the ring's end:

| field | type | note |
|---|---|---|
| magic | u32 | `0x314A4557` |
| crc | u32 | CRC-32C of every byte after it: the rest of the header and the payload |
| lsn | u64 | the entry's own LSN (an entry left from an earlier lap has another) |
| dat offset | u64 | where the record lies in the volume's `.dat` |
| volume id | u32 | |
| length | u32 | payload bytes |
| compaction revision | u16 | the `.dat`'s superblock revision the offset belongs to |
| kind | u8 | 1 a needle record (the payload), 2 a skip to the next lap (no payload) |
| pad | 5 bytes | |

An entry that would cross the ring's end is preceded by a skip entry, or by nothing if fewer
than 40 bytes are left (the reader skips those too).

**Why replay is right.** Entries are written with one pwrite each, in LSN order, while the
volume's lock is held right after its `.dat` append: for every volume the journal holds its
records in append order. A round's future resolves after an fdatasync of the journal that
started after every entry of the round was written, so an acknowledged entry and every entry
before it are on disk: the durable part of the journal is a prefix, and the first entry that
is torn (bad CRC), stale (another lap's LSN) or missing (zeros, past the file's end) ends it;
what follows was never acknowledged. Replay (`read_entries`, then `Volume.open(replay=)`)
pwrites each record of the prefix back where it was appended in `.dat` (byte-identical,
so replaying twice is harmless); the records of a volume before its first journaled one were
synced by a checkpoint, so after replay the `.dat` holds every acknowledged record contiguously
in its original order, and the recovery walk (`scan.py`) finds them whole and cuts only what was
never acknowledged. Records too large for the journal (streamed uploads) are synced to `.dat`
before the volume's lock is released, so no later record of that volume is acknowledged before
them either.

**Checkpoints.** Once the journal holds a quarter of its ring since the last checkpoint, a
thread syncs every volume of the disk (`.dat` and `.idx`; `sync_volumes`, given by the store)
and then writes the LSN it started from into the other header slot and syncs it: entries below
are no longer needed, and only then may the ring reuse their space. A checkpoint also runs
before anything that changes where records lie (a volume destroyed, or replaced by a
compaction, and the volume's id perhaps reused): no older entry can be replayed into a newer
file. The revision in each entry guards the same thing a second way. After the store opened
every volume (replay done, tails repaired), `reset` checkpoints at the end of the replayed
prefix, so appends go on after it.

**Space.** The ring's space is written (zeros) ahead of use, a MiB at a time, so a sync of an
entry in a later lap writes no file-system metadata; the file reaches its full size during the
first lap. `MAX_ENTRY` bounds the payload: records above it take the direct path.
"""

from __future__ import annotations

import errno
import logging
import os
import struct
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from seaweed_py.formats.crc import crc32c
from seaweed_py.storage.group_commit import RoundFuture, pwrite_all
from seaweed_py.storage.shared import (
    CHECKPOINT,
    FAILED,
    FILLED,
    POS,
    SEQ,
    SYNCED,
    SharedLock,
    WorkerShare,
)
from seaweed_py.storage.uring import AsyncSync

__all__ = [
    "DEFAULT_RING",
    "JOURNAL_FILE",
    "MAX_ENTRY",
    "Journal",
    "JournalEntry",
    "read_entries",
]

log = logging.getLogger(__name__)

JOURNAL_FILE: Final = "weedpy.journal"
DEFAULT_RING: Final = 64 << 20
"""Ring bytes: about 60,000 1 KiB writes; a checkpoint every quarter of it."""
MAX_ENTRY: Final = 1 << 20
"""Largest payload journaled; a larger record is synced to its `.dat` directly."""

_HEADER_AREA: Final = 4096
_SLOT: Final = struct.Struct("<4sHHQQQ")  # magic, version, pad, seq, ring size, checkpoint
_SLOT_CRC: Final = struct.Struct("<I")
_SLOTS: Final = (0, 512)
_MAGIC: Final = b"WPYJ"
_VERSION: Final = 1
# An entry's header in two parts, what precedes the CRC's input and then that input: a
# record's entry is packed once (the CRC covers the fields and the record).
_ENTRY_HEAD: Final = struct.Struct("<II")  # magic, CRC
_ENTRY_FIELDS: Final = struct.Struct("<QQIIHB5x")  # LSN, offset, volume, length, revision, kind
_ENTRY: Final = struct.Struct(_ENTRY_HEAD.format + _ENTRY_FIELDS.format[1:])  # the whole header
assert _ENTRY.size == 40
_PADS: Final = tuple(bytes(n) for n in range(8))
ENTRY_MAGIC: Final = 0x314A4557
_RECORD: Final = 1
_SKIP: Final = 2
_FILL_STEP: Final = 1 << 20  # zeros written ahead of the write position at a time
_ZEROS: Final = bytes(_FILL_STEP)
_CHECKPOINT_AT: Final = 4  # a checkpoint starts once a 1/4 of the ring is in use
_RING_REFUSALS: Final = frozenset({errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS})
_BUFFER_LIMIT: Final = 256 << 10  # entries buffered for one pwrite, at most


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One journaled needle record: where it was appended, and its bytes."""

    volume_id: int
    revision: int
    offset: int
    record: bytes


def _failed_error(path: Path, err: int) -> OSError:
    return OSError(
        err,
        f"an fdatasync of {path} failed ({os.strerror(err)}): writes on this disk fail until "
        "the volume server restarts",
    )


def _call_now(f: Callable[[], None]) -> None:
    f()


class _Header:
    """The checkpoint LSN and the ring size, in two alternating slots (a torn slot write
    leaves the other one, and its older checkpoint, whose entries are still in the ring)."""

    def __init__(self, ring: int, checkpoint: int, seq: int) -> None:
        self.ring, self.checkpoint, self.seq = ring, checkpoint, seq

    @staticmethod
    def read(fd: int) -> _Header | None:
        best: _Header | None = None
        for at in _SLOTS:
            raw = os.pread(fd, _SLOT.size + _SLOT_CRC.size, at)
            if len(raw) < _SLOT.size + _SLOT_CRC.size:
                continue
            (crc,) = _SLOT_CRC.unpack_from(raw, _SLOT.size)
            if crc32c(raw[: _SLOT.size]) != crc:
                continue
            magic, version, _, seq, ring, checkpoint = _SLOT.unpack_from(raw)
            if magic != _MAGIC or version != _VERSION or ring <= 0 or ring % 8:
                continue
            if best is None or seq > best.seq:
                best = _Header(ring, checkpoint, seq)
        return best

    def write(self, fd: int) -> None:
        """Write the next slot (seq + 1) and sync it."""
        self.seq += 1
        body = _SLOT.pack(_MAGIC, _VERSION, 0, self.seq, self.ring, self.checkpoint)
        os.pwrite(fd, body + _SLOT_CRC.pack(crc32c(body)), _SLOTS[self.seq % 2])
        os.fdatasync(fd)


def read_entries(path: Path) -> tuple[list[JournalEntry], int]:
    """The durable prefix of the journal at `path` (module docstring) and the LSN after it;
    ([], 0) when there is no journal or no valid header."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return [], 0
    try:
        header = _Header.read(fd)
        if header is None:
            return [], 0
        return _scan(fd, header.ring, header.checkpoint)
    finally:
        os.close(fd)


def _scan(fd: int, ring: int, start: int) -> tuple[list[JournalEntry], int]:
    entries: list[JournalEntry] = []
    lsn = start
    while lsn - start < ring:
        at = lsn % ring
        left = ring - at
        if left < _ENTRY.size:
            lsn += left
            continue
        head = os.pread(fd, _ENTRY.size, _HEADER_AREA + at)
        if len(head) < _ENTRY.size:
            break
        magic, crc, got_lsn, offset, vid, length, revision, kind = _ENTRY.unpack(head)
        if magic != ENTRY_MAGIC or got_lsn != lsn or length > left - _ENTRY.size:
            break
        payload = os.pread(fd, length, _HEADER_AREA + at + _ENTRY.size) if kind == _RECORD else b""
        if crc32c(payload, crc32c(head[8:])) != crc:
            break
        if kind == _RECORD:
            if len(payload) != length:
                break
            entries.append(JournalEntry(vid, revision, offset, payload))
            lsn += _ENTRY.size + length + (-length & 7)
        elif kind == _SKIP:
            lsn += _ENTRY.size + length
        else:
            break
    return entries, lsn


class Journal:
    """The journal of one data directory, shared by its volumes (thread-safe).

    `append` writes an entry and returns the current round's future; the round's fdatasync
    runs in whichever thread calls `kick()` or waits on the future, or, for the thread that
    called `sync_in_background` (the volume server's event loop), in the kernel while that
    thread goes on: one round in flight at a time, the next one taking whatever was appended
    meanwhile. `sync_volumes` is called by checkpoints (module docstring)."""

    def __init__(
        self,
        directory: Path,
        sync_volumes: Callable[[], None],
        *,
        ring: int = DEFAULT_RING,
        start: int = 0,
    ) -> None:
        """Open (or create) the journal of `directory` for appending at LSN `start` (the end
        of what `read_entries` replayed), once `begin` has checkpointed there."""
        if ring <= _ENTRY.size or ring % 8:
            raise ValueError(f"journal ring must be a multiple of 8 above {_ENTRY.size}: {ring}")
        self.path = Path(directory) / JOURNAL_FILE
        self._sync_volumes = sync_volumes
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        old = _Header.read(self._fd)
        self._header = _Header(ring, start, old.seq if old else 0)
        # The write position, sync point, filled space and header (shared with the other
        # workers after `share`), and this process's round.
        self._lock: threading.Lock | SharedLock = threading.Lock()
        self._sync_lock = threading.Lock()  # one fdatasync of the journal at a time
        self._checkpoint_lock: threading.Lock | SharedLock = threading.Lock()
        self._share: WorkerShare | None = None
        self._words = 0
        self._pos = start  # LSN of the next entry
        self._synced = start  # LSN up to which entries are durable
        self._filled = max(0, os.fstat(self._fd).st_size - _HEADER_AREA)  # ring bytes on disk
        # Entries appended but not yet written (one process only): a stretch of the ring
        # from _pending_at to _pending_end.
        self._pending: list[bytes] = []
        self._pending_at = self._pending_end = 0
        self._round = RoundFuture(self)
        self._round_start = start  # the round holds this process's entries up to _round_end
        self._round_end = start
        self._checkpointing: threading.Thread | None = None
        self._closed = False
        # Rounds synced in the background (sync_in_background): the ring, its thread, how
        # that thread runs a callback once its input is handled, and the round in flight.
        self._background: AsyncSync | None = None
        self._background_thread = 0
        self._defer: Callable[[Callable[[], None]], object] = _call_now
        self._in_flight: tuple[int, RoundFuture] | None = None
        self._inline = False  # the ring refused a sync: inline from then on
        self.failed: OSError | None = None  # set by the first failed fdatasync (`_fail`)
        self.syncs = 0  # journal fdatasyncs (rounds)
        self.appends = 0
        self.checkpoints = 0

    def begin(self) -> None:
        """Checkpoint at the start LSN: call once every volume of the directory has been
        opened with its entries replayed (they are synced), before the first append."""
        self._header.checkpoint = self._pos
        self._header.write(self._fd)

    def share(self, share: WorkerShare, location: int, *, claim: bool) -> None:
        """Append from several worker processes (storage/shared.py): the write position, the
        sync point, the filled space and the header live in the share, under a lock that holds
        across processes. The worker that began the journal `claim`s: it publishes them."""
        base = share.journal_base(location)
        journal_lock, checkpoint_lock = share.journal_locks(location)
        thread_lock = self._lock
        if isinstance(thread_lock, SharedLock):
            raise RuntimeError("already shared")
        with thread_lock:
            self._flush()  # from now on every entry is written before the lock is let go
            self._share, self._words = share, base
            if claim:
                self._publish()
            else:
                self._adopt()
                self._round_start = self._round_end = self._pos
            self._lock = SharedLock(share, journal_lock, thread_lock, self._adopt, self._publish)
            self._checkpoint_lock = SharedLock(share, checkpoint_lock)

    def _adopt(self) -> None:
        assert self._share is not None
        w, b = self._share.words, self._words
        self._pos, self._synced, self._filled = w[b + POS], w[b + SYNCED], w[b + FILLED]
        if w[b + SEQ] != self._header.seq:
            self._header = _Header(self._header.ring, w[b + CHECKPOINT], w[b + SEQ])
        if w[b + FAILED] and self.failed is None:  # another worker's sync failed
            self.failed = _failed_error(self.path, w[b + FAILED])

    def _publish(self) -> None:
        assert self._share is not None
        w, b = self._share.words, self._words
        w[b + POS], w[b + SYNCED], w[b + FILLED] = self._pos, self._synced, self._filled
        w[b + CHECKPOINT], w[b + SEQ] = self._header.checkpoint, self._header.seq
        if self.failed is not None:
            w[b + FAILED] = self.failed.errno or errno.EIO

    @property
    def ring(self) -> int:
        return self._header.ring

    @property
    def in_use(self) -> int:
        """Ring bytes since the last checkpoint."""
        return self._pos - self._header.checkpoint

    # ------------------------------------------------------------------ appends

    def append(self, volume_id: int, revision: int, offset: int, record: bytes) -> Future[None]:
        """Journal `record` (appended at `offset` of volume `volume_id`'s `.dat`, compaction
        `revision`); the future resolves once it is durable. Call with the volume's lock
        held, right after the `.dat` append (module docstring). OSError if it could not be
        written: the caller takes its append back."""
        length = len(record)
        if length > MAX_ENTRY:
            raise ValueError(f"record of {length} bytes is too large for the journal")
        pad = -length & 7
        need = _ENTRY.size + length + pad
        while True:
            with self._lock:
                if self._closed:
                    raise OSError("journal is closed")
                if self.failed is not None:
                    raise self.failed
                lsn = self._pos
                header = self._header
                ring = header.ring
                left = ring - lsn % ring
                skip = left if left < need else 0
                if lsn + skip + need - header.checkpoint <= ring:
                    if skip:
                        self._write_skip(lsn, left)
                        lsn += left
                    fields = _ENTRY_FIELDS.pack(lsn, offset, volume_id, length, revision, _RECORD)
                    head = _ENTRY_HEAD.pack(ENTRY_MAGIC, crc32c(record, crc32c(fields)))
                    self._put(lsn, need, head + fields, record, _PADS[pad])
                    end = self._pos = self._round_end = lsn + need
                    self.appends += 1
                    future = self._round
                    start_checkpoint = (
                        end - header.checkpoint
                    ) * _CHECKPOINT_AT > ring and self._checkpointing is None
                    if start_checkpoint:
                        self._checkpointing = threading.Thread(
                            target=self._background_checkpoint, name="weedpy-checkpoint"
                        )
                        self._checkpointing.start()
                    return future
            self.checkpoint()  # the ring is full: free it before going on

    def _write_skip(self, lsn: int, left: int) -> None:
        if left < _ENTRY.size:
            return  # the reader skips a remainder this short by itself
        fields = _ENTRY_FIELDS.pack(lsn, 0, 0, left - _ENTRY.size, 0, _SKIP)
        head = _ENTRY_HEAD.pack(ENTRY_MAGIC, crc32c(fields))
        self._put(lsn, _ENTRY.size, head + fields, b"", b"")

    def _put(self, lsn: int, size: int, head: bytes, record: bytes, pad: bytes) -> None:
        """Write an entry of `size` bytes at `lsn`, its parts `head`, `record` and `pad` (the
        journal's lock is held): at once when shared with other workers, else into the
        round's buffer, written with one pwrite before the round's sync (`_flush`)."""
        ring = self._header.ring
        at = lsn % ring
        end = at + size
        while self._filled < end and self._filled < ring:
            # Written zeros ahead of use: later syncs of this space write no metadata, and
            # the buffer's write cannot meet a full disk.
            step = min(_FILL_STEP, ring - self._filled)
            pwrite_all(self._fd, _ZEROS[:step], _HEADER_AREA + self._filled)
            self._filled += step
        if self._share is not None:
            pwrite_all(self._fd, b"".join((head, record, pad)), _HEADER_AREA + at)
            return
        pending = self._pending
        if pending and self._pending_end != at:
            self._flush()  # the ring wrapped: the buffer holds one contiguous stretch
        if not pending:
            self._pending_at = at
        pending += (head, record, pad)
        self._pending_end = end
        if end - self._pending_at >= _BUFFER_LIMIT:
            self._flush()

    def _flush(self) -> None:
        """Write the buffered entries (the journal's lock is held). If the write fails they
        stay buffered and the next flush tries them again first: no later entry can be
        synced past a hole in the journal."""
        pending = self._pending
        if pending:
            data = pending[0] if len(pending) == 1 else b"".join(pending)
            pwrite_all(self._fd, data, _HEADER_AREA + self._pending_at)
            pending.clear()

    # ------------------------------------------------------------------ rounds

    def kick(self, *, wait: bool = False) -> None:
        """Sync what this process appended and resolve the round it belongs to (now, in this
        thread; at once if a sync, maybe another worker's, already covered it). From the
        thread that syncs in the background: start that round's sync, unless one is in
        flight (its completion starts the next round), and return; `wait` there returns only
        once every round so far is resolved, in this thread (a future's `result()`)."""
        ring = self._ring()
        if ring is not None:
            if not wait:
                self._kick_background(ring)
                return
            self._finish_in_flight(ring.wait())
        with self._lock:
            if self._round_end == self._round_start:
                return  # nothing appended since the last round
            future, self._round = self._round, RoundFuture(self)
            target = self._round_start = self._round_end
        self._settle(future, self._sync_to(target))

    # ------------------------------------------------------------------ background rounds

    def sync_in_background(self, defer: Callable[[Callable[[], None]], object]) -> int | None:
        """Let the rounds this thread kicks sync while it goes on (storage/uring.py): returns
        the file descriptor to watch, on which to call `synced()` when it is readable, or None
        where the kernel cannot (the rounds stay inline). `defer(f)` must run `f` in this
        thread once the input at hand is handled (an event loop's `call_soon`): a completion
        starts the next round there, so the round takes every write that came in with it.
        Call `stop_background()` from this thread before closing."""
        if self._background is not None:
            raise RuntimeError("already syncing in the background")
        try:
            background = AsyncSync()
        except OSError as exc:
            log.info("journal %s: rounds stay inline (no io_uring: %s)", self.path, exc)
            return None
        self._background, self._defer = background, defer
        self._background_thread = threading.get_ident()
        return background.fileno()

    @property
    def syncs_in_background(self) -> bool:
        """Whether rounds sync in the background (False once the ring refused a sync)."""
        return self._background is not None and not self._inline

    @property
    def background_fd(self) -> int | None:
        """The descriptor `sync_in_background` returned, while it is in use."""
        return None if self._background is None else self._background.fileno()

    def synced(self) -> None:
        """Resolve the round whose background sync completed; the next one starts once the
        input at hand is handled."""
        background = self._background
        if background is None:
            return
        self._finish_in_flight(background.completed())
        if self._in_flight is None and self._round_end != self._round_start:
            self._defer(self.kick)

    def stop_background(self) -> None:
        """Wait for the round in flight, sync the one behind it, and sync inline from now on.
        The round behind was kicked while one was in flight, so its start was left to that
        one's completion: collected here, it starts nothing, and nobody else would (a waiter
        kicks once), until `close` failed it."""
        background = self._background
        if background is None:
            return
        try:
            self._finish_in_flight(background.wait())
        finally:
            self._background = None
            background.close()
        self.kick()

    def _ring(self) -> AsyncSync | None:
        """The ring this thread's rounds sync through, if they do."""
        if self._inline or threading.get_ident() != self._background_thread:
            return None
        return self._background

    def _kick_background(self, ring: AsyncSync) -> None:
        with self._lock:
            if self._in_flight is not None or self._round_end == self._round_start:
                return
            future, self._round = self._round, RoundFuture(self)
            target = self._round_start = self._round_end
            covered = self._synced >= target  # by another worker's sync
            error = self._write_for_sync()
            if not covered and error is None:
                self._in_flight = (target, future)
        if covered or error is not None:
            self._settle(future, error)
            return
        try:
            ring.submit(self._fd, target)
        except OSError as exc:
            log.warning("journal %s: background sync refused (%s); syncing inline", self.path, exc)
            self._in_flight = None
            self._settle(future, self._sync_to(target))

    def _finish_in_flight(self, done: list[tuple[int, OSError | None]]) -> None:
        for target, error in done:
            in_flight, self._in_flight = self._in_flight, None
            assert in_flight is not None and in_flight[0] == target
            if error is None:
                self.syncs += 1
                with self._lock:
                    self._synced = max(self._synced, target)
            elif error.errno in _RING_REFUSALS:
                # The ring cannot run an fdatasync here (a sandbox's partial io_uring, say),
                # which says nothing about the disk: this round and the next sync inline.
                log.warning("journal %s: background sync refused (%s); syncing inline",
                            self.path, error)  # fmt: skip
                self._inline = True
                error = self._sync_to(target)
            else:
                self._fail(error)
            self._settle(in_flight[1], error)

    def _fail(self, error: OSError) -> None:
        """An fdatasync of the journal failed: the kernel may have dropped the pages it could
        not write and report the next sync clean, so a later round's success would say
        nothing about the entries before it, and replay stops at the first one missing.
        Every later append and round fails, until a restart replays what is durable."""
        log.error(
            "fdatasync of %s failed: %s; every write on this disk fails until a restart",
            self.path,
            error,
        )
        with self._lock:  # several workers: published to the others as the lock is let go
            if self.failed is None:
                self.failed = _failed_error(self.path, error.errno or errno.EIO)

    def _write_for_sync(self) -> OSError | None:
        """Before a sync (the journal's lock is held): the buffered entries written, or why
        the round fails (an earlier failed sync, or this write)."""
        if self.failed is not None:
            return self.failed
        try:
            self._flush()
        except OSError as exc:
            log.error("writing to %s failed: %s", self.path, exc)
            return exc
        return None

    @staticmethod
    def _settle(future: RoundFuture, error: OSError | None) -> None:
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)

    def _sync_to(self, target: int) -> OSError | None:
        with self._sync_lock:
            with self._lock:
                if self._synced >= target:
                    return None
                error = self._write_for_sync()
                if error is not None:
                    return error
            try:
                os.fdatasync(self._fd)  # covers every entry written before it began
            except OSError as exc:
                self._fail(exc)
                return exc
            self.syncs += 1
            with self._lock:
                self._synced = max(self._synced, target)
            return None

    # ------------------------------------------------------------------ checkpoints

    def checkpoint(self) -> None:
        """Sync every volume of the disk, then drop the entries appended before (module
        docstring). Runs before a volume's files are destroyed or replaced."""
        with self._checkpoint_lock:
            with self._lock:
                upto, done = self._pos, self._header.checkpoint
            if upto == done:
                return
            # Entries below `upto` durable first (any worker's): a crash mid-way replays them.
            error = self._sync_to(upto)
            if error is not None:
                raise error
            self._sync_volumes()
            with self._lock:
                header = _Header(self._header.ring, upto, self._header.seq)
            header.write(self._fd)
            with self._lock:
                self._header = header
                self.checkpoints += 1

    def _background_checkpoint(self) -> None:
        try:
            self.checkpoint()
        except OSError as exc:  # the next quarter tries again; a full ring waits for one
            log.error("journal checkpoint of %s failed: %s", self.path, exc)
        finally:
            with self._lock:
                self._checkpointing = None

    def close(self) -> None:
        """Checkpoint (the volumes must still be open) and close the file. A journal whose
        fdatasync failed is closed without one: its durable prefix is for replay to find."""
        thread = self._checkpointing
        if thread is not None:
            thread.join()
        try:
            if self.failed is None:
                self.checkpoint()
        finally:
            self._closed = True
            fd, self._fd = self._fd, -1
            self._fail_round(OSError("journal closed"))
            if fd >= 0:
                os.close(fd)

    def _fail_round(self, error: OSError) -> None:
        """Fail the waiters of a round that can no longer be synced."""
        future, self._round = self._round, RoundFuture(self)
        if not future.done() and self._round_end > self._round_start:
            future.set_exception(error)
