"""A real master and real volume servers over the one wire (`formats/wire.py`): what a
heartbeat carries now reaches the master (the sender's pulse, its data directories), and the
volume server's admin routes read their orders with the codec (issue 14, first step)."""

from __future__ import annotations

import logging
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from seaweed_py.client.http import HttpClient, Timeout
from seaweed_py.client.volume_admin import VolumeAdmin
from seaweed_py.errors import VolumeNotFound
from seaweed_py.formats.wire import DeleteVolume, Heartbeat, MarkReadonly
from seaweed_py.master import MasterOptions, MasterServer
from tests import volume_harness
from tests.volume_harness import Starter, until


@pytest.fixture
async def master(tmp_path: Path) -> AsyncIterator[MasterServer]:
    server = MasterServer(
        MasterOptions(ip="127.0.0.1", port=0, mdir=str(tmp_path / "m"), pulse_seconds=0.1)
    )
    await server.start()
    yield server
    await server.stop()


start_server = volume_harness.start_server  # over the real master of `master` above


async def test_a_volume_server_pulsing_slower_than_the_master_stays_registered(
    master: MasterServer, start_server: Starter
) -> None:
    """The master (0.1 s) drops a node after 3 of the node's own pulses (1 s here), which it
    learns from the heartbeat: before the codec, the volume server did not send it."""
    slow = await start_server("slow", pulse_seconds=1.0)
    await until(lambda: slow.url() in master.topology.nodes)
    seen = master.stats.heartbeats
    await until(lambda: master.stats.heartbeats >= seen + 2)  # 2 s, 20 of the master's pulses
    assert master.stats.expired_nodes == 0
    assert master.topology.nodes[slow.url()].pulse_seconds == 1.0


async def test_the_volume_server_sends_its_slots_per_disk_type(
    master: MasterServer, start_server: Starter
) -> None:
    volume = await start_server("v", max_volumes=(3,))
    await until(lambda: volume.url() in master.topology.nodes)
    node = master.topology.nodes[volume.url()]
    assert node.max_volume_counts == {"hdd": 3}
    assert node.location_uuids == tuple(volume.store.location_uuids)


async def test_a_copied_data_directory_is_refused_until_its_first_server_leaves(
    tmp_path: Path,
    master: MasterServer,
    start_server: Starter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Pulsing slowly, so that the master cannot drop it while the test watches the copy.
    first = await start_server("first", pulse_seconds=1.0)
    await until(lambda: first.url() in master.topology.nodes)
    (tmp_path / "copy").mkdir()
    shutil.copy(tmp_path / "first" / "vol_dir.uuid", tmp_path / "copy" / "vol_dir.uuid")
    caplog.set_level(logging.ERROR, logger="seaweed_py.client.master_link")
    copy = await start_server("copy")
    await until(lambda: "refuses this volume server" in caplog.text)
    [uuid] = first.store.location_uuids
    assert f"{uuid} by {first.url()}" in caplog.text
    seen = master.stats.heartbeats
    await until(lambda: master.stats.heartbeats >= seen + 3)  # the copy asks every 0.2 s
    assert copy.url() not in master.topology.nodes and not copy.link.heartbeating
    assert caplog.text.count("refuses this volume server") == 1  # logged once
    await first.stop()  # its goodbye frees the directory
    await until(lambda: copy.link.heartbeating)
    assert copy.url() in master.topology.nodes


async def test_the_master_answers_a_directory_served_twice_with_409(
    master: MasterServer, start_server: Starter
) -> None:
    first = await start_server("first", pulse_seconds=1.0)
    await until(lambda: first.url() in master.topology.nodes)
    [uuid] = first.store.location_uuids
    forged = Heartbeat("127.0.0.1", 1, location_uuids=(uuid, "other"))
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"http://{master.address}{Heartbeat.PATH}", data=forged.to_json()) as resp,
    ):
        assert resp.status == 409
        body = await resp.json()
    assert body["duplicatedUuids"] == [uuid] and first.url() in body["error"]
    assert "127.0.0.1:1" not in master.topology.nodes


@pytest.mark.parametrize(
    ("query", "status", "error"),
    [
        ({"volume": "9", "disk": "ssd"}, 406, "no ssd volume slot"),
        ({"volume": "9", "preallocate": "lots"}, 400, "invalid preallocate 'lots'"),
        ({"volume": "9", "ttl": "3s"}, 400, "unknown ttl unit"),
        ({"volume": "nine"}, 400, "invalid volume id"),
        ({}, 400, "missing volume parameter"),
    ],
)
async def test_a_bad_allocate_order_is_refused_and_creates_nothing(
    start_server: Starter, query: dict[str, str], status: int, error: str
) -> None:
    volume = await start_server("v")
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"http://{volume.url()}/admin/volume/allocate", params=query) as resp,
    ):
        assert resp.status == status
        assert error in (await resp.json())["error"]
    assert volume.store.volumes() == []


async def test_the_masters_admin_calls_reach_the_volume_server(
    master: MasterServer, start_server: Starter
) -> None:
    """Growth allocates through the codec; the volume status answer is a `VolumeReport`; an
    unknown volume is `VolumeNotFound`."""
    volume = await start_server("v")
    await until(lambda: master.topology.free_slots() > 0)
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://{master.address}/vol/grow", params={"count": "1"}) as resp,
    ):
        assert resp.status == 200, await resp.text()
    [vid] = [v.id for v in volume.store.volumes()]
    http_client = HttpClient(None, Timeout(total=5))
    await http_client.start()
    try:
        admin = VolumeAdmin(http_client)
        report = await admin.volume_status(volume.url(), vid)
        assert (report.id, report.collection, report.read_only) == (vid, "", False)
        await admin.send(volume.url(), MarkReadonly(vid))
        assert (await admin.volume_status(volume.url(), vid)).read_only
        with pytest.raises(VolumeNotFound, match="answered 404"):
            await admin.volume_status(volume.url(), vid + 1)
        await admin.send(volume.url(), DeleteVolume(vid))
    finally:
        await http_client.close()
    assert volume.store.volumes() == []
