"""Group commit with the fsyncs in a helper process, driven by the caller's event loop.

`GroupCommitter` (group_commit.py) fsyncs in a thread of the server process. Under write load
that thread costs the event loop far more than the fsyncs themselves: each round it must take
the GIL back from the busy loop twice (after its wait and after the fsync), and every GIL
hand-over is a pair of futex calls and context switches; measured on the 2-core machine, the
loop spent ~60 µs more CPU per acknowledged write than with `-fsync=none`. `HelperGroupCommitter`
keeps the same contract (`request` returns a future resolved once an fsync that started after
the request covered the files; requests of a round share one future per file set) and moves the
fsyncs to a small helper process (`fsync_worker.py`), which needs no GIL: a round is one
message to it and one answer back.

Who reads the answers:

* an event loop, after `drive(thread, on_socket)`: it watches `fileno()` and calls `pump()`
  when readable; futures resolve on the loop's thread. Other threads then just wait on their
  futures.
* otherwise whoever waits: `RoundFuture.result()` reads answers itself (one thread at a time).

Up to MAX_ROUNDS rounds run at once: a round starts on `kick()` (the loop kicks once per
iteration, so a burst of writes shares one fsync), on a wait for a result, and as soon as a
round ends if requests were kicked meanwhile. Lazily synced files (a volume's `.idx`) ride
along with the next round once due; `tick()`, called periodically by the driver, starts a
round for them when no writes come.

A round carries its files to the helper (SCM_RIGHTS), which syncs and closes them: the helper
never holds a file open between rounds, so a deleted volume's space is freed at once and a
reused descriptor number cannot mislead it. If the helper dies, the rounds it was serving fail
with an OSError (those writes may not be durable) and the next round starts a new helper.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures

from seaweed_py.storage.fsync_worker import MAX_FDS, decode_answer, encode_round
from seaweed_py.storage.group_commit import (
    LAZY_SYNC_INTERVAL,
    SETTLED,
    RoundFuture,
    due_lazy,
)

__all__ = ["HelperGroupCommitter"]

log = logging.getLogger(__name__)

MAX_ROUNDS = 1
"""Rounds the helper serves at once (by default). Overlapping rounds shorten a write's wait
(it need not wait for the round in flight to end), and the file system merges their journal
commits (3 concurrent fdatasyncs of one file give 1.6x the syncs per second of one here). But
every round costs the loop a wake-up of the helper and an answer to read, and more rounds carry
fewer writes each: under the write benchmark (16 connections) one round at a time served ~25%
more writes per second than three, with less CPU per write. Callers that wait on few, slow
syncs may want more."""
_PUMP_SLICE = 0.05  # seconds a blocked waiter polls before re-checking its future

SocketWatch = Callable[["socket.socket | None", "socket.socket | None"], None]
"""Told (old socket, new socket) when the helper changes; the old socket is the watcher's to
close (it may still be registered with its loop)."""


class _HelperRoundFuture(RoundFuture):
    """A round's future whose waiters read the helper's answers when no loop does."""

    def __init__(self, committer: HelperGroupCommitter) -> None:
        super().__init__(committer)
        self._helper = committer

    def result(self, timeout: float | None = None) -> None:
        self._helper.wait(self, timeout)
        if not self.done():
            raise TimeoutError
        return Future.result(self)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._helper.wait(self, timeout)
        if not self.done():
            raise TimeoutError
        return Future.exception(self)


class HelperGroupCommitter:
    """Same interface as `GroupCommitter`, plus `drive`, `fileno`, `pump` and `tick`."""

    def __init__(
        self,
        *,
        lazy_interval: float = LAZY_SYNC_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        python: str = sys.executable,
        max_rounds: int = MAX_ROUNDS,
    ) -> None:
        self._lazy_interval = lazy_interval
        self._max_rounds = max_rounds
        self._clock = clock
        self._python = python
        self._lock = threading.Lock()
        self._pump_lock = threading.Lock()  # one reader of answers at a time
        self._next: dict[tuple[int, ...], _HelperRoundFuture] = {}
        self._kicked = False
        self._lazy: dict[int, float] = {}  # lazy fd -> when its oldest unsynced request came
        # rounds the helper is serving: round id -> its futures by file set
        self._inflight: dict[int, dict[tuple[int, ...], _HelperRoundFuture]] = {}
        self._round_id = 0
        self._unsent: dict[int, set[int]] = {}  # round id -> its fds found closed at sending
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._driver: int | None = None  # thread ident of the loop that pumps
        self._on_socket: SocketWatch | None = None
        self._closed = False
        self._resolved: list[tuple[Future[None], OSError | None]] = []  # to resolve unlocked
        self.rounds = 0

    # ------------------------------------------------------------------ the contract

    def request(self, fds: Iterable[int], lazy: Iterable[int] = ()) -> Future[None]:
        fds = tuple(fds)
        with self._lock:
            if self._closed:
                raise RuntimeError("group committer is closed")
            if lazy:
                now = self._clock()
                for fd in lazy:
                    self._lazy.setdefault(fd, now)
            if not fds:
                return SETTLED
            future = self._next.get(fds)
            if future is None:
                future = self._next[fds] = _HelperRoundFuture(self)
            return future

    def kick(self) -> None:
        """Start the next round now, or right after the one the helper is serving."""
        with self._lock:
            if self._next:
                self._kicked = True
                if len(self._inflight) < self._max_rounds:
                    self._start()
        self._resolve()

    def close(self) -> None:
        """Serve every pending request (lazy ones too), then stop the helper."""
        with self._lock:
            if self._closed:
                return
            pending = list(self._next.values())
            pending += [
                future for waiting in self._inflight.values() for future in waiting.values()
            ]
            if self._lazy and not self._next:
                pending.append(self._next.setdefault((), _HelperRoundFuture(self)))
            for fd in list(self._lazy):
                self._lazy[fd] = float("-inf")  # due now
        for future in pending:
            try:
                future.result(timeout=30)
            except OSError as exc:
                log.error("final fsync round failed: %s", exc)
        with self._lock:
            self._closed = True
            self._retire()
        self._resolve()

    # ------------------------------------------------------------------ the loop's side

    def drive(self, thread: int | None, on_socket: SocketWatch | None = None) -> None:
        """Let the loop running in `thread` read the answers (None: waiters read them).
        `on_socket(old, new)` hears of every change of `fileno()` (a helper restart); it is
        called at once with the current socket, starting the helper if needed."""
        with self._lock:
            self._driver, self._on_socket = thread, on_socket
            if on_socket is not None:
                if self._sock is None:
                    self._ensure_helper()  # tells on_socket
                else:
                    on_socket(None, self._sock)

    def fileno(self) -> int:
        return self._sock.fileno() if self._sock is not None else -1

    def pump(self) -> None:
        """Read every answer ready now and resolve its round (never blocks)."""
        if not self._pump_lock.acquire(blocking=False):
            return  # another thread is reading
        try:
            self._pump()
        finally:
            self._pump_lock.release()

    def tick(self) -> None:
        """Periodic: start a round for lazy files that are due."""
        with self._lock:
            if self._ready():
                self._start()
        self._resolve()

    # ------------------------------------------------------------------ waiting

    def wait(self, future: Future[None], timeout: float | None) -> None:
        """Block until `future` is done or `timeout` passes, reading answers if no loop does."""
        self.kick()
        deadline = None if timeout is None else time.monotonic() + timeout
        while not future.done():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            if self._driver is not None and self._driver != threading.get_ident():
                wait_futures([future], timeout=left)
                continue
            step = _PUMP_SLICE if left is None else min(left, _PUMP_SLICE)
            if not self._pump_lock.acquire(timeout=step):
                continue
            try:
                if future.done():
                    return
                sock = self._sock
                if sock is not None:
                    poller = select.poll()
                    poller.register(sock, select.POLLIN)
                    poller.poll(step * 1000)
                self._pump()
            finally:
                self._pump_lock.release()

    # ------------------------------------------------------------------ internals

    def _start(self) -> None:
        """Send the next round to the helper (lock held, fewer than max_rounds in flight)."""
        waiting: dict[tuple[int, ...], _HelperRoundFuture] = {}
        eager: set[int] = set()
        for fds in list(self._next):
            if waiting and len(eager | set(fds)) > MAX_FDS:
                break  # the rest goes in the next round, which starts as soon as a slot frees
            waiting[fds] = self._next.pop(fds)
            eager.update(fds)
        self._kicked = bool(self._next)
        due = set(sorted(self._due_lazy())[: max(0, MAX_FDS - len(eager))])
        for fd in eager | due:
            self._lazy.pop(fd, None)
        synced = sorted(eager | due)
        if not synced:  # a close() with nothing to sync
            self._resolved += [(future, None) for future in waiting.values()]
            return
        self._round_id += 1
        self._inflight[self._round_id] = waiting
        for attempt in (1, 2):
            try:
                self._ensure_helper()
                self._send_round(synced)
                return
            except OSError as exc:
                if attempt == 2:
                    self._helper_lost(exc)
                    return
                # The helper died while idle: this round never reached it, so a new helper
                # can serve it whole.
                log.error("fsync helper gone (%s); starting another", exc)
                self._retire()

    def _send_round(self, fds: list[int]) -> None:
        assert self._sock is not None
        try:
            socket.send_fds(self._sock, [encode_round(self._round_id, fds)], fds)
            return
        except OSError as exc:
            if exc.errno != errno.EBADF:
                raise
        # A caller closed one of its files before the round went out: the others are still
        # synced; that one fails its waiters.
        closed = {fd for fd in fds if not _is_open(fd)}
        self._unsent[self._round_id] = closed
        fds = [fd for fd in fds if fd not in closed]
        socket.send_fds(self._sock, [encode_round(self._round_id, fds)], fds)

    def _resolve(self) -> None:
        """Resolve the futures of finished rounds, outside the lock: their callbacks may
        call back in."""
        while self._resolved:
            with self._lock:
                resolved, self._resolved = self._resolved, []
            for future, error in resolved:
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)

    def _pump(self) -> None:
        with self._lock:
            # At most one answer per round in flight (one read at least: an idle helper's EOF
            # must be seen), so no read ends in EAGAIN when the answers are all in.
            for _ in range(max(1, len(self._inflight))):
                if self._sock is None:
                    break
                try:
                    msg = self._sock.recv(1 << 16)
                except BlockingIOError:
                    break
                except OSError as exc:
                    self._helper_lost(exc)
                    break
                if not msg:
                    self._helper_lost(OSError(errno.EPIPE, "fsync helper exited"))
                    break
                if not self._finish(msg):
                    break
                if self._ready():
                    self._start()
        self._resolve()

    def _finish(self, msg: bytes) -> bool:
        """The round `msg` answers is over (lock held); False if `msg` makes no sense, which
        is treated as a lost helper."""
        try:
            round_id, results = decode_answer(msg)
        except ValueError as exc:
            self._helper_lost(OSError(errno.EPROTO, str(exc)))
            return False
        waiting = self._inflight.pop(round_id, None)
        if waiting is None:
            self._helper_lost(OSError(errno.EPROTO, f"answer to unknown round {round_id}"))
            return False
        failed: dict[int, OSError] = {
            fd: OSError(errno.EBADF, f"fd {fd} was closed before its fsync")
            for fd in self._unsent.pop(round_id, ())
        }
        for fd, err in results:
            if err:
                failed[fd] = OSError(err, f"fsync of fd {fd} failed: {os.strerror(err)}")
                log.error("fsync of fd %d failed: %s", fd, os.strerror(err))
        self.rounds += 1
        self._resolved += [
            (future, next((failed[fd] for fd in fds if fd in failed), None))
            for fds, future in waiting.items()
        ]
        return True

    def _helper_lost(self, exc: OSError) -> None:
        """The helper is gone (lock held): its round fails, the next round starts another."""
        log.error("fsync helper failed (%s); its round fails, the next one restarts it", exc)
        error = OSError(exc.errno or errno.EIO, f"fsync helper failed: {exc}")
        rounds, self._inflight = self._inflight, {}
        self._unsent.clear()
        self._retire()
        self._resolved += [
            (future, error) for waiting in rounds.values() for future in waiting.values()
        ]

    def _ensure_helper(self) -> None:
        if self._sock is not None:
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._proc = subprocess.Popen(
                [
                    self._python,
                    "-m",
                    "seaweed_py.storage.fsync_worker",
                    str(theirs.fileno()),
                    str(self._max_rounds),
                ],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                close_fds=True,
            )
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        self._sock = ours
        if self._on_socket is not None:
            self._on_socket(None, ours)

    def _retire(self) -> None:
        """Drop the helper (lock held): close our end, reap the process."""
        sock, proc = self._sock, self._proc
        self._sock, self._proc = None, None
        if sock is not None:
            if self._on_socket is not None:
                self._on_socket(sock, None)  # the watcher closes it once unregistered
            else:
                sock.close()
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _ready(self) -> bool:
        """Whether a round should start now (lock held)."""
        if len(self._inflight) >= self._max_rounds:
            return False
        return bool(self._next and self._kicked) or bool(self._due_lazy())

    def _due_lazy(self) -> set[int]:
        return due_lazy(self._lazy, self._clock() - self._lazy_interval)


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True
