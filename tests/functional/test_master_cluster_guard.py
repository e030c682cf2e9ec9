"""The master's volume-server protocol (`/internal/*`) obeys `-whiteList` (issue 12): from an
address outside the list, a forged heartbeat can neither add a location to a real volume (so
that clients would read the forger's bytes) nor empty a real server (so that every assign
would 406), and nobody outside can mark a volume unwritable. Listed volume servers keep
heartbeating. Without a list the protocol stays open, as the reference's gRPC port is.

The real volume server heartbeats from 127.0.0.1, the listed address; the forger connects from
127.0.0.2.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from seaweed_py.formats.wire import Heartbeat, VolumeReport
from seaweed_py.master import MasterOptions, MasterServer
from seaweed_py.volume import VolumeOptions, VolumeServer

OUTSIDER = "127.0.0.2"


def _outsider_bindable() -> bool:
    try:
        with socket.socket() as probe:
            probe.bind((OUTSIDER, 0))
    except OSError:
        return False
    return True


pytestmark = pytest.mark.skipif(not _outsider_bindable(), reason="127.0.0.2 is not bindable")


@dataclass
class Cluster:
    master: MasterServer
    volume: VolumeServer
    fid: str

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.master.port}"


async def _until(check: Any, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def _start(tmp_path: Path, white_list: tuple[str, ...]) -> AsyncIterator[Cluster]:
    master = MasterServer(
        MasterOptions(
            ip="127.0.0.1",
            port=0,
            mdir=str(tmp_path / "m"),
            pulse_seconds=0.2,
            white_list=white_list,
        )
    )
    await master.start()
    (tmp_path / "v").mkdir()
    volume = VolumeServer(
        VolumeOptions(
            dirs=(str(tmp_path / "v"),),
            max_volumes=(8,),
            masters=(master.address,),
            ip="127.0.0.1",
            port=0,
            pulse_seconds=0.2,
            pre_stop_seconds=0,
        )
    )
    try:
        await volume.start()
        await _until(lambda: master.topology.free_slots() > 0)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{master.port}/dir/assign") as resp:
                fid = (await resp.json())["fid"]
            form = aiohttp.FormData()
            form.add_field("file", io.BytesIO(b"the real bytes"), filename="real.txt")
            async with http.post(f"http://{volume.url()}/{fid}", data=form) as resp:
                assert resp.status == 201
        yield Cluster(master, volume, fid)
    finally:
        await volume.stop()
        await master.stop()


@pytest.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[Cluster]:
    async for cluster in _start(tmp_path, ("127.0.0.1",)):
        yield cluster


@pytest.fixture
async def outsider() -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(local_addr=(OUTSIDER, 0))
    async with aiohttp.ClientSession(connector=connector) as http:
        yield http


def _forged(volume_id: int, *, port: int, goodbye: bool = False) -> bytes:
    forged = Heartbeat(
        "127.0.0.1" if goodbye else OUTSIDER,
        port,
        f"{OUTSIDER}:{port}",
        max_volume_counts={"hdd": 8},
        volumes=(VolumeReport(volume_id, size=100),),
    )
    return (forged.goodbye() if goodbye else forged).to_json()


async def _refused(http: aiohttp.ClientSession, url: str, **kw: Any) -> None:
    async with http.post(url, **kw) as resp:
        body = await resp.read()
        assert resp.status == 401, (url, resp.status, body)
        assert json.loads(body) == {"error": f"{OUTSIDER} is not in the white list"}


async def _locations(cluster: Cluster, vid: str) -> list[str]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{cluster.base}/dir/lookup", params={"volumeId": vid}) as resp,
    ):
        return [loc["url"] for loc in (await resp.json())["locations"]]


async def test_forged_heartbeat_cannot_add_a_location_to_a_real_volume(
    guarded: Cluster, outsider: aiohttp.ClientSession
) -> None:
    vid = guarded.fid.split(",")[0]
    await _refused(
        outsider,
        f"{guarded.base}/internal/heartbeat",
        data=_forged(int(vid), port=guarded.volume.port + 1),
    )
    assert await _locations(guarded, vid) == [guarded.volume.url()]
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://{guarded.volume.url()}/{guarded.fid}") as resp,
    ):
        assert await resp.read() == b"the real bytes"


async def test_forged_goodbye_cannot_empty_a_real_server(
    guarded: Cluster, outsider: aiohttp.ClientSession
) -> None:
    await _refused(
        outsider,
        f"{guarded.base}/internal/heartbeat",
        data=_forged(0, port=guarded.volume.port, goodbye=True),
    )
    assert guarded.master.topology.free_slots() > 0
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{guarded.base}/dir/assign") as resp,
    ):
        assert resp.status == 200, await resp.text()


async def test_outsider_cannot_mark_a_volume_unwritable(
    guarded: Cluster, outsider: aiohttp.ClientSession
) -> None:
    vid = guarded.fid.split(",")[0]
    await _refused(outsider, f"{guarded.base}/internal/volume/unwritable", params={"volume": vid})
    layout = guarded.master.topology.layout_of(int(vid))
    assert layout is not None and int(vid) in layout.writables


async def test_every_internal_route_is_behind_the_white_list(
    guarded: Cluster, outsider: aiohttp.ClientSession
) -> None:
    """Enumerated from the router, so that a new /internal/ route cannot be left open."""
    assert guarded.master._http is not None
    internal = [p for p in guarded.master._http.router.paths if p.startswith("/internal/")]
    assert len(internal) >= 2
    for path in internal:
        await _refused(outsider, f"{guarded.base}{path}", data=b"{}")


async def test_listed_volume_server_keeps_heartbeating(guarded: Cluster) -> None:
    before = guarded.master.stats.heartbeats
    await _until(lambda: guarded.master.stats.heartbeats >= before + 2)
    assert await _locations(guarded, guarded.fid.split(",")[0]) == [guarded.volume.url()]


async def test_without_a_white_list_the_protocol_stays_open(
    tmp_path: Path, outsider: aiohttp.ClientSession
) -> None:
    async for cluster in _start(tmp_path, ()):
        vid = cluster.fid.split(",")[0]
        async with outsider.post(
            f"{cluster.base}/internal/volume/unwritable", params={"volume": vid}
        ) as resp:
            assert resp.status == 200
