"""DurableWaits: writes waiting for storage's durability futures, resolved from a thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future

import pytest

from seaweed_py.httpkit import Response
from seaweed_py.volume.durability import DurableWaits


def _resolve_later(futures: list[Future[None]], error: Exception | None = None) -> None:
    def run() -> None:
        for f in futures:
            if error is None:
                f.set_result(None)
            else:
                f.set_exception(error)

    threading.Timer(0.01, run).start()


async def test_waiters_are_released_as_their_round_completes() -> None:
    waits = DurableWaits()
    futures: list[Future[None]] = [Future() for _ in range(20)]
    tasks = [asyncio.create_task(waits.wait(f)) for f in futures]
    await asyncio.sleep(0)
    _resolve_later(futures[:10])  # one group-commit round, in request order
    await asyncio.wait_for(asyncio.gather(*tasks[:10]), 5)
    assert not any(t.done() for t in tasks[10:])
    _resolve_later(futures[10:])
    await asyncio.wait_for(asyncio.gather(*tasks[10:]), 5)


async def test_out_of_order_resolution_still_releases_everyone() -> None:
    waits = DurableWaits()
    futures: list[Future[None]] = [Future() for _ in range(20)]
    tasks = [asyncio.create_task(waits.wait(f)) for f in futures]
    await asyncio.sleep(0)
    _resolve_later(futures[::-1])
    await asyncio.wait_for(asyncio.gather(*tasks), 5)


async def test_failed_sync_fails_only_its_waiters_and_done_futures_return_at_once() -> None:
    waits = DurableWaits()
    done: Future[None] = Future()
    done.set_result(None)
    await waits.wait(done)
    failing: Future[None] = Future()
    task = asyncio.create_task(waits.wait(failing))
    await asyncio.sleep(0)
    _resolve_later([failing], OSError("fsync failed"))
    with pytest.raises(OSError, match="fsync failed"):
        await asyncio.wait_for(task, 5)


async def test_answers_of_a_round_are_given_together_in_the_loop_thread() -> None:
    """`answer()`: the handler's `Later`s are given as their round resolves (a round resolved
    in another thread hands over once), a failed round fails only its own, and a connection
    whose delivery raises does not strand the others of its round."""
    waits = DurableWaits()
    ok: Future[None] = Future()
    bad: Future[None] = Future()
    loop_thread = threading.get_ident()
    given: list[tuple[int, int | None, str | None, int]] = []

    def deliver(n: int) -> Callable[[Response | None, BaseException | None], None]:
        def run(answer: Response | None, error: BaseException | None) -> None:
            given.append(
                (n, answer.status if answer else None, str(error) if error else None,
                 threading.get_ident())
            )  # fmt: skip
            if n == 1:
                raise RuntimeError("a broken connection")

        return run

    for n in range(4):
        waits.answer(ok, Response(200 + n)).on_given(deliver(n))
    for n in range(4, 6):
        waits.answer(bad, Response(200 + n)).on_given(deliver(n))
    await asyncio.sleep(0)
    assert given == []
    _resolve_later([ok])
    for _ in range(200):
        if len(given) == 4:
            break
        await asyncio.sleep(0.01)
    assert [(n, status, err) for n, status, err, _ in given] == [
        (0, 200, None), (1, 201, None), (2, 202, None), (3, 203, None)
    ]  # fmt: skip
    assert {thread for *_, thread in given} == {loop_thread}
    _resolve_later([bad], OSError("fsync failed"))
    for _ in range(200):
        if len(given) == 6:
            break
        await asyncio.sleep(0.01)
    assert [(n, status, err) for n, status, err, _ in given[4:]] == [
        (4, None, "fsync failed"), (5, None, "fsync failed")
    ]  # fmt: skip
