"""The volume server's master link against fake masters on loopback: heartbeats (full state,
failover to the next master, leader redirect, goodbye), cached lookups, unwritable reports;
and the `weedpy volume` flag parsing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from seaweed_py.cli.server_cmd import build_flags, resolve
from seaweed_py.client.master_link import Location, MasterLink
from seaweed_py.config.flags import FlagSet, HelpRequested, UsageError
from seaweed_py.errors import VolumeNotFound
from seaweed_py.formats.wire import Heartbeat, VolumeReport
from seaweed_py.volume.options import add_volume_flags, volume_options
from tests.fake_master import FakeMaster
from tests.volume_harness import until


@pytest.fixture
async def master() -> AsyncIterator[FakeMaster]:
    m = FakeMaster(volume_size_limit=1234)
    m.locations[3] = [("127.0.0.1:1", "pub:1"), ("127.0.0.1:2", None)]
    await m.start()
    yield m
    await m.stop()


def _state() -> Heartbeat:
    return Heartbeat("127.0.0.1", 8080, volumes=(VolumeReport(3),))


async def test_heartbeats_carry_full_state_and_goodbye_drops_volumes(master: FakeMaster) -> None:
    answers: list[Any] = []
    link = MasterLink(
        [f"127.0.0.1:{master.port}"], _state, pulse_seconds=0.05, on_answer=answers.append
    )
    await link.start()
    await until(lambda: len(master.heartbeats) >= 2)
    assert link.heartbeating
    await link.stop()
    assert Heartbeat.from_obj(master.heartbeats[0]) == _state()
    assert master.heartbeats[-1]["hasNoVolumes"] is True
    assert master.heartbeats[-1]["volumes"] == []
    assert answers[0].volume_size_limit == 1234


async def test_unreachable_master_fails_over_to_the_next(master: FakeMaster) -> None:
    dead = "127.0.0.1:1"
    link = MasterLink([dead, f"127.0.0.1:{master.port}"], _state, pulse_seconds=0.05)
    await link.start()
    await until(lambda: len(master.heartbeats) >= 1)
    assert link.master == f"127.0.0.1:{master.port}"
    await link.stop(goodbye=False)


async def test_answer_naming_another_leader_moves_heartbeats_there(master: FakeMaster) -> None:
    leader = FakeMaster()
    leader_addr = await leader.start()
    master.leader = leader_addr
    try:
        link = MasterLink([f"127.0.0.1:{master.port}"], _state, pulse_seconds=0.05)
        await link.start()
        await until(lambda: len(leader.heartbeats) >= 1)
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
        await until(lambda: len(master.heartbeats) >= 1)
        await link.lookup(3)
        count = master.lookups
        await until(lambda: len(master.heartbeats) >= 3)
        await link.lookup(3)
        assert master.lookups == count  # same version: still cached
        master.locations_version = 8  # a holder came or went
        seen = len(master.heartbeats)
        await until(lambda: len(master.heartbeats) >= seen + 2)
        await link.lookup(3)
        assert master.lookups == count + 1
        await link.lookup(3, fresh=True)  # asked anew whatever the cache holds
        assert master.lookups == count + 2
    finally:
        await link.stop(goodbye=False)


async def test_dropped_returns_the_holders_a_new_locations_version_took_away(
    master: FakeMaster,
) -> None:
    master.locations_version = 1
    link = MasterLink([f"127.0.0.1:{master.port}"], _state, pulse_seconds=0.05)
    await link.start()
    try:
        await until(lambda: len(master.heartbeats) >= 1)
        watch = asyncio.ensure_future(link.dropped(3, ["127.0.0.1:1", "127.0.0.1:2"]))
        master.locations_version = 2  # a change that keeps both: looked up, still waiting
        lookups = master.lookups
        await until(lambda: master.lookups > lookups)
        seen = len(master.heartbeats)
        await until(lambda: len(master.heartbeats) >= seen + 3)
        assert not watch.done()
        master.locations[3] = [("127.0.0.1:1", "pub:1")]
        master.locations_version = 3
        assert await asyncio.wait_for(watch, 10) == {"127.0.0.1:2"}
        watch = asyncio.ensure_future(link.dropped(3, ["127.0.0.1:1"]))
        del master.locations[3]  # no holder left at all
        master.locations_version = 4
        assert await asyncio.wait_for(watch, 10) == {"127.0.0.1:1"}
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
        ["-replicationTimeout=0"],
        ["-replicationTimeout=-1"],
        ["-replicationTimeout=3601"],
        ["-replicationTimeout=99999999999999999999999"],
        ["-replicationTimeout=2.5"],
        ["-replicationTimeout=5s"],
        ["-replicationTimeout=ten"],
        ["-replicationTimeout="],
        ["-replicationTimeout=\u0665"],  # an Arabic-Indic five: Python's int() takes it, Go's not
        ["-concurrentUploadLimitMB=lots"],
        ["-concurrentUploadLimitMB=-1"],
        ["-concurrentUploadLimitMB=1.5"],
        ["-inflightUploadDataTimeout=soon"],
        ["-inflightUploadDataTimeout=5"],
        ["-inflightUploadDataTimeout=-1s"],
        ["-scrubPassSeconds=0"],
        ["-scrubPassSeconds=-1"],
        ["-scrubPassSeconds=inf"],
        ["-scrubPassSeconds=nan"],
        ["-scrubPassSeconds=soon"],
    ],
)
def test_bad_volume_flags_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(UsageError):
        volume_options(_parse(argv))


def test_replication_timeout_flag() -> None:
    """A weedpy addition: documented in -h, 5 s by default, whole seconds 1..3600."""
    assert volume_options(_parse([])).replication_timeout == 5.0
    assert volume_options(_parse(["-replicationTimeout=1"])).replication_timeout == 1.0
    assert volume_options(_parse(["-replicationTimeout", "3600"])).replication_timeout == 3600.0
    fs = FlagSet("volume", "start a volume server")
    add_volume_flags(fs)
    assert "-replicationTimeout int" in fs.usage() and "weedpy addition" in fs.usage()


def test_scrub_pass_seconds_flag() -> None:
    """A weedpy addition: documented in -h, 60 s by default, any positive number of seconds."""
    assert volume_options(_parse([])).scrub_pass_seconds == 60.0
    assert volume_options(_parse(["-scrubPassSeconds=0.5"])).scrub_pass_seconds == 0.5
    fs = FlagSet("volume", "start a volume server")
    add_volume_flags(fs)
    assert "-scrubPassSeconds float" in fs.usage()


def test_upload_limit_flags_as_weed_spells_them() -> None:
    default = volume_options(_parse([]))
    assert (default.concurrent_upload_limit, default.inflight_upload_timeout) == (64 << 20, 60.0)
    opts = volume_options(
        _parse(["-concurrentUploadLimitMB=0", "-inflightUploadDataTimeout=1m30s"])
    )
    assert (opts.concurrent_upload_limit, opts.inflight_upload_timeout) == (0, 90.0)
    opts = volume_options(_parse(["-concurrentUploadLimitMB", "8", "-inflightUploadDataTimeout=0"]))
    assert (opts.concurrent_upload_limit, opts.inflight_upload_timeout) == (8 << 20, 0.0)
    with pytest.raises(HelpRequested) as usage:
        _parse(["-h"])
    assert "-concurrentUploadLimitMB int" in str(usage.value)
    assert "-inflightUploadDataTimeout Duration" in str(usage.value)
    assert "(default 1m0s)" in str(usage.value)


def test_server_passes_the_upload_limit_flags_to_its_volume_server() -> None:
    values, _ = build_flags().parse(
        ["-volume.concurrentUploadLimitMB=3", "-volume.inflightUploadDataTimeout=2s"]
    )
    opts = volume_options(resolve(values, set()), "volume.")
    assert (opts.concurrent_upload_limit, opts.inflight_upload_timeout) == (3 << 20, 2.0)
    with pytest.raises(UsageError):
        build_flags().parse(["-volume.inflightUploadDataTimeout=later"])


async def test_heartbeats_resume_when_the_master_comes_back() -> None:
    first, restarted = FakeMaster(), FakeMaster()
    link = MasterLink([await first.start()], _state, pulse_seconds=0.05)
    await link.start()
    try:
        await until(lambda: len(first.heartbeats) >= 1)
        await first.stop()
        await until(lambda: not link.heartbeating)
        await restarted.start(port=first.port)
        await until(lambda: len(restarted.heartbeats) >= 1)
        assert Heartbeat.from_obj(restarted.heartbeats[0]) == _state()  # full state: re-registered
        await until(lambda: link.heartbeating)
    finally:
        await link.stop(goodbye=False)
        if restarted.runner is not None:
            await restarted.stop()


async def test_stop_right_after_a_poke_ends_the_heartbeat_loop(master: FakeMaster) -> None:
    """A volume created while the server stops pokes the loop just as `stop` cancels it. Under
    Python 3.11's `asyncio.wait_for` the cancellation could be swallowed when the wake-up won
    the race: the loop went on heartbeating, `stop` waited for it forever, and the master kept
    the leaving server until it was killed."""
    for _ in range(50):  # the race is lost only some of the time
        await _poke_then_stop(MasterLink([f"127.0.0.1:{master.port}"], _state, pulse_seconds=60))
        assert master.heartbeats[-1]["hasNoVolumes"] is True


async def _poke_then_stop(link: MasterLink) -> None:
    await link.start()
    await until(lambda: link.heartbeating)
    await asyncio.sleep(0)  # the loop is now waiting for a pulse or a poke
    link.poke()
    await asyncio.wait_for(link.stop(), timeout=5)
