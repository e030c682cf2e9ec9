"""TTL volumes expire (spec §9.5, reliability scenario 30): a master and a volume server in one
process, the volume server's clock moved by hand. A `1m` volume whose newest needle is a minute
old leaves the heartbeat (the master forgets it and stops assigning to it) and its files leave
the disk after the grace, `min(TTL/10, 10 min)` = 6 s; a volume written to again lives on, and
neither a delete nor a restart extends a volume's life."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from seaweed_py.master import MasterOptions, MasterServer
from seaweed_py.volume import VolumeOptions, VolumeServer
from tests.servers import free_port
from tests.volume_harness import Clock, until


class Cluster:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.clock = Clock()
        (tmp_path / "m").mkdir()
        (tmp_path / "v").mkdir()
        self.master = MasterServer(
            MasterOptions(
                port=free_port(), mdir=str(tmp_path / "m"), pulse_seconds=0.2, disable_vacuum=True
            )
        )
        self.volume = self._volume()
        self.http = aiohttp.ClientSession()

    def _volume(self) -> VolumeServer:
        return VolumeServer(
            VolumeOptions(
                dirs=(str(self.tmp_path / "v"),),
                max_volumes=(8,),
                masters=(self.master.options.address,),
                port=0,
                pulse_seconds=0.2,
                pre_stop_seconds=0,
            ),
            clock=self.clock,
        )

    async def restart_volume(self) -> None:
        await self.volume.stop()
        self.volume = self._volume()
        await self.volume.start()

    def master_url(self, path: str) -> str:
        return f"http://{self.master.address}{path}"

    def volume_url(self, path: str) -> str:
        return f"http://{self.volume.url()}{path}"

    async def call(self, method: str, url: str, data: bytes | None = None) -> tuple[int, Any]:
        """The status and the JSON answer (the raw bytes of a blob's GET)."""
        body = io.BytesIO(data) if data is not None else None
        async with self.http.request(method, url, data=body) as resp:
            raw = await resp.read()
            if resp.content_type != "application/json":
                return resp.status, raw
            return resp.status, json.loads(raw)

    async def store(self, data: bytes, ttl: str = "1m") -> str:
        status, assigned = await self.call("GET", self.master_url(f"/dir/assign?ttl={ttl}"))
        assert status == 200, assigned
        fid = assigned["fid"]
        status, body = await self.call("PUT", self.volume_url(f"/{fid}?ttl={ttl}"), data)
        assert status == 201, body
        return str(fid)

    def files(self, vid: int) -> list[str]:
        return sorted(p.name for p in (self.tmp_path / "v").iterdir() if p.stem == str(vid))

    def heartbeated(self, vid: int) -> bool:
        return any(v.id == vid for v in self.volume.admin.heartbeat().volumes)


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    c = Cluster(tmp_path)
    await c.master.start()
    try:
        await c.volume.start()
        try:
            yield c
        finally:
            await c.volume.stop()
    finally:
        await c.http.close()
        await c.master.stop()


async def test_a_1m_volume_leaves_the_master_then_the_disk(cluster: Cluster) -> None:
    fid = await cluster.store(b"short lived")
    vid = int(fid.split(",")[0])
    siblings = {
        v for layout in cluster.master.topology.layouts.values() for v in layout.volumes
    } - {vid}
    written = cluster.clock.now
    cluster.clock.now = written + 59
    await until(lambda: cluster.master.topology.lookup(vid) != [])
    assert cluster.heartbeated(vid)

    cluster.clock.now = written + 60  # the newest needle is a TTL old: expired
    await until(lambda: cluster.master.topology.lookup(vid) == [])
    status, _ = await cluster.call("GET", cluster.master_url(f"/dir/lookup?volumeId={vid}"))
    assert status == 404
    for _ in range(10):  # no assign names it any more
        status, assigned = await cluster.call("GET", cluster.master_url("/dir/assign?ttl=1m"))
        assert status == 200 and not assigned["fid"].startswith(f"{vid},")
    assert cluster.files(vid) == [f"{vid}.dat", f"{vid}.idx", f"{vid}.vif"]  # the grace
    status, _ = await cluster.call("GET", cluster.volume_url(f"/{fid}"))
    assert status == 404  # its needle expired with it

    cluster.clock.now = written + 66  # min(60 / 10, 600) later: deleted
    # (the count goes up once the pulse's removal returns, just after the files went)
    await until(lambda: cluster.volume.stats.vacuum.expired_volumes_removed >= 1)
    assert cluster.files(vid) == []
    assert cluster.volume.store.get(vid) is None
    for other in siblings:  # empty volumes of the layout never expire
        assert cluster.volume.store.get(other) is not None


async def test_a_write_keeps_a_ttl_volume_alive_a_delete_does_not(cluster: Cluster) -> None:
    first = await cluster.store(b"first")
    vid = int(first.split(",")[0])
    start = cluster.clock.now
    cluster.clock.now = start + 50
    status, assigned = await cluster.call("GET", cluster.master_url("/dir/assign?ttl=1m"))
    second = f"{vid},{assigned['fid'].split(',')[1]}"
    status, _ = await cluster.call("PUT", cluster.volume_url(f"/{second}?ttl=1m"), b"second")
    assert status == 201
    cluster.clock.now = start + 70
    status, _ = await cluster.call("DELETE", cluster.volume_url(f"/{first}"))
    assert status == 202
    cluster.clock.now = start + 100  # 50 s after the newest needle: still alive
    assert cluster.heartbeated(vid)
    await cluster.restart_volume()  # nor does a restart change when it expires
    assert cluster.heartbeated(vid)
    cluster.clock.now = start + 110
    assert not cluster.heartbeated(vid)
    await until(lambda: cluster.master.topology.lookup(vid) == [])


async def test_a_volume_without_ttl_stays(cluster: Cluster) -> None:
    fid = await cluster.store(b"kept", ttl="")
    vid = int(fid.split(",")[0])
    cluster.clock.now += 10 * 365 * 86400
    assert cluster.heartbeated(vid)
    assert await cluster.call("GET", cluster.volume_url(f"/{fid}")) == (200, b"kept")
