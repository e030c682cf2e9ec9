"""Numbers out of range in request parameters and heartbeats (issue 12): a 4xx with a JSON
error naming the parameter, never a 500, and nothing stored, grown or reserved on the way.

Statuses the reference gives are kept (406 for `preallocate` on the master, 416 for ranges);
elsewhere weedpy answers 400 where the reference quietly reads junk as a default (docs/compat.md).
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.functional import test_junk_on_every_route as junk

Cluster = junk.Cluster
cluster = junk.cluster  # a master and a volume server in-process, a known PNG blob stored

HUGE = "9" * 5000  # past Python's 4300-digit int() limit


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _call(
    http: aiohttp.ClientSession, method: str, url: str, **kw: Any
) -> tuple[int, dict[str, Any]]:
    async with http.request(method, url, allow_redirects=False, **kw) as resp:
        body = await resp.read()
        return resp.status, json.loads(body) if body else {}


def _state(c: Cluster) -> tuple[int, int, list[int]]:
    """What a refused request must leave alone: the next file key, the reserved key mark and
    the volumes the master knows."""
    seq = c.master._sequencer
    return seq.peek, seq.reserved, sorted(c.master.topology.volume_ids())


# ------------------------------------------------------------------ master


ASSIGN_JUNK = [
    ("count", "0"),
    ("count", "-1"),
    ("count", "0x10"),
    ("count", "4294967296"),
    ("count", HUGE),
    ("dataSize", "-1"),
    ("writableVolumeCount", "1e3"),
]


@pytest.mark.parametrize("route", ["/dir/assign", "/submit"])
async def test_assign_numbers_out_of_range_are_400(
    cluster: Cluster, http: aiohttp.ClientSession, route: str
) -> None:
    before = _state(cluster)
    for param, value in ASSIGN_JUNK:
        form = aiohttp.FormData()
        form.add_field("file", b"data", filename="a.txt")
        status, body = await _call(
            http,
            "POST" if route == "/submit" else "GET",
            f"http://{cluster.master.address}{route}",
            params={param: value, "collection": "fresh"},
            data=form if route == "/submit" else None,
        )
        assert status == 400, (param, value, body)
        assert body["error"].startswith(f"invalid {param} "), body
        assert _state(cluster) == before, (param, value)


@pytest.mark.parametrize("route", ["/dir/assign", "/vol/grow?count=1"])
async def test_preallocate_out_of_range_is_406_and_grows_nothing(
    cluster: Cluster, http: aiohttp.ClientSession, route: str
) -> None:
    """406 as the reference answers an unparsable preallocate; past the volume size limit (30
    GiB by default), where the reference takes any int64, negative ones included."""
    before = _state(cluster)
    url = f"http://{cluster.master.address}{route}{'&' if '?' in route else '?'}collection=fresh"
    for value in ["-1", "abc", "9223372036854775808", HUGE, str(31 << 30)]:
        status, body = await _call(http, "GET", f"{url}&preallocate={value}")
        assert status == 406, (value, body)
        assert body["error"].startswith("invalid preallocate"), body
        assert _state(cluster) == before, value


async def test_submit_over_the_volume_servers_limit_is_its_413(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    """The volume server's refusal is the client's (413), not a master failure (500)."""
    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO(b"x" * (2 << 20)), filename="big.bin")
    status, body = await _call(http, "POST", f"http://{cluster.master.address}/submit", data=form)
    assert status == 413, body


BAD_HEARTBEATS = [
    {"ip": "127.0.0.9", "port": 70000},
    {"ip": "127.0.0.9", "port": 8080, "volumes": [{"id": 1 << 32}]},
    {"ip": "127.0.0.9", "port": 8080, "volumes": [{"id": 9, "size": -1}]},
    {"ip": "127.0.0.9", "port": 8080, "maxVolumeCount": "8"},
    {"ip": "127.0.0.9", "port": 8080.0},
    {"ip": "127.0.0.9", "port": 8080, "pulseSeconds": 1e9},
]


async def test_a_heartbeat_out_of_range_is_400_and_registers_nothing(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    nodes = sorted(cluster.master.topology.nodes)
    for heartbeat in BAD_HEARTBEATS:
        status, body = await _call(
            http,
            "POST",
            f"http://{cluster.master.address}/internal/heartbeat",
            data=json.dumps(heartbeat),
        )
        assert status == 400, (heartbeat, body)
        assert body["error"].startswith("bad heartbeat"), body
        assert sorted(cluster.master.topology.nodes) == nodes, heartbeat


async def test_a_needle_key_near_the_top_of_uint64_does_not_exhaust_the_keys(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    """Clients choose the fid of a write, so a volume server may report any uint64 key. The
    reference's sequencer wraps; the persisted mark (2^64 and more) did not fit orjson and every
    heartbeat of that server was a 500. Keys the master never issues cannot collide: ignored."""
    before = cluster.master._sequencer.peek
    vid = cluster.fid.split(",")[0]
    form = aiohttp.FormData()
    form.add_field("file", b"top", filename="top.txt")
    top = f"http://{cluster.volume.url()}/{vid},ffffffffffffffff12345678"
    status, body = await _call(http, "POST", top, data=form)
    assert status == 201, body
    status, body = await _call(
        http,
        "POST",
        f"http://{cluster.master.address}/internal/heartbeat",
        data=json.dumps({"ip": "127.0.0.9", "port": 9, "maxFileKey": (1 << 64) - 1}),
    )
    assert status == 200, body
    status, body = await _call(http, "GET", f"http://{cluster.master.address}/dir/assign")
    assert status == 200, body
    assert cluster.master._sequencer.peek <= before + 2


# ------------------------------------------------------------------ volume server


async def test_allocate_with_a_bad_preallocate_is_400_and_creates_nothing(
    cluster: Cluster, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    url = f"http://{cluster.volume.url()}/admin/volume/allocate"
    for value in ["abc", "-1", "0x10", "1e3", str((32 << 30) + 1), HUGE]:
        params = {"volume": "77", "preallocate": value}
        status, body = await _call(http, "POST", url, params=params)
        assert status == 400, (value, body)
        assert body["error"].startswith("invalid preallocate"), body
        assert cluster.volume.store.get(77) is None
        assert not list((tmp_path / "v").glob("77.*"))


async def test_an_upload_with_a_bad_ts_is_400_and_stores_nothing(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    """The reference stores "now" for an unparsable ts and cuts larger ones to 5 bytes."""
    vid = cluster.fid.split(",")[0]
    url = f"http://{cluster.volume.url()}/{vid},0a12345678"
    for value in ["abc", "-1", "1.5", "\uff11", str(1 << 40), HUGE]:
        status, body = await _call(http, "POST", url, params={"ts": value}, data=b"dated")
        assert status == 400, (value, body)
        assert body["error"].startswith("invalid ts"), body
        assert (await _call(http, "GET", url))[0] == 404


async def test_an_upload_with_a_ttl_out_of_range_is_400(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    vid = cluster.fid.split(",")[0]
    url = f"http://{cluster.volume.url()}/{vid},0b12345678"
    for ttl in ["256y", "99999999999999999999m", HUGE + "d", "-" + HUGE]:
        status, body = await _call(http, "POST", url, params={"ttl": ttl}, data=b"expiring")
        assert status == 400, (ttl, body)
        assert "ttl" in body["error"], body
        assert (await _call(http, "GET", url))[0] == 404


@pytest.mark.parametrize("param", ["width", "height"])
async def test_image_sizes_out_of_range_are_400(
    cluster: Cluster, http: aiohttp.ClientSession, param: str
) -> None:
    url = f"http://{cluster.volume.url()}/{cluster.fid}.png"
    for value in ["abc", "-5", "0x10", HUGE]:
        status, body = await _call(http, "GET", url, params={param: value})
        assert status == 400, (value, body)
        assert body["error"].startswith(f"invalid {param}"), body
    async with http.get(url, params={param: "8"}) as resp:  # a real one still works
        assert resp.status == 200


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (f"/{HUGE},0a12345678", 400),
        ("/1,0a12345678_" + HUGE, 400),
        (f"/admin/volume/status?volume={HUGE}", 400),
    ],
)
async def test_ids_of_thousands_of_digits_are_400(
    cluster: Cluster, http: aiohttp.ClientSession, path: str, expected: int
) -> None:
    status, body = await _call(http, "GET", f"http://{cluster.volume.url()}{path}")
    assert status == expected, body
    assert "error" in body


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f"bytes=0-{HUGE}", 206),  # an end past the blob is clamped, as by the reference
        (f"bytes={HUGE}-", 416),
        (f"bytes=-{HUGE}", 206),
        ("bytes=0x1-2", 416),
    ],
)
async def test_ranges_of_thousands_of_digits(
    cluster: Cluster, http: aiohttp.ClientSession, header: str, expected: int
) -> None:
    async with http.get(
        f"http://{cluster.volume.url()}/{cluster.fid}", headers={"Range": header}
    ) as resp:
        body = await resp.read()
        assert resp.status == expected, body
        if expected == 206:
            assert body == cluster.blob
        else:
            assert "error" in json.loads(body)
