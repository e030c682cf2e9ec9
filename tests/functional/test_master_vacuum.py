"""The master's side of vacuum (spec §2.8, §9.2) against fake volume servers: which replicas
are checked, compacted, committed or cleaned up, the writable set meanwhile, the per-server
limit, the automatic sweep, and `/vol/vacuum`'s parameters at their extremes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from seaweed_py.formats.replica_placement import ReplicaPlacement
from seaweed_py.formats.ttl import Ttl
from seaweed_py.master import MasterOptions, MasterServer
from seaweed_py.topology import LayoutKey
from tests.functional.test_master_fake_volume import FakeVolumeServer

Fakes = Callable[..., Awaitable[FakeVolumeServer]]


def _volume(vid: int, *, collection: str = "", replication: str = "000") -> dict[str, Any]:
    return {
        "id": vid,
        "collection": collection,
        "size": 1000,
        "fileCount": 10,
        "deleteCount": 5,
        "deletedByteCount": 500,
        "readOnly": False,
        "replicaPlacement": replication,
        "ttl": "",
        "version": 3,
        "compactRevision": 0,
        "modifiedAtSecond": 0,
        "diskType": "",
    }


async def _start_master(tmp_path: Path, **options: Any) -> MasterServer:
    settings: dict[str, Any] = {"disable_vacuum": True, **options}
    master = MasterServer(
        MasterOptions(ip="127.0.0.1", port=0, mdir=str(tmp_path / "mdir"), **settings)
    )
    await master.start()
    return master


@pytest.fixture
async def master(tmp_path: Path) -> AsyncIterator[MasterServer]:
    server = await _start_master(tmp_path)
    yield server
    await server.stop()


@pytest.fixture
async def fakes() -> AsyncIterator[Callable[..., Any]]:
    started: list[FakeVolumeServer] = []

    async def make(master: MasterServer, *volumes: dict[str, Any]) -> FakeVolumeServer:
        fake = FakeVolumeServer(master.address, max_volumes=20)
        await fake.start()
        started.append(fake)
        for v in volumes:
            fake.volumes[v["id"]] = dict(v)
        await fake.heartbeat()
        return fake

    yield make
    for fake in started:
        await fake.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _vacuum(
    http: aiohttp.ClientSession, master: MasterServer, query: str = "", method: str = "GET"
) -> tuple[int, Any]:
    async with http.request(method, f"http://{master.address}/vol/vacuum?{query}") as resp:
        body = await resp.json(content_type=None)
        return resp.status, body


async def _until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def _writable(master: MasterServer, vid: int, replication: str = "000") -> bool:
    key = LayoutKey("", ReplicaPlacement.parse(replication), Ttl.EMPTY, "hdd")
    return master.topology.layout(key).is_writable(vid)


async def test_vacuum_compacts_and_commits_the_volumes_at_or_above_the_threshold(
    master: MasterServer, fakes: Fakes, http: aiohttp.ClientSession
) -> None:
    fake = await fakes(master, _volume(1), _volume(2), _volume(3))
    fake.garbage = {1: 0.5, 2: 0.1, 3: 0.3}
    status, body = await _vacuum(http, master)
    assert status == 200
    assert set(body) == {"Topology", "TopologyId", "Version"}  # /dir/status, as the reference
    calls = fake.vacuum_calls()
    assert [c for c in calls if c[0] == "check"] == [("check", 1), ("check", 2), ("check", 3)]
    assert [c for c in calls if c[0] != "check"] == [
        ("compact", 1),
        ("commit", 1),
        ("compact", 3),
        ("commit", 3),
    ]
    assert all(_writable(master, vid) for vid in (1, 2, 3))
    assert master.stats.vacuumed_volumes == 2 and master.stats.vacuum_failures == 0
    assert master.stats.vacuum_reclaimed_bytes == 2000


async def test_the_threshold_parameter_wins_over_the_flag(
    master: MasterServer, fakes: Fakes, http: aiohttp.ClientSession
) -> None:
    fake = await fakes(master, _volume(1), _volume(2))
    fake.garbage = {1: 0.25, 2: 0.2}
    # Go float syntax: 0x1p-2 is 0.25.
    assert (await _vacuum(http, master, "garbageThreshold=0x1p-2"))[0] == 200
    assert ("commit", 1) in fake.vacuum_calls() and ("compact", 2) not in fake.vacuum_calls()
    fake.calls.clear()
    assert (await _vacuum(http, master, "garbageThreshold=0.2", method="POST"))[0] == 200
    assert ("commit", 2) in fake.vacuum_calls()


async def test_a_replicated_volume_compacts_only_its_replicas_above_the_threshold(
    master: MasterServer, fakes: Fakes, http: aiohttp.ClientSession
) -> None:
    a = await fakes(master, _volume(5, replication="001"))
    b = await fakes(master, _volume(5, replication="001"))
    a.garbage, b.garbage = {5: 0.6}, {5: 0.1}
    assert (await _vacuum(http, master))[0] == 200
    assert a.vacuum_calls() == [("check", 5), ("compact", 5), ("commit", 5)]
    assert b.vacuum_calls() == [("check", 5), ("status", 5)]
    assert _writable(master, 5, "001")


async def test_the_volume_leaves_the_writable_set_while_it_is_compacted(
    master: MasterServer, fakes: Fakes, http: aiohttp.ClientSession
) -> None:
    fake = await fakes(master, _volume(1), _volume(2))
    fake.garbage = {1: 0.9}
    fake.compact_gate = gate = asyncio.Event()  # compaction waits until the test has looked
    running = asyncio.create_task(_vacuum(http, master))
    await _until(lambda: fake.compacting == 1)
    assert not _writable(master, 1) and _writable(master, 2)
    await fake.heartbeat()  # a heartbeat meanwhile does not bring it back
    assert not _writable(master, 1)
    for _ in range(20):  # assigns go to the other volume
        async with http.get(f"http://{master.address}/dir/assign") as resp:
            assert (await resp.json())["fid"].startswith("2,")
    gate.set()
    assert (await running)[0] == 200
    assert ("commit", 1) in fake.vacuum_calls()
    assert _writable(master, 1)


async def test_a_failed_compaction_is_cleaned_up_and_the_volume_writable_again(
    master: MasterServer, fakes: Fakes, http: aiohttp.ClientSession
) -> None:
    a = await fakes(master, _volume(5, replication="001"))
    b = await fakes(master, _volume(5, replication="001"))
    a.garbage, b.garbage = {5: 0.6}, {5: 0.7}
    b.fail_compact = {5}
    assert (await _vacuum(http, master))[0] == 200
    for fake in (a, b):
        assert fake.vacuum_calls() == [("check", 5), ("compact", 5), ("cleanup", 5)]
    assert _writable(master, 5, "001")
    assert master.stats.vacuum_failures == 1 and master.stats.vacuumed_volumes == 0


async def test_a_failed_commit_is_cleaned_up_where_it_failed(
    master: MasterServer, fakes: Fakes, http: aiohttp.ClientSession
) -> None:
    a = await fakes(master, _volume(5, replication="001"))
    b = await fakes(master, _volume(5, replication="001"))
    a.garbage, b.garbage = {5: 0.6}, {5: 0.7}
    a.fail_commit = {5}
    assert (await _vacuum(http, master))[0] == 200
    assert a.vacuum_calls() == [("check", 5), ("compact", 5), ("commit", 5), ("cleanup", 5)]
    assert b.vacuum_calls() == [("check", 5), ("compact", 5), ("commit", 5)]
    assert _writable(master, 5, "001")
    assert master.stats.vacuum_failures == 1


async def test_a_replica_that_cannot_be_checked_keeps_the_volume_as_it_is(
    master: MasterServer, fakes: Fakes, http: aiohttp.ClientSession
) -> None:
    a = await fakes(master, _volume(5, replication="001"))
    b = await fakes(master, _volume(5, replication="001"))
    a.garbage = {5: 0.9}
    await b.stop()  # still registered, no longer answering
    assert (await _vacuum(http, master))[0] == 200
    assert a.vacuum_calls() == [("check", 5)]


@pytest.mark.parametrize("per_server", [1, 2])
async def test_at_most_max_parallel_vacuum_per_server_volumes_at_once(
    tmp_path: Path, fakes: Fakes, http: aiohttp.ClientSession, per_server: int
) -> None:
    master = await _start_master(tmp_path, max_parallel_vacuum_per_server=per_server)
    try:
        a = await fakes(master, *(_volume(v) for v in range(1, 6)))
        b = await fakes(master, *(_volume(v) for v in range(11, 16)))
        for fake in (a, b):
            fake.garbage = dict.fromkeys(fake.volumes, 0.5)
            fake.compact_delay = 0.05
        both = 0

        async def watch() -> None:
            nonlocal both
            while True:
                both = max(both, a.compacting + b.compacting)
                await asyncio.sleep(0.005)

        watcher = asyncio.create_task(watch())
        assert (await _vacuum(http, master))[0] == 200
        watcher.cancel()
        assert a.most_compacting == b.most_compacting == per_server
        assert both > per_server  # the two servers worked in parallel
        assert master.stats.vacuumed_volumes == 10
    finally:
        await master.stop()


async def test_a_request_while_a_pass_runs_answers_at_once(
    master: MasterServer, fakes: Fakes, http: aiohttp.ClientSession
) -> None:
    fake = await fakes(master, _volume(1))
    fake.garbage = {1: 0.9}
    fake.compact_gate = gate = asyncio.Event()
    first = asyncio.create_task(_vacuum(http, master))
    await _until(lambda: fake.compacting == 1)
    status, body = await _vacuum(http, master)
    assert status == 200 and "Topology" in body
    assert not first.done()
    assert [c for c in fake.vacuum_calls() if c[0] == "compact"] == [("compact", 1)]
    gate.set()
    assert (await first)[0] == 200
    assert ("commit", 1) in fake.vacuum_calls()


async def test_read_only_volumes_are_vacuumed_only_by_name(
    master: MasterServer, fakes: Fakes, http: aiohttp.ClientSession
) -> None:
    sealed = _volume(1)
    sealed["readOnly"] = True
    fake = await fakes(master, sealed, _volume(2))
    fake.garbage = {1: 0.9, 2: 0.9}
    assert (await _vacuum(http, master))[0] == 200
    assert ("check", 1) not in fake.vacuum_calls()
    fake.calls.clear()
    assert (await _vacuum(http, master, "volumeId=1"))[0] == 200
    assert fake.vacuum_calls() == [("check", 1), ("compact", 1), ("commit", 1)]
    assert not _writable(master, 1)  # still read-only after its vacuum


async def test_a_pass_can_be_limited_to_a_collection_or_a_volume(
    master: MasterServer, fakes: Fakes, http: aiohttp.ClientSession
) -> None:
    fake = await fakes(
        master, _volume(1), _volume(2), _volume(3, collection="pics"), _volume(4, collection="pics")
    )
    fake.garbage = dict.fromkeys(fake.volumes, 0.9)
    assert (await _vacuum(http, master, "collection=pics"))[0] == 200
    assert {v for c, v in fake.vacuum_calls() if c == "commit"} == {3, 4}
    fake.calls.clear()
    assert (await _vacuum(http, master, "volumeId=2"))[0] == 200
    assert fake.vacuum_calls() == [("check", 2), ("compact", 2), ("commit", 2)]
    fake.calls.clear()
    assert (await _vacuum(http, master, "collection="))[0] == 200  # the default collection
    assert {v for c, v in fake.vacuum_calls() if c == "commit"} == {1}


@pytest.mark.parametrize(
    ("query", "status", "error"),
    [
        ("garbageThreshold=abc", 406, "garbageThreshold abc is not a valid float number"),
        ("garbageThreshold=1e400", 406, "garbageThreshold 1e400 is not a valid float number"),
        ("garbageThreshold=%200.3", 406, "garbageThreshold  0.3 is not a valid float number"),
        ("garbageThreshold=1_0", 406, "garbageThreshold 1_0 is not a valid float number"),
        ("garbageThreshold=%EF%BC%91", 406, "garbageThreshold \uff11 is not a valid float number"),
        ("volumeId=abc", 400, None),
        ("volumeId=-1", 400, None),
        ("volumeId=4294967297", 400, None),
        ("volumeId=99", 404, "volume id 99 not found"),
        ("collection=nope", 400, "collection nope does not exist"),
        ("collection=..%2Fetc", 400, None),
    ],
)
async def test_bad_parameters_are_refused_before_anything_is_vacuumed(
    master: MasterServer,
    fakes: Fakes,
    http: aiohttp.ClientSession,
    query: str,
    status: int,
    error: str | None,
) -> None:
    fake = await fakes(master, _volume(1))
    fake.garbage = {1: 0.9}
    got, body = await _vacuum(http, master, query)
    assert got == status, body
    if error is not None:
        assert body == {"error": error}
    assert fake.vacuum_calls() == []


@pytest.mark.parametrize("threshold", ["NaN", "inf", "%2BInf", "2"])
async def test_thresholds_nothing_reaches_vacuum_nothing(
    master: MasterServer, fakes: Fakes, http: aiohttp.ClientSession, threshold: str
) -> None:
    fake = await fakes(master, _volume(1))
    fake.garbage = {1: 1.0}
    assert (await _vacuum(http, master, f"garbageThreshold={threshold}"))[0] == 200
    assert fake.vacuum_calls() == [("check", 1)]


async def test_the_automatic_sweep_vacuums_without_a_request(tmp_path: Path, fakes: Fakes) -> None:
    master = await _start_master(tmp_path, disable_vacuum=False, vacuum_interval_seconds=0.1)
    try:
        fake = await fakes(master, _volume(1), _volume(2))
        fake.garbage = {1: 0.31, 2: 0.29}  # -garbageThreshold is 0.3
        await _until(lambda: ("commit", 1) in fake.vacuum_calls())
        assert ("compact", 2) not in fake.vacuum_calls()
        await _until(lambda: master.stats.vacuum_passes >= 2)  # and again, every interval
    finally:
        await master.stop()


async def test_disable_vacuum_runs_no_sweep_but_vacuums_on_request(
    master: MasterServer, fakes: Fakes, http: aiohttp.ClientSession
) -> None:
    assert master.options.disable_vacuum and master._sweep is None
    fake = await fakes(master, _volume(1))
    fake.garbage = {1: 0.9}
    assert (await _vacuum(http, master))[0] == 200
    assert ("commit", 1) in fake.vacuum_calls()


async def test_vacuum_figures_are_on_metrics(
    master: MasterServer, fakes: Fakes, http: aiohttp.ClientSession
) -> None:
    a = await fakes(master, _volume(1), _volume(2))
    a.garbage = {1: 0.9, 2: 0.9}
    a.fail_compact = {2}
    assert (await _vacuum(http, master))[0] == 200
    async with http.get(f"http://{master.address}/metrics") as resp:
        text = await resp.text()
    for line in (
        "weedpy_master_vacuum_passes_total 1.0",
        "weedpy_master_vacuumed_volumes_total 1.0",
        "weedpy_master_vacuum_failures_total 1.0",
        "weedpy_master_vacuum_reclaimed_bytes_total 1000.0",
        "weedpy_master_vacuum_duration_seconds_count 2.0",
    ):
        assert line in text.splitlines(), line
