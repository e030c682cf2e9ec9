"""The volume server's vacuum calls (`/admin/vacuum/*`, volume/vacuum.py) on a real loopback
socket: check, compact, commit, cleanup, their refusals, the figures on `/status`, the page and
`/metrics`, and reads and writes going on over HTTP while a volume is compacted and
committed."""

from __future__ import annotations

import asyncio
import io
import json
import os
import random
from typing import Any

import pytest

from seaweed_py.client.cluster import Outgoing
from seaweed_py.client.http import HttpClient, Timeout
from seaweed_py.client.volume_admin import VolumeAdmin
from seaweed_py.storage.backend.settings import BackendSource
from seaweed_py.volume import VolumeServer
from tests import s3_server, volume_harness
from tests.disk_faults import FakeDisk

Session = volume_harness.Session
Starter = volume_harness.Starter
master = volume_harness.master
s3 = s3_server.s3
start_server = volume_harness.start_server
http = volume_harness.http
_url = volume_harness.url
_allocate = volume_harness.allocate
_get = volume_harness.get

COOKIE = "637037d6"


def fid(key: int, vid: int = 1) -> str:
    return f"{vid},{key:x}{COOKIE}"


async def _put(http: Session, server: VolumeServer, path: str, data: bytes) -> None:
    async with http.put(_url(server, f"/{path}"), data=io.BytesIO(data)) as resp:
        assert resp.status == 201, await resp.text()


async def _delete(http: Session, server: VolumeServer, path: str) -> None:
    async with http.delete(_url(server, f"/{path}")) as resp:
        assert resp.status == 202, await resp.text()


async def _admin(
    http: Session, server: VolumeServer, step: str, method: str = "POST", **params: str
) -> tuple[int, Any]:
    async with http.request(method, _url(server, f"/admin/vacuum/{step}"), params=params) as r:
        return r.status, json.loads(await r.read() or b"null")


@pytest.fixture
async def vs(start_server: Starter, http: Session) -> VolumeServer:
    server = await start_server()
    await _allocate(http, server, 1)
    return server


async def _fill(http: Session, server: VolumeServer, count: int = 30) -> dict[int, bytes]:
    live = {}
    for key in range(1, count + 1):
        data = os.urandom(1000 + key)
        await _put(http, server, fid(key), data)
        live[key] = data
    for key in range(2, count + 1, 2):
        await _delete(http, server, fid(key))
        del live[key]
    return live


async def _assert_holds(
    http: Session, server: VolumeServer, live: dict[int, bytes], gone: set[int]
) -> None:
    for key, data in live.items():
        status, _, body = await _get(http, _url(server, f"/{fid(key)}"))
        assert (status, body) == (200, data), key
    for key in gone:
        status, _, _ = await _get(http, _url(server, f"/{fid(key)}"))
        assert status == 404, key


async def test_check_compact_commit_reclaim_the_garbage(vs: VolumeServer, http: Session) -> None:
    live = await _fill(http, vs)
    status, checked = await _admin(http, vs, "check", "GET", volume="1")
    assert status == 200 and 0.45 < checked["garbageRatio"] < 0.55
    status, compacted = await _admin(http, vs, "compact", volume="1", preallocate="0")
    assert status == 200, compacted
    assert compacted["needles"] == 15 and compacted["expired"] == compacted["corrupt"] == 0
    assert compacted["processedBytes"] < compacted["sizeBefore"]
    status, committed = await _admin(http, vs, "commit", volume="1")
    assert status == 200, committed
    assert committed["isReadOnly"] is False and committed["replayed"] == 0
    assert committed["reclaimedBytes"] == compacted["sizeBefore"] - committed["volumeSize"] > 0
    await _assert_holds(http, vs, live, set(range(2, 31, 2)))
    assert (await _admin(http, vs, "check", "GET", volume="1"))[1] == {"garbageRatio": 0.0}
    assert (await _admin(http, vs, "cleanup", volume="1")) == (200, {})

    status, _, body = await _get(http, _url(vs, "/status"))
    [volume] = json.loads(body)["Volumes"]
    assert (volume["CompactRevision"], volume["GarbageRatio"]) == (1, 0.0)
    _, _, page = await _get(http, _url(vs, "/ui/index.html"))
    assert b"Garbage ratio" in page
    _, _, metrics = await _get(http, _url(vs, "/metrics"))
    text = metrics.decode()
    for line in (
        'weedpy_volume_vacuum_steps_total{result="done",step="compact"} 1.0',
        'weedpy_volume_vacuum_steps_total{result="done",step="commit"} 1.0',
        'weedpy_volume_vacuum_duration_seconds_count{step="commit"} 1.0',
        f"weedpy_volume_vacuum_reclaimed_bytes_total {committed['reclaimedBytes']}.0",
        'weedpy_volume_garbage_ratio{collection="",volume="1"} 0.0',
    ):
        assert line in text.splitlines(), line


async def test_the_garbage_ratio_is_on_status_and_metrics(vs: VolumeServer, http: Session) -> None:
    await _fill(http, vs, count=4)
    _, _, body = await _get(http, _url(vs, "/status"))
    [volume] = json.loads(body)["Volumes"]
    assert volume["GarbageRatio"] == pytest.approx(volume["DeletedByteCount"] / volume["Size"])
    _, _, metrics = await _get(http, _url(vs, "/metrics"))
    assert b'weedpy_volume_garbage_ratio{collection="",volume="1"} 0.' in metrics


@pytest.mark.parametrize(
    ("step", "method", "params", "status"),
    [
        ("check", "GET", {}, 400),
        ("check", "GET", {"volume": "abc"}, 400),
        ("check", "GET", {"volume": "4294967296"}, 400),
        ("check", "GET", {"volume": "9"}, 404),
        ("compact", "POST", {"volume": "9"}, 404),
        ("compact", "POST", {"volume": "1", "preallocate": "-1"}, 400),
        ("compact", "POST", {"volume": "1", "preallocate": "1e9"}, 400),
        ("compact", "GET", {"volume": "1"}, 405),
        ("commit", "POST", {"volume": "1"}, 409),
        ("commit", "POST", {"volume": "9"}, 404),
        ("cleanup", "POST", {"volume": "9"}, 404),
    ],
)
async def test_bad_vacuum_calls_are_refused_and_change_nothing(
    vs: VolumeServer,
    http: Session,
    step: str,
    method: str,
    params: dict[str, str],
    status: int,
) -> None:
    live = await _fill(http, vs, count=6)
    got, body = await _admin(http, vs, step, method, **params)
    assert got == status, body
    assert isinstance(body["error"], str) and body["error"]
    volume = vs.store.get(1)
    assert volume is not None and not volume.compacting and volume.compact_revision == 0
    assert not [p for p in os.listdir(vs.options.dirs[0]) if p.startswith("1.cp")]
    await _assert_holds(http, vs, live, set())


async def test_a_vacuum_the_disk_cannot_hold_is_507_and_changes_nothing(
    vs: VolumeServer, http: Session
) -> None:
    live = await _fill(http, vs)
    disk = FakeDisk()
    disk.free = 4096
    vs.store.disk_usage = disk
    status, body = await _admin(http, vs, "compact", volume="1")
    assert status == 507 and "not enough free space to vacuum" in body["error"]
    assert (await _admin(http, vs, "commit", volume="1"))[0] == 409
    assert not [p for p in os.listdir(vs.options.dirs[0]) if p.startswith("1.cp")]
    await _put(http, vs, fid(100), b"still takes writes")
    await _assert_holds(http, vs, live | {100: b"still takes writes"}, set())
    _, _, metrics = await _get(http, _url(vs, "/metrics"))
    assert b'weedpy_volume_vacuum_steps_total{result="failed",step="compact"} 1.0' in metrics


async def test_reads_writes_and_deletes_go_on_while_a_volume_is_vacuumed(
    start_server: Starter, http: Session
) -> None:
    """The copy is paced (-compactionMBps=2: some 4.5 MiB live, about two seconds) so that it
    lasts while clients write, delete and read, large streamed needles included; nothing
    acknowledged is lost and no read returns wrong bytes."""
    vs = await start_server(compaction_mbps=2)
    await _allocate(http, vs, 1)
    rng = random.Random(1313)
    live = await _fill(http, vs, count=40)
    for key in range(5000, 5003):  # streamed on read (over 1 MiB)
        data = rng.randbytes(1_500_000)
        await _put(http, vs, fid(key), data)
        live[key] = data
    for key in range(41, 600):  # about a MiB of garbage before them
        await _put(http, vs, fid(key), rng.randbytes(2000))
        await _delete(http, vs, fid(key))
    gone = set(range(2, 41, 2)) | set(range(41, 600))
    done = asyncio.Event()
    bad: list[str] = []

    async def clients() -> None:
        key = 1000  # up to 5000: the clients write far fewer
        while not done.is_set():
            data = rng.randbytes(rng.randrange(1, 5000))
            await _put(http, vs, fid(key), data)
            live[key] = data
            victim = rng.choice(sorted(k for k in live if k < 5000))
            await _delete(http, vs, fid(victim))
            del live[victim]
            gone.add(victim)
            for probe in (key, rng.choice(sorted(live)), 5000 + key % 3):
                status, _, body = await _get(http, _url(vs, f"/{fid(probe)}"))
                if status == 200 and body != live.get(probe):
                    bad.append(f"{probe}: 200 with wrong bytes")
            key += 1

    running = asyncio.create_task(clients())
    try:
        status, compacted = await _admin(http, vs, "compact", volume="1")
        assert status == 200, compacted
        status, committed = await _admin(http, vs, "commit", volume="1")
        assert status == 200, committed
        assert committed["replayed"] > 0  # the clients' work came in during the copy
    finally:
        done.set()
        await running
    assert bad == []
    await _assert_holds(http, vs, live, gone - set(live))


async def test_a_vacuum_survives_a_restart_of_the_server(
    start_server: Starter, http: Session
) -> None:
    vs = await start_server()
    await _allocate(http, vs, 1)
    live = await _fill(http, vs)
    assert (await _admin(http, vs, "compact", volume="1"))[0] == 200
    await vs.stop()  # compacted, never committed: rolled back at the next start
    again = await start_server()
    assert not [p for p in os.listdir(again.options.dirs[0]) if p.startswith("1.cp")]
    volume = again.store.get(1)
    assert volume is not None and volume.compact_revision == 0
    await _assert_holds(http, again, live, set(range(2, 31, 2)))


async def test_admin_vacuum_routes_are_behind_the_white_list(
    start_server: Starter, http: Session
) -> None:
    vs = await start_server(white_list=("10.1.2.3",))
    for step, method in (("check", "GET"), ("compact", "POST"), ("commit", "POST")):
        assert (await _admin(http, vs, step, method, volume="1"))[0] == 401


async def test_a_tiered_volume_is_not_compacted_where_it_lies(
    s3: s3_server.S3Server, start_server: Starter, http: Session
) -> None:
    """Its `.dat` is an object in a bucket: a vacuum would have to download it first (the
    tiering work's `volume.tier.compact`); the compaction is refused and nothing changes."""
    backends = BackendSource(env=s3.env(s3.new_bucket()), search_dirs=()).load()
    vs = await start_server(backends=backends)
    await _allocate(http, vs, 1)
    live = await _fill(http, vs, count=10)
    admin = VolumeAdmin(HttpClient(Outgoing(), Timeout(120), session=http))
    await admin.tier_upload(vs.url(), 1, dest="s3")
    status, body = await _admin(http, vs, "compact", volume="1")
    assert status == 409 and "tiered volume" in body["error"]
    assert not [p for p in os.listdir(vs.options.dirs[0]) if p.startswith("1.cp")]
    await _assert_holds(http, vs, live, set(range(2, 11, 2)))
