"""The volume server's replica routes: what a peer compares and fetches, and the orders to
pull from a peer or to scrub now (docs/internals.md "Master ↔ volume protocol"). Each is
registered behind the admin guard (white list, cluster token) by `volume/admin.py`.

| route | answer |
|---|---|
| `GET /admin/volume/digest` | `VolumeDigest` of the volume's live needles |
| `GET /admin/volume/needles` | the `NeedleState`s of the asked buckets (binary) |
| `GET /admin/volume/needle` | a live needle's raw record, checked, its stamp in `X-Weedpy-Stamp`; 404 not live, 500 corrupt (never sent) |
| `POST /admin/volume/sync` | pulls from `peer` what it holds newer: `SyncReport` |
| `POST /admin/volume/scrub` | checks every needle of `volume` (or of all) now, repairing what fails: `ScrubReport` |
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from seaweed_py.errors import BadRequest, VolumeNotFound
from seaweed_py.formats.wire import (
    STAMP_HEADER,
    AdminCall,
    NeedleRecordQuery,
    NeedleStatesQuery,
    ScrubOrder,
    SyncOrder,
    VolumeDigest,
    VolumeDigestQuery,
    encode_states,
)
from seaweed_py.httpkit.request import Request
from seaweed_py.httpkit.response import JSON_HEADERS, Response
from seaweed_py.httpkit.router import Handler
from seaweed_py.storage.volume import Volume

if TYPE_CHECKING:
    from seaweed_py.volume.server import VolumeServer

__all__ = ["ReplicaHandlers"]

_OCTETS = b"Content-Type: application/octet-stream\r\n"


class ReplicaHandlers:
    def __init__(self, server: VolumeServer) -> None:
        self._server = server

    def routes(self) -> list[tuple[type[AdminCall], Handler]]:
        return [
            (VolumeDigestQuery, self.digest),
            (NeedleStatesQuery, self.needles),
            (NeedleRecordQuery, self.needle),
            (SyncOrder, self.sync),
            (ScrubOrder, self.scrub),
        ]

    def _volume(self, vid: int) -> Volume:
        volume = self._server.store.get(vid)
        if volume is None:
            raise VolumeNotFound("volume not found on this server", volume_id=vid)
        if volume.remote is not None:
            raise BadRequest("a tiered volume is compared in its bucket, not here", volume_id=vid)
        return volume

    async def digest(self, req: Request) -> Response:
        volume = self._volume(VolumeDigestQuery.from_query(req.query).volume_id)
        found = await asyncio.to_thread(volume.digest)
        body = VolumeDigest(volume.id, found.live, found.buckets).to_json()
        return Response(200, raw_headers=JSON_HEADERS, body=body)

    async def needles(self, req: Request) -> Response:
        order = NeedleStatesQuery.from_query(req.query)
        volume = self._volume(order.volume_id)
        states = await asyncio.to_thread(volume.states, order.buckets)
        return Response(200, raw_headers=_OCTETS, body=encode_states(states.values()))

    async def needle(self, req: Request) -> Response:
        order = NeedleRecordQuery.from_query(req.query)
        volume = self._volume(order.volume_id)
        record, stamp = await asyncio.to_thread(volume.record_for_peer, order.key)
        head = _OCTETS + f"{STAMP_HEADER}: {stamp}\r\n".encode()
        return Response(200, raw_headers=head, body=record)

    async def sync(self, req: Request) -> Response:
        order = SyncOrder.from_query(req.form())
        if order.peer == self._server.url():
            raise BadRequest("a volume server does not sync with itself", volume_id=order.volume_id)
        report = await self._server.anti_entropy.pull(order.volume_id, order.peer)
        return Response(200, raw_headers=JSON_HEADERS, body=report.to_json())

    async def scrub(self, req: Request) -> Response:
        order = ScrubOrder.from_query(req.form())
        store = self._server.store
        if order.volume_id is None:
            volumes = [v for v in store.volumes() if v.remote is None]
        else:
            volumes = [self._volume(order.volume_id)]
        report = await self._server.scrubber.scrub(sorted(volumes, key=lambda v: v.id))
        return Response(200, raw_headers=JSON_HEADERS, body=report.to_json())
