"""A volume whose disk filled (reliability scenario 14, issue 12): writes answer 507 with a JSON
error naming the volume and the reason, not 500, for as long as it stays read-only; once its
directory has room again it takes writes by itself, the next heartbeat says so, and the master
assigns it again. ENOSPC is injected in `os.pwrite` (as tests/fault/test_storage_recovery.py
does) and the free space comes from a fake `disk_usage` probe.

A real master and a volume server run in this process, on loopback.
"""

from __future__ import annotations

import asyncio
import errno
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from seaweed_py.formats.fid import parse_file_id
from seaweed_py.master.options import MasterOptions
from seaweed_py.master.server import MasterServer
from seaweed_py.volume import VolumeOptions, VolumeServer
from seaweed_py.volume import write as volume_write
from tests.disk_faults import FakeDisk, fail_writes_to
from tests.servers import free_port
from tests.volume_harness import until

Cluster = tuple[MasterServer, VolumeServer, FakeDisk]


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    (tmp_path / "m").mkdir()
    (tmp_path / "v").mkdir()  # a volume server refuses a missing -dir
    master = MasterServer(
        MasterOptions(port=free_port(), mdir=str(tmp_path / "m"), pulse_seconds=0.2)
    )
    volume = VolumeServer(
        VolumeOptions(
            dirs=(str(tmp_path / "v"),),
            max_volumes=(8,),
            masters=(master.options.address,),
            port=0,
            pulse_seconds=0.2,
            pre_stop_seconds=0,
        )
    )
    disk = FakeDisk()
    volume.store.disk_usage = disk
    await master.start()
    try:
        await volume.start()
        try:
            yield master, volume, disk
        finally:
            await volume.stop()
    finally:
        await master.stop()


async def _call(
    http: aiohttp.ClientSession, method: str, url: str, data: bytes | None = None
) -> tuple[int, dict[str, Any]]:
    # (A stream: aiohttp warns of large bodies given as bytes.)
    async with http.request(method, url, data=io.BytesIO(data) if data else None) as resp:
        body = await resp.read()
        return resp.status, json.loads(body) if body else {}


async def _no_spooling(*args: object) -> None:
    raise AssertionError("a body for a full volume was spooled")


def _writables(master: MasterServer) -> set[int]:
    return {vid for layout in master.topology.layouts.values() for vid in layout.writables}


async def test_a_full_disk_answers_507_and_the_volume_takes_writes_again_once_there_is_room(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    master, volume, disk = cluster
    base = f"http://127.0.0.1:{master.port}"
    async with aiohttp.ClientSession() as http:
        await until(lambda: master.topology.free_slots() > 0)
        status, answer = await _call(http, "GET", f"{base}/dir/assign?count=4")
        assert status == 200, answer
        fid, vid = answer["fid"], int(answer["fid"].split(",")[0])
        blob = f"http://127.0.0.1:{volume.port}/{fid}"
        assert (await _call(http, "POST", blob, b"kept"))[0] == 201
        v = volume.store.get(vid)
        assert v is not None
        size = v.size

        fail_writes_to(monkeypatch, v._dat, errno.ENOSPC, "No space left on device")
        disk.free = 0
        status, answer = await _call(http, "POST", f"{blob}_1", b"does not fit")
        monkeypatch.undo()
        assert status == 507, answer
        assert f"volume_id={vid}" in answer["error"] and "read-only" in answer["error"]

        # In between: still full, so still read-only, and still the client's 507 (not a 500).
        status, answer = await _call(http, "POST", f"{blob}_2", b"in between")
        assert status == 507, answer
        assert answer["error"] == f"volume is read-only: disk full (volume_id={vid})"
        status, answer = await _call(http, "DELETE", blob)
        assert status == 507, answer
        # A streamed body (over 1 MiB) is refused before it is spooled to the full disk.
        monkeypatch.setattr(volume_write, "spool", _no_spooling)
        status, answer = await _call(http, "POST", f"{blob}_3", b"s" * (3 << 20))
        monkeypatch.undo()
        assert status == 507 and "disk full" in answer["error"], answer
        await until(lambda: vid not in _writables(master))  # the heartbeat said read-only
        await asyncio.sleep(0.5)  # pulses go by; nothing frees the volume while the disk is full
        assert volume.store.get(vid) is v and v.read_only and vid not in _writables(master)

        disk.free = disk.total // 2  # an operator made room; nobody marks the volume
        await until(lambda: vid in _writables(master))
        assert not v.read_only
        assert (await _call(http, "POST", f"{blob}_2", b"after"))[0] == 201
        async with http.get(blob) as resp:
            assert (resp.status, await resp.read()) == (200, b"kept")
        async with http.get(f"{blob}_1") as resp:
            assert resp.status == 404
        # Nothing of the failed needle stayed: the next record starts where "kept" ended.
        key = parse_file_id(fid).key
        assert v.lookup(key + 2) is not None and v.lookup(key + 2)[0] == size  # type: ignore[index]
        assert v.lookup(key + 1) is None
