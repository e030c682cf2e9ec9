"""Repairing a rotted needle from a replica: the scrubber's and read repair's common step.

A needle whose record here fails its checks is fetched from each other holder in turn (their
`/admin/volume/needle` checks it before sending), checked again here, and written back as the
key's live record (`Volume.repair_corrupt`: only over a record that is still the rotted copy of
that needle). Without a holder whose copy is sound, the needle stays reported
(`corrupt_needles`, the metric, `/status`) and is never served. One repair per needle at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from seaweed_py.client.master_link import MasterLink
from seaweed_py.client.volume_admin import VolumeAdmin
from seaweed_py.errors import CorruptNeedle, WeedError
from seaweed_py.storage.volume import Volume
from seaweed_py.volume.stats import Stats

__all__ = ["NeedleRepair"]

log = logging.getLogger(__name__)


class NeedleRepair:
    def __init__(
        self,
        admin: VolumeAdmin,
        link: MasterLink | None,
        *,
        self_url: Callable[[], str],
        stats: Stats,
    ) -> None:
        self._admin = admin
        self._link = link
        self._self_url = self_url
        self._stats = stats
        self._running: dict[tuple[int, int], asyncio.Future[bool]] = {}

    async def peers(self, vid: int) -> list[str]:
        """The other holders of volume `vid` (none for a single copy, or without a master)."""
        if self._link is None:
            return []
        me = self._self_url()
        try:
            return [loc.url for loc in await self._link.lookup(vid) if loc.url != me]
        except WeedError:
            return []

    async def repair(self, volume: Volume, key: int) -> bool:
        """Replace the rotted needle `key` of `volume` with a replica's sound copy; whether it
        was (a repair already under way for it is awaited, not repeated)."""
        running = self._running.get((volume.id, key))
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._running[volume.id, key] = future
        try:
            done = await self._repair(volume, key)
            future.set_result(done)
            return done
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning if nobody waits
            raise
        finally:
            del self._running[volume.id, key]

    async def _repair(self, volume: Volume, key: int) -> bool:
        if volume.replica_placement.copy_count <= 1:
            return False
        for peer in await self.peers(volume.id):
            try:
                record, stamp = await self._admin.needle_record(peer, volume.id, key)
                repaired = await asyncio.to_thread(volume.repair_corrupt, record, stamp)
            except CorruptNeedle:
                continue  # rotted there too (its own scrubber will ask us), or damaged on the way
            except WeedError as exc:
                log.debug("repair of volume %d key %x from %s: %s", volume.id, key, peer, exc)
                continue
            if repaired:
                self._stats.needle_repairs += 1
                log.warning(
                    "volume %d: corrupt needle %x repaired with the copy of %s",
                    volume.id,
                    key,
                    peer,
                )
            return repaired
        return False
