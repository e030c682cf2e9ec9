"""POST /batch/read on a volume server: local, tiered and unknown fids in one answer, in request
order, each part with the status a GET would have; few preads or ranged GETs; bad input 400."""

from __future__ import annotations

import gzip
import io
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from seaweed_py.client import AsyncClient
from seaweed_py.client.cluster import Outgoing
from seaweed_py.client.http import HttpClient, Timeout
from seaweed_py.client.volume_admin import VolumeAdmin
from seaweed_py.errors import InvalidFileId
from seaweed_py.formats.multipart_mixed import MultipartMixedReader, Part, boundary_of
from seaweed_py.security.settings import SecuritySettings
from seaweed_py.security.tokens import JwtKeys, fid_token
from seaweed_py.storage.backend.settings import BackendSource
from seaweed_py.volume import VolumeServer
from tests import s3_server, volume_harness
from tests.fake_master import FakeMaster
from tests.volume_harness import Session, Starter, allocate, url

s3 = s3_server.s3
master = volume_harness.master
start_server = volume_harness.start_server
http = volume_harness.http

LOCAL, TIERED = 3, 4


async def put(http: Session, server: VolumeServer, fid: str, data: bytes, **headers: str) -> None:
    async with http.put(url(server, f"/{fid}"), data=io.BytesIO(data), headers=headers) as r:
        assert r.status == 201, await r.text()


async def batch(
    http: Session, server: VolumeServer, body: Any, raw: bytes | None = None
) -> tuple[int, list[Part]]:
    data = raw if raw is not None else json.dumps(body).encode()
    async with http.post(url(server, "/batch/read"), data=data) as resp:
        payload = await resp.read()
        if resp.status != 200:
            return resp.status, []
        reader = MultipartMixedReader(boundary_of(resp.headers["Content-Type"]))
        parts = reader.feed(payload)
        reader.close()
        return 200, parts


def fid(vid: int, n: int) -> str:
    return f"{vid},{n:x}{0xABC00000 + n:08x}"


@pytest.fixture
async def served(
    s3: s3_server.S3Server, start_server: Starter, http: Session, master: FakeMaster
) -> tuple[VolumeServer, dict[str, bytes]]:
    backends = BackendSource(env=s3.env(s3.new_bucket()), search_dirs=()).load()
    server = await start_server("v0", backends=backends, tier_cache=0)
    blobs: dict[str, bytes] = {}
    for vid in (LOCAL, TIERED):
        await allocate(http, server, vid)
        for n in range(1, 61):
            blobs[fid(vid, n)] = os.urandom(4096)
            await put(http, server, fid(vid, n), blobs[fid(vid, n)])
        master.locations[vid] = [server.url()]
    text = b"hello batch " * 100
    await put(
        http,
        server,
        fid(LOCAL, 100),
        gzip.compress(text),
        **{"Content-Encoding": "gzip", "Content-Type": "text/plain"},
    )
    blobs[fid(LOCAL, 100)] = text
    await VolumeAdmin(HttpClient(Outgoing(), Timeout(120), session=http)).tier_upload(
        server.url(), TIERED, dest="s3"
    )
    return server, blobs


async def test_local_tiered_and_unknown_fids_in_request_order(
    served: tuple[VolumeServer, dict[str, bytes]], http: Session
) -> None:
    server, blobs = served
    wrong_cookie = f"{LOCAL},1{0xDEAD0000:08x}"
    asked = [
        fid(TIERED, 5),
        fid(LOCAL, 1),
        "99,0100000001",  # a volume this server does not hold
        "not-a-fid",
        fid(LOCAL, 100),  # stored gzipped
        wrong_cookie,
        fid(TIERED, 9999),  # unknown key
        fid(TIERED, 6),
        fid(LOCAL, 1),  # twice
    ]
    status, parts = await batch(http, server, {"fids": asked})
    assert status == 200
    assert [p.content_id for p in parts] == asked
    statuses = [p.headers["x-weedpy-status"] for p in parts]
    assert statuses == ["200", "200", "404", "400", "200", "404", "404", "200", "200"]
    for p in parts:
        if p.headers["x-weedpy-status"] == "200":
            assert p.body == blobs[p.content_id]
            assert p.headers["etag"].startswith('"') and p.headers["last-modified"]
        else:
            assert "error" in json.loads(p.body)
    assert parts[4].headers["content-type"] == "text/plain"


async def test_neighbouring_tiered_needles_share_one_ranged_get(
    served: tuple[VolumeServer, dict[str, bytes]], http: Session
) -> None:
    server, blobs = served
    asked = [fid(TIERED, n) for n in range(60, 0, -1)]
    before = server.store.backends.requests()["s3.default"]
    status, parts = await batch(http, server, {"fids": asked})
    assert status == 200 and [p.body for p in parts] == [blobs[f] for f in asked]
    assert server.store.backends.requests()["s3.default"] - before == 1


async def test_a_corrupt_needle_is_a_500_part_never_its_bytes(
    served: tuple[VolumeServer, dict[str, bytes]], http: Session
) -> None:
    server, blobs = served
    volume = server.store.get(LOCAL)
    assert volume is not None
    hit = volume.lookup(int(fid(LOCAL, 7).split(",")[1][:-8], 16))
    assert hit is not None
    dat = Path(server.options.dirs[0]) / f"{LOCAL}.dat"
    with dat.open("r+b") as f:
        f.seek(hit.offset + 16 + 4 + 100)
        f.write(b"\xff\xfe")
    _status, parts = await batch(http, server, {"fids": [fid(LOCAL, 6), fid(LOCAL, 7)]})
    assert [p.headers["x-weedpy-status"] for p in parts] == ["200", "500"]
    assert b"corrupt" in parts[1].body and blobs[fid(LOCAL, 7)][:50] not in parts[1].body


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        json.dumps({"fids": []}).encode(),
        json.dumps({"fids": ["3,01"] * 1001}).encode(),
        json.dumps({"fids": [3]}).encode(),
        json.dumps({"fids": "3,0100000001"}).encode(),
        json.dumps({"fids": ["3,0100000001"], "jwt": ["a", "b"]}).encode(),
        json.dumps({"ids": ["3,0100000001"]}).encode(),
    ],
)
async def test_bad_requests_are_400(start_server: Starter, http: Session, body: bytes) -> None:
    server = await start_server("v0")
    async with http.post(url(server, "/batch/read"), data=body) as resp:
        assert resp.status == 400
        assert "error" in await resp.json()


async def test_a_read_key_wants_each_fids_token(
    start_server: Starter, http: Session, master: FakeMaster
) -> None:
    keys = JwtKeys(read_key=b"read-secret")
    server = await start_server("v0", security=SecuritySettings(keys=keys))
    await allocate(http, server, LOCAL)
    await put(http, server, fid(LOCAL, 1), b"one")
    await put(http, server, fid(LOCAL, 2), b"two")
    token = fid_token(b"read-secret", 60, fid(LOCAL, 1), time.time())
    _status, parts = await batch(
        http, server, {"fids": [fid(LOCAL, 1), fid(LOCAL, 2)], "jwt": [token, ""]}
    )
    assert [p.headers["x-weedpy-status"] for p in parts] == ["200", "401"]
    assert parts[0].body == b"one"


async def test_sdk_download_many(
    served: tuple[VolumeServer, dict[str, bytes]], master: FakeMaster
) -> None:
    _server, blobs = served
    wanted = [fid(LOCAL, 2), fid(TIERED, 3), fid(LOCAL, 100), fid(TIERED, 9999), "77,0100000001"]
    async with AsyncClient(master.address) as client:
        got = await client.download_many([*wanted, fid(LOCAL, 2)])
        assert list(got) == wanted
        assert got[fid(LOCAL, 2)] == blobs[fid(LOCAL, 2)]
        assert got[fid(TIERED, 3)] == blobs[fid(TIERED, 3)]
        assert got[fid(LOCAL, 100)] == blobs[fid(LOCAL, 100)]
        assert got[fid(TIERED, 9999)] is None and got["77,0100000001"] is None
        with pytest.raises(InvalidFileId):
            await client.download_many(["junk"])
        many = [fid(v, n) for v in (LOCAL, TIERED) for n in range(1, 61)]
        assert await client.download_many(many) == {f: blobs[f] for f in many}
