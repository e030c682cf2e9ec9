"""When a group-commit round starts: on a kick, on a wait for its result, or after max_delay;
and the volume server's waits kick once per loop iteration, so a burst shares one fsync."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from seaweed_py.storage.group_commit import GroupCommitter, RoundFuture
from seaweed_py.volume.durability import DurableWaits


class CountingSync:
    def __init__(self) -> None:
        self.calls: list[int] = []
        self.synced = threading.Event()

    def __call__(self, fd: int) -> None:
        self.calls.append(fd)
        self.synced.set()


def test_a_round_waits_for_a_kick_until_max_delay() -> None:
    sync = CountingSync()
    gc = GroupCommitter(sync=sync, max_delay=60.0)
    try:
        first = gc.request([3])
        second = gc.request([3])
        assert first is second  # one future per file set and round
        assert not sync.synced.wait(0.05)  # nobody is waiting yet: the round gathers
        assert isinstance(first, RoundFuture)
        first.kick()
        first.result(timeout=10)
        assert sync.calls == [3]
    finally:
        gc.close()


def test_waiting_for_a_result_starts_the_round() -> None:
    sync = CountingSync()
    gc = GroupCommitter(sync=sync, max_delay=60.0)
    try:
        gc.request([4]).result(timeout=10)
        assert sync.calls == [4]
    finally:
        gc.close()


def test_an_unkicked_round_starts_after_max_delay() -> None:
    sync = CountingSync()
    gc = GroupCommitter(sync=sync, max_delay=0.05)
    try:
        started = time.monotonic()
        future = gc.request([5])
        assert sync.synced.wait(10)
        assert time.monotonic() - started >= 0.04
        assert future.done() or sync.calls == [5]
    finally:
        gc.close()


async def test_writes_of_one_loop_iteration_share_one_round() -> None:
    sync = CountingSync()
    gc = GroupCommitter(sync=sync, max_delay=60.0)
    waits = DurableWaits()
    try:
        tasks = [asyncio.create_task(waits.wait(gc.request([6]))) for _ in range(10)]
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        assert gc.rounds == 1 and sync.calls == [6]
        await asyncio.wait_for(waits.wait(gc.request([6])), 10)
        assert gc.rounds == 2
    finally:
        gc.close()


async def test_deliver_answers_with_the_value_or_the_sync_error() -> None:
    sync = CountingSync()
    gc = GroupCommitter(sync=sync, max_delay=60.0)
    waits = DurableWaits()
    try:
        assert await asyncio.wait_for(waits.deliver(gc.request([7]), "stored"), 10) == "stored"
    finally:
        gc.close()

    def failing(fd: int) -> None:
        raise OSError(5, "injected EIO")

    gc = GroupCommitter(sync=failing, max_delay=60.0)
    try:
        answer = waits.deliver(gc.request([8]), "stored")
        with pytest.raises(OSError, match="injected EIO"):
            await asyncio.wait_for(answer, 10)
    finally:
        gc.close()
