"""Vacuum passes (spec §9.2): the automatic sweep every `-vacuumIntervalSeconds` and
`/vol/vacuum`, which both run `Vacuumer.run`.

One pass at a time per master: a second request while one runs returns at once (as the
reference's). A pass takes the candidates of `topology.vacuum` and, for each volume:

1. **check** every replica in parallel (`/admin/vacuum/check`); the replicas at or above the
   threshold are selected; the volume is skipped if any check failed or none qualifies;
2. takes the volume out of the writable set, then **compacts** the selected replicas in
   parallel (`/admin/vacuum/compact`: reads and writes go on meanwhile);
3. if every compaction succeeded, **commits** them one replica at a time
   (`/admin/vacuum/commit`, which replays what was written and deleted during the copy), and
   asks the replicas left alone for their status; a replica whose commit failed, or every
   selected one if a compaction failed, is **cleaned up** (`/admin/vacuum/cleanup`);
4. puts the volume back in the writable set, whatever happened: each replica holds the same
   live needles either way, and the next heartbeats report sizes and read-only flags.

At most `-maxParallelVacuumPerServer` volumes are vacuumed at once on one server
(`topology.vacuum.VacuumSlots`); volumes on other servers proceed in parallel.

A tiered volume (named by `volumeId`: it is read-only) is not compacted where it lies: its pass
runs `client/tier_vacuum.py`'s sequence instead (download, compact, re-upload, holders moved to
the new object, the old one deleted). It holds the admin lock (`master/admin_lock.py`) while it
runs, as the shell's `volume.tier.compact` does: two runs over one volume would each delete the
other's fresh upload. While someone else holds the lock, `/vol/vacuum?volumeId=` of a tiered
volume is refused (409) and the sweep leaves tiered volumes for its next pass.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from seaweed_py.client.tiering import Tiering
from seaweed_py.client.volume_admin import VolumeAdmin
from seaweed_py.errors import Conflict, WeedError
from seaweed_py.formats.wire import LOCK_NAME, LeaseLock, ReleaseLock
from seaweed_py.master.admin_lock import LEASE_SECONDS, AdminLocks, Lease
from seaweed_py.master.metrics import MasterStats
from seaweed_py.topology import Topology
from seaweed_py.topology.vacuum import (
    VacuumCandidate,
    VacuumPass,
    VacuumSlots,
    VacuumTimeouts,
    select_replicas,
    sweep_delay,
    vacuum_candidates,
)

__all__ = ["Vacuumer"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")


class Vacuumer:
    """Runs vacuum passes over the master's topology."""

    def __init__(
        self,
        topology: Topology,
        admin: VolumeAdmin,
        tiering: Tiering,
        locks: AdminLocks,
        stats: MasterStats,
        *,
        per_server: int,
        preallocate: int,
        clock: Callable[[], float],
    ) -> None:
        self._topo = topology
        self._admin = admin
        self._tiering = tiering
        self._locks = locks
        self._stats = stats
        self._per_server = per_server
        self._preallocate = preallocate
        self._clock = clock
        self._running = False

    @property
    def running(self) -> bool:
        return self._running

    async def run(self, request: VacuumPass) -> bool:
        """Vacuum what `request` names; False (at once) if another pass is running;
        `Conflict` if it names a tiered volume while someone holds the admin lock."""
        if self._running:
            return False
        if request.volume_id is not None:
            holder = self._locks.holder(LOCK_NAME)
            named = vacuum_candidates(self._topo, volume_id=request.volume_id)
            if holder is not None and any(c.tiered for c in named):
                raise Conflict(
                    f"volume {request.volume_id} is tiered and the admin lock is held by "
                    f"{holder.client}: vacuum it once the lock is released",
                    volume_id=request.volume_id,
                )
        self._running = True
        try:
            await self._pass(request)
        finally:
            self._running = False
            self._stats.vacuum_passes += 1
        return True

    async def sweep_forever(self, interval: float, threshold: float, rng: random.Random) -> None:
        """The automatic sweep: a pass over every collection every `interval` seconds (plus
        jitter, `sweep_delay`); a failed pass is logged and the next one runs on time."""
        while True:
            await asyncio.sleep(sweep_delay(interval, rng))
            try:
                await self.run(VacuumPass(threshold))
            except Exception:
                log.exception("automatic vacuum sweep failed")

    async def _pass(self, request: VacuumPass) -> None:
        pending = vacuum_candidates(
            self._topo, collection=request.collection, volume_id=request.volume_id
        )
        slots = VacuumSlots(self._per_server)
        running: dict[asyncio.Task[None], VacuumCandidate] = {}
        try:
            while pending or running:
                waiting: list[VacuumCandidate] = []
                for cand in pending:
                    if slots.try_take(cand.servers):
                        task = asyncio.create_task(self._volume(cand, request.threshold))
                        running[task] = cand
                    else:
                        waiting.append(cand)
                pending = waiting
                if not running:  # nothing fits even alone: cannot happen with limits >= 1
                    break
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    slots.release(running.pop(task).servers)
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    async def _volume(self, cand: VacuumCandidate, threshold: float) -> None:
        """Check, compact, commit (or clean up) one volume; never raises a WeedError."""
        vid = cand.volume_id
        timeouts = VacuumTimeouts.for_size_limit(self._topo.volume_size_limit)
        if cand.tiered:
            await self._tiered(cand, threshold, timeouts)
            return
        ratios = await self._on_each(
            cand.servers,
            lambda s: self._admin.vacuum_check(s, vid, timeout=timeouts.check),
            f"checking volume {vid}",
        )
        if any(isinstance(r, BaseException) for r in ratios.values()):
            return
        selected = select_replicas(
            {s: r for s, r in ratios.items() if isinstance(r, float)}, threshold
        )
        if not selected:
            return
        log.info("vacuuming volume %d on %s", vid, ", ".join(selected))
        self._topo.set_vacuuming(vid, True, self._clock())
        started = time.monotonic()
        try:
            await self._compact_and_commit(cand, selected, timeouts)
        finally:
            self._topo.set_vacuuming(vid, False, self._clock())
            self._stats.observe_vacuum(time.monotonic() - started)

    async def _tiered(
        self, cand: VacuumCandidate, threshold: float, timeouts: VacuumTimeouts
    ) -> None:
        vid = cand.volume_id
        ask = LeaseLock(client="master", message=f"vacuuming tiered volume {vid}")
        try:
            lease = self._locks.lease(ask)
        except Conflict as exc:
            log.info("tiered volume %d left for the next pass: %s", vid, exc.message)
            return
        renewing = asyncio.create_task(self._renew(lease))
        self._topo.set_vacuuming(vid, True, self._clock())
        started = time.monotonic()
        try:
            report = await self._tiering.vacuum(vid, threshold=threshold, timeouts=timeouts)
        except WeedError as exc:
            log.error("vacuuming tiered volume %d: %s", vid, exc)
            self._stats.vacuum_failures += 1
            return
        finally:
            renewing.cancel()
            await asyncio.gather(renewing, return_exceptions=True)
            try:
                self._locks.release(ReleaseLock(lease.token))
            except Conflict as exc:  # it ran out and someone else holds it now: theirs
                log.warning("tiered volume %d: %s", vid, exc.message)
            self._topo.set_vacuuming(vid, False, self._clock())
            self._stats.observe_vacuum(time.monotonic() - started)
        if not report.already:
            log.info("tiered volume %d vacuumed: now %s %s", vid, report.backend, report.key)
            self._stats.vacuumed_volumes += 1
            self._stats.vacuum_reclaimed_bytes += report.reclaimed

    async def _renew(self, lease: Lease) -> None:
        """Keep the admin lock while a tiered vacuum runs (it outlasts a lease)."""
        while True:
            await asyncio.sleep(LEASE_SECONDS / 3)
            try:
                self._locks.lease(LeaseLock(lease.client, lease.token, lease.message))
            except Conflict as exc:
                log.error("the admin lock of a tiered vacuum was lost: %s", exc.message)
                return

    async def _compact_and_commit(
        self, cand: VacuumCandidate, selected: tuple[str, ...], timeouts: VacuumTimeouts
    ) -> None:
        vid = cand.volume_id
        compacted = await self._on_each(
            selected,
            lambda s: self._admin.vacuum_compact(
                s, vid, preallocate=self._preallocate, timeout=timeouts.compact
            ),
            f"compacting volume {vid}",
        )
        if any(isinstance(r, BaseException) for r in compacted.values()):
            self._stats.vacuum_failures += 1
            await self._cleanup(vid, selected)
            return
        failed: list[str] = []
        for server in selected:
            try:
                answer = await self._admin.vacuum_commit(server, vid, timeout=timeouts.commit)
            except WeedError as exc:
                log.error("committing the vacuum of volume %d on %s: %s", vid, server, exc)
                failed.append(server)
                continue
            self._stats.vacuum_reclaimed_bytes += answer.reclaimed_bytes
        for server in cand.servers:
            if server not in selected:
                # The reference asks the others too: a replica that turned read-only or grew
                # meanwhile is seen before the volume is writable again.
                await self._on_each(
                    (server,), lambda s: self._admin.volume_status(s, vid), "status"
                )
        if failed:
            self._stats.vacuum_failures += 1
            await self._cleanup(vid, tuple(failed))
        else:
            self._stats.vacuumed_volumes += 1

    async def _cleanup(self, vid: int, servers: tuple[str, ...]) -> None:
        await self._on_each(
            servers, lambda s: self._admin.vacuum_cleanup(s, vid), f"cleaning up volume {vid}"
        )

    async def _on_each(
        self,
        servers: tuple[str, ...],
        call: Callable[[str], Awaitable[_T]],
        what: str,
    ) -> dict[str, _T | BaseException]:
        """`call(server)` on every server in parallel: each answer or its error (logged)."""
        results = await asyncio.gather(*(call(s) for s in servers), return_exceptions=True)
        answers: dict[str, _T | BaseException] = {}
        for server, result in zip(servers, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):  # cancelled: the pass is stopping
                    raise result
                log.warning("%s on %s: %s", what, server, result)
            answers[server] = result
        return answers
