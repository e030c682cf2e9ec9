"""A fake volume server for master tests, speaking the master ↔ volume protocol of
docs/internals.md: it answers the admin endpoints, accepts uploads, and sends heartbeats when
told to (so tests decide when the master hears from it).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from seaweed_py.formats.wire import (
    AllocateVolume,
    DeleteCollection,
    DeleteVolume,
    Heartbeat,
    VolumeReport,
)
from seaweed_py.master import MasterOptions, MasterServer


class FakeVolumeServer:
    def __init__(
        self,
        master: str,
        *,
        data_center: str = "",
        rack: str = "",
        max_volumes: int = 8,
    ) -> None:
        self.master = master
        self.data_center = data_center
        self.rack = rack
        self.max_volumes = max_volumes
        self.volumes: dict[int, dict[str, Any]] = {}
        self.calls: list[tuple[str, dict[str, str]]] = []
        self.uploads: dict[str, bytes] = {}
        self.allocate_delay = 0.0
        self.fail_allocate = False
        self.max_file_key = 0
        # Vacuum (spec §9.3), as the master sees it: a garbage ratio per volume, compactions
        # that may be slowed down or fail, and how many ran at once.
        self.garbage: dict[int, float] = {}
        self.compact_delay = 0.0
        self.compact_gate: asyncio.Event | None = None  # compactions wait for it when set
        self.fail_compact: set[int] = set()
        self.fail_commit: set[int] = set()
        self.compacting = 0
        self.most_compacting = 0
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/admin/volume/allocate", self._allocate)
        app.router.add_post("/admin/volume/delete", self._delete)
        app.router.add_post("/admin/collection/delete", self._delete_collection)
        app.router.add_get("/admin/volume/status", self._volume_status)
        app.router.add_get("/admin/vacuum/check", self._vacuum_check)
        app.router.add_post("/admin/vacuum/compact", self._vacuum_compact)
        app.router.add_post("/admin/vacuum/commit", self._vacuum_commit)
        app.router.add_post("/admin/vacuum/cleanup", self._vacuum_cleanup)
        app.router.add_post("/{fid}", self._upload)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._session = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def state(self, goodbye: bool = False) -> Heartbeat:
        state = Heartbeat(
            ip="127.0.0.1",
            port=self.port,
            public_url=self.url,
            data_center=self.data_center,
            rack=self.rack,
            max_volume_counts={"hdd": self.max_volumes},
            max_file_key=self.max_file_key,
            volumes=tuple(VolumeReport.from_obj(v) for v in self.volumes.values()),
        )
        return state.goodbye() if goodbye else state

    async def heartbeat(self, goodbye: bool = False) -> dict[str, Any]:
        assert self._session is not None
        async with self._session.post(
            f"http://{self.master}/internal/heartbeat", data=self.state(goodbye).to_json()
        ) as resp:
            assert resp.status == 200, await resp.text()
            answer: dict[str, Any] = await resp.json()
            return answer

    async def _allocate(self, request: web.Request) -> web.Response:
        q = dict(request.query)
        self.calls.append(("allocate", q))
        if self.allocate_delay:
            await asyncio.sleep(self.allocate_delay)
        if self.fail_allocate:
            return web.json_response({"error": "disk on fire"}, status=500)
        order = AllocateVolume.from_query(q)
        vid = order.volume_id
        if vid in self.volumes:
            return web.json_response({"error": f"volume {vid} exists"}, status=409)
        if len(self.volumes) >= self.max_volumes:
            return web.json_response({"error": "no free slot"}, status=406)
        self.volumes[vid] = VolumeReport(
            vid,
            order.collection,
            size=8,
            replica_placement=order.replica_placement,
            ttl=order.ttl,
            disk_type=order.disk,
        ).to_obj()
        return web.json_response({})

    async def _delete(self, request: web.Request) -> web.Response:
        q = dict(request.query)
        self.calls.append(("delete", q))
        if self.volumes.pop(DeleteVolume.from_query(q).volume_id, None) is None:
            return web.json_response({"error": "not found"}, status=404)
        return web.json_response({})

    async def _delete_collection(self, request: web.Request) -> web.Response:
        q = dict(request.query)
        self.calls.append(("delete_collection", q))
        name = DeleteCollection.from_query(q).collection
        for vid in [v for v, info in self.volumes.items() if info["collection"] == name]:
            del self.volumes[vid]
        return web.json_response({})

    def _volume_of(self, request: web.Request, call: str) -> int | None:
        q = dict(request.query)
        self.calls.append((call, q))
        vid = int(q["volume"])
        return vid if vid in self.volumes else None

    async def _volume_status(self, request: web.Request) -> web.Response:
        vid = self._volume_of(request, "status")
        if vid is None:
            return web.json_response({"error": "not found"}, status=404)
        return web.json_response(self.volumes[vid])

    async def _vacuum_check(self, request: web.Request) -> web.Response:
        vid = self._volume_of(request, "check")
        if vid is None:
            return web.json_response({"error": "not found"}, status=404)
        return web.json_response({"garbageRatio": self.garbage.get(vid, 0.0)})

    async def _vacuum_compact(self, request: web.Request) -> web.Response:
        vid = self._volume_of(request, "compact")
        if vid is None:
            return web.json_response({"error": "not found"}, status=404)
        self.compacting += 1
        self.most_compacting = max(self.most_compacting, self.compacting)
        try:
            await asyncio.sleep(self.compact_delay)
            if self.compact_gate is not None:
                await self.compact_gate.wait()
        finally:
            self.compacting -= 1
        if vid in self.fail_compact:
            return web.json_response({"error": "disk on fire"}, status=500)
        return web.json_response({"processedBytes": 100})

    async def _vacuum_commit(self, request: web.Request) -> web.Response:
        vid = self._volume_of(request, "commit")
        if vid is None:
            return web.json_response({"error": "not found"}, status=404)
        if vid in self.fail_commit:
            return web.json_response({"error": "disk on fire"}, status=500)
        self.garbage[vid] = 0.0
        self.volumes[vid]["compactRevision"] += 1
        return web.json_response({"isReadOnly": False, "volumeSize": 8, "reclaimedBytes": 1000})

    async def _vacuum_cleanup(self, request: web.Request) -> web.Response:
        self._volume_of(request, "cleanup")
        return web.json_response({})

    def vacuum_calls(self) -> list[tuple[str, int]]:
        """The vacuum steps this server was asked for, in order: (step, volume id)."""
        steps = ("check", "compact", "commit", "cleanup", "status")
        return [(c, int(q["volume"])) for c, q in self.calls if c in steps]

    async def _upload(self, request: web.Request) -> web.Response:
        fid = request.match_info["fid"]
        body = await request.read()
        self.uploads[fid] = body
        self.calls.append(
            ("upload", {"fid": fid, "content-type": request.content_type, **request.query})
        )
        etag = hashlib.md5(body).hexdigest()[:8]
        return web.json_response({"name": "", "size": len(body), "eTag": etag}, status=201)


VolumeFactory = Callable[..., "asyncio.Future[FakeVolumeServer]"]


@pytest.fixture
async def master(tmp_path: Any) -> AsyncIterator[MasterServer]:
    server = MasterServer(
        MasterOptions(ip="127.0.0.1", port=0, mdir=str(tmp_path / "mdir"), assign_wait_seconds=3.0)
    )
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def volumes(master: MasterServer) -> AsyncIterator[Callable[..., Any]]:
    started: list[FakeVolumeServer] = []

    async def make(**kw: Any) -> FakeVolumeServer:
        fake = FakeVolumeServer(master.address, **kw)
        await fake.start()
        started.append(fake)
        await fake.heartbeat()
        return fake

    yield make
    for fake in started:
        await fake.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_a_heartbeat_registers_the_volume_server(
    master: MasterServer, volumes: Callable[..., Any]
) -> None:
    fake = await volumes(data_center="dc1", rack="r1", max_volumes=3)
    answer = await fake.heartbeat()
    assert answer == {
        "volumeSizeLimit": 30720 * 1024 * 1024,
        "leader": master.address,
        "preallocate": False,
        "pulseSeconds": 5,
        "locationsVersion": 0,  # no volume has a holder yet
    }
    node = master.topology.nodes[fake.url]
    assert (node.data_center.id, node.rack.id, node.free_slots("hdd")) == ("dc1", "r1", 3)
