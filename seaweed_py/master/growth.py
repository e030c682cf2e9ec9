"""Growing volumes: place a new volume, have every chosen volume server allocate it, and only then
commit it to the topology (spec §5.4).

Growths run one at a time per master (placement must see the slots the previous growth took), and
at most one automatic growth per layout is in flight; assigns that find nothing writable while it
runs are told to retry.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

from seaweed_py.client.volume_admin import VolumeAdmin
from seaweed_py.errors import WeedError
from seaweed_py.formats.wire import AllocateVolume, DeleteVolume
from seaweed_py.master.meta import MetaStore
from seaweed_py.master.metrics import MasterStats
from seaweed_py.master.params import AssignOption
from seaweed_py.topology import DataNode, LayoutKey, Topology

__all__ = ["VolumeGrower"]

log = logging.getLogger(__name__)


class VolumeGrower:
    def __init__(
        self,
        topology: Topology,
        admin: VolumeAdmin,
        meta: MetaStore,
        rng: random.Random,
        clock: Callable[[], float],
        stats: MasterStats,
    ) -> None:
        self._topo = topology
        self._admin = admin
        self._meta = meta
        self._rng = rng
        self._clock = clock
        self._stats = stats
        self._lock = asyncio.Lock()
        self._pending: dict[LayoutKey, asyncio.Task[int]] = {}

    def pending(self, key: LayoutKey) -> asyncio.Task[int] | None:
        """The automatic growth in flight for `key`, if any."""
        return self._pending.get(key)

    def start(self, option: AssignOption, count: int) -> asyncio.Task[int]:
        """Begin an automatic growth of `count` volumes for the option's layout."""
        task = asyncio.get_running_loop().create_task(self.grow(option, count))
        key = option.key
        self._pending[key] = task

        def _done(t: asyncio.Task[int]) -> None:
            if self._pending.get(key) is t:
                del self._pending[key]
            if not t.cancelled() and t.exception() is not None:
                log.warning("volume growth for %s failed: %s", option.describe(), t.exception())

        task.add_done_callback(_done)
        return task

    async def cancel_all(self) -> None:
        tasks = list(self._pending.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def grow(self, option: AssignOption, count: int) -> int:
        """Create up to `count` logical volumes; return how many were made.

        Stops at the first failure; raises it only if nothing was made.
        """
        async with self._lock:
            created = 0
            for _ in range(count):
                try:
                    await self._grow_one(option)
                except WeedError:
                    if created == 0:
                        raise
                    break
                created += 1
            return created

    def find_slots(self, option: AssignOption) -> list[DataNode]:
        """Nodes for one new volume of the option's layout and location; raises `NoFreeSlots`."""
        key = option.key
        return self._topo.find_slots(
            key.replica_placement,
            key.disk,
            self._rng,
            option.data_center,
            option.rack,
            option.data_node,
        )

    async def _grow_one(self, option: AssignOption) -> None:
        key = option.key
        nodes = self.find_slots(option)
        vid = self._next_volume_id()
        results = await asyncio.gather(
            *(self._allocate(node, vid, option) for node in nodes), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            made = [n for n, r in zip(nodes, results, strict=True) if r is None]
            await asyncio.gather(
                *(self._admin.send(n.url, DeleteVolume(vid)) for n in made),
                return_exceptions=True,
            )
            first = failures[0]
            if isinstance(first, WeedError):
                raise first
            raise WeedError(f"allocating volume {vid} failed: {first!r}") from first
        self._topo.commit_volume(vid, key, nodes, self._clock())
        self._stats.grown_volumes += 1
        log.info("grew volume %d on %s", vid, ", ".join(n.url for n in nodes))

    async def _allocate(self, node: DataNode, vid: int, option: AssignOption) -> None:
        key = option.key
        order = AllocateVolume(
            vid, key.collection, key.replica_placement, key.ttl, option.preallocate, key.disk
        )
        await self._admin.send(node.url, order)

    def _next_volume_id(self) -> int:
        vid = max(self._meta.current.max_volume_id, self._topo.max_volume_id) + 1
        self._meta.save_volume_id(vid)  # durable before any server hears of it
        return vid
