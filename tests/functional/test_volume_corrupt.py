"""Corrupt bytes are never served and never destroyed (reliability scenario 4, issue 12).

A needle whose data rotted on disk answers a 500 JSON error saying it is corrupt, for a full
GET, any range and HEAD, never a 2xx and never a 404; it survives a restart (recovery keeps it),
is counted in `/metrics`, and `weedpy fix` lists it. A large needle (streamed) is verified
before its first byte is sent, and the verdict is remembered so a hot blob is read once.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import aiohttp
import orjson
import pytest

from seaweed_py.cli.fix import run as fix_run
from seaweed_py.formats.idx import IDX4, iter_entries
from seaweed_py.volume import VolumeServer
from tests import volume_harness
from tests.disk_faults import flip_byte

Session = volume_harness.Session
Starter = volume_harness.Starter
master = volume_harness.master
start_server = volume_harness.start_server
http = volume_harness.http
url = volume_harness.url
allocate = volume_harness.allocate
get = volume_harness.get

COOKIE = "637037d6"
BIG = 3 << 20
RANGES = ["bytes=0-99", "bytes=-100", f"bytes={BIG // 2}-{BIG // 2 + 9}", "bytes=0-9,-10"]


@pytest.fixture
async def server(start_server: Starter, http: Session) -> VolumeServer:
    """A volume server holding volume 1."""
    started = await start_server()
    await allocate(http, started, 1)
    return started


def fid(key: int) -> str:
    return f"1,{key:x}{COOKIE}"


async def put(http: Session, server: VolumeServer, key: int, data: bytes) -> None:
    async with http.put(url(server, f"/{fid(key)}"), data=io.BytesIO(data)) as resp:
        assert resp.status == 201, await resp.text()


def data_byte(server: VolumeServer, key: int, i: int) -> tuple[Path, int]:
    """The `.dat` of volume 1 and the file offset of data byte `i` of needle `key`."""
    volume = server.store.get(1)
    assert volume is not None
    hit = volume.lookup(key)
    assert hit is not None
    return volume.path(".dat"), hit[0] + 20 + i


async def assert_corrupt(http: Session, server: VolumeServer, key: int, **kw: str) -> None:
    """Every read of `key` (full, ranges, HEAD) answers the corrupt 500, never 2xx or 404."""
    for headers in [{}, *({"Range": r} for r in RANGES)]:
        status, answer_headers, body = await get(http, url(server, f"/{fid(key)}"), headers=headers)
        assert status == 500, (headers, status)
        assert answer_headers["Content-Type"] == "application/json"
        error = orjson.loads(body)["error"]
        assert "is corrupt" in error and f"key={key:x}" in error, error
    async with http.head(url(server, f"/{fid(key)}")) as resp:
        assert resp.status == 500


async def metric(http: Session, server: VolumeServer, name: str) -> float:
    body = (await get(http, url(server, "/metrics")))[2].decode()
    found = re.search(rf"^{re.escape(name)} (\S+)$", body, re.M)
    assert found, (name, body)
    return float(found.group(1))


async def test_a_rotted_last_record_survives_a_restart_and_answers_corrupt_until_repaired(
    start_server: Starter, http: Session, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = await start_server()
    await allocate(http, server, 1)
    for key in (1, 2, 3):
        await put(http, server, key, b"blob %d " % key * 40)
    dat, at = data_byte(server, 3, 7)
    await server.stop()
    dat_len = dat.stat().st_size
    flip_byte(dat, at)

    server = await start_server()
    assert dat.stat().st_size == dat_len
    for key in (1, 2):
        assert (await get(http, url(server, f"/{fid(key)}")))[:3:2] == (200, b"blob %d " % key * 40)
    await assert_corrupt(http, server, 3)
    assert await metric(http, server, "weedpy_volume_corrupt_needles") == 1
    assert await metric(http, server, "weedpy_volume_corrupt_reads_total") == 1 + len(RANGES) + 1
    await put(http, server, 4, b"after the rot")  # appended after it, not over it
    assert (await get(http, url(server, f"/{fid(4)}")))[2] == b"after the rot"
    await assert_corrupt(http, server, 3)
    await server.stop()

    assert fix_run([f"-dir={tmp_path / 'v0'}", "-volumeId=1"]) == 1
    offset = next(
        o for k, o, _ in iter_entries((tmp_path / "v0" / "1.idx").read_bytes(), IDX4) if k == 3
    )
    assert f"corrupt needle key=3 offset={offset} " in capsys.readouterr().out

    server = await start_server()  # repaired by an overwrite
    await put(http, server, 3, b"repaired")
    assert (await get(http, url(server, f"/{fid(3)}")))[2] == b"repaired"
    assert await metric(http, server, "weedpy_volume_corrupt_needles") == 0


async def test_a_rotted_small_needle_answers_corrupt_for_every_range(
    server: VolumeServer, http: Session
) -> None:
    await put(http, server, 1, os.urandom(5000))
    flip_byte(*data_byte(server, 1, 4321))
    await assert_corrupt(http, server, 1)


@pytest.mark.parametrize("where", [0, BIG // 2, BIG - 1], ids=["first", "middle", "last"])
async def test_a_rotted_large_needle_never_answers_2xx(
    server: VolumeServer, http: Session, where: int
) -> None:
    await put(http, server, 1, os.urandom(BIG))
    flip_byte(*data_byte(server, 1, where))
    await assert_corrupt(http, server, 1)
    assert await metric(http, server, "weedpy_volume_corrupt_needles") == 1


async def test_an_intact_large_needle_streams_and_later_reads_use_the_remembered_verdict(
    server: VolumeServer, http: Session
) -> None:
    data = os.urandom(BIG)
    await put(http, server, 1, data)
    target = url(server, f"/{fid(1)}")
    status, headers, body = await get(http, target)
    assert (status, body) == (200, data) and headers["Content-Length"] == str(BIG)
    assert (server.stats.verify_reads, server.stats.verify_memo_hits) == (1, 0)
    assert (await get(http, target))[2] == data
    status, _, part = await get(http, target, headers={"Range": "bytes=-100"})
    assert (status, part) == (206, data[-100:])
    assert (server.stats.verify_reads, server.stats.verify_memo_hits) == (1, 2)
    how = 'weedpy_volume_needle_verifications_total{how="%s"}'
    assert await metric(http, server, how % "read") == 1
    assert await metric(http, server, how % "memo") == 2
    # A new record (an overwrite) is verified afresh.
    await put(http, server, 1, data[::-1])
    assert (await get(http, target))[2] == data[::-1]
    assert server.stats.verify_reads == 2


async def test_bytes_rotting_after_verification_cut_the_stream_and_then_answer_corrupt(
    server: VolumeServer, http: Session
) -> None:
    data = os.urandom(BIG)
    await put(http, server, 1, data)
    assert (await get(http, url(server, f"/{fid(1)}")))[2] == data  # verified, remembered
    flip_byte(*data_byte(server, 1, 100))
    with pytest.raises(aiohttp.ClientPayloadError):
        await get(http, url(server, f"/{fid(1)}"))
    await assert_corrupt(http, server, 1)
