"""The volume server's own endpoints: status, health, metrics, and the `/admin/...` calls the
master makes (docs/internals.md), plus the heartbeat body. The HTML page is `volume/ui.py`.

| path | answer |
|---|---|
| `GET /status` | `{"Version", "DiskStatuses", "Volumes"}` (spec §3.7; `?pretty=y` indents) |
| `GET /healthz`, `/readyz` | 200, or 503 while stopping or when heartbeats are not answered (readyz) |
| `GET /metrics` | Prometheus text |
| `POST /admin/volume/allocate?volume=&collection=&replication=&ttl=&preallocate=&disk=` | create |
| `POST /admin/volume/delete?volume=[&onlyEmpty=true]` | delete a volume's files |
| `POST /admin/volume/readonly?volume=`, `/admin/volume/writable?volume=` | mark |
| `POST /admin/collection/delete?collection=` | delete every volume of a collection |
| `GET /admin/volume/status?volume=` | one volume's counters |
| `POST /admin/volume/tier/upload`, `/tier/download`, `/tier/mount` | tiering (volume/tier.py) |
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any

from seaweed_py import __version__
from seaweed_py.errors import BadRequest, VolumeNotFound
from seaweed_py.formats.collection import parse_collection
from seaweed_py.formats.fid import parse_volume_id
from seaweed_py.formats.idx import IdxLayout
from seaweed_py.formats.numbers import parse_uint
from seaweed_py.formats.replica_placement import ReplicaPlacement
from seaweed_py.formats.ttl import Ttl
from seaweed_py.httpkit.auth import check_cluster
from seaweed_py.httpkit.request import Request
from seaweed_py.httpkit.response import Response, json_response
from seaweed_py.httpkit.router import Handler, Router
from seaweed_py.storage.volume import VolumeStatus
from seaweed_py.types import VolumeId
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
        for path, handler, method in (
            ("/admin/volume/allocate", self.allocate, "POST"),
            ("/admin/volume/delete", self.delete_volume, "POST"),
            ("/admin/volume/readonly", self.mark_readonly, "POST"),
            ("/admin/volume/writable", self.mark_writable, "POST"),
            ("/admin/collection/delete", self.delete_collection, "POST"),
            ("/admin/volume/status", self.volume_status, "GET"),
            *TierHandlers(server).routes(),
        ):
            r.add(path, guard(handler), [method], observe=admin)

    # ------------------------------------------------------------------ heartbeat

    def heartbeat(self) -> dict[str, Any]:
        """The full state sent to the master every pulse (docs/internals.md)."""
        s = self._server
        store = s.store
        # A volume whose files were deleted under us is no longer a copy (scenario 12): left
        # out, the master drops this location at once.
        missing = set(store.missing_volumes())
        return {
            "ip": s.options.ip,
            "port": s.port,
            "publicUrl": s.public_url(),
            "dataCenter": s.options.data_center,
            "rack": s.options.rack,
            "maxVolumeCount": store.max_volume_count,
            "maxFileKey": store.max_file_key,
            "locationUuids": list(store.location_uuids),
            "hasNoVolumes": False,
            "volumes": [_heartbeat_volume(v) for v in store.volume_infos() if v.id not in missing],
        }

    # ------------------------------------------------------------------ status and health

    async def status(self, req: Request) -> Response:
        disks = await self._server.stats.refresh_disks()
        volumes = sorted(self._server.store.volume_infos(), key=lambda v: v.id)
        body = {
            "Version": VERSION,
            "DiskStatuses": [d.status_json() for d in disks],
            "Volumes": [_status_volume(v) for v in volumes],
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
        q = req.form()
        vid = _volume_id(q)
        collection = parse_collection(q.get("collection", ""))
        await asyncio.to_thread(
            self._server.store.allocate,
            vid,
            collection=collection,
            replica_placement=ReplicaPlacement.parse(q.get("replication", "")),
            ttl=Ttl.parse(q.get("ttl", "")),
            preallocate=self._preallocate(q.get("preallocate", "")),
        )
        self._server.link.poke()
        return json_response({})

    def _preallocate(self, text: str) -> int:
        """Bytes of disk to reserve for a new `.dat`: at most what a volume can address."""
        if not text:
            return 0
        layout = IdxLayout.IDX5 if self._server.store.large_disk else IdxLayout.IDX4
        value = parse_uint(text, layout.max_dat_size)
        if value is None:
            raise BadRequest(
                f"invalid preallocate {text!r}: want a number of bytes in 0..{layout.max_dat_size}"
            )
        return value

    async def delete_volume(self, req: Request) -> Response:
        q = req.form()
        vid = _volume_id(q)
        await asyncio.to_thread(
            self._server.store.delete_volume, vid, only_empty=q.get("onlyEmpty") == "true"
        )
        self._server.link.poke()
        return json_response({})

    def mark_readonly(self, req: Request) -> Response:
        q = req.form()
        self._server.store.mark_read_only(_volume_id(q), True, persist=q.get("persist") == "true")
        self._server.link.poke()
        return json_response({})

    def mark_writable(self, req: Request) -> Response:
        self._server.store.mark_read_only(_volume_id(req.form()), False)
        self._server.link.poke()
        return json_response({})

    async def delete_collection(self, req: Request) -> Response:
        name = parse_collection(req.form().get("collection", ""))
        await asyncio.to_thread(self._server.store.delete_collection, name)
        self._server.link.poke()
        return json_response({})

    def volume_status(self, req: Request) -> Response:
        vid = _volume_id(req.query)
        for v in self._server.store.volume_infos():
            if v.id == vid:
                return json_response(_heartbeat_volume(v))
        raise VolumeNotFound("no such volume on this server", volume_id=vid)


def _volume_id(q: Mapping[str, str]) -> VolumeId:
    text = q.get("volume", "")
    if not text:
        raise BadRequest("missing volume parameter")
    return parse_volume_id(text)


def _heartbeat_volume(v: VolumeStatus) -> dict[str, Any]:
    return {
        "id": v.id,
        "collection": v.collection,
        "size": v.size,
        "fileCount": v.file_count,
        "deleteCount": v.delete_count,
        "deletedByteCount": v.deleted_byte_count,
        "readOnly": v.read_only,
        "replicaPlacement": str(v.replica_placement),
        "ttl": str(v.ttl),
        "version": v.version,
        "compactRevision": v.compact_revision,
        "modifiedAtSecond": v.modified_at_second,
        "diskType": v.disk_type or "hdd",
        "remoteStorageName": v.remote_storage_name,
        "remoteStorageKey": v.remote_storage_key,
    }


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


def _status_volume(v: VolumeStatus) -> dict[str, Any]:
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
    }
