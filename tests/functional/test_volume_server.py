"""The volume server on a real loopback socket, driven with aiohttp: reads, writes, deletes,
conditionals, ranges, compression, chunk manifests, read modes, admin and status endpoints.

A fake master (aiohttp, in-process) records heartbeats and answers lookups from a table the
tests fill in.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import io
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image

import seaweed_py.storage.volume as storage_volume
from seaweed_py.formats.crc import crc32c
from seaweed_py.volume import VolumeServer
from tests import volume_harness
from tests.fake_master import FakeMaster
from tests.servers import free_port

Session = volume_harness.Session
Starter = volume_harness.Starter
Clock = volume_harness.Clock
master = volume_harness.master
start_server = volume_harness.start_server
http = volume_harness.http
_url = volume_harness.url
_allocate = volume_harness.allocate
_get = volume_harness.get


@pytest.fixture
async def vs(start_server: Starter, http: Session) -> VolumeServer:
    server = await start_server()
    await _allocate(http, server, 1)
    return server


def _form(
    data: bytes, filename: str = "f.bin", content_type: str | None = None, field: str = "file"
) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field(field, io.BytesIO(data), filename=filename, content_type=content_type)
    return form


async def _post(
    http: Session, server: VolumeServer, fid: str, data: bytes, filename: str = "f.bin", **kw: Any
) -> tuple[int, Mapping[str, str], Any]:
    async with http.post(
        _url(server, f"/{fid}"), data=_form(data, filename, kw.pop("content_type", None)), **kw
    ) as resp:
        body = await resp.read()
        return resp.status, resp.headers.copy(), json.loads(body) if body else None


FID = "1,01637037d6"


# ------------------------------------------------------------------ round trip


async def test_round_trip_write_read_conditional_range_head_delete(
    vs: VolumeServer, http: Session
) -> None:
    data = b"hello-volume-server-integration"
    status, headers, result = await _post(http, vs, FID, data, "hello.bin")
    assert status == 201
    assert result == {"name": "hello.bin", "size": len(data), "eTag": result["eTag"]}
    assert headers["ETag"] == f'"{result["eTag"]}"'

    status, headers, body = await _get(http, _url(vs, f"/{FID}"))
    assert (status, body) == (200, data)
    etag = headers["ETag"]
    assert headers["Accept-Ranges"] == "bytes"
    assert headers["Content-Disposition"] == "inline; filename=hello.bin"
    assert headers["Server"].startswith("SeaweedFS Volume")
    assert headers["Last-Modified"].endswith("GMT")

    status, _, body = await _get(http, _url(vs, f"/{FID}"), headers={"If-None-Match": etag})
    assert (status, body) == (304, b"")
    status, headers, body = await _get(http, _url(vs, f"/{FID}"), headers={"Range": "bytes=0-4"})
    assert (status, body, headers["Content-Range"]) == (206, b"hello", "bytes 0-4/31")
    status, headers, _ = await _get(
        http, _url(vs, f"/{FID}"), headers={"Range": "bytes=9999-10000"}
    )
    assert (status, headers["Content-Range"]) == (416, "bytes */31")

    async with http.head(_url(vs, f"/{FID}")) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Length"] == str(len(data))
        assert await resp.read() == b""

    async with http.delete(_url(vs, f"/{FID}")) as resp:
        assert resp.status == 202
        assert set(await resp.json()) == {"size"}
    status, headers, body = await _get(http, _url(vs, f"/{FID}"))
    assert status == 404 and "error" in json.loads(body)
    async with http.delete(_url(vs, f"/{FID}")) as resp:
        assert (resp.status, await resp.json()) == (404, {"size": 0})


async def test_every_url_form_reads_the_same_blob(vs: VolumeServer, http: Session) -> None:
    await _post(http, vs, FID, b"formed", "r.bin")
    for path in (
        "/1,01637037d6",
        "/1,01637037d6.jpg",
        "/1/01637037d6",
        "/1/01637037d6.bin",
        "/1/01637037d6/other.txt",
    ):
        status, headers, body = await _get(http, _url(vs, path))
        assert (status, body) == (200, b"formed"), path
    _, headers, _ = await _get(http, _url(vs, "/1/01637037d6/other.txt"))
    assert headers["Content-Disposition"] == "inline; filename=other.txt"
    assert headers["Content-Type"].startswith("text/plain")


async def test_batch_suffix_addresses_the_next_key(vs: VolumeServer, http: Session) -> None:
    await _post(http, vs, "1,01637037d6_2", b"third")
    assert (await _get(http, _url(vs, "/1,03637037d6")))[2] == b"third"


async def test_malformed_paths_and_methods_are_400(vs: VolumeServer, http: Session) -> None:
    for path in ("/invalid,needle", "/not-a-vid/not-a-fid", "/1,ffffffffffffffff00000000_1"):
        assert (await _get(http, _url(vs, path)))[0] == 400, path
    async with http.post(_url(vs, "/1/01637037d6"), data=_form(b"x")) as resp:
        assert resp.status == 400  # quirk A10: uploads need the comma form
    async with http.patch(_url(vs, f"/{FID}")) as resp:
        assert resp.status == 400
        assert "PATCH" in (await resp.json())["error"]


# ------------------------------------------------------------------ writes


async def test_identical_reupload_is_204_and_appends_nothing(
    vs: VolumeServer, http: Session
) -> None:
    assert (await _post(http, vs, FID, b"same bytes"))[0] == 201
    size_before = _volume_size(vs, 1)
    status, headers, body = await _post(http, vs, FID, b"same bytes")
    assert (status, body) == (204, None)
    assert "ETag" in headers
    assert _volume_size(vs, 1) == size_before


def _volume_size(server: VolumeServer, vid: int) -> int:
    [info] = [v for v in server.store.volume_infos() if v.id == vid]
    return info.size


async def test_wrong_cookie_write_and_delete_change_nothing(
    vs: VolumeServer, http: Session
) -> None:
    await _post(http, vs, FID, b"the original")
    status, _, result = await _post(http, vs, "1,01637037d7", b"impostor")
    assert status >= 400 and isinstance(result["error"], str)
    async with http.delete(_url(vs, "/1,01637037d7")) as resp:
        assert resp.status == 400
    assert (await _get(http, _url(vs, f"/{FID}")))[2] == b"the original"


async def test_raw_put_named_after_the_fid_and_by_content_disposition(
    vs: VolumeServer, http: Session
) -> None:
    data = b'{"a":1}'
    async with http.put(
        _url(vs, f"/{FID}"), data=data, headers={"Content-Type": "application/json"}
    ) as resp:
        assert await resp.json() == {
            "name": FID,
            "size": 7,
            "eTag": f"{crc32c(data):08x}",
            "mime": "application/json",
        }
    _, headers, _ = await _get(http, _url(vs, f"/{FID}"))
    assert headers["Content-Disposition"] == f'inline; filename="{FID}"'
    async with http.put(
        _url(vs, "/1,02637037d6"),
        data=b"png-ish",
        headers={
            "Content-Disposition": 'attachment; filename="pic.png"',
            "Content-Type": "image/png",
        },
    ) as resp:
        assert (await resp.json())["name"] == "pic.png"
    _, headers, _ = await _get(http, _url(vs, "/1,02637037d6"))
    assert headers["Content-Type"] == "image/png"


async def test_ts_sets_last_modified_and_if_modified_since_is_304(
    vs: VolumeServer, http: Session
) -> None:
    await _post(http, vs, FID, b"dated", params={"ts": "1700000000"})
    _, headers, _ = await _get(http, _url(vs, f"/{FID}"))
    assert headers["Last-Modified"] == "Tue, 14 Nov 2023 22:13:20 GMT"
    status, _, _ = await _get(
        http,
        _url(vs, f"/{FID}"),
        headers={"If-Modified-Since": "Tue, 14 Nov 2023 22:13:20 GMT", "If-None-Match": '"nope"'},
    )
    assert status == 304  # quirk A8
    status, _, _ = await _get(
        http, _url(vs, f"/{FID}"), headers={"If-Modified-Since": "Tue, 14 Nov 2023 22:13:19 GMT"}
    )
    assert status == 200


async def test_pairs_come_back_as_headers(vs: VolumeServer, http: Session) -> None:
    await _post(
        http, vs, FID, b"paired", headers={"Seaweed-Foo": "bar", "Seaweed-Camel-Case": "Xy"}
    )
    _, headers, _ = await _get(http, _url(vs, f"/{FID}"))
    assert (headers["Foo"], headers["Camel-Case"]) == ("bar", "Xy")


async def test_upload_over_the_size_limit_is_413(start_server: Starter, http: Session) -> None:
    server = await start_server(file_size_limit=1024)
    await _allocate(http, server, 1)
    async with http.put(_url(server, f"/{FID}"), data=b"x" * 200_000) as resp:
        assert resp.status == 413
    async with http.put(_url(server, f"/{FID}"), data=b"x" * 2000) as resp:
        assert resp.status == 413
    assert (await _get(http, _url(server, f"/{FID}")))[0] == 404


async def test_large_blob_round_trips_with_ranges(vs: VolumeServer, http: Session) -> None:
    data = bytes(range(256)) * 12_000  # ~3 MiB: streamed both ways
    status, _, result = await _post(http, vs, FID, data, "big.bin")
    assert status == 201 and result["size"] == len(data)
    status, headers, body = await _get(http, _url(vs, f"/{FID}"))
    assert status == 200 and body == data and headers["Content-Length"] == str(len(data))
    status, headers, middle = await _get(
        http, _url(vs, f"/{FID}"), headers={"Range": "bytes=2000000-2000099"}
    )
    assert (status, middle) == (206, data[2_000_000:2_000_100])
    assert headers["Content-Range"] == f"bytes 2000000-2000099/{len(data)}"
    async with http.head(_url(vs, f"/{FID}")) as resp:
        assert resp.headers["Content-Length"] == str(len(data)) and await resp.read() == b""
    status, _, body = await _get(http, _url(vs, f"/{FID}"), headers={"Range": "bytes=0-1,-2"})
    assert status == 206 and data[:2] in body and data[-2:] in body


# ------------------------------------------------------------------ ranges and compression


async def test_multi_range_and_oversized_ranges(vs: VolumeServer, http: Session) -> None:
    await _post(http, vs, FID, b"0123456789abcdef")
    status, headers, body = await _get(
        http, _url(vs, f"/{FID}"), headers={"Range": "bytes=0-1,4-5"}
    )
    assert status == 206
    assert headers["Content-Type"].startswith("multipart/byteranges; boundary=")
    assert b"bytes 0-1/16" in body and b"\r\n\r\n01\r\n" in body and b"\r\n\r\n45\r\n" in body
    # Quirk A7: ranges adding up past the blob are ignored, and the whole blob is sent.
    status, headers, body = await _get(
        http, _url(vs, f"/{FID}"), headers={"Range": "bytes=0-10,5-15"}
    )
    assert (status, body) == (200, b"0123456789abcdef")
    assert "Content-Range" not in headers


async def test_gzip_upload_is_served_compressed_or_plain(vs: VolumeServer, http: Session) -> None:
    plain = b"compress me please " * 50
    packed = gzip.compress(plain)
    async with http.put(
        _url(vs, f"/{FID}"),
        data=packed,
        headers={"Content-Type": "text/plain", "Content-Encoding": "gzip"},
    ) as resp:
        assert resp.status == 201
        assert (await resp.json())["size"] == len(plain)
    status, headers, body = await _get(
        http, _url(vs, f"/{FID}"), headers={"Accept-Encoding": "gzip"}
    )
    assert status == 200
    assert headers["Content-Encoding"] == "gzip" and gzip.decompress(body) == plain
    status, headers, body = await _get(
        http, _url(vs, f"/{FID}"), headers={"Accept-Encoding": "identity"}
    )
    assert status == 200
    assert "Content-Encoding" not in headers and body == plain
    assert headers["Content-Type"] == "text/plain"


async def test_text_uploads_are_stored_gzipped(vs: VolumeServer, http: Session) -> None:
    text = b"the quick brown fox jumps over the lazy dog\n" * 50
    await _post(http, vs, FID, text, "t.txt", content_type="text/plain")
    _, headers, body = await _get(http, _url(vs, f"/{FID}"), headers={"Accept-Encoding": "gzip"})
    assert headers["Content-Encoding"] == "gzip" and len(body) < len(text)
    assert gzip.decompress(body) == text


# ------------------------------------------------------------------ chunk manifests


async def test_chunk_manifest_is_expanded_and_deleted_with_its_chunks(
    vs: VolumeServer, http: Session
) -> None:
    await _post(http, vs, "1,0a00000001", b"first-chunk|")
    await _post(http, vs, "1,0b00000001", b"second-chunk")
    manifest = {
        "name": "whole.bin",
        "mime": "application/octet-stream",
        "size": 24,
        "chunks": [
            {"fid": "1,0b00000001", "offset": 12, "size": 12},
            {"fid": "1,0a00000001", "offset": 0, "size": 12},
        ],
    }
    async with http.post(
        _url(vs, "/1,0c00000001"),
        params={"cm": "true"},
        data=_form(json.dumps(manifest).encode(), "m.json", "application/json"),
    ) as resp:
        assert resp.status == 201
    status, headers, body = await _get(http, _url(vs, "/1,0c00000001"))
    assert (status, body) == (200, b"first-chunk|second-chunk")
    assert headers["X-File-Store"] == "chunked"
    assert headers["Content-Disposition"] == "inline; filename=whole.bin"
    _, _, part = await _get(http, _url(vs, "/1,0c00000001"), headers={"Range": "bytes=6-17"})
    assert part == b"chunk|second"
    # Quirk A7: ranges adding up past the file are ignored here too.
    status, _, body = await _get(
        http, _url(vs, "/1,0c00000001"), headers={"Range": "bytes=0-15,8-23"}
    )
    assert (status, body) == (200, b"first-chunk|second-chunk")
    _, headers, raw = await _get(
        http, _url(vs, "/1,0c00000001?cm=false"), headers={"Accept-Encoding": "identity"}
    )
    assert json.loads(raw)["name"] == "whole.bin" and "X-File-Store" not in headers
    async with http.delete(_url(vs, "/1,0c00000001")) as resp:
        assert resp.status == 202
    for fid in ("1,0a00000001", "1,0b00000001", "1,0c00000001"):
        assert (await _get(http, _url(vs, f"/{fid}")))[0] == 404, fid


# ------------------------------------------------------------------ read modes


@pytest.mark.parametrize("mode", ["proxy", "redirect", "local"])
async def test_reads_of_volumes_held_elsewhere_follow_read_mode(
    vs: VolumeServer, start_server: Starter, master: FakeMaster, http: Session, mode: str
) -> None:
    other = await start_server("v1", read_mode=mode)
    await _post(http, vs, FID, b"held by v0", "x.bin")
    master.locations[1] = [vs.url()]
    async with http.get(_url(other, "/1/01637037d6/y.bin?dl=1"), allow_redirects=False) as resp:
        if mode == "proxy":
            assert (resp.status, await resp.read()) == (200, b"held by v0")
            assert resp.headers["Content-Disposition"] == "attachment; filename=y.bin"
        elif mode == "redirect":
            assert resp.status == 301
            location = resp.headers["Location"]  # quirk A18 fixed: name and query kept
            assert location == f"http://{vs.url()}/1/01637037d6/y.bin?dl=1&proxied=true"
            assert (await _get(http, location))[2] == b"held by v0"
        else:
            assert resp.status == 404
    if mode == "proxy":
        async with http.head(_url(other, f"/{FID}")) as resp:  # quirk A19 fixed: HEAD as HEAD
            assert (resp.status, resp.headers["Content-Length"]) == (200, "10")
            assert await resp.read() == b""


async def test_write_to_a_server_without_the_volume_is_forwarded(
    vs: VolumeServer, start_server: Starter, master: FakeMaster, http: Session
) -> None:
    other = await start_server("v1")
    master.locations[1] = [vs.url()]
    status, _, _ = await _post(http, other, FID, b"forwarded")  # quirk A28
    assert status == 201
    assert (await _get(http, _url(vs, f"/{FID}")))[2] == b"forwarded"
    large = os.urandom(3 << 20)  # spooled, and forwarded from the spool file
    async with http.put(_url(other, "/1,03637037d6"), data=io.BytesIO(large)) as resp:
        assert resp.status == 201
        assert (await resp.json())["eTag"] == f"{crc32c(large):08x}"
    assert (await _get(http, _url(vs, "/1,03637037d6")))[2] == large
    async with http.post(
        _url(other, "/1,02637037d6"), params={"type": "replicate"}, data=_form(b"x")
    ) as resp:
        assert resp.status == 404  # quirk A17 fixed: not acknowledged unstored


# ------------------------------------------------------------------ TTL and images


async def test_needle_ttl_expires_reads(start_server: Starter, http: Session) -> None:
    clock = Clock()
    server = await start_server(clock=clock)
    await _allocate(http, server, 1)
    await _post(http, server, FID, b"short-lived", params={"ttl": "1m"})
    assert (await _get(http, _url(server, f"/{FID}")))[0] == 200
    clock.now += 59
    assert (await _get(http, _url(server, f"/{FID}")))[0] == 200
    clock.now += 2  # one minute after the append
    assert (await _get(http, _url(server, f"/{FID}")))[0] == 404


async def test_image_resize_on_read(vs: VolumeServer, http: Session) -> None:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (1, 2, 3)).save(out, "PNG")
    await _post(http, vs, FID, out.getvalue(), "p.png")
    _, headers, body = await _get(http, _url(vs, f"/{FID}?width=20&height=15&mode=fit"))
    assert Image.open(io.BytesIO(body)).size == (20, 15)
    assert headers["Content-Length"] == str(len(body))


# ------------------------------------------------------------------ admin, status, CORS


async def test_status_health_metrics_and_ui(vs: VolumeServer, http: Session) -> None:
    await _post(http, vs, FID, b"counted")
    status, headers, body = await _get(http, _url(vs, "/status"))
    assert status == 200 and headers["Content-Type"] == "application/json"
    doc = json.loads(body)
    [disk] = doc["DiskStatuses"]
    assert Path(disk["dir"]).is_absolute() and disk["all"] > 0
    [volume] = doc["Volumes"]
    assert (volume["Id"], volume["ReplicaPlacement"], volume["FileCount"]) == (1, {}, 1)
    assert (await _get(http, _url(vs, "/status?pretty=y")))[2].count(b"\n") > 5
    assert (await _get(http, _url(vs, "/healthz")))[0] == 200
    metrics = (await _get(http, _url(vs, "/metrics")))[2]
    assert (
        b'weedpy_volume_request_duration_seconds_count{operation="write",status="2xx"} 1.0'
        in metrics
    )
    status, headers, page = await _get(http, _url(vs, "/ui/index.html"))
    assert status == 200 and headers["Content-Type"].startswith("text/html") and b"<table" in page


async def test_options_and_cors_headers(vs: VolumeServer, http: Session) -> None:
    async with http.options(_url(vs, f"/{FID}")) as resp:
        assert resp.status == 200
        methods = {m.strip() for m in resp.headers["Access-Control-Allow-Methods"].split(",")}
        assert methods == {"PUT", "POST", "GET", "DELETE", "OPTIONS"}
    _, headers, _ = await _get(http, _url(vs, f"/{FID}"), headers={"Origin": "http://x"})
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["Access-Control-Allow-Credentials"] == "true"
    _, headers, _ = await _get(http, _url(vs, f"/{FID}"))
    assert "Access-Control-Allow-Origin" not in headers


async def test_admin_allocate_readonly_delete(vs: VolumeServer, http: Session) -> None:
    async with http.post(_url(vs, "/admin/volume/allocate"), params={"volume": "1"}) as resp:
        assert resp.status == 409
    await _allocate(http, vs, 2, replication="000", collection="pics")
    async with http.get(_url(vs, "/admin/volume/status"), params={"volume": "2"}) as resp:
        assert (await resp.json())["collection"] == "pics"
    async with http.post(_url(vs, "/admin/volume/readonly"), params={"volume": "1"}) as resp:
        assert resp.status == 200
    assert (await _post(http, vs, FID, b"refused"))[0] >= 400
    async with http.post(_url(vs, "/admin/volume/writable"), params={"volume": "1"}) as resp:
        assert resp.status == 200
    assert (await _post(http, vs, FID, b"accepted"))[0] == 201
    async with http.post(_url(vs, "/admin/volume/delete"), params={"volume": "1"}) as resp:
        assert resp.status == 200
    assert (await _get(http, _url(vs, f"/{FID}")))[0] == 404
    async with http.post(
        _url(vs, "/admin/collection/delete"), params={"collection": "pics"}
    ) as resp:
        assert resp.status == 200
    assert vs.store.volume_infos() == []


async def test_delete_short_of_copies_refuses_and_keeps_the_blob(
    vs: VolumeServer, master: FakeMaster, http: Session
) -> None:
    # A 001 volume the master knows on this server alone: the delete cannot reach the second
    # copy, so it is refused before the local tombstone (the reference checks first too).
    await _allocate(http, vs, 2, replication="001")
    master.locations[2] = [vs.url()]
    fid = "2,01637037d6"
    assert (await _post(http, vs, fid, b"kept", params={"type": "replicate"}))[0] == 201
    async with http.delete(_url(vs, f"/{fid}")) as resp:
        assert resp.status == 500
        assert "less than volume replication copy count" in (await resp.json())["error"]
    assert (await _get(http, _url(vs, f"/{fid}")))[2] == b"kept"
    async with http.delete(_url(vs, f"/{fid}"), params={"type": "replicate"}) as resp:
        assert resp.status == 202  # a replica's own delete asks nobody
    assert (await _get(http, _url(vs, f"/{fid}")))[0] == 404


async def test_admin_allocate_reserves_the_preallocate_bytes(
    vs: VolumeServer, http: Session
) -> None:
    """As the master asks with -volumePreallocate: the space is reserved, the file not grown."""
    await _allocate(http, vs, 3, preallocate=str(4 << 20))
    volume = vs.store.get(3)
    assert volume is not None
    st = os.stat(volume.path(".dat"))
    assert st.st_size == 8 and st.st_blocks * 512 >= 4 << 20


async def test_heartbeats_report_volumes_and_goodbye(
    start_server: Starter, master: FakeMaster, http: Session
) -> None:
    server = await start_server(data_center="dc1", rack="r1")
    await _allocate(http, server, 7)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not any(hb["volumes"] for hb in master.heartbeats):
        assert loop.time() < deadline
        await asyncio.sleep(0.05)
    hb = next(hb for hb in master.heartbeats if hb["volumes"])
    assert (hb["ip"], hb["port"], hb["dataCenter"], hb["rack"]) == (
        "127.0.0.1",
        server.port,
        "dc1",
        "r1",
    )
    assert hb["volumes"][0]["id"] == 7 and hb["maxVolumeCount"] == 8
    assert (await _get(http, _url(server, "/readyz")))[0] == 200
    await server.stop()
    assert master.heartbeats[-1]["hasNoVolumes"] is True


async def test_public_port_serves_reads_only(start_server: Starter, http: Session) -> None:
    public_port = free_port()
    server = await start_server(public_port=public_port)
    await _allocate(http, server, 1)
    await _post(http, server, FID, b"public read")
    public = f"http://127.0.0.1:{public_port}"
    assert (await _get(http, f"{public}/{FID}"))[2] == b"public read"
    async with http.post(f"{public}/{FID}", data=_form(b"overwrite")) as resp:
        assert resp.status == 405  # quirk A9 fixed: not a silent 200
        assert resp.headers["Allow"] == "GET, HEAD, OPTIONS"
    async with http.delete(f"{public}/{FID}") as resp:
        assert resp.status == 405
    async with http.options(f"{public}/{FID}") as resp:
        assert resp.headers["Access-Control-Allow-Methods"] == "GET, OPTIONS"
    assert (await _get(http, _url(server, f"/{FID}")))[2] == b"public read"
    assert server.public_url() == f"127.0.0.1:{public_port}"


async def test_manifest_chunks_on_another_server_are_fetched(
    vs: VolumeServer, start_server: Starter, master: FakeMaster, http: Session
) -> None:
    other = await start_server("v1")
    await _allocate(http, other, 2)
    text = b"remote chunk, compressible text " * 64
    await _post(http, other, "2,0a00000001", text, "c.txt", content_type="text/plain")
    master.locations[2] = [other.url()]
    manifest = {
        "name": "m.txt",
        "size": len(text),
        "chunks": [{"fid": "2,0a00000001", "offset": 0, "size": len(text)}],
    }
    async with http.put(
        _url(vs, "/1,0c00000001"),
        params={"cm": "true"},
        data=json.dumps(manifest).encode(),
        headers={"Content-Type": "application/json"},
    ) as resp:
        assert resp.status == 201
    status, headers, body = await _get(
        http, _url(vs, "/1,0c00000001"), headers={"Range": "bytes=7-11"}
    )
    assert (status, body) == (206, text[7:12])
    assert headers["X-File-Store"] == "chunked"
    assert (await _get(http, _url(vs, "/1,0c00000001")))[2] == text


async def test_large_bodies_are_spooled_with_md5_gzip_and_later_file_parts(
    vs: VolumeServer, http: Session
) -> None:
    data = bytes(range(256)) * 8_000  # 2 MB: above the streaming threshold
    good_md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
    async with http.put(
        _url(vs, f"/{FID}"),
        data=io.BytesIO(data),
        headers={"Content-MD5": "AAAAAAAAAAAAAAAAAAAAAA=="},
    ) as resp:
        assert resp.status == 400 and "Content-MD5" in (await resp.json())["error"]
    assert (await _get(http, _url(vs, f"/{FID}")))[0] == 404
    async with http.put(
        _url(vs, f"/{FID}"), data=io.BytesIO(data), headers={"Content-MD5": good_md5}
    ) as resp:
        assert resp.status == 201
        assert (await resp.json())["eTag"] == f"{crc32c(data):08x}"
    assert (await _get(http, _url(vs, f"/{FID}")))[2] == data
    async with http.put(
        _url(vs, f"/{FID}"), data=io.BytesIO(data), headers={"Content-MD5": good_md5}
    ) as resp:
        assert resp.status == 204  # identical re-upload, also when spooled

    text = b"".join(os.urandom(24).hex().encode() + b"\n" for _ in range(60_000))
    packed = gzip.compress(text)
    assert len(packed) > 1 << 20
    async with http.put(
        _url(vs, "/1,02637037d6"),
        data=io.BytesIO(packed),
        headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"},
    ) as resp:
        assert (await resp.json())["size"] == len(text)
    assert (await _get(http, _url(vs, "/1,02637037d6"), headers={"Accept-Encoding": "identity"}))[
        2
    ] == text

    form = aiohttp.FormData()
    form.add_field("note", "a text field first")
    form.add_field("file", io.BytesIO(data), filename="late.bin")
    async with http.post(_url(vs, "/1,03637037d6"), data=form) as resp:
        assert (await resp.json())["name"] == "late.bin"
    assert (await _get(http, _url(vs, "/1,03637037d6")))[2] == data


@pytest.mark.parametrize("fsync_mode", ["none", "always"])
async def test_writes_in_every_fsync_mode(
    start_server: Starter, http: Session, fsync_mode: str
) -> None:
    server = await start_server(fsync_mode=fsync_mode)
    await _allocate(http, server, 1)
    assert (await _post(http, server, FID, b"durable enough"))[0] == 201
    assert (await _post(http, server, FID, b"durable enough"))[0] == 204
    assert (await _get(http, _url(server, f"/{FID}")))[2] == b"durable enough"


async def test_status_size_counts_needle_bodies_not_the_dat(
    vs: VolumeServer, http: Session
) -> None:
    # As the reference: /status's Size sums the body sizes of every put (deleted ones too);
    # heartbeats carry the .dat length, which the master compares with the size limit.
    for fid in (FID, "1,02637037d6"):
        assert (await _post(http, vs, fid, b"x" * 100, "b"))[0] == 201
    async with http.delete(_url(vs, "/1,02637037d6")) as resp:
        body_size = (await resp.json())["size"]
    async with http.get(_url(vs, "/status")) as resp:
        [volume] = [v for v in (await resp.json())["Volumes"] if v["Id"] == 1]
    assert (volume["Size"], volume["DeletedByteCount"]) == (2 * body_size, body_size)
    stored = vs.store.get(1)
    assert stored is not None and stored.size > 2 * body_size


async def test_readiness_does_not_depend_on_the_master(
    vs: VolumeServer, master: FakeMaster, http: Session
) -> None:
    await _post(http, vs, FID, b"still served")
    await master.stop()
    vs.link.poke()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while vs.link.heartbeating:
        assert loop.time() < deadline
        await asyncio.sleep(0.05)
    assert (await _get(http, _url(vs, "/readyz")))[0] == 200
    assert (await _get(http, _url(vs, "/healthz")))[0] == 200
    assert (await _get(http, _url(vs, f"/{FID}")))[2] == b"still served"


async def test_fsync_query_syncs_on_a_page_cache_server_and_its_replica(
    start_server: Starter, master: FakeMaster, http: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    # -fsync=none acknowledges from the page cache; a write with fsync=true must not be, and
    # the replica gets the request forwarded (spec §6.4).
    synced: list[str] = []
    real_sync = storage_volume.sync_file

    def recording_sync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_sync(fd)

    monkeypatch.setattr(storage_volume, "sync_file", recording_sync)
    primary = await start_server("v0", fsync_mode="none")
    replica = await start_server("v1", fsync_mode="none")
    for server in (primary, replica):
        await _allocate(http, server, 2, replication="001")
    master.locations[2] = [primary.url(), replica.url()]
    assert (await _post(http, primary, "2,01637037d6", b"page cache"))[0] == 201
    assert synced == []
    status, _, _ = await _post(http, primary, "2,02637037d6", b"on disk", params={"fsync": "true"})
    assert status == 201
    dats = {Path(path).parent.name for path in synced if path.endswith("/2.dat")}
    assert dats == {"v0", "v1"}
    assert (await _get(http, _url(replica, "/2,02637037d6")))[2] == b"on disk"


async def test_identical_reupload_to_a_replicated_volume_appends_nowhere(
    start_server: Starter, master: FakeMaster, http: Session
) -> None:
    primary = await start_server("v0")
    replica = await start_server("v1")
    for server in (primary, replica):
        await _allocate(http, server, 2, replication="001")
    master.locations[2] = [primary.url(), replica.url()]
    fid = "2,01637037d6"
    assert (await _post(http, primary, fid, b"same bytes", "same.bin"))[0] == 201

    def dat_sizes() -> list[int]:
        volumes = [server.store.get(2) for server in (primary, replica)]
        return [v.size for v in volumes if v is not None]

    sizes = dat_sizes()
    assert (await _post(http, primary, fid, b"same bytes", "same.bin"))[0] == 204
    assert dat_sizes() == sizes and len(sizes) == 2
    assert (await _get(http, _url(replica, f"/{fid}")))[2] == b"same bytes"


async def test_proxy_read_with_no_reachable_holder_is_503(
    start_server: Starter, master: FakeMaster, http: Session
) -> None:
    server = await start_server()
    master.locations[1] = [f"127.0.0.1:{free_port()}"]  # nobody listens there
    assert (await _get(http, _url(server, f"/{FID}")))[0] == 503
    assert (await _get(http, _url(server, "/9,01637037d6")))[0] == 404  # unknown volume


async def test_volume_whose_files_vanish_leaves_the_heartbeat(
    vs: VolumeServer, master: FakeMaster
) -> None:
    await _until_heartbeat(master, lambda hb: [v["id"] for v in hb["volumes"]] == [1])
    for f in Path(vs.options.dirs[0]).glob("1.*"):
        f.unlink()
    vs.link.poke()
    await _until_heartbeat(master, lambda hb: hb["volumes"] == [])


async def _until_heartbeat(master: FakeMaster, check: Callable[[dict[str, Any]], bool]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not (master.heartbeats and check(master.heartbeats[-1])):
        assert loop.time() < deadline, master.heartbeats[-1:]
        await asyncio.sleep(0.05)


async def test_form_urlencoded_raw_put_stores_the_bytes_sent(
    vs: VolumeServer, http: Session
) -> None:
    # curl --data-binary sends this content type; the reference parses the body as a form and
    # stores an empty needle (docs/compat.md). weedpy keeps the user's bytes.
    data = b"a=1;b=2&c=%zz binary \x00\xff"
    async with http.put(
        _url(vs, f"/{FID}"),
        data=data,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ) as resp:
        assert resp.status == 201
        assert (await resp.json())["size"] == len(data)
    status, _, body = await _get(http, _url(vs, f"/{FID}"))
    assert (status, body) == (200, data)


async def test_repeated_plain_reads_never_outlive_the_stored_bytes(
    vs: VolumeServer, http: Session
) -> None:
    # Plain GETs keep their answer by URL; each one must still match the bytes on disk.
    fid, url = "1,02637037d6", _url(vs, "/1,02637037d6")
    assert (await _post(http, vs, fid, b"first version", "a.txt"))[0] == 201
    for _ in range(2):
        status, headers, body = await _get(http, url)
        assert (status, body) == (200, b"first version")
    first_etag = headers["ETag"]
    assert f"/{fid}" in vs.reader._answers  # the second read was answered from the kept one
    assert (await _post(http, vs, fid, b"second version", "a.txt"))[0] == 201
    for _ in range(2):
        status, headers, body = await _get(http, url)
        assert (status, body) == (200, b"second version") and headers["ETag"] != first_etag
    status, _, body = await _get(http, url, headers={"If-None-Match": headers["ETag"]})
    assert (status, body) == (304, b"")
    status, _, body = await _get(http, url, headers={"Range": "bytes=0-5"})
    assert (status, body) == (206, b"second")

    volume = vs.store.get(1)
    assert volume is not None
    hit = volume.lookup(2)
    assert hit is not None
    at = hit[0] + 16 + 4 + 3  # needle header, DataSize, then a data byte
    with open(volume.path(".dat"), "r+b") as f:
        f.seek(at)
        original = f.read(1)
        f.seek(at)
        f.write(b"X")
    assert (await _get(http, url))[0] == 500
    with open(volume.path(".dat"), "r+b") as f:
        f.seek(at)
        f.write(original)
    assert (await _get(http, url))[2] == b"second version"
    async with http.delete(url) as resp:
        assert resp.status == 202
    assert (await _get(http, url))[0] == 404
