"""Anti-entropy between the holders of a volume: each one pulls from its peers what they hold
newer, so that all copies converge (docs/internals.md, "Replica anti-entropy").

A pull of volume V from peer P (`pull`, also what `POST /admin/volume/sync` does):

1. compare the bucket digests of V's live needles here and on P (`formats/replica_digest.py`);
   equal digests: done;
2. for the buckets that differ, compare needle states key by key; every state of P that wins
   over ours (the newest record by the time it stands for, tombstones included) is applied
   here: a deletion as a tombstone (or, for a key not held here, a logged deletion), a put by
   fetching P's record, which P checks before sending and we check again, and storing it with
   the time it stands for. Applying re-reads our state under the volume's lock, so a write or
   delete that raced the comparison is never overwritten by an older one.

Who pulls when: every holder pulls each replicated volume from every other holder every
`-replicaCheckSeconds` (jittered; 0: never), so differences in either direction close within
one period; and a server that comes back (its first heartbeat answered, or one after missing
pulses: a restart, a freeze, a partition) pulls at once and asks its peers to pull from it, so
writes only it holds reach them and deletes it missed reach it. Checks of one server run one
at a time; puts are fetched a few at a time.

A record of `_LARGE` bytes or more is held whole (a few times over) while it is fetched,
checked and stored, so such records are fetched one at a time, and only once the write they
stand for has had the time replication gives it: a check that meets a large write in flight
(one holder has appended it, the other is still receiving it) finds it arrived and fetches
nothing, instead of holding a second copy of a body the upload path streams in bounded memory.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Final

from seaweed_py.client.master_link import MasterLink
from seaweed_py.client.volume_admin import VolumeAdmin
from seaweed_py.errors import (
    BadRequest,
    CorruptNeedle,
    NotFound,
    VolumeNotFound,
    WeedError,
)
from seaweed_py.formats.replica_digest import NeedleState, bucket_of, newer_states, winner
from seaweed_py.formats.wire import SyncReport
from seaweed_py.storage.store import Store
from seaweed_py.storage.volume import Volume
from seaweed_py.volume.stats import Stats

__all__ = ["AntiEntropy"]

log = logging.getLogger(__name__)

_FETCHES: Final = 8  # records fetched from a peer at once
_LARGE: Final = 1 << 20  # bytes: a record fetched alone, once settled (module docstring)
_SETTLE_NS: Final = 10 * 10**9  # a write's replication timeout (5 s of silence) and more
_SETTLE_NS_PER_BYTE: Final = 10**9 / (32 << 20)  # ...plus the second per 32 MiB it grants
_COME_BACK_DELAY: Final = 1.0  # lets requests a frozen server held apply before it compares


class AntiEntropy:
    """The pulls of one volume server, on demand and in the background."""

    def __init__(
        self,
        store: Store,
        admin: VolumeAdmin,
        link: MasterLink,
        *,
        self_url: Callable[[], str],
        stats: Stats,
        interval: float,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._admin = admin
        self._link = link
        self._self_url = self_url
        self._stats = stats
        self.interval = interval
        self._rng = rng or random.Random()
        self._busy = asyncio.Lock()
        self._large = asyncio.Semaphore(1)
        self._task: asyncio.Task[None] | None = None
        self._returns: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self.interval > 0:
            self._task = asyncio.create_task(self._periodic(), name="replica check")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._returns) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        self._returns.clear()

    def came_back(self) -> None:
        """This server is (again) in touch with the master: reconcile with the peers, both
        ways (module docstring)."""
        task = asyncio.create_task(self._reconcile(), name="replica check (back)")
        self._returns.add(task)
        task.add_done_callback(self._returns.discard)

    # ------------------------------------------------------------------ passes

    async def _periodic(self) -> None:
        while True:
            # Jittered, so that the holders of a volume do not all compare at once.
            await asyncio.sleep(self.interval * (0.75 + self._rng.random() / 2))
            await self.check_all(both_ways=False)

    async def _reconcile(self) -> None:
        await asyncio.sleep(_COME_BACK_DELAY)
        await self.check_all(both_ways=True)

    async def check_all(self, *, both_ways: bool) -> list[SyncReport]:
        """Pull every replicated volume here from every other holder (and, `both_ways`, have
        each of them pull from here)."""
        reports: list[SyncReport] = []
        for volume in sorted(self._store.volumes(), key=lambda v: v.id):
            if volume.replica_placement.copy_count <= 1 or volume.remote is not None:
                continue
            try:
                reports += await self.check_volume(volume.id, both_ways=both_ways)
            except WeedError as exc:
                log.warning("replica check of volume %d: %s", volume.id, exc.message)
            except Exception:  # keep checking the others
                log.exception("replica check of volume %d failed", volume.id)
        return reports

    async def check_volume(self, vid: int, *, both_ways: bool = False) -> list[SyncReport]:
        me = self._self_url()
        peers = [loc.url for loc in await self._link.lookup(vid, fresh=True) if loc.url != me]
        reports = []
        for peer in peers:
            try:
                reports.append(await self.pull(vid, peer))
                if both_ways:
                    reports.append(await self._admin.sync(peer, vid, me))
            except WeedError as exc:
                log.warning("replica check of volume %d with %s: %s", vid, peer, exc.message)
        return reports

    # ------------------------------------------------------------------ one pull

    async def pull(self, vid: int, peer: str) -> SyncReport:
        """Pull from `peer` every state of volume `vid` it holds newer than this server."""
        async with self._busy:
            return await self._pull(self._volume(vid), peer)

    def _volume(self, vid: int) -> Volume:
        volume = self._store.get(vid)
        if volume is None:
            raise VolumeNotFound("volume not found on this server", volume_id=vid)
        if volume.remote is not None:
            raise BadRequest("a tiered volume has one copy, in its bucket", volume_id=vid)
        return volume

    async def _pull(self, volume: Volume, peer: str) -> SyncReport:
        vid = volume.id
        theirs = await self._admin.digest(peer, vid)
        mine = await asyncio.to_thread(volume.digest)
        diff = [i for i in range(len(mine.buckets)) if mine.buckets[i] != theirs.buckets[i]]
        self._stats.replica_checks += 1
        if not diff:
            return SyncReport(vid, peer)
        ours = await asyncio.to_thread(volume.states, diff)
        newer = newer_states(ours, await self._admin.needle_states(peer, vid, tuple(diff)))
        counts = {"pulled": 0, "deleted": 0, "failed": 0}
        gate = asyncio.Semaphore(_FETCHES)

        async def apply(state: NeedleState) -> None:
            async with gate:
                outcome = await self._apply(volume, peer, state, ours.get(state.key))
            if outcome in counts:
                counts[outcome] += 1

        await asyncio.gather(*(apply(s) for s in newer))
        report = SyncReport(
            vid, peer, len(diff), counts["pulled"], counts["deleted"], counts["failed"]
        )
        if report.changed or report.failed:
            self._stats.replica_repairs += report.changed
            log.info(
                "volume %d: pulled %d needles and %d deletes from %s (%d failed)",
                vid,
                report.pulled,
                report.deleted,
                peer,
                report.failed,
            )
        return report

    async def _fetch(
        self, volume: Volume, peer: str, state: NeedleState, known: NeedleState | None
    ) -> str:
        record, stamp = await self._admin.needle_record(peer, volume.id, state.key)
        done = await asyncio.to_thread(volume.apply_put, record, stamp, known)
        return "pulled" if done else "skipped"

    async def _settled(self, volume: Volume, state: NeedleState) -> NeedleState | None:
        """This volume's state of `state.key` once the write `state` stands for has had the
        time replication gives it (at most that long from now, whatever the peers' clocks)."""
        settle = _SETTLE_NS + int(state.size * _SETTLE_NS_PER_BYTE)
        wait = min(settle, state.stamp + settle - time.time_ns())
        if wait > 0:
            await asyncio.sleep(wait / 1e9)
        found = await asyncio.to_thread(volume.states, (bucket_of(state.key),))
        return found.get(state.key)

    async def _apply(
        self, volume: Volume, peer: str, state: NeedleState, known: NeedleState | None
    ) -> str:
        """'pulled', 'deleted', 'skipped' (lost a race: ours is newer now) or 'failed'."""
        try:
            if state.deleted:
                done = await asyncio.to_thread(volume.apply_delete, state, known)
                return "deleted" if done else "skipped"
            if state.size >= _LARGE:
                async with self._large:
                    known = await self._settled(volume, state)
                    if winner(known, state) is not state or known == state:
                        return "skipped"
                    return await self._fetch(volume, peer, state, known)
            return await self._fetch(volume, peer, state, known)
        except NotFound:
            return "skipped"  # gone from the peer meanwhile: the next check sees why
        except CorruptNeedle as exc:
            log.error("volume %d: %s sent a record that fails its check: %s", volume.id, peer, exc)
            return "failed"
        except WeedError as exc:
            log.warning("volume %d key %x from %s: %s", volume.id, state.key, peer, exc.message)
            return "failed"
