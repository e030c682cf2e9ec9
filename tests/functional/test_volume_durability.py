"""DurableWaits: writes waiting for storage's durability futures, resolved from a thread."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future

import pytest

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
