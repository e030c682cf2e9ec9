"""The master's automatic tiering (`-tier.dest`, off by default): every `-tier.interval`, the
volumes `topology.tiering.volumes_to_tier` picks are moved to the bucket one at a time, with
the sequence `volume.tier.upload` runs (`client/tiering.py`: replicas marked read-only, the
first uploads, the others mount the object). A failure is logged and the volume is tried again
at the next round; the volume servers need the S3 settings, the master none.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from seaweed_py.client.tiering import Tiering
from seaweed_py.errors import WeedError
from seaweed_py.topology import Topology
from seaweed_py.topology.tiering import TierPolicy, volumes_to_tier

__all__ = ["AutoTier"]

log = logging.getLogger(__name__)


class AutoTier:
    def __init__(
        self,
        topology: Topology,
        tiering: Tiering,
        policy: TierPolicy,
        *,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._topology = topology
        self._tiering = tiering
        self.policy = policy
        self._now = now
        self.tiered = 0
        self.failed = 0

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.policy.interval)
            await self.round()

    async def round(self) -> list[int]:
        """Tier every volume the policy picks now; the ids tiered."""
        done: list[int] = []
        for vid in volumes_to_tier(self._topology, self.policy, self._now()):
            try:
                report = await self._tiering.upload(vid, self.policy.dest)
            except WeedError as exc:
                self.failed += 1
                log.error("automatic tiering of volume %d failed: %s", vid, exc.message)
                continue
            self.tiered += 1
            done.append(vid)
            log.info(
                "volume %d tiered to %s as %s (%d bytes)",
                vid,
                report.backend,
                report.key,
                report.size,
            )
        return done
