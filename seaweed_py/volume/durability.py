"""Awaiting storage's `durable` futures with one loop wake-up per group commit, not per write.

`asyncio.wrap_future` costs each waiting write a cross-thread callback: the fsync thread wakes
the loop once per write it acknowledges, and contends for the GIL with the busy loop to do so.
Writes acknowledged by one group-commit round all become durable together, and the committer
resolves futures in request order, so `DurableWaits` watches only the oldest pending future;
when it resolves, every write whose future is done by then is released, and the watch moves to
the oldest one still pending (the next to resolve). Every waiter is released whatever the
resolution order; only the promptness relies on it.

A group-commit round starts when kicked (`RoundFuture.kick`): `DurableWaits` kicks once the
loop has handled the input at hand (`call_soon`), so every write that arrived with the first
one shares its fsync.
"""

from __future__ import annotations

import asyncio
from collections import deque
from concurrent.futures import Future
from typing import Any, TypeVar

from seaweed_py.storage.group_commit import RoundFuture

__all__ = ["DurableWaits"]

T = TypeVar("T")


class DurableWaits:
    """Waits for `concurrent.futures.Future`s from worker threads on one event loop."""

    def __init__(self) -> None:
        # (durable, waiter, what the waiter resolves to)
        self._pending: deque[tuple[Future[None], asyncio.Future[Any], object]] = deque()
        self._watching: Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
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
        loop = self._loop = asyncio.get_running_loop()
        waiter: asyncio.Future[T] = loop.create_future()
        self._pending.append((durable, waiter, value))
        if isinstance(durable, RoundFuture):
            kicks = self._kicks
            if not kicks:
                loop.call_soon(self._kick)
            if durable not in kicks:
                kicks.append(durable)
        if self._watching is None:
            self._watch(durable)
        return waiter

    def _kick(self) -> None:
        kicks, self._kicks = self._kicks, []
        for durable in kicks:
            durable.kick()

    def _watch(self, durable: Future[None]) -> None:
        self._watching = durable
        durable.add_done_callback(self._fired)

    def _fired(self, _: Future[None]) -> None:
        """Runs in the thread that resolved the watched future."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._release)

    def _release(self) -> None:
        pending = self._pending
        remaining: deque[tuple[Future[None], asyncio.Future[Any], object]] = deque()
        while pending:
            entry = pending.popleft()
            durable, waiter, value = entry
            if not durable.done():
                remaining.append(entry)
            elif not waiter.done():
                error = durable.exception()
                if error is None:
                    waiter.set_result(value)
                else:
                    waiter.set_exception(error)
        self._pending = remaining
        self._watching = None
        if remaining:
            self._watch(remaining[0][0])
