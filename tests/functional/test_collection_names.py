"""Collection names end to end (issue 12, "names are values, not paths"), with a real master and
a real volume server in this process: a dotted collection survives a volume-server restart and
keeps growing, and a traversal attempt on every route that takes a collection is a 400 JSON
error that creates, deletes and changes nothing, inside or outside the data directory.

The volume server's directory is `<tmp>/a/b/vol`, so `../../x` would land in `<tmp>/a`; an
absolute name aims at `<tmp>/abs`. Both are watched.
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from seaweed_py.formats.wire import Heartbeat, VolumeReport
from seaweed_py.master import MasterOptions, MasterServer
from seaweed_py.volume import VolumeServer
from tests import volume_harness

Session = volume_harness.Session
Starter = volume_harness.Starter
master = volume_harness.master  # start_server's fake one; these tests run a real master
start_server = volume_harness.start_server
http = volume_harness.http
until = volume_harness.until


@dataclass
class Cluster:
    master: MasterServer
    volume: VolumeServer
    directory: Path
    start_volume: Callable[[], Awaitable[VolumeServer]]

    def master_url(self, path: str) -> str:
        return f"http://{self.master.address}{path}"

    def volume_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.volume.port}{path}"

    def volume_ids(self) -> tuple[set[int], set[int]]:
        """(volumes the master knows, volumes the server holds)."""
        known = {vid for lay in self.master.topology.layouts.values() for vid in lay.volumes}
        return known, {v.id for v in self.volume.store.volumes()}


@pytest.fixture
async def cluster(tmp_path: Path, start_server: Starter) -> AsyncIterator[Cluster]:
    mdir = tmp_path / "m"
    mdir.mkdir()
    (tmp_path / "a" / "b").mkdir(parents=True)
    real = MasterServer(MasterOptions(ip="127.0.0.1", port=0, mdir=str(mdir), pulse_seconds=0.2))
    await real.start()
    started: list[VolumeServer] = []

    async def start_volume() -> VolumeServer:
        server = await start_server("a/b/vol", masters=(real.address,), max_volumes=(20,))
        started.append(server)
        await until(lambda: _registered(real, server))
        return server

    try:
        yield Cluster(real, await start_volume(), tmp_path / "a" / "b" / "vol", start_volume)
    finally:
        for server in started:  # before the master, so their goodbyes reach it
            if not server.stopping:
                await server.stop()
        await real.stop()


def _registered(master: MasterServer, server: VolumeServer) -> bool:
    return any(n.url == server.url() for n in master.topology.nodes.values())


async def _json(http: Session, method: str, url: str | URL, **kw: Any) -> tuple[int, Any]:
    async with http.request(method, url, allow_redirects=False, **kw) as resp:
        body = await resp.read()
        ctype = resp.headers.get("Content-Type", "")
        return resp.status, json.loads(body) if ctype.startswith("application/json") else body


def _multipart(data: bytes) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO(data), filename="f.bin")
    return form


# ---------------------------------------------------------------- a dotted collection


async def test_a_dotted_collection_survives_a_volume_server_restart_and_keeps_growing(
    cluster: Cluster, http: Session
) -> None:
    status, answer = await _json(
        http, "GET", cluster.master_url("/dir/assign?collection=my.bucket")
    )
    assert status == 200, answer
    fid = answer["fid"]
    status, stored = await _json(
        http, "POST", cluster.volume_url(f"/{fid}"), data=_multipart(b"hi")
    )
    assert status == 201, stored
    vid = int(fid.split(",")[0])
    assert (cluster.directory / f"my.bucket_{vid}.dat").exists()

    await cluster.volume.stop()
    cluster.volume = await cluster.start_volume()  # the same directory, a new process state

    assert cluster.volume.store.load_errors == {}
    async with http.get(cluster.volume_url(f"/{fid}")) as resp:
        assert (resp.status, await resp.read()) == (200, b"hi")
    status, grown = await _json(
        http, "GET", cluster.master_url("/vol/grow?collection=my.bucket&count=1")
    )
    assert (status, grown) == (200, {"count": 1})
    for collection in ("my.other", "my"):
        status, answer = await _json(
            http, "GET", cluster.master_url(f"/dir/assign?collection={collection}")
        )
        assert status == 200, (collection, answer)
        url = cluster.volume_url(f"/{answer['fid']}")
        assert (await _json(http, "POST", url, data=_multipart(collection.encode())))[0] == 201
        async with http.get(url) as resp:
            assert await resp.read() == collection.encode()
    names = {p.name.rsplit("_", 1)[0] for p in cluster.directory.glob("*.dat")}
    assert names == {"my.bucket", "my.other", "my"}
    layouts = {lay.key.collection for lay in cluster.master.topology.layouts.values()}
    assert {"my.bucket", "my.other", "my"} <= layouts


# ---------------------------------------------------------------- traversal on every route


def _bad_names(tmp_path: Path) -> list[str]:
    return [
        "../../x",
        "..",
        "a/b",
        "..\\..\\x",
        str(tmp_path / "abs" / "x"),  # absolute, aimed inside tmp_path
        "my bucket",
        "é",
        "a\x00b",
        "x" * 121,
    ]


def _routes(c: Cluster, name: str) -> list[tuple[str, str | URL, dict[str, Any]]]:
    """(method, url, request kwargs) of every route that takes a collection."""
    q = {"collection": name}
    heartbeat = Heartbeat(
        "127.0.0.1",
        c.volume.port,
        c.volume.url(),
        max_volume_counts={"hdd": 20},
        volumes=(VolumeReport(1, name, size=8),),
    )
    return [
        ("GET", c.master_url("/dir/assign"), {"params": q}),
        ("POST", c.master_url("/dir/assign"), {"data": q}),  # a form body
        ("GET", c.master_url("/vol/grow"), {"params": {**q, "count": "1"}}),
        ("GET", c.master_url("/vol/vacuum"), {"params": {**q, "garbageThreshold": "0"}}),
        ("POST", c.master_url("/submit"), {"params": q, "data": _multipart(b"s")}),
        ("GET", c.master_url("/col/delete"), {"params": q}),
        ("POST", c.master_url("/col/delete"), {"data": q}),
        ("GET", c.master_url("/collection/info"), {"params": q}),
        ("GET", c.master_url("/dir/lookup"), {"params": {"volumeId": "1", **q}}),
        ("GET", c.master_url("/1,01637037d6"), {"params": q}),  # the fid redirect
        ("POST", c.master_url("/1,01637037d6"), {"params": q, "data": b"x"}),
        ("POST", c.master_url("/internal/heartbeat"), {"data": heartbeat.to_json()}),
        ("POST", c.volume_url("/admin/volume/allocate"), {"params": {"volume": "50", **q}}),
        ("POST", c.volume_url("/admin/collection/delete"), {"params": q}),
    ]


def _watched(tmp_path: Path) -> set[str]:
    """Every volume-shaped file anywhere under tmp_path, and beside it."""
    found = {str(p) for p in tmp_path.rglob("*") if p.suffix in (".dat", ".idx", ".vif")}
    found |= {str(p) for p in tmp_path.parent.iterdir() if p.suffix in (".dat", ".idx", ".vif")}
    return found


async def test_traversal_on_every_route_is_400_json_and_touches_nothing(
    cluster: Cluster, http: Session, tmp_path: Path
) -> None:
    (tmp_path / "abs").mkdir()
    status, grown = await _json(http, "GET", cluster.master_url("/vol/grow?collection=x&count=2"))
    assert status == 200, grown
    await until(lambda: len(cluster.volume_ids()[0]) == 2)
    before_files, before_ids = _watched(tmp_path), cluster.volume_ids()
    assert len(before_files) == 6 and before_ids[0] == before_ids[1]

    for name in _bad_names(tmp_path):
        for method, url, kw in _routes(cluster, name):
            status, body = await _json(http, method, url, **kw)
            where = (method, str(url), name[:20])
            assert status == 400, (*where, status, body)
            assert isinstance(body, dict) and set(body) == {"error"}, (*where, body)
            assert "collection" in body["error"], (*where, body)

    assert _watched(tmp_path) == before_files
    assert list((tmp_path / "abs").iterdir()) == []
    assert cluster.volume_ids() == before_ids
    assert {lay.key.collection for lay in cluster.master.topology.layouts.values()} == {"x"}
    assert _registered(cluster.master, cluster.volume)


@pytest.mark.parametrize(
    "query",
    [
        "collection=..%2F..%2Fx",
        "collection=%2E%2E%2F%2E%2E%2Fx",
        "collection=..%5C..%5Cx",
        "collection=a%00b",
        "collection=%C3%A9",
        "collection=%FF",
    ],
)
async def test_percent_encoded_names_are_refused_once_decoded(
    cluster: Cluster, http: Session, query: str
) -> None:
    before = cluster.volume_ids()
    for target in (
        cluster.master_url(f"/dir/assign?{query}"),
        cluster.volume_url(f"/admin/volume/allocate?volume=50&{query}"),
    ):
        method = "GET" if "/dir/" in target else "POST"
        status, body = await _json(http, method, URL(target, encoded=True))
        assert status == 400 and "collection" in body["error"], (target, status, body)
    assert cluster.volume_ids() == before


async def test_a_refused_assign_is_never_served_from_the_assign_cache(
    cluster: Cluster, http: Session
) -> None:
    for _ in range(3):  # the cache keys on the query string: parsing must come first
        status, body = await _json(http, "GET", cluster.master_url("/dir/assign?collection=.."))
        assert status == 400, body
    status, body = await _json(http, "GET", cluster.master_url("/dir/assign?collection=ok.1"))
    assert status == 200, body
    status, body = await _json(http, "GET", cluster.master_url("/dir/assign?collection=ok.1"))
    assert status == 200 and (cluster.directory / f"ok.1_{body['fid'].split(',')[0]}.idx").exists()
