"""Awaiting storage's `durable` futures with one loop wake-up per group commit, not per write.

`asyncio.wrap_future` costs each waiting write a cross-thread callback: the fsync thread wakes
the loop once per write it acknowledges. Writes acknowledged by one group-commit round share
one future, so `DurableWaits` keeps the waiters of each future together and watches each
future once: when it resolves, all its writes are released in one loop callback. Rounds may
finish in any order (the helper committer runs several at once).

A group-commit round starts when kicked (`RoundFuture.kick`): `DurableWaits` kicks once the
loop has handled the input at hand (`call_soon`), so every write that arrived with the first
one shares its fsync.

`HelperDriver` lets the loop read a `HelperGroupCommitter`'s answers (storage/fsync_helper.py).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from concurrent.futures import Future
from typing import Any, TypeVar

from seaweed_py.storage.fsync_helper import HelperGroupCommitter
from seaweed_py.storage.group_commit import RoundFuture

__all__ = ["DurableWaits", "HelperDriver"]

# How often the helper committer gets its `tick`: lazily synced `.idx` files are synced within
# about LAZY_SYNC_INTERVAL plus this when writes stop.
_TICK_SECONDS = 0.5

T = TypeVar("T")


class DurableWaits:
    """Waits for `concurrent.futures.Future`s from worker threads on one event loop."""

    def __init__(self) -> None:
        # durable future -> its waiters and what each resolves to
        self._groups: dict[Future[None], list[tuple[asyncio.Future[Any], object]]] = {}
        # asyncio.get_running_loop() costs a getpid() system call (fork check): looked up once;
        # a writer serves one loop for its life.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._kicks: list[RoundFuture] = []  # rounds to start once the loop's input is handled

    async def wait(self, durable: Future[None]) -> None:
        """Return once `durable` is done; raise its exception if it failed."""
        if durable.done():
            durable.result()
            return
        await self.deliver(durable, None)

    def deliver(self, durable: Future[None], value: T) -> asyncio.Future[T]:
        """A future of the running loop that resolves to `value` once `durable` is done, or
        with its exception: a handler can return it as its answer, with no coroutine."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
            self._loop_thread = threading.get_ident()
        waiter: asyncio.Future[T] = loop.create_future()
        group = self._groups.get(durable)
        if group is None:
            group = self._groups[durable] = []
            if isinstance(durable, RoundFuture):
                if not self._kicks:
                    loop.call_soon(self._kick)
                self._kicks.append(durable)
            group.append((waiter, value))
            durable.add_done_callback(self._fired)  # may run at once if already done
        else:
            group.append((waiter, value))
        return waiter

    def _kick(self) -> None:
        kicks, self._kicks = self._kicks, []
        for durable in kicks:
            durable.kick()

    def _fired(self, durable: Future[None]) -> None:
        """Runs in the thread that resolved `durable`: the committer's thread, or this loop's
        own (a helper committer's answers are read by the loop)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if threading.get_ident() == self._loop_thread:
            self._release(durable)  # it only resolves loop futures: safe from any callback
        else:
            loop.call_soon_threadsafe(self._release, durable)

    def _release(self, durable: Future[None]) -> None:
        error = durable.exception()
        for waiter, value in self._groups.pop(durable, ()):
            if waiter.done():
                continue
            if error is None:
                waiter.set_result(value)
            else:
                waiter.set_exception(error)


class HelperDriver:
    """Lets the running loop read a `HelperGroupCommitter`'s answers and tick it."""

    def __init__(self, committer: HelperGroupCommitter) -> None:
        self._committer = committer
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = 0
        self._sock: socket.socket | None = None
        self._ticker: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._committer.drive(self._thread, self._on_socket)
        self._ticker = self._loop.call_later(_TICK_SECONDS, self._tick)

    def stop(self) -> None:
        """Hand the answers back to waiters (the loop is about to block on closing)."""
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        self._committer.drive(None)
        if self._sock is not None and self._loop is not None:
            self._loop.remove_reader(self._sock.fileno())
            self._sock = None

    def _tick(self) -> None:
        assert self._loop is not None
        self._committer.tick()
        self._ticker = self._loop.call_later(_TICK_SECONDS, self._tick)

    def _on_socket(self, old: socket.socket | None, new: socket.socket | None) -> None:
        loop = self._loop
        if loop is None:
            return
        if threading.get_ident() == self._thread:
            self._switch(old, new)
        else:
            loop.call_soon_threadsafe(self._switch, old, new)

    def _switch(self, old: socket.socket | None, new: socket.socket | None) -> None:
        assert self._loop is not None
        if old is not None:
            if old is self._sock:
                self._loop.remove_reader(old.fileno())
                self._sock = None
            old.close()
        if new is not None and self._committer.fileno() == new.fileno():
            self._loop.add_reader(new.fileno(), self._committer.pump)
            self._sock = new
