"""Reads of tiered volumes on the event loop: coalesced, cached, never blocking the loop.

`TierReads.read(volume, offset, length)` answers from the range cache when it can (on the loop:
a dict and a bisect). Otherwise the request joins the volume's queue; the queue is sent at the
next turn of the loop as one `DatFile.read_spans` call in a worker thread, which merges
neighbouring spans (gaps up to 1 MiB) into one ranged GET. At most `MAX_INFLIGHT` such calls
run per volume: past that, requests wait in the queue and leave together when one returns, so
the busier the volume, the more reads each GET serves. A failure fails every read of the call
(`RemoteStorageError`, 502).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Final

from seaweed_py.storage.backend import RemoteDatFile
from seaweed_py.storage.volume import Volume

__all__ = ["MAX_INFLIGHT", "TierReads"]

MAX_INFLIGHT: Final = 4

_Waiter = tuple[int, int, "asyncio.Future[bytes]"]


class _Queue:
    __slots__ = ("inflight", "scheduled", "waiting")

    def __init__(self) -> None:
        self.waiting: list[_Waiter] = []
        self.inflight = 0
        self.scheduled = False


class TierReads:
    """The coalescing reader of one volume server's tiered volumes."""

    def __init__(self) -> None:
        self._queues: dict[int, _Queue] = {}
        self.calls = 0
        """`read_spans` calls made (each one or a few GETs): for metrics and tests."""
        self.reads = 0
        """Reads that needed the network."""
        self._tasks: set[asyncio.Future[list[bytes]]] = set()

    async def read(self, volume: Volume, offset: int, length: int) -> bytes:
        data = volume.data
        if isinstance(data, RemoteDatFile) and data.cache is not None:
            cached = data.cache.get(data.key, offset, length)
            if cached is not None:
                return cached
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes] = loop.create_future()
        queue = self._queues.setdefault(volume.id, _Queue())
        queue.waiting.append((offset, length, future))
        self.reads += 1
        if not queue.scheduled and queue.inflight < MAX_INFLIGHT:
            queue.scheduled = True
            loop.call_soon(self._send, volume, queue)
        return await future

    def _send(self, volume: Volume, queue: _Queue) -> None:
        queue.scheduled = False
        batch = [w for w in queue.waiting if not w[2].done()]
        queue.waiting = []
        if not batch:
            return
        queue.inflight += 1
        self.calls += 1
        spans = [(o, n) for o, n, _ in batch]
        task = asyncio.get_running_loop().run_in_executor(None, volume.data.read_spans, spans)
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._done(t, volume, queue, batch))

    def _done(
        self,
        task: asyncio.Future[list[bytes]],
        volume: Volume,
        queue: _Queue,
        batch: Sequence[_Waiter],
    ) -> None:
        self._tasks.discard(task)
        queue.inflight -= 1
        exc = None if task.cancelled() else task.exception()
        for i, (_, _, future) in enumerate(batch):
            if future.done():
                continue
            if task.cancelled():
                future.cancel()
            elif exc is not None:
                future.set_exception(exc)
            else:
                future.set_result(task.result()[i])
        if queue.waiting and not queue.scheduled:
            queue.scheduled = True
            asyncio.get_running_loop().call_soon(self._send, volume, queue)
        if not queue.waiting and not queue.inflight:
            self._queues.pop(volume.id, None)
