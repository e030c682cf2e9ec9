"""Group commit: one thread that fsyncs on behalf of every writer waiting for durability.

A writer appends to the page cache, then calls `request(fds)` and gets a
`concurrent.futures.Future` that resolves once an fsync of each of those files has *started
after* the request, so it covers every write made before it. Requests that arrive while an
fsync runs are served together by the next round: under load one fsync acknowledges many
writes, which is the point. Requests for the same files in the same round share one future,
so a round costs one future and one resolution per file set, not one per write.

A round starts when a waiter is ready for it: `kick()` (an event loop calls it once it has
handled the input at hand, so every write that came in with it joins the round), `result()` or
`exception()` on one of its futures, or `max_delay` after its first request, whichever comes
first. Starting at the first request instead would sync the first write of a burst alone and
make the rest wait for a second fsync.

`lazy` files are synced only when their oldest unsynced request is `lazy_interval` seconds
old (or a caller asks for them eagerly, or the committer closes): acknowledgements never wait
for them. A volume passes its `.idx` so: recovery rebuilds a lost `.idx` tail from the synced
`.dat` (storage/volume.py), and skipping that fsync halves the cost of a round.

The volume server awaits the futures on its event loop (`volume/durability.py`); nothing here
knows about event loops.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from pathlib import Path
from typing import Protocol

__all__ = [
    "LAZY_SYNC_INTERVAL",
    "MAX_DELAY",
    "SETTLED",
    "Committer",
    "GroupCommitter",
    "RoundFuture",
    "due_lazy",
    "pwrite_all",
    "sync_file",
    "write_file_durably",
]

log = logging.getLogger(__name__)

_FOREVER = float("inf")

LAZY_SYNC_INTERVAL = 1.0
"""Seconds a lazy file may stay unsynced after a request: bounds what recovery rescans."""
MAX_DELAY = 0.002
"""Seconds a round waits for a kick after its first request, for waiters that never kick."""


def sync_file(fd: int) -> None:
    """Flush a file's data (and the metadata needed to read it back) to stable storage."""
    os.fdatasync(fd)


def pwrite_all(fd: int, data: bytes | bytearray | memoryview, offset: int) -> None:
    """Write all of `data` at `offset` (OSError if the file takes none of it)."""
    # The usual case is one call; after a short one the rest is redone from the start (the
    # same bytes to the same place).
    if os.pwrite(fd, data, offset) == len(data):
        return
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        if n <= 0:
            raise OSError(f"short write at offset {offset}")
        view = view[n:]
        offset += n


def write_file_durably(path: Path, data: bytes) -> None:
    """Replace `path` with `data`, synced, through a `.tmp` beside it (the caller syncs the
    directory once it has renamed what it needs)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _resolved() -> Future[None]:
    f: Future[None] = Future()
    f.set_result(None)
    return f


SETTLED: Future[None] = _resolved()
"""The one already-resolved durability future, for writes that need no wait (`-fsync=none`
and `always`, requests with nothing to sync): callers may test `durable is SETTLED` instead
of asking the future, which takes its lock. A finished future never changes, so sharing it
is safe."""


def due_lazy(lazy: dict[int, float], limit: float) -> set[int]:
    """The lazily synced fds whose oldest unsynced request came at or before `limit`."""
    if not lazy:
        return set()
    return {fd for fd, since in lazy.items() if since <= limit}


class Committer(Protocol):
    """What a volume outside a store needs of a group committer (a store's volumes journal)."""

    def request(self, fds: Iterable[int], lazy: Iterable[int] = ()) -> Future[None]: ...

    def close(self) -> None: ...


class _Kicker(Protocol):
    def kick(self, *, wait: bool = False) -> None: ...


class RoundFuture(Future[None]):
    """The future of one round: waiting on it starts the round."""

    def __init__(self, committer: _Kicker) -> None:
        super().__init__()
        self._committer = committer

    def kick(self) -> None:
        """Start this future's round now (if it has not started)."""
        if not self.done():
            self._committer.kick()

    def result(self, timeout: float | None = None) -> None:
        if not self.done():
            self._committer.kick(wait=True)
        return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        if not self.done():
            self._committer.kick(wait=True)
        return super().exception(timeout)


class GroupCommitter:
    """The fsync thread. `close()` serves what is pending, then stops the thread."""

    def __init__(
        self,
        name: str = "weedpy-group-commit",
        sync: Callable[[int], None] = sync_file,
        *,
        lazy_interval: float = LAZY_SYNC_INTERVAL,
        max_delay: float = MAX_DELAY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sync = sync
        self._clock = clock
        self._lazy_interval = lazy_interval
        self._max_delay = max_delay
        self._cond = threading.Condition()
        self._round: dict[tuple[int, ...], RoundFuture] = {}  # the next round, by file set
        self._round_since = 0.0  # when the next round got its first request (monotonic)
        self._kicked = False  # the next round may start
        self._lazy: dict[int, float] = {}  # lazy fd -> when its oldest unsynced request came
        self._closed = False
        self.rounds = 0  # fsync rounds run (for tests and metrics)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def request(self, fds: Iterable[int], lazy: Iterable[int] = ()) -> Future[None]:
        """A future resolved after every fd in `fds` has been synced past this call; each fd
        in `lazy` will be synced within `lazy_interval` seconds, unwaited.

        If a sync fails the future carries that OSError: the data may not be durable, and the
        caller reports the write as failed.
        """
        fds = tuple(fds)
        with self._cond:
            if self._closed:
                raise RuntimeError("group committer is closed")
            if lazy:
                now = self._clock()
                pending = self._lazy
                for fd in lazy:
                    if fd not in pending:
                        pending[fd] = now
                        self._cond.notify()
            if not fds:
                return SETTLED
            future = self._round.get(fds)
            if future is None:
                if not self._round:
                    self._round_since = time.monotonic()
                    self._cond.notify()  # arms the max_delay timer
                future = self._round[fds] = RoundFuture(self)
            return future

    def kick(self, *, wait: bool = False) -> None:
        """Start the next round as soon as the thread is free (`wait` changes nothing: the
        thread resolves the round, the caller waits on its future)."""
        with self._cond:
            if self._round and not self._kicked:
                self._kicked = True
                self._cond.notify()

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    lazy = self._due_lazy()
                    timeout = self._round_timeout()
                    if timeout <= 0 or lazy or self._closed:
                        break
                    oldest = min(self._lazy.values(), default=None)
                    if oldest is not None:
                        timeout = min(timeout, oldest + self._lazy_interval - self._clock())
                    self._cond.wait(None if timeout == _FOREVER else timeout)
                if not self._round and not lazy:
                    return
                waiting, self._round = self._round, {}
                self._kicked = False
                eager = {fd for fds in waiting for fd in fds}
                for fd in eager | lazy:
                    self._lazy.pop(fd, None)  # this round covers its lazy requests
            self.rounds += 1
            failed = self._sync_all(eager)
            for fds, future in waiting.items():
                error = next((failed[fd] for fd in fds if fd in failed), None)
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)
            self._sync_all(lazy - eager)

    def _round_timeout(self) -> float:
        """Seconds until the next round must start (<= 0: now); `_FOREVER` with no requests."""
        if not self._round:
            return _FOREVER
        if self._kicked:
            return 0.0
        return self._round_since + self._max_delay - time.monotonic()

    def _due_lazy(self) -> set[int]:
        """Lazy fds to sync in the next round: those due, or all when closing."""
        if self._closed:
            return set(self._lazy)
        return due_lazy(self._lazy, self._clock() - self._lazy_interval)

    def _sync_all(self, fds: Iterable[int]) -> dict[int, OSError]:
        failed: dict[int, OSError] = {}
        for fd in fds:
            try:
                self._sync(fd)
            except OSError as exc:
                log.error("fsync of fd %d failed: %s", fd, exc)
                failed[fd] = exc
        return failed
