"""The volume server's own endpoints: status, health, metrics, and the `/admin/...` calls the
master makes, plus the heartbeat it sends. The HTML page is `volume/ui.py`.

| path | answer |
|---|---|
| `GET /status` | `{"Version", "DiskStatuses", "Volumes"}` (spec §3.7; `?pretty=y` indents) |
| `GET /healthz`, `/readyz` | 200, or 503 while stopping or when heartbeats are not answered (readyz) |
| `GET /metrics` | Prometheus text |
| `/admin/...` | the master's (and the shell's) calls: the messages of `formats/wire.py`, each parsed by its codec; the tiering ones in `volume/tier.py`, the replica ones (digests, needle states and records, sync, scrub) in `volume/replicas.py`, copies in `volume/copy.py` |
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from seaweed_py import __version__
from seaweed_py.errors import NoFreeSlots, VolumeNotFound
from seaweed_py.formats.idx import IdxLayout
from seaweed_py.formats.wire import (
    HDD,
    AdminCall,
    AllocateVolume,
    DeleteCollection,
    DeleteVolume,
    Heartbeat,
    MarkReadonly,
    MarkWritable,
    VacuumCheck,
    VacuumCheckAnswer,
    VacuumCleanup,
    VacuumCommit,
    VacuumCommitAnswer,
    VacuumCompact,
    VacuumCompactAnswer,
    VolumeReport,
    VolumeStatusQuery,
)
from seaweed_py.httpkit.auth import check_cluster
from seaweed_py.httpkit.request import Request
from seaweed_py.httpkit.response import JSON_HEADERS, Response, json_response
from seaweed_py.httpkit.router import Handler, Router
from seaweed_py.storage.integrity import CorruptRecord
from seaweed_py.storage.volume import VolumeStatus
from seaweed_py.volume.copy import CopyHandlers
from seaweed_py.volume.replicas import ReplicaHandlers
from seaweed_py.volume.tier import TierHandlers

if TYPE_CHECKING:
    from seaweed_py.volume.server import VolumeServer

__all__ = ["VERSION", "AdminHandlers"]

VERSION = f"weedpy {__version__}"
_TEXT_PLAIN = b"Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"


class AdminHandlers:
    """Status, health and admin endpoints of one `VolumeServer`."""

    def __init__(self, server: VolumeServer) -> None:
        self._server = server

    def register(self, r: Router) -> None:
        """Status, health and metrics stay open; the `/admin/` calls (the master's) are behind
        the server's white list and, with a signing key, a cluster token (`_behind`)."""
        r.add("/status", self.status, ["GET"])
        r.add("/healthz", self.healthz, ["GET"])
        r.add("/readyz", self.readyz, ["GET"])
        r.add("/metrics", self.metrics, ["GET"])
        server = self._server

        def guard(handler: Handler) -> Handler:
            return _behind(server, handler)

        admin = server.stats.admin
        routes: list[tuple[type[AdminCall], Handler]] = [
            (AllocateVolume, self.allocate),
            (DeleteVolume, self.delete_volume),
            (MarkReadonly, self.mark_readonly),
            (MarkWritable, self.mark_writable),
            (DeleteCollection, self.delete_collection),
            (VolumeStatusQuery, self.volume_status),
            *TierHandlers(server).routes(),
            (VacuumCheck, self.vacuum_check),
            (VacuumCompact, self.vacuum_compact),
            (VacuumCommit, self.vacuum_commit),
            (VacuumCleanup, self.vacuum_cleanup),
            *ReplicaHandlers(server).routes(),
            *CopyHandlers(server).routes(),
        ]
        for message, handler in routes:
            r.add(message.PATH, guard(handler), [message.METHOD], observe=admin)

    # ------------------------------------------------------------------ heartbeat

    def heartbeat(self) -> Heartbeat:
        """The full state sent to the master every pulse."""
        s = self._server
        store = s.store
        # A volume whose files were deleted under us is no longer a copy (scenario 12): left
        # out, the master drops this location at once.
        # An expired TTL volume is left out too (spec §9.5): the master forgets it and stops
        # assigning to it; the pulse deletes its files after the grace.
        missing = set(store.missing_volumes()) | set(store.expired_volumes())
        return Heartbeat(
            ip=s.options.ip,
            port=s.port,
            public_url=s.public_url(),
            data_center=s.options.data_center,
            rack=s.options.rack,
            max_volume_counts={HDD: store.max_volume_count},
            max_file_key=store.max_file_key,
            volumes=tuple(_report(v) for v in store.volume_infos() if v.id not in missing),
            pulse_seconds=s.options.pulse_seconds,
            location_uuids=tuple(store.location_uuids),
        )

    # ------------------------------------------------------------------ status and health

    async def status(self, req: Request) -> Response:
        disks = await self._server.stats.refresh_disks()
        store = self._server.store
        volumes = sorted(store.volume_infos(), key=lambda v: v.id)
        corrupt = {v.id: v.corrupt_needles() for v in store.volumes()}
        body = {
            "Version": VERSION,
            "DiskStatuses": [d.status_json() for d in disks],
            "Volumes": [_status_volume(v, corrupt.get(v.id, [])) for v in volumes],
        }
        return json_response(body, pretty=bool(req.query.get("pretty")))

    def healthz(self, req: Request) -> Response:
        return Response(503 if self._server.stopping else 200)

    def readyz(self, req: Request) -> Response:
        # Like the reference, readiness does not depend on the master: reads and writes of
        # the volumes here go on while it is away, so a probe must not take every volume
        # server out of service during a master outage.
        return self.healthz(req)

    async def metrics(self, req: Request) -> Response:
        return Response(200, raw_headers=_TEXT_PLAIN, body=await self._server.stats.exposition())

    # ------------------------------------------------------------------ admin calls

    async def allocate(self, req: Request) -> Response:
        store = self._server.store
        layout = IdxLayout.IDX5 if store.large_disk else IdxLayout.IDX4
        # Disk for a new `.dat`: at most what a volume can address.
        order = AllocateVolume.from_query(req.form(), max_preallocate=layout.max_dat_size)
        if order.disk != HDD:
            raise NoFreeSlots(
                f"no {order.disk} volume slot: this server's disks are {HDD}",
                volume_id=order.volume_id,
            )
        await asyncio.to_thread(
            store.allocate,
            order.volume_id,
            collection=order.collection,
            replica_placement=order.replica_placement,
            ttl=order.ttl,
            preallocate=order.preallocate,
        )
        return self._changed()

    async def delete_volume(self, req: Request) -> Response:
        order = DeleteVolume.from_query(req.form())
        await asyncio.to_thread(
            self._server.store.delete_volume, order.volume_id, only_empty=order.only_empty
        )
        return self._changed()

    def mark_readonly(self, req: Request) -> Response:
        order = MarkReadonly.from_query(req.form())
        self._server.store.mark_read_only(order.volume_id, True, persist=order.persist)
        return self._changed()

    def mark_writable(self, req: Request) -> Response:
        order = MarkWritable.from_query(req.form())
        self._server.store.mark_read_only(order.volume_id, False)
        return self._changed()

    async def delete_collection(self, req: Request) -> Response:
        order = DeleteCollection.from_query(req.form())
        await asyncio.to_thread(self._server.store.delete_collection, order.collection)
        return self._changed()

    def volume_status(self, req: Request) -> Response:
        vid = VolumeStatusQuery.from_query(req.query).volume_id
        for v in self._server.store.volume_infos():
            if v.id == vid:
                return Response(200, raw_headers=JSON_HEADERS, body=_report(v).to_json())
        raise VolumeNotFound("no such volume on this server", volume_id=vid)

    def _changed(self) -> Response:
        """The answer to an admin call that changed the volumes: the master hears at once."""
        self._server.link.poke()
        return json_response({})

    def vacuum_check(self, req: Request) -> Response:
        ratio = self._server.vacuum.check(VacuumCheck.from_query(req.query).volume_id)
        return _answer(VacuumCheckAnswer(ratio).to_json())

    async def vacuum_compact(self, req: Request) -> Response:
        order = VacuumCompact.from_query(req.form(), max_preallocate=self._max_dat_size())
        result = await self._server.vacuum.compact(order.volume_id, order.preallocate)
        answer = VacuumCompactAnswer(
            processed_bytes=result.copied_bytes,
            needles=result.needles,
            expired=result.expired,
            corrupt=result.corrupt,
            size_before=result.size_before,
            compacted_size=result.compacted_size,
        )
        return _answer(answer.to_json())

    async def vacuum_commit(self, req: Request) -> Response:
        result = await self._server.vacuum.commit(VacuumCommit.from_query(req.form()).volume_id)
        self._server.link.poke()  # the master hears the new size at once
        answer = VacuumCommitAnswer(
            result.read_only, result.size_after, result.reclaimed, result.replayed
        )
        return _answer(answer.to_json())

    async def vacuum_cleanup(self, req: Request) -> Response:
        await self._server.vacuum.cleanup(VacuumCleanup.from_query(req.form()).volume_id)
        return json_response({})

    def _max_dat_size(self) -> int:
        """The most a volume of this server can address (disk to reserve at most)."""
        layout = IdxLayout.IDX5 if self._server.store.large_disk else IdxLayout.IDX4
        return layout.max_dat_size


def _answer(body: bytes) -> Response:
    return Response(200, raw_headers=JSON_HEADERS, body=body)


def _report(v: VolumeStatus) -> VolumeReport:
    return VolumeReport(
        id=v.id,
        collection=v.collection,
        size=v.size,
        file_count=v.file_count,
        delete_count=v.delete_count,
        deleted_byte_count=v.deleted_byte_count,
        read_only=v.read_only,
        replica_placement=v.replica_placement,
        ttl=v.ttl,
        version=v.version,
        compact_revision=v.compact_revision,
        modified_at_second=v.modified_at_second,
        disk_type=v.disk_type or HDD,
        remote_storage_name=v.remote_storage_name,
        remote_storage_key=v.remote_storage_key,
    )


def _behind(server: VolumeServer, handler: Handler) -> Handler:
    """`handler` for the white list's peers only and, with a signing key, for requests with a
    cluster token; both read at each call, so a reload (SIGHUP) takes effect at once."""

    def guarded(req: Request) -> Response | Awaitable[Response]:
        allow = server.allow
        if allow:
            allow.check(req)
        key = server.out.keys.signing_key
        if key:
            check_cluster(req, key, server.now())
        return handler(req)

    return guarded


def _status_volume(v: VolumeStatus, corrupt: list[CorruptRecord]) -> dict[str, Any]:
    rp = v.replica_placement
    placement = {
        k: n
        for k, n in (
            ("SameRackCount", rp.same_rack),
            ("DiffRackCount", rp.diff_rack),
            ("DiffDataCenterCount", rp.diff_data_center),
        )
        if n
    }
    return {
        "Id": v.id,
        "Collection": v.collection,
        "Size": v.content_size,  # not the .dat length here (spec §3.7), unlike heartbeats
        "ReplicaPlacement": placement,
        "Ttl": {"Count": v.ttl.count, "Unit": v.ttl.unit},
        "DiskType": v.disk_type,
        "Version": v.version,
        "FileCount": v.file_count,
        "DeleteCount": v.delete_count,
        "DeletedByteCount": v.deleted_byte_count,
        "ReadOnly": v.read_only,
        "CompactRevision": v.compact_revision,
        "ModifiedAtSecond": v.modified_at_second,
        "RemoteStorageName": v.remote_storage_name,
        "DiskId": 0,
        "ReadOnlyCanDelete": bool(v.remote_storage_name),
        "GarbageRatio": v.garbage_ratio,  # weedpy's: deleted over content bytes (spec §9.1)
        # weedpy's: the needles that fail their checks and no replica could repair yet
        # (present only when there are some, so healthy volumes look as weed's do).
        **(
            {
                "CorruptNeedles": [
                    {"Key": f"{r.key:x}", "Offset": r.offset, "Size": r.size, "Reason": r.reason}
                    for r in corrupt
                ]
            }
            if corrupt
            else {}
        ),
    }
