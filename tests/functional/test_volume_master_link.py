"""The volume server's master link against fake masters on loopback: heartbeats (full state,
failover to the next master, leader redirect, goodbye), cached lookups, unwritable reports;
and the `weedpy volume` flag parsing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from seaweed_py.client.master_link import Location, MasterLink
from seaweed_py.config.flags import FlagSet, UsageError
from seaweed_py.errors import VolumeNotFound
from seaweed_py.volume.options import add_volume_flags, volume_options
from tests.fake_master import FakeMaster


@pytest.fixture
async def master() -> AsyncIterator[FakeMaster]:
    m = FakeMaster(volume_size_limit=1234)
    m.locations[3] = [("127.0.0.1:1", "pub:1"), ("127.0.0.1:2", None)]
    await m.start()
    yield m
    await m.stop()


async def _until(check: Any, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def _state() -> dict[str, Any]:
    return {"ip": "127.0.0.1", "port": 8080, "volumes": [{"id": 3}], "hasNoVolumes": False}


async def test_heartbeats_carry_full_state_and_goodbye_drops_volumes(master: FakeMaster) -> None:
    answers: list[Any] = []
    link = MasterLink(
        [f"127.0.0.1:{master.port}"], _state, pulse_seconds=0.05, on_answer=answers.append
    )
    await link.start()
    await _until(lambda: len(master.heartbeats) >= 2)
    assert link.heartbeating
    await link.stop()
    assert master.heartbeats[0]["volumes"] == [{"id": 3}]
    assert master.heartbeats[-1]["hasNoVolumes"] is True
    assert master.heartbeats[-1]["volumes"] == []
    assert answers[0]["volumeSizeLimit"] == 1234


async def test_unreachable_master_fails_over_to_the_next(master: FakeMaster) -> None:
    dead = "127.0.0.1:1"
    link = MasterLink([dead, f"127.0.0.1:{master.port}"], _state, pulse_seconds=0.05)
    await link.start()
    await _until(lambda: len(master.heartbeats) >= 1)
    assert link.master == f"127.0.0.1:{master.port}"
    await link.stop(goodbye=False)


async def test_answer_naming_another_leader_moves_heartbeats_there(master: FakeMaster) -> None:
    leader = FakeMaster()
    leader_addr = await leader.start()
    master.leader = leader_addr
    try:
        link = MasterLink([f"127.0.0.1:{master.port}"], _state, pulse_seconds=0.05)
        await link.start()
        await _until(lambda: len(leader.heartbeats) >= 1)
        await link.stop(goodbye=False)
    finally:
        await leader.stop()


async def test_lookups_are_cached_until_forgotten(master: FakeMaster) -> None:
    link = MasterLink([f"127.0.0.1:{master.port}"], _state, pulse_seconds=60)
    await link.start()
    try:
        locs = await link.lookup(3)
        assert locs == (Location("127.0.0.1:1", "pub:1"), Location("127.0.0.1:2", "127.0.0.1:2"))
        await link.lookup(3)
        lookups_before = master.lookups
        link.forget(3)
        await link.lookup(3)
        assert master.lookups == lookups_before + 1
        with pytest.raises(VolumeNotFound):
            await link.lookup(4)
        await link.report_unwritable(3)
        assert master.unwritable == ["3"]
    finally:
        await link.stop(goodbye=False)


async def test_a_new_locations_version_drops_the_cached_lookups(master: FakeMaster) -> None:
    master.locations_version = 7
    link = MasterLink([f"127.0.0.1:{master.port}"], _state, pulse_seconds=0.05)
    await link.start()
    try:
        await _until(lambda: len(master.heartbeats) >= 1)
        await link.lookup(3)
        count = master.lookups
        await _until(lambda: len(master.heartbeats) >= 3)
        await link.lookup(3)
        assert master.lookups == count  # same version: still cached
        master.locations_version = 8  # a holder came or went
        seen = len(master.heartbeats)
        await _until(lambda: len(master.heartbeats) >= seen + 2)
        await link.lookup(3)
        assert master.lookups == count + 1
        await link.lookup(3, fresh=True)  # asked anew whatever the cache holds
        assert master.lookups == count + 2
    finally:
        await link.stop(goodbye=False)


def _parse(argv: list[str]) -> dict[str, Any]:
    fs = FlagSet("volume", "start a volume server")
    add_volume_flags(fs)
    return fs.parse(argv)[0]


def test_volume_flags_as_weed_spells_them() -> None:
    opts = volume_options(
        _parse(
            [
                "-port=9090",
                "-dir=/a,/b",
                "-max=3,4",
                "-mserver=m1:1,m2:2",
                "-readMode",
                "redirect",
                "-fsync=always",
                "-largeDisk",
                "-ip=10.0.0.1",
                "-fileSizeLimitMB=1",
            ]
        )
    )
    assert (opts.port, opts.dirs, opts.max_volumes) == (9090, ("/a", "/b"), (3, 4))
    assert opts.masters == ("m1:1", "m2:2")
    assert (opts.read_mode, opts.fsync_mode, opts.large_disk) == ("redirect", "always", True)
    assert opts.address(9090) == "10.0.0.1:9090" and opts.file_size_limit == 1024 * 1024
    assert volume_options(_parse(["-dir=/a,/b", "-max=5"])).max_volumes == (5, 5)


@pytest.mark.parametrize(
    "argv",
    [
        ["-readMode=nope"],
        ["-dir=/a,/b", "-max=1,2,3"],
        ["-index=leveldb"],
        ["-fsync=sometimes"],
        ["-dir="],
    ],
)
def test_bad_volume_flags_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(UsageError):
        volume_options(_parse(argv))


async def test_heartbeats_resume_when_the_master_comes_back() -> None:
    first, restarted = FakeMaster(), FakeMaster()
    link = MasterLink([await first.start()], _state, pulse_seconds=0.05)
    await link.start()
    try:
        await _until(lambda: len(first.heartbeats) >= 1)
        await first.stop()
        await _until(lambda: not link.heartbeating)
        await restarted.start(port=first.port)
        await _until(lambda: len(restarted.heartbeats) >= 1)
        assert restarted.heartbeats[0]["volumes"] == [{"id": 3}]  # full state: re-registered
        await _until(lambda: link.heartbeating)
    finally:
        await link.stop(goodbye=False)
        if restarted.runner is not None:
            await restarted.stop()
