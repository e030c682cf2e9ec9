"""Group commit: one thread that fsyncs on behalf of every writer waiting for durability.

A writer appends to the page cache, then calls `request(fds)` and gets a
`concurrent.futures.Future` that resolves once an fsync of each of those files has *started
after* the request, so it covers every write made before it. Requests that arrive while an
fsync runs are served together by the next round: under load one fsync acknowledges many
writes, which is the point. The volume server awaits the future with `asyncio.wrap_future`;
nothing here knows about event loops.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future

__all__ = ["GroupCommitter", "completed_future", "sync_file"]

log = logging.getLogger(__name__)


def sync_file(fd: int) -> None:
    """Flush a file's data (and the metadata needed to read it back) to stable storage."""
    os.fdatasync(fd)


def completed_future() -> Future[None]:
    """A future that is already resolved (durability modes that need no wait)."""
    f: Future[None] = Future()
    f.set_result(None)
    return f


class GroupCommitter:
    """The fsync thread. `close()` serves what is pending, then stops the thread."""

    def __init__(
        self, name: str = "weedpy-group-commit", sync: Callable[[int], None] = sync_file
    ) -> None:
        self._sync = sync
        self._cond = threading.Condition()
        self._fds: set[int] = set()
        self._waiters: list[tuple[tuple[int, ...], Future[None]]] = []
        self._closed = False
        self.rounds = 0  # fsync rounds run (for tests and metrics)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def request(self, fds: Iterable[int]) -> Future[None]:
        """A future resolved after every fd in `fds` has been synced past this call.

        If a sync fails the future carries that OSError: the data may not be durable, and the
        caller reports the write as failed.
        """
        fds = tuple(fds)
        result: Future[None] = Future()
        if not fds:
            result.set_result(None)
            return result
        with self._cond:
            if self._closed:
                raise RuntimeError("group committer is closed")
            self._fds.update(fds)
            self._waiters.append((fds, result))
            self._cond.notify()
        return result

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
                while not self._waiters and not self._closed:
                    self._cond.wait()
                if not self._waiters:
                    return
                fds, self._fds = self._fds, set()
                waiters, self._waiters = self._waiters, []
            self.rounds += 1
            failed: dict[int, OSError] = {}
            for fd in fds:
                try:
                    self._sync(fd)
                except OSError as exc:
                    log.error("fsync of fd %d failed: %s", fd, exc)
                    failed[fd] = exc
            for wanted, future in waiters:
                error = next((failed[fd] for fd in wanted if fd in failed), None)
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)
