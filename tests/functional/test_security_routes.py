"""With a signing key, nothing that changes state is reachable anonymously (issue 16, reliability
scenario 24). Every route of the master's and the volume server's routers is enumerated from
the `Router` objects, so a new route cannot be forgotten: it either refuses an anonymous call
with 401, or it is listed below as open on purpose, with the reason.

Anonymous attempts name a real volume and a real collection, so a route that let one through
would visibly change the cluster; the test checks at the end that nothing changed. The same
routes answer (not 401) with a cluster token signed with the key.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from seaweed_py.formats.wire import Heartbeat, VolumeReport
from seaweed_py.httpkit.router import Router
from seaweed_py.security.tokens import fid_token
from tests.secure_cluster import KEY, SecureCluster, settings

# Open with a key, as in weed: reads, probes, and the client API that hands out tokens.
MASTER_OPEN = {
    "/dir/assign": "hands out a new fid with its write token (guarded by -whiteList only, as weed)",
    "/dir/lookup": "read-only; hands out the token of a fid the caller names",
    "/submit": "assign + upload in one: the master signs the upload itself, as weed does",
    "/dir/status": "read-only",
    "/vol/status": "read-only",
    "/collection/info": "read-only",
    "/cluster/status": "read-only",
    "/cluster/repair": "read-only: what the repair loop sees and does",
    "/cluster/healthz": "probe",
    "/healthz": "probe",
    "/readyz": "probe",
    "/metrics": "read-only",
    "/": "read-only page",
    "/ui/weedpy.css": "the status pages' stylesheet",
    "/ui/index.html": "read-only page",
}
VOLUME_OPEN = {
    "/status": "read-only",
    "/healthz": "probe",
    "/readyz": "probe",
    "/metrics": "read-only",
    "/ui/weedpy.css": "the status page's stylesheet",
    "/batch/read": "reads, open as GETs are (each fid's read token is checked with a read key)",
}
ANY_METHOD = ("GET", "POST", "PUT", "DELETE")
COLLECTION = "precious"


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[SecureCluster]:
    async with SecureCluster(tmp_path, settings(key=KEY)) as running:
        yield running


async def _stored(cluster: SecureCluster) -> tuple[str, str]:
    """A blob in collection `COLLECTION`, written with the assign's token: (fid, vid)."""
    http = cluster.http
    async with http.get(cluster.master_url(f"/dir/assign?collection={COLLECTION}")) as resp:
        assert resp.status == 200
        token = resp.headers["Authorization"]
        fid = (await resp.json())["fid"]
    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO(b"keep me"), filename="keep.txt")
    headers = {"Authorization": token}
    async with http.post(cluster.volume_url(0, f"/{fid}"), data=form, headers=headers) as resp:
        assert resp.status == 201, await resp.text()
    return fid, fid.split(",")[0]


def _methods(router: Router, path: str) -> list[str]:
    route = router.exact[path]
    if route.methods is None:
        return list(ANY_METHOD)
    return sorted(m for m in route.methods if m != "HEAD")


def _params(path: str, vid: str) -> dict[str, str]:
    """What makes the call harmful if it went through: the real volume and collection."""
    return {"volume": vid, "volumeId": vid, "collection": COLLECTION, "count": "50"}


async def _status(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    params: dict[str, str],
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    async with http.request(method, url, params=params, headers=headers, data=b"{}") as resp:
        return resp.status, await resp.read()


async def test_every_master_route_refuses_anonymous_changes(cluster: SecureCluster) -> None:
    fid, vid = await _stored(cluster)
    assert cluster.master is not None and cluster.master._http is not None
    router = cluster.master._http.router
    guarded = [p for p in router.paths if p not in MASTER_OPEN]
    assert {"/internal/heartbeat", "/vol/grow", "/col/delete"} <= set(guarded)
    for path in router.paths:
        for method in _methods(router, path):
            status, body = await _status(
                cluster.http, method, cluster.master_url(path), _params(path, vid)
            )
            if path in MASTER_OPEN:
                assert status != 401, (method, path, status, body)
            else:
                assert status == 401, (method, path, status, body)
    # Nothing changed: the collection, its volume and the blob are all still there.
    assert COLLECTION in cluster.master.topology.collections()
    slots = cluster.master.topology.free_slots()
    async with cluster.http.get(cluster.volume_url(0, f"/{fid}")) as resp:
        assert resp.status == 200 and await resp.read() == b"keep me"
    # With a cluster token every guarded route is reachable (harmless arguments this time).
    for path in guarded:
        method = _methods(router, path)[0]
        status, body = await _status(
            cluster.http,
            method,
            cluster.master_url(path),
            {"volume": "4000", "collection": "nothing-here", "count": "0"},
            cluster.cluster_headers(),
        )
        assert status != 401, (method, path, status, body)
    assert cluster.master.topology.free_slots() == slots


async def test_every_volume_route_refuses_anonymous_changes(cluster: SecureCluster) -> None:
    fid, vid = await _stored(cluster)
    volume = cluster.volumes[0]
    router = volume.http.router
    assert "/ui/index.html" not in router.exact  # not served with a signing key, as weed
    guarded = [p for p in router.paths if p not in VOLUME_OPEN]
    assert guarded and all(p.startswith("/admin/") for p in guarded), guarded
    for path in router.paths:
        for method in _methods(router, path):
            status, body = await _status(
                cluster.http, method, cluster.volume_url(0, path), _params(path, vid)
            )
            if path in VOLUME_OPEN:
                assert status != 401, (method, path, status, body)
            else:
                assert status == 401, (method, path, status, body)
    # The blob handler (the router's fallback): writes and deletes need the fid's token.
    for method in ("POST", "PUT", "DELETE"):
        status, body = await _status(cluster.http, method, cluster.volume_url(0, f"/{fid}"), {})
        assert (status, json.loads(body)) == (401, {"error": "wrong jwt"}), method
    async with cluster.http.get(cluster.volume_url(0, f"/{fid}")) as resp:
        assert resp.status == 200 and await resp.read() == b"keep me"
    assert volume.store.get(int(vid)) is not None
    for path in guarded:
        method = _methods(router, path)[0]
        status, body = await _status(
            cluster.http,
            method,
            cluster.volume_url(0, path),
            {"volume": "4000", "collection": "nothing-here"},
            cluster.cluster_headers(),
        )
        assert status != 401, (method, path, status, body)


async def test_a_file_id_token_is_no_cluster_token(cluster: SecureCluster) -> None:
    """Any client may get a write token from /dir/assign; it must not open the cluster's
    protocol (a forged heartbeat could add a location to a real volume)."""
    fid, vid = await _stored(cluster)
    forged = Heartbeat(
        "127.0.0.1",
        1,
        "127.0.0.1:1",
        max_volume_counts={"hdd": 8},
        volumes=(VolumeReport(int(vid), size=1),),
    )
    bearer = {"Authorization": f"Bearer {fid_token(KEY, 10, fid, time.time())}"}
    async with cluster.http.post(
        cluster.master_url("/internal/heartbeat"), data=forged.to_json(), headers=bearer
    ) as resp:
        assert resp.status == 401
        assert await resp.json() == {"error": "wrong cluster token"}
    async with cluster.http.post(
        cluster.volume_url(0, "/admin/volume/delete"), params={"volume": vid}, headers=bearer
    ) as resp:
        assert resp.status == 401
    wrong = cluster.cluster_headers(b"another key")
    async with cluster.http.post(
        cluster.master_url("/col/delete"), params={"collection": COLLECTION}, headers=wrong
    ) as resp:
        assert resp.status == 401
    assert COLLECTION in cluster.master.topology.collections()  # type: ignore[union-attr]


async def test_access_ui_serves_the_page_despite_the_key(tmp_path: Path) -> None:
    async with (
        SecureCluster(tmp_path, settings(key=KEY, access_ui=True)) as cluster,
        cluster.http.get(cluster.volume_url(0, "/ui/index.html")) as resp,
    ):
        assert resp.status == 200


async def test_without_a_key_the_cluster_is_open_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with SecureCluster(tmp_path, settings()) as cluster:
        async with cluster.http.post(
            cluster.volume_url(0, "/admin/volume/readonly"), params={"volume": "4000"}
        ) as resp:
            assert resp.status == 404  # reached the handler: no such volume
        async with cluster.http.get(cluster.volume_url(0, "/ui/index.html")) as resp:
            assert resp.status == 200
    warnings = [r.getMessage() for r in caplog.records if "no jwt.signing.key" in r.getMessage()]
    assert any("master" in w for w in warnings) and any("/admin/" in w for w in warnings)


async def test_holders_of_the_key_change_the_cluster(cluster: SecureCluster) -> None:
    """The master's own admin calls carry a cluster token: a collection deleted with one is gone
    from the volume server too, and growth allocates there."""
    _, vid = await _stored(cluster)
    headers = cluster.cluster_headers()
    async with cluster.http.post(
        cluster.master_url("/col/delete"), params={"collection": COLLECTION}, headers=headers
    ) as resp:
        assert resp.status == 204, await resp.text()
    assert cluster.volumes[0].store.get(int(vid)) is None
    async with cluster.http.get(
        cluster.master_url("/vol/grow"), params={"count": "1", "collection": "c"}, headers=headers
    ) as resp:
        assert (resp.status, await resp.json()) == (200, {"count": 1})
    assert any(v.collection == "c" for v in cluster.volumes[0].store.volume_infos())
