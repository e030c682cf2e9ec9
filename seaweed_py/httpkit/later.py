"""`Later`: an answer a handler gives after it has returned, from the event loop's thread.

A handler whose answer waits for something resolved in batches (a group-commit round answers
every write it holds at once) returns a `Later`; whoever resolves the batch calls `give` or
`fail` on each, and the connection is called back right there. An asyncio future instead
schedules one loop callback per answer, and a task costs more still: on the write path that is
a few microseconds per request (docs/internals.md, "Durable writes: the journal"). A `Later`
is also awaitable, for the code that wraps a handler's answer (CORS headers, a request that
waited for room) and awaits whatever it got.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator
from typing import Any

from seaweed_py.httpkit.response import Response

__all__ = ["Later"]

Deliver = Callable[[Response | None, BaseException | None], None]


class Later:
    """One answer to come. Not thread-safe: given and delivered on the loop's thread."""

    __slots__ = ("_answer", "_deliver", "_error", "_given")

    def __init__(self) -> None:
        self._deliver: Deliver | None = None
        self._given = False
        self._answer: Response | None = None
        self._error: BaseException | None = None

    def give(self, answer: Response) -> None:
        """The answer; a second give or fail is ignored."""
        # `_settle`, inlined: a group-commit round gives one per write it holds.
        if self._given:
            return
        self._given = True
        deliver = self._deliver
        if deliver is None:
            self._answer = answer
        else:
            self._deliver = None
            deliver(answer, None)

    def fail(self, error: BaseException) -> None:
        """Answer with `error`, rendered as any error a handler raises."""
        self._settle(None, error)

    def on_given(self, deliver: Deliver) -> None:
        """The connection's side: `deliver(answer, error)` once given (now, if it was)."""
        if self._given:
            deliver(self._answer, self._error)
        else:
            self._deliver = deliver

    def __await__(self) -> Generator[Any, None, Response]:
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()

        def deliver(answer: Response | None, error: BaseException | None) -> None:
            if future.done():  # the awaiting task was cancelled
                return
            if error is not None:
                future.set_exception(error)
            else:
                assert answer is not None
                future.set_result(answer)

        self.on_given(deliver)
        return future.__await__()

    def _settle(self, answer: Response | None, error: BaseException | None) -> None:
        if self._given:
            return
        self._given = True
        deliver, self._deliver = self._deliver, None
        if deliver is None:
            self._answer, self._error = answer, error
        else:
            deliver(answer, error)
