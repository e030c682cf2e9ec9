"""Tiering a volume across its replicas: the sequences `volume.tier.upload` and
`volume.tier.download` run (the shell, and the master's automatic policy), over the volume
servers' admin calls (`client/volume_admin.py`).

Upload of volume V to backend B (tiering spec §4.1, with weedpy's mount in step 5):

1. the holders of V from the master (`/dir/lookup`), and each one's state
   (`/admin/volume/status`): a replica already tiered goes first, so a rerun reuses its object;
2. V's collection checked against `-collection` when one is given, before anything changes;
3. every replica marked read-only in memory (`persist=false`); should the upload fail, the
   replicas that were writable are made writable again (weed leaves them read-only);
4. the first uploads its `.dat` (and its `.idx` and `.vif` beside it) and switches its reads
   to the object; progress lines are handed to `progress`;
5. unless the local `.dat` is kept, every other replica gives up its copy and mounts the same
   object from the bucket (`/admin/volume/tier/mount`), so all replicas serve the one object.

Download: every holder brings the `.dat` back; local holders first and the object deleted only
by the last holder (weed 4.48 leaks the object when its last location is already local, §4.2).

Every replica is marked read-only in step 3, which for a tiered replica also holds its deletes
(weed's noWriteOrDelete): a replica mounting the object in step 5 takes the `.idx` beside it,
and a delete made meanwhile would be missing from it. Once every replica reads the object, the
replicas reading it are marked writable again, which lifts that hold (weed keeps it until a
restart).

The vacuum of a tiered volume, and how a rerun finishes one cut short, is `client/tier_vacuum.py`
(`Tiering.vacuum`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from seaweed_py import errors
from seaweed_py.client.http import HttpClient, Timeout, json_object
from seaweed_py.client.tier_report import Say, TierReport
from seaweed_py.client.tier_vacuum import vacuum_tiered
from seaweed_py.client.volume_admin import VolumeAdmin
from seaweed_py.formats.wire import MarkReadonly, MarkWritable, VolumeReport
from seaweed_py.topology.vacuum import VacuumTimeouts

__all__ = ["Tiering"]

log = logging.getLogger(__name__)


class Tiering:
    """Tiering commands for the cluster behind one master."""

    def __init__(
        self, http: HttpClient, master: str, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._http = http
        self._master = master
        self.admin = VolumeAdmin(http)
        self.clock = clock

    async def holders(self, vid: int) -> list[str]:
        """The servers the master names for volume `vid` (`VolumeNotFound` if none)."""
        reply = await self._http.request(
            "GET", self._master, "/dir/lookup", params={"volumeId": str(vid)}
        )
        answer = json_object(reply.body)
        urls = [
            str(loc["url"])
            for loc in answer.get("locations") or []
            if isinstance(loc, dict) and loc.get("url")
        ]
        if not urls:
            why = answer.get("error") or "no locations"
            raise errors.VolumeNotFound(f"volume {vid} not found: {why}", volume_id=vid)
        return urls

    async def states(
        self, vid: int, *, timeout: Timeout | None = None
    ) -> list[tuple[str, VolumeReport]]:
        """The holders of `vid` in the master's order, each with its state."""
        return [
            (url, await self.admin.volume_status(url, vid, timeout=timeout))
            for url in await self.holders(vid)
        ]

    async def upload(
        self,
        vid: int,
        dest: str,
        *,
        collection: str | None = None,
        keep_local: bool = False,
        progress: Callable[[dict[str, Any]], None] | None = None,
        say: Say | None = None,
    ) -> TierReport:
        started = self.clock()
        states = await self.states(vid)
        states.sort(key=lambda s: not s[1].remote_storage_name)
        actual = _collection(vid, states, collection)
        report = TierReport(vid, actual)
        for url, _ in states:
            await self.admin.send(url, MarkReadonly(vid, persist=False))
            _say(say, f"markVolumeReadonly {vid} on {url} persist=false")
        source = states[0][0]
        _say(say, f"uploading volume {vid} from {source} to {dest}")
        try:
            done = await self.admin.tier_upload(
                source, vid, dest=dest, collection=actual, keep_local=keep_local, progress=progress
            )
        except errors.WeedError:
            await self._writable_again(vid, states, say)
            raise
        report.source = source
        report.backend = str(done.get("backend", ""))
        report.key = str(done.get("key", ""))
        report.size = int(done.get("size", 0))
        report.already = bool(done.get("already"))
        if not keep_local:
            for url, state in states[1:]:
                if state.remote_storage_name and state.remote_storage_key == report.key:
                    continue
                _say(say, f"mounting volume {vid} on {url} from {report.backend} {report.key}")
                await self.admin.tier_mount(
                    url,
                    vid,
                    source=report.backend,
                    collection=actual,
                    key=report.key,
                    replace=True,
                )
                report.replicas.append(url)
            # Every replica reads the object (and its .idx, sent with it while deletes were
            # held): deletes may resume.
            for url, _ in states:
                await self.admin.send(url, MarkWritable(vid))
        else:
            await self.admin.send(source, MarkWritable(vid))
        report.seconds = self.clock() - started
        return report

    async def _writable_again(
        self, vid: int, states: list[tuple[str, VolumeReport]], say: Say | None
    ) -> None:
        """After a failed upload: the replicas that took writes before take them again, and
        the tiered ones deletes (weed leaves them read-only)."""
        for url, state in states:
            if state.read_only and not state.remote_storage_name:
                continue
            try:
                await self.admin.send(url, MarkWritable(vid))
                _say(say, f"volume {vid} on {url} is writable again")
            except errors.WeedError as exc:
                _say(say, f"volume {vid} on {url} stays read-only: {exc.message}")

    async def download(
        self,
        vid: int,
        *,
        collection: str | None = None,
        progress: Callable[[dict[str, Any]], None] | None = None,
        say: Say | None = None,
    ) -> TierReport:
        started = self.clock()
        states = await self.states(vid)
        actual = _collection(vid, states, collection)
        report = TierReport(vid, actual, already=True)
        tiered = [url for url, s in states if s.remote_storage_name]
        if tiered:
            report.backend = next(s.remote_storage_name for _, s in states if s.remote_storage_name)
        # Local holders need nothing; the object goes with the last tiered holder only.
        for i, url in enumerate(tiered):
            last = i == len(tiered) - 1
            _say(
                say,
                f"downloading volume {vid} to {url}" + ("" if last else " (keeping the object)"),
            )
            done = await self.admin.tier_download(
                url, vid, collection=actual, keep_remote=not last, progress=progress
            )
            report.already = False
            report.key = str(done.get("key", report.key))
            report.size = int(done.get("size", report.size))
            if report.source:
                report.replicas.append(url)
            else:
                report.source = url
        report.seconds = self.clock() - started
        return report

    async def vacuum(
        self, vid: int, *, threshold: float, timeouts: VacuumTimeouts, say: Say | None = None
    ) -> TierReport:
        """Vacuum tiered volume `vid`, or finish a vacuum cut short (`client/tier_vacuum.py`);
        `already` in the report when nothing had to move."""
        return await vacuum_tiered(self, vid, threshold=threshold, timeouts=timeouts, say=say)

    async def tiered_volumes(self, collection: str | None = None) -> list[int]:
        """Ids of the volumes some holder reads from a bucket (of `collection` when given), from
        the master's `/vol/status`."""
        reply = await self._http.request("GET", self._master, "/vol/status")
        volumes = json_object(reply.body).get("Volumes") or {}
        found: set[int] = set()
        for racks in (volumes.get("DataCenters") or {}).values():
            for nodes in racks.values():
                for held in nodes.values():
                    found.update(
                        int(v["Id"])
                        for v in held or []
                        if v.get("RemoteStorageName")
                        and (collection is None or v.get("Collection", "") == collection)
                    )
        return sorted(found)

    async def mount(
        self, vid: int, server: str, source: str, *, collection: str = "", key: str = ""
    ) -> dict[str, Any]:
        return await self.admin.tier_mount(
            server, vid, source=source, collection=collection, key=key
        )


def _collection(vid: int, states: list[tuple[str, VolumeReport]], wanted: str | None) -> str:
    actual = states[0][1].collection
    if wanted is not None and wanted != actual:
        raise errors.BadRequest(
            f"volume {vid} is in collection {actual!r}, not {wanted!r}", volume_id=vid
        )
    return actual


def _say(say: Say | None, line: str) -> None:
    if say is not None:
        say(line)
