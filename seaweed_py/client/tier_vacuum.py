"""The vacuum of a tiered volume V across its holders (`Tiering.vacuum`: the shell's
`volume.tier.compact`, the master's `/vol/vacuum?volumeId=`), and how a rerun finishes one that
a crash, a freeze or a failure cut short. weed 4.48's `volume.tier.compact` moves one holder
only and leaves the others on a deleted object (tiering spec §4.3); here every holder moves.

A run, over the admin calls of `client/volume_admin.py`:

1. the holders of V from the master and each one's state; at least one must read V from a
   bucket (else V is not tiered: `Conflict`), and the master must list as many holders as V's
   replication asks for (a holder missing from its view may read an object step 6 would
   delete: `Conflict`);
2. every holder is marked read-only in memory (`persist=false`). A tiered holder then refuses
   deletes too (weed's noWriteOrDelete), so no delete lands between the moment an `.idx` goes
   to the bucket and the moment the other holders mount it: a holder mounting an object takes
   the `.idx` beside it, and a delete it missed would be served again;
3. the source, by the first rule that applies:
   - a holder reading a local `.dat` (an earlier run downloaded it there and was cut short, or
     `-keepLocalDatFile` left it local): it goes on from there, no download;
   - holders reading different objects (an earlier run uploaded V' and was cut short before
     every holder mounted it): the newest upload wins (the highest compaction revision, then the
     first holder in the master's order: uploads of one revision hold the same needles), its
     holder sends its `.idx` beside it again (the upload call on a tiered volume), and nothing
     is compacted in this run;
   - every holder on one object K: below the garbage threshold nothing moves (step 6 still
     runs); else the first holder downloads the `.dat`, keeping K (the others go on reading K);
4. a local source compacts and commits V as any local volume when its garbage ratio is at or
   above the threshold (a failed compaction is cleaned up and V goes back uncompacted), then
   uploads V under a fresh key K' (its `.idx` and `.vif` beside it) and reads K';
5. every other holder not on K' gives up its copy and mounts K' (`/admin/volume/tier/mount`);
6. once every holder reads one object, the other uploads of V the bucket listed when the run
   began are deleted (`/admin/volume/tier/uploads` at step 1, then `/forget` for each): K, and
   what an earlier run cut short left (a data object without its `.vif`). An upload that
   appeared since is left alone: another run over V (an operator's beside the master's) may be
   mounting it, and the next run deletes it if no holder reads it then. Then every holder is
   marked writable again, which for a tiered volume lifts the delete hold of step 2.

Every call but a transfer, a mount and the vacuum steps is bounded by `timeouts.transfer` (the
shell's `-timeout`, else 120 s), so a frozen holder fails the run instead of hanging it. A
compaction the source refuses as there already (409) is committed if it is finished (a cut run
left it), else left to finish: the run stops ("rerun later") without cleaning it up.

A failure stops the run with one line ending "rerun volume.tier.compact to finish"; the holds
stay (deletes are refused, reads go on) until a rerun or a restart of that holder (a restart
loads a tiered volume deletable, a local one as it was); every state a run can be cut in is
one step 3 resumes from. A multipart upload cut by a crash is not listed by the bucket's object
listing: it is left to the bucket's lifecycle rule (AbortIncompleteMultipartUpload).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from seaweed_py import errors
from seaweed_py.client.http import Timeout
from seaweed_py.client.tier_report import Say, TierReport
from seaweed_py.formats.wire import MarkReadonly, MarkWritable, VolumeReport
from seaweed_py.topology.vacuum import VacuumTimeouts

if TYPE_CHECKING:
    from seaweed_py.client.tiering import Tiering

__all__ = ["vacuum_tiered"]

log = logging.getLogger(__name__)

_RERUN = "rerun volume.tier.compact to finish"


async def vacuum_tiered(
    tiering: Tiering,
    vid: int,
    *,
    threshold: float,
    timeouts: VacuumTimeouts,
    say: Say | None = None,
) -> TierReport:
    """One run over volume `vid` (module docstring); `already` in the report when nothing had
    to move."""
    run = _Run(tiering, vid, timeouts, say)
    try:
        return await run.go(threshold)
    except errors.WeedError as exc:
        if _RERUN not in exc.message:
            exc.message = f"{exc.message}; {_RERUN}"
            exc.args = (exc.message,)
        raise


class _Run:
    def __init__(
        self, tiering: Tiering, vid: int, timeouts: VacuumTimeouts, say: Say | None
    ) -> None:
        self.t = tiering
        self.admin = tiering.admin
        self.vid = vid
        self.timeouts = timeouts
        self.say = say
        self.short = Timeout(total=timeouts.transfer, connect=5.0)
        self.before: set[str] = set()
        """The uploads of the volume the bucket listed when the run began (step 6)."""

    def _say(self, line: str) -> None:
        if self.say is not None:
            self.say(line)

    async def _states(self) -> list[tuple[str, VolumeReport]]:
        return await self.t.states(self.vid, timeout=self.short)

    async def go(self, threshold: float) -> TierReport:
        vid, admin = self.vid, self.admin
        started = self.t.clock()
        states = await self._states()
        tiered = [(url, s) for url, s in states if s.remote_storage_name]
        if not tiered:
            raise errors.Conflict(
                f"volume {vid} is not tiered: no holder reads it from a bucket (vacuum it "
                "with volume.vacuum)",
                volume_id=vid,
            )
        backends = {s.remote_storage_name for _, s in tiered}
        if len(backends) != 1:
            raise errors.Conflict(
                f"volume {vid} is read from several backends ({', '.join(sorted(backends))})",
                volume_id=vid,
            )
        (backend,) = backends
        wanted = states[0][1].replica_placement.copy_count
        if len(states) < wanted:
            # A holder the master does not list (down, or frozen past its heartbeats) may read
            # an object this run would delete.
            raise errors.Conflict(
                f"volume {vid} has {len(states)} of the {wanted} holders its replication "
                f"{states[0][1].replica_placement} asks for; rerun once every holder is back",
                volume_id=vid,
            )
        self.before = set(
            await admin.tier_uploads(states[0][0], vid, source=backend, timeout=self.short)
        )
        collection = states[0][1].collection
        local = [url for url, s in states if not s.remote_storage_name]
        keys = {s.remote_storage_key for _, s in tiered}
        report = TierReport(vid, collection, backend=backend)

        if not local and len(keys) == 1:
            source = states[0][0]
            report.source, report.key = source, next(iter(keys))
            ratio = await admin.vacuum_check(source, vid, timeout=self.timeouts.check)
            if ratio < threshold:
                report.already = True
                await self._finish(states, report.key, backend)
                report.seconds = self.t.clock() - started
                return report
        await self._hold(states)
        if local:
            source = local[0]
            self._say(f"volume {vid} is local on {source}: going on from there")
        elif len(keys) == 1:
            source = states[0][0]
            self._say(f"downloading volume {vid} to {source} (keeping {report.key})")
            await admin.tier_download(
                source,
                vid,
                collection=collection,
                keep_remote=True,
                silence=self.timeouts.transfer,
            )
        else:
            # The newest upload: max() keeps the first of equal revisions.
            source, state = max(tiered, key=lambda h: h[1].compact_revision)
            self._say(
                f"volume {vid} is read from {len(keys)} objects: {source}'s "
                f"{state.remote_storage_key} (compaction revision {state.compact_revision}) wins"
            )
        report.source = source
        if local or len(keys) == 1:
            await self._compact(source, threshold, report)
        self._say(f"uploading volume {vid} from {source} to {backend}")
        done = await admin.tier_upload(
            source, vid, dest=backend, collection=collection, silence=self.timeouts.transfer
        )
        report.key = str(done.get("key", ""))
        report.size = int(done.get("size", 0))
        for url, state in states:
            if url == source or state.remote_storage_key == report.key:
                continue
            self._say(f"mounting volume {vid} on {url} from {backend} {report.key}")
            await admin.tier_mount(
                url,
                vid,
                source=backend,
                collection=collection,
                key=report.key,
                replace=True,
                silence=self.timeouts.transfer,
            )
            report.replicas.append(url)
        await self._finish(await self._states(), report.key, backend)
        report.seconds = self.t.clock() - started
        return report

    async def _hold(self, states: list[tuple[str, VolumeReport]]) -> None:
        for url, _ in states:
            await self.admin.send(url, MarkReadonly(self.vid, persist=False), timeout=self.short)
        self._say(f"volume {self.vid} is read-only on {', '.join(u for u, _ in states)}")

    async def _compact(self, source: str, threshold: float, report: TierReport) -> None:
        vid, admin = self.vid, self.admin
        ratio = await admin.vacuum_check(source, vid, timeout=self.timeouts.check)
        if ratio < threshold:
            return
        self._say(f"vacuuming volume {vid} on {source}")
        try:
            await admin.vacuum_compact(source, vid, timeout=self.timeouts.compact)
        except errors.Conflict as exc:
            # A compaction is there already: one a cut run finished (commit it), or one still
            # at work, another run's (a cleanup would pull its files away under it).
            try:
                answer = await admin.vacuum_commit(source, vid, timeout=self.timeouts.commit)
            except errors.Conflict as busy:
                raise errors.Conflict(
                    f"volume {vid} on {source} is busy ({exc.message}; {busy.message}): "
                    "rerun later",
                    volume_id=vid,
                ) from busy
            report.reclaimed = answer.reclaimed_bytes
            return
        except errors.ServerUnreachable:
            raise  # it may still be at work: a rerun finds the volume as it left it
        except errors.WeedError as exc:
            await self._cleanup(source, exc)
            return
        try:
            answer = await admin.vacuum_commit(source, vid, timeout=self.timeouts.commit)
        except errors.ServerUnreachable:
            raise
        except errors.WeedError as exc:
            await self._cleanup(source, exc)
            return
        report.reclaimed = answer.reclaimed_bytes

    async def _cleanup(self, source: str, exc: errors.WeedError) -> None:
        vid = self.vid
        self._say(f"vacuum of volume {vid} failed ({exc.message}): uploading it as it is")
        try:
            await self.admin.vacuum_cleanup(source, vid)
        except errors.WeedError as cleanup:  # the next compaction starts over anyway
            log.warning("cleaning up volume %d on %s: %s", vid, source, cleanup)

    async def _finish(self, states: list[tuple[str, VolumeReport]], key: str, backend: str) -> None:
        """Every holder reads `key`: the other uploads go, then the holds."""
        vid = self.vid
        read = {(s.remote_storage_name, s.remote_storage_key) for _, s in states}
        if read != {(backend, key)}:
            raise errors.Conflict(
                f"volume {vid} is not read from {backend} {key} by every holder: "
                + ", ".join(
                    f"{u} reads {s.remote_storage_key or 'a local .dat'}" for u, s in states
                ),
                volume_id=vid,
            )
        source = states[0][0]
        listed = await self.admin.tier_uploads(source, vid, source=backend, timeout=self.short)
        for other in listed:
            if other == key or other not in self.before:
                continue
            self._say(f"deleting {backend} {other}")
            try:
                await self.admin.tier_forget(
                    source, vid, source=backend, key=other, timeout=self.short
                )
            except errors.WeedError as exc:  # costs room in the bucket; the next run retries
                log.warning("volume %d: %s %s stays in the bucket: %s", vid, backend, other, exc)
                self._say(f"{backend} {other} stays in the bucket: {exc.message}")
        for url, _ in states:
            await self.admin.send(url, MarkWritable(vid), timeout=self.short)
