"""Volume server clauses of spec §3.5-§3.9 and §6.2-§6.3 that need a fake master or two
servers: TTL volumes stamping their TTL, deletes that must not happen (volume elsewhere,
read-only), health while stopping, `proxied=true` reads, the copy-count check, what a
replicated write carries to the replica, and replicated deletes the replica answers with 404.

In-process servers on loopback, as tests/functional/test_volume_server.py; FakeMaster counts
lookups, and each server's `stats` counts the requests it handled, which is how "nothing was
forwarded" is seen.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import io
import json
from collections.abc import Mapping
from typing import Any

import aiohttp
import pytest

from seaweed_py.formats.crc import crc32c
from seaweed_py.formats.needle import FLAG_CHUNK_MANIFEST, FLAG_GZIP, Needle
from seaweed_py.volume import VolumeServer
from tests import volume_harness
from tests.fake_master import FakeMaster

Session = volume_harness.Session
Starter = volume_harness.Starter
Clock = volume_harness.Clock
master = volume_harness.master
start_server = volume_harness.start_server
http = volume_harness.http
_url = volume_harness.url
_allocate = volume_harness.allocate
_get = volume_harness.get

FID = "1,01637037d6"
KEY, COOKIE = 0x01, 0x637037D6


@pytest.fixture
async def vs(start_server: Starter, http: Session) -> VolumeServer:
    server = await start_server()
    await _allocate(http, server, 1)
    return server


@pytest.fixture
async def pair(
    start_server: Starter, master: FakeMaster, http: Session
) -> tuple[VolumeServer, VolumeServer]:
    """Two servers holding volume 2 (replication 001), both listed by the master."""
    primary = await start_server("v0")
    replica = await start_server("v1")
    for server in (primary, replica):
        await _allocate(http, server, 2, replication="001")
    master.locations[2] = [primary.url(), replica.url()]
    return primary, replica


def _form(data: bytes, filename: str = "f.bin") -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO(data), filename=filename)
    return form


async def _post(
    http: Session, server: VolumeServer, fid: str, data: bytes, **kw: Any
) -> tuple[int, Any]:
    async with http.post(_url(server, f"/{fid}"), data=_form(data), **kw) as resp:
        body = await resp.read()
        return resp.status, json.loads(body) if body else None


def _stored(server: VolumeServer, vid: int, key: int, cookie: int = COOKIE) -> Needle:
    volume = server.store.get(vid)
    assert volume is not None
    return volume.read(key, cookie)


def _md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


# ------------------------------------------------------------------ §3.5 TTL volumes


async def test_upload_without_ttl_to_a_ttl_volume_gets_the_volume_ttl(
    start_server: Starter, http: Session
) -> None:
    clock = Clock()
    server = await start_server(clock=clock)
    await _allocate(http, server, 1, ttl="1m")
    assert (await _post(http, server, FID, b"expires with the volume"))[0] == 201
    assert str(_stored(server, 1, KEY).ttl) == "1m"
    assert (await _get(http, _url(server, f"/{FID}")))[2] == b"expires with the volume"
    clock.now += 59
    assert (await _get(http, _url(server, f"/{FID}")))[0] == 200
    clock.now += 2  # a minute after the append
    status, _, body = await _get(http, _url(server, f"/{FID}"))
    assert (status, json.loads(body)) == (404, {"error": f"/{FID} not found"})


# ------------------------------------------------------------------ §3.6 deletes


async def test_delete_on_a_server_without_the_volume_is_404_and_not_forwarded(
    vs: VolumeServer, start_server: Starter, master: FakeMaster, http: Session
) -> None:
    other = await start_server("v1")
    assert (await _post(http, vs, FID, b"stays on v0"))[0] == 201
    master.locations[1] = [vs.url()]

    def deletes_at_v0() -> int:  # from clients, or forwarded by a peer
        return vs.stats.delete.count + vs.stats.replicate.count

    lookups, deletes = master.lookups, deletes_at_v0()
    async with http.delete(_url(other, f"/{FID}")) as resp:
        assert resp.status == 404
        assert resp.headers["Content-Type"] == "application/json"
        assert await resp.read() == b'{"size":0}'
    assert (master.lookups, deletes_at_v0()) == (lookups, deletes)  # nobody asked, nothing sent
    assert (await _get(http, _url(vs, f"/{FID}")))[2] == b"stays on v0"


async def test_delete_on_a_read_only_volume_is_500_and_keeps_the_blob(
    vs: VolumeServer, http: Session
) -> None:
    assert (await _post(http, vs, FID, b"read-only now"))[0] == 201
    async with http.post(_url(vs, "/admin/volume/readonly"), params={"volume": "1"}) as resp:
        assert resp.status == 200
    async with http.delete(_url(vs, f"/{FID}")) as resp:
        assert resp.status == 500
        assert "read-only" in (await resp.json())["error"]
    status, _, body = await _get(http, _url(vs, f"/{FID}"))
    assert (status, body) == (200, b"read-only now")
    async with http.post(_url(vs, "/admin/volume/writable"), params={"volume": "1"}) as resp:
        assert resp.status == 200
    async with http.delete(_url(vs, f"/{FID}")) as resp:
        assert resp.status == 202  # the mark, and nothing else, refused it


# ------------------------------------------------------------------ §3.7 health while stopping


async def test_health_probes_answer_503_while_the_server_stops(
    start_server: Starter, http: Session
) -> None:
    server = await start_server(pre_stop_seconds=0.5)
    for probe in ("/healthz", "/readyz"):
        assert (await _get(http, _url(server, probe)))[0] == 200, probe
    stopping = asyncio.create_task(server.stop())
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2
        while not server.stopping:
            assert loop.time() < deadline
            await asyncio.sleep(0.01)
        # -preStopSeconds: still listening, but telling load balancers to go away.
        for probe in ("/healthz", "/readyz"):
            status, _, _ = await _get(http, _url(server, probe), headers={"Connection": "close"})
            assert status == 503, probe
        assert not stopping.done()
    finally:
        await stopping


# ------------------------------------------------------------------ §3.9 proxied reads


async def test_proxied_read_of_a_volume_held_elsewhere_is_404_without_a_second_hop(
    vs: VolumeServer, start_server: Starter, master: FakeMaster, http: Session
) -> None:
    other = await start_server("v1")
    assert (await _post(http, vs, FID, b"held by v0"))[0] == 201
    master.locations[1] = [vs.url()]
    lookups, reads = master.lookups, vs.stats.read.count
    status, _, body = await _get(http, _url(other, f"/{FID}?proxied=true"))
    assert (status, json.loads(body)) == (404, {"error": f"/{FID} not found"})
    assert (master.lookups, vs.stats.read.count) == (lookups, reads)
    # Without the mark the same read is proxied: the 404 above came from proxied=true.
    assert (await _get(http, _url(other, f"/{FID}")))[2] == b"held by v0"
    assert vs.stats.read.count == reads + 1


async def test_read_whose_lookup_lists_only_this_server_is_404(
    start_server: Starter, master: FakeMaster, http: Session
) -> None:
    server = await start_server()
    master.locations[1] = [server.url()]  # the master believes it, the disk does not
    lookups = master.lookups
    status, _, body = await _get(http, _url(server, f"/{FID}"))
    assert (status, json.loads(body)) == (404, {"error": f"/{FID} not found"})
    assert master.lookups == lookups + 1


# ------------------------------------------------------------------ §6.2 step 1: copy count


async def test_write_short_of_copies_is_500_and_stores_nothing(
    vs: VolumeServer, master: FakeMaster, http: Session
) -> None:
    await _allocate(http, vs, 2, replication="001")
    master.locations[2] = [vs.url()]  # the second copy is gone
    volume = vs.store.get(2)
    assert volume is not None
    size = volume.size
    status, result = await _post(http, vs, "2,01637037d6", b"refused")
    assert status == 500
    assert "less than volume replication copy count" in result["error"]
    assert volume.lookup(KEY) is None and volume.size == size
    assert (await _get(http, _url(vs, "/2,01637037d6")))[0] == 404


async def test_write_to_a_single_copy_volume_asks_the_master_nothing(
    vs: VolumeServer, master: FakeMaster, http: Session
) -> None:
    lookups = master.lookups
    assert (await _post(http, vs, FID, b"one copy"))[0] == 201
    async with http.put(
        _url(vs, "/1,02637037d6"), data=io.BytesIO(b"x" * (2 << 20)), params={"fsync": "true"}
    ) as resp:  # the coroutine path, spooled
        assert resp.status == 201
    assert master.lookups == lookups


# ------------------------------------------------------------------ §6.2 step 3: what replicas get


async def test_replicated_write_keeps_every_field_on_the_replica(
    pair: tuple[VolumeServer, VolumeServer], http: Session
) -> None:
    primary, replica = pair
    text = b"replicated text, stored gzipped as sent\n" * 40
    packed = gzip.compress(text)
    headers = {
        "Content-Type": "text/plain",
        "Content-Encoding": "gzip",
        "Content-Disposition": 'attachment; filename="notes.txt"',
        "Content-MD5": _md5(text),
        "Seaweed-Owner": "alice",
        "Seaweed-Camel-Case": "Xy",
    }
    async with http.put(
        _url(primary, "/2,01637037d6"),
        data=packed,
        headers=headers,
        params={"ts": "1700000000", "ttl": "3m"},
    ) as resp:
        assert resp.status == 201, await resp.text()
        assert await resp.json() == {
            "name": "notes.txt",
            "size": len(text),
            "eTag": f"{crc32c(packed):08x}",
            "mime": "text/plain",
            "contentMd5": _md5(text),
        }
        assert resp.headers["Content-MD5"] == _md5(text)

    compared = (
        "Content-Type",
        "Content-Disposition",
        "Last-Modified",
        "Owner",
        "Camel-Case",
        "ETag",
        "Content-Encoding",
        "Content-Length",
    )
    answers = []
    for server in (primary, replica):
        status, got, body = await _get(
            http, _url(server, "/2,01637037d6"), headers={"Accept-Encoding": "gzip"}
        )
        assert (status, body) == (200, packed)
        answers.append({name: got.get(name) for name in compared})
    assert answers[1] == answers[0]
    assert answers[1] == {
        "Content-Type": "text/plain",
        "Content-Disposition": "inline; filename=notes.txt",
        "Last-Modified": "Tue, 14 Nov 2023 22:13:20 GMT",
        "Owner": "alice",
        "Camel-Case": "Xy",
        "ETag": f'"{crc32c(packed):08x}"',
        "Content-Encoding": "gzip",
        "Content-Length": str(len(packed)),
    }
    status, _, body = await _get(
        http, _url(replica, "/2,01637037d6"), headers={"Accept-Encoding": "identity"}
    )
    assert (status, body) == (200, text)
    needle = _stored(replica, 2, KEY)
    assert (str(needle.ttl), needle.last_modified, bool(needle.flags & FLAG_GZIP)) == (
        "3m",
        1_700_000_000,
        True,
    )
    assert (needle.name, needle.mime) == (b"notes.txt", b"text/plain")


async def test_replicated_write_forwards_the_content_md5(
    pair: tuple[VolumeServer, VolumeServer], http: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Content-MD5 is not stored, so the replica's copy cannot show it: the forward is watched.
    primary, replica = pair
    sent: list[tuple[str, str, bytes]] = []
    forward = primary.replicator._send

    async def watched(
        method: str, url: str, body: bytes, headers: Mapping[str, str], ok: frozenset[int]
    ) -> str:
        sent.append((method, url, body))
        return await forward(method, url, body, headers, ok)

    monkeypatch.setattr(primary.replicator, "_send", watched)
    data = b"digest travels with the copy"
    async with http.put(
        _url(primary, "/2,01637037d6"), data=data, headers={"Content-MD5": _md5(data)}
    ) as resp:
        assert resp.status == 201
    [(method, url, body)] = sent
    assert method == "POST" and url.startswith(f"http://{replica.url()}/2,01637037d6?")
    assert "type=replicate" in url
    assert f"\r\nContent-MD5: {_md5(data)}\r\n".encode() in body
    assert (await _get(http, _url(replica, "/2,01637037d6")))[2] == data


async def test_replicated_chunk_manifest_stays_a_manifest_on_the_replica(
    pair: tuple[VolumeServer, VolumeServer], http: Session
) -> None:
    primary, replica = pair
    chunk = b"the only chunk of the file"
    assert (await _post(http, primary, "2,0a00000001", chunk))[0] == 201
    manifest = {
        "name": "whole.bin",
        "mime": "application/octet-stream",
        "size": len(chunk),
        "chunks": [{"fid": "2,0a00000001", "offset": 0, "size": len(chunk)}],
    }
    async with http.put(
        _url(primary, "/2,0c00000001"),
        params={"cm": "true"},
        data=json.dumps(manifest).encode(),
        headers={"Content-Type": "application/json"},
    ) as resp:
        assert resp.status == 201
    status, headers, body = await _get(http, _url(replica, "/2,0c00000001"))
    assert (status, body, headers["X-File-Store"]) == (200, chunk, "chunked")
    assert headers["Content-Disposition"] == "inline; filename=whole.bin"
    assert _stored(replica, 2, 0x0C, 0x00000001).flags & FLAG_CHUNK_MANIFEST


# ------------------------------------------------------------------ §6.3 replicated deletes


async def test_replicated_delete_succeeds_when_the_replica_never_had_the_blob(
    pair: tuple[VolumeServer, VolumeServer], http: Session
) -> None:
    primary, replica = pair
    fid = "2,01637037d6"
    # type=replicate stores it on the primary alone, as if its forward had been lost.
    assert (await _post(http, primary, fid, b"only on v0", params={"type": "replicate"}))[0] == 201
    assert (await _get(http, _url(replica, f"/{fid}")))[0] == 404
    replica_deletes = replica.stats.replicate.count  # deletes forwarded by a peer
    async with http.delete(_url(primary, f"/{fid}")) as resp:
        assert resp.status == 202
        assert set(await resp.json()) == {"size"}
    assert replica.stats.replicate.count == replica_deletes + 1  # asked, answered 404, accepted
    assert (await _get(http, _url(primary, f"/{fid}")))[0] == 404
