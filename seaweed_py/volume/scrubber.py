"""The background scrubber: every live needle of every volume read back and checked,
continuously, at `-scrubMBps` (0: off), and what fails repaired from a replica.

Passes go over the volumes in id order, each volume a batch at a time (storage/volume_scrub.py:
up to 1 MiB of neighbouring records per pread); a batch runs in a worker thread and is followed
by a sleep as long as reading its bytes at the configured rate takes, so the scrubber reads at
most `-scrubMBps` on average and yields the event loop between batches. At the end of a pass it
starts the next one, `min_pass` seconds (`-scrubPassSeconds`, 60 by default) after the start
of the last at the earliest (a server with little data does not spin). A corrupt needle is noted (logged once, `weedpy_volume_corrupt_needles`, `/status`) and
repaired through `NeedleRepair`.

`scrub` is the same check at full speed, for `POST /admin/volume/scrub` (`weedpy shell`'s
`volume.scrub`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Final

from seaweed_py.formats.wire import CorruptFinding, ScrubReport
from seaweed_py.storage.store import Store
from seaweed_py.storage.volume import Volume
from seaweed_py.storage.volume_scrub import ScrubStep
from seaweed_py.volume.repair import NeedleRepair
from seaweed_py.volume.stats import Stats

__all__ = ["DEFAULT_SCRUB_MBPS", "DEFAULT_SCRUB_PASS_SECONDS", "Scrubber"]

log = logging.getLogger(__name__)

DEFAULT_SCRUB_MBPS: Final = 8
"""docs/internals.md "Scrubbing" has the cost measured at this rate."""
DEFAULT_SCRUB_PASS_SECONDS: Final = 60.0


class Scrubber:
    def __init__(
        self,
        store: Store,
        repair: NeedleRepair,
        stats: Stats,
        *,
        rate: float,
        min_pass: float = DEFAULT_SCRUB_PASS_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`rate`: bytes per second (0: the background pass never runs); `min_pass`: seconds
        from the start of one background pass to the next at the least."""
        self._store = store
        self._repair = repair
        self._stats = stats
        self.rate = rate
        self._min_pass = min_pass
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self.last_pass: float | None = None
        """When the last complete pass ended (`clock`), None before the first."""

    def start(self) -> None:
        if self.rate > 0:
            self._task = asyncio.create_task(self._run(), name="scrubber")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            began = self._clock()
            for volume in sorted(self._store.volumes(), key=lambda v: v.id):
                try:
                    await self._volume(volume, paced=True)
                except Exception:  # one volume's trouble must not stop the others' checks
                    log.exception("scrubbing volume %d failed", volume.id)
            self._stats.scrub_passes += 1
            self.last_pass = self._clock()
            await asyncio.sleep(max(0.0, self._min_pass - (self.last_pass - began)))

    async def scrub(self, volumes: Sequence[Volume]) -> ScrubReport:
        """Check `volumes` now, at full speed, repairing what fails."""
        needles = checked = 0
        found: list[CorruptFinding] = []
        for volume in volumes:
            n, b, corrupt = await self._volume(volume, paced=False)
            needles, checked, found = needles + n, checked + b, found + corrupt
        return ScrubReport(len(volumes), needles, checked, tuple(found))

    async def _volume(
        self, volume: Volume, *, paced: bool
    ) -> tuple[int, int, list[CorruptFinding]]:
        steps = volume.scrub_pass()
        needles = checked = 0
        found: list[CorruptFinding] = []
        while True:
            step: ScrubStep | None = await asyncio.to_thread(next, steps, None)
            if step is None:
                return needles, checked, found
            needles += step.needles
            checked += step.checked_bytes
            self._stats.scrubbed_needles += step.needles
            self._stats.scrubbed_bytes += step.checked_bytes
            for record in step.corrupt:
                self._stats.scrub_corrupt += 1
                repaired = await self._repair.repair(volume, record.key)
                found.append(
                    CorruptFinding(
                        volume.id, record.key, record.offset, record.size, record.reason, repaired
                    )
                )
            if paced and self.rate > 0:
                await asyncio.sleep(step.checked_bytes / self.rate)
