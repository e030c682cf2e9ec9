"""A cap on the request body bytes in flight on a route: the volume server's
`-concurrentUploadLimitMB` and `-inflightUploadDataTimeout` (spec §3.8).

The connection consults it when a request's headers are in, before any of its body is read:

- admitted at once while the bytes in flight do not exceed `limit`. As in the reference the
  check comes before the request's own bytes are added, so one body larger than the limit still
  gets through on an idle server rather than never;
- else the request waits, its body unread (the connection stops reading it), until they do;
  after `timeout` seconds it is refused with `rejection(in_flight, limit)` (a 429);
- `exempt` requests (the volume server's replica copies) never wait, and are still counted.

An admitted request counts its Content-Length, or for a chunked body the bytes received so
far, until its answer is handed over or its connection is lost. Everything runs on the loop:
no locks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from seaweed_py.errors import WeedError
from seaweed_py.httpkit.request import Request

__all__ = ["InflightLimit"]


def _never(req: Request) -> bool:
    return False


class InflightLimit:
    """Body bytes in flight on the routes it guards (`Router.add(..., limit=)`), capped."""

    __slots__ = ("_exempt", "_rejection", "_waiters", "in_flight", "limit", "timeout")

    def __init__(
        self,
        limit: int,
        timeout: float,
        rejection: Callable[[int, int], WeedError],
        *,
        exempt: Callable[[Request], bool] = _never,
    ) -> None:
        if limit < 1:
            raise ValueError(f"an in-flight limit must be positive, got {limit}")
        if timeout < 0:
            raise ValueError(f"an in-flight wait cannot be negative, got {timeout}")
        self.limit = limit
        self.timeout = timeout
        self.in_flight = 0
        """Body bytes of the admitted requests not yet answered."""
        self._rejection = rejection
        self._exempt = exempt
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def waiting(self) -> int:
        """Requests waiting for room."""
        return len(self._waiters)

    def admits(self, req: Request) -> bool:
        """Whether `req` may go ahead now (it is then counted with `add`)."""
        return self.in_flight <= self.limit or self._exempt(req)

    def add(self, amount: int) -> None:
        self.in_flight += amount

    def release(self, amount: int) -> None:
        self.in_flight -= amount
        if self._waiters and self.in_flight <= self.limit:
            # Every waiter looks again; the first to resume may fill the cap for the rest.
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def wait(self) -> None:
        """Return once the bytes in flight are within the limit; raise the rejection after
        `timeout`. The caller must `add` before it next awaits, or another waiter may take
        the room."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while self.in_flight > self.limit:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise self._rejection(self.in_flight, self.limit)
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout(remaining):
                    await waiter
            except TimeoutError:
                pass
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
