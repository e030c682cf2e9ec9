"""Every master endpoint over a real socket, with fake volume servers (spec §2)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import orjson

from seaweed_py.formats.fid import parse_file_id
from seaweed_py.master import MasterOptions, MasterServer
from tests.functional import test_master_fake_volume as fakes

FakeVolumeServer = fakes.FakeVolumeServer
# the shared fixtures
master = fakes.master
volumes = fakes.volumes
http = fakes.http

Volumes = Callable[..., Any]


async def get(
    http: aiohttp.ClientSession, m: MasterServer, path: str, **kw: Any
) -> tuple[int, Any]:
    async with http.get(f"http://{m.address}{path}", allow_redirects=False, **kw) as resp:
        body = await resp.read()
        if resp.content_type == "application/json":
            return resp.status, await resp.json()
        return resp.status, body


@asynccontextmanager
async def master_with_fake(
    tmp_path: Any, max_volumes: int = 8, **options: Any
) -> AsyncIterator[tuple[MasterServer, FakeVolumeServer]]:
    """A master of its own (for options the `master` fixture does not set) and one fake volume
    server that has sent its first heartbeat; both are stopped on the way out."""
    m = MasterServer(MasterOptions(ip="127.0.0.1", port=0, mdir=str(tmp_path), **options))
    await m.start()
    try:
        fake = FakeVolumeServer(m.address, max_volumes=max_volumes)
        await fake.start()
        try:
            await fake.heartbeat()
            yield m, fake
        finally:
            await fake.stop()
    finally:
        await m.stop()


# ------------------------------------------------------------------ /dir/assign


async def test_cold_start_assign_grows_seven_volumes_and_answers(
    master: MasterServer, volumes: Volumes, http: aiohttp.ClientSession
) -> None:
    fake = await volumes(max_volumes=8)
    async with http.get(f"http://{master.address}/dir/assign") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/json"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        raw = await resp.read()
    answer = orjson.loads(raw)
    assert list(answer) == ["fid", "url", "publicUrl", "count"]
    assert answer["url"] == answer["publicUrl"] == fake.url and answer["count"] == 1
    fid = parse_file_id(answer["fid"])
    assert sorted(fake.volumes) == [1, 2, 3, 4, 5, 6, 7]
    assert fid.volume_id in fake.volumes and fid.key >= 1
    _, dirs = await get(http, master, "/dir/status")
    assert dirs["Topology"]["Layouts"][0]["writables"] == [1, 2, 3, 4, 5, 6, 7]


async def test_count_reserves_consecutive_keys(
    master: MasterServer, volumes: Volumes, http: aiohttp.ClientSession
) -> None:
    await volumes()
    _, first = await get(http, master, "/dir/assign?count=5")
    _, second = await get(http, master, "/dir/assign")
    assert first["count"] == 5
    assert parse_file_id(second["fid"]).key == parse_file_id(first["fid"]).key + 5


async def test_assign_parameters_by_form_body_and_pretty(
    master: MasterServer, volumes: Volumes, http: aiohttp.ClientSession
) -> None:
    fake = await volumes()
    async with http.post(
        f"http://{master.address}/dir/assign", data={"collection": "pics", "count": "2"}
    ) as resp:
        assert resp.status == 200
        assert (await resp.json())["count"] == 2
    assert {v["collection"] for v in fake.volumes.values()} == {"pics"}
    async with http.get(f"http://{master.address}/dir/assign?collection=pics&pretty=y") as resp:
        text = await resp.text()
    assert text.startswith('{\n  "fid": "')


async def test_no_free_slot_is_406_with_the_reference_message(
    master: MasterServer, volumes: Volumes, http: aiohttp.ClientSession
) -> None:
    await volumes(max_volumes=0)
    status, body = await get(http, master, "/dir/assign?collection=c")
    assert status == 406
    assert body["error"].startswith(
        "failed to find writable volumes for collection:c replication:000 ttl: error: "
        'No writable volumes and no free volumes left for {"collection":"c","replication":{},'
        '"ttl":{"Count":0,"Unit":0},"version":3}'
    )
    status, body = await get(http, master, "/dir/assign?dataCenter=nope")
    assert status == 406
    assert body["error"].startswith(
        "failed to find writable volumes for collection: replication:000 ttl: error: "
        'No writable volumes and no free volumes left for {"replication":{},'
        '"ttl":{"Count":0,"Unit":0},"dataCenter":"nope","version":3}'
    )


async def test_bad_replication_or_ttl_is_406(
    master: MasterServer, volumes: Volumes, http: aiohttp.ClientSession
) -> None:
    await volumes()
    for query in ("replication=abc", "ttl=abc", "replication=300", "preallocate=x"):
        status, body = await get(http, master, f"/dir/assign?{query}")
        assert status == 406, query
        assert body["error"]


async def test_replicated_growth_places_every_copy(
    master: MasterServer, volumes: Volumes, http: aiohttp.ClientSession
) -> None:
    a = await volumes(data_center="dc1", rack="r1")
    b = await volumes(data_center="dc1", rack="r1")
    status, answer = await get(http, master, "/dir/assign?replication=001")
    assert status == 200
    assert sorted(a.volumes) == sorted(b.volumes) == [1, 2, 3, 4, 5, 6]
    vid = parse_file_id(answer["fid"]).volume_id
    _, lookup = await get(http, master, f"/dir/lookup?volumeId={vid}")
    assert {loc["url"] for loc in lookup["locations"]} == {a.url, b.url}


async def test_concurrent_assign_during_growth_gets_503(
    master: MasterServer, volumes: Volumes, http: aiohttp.ClientSession
) -> None:
    fake = await volumes()
    fake.allocate_delay = 0.3
    first = asyncio.ensure_future(get(http, master, "/dir/assign"))
    await asyncio.sleep(0.1)
    async with http.get(f"http://{master.address}/dir/assign") as resp:
        assert resp.status == 503
        assert resp.headers["Retry-After"] == "1"
        body = await resp.json()
    assert body["error"].endswith(", volume growth in progress")
    assert body["error"].startswith('no writable volumes for {"replication":{}')
    status, answer = await first
    assert status == 200 and "fid" in answer


async def test_failed_allocation_rolls_back_the_other_replica(
    master: MasterServer, volumes: Volumes, http: aiohttp.ClientSession
) -> None:
    good = await volumes(rack="r1")
    bad = await volumes(rack="r1")
    bad.fail_allocate = True
    status, body = await get(http, master, "/dir/assign?replication=001")
    assert status == 503 and "volume growth in progress" in body["error"]
    assert good.volumes == {}
    assert [c for c, _ in good.calls].count("delete") == 1
    assert master.topology.lookup(1) == []


# ------------------------------------------------------------------ /dir/lookup and redirect


async def test_lookup_by_volume_id_fid_and_file_id(
    master: MasterServer, volumes: Volumes, http: aiohttp.ClientSession
) -> None:
    fake = await volumes(data_center="dc7")
    _, answer = await get(http, master, "/dir/assign")
    fid = answer["fid"]
    vid = fid.split(",")[0]
    expected = {
        "volumeOrFileId": vid,
        "locations": [{"url": fake.url, "publicUrl": fake.url, "dataCenter": "dc7"}],
    }
    for query in (f"volumeId={vid}", f"volumeId={fid}", f"fileId={fid}"):
        assert await get(http, master, f"/dir/lookup?{query}") == (200, expected)
    assert await get(http, master, f"/dir/lookup?volumeId={vid}&collection=other") == (
        404,
        {"volumeOrFileId": vid, "error": f"volume id {vid} not found"},
    )
    assert await get(http, master, "/dir/lookup?volumeId=99") == (
        404,
        {"volumeOrFileId": "99", "error": "volume id 99 not found"},
    )
    assert await get(http, master, "/dir/lookup?volumeId=abc") == (
        404,
        {"volumeOrFileId": "abc", "error": "unknown volume id abc"},
    )
    assert await get(http, master, "/dir/lookup") == (404, {"error": "unknown volume id "})


async def test_fid_path_redirects_with_308_keeping_the_query(
    master: MasterServer, volumes: Volumes, http: aiohttp.ClientSession
) -> None:
    fake = await volumes()
    _, answer = await get(http, master, "/dir/assign")
    fid = answer["fid"]
    for method in ("GET", "POST"):
        async with http.request(
            method, f"http://{master.address}/{fid}?x=1", allow_redirects=False
        ) as resp:
            assert resp.status == 308
            assert resp.headers["Location"] == f"http://{fake.url}/{fid}?x=1"
    status, body = await get(http, master, "/99,0101")
    assert (status, body) == (404, {"error": "volume id 99 not found: volume id 99 not found"})
    status, text = await get(http, master, "/3/01637037d6")
    assert status == 404 and text == b"404 page not found\n"


# ------------------------------------------------------------------ status endpoints


async def test_dir_status_shape(
    master: MasterServer, volumes: Volumes, http: aiohttp.ClientSession
) -> None:
    fake = await volumes(data_center="dc1", rack="r1", max_volumes=9)
    await get(http, master, "/dir/assign")
    status, body = await get(http, master, "/dir/status")
    assert status == 200 and list(body) == ["Topology", "TopologyId", "Version"]
    topo = body["Topology"]
    assert (topo["Max"], topo["Free"]) == (9, 2)
    assert topo["DataCenters"] == [
        {
            "Id": "dc1",
            "Racks": [
                {
                    "Id": "r1",
                    "DataNodes": [
                        {
                            "Url": fake.url,
                            "PublicUrl": fake.url,
                            "Volumes": 7,
                            "EcShards": 0,
                            "Max": 9,
                            "VolumeIds": " 1-7",
                        }
                    ],
                }
            ],
        }
    ]
    assert topo["Layouts"] == [
        {
            "replication": "000",
            "ttl": "",
            "writables": [1, 2, 3, 4, 5, 6, 7],
            "collection": "",
            "diskType": "hdd",
        }
    ]
    async with http.get(f"http://{master.address}/dir/status?pretty=y") as resp:
        assert (await resp.text()).startswith('{\n  "Topology": {\n')


async def test_vol_status_and_cluster_status(
    master: MasterServer, volumes: Volumes, http: aiohttp.ClientSession
) -> None:
    fake = await volumes(data_center="dc1", rack="r1")
    assert await get(http, master, "/cluster/status") == (
        200,
        {"IsLeader": True, "Leader": master.address},
    )
    await get(http, master, "/dir/assign?replication=000&ttl=3d")
    await fake.heartbeat()
    status, body = await get(http, master, "/vol/status")
    assert status == 200 and list(body) == ["Version", "Volumes"]
    infos = body["Volumes"]["DataCenters"]["dc1"]["r1"][fake.url]
    assert [v["Id"] for v in infos] == [1, 2, 3, 4, 5, 6, 7]
    assert list(infos[0]) == [
        "Collection", "DiskType", "RemoteStorageName", "ReplicaPlacement", "Ttl", "Size",
        "DeletedByteCount", "ModifiedAtSecond", "Id", "DiskId", "CompactRevision", "FileCount",
        "DeleteCount", "Version", "ReadOnly", "ReadOnlyCanDelete",
    ]  # fmt: skip
    assert infos[0]["Ttl"] == {"Count": 3, "Unit": 3} and infos[0]["ReplicaPlacement"] == {}
    assert await get(http, master, "/cluster/status") == (
        200,
        {"IsLeader": True, "Leader": master.address, "MaxVolumeId": 7},
    )


async def test_health_metrics_and_status_page(
    master: MasterServer, volumes: Volumes, http: aiohttp.ClientSession
) -> None:
    await volumes(data_center="<script>dc</script>")
    await get(http, master, "/dir/assign")
    assert await get(http, master, "/healthz") == (200, b"")
    assert await get(http, master, "/readyz") == (200, b"")
    status, metrics = await get(http, master, "/metrics")
    assert status == 200
    assert b"weedpy_master_assign_requests_total 1.0" in metrics
    assert b"weedpy_master_volumes 7.0" in metrics
    assert b"weedpy_master_volume_servers 1.0" in metrics
    async with http.get(f"http://{master.address}/") as resp:
        assert resp.status == 200 and resp.content_type == "text/html"
        page = await resp.text()
    assert "&lt;script&gt;dc&lt;/script&gt;" in page and "<script>" not in page
    assert "writable" in page


# ------------------------------------------------------------------ /vol/grow and /col/delete


async def test_vol_grow_counts_replica_locations(
    master: MasterServer, volumes: Volumes, http: aiohttp.ClientSession
) -> None:
    a = await volumes(max_volumes=4)
    b = await volumes(max_volumes=4)
    assert await get(http, master, "/vol/grow?count=2&replication=001") == (200, {"count": 4})
    assert len(a.volumes) == len(b.volumes) == 2
    assert await get(http, master, "/vol/grow") == (
        406,
        {"error": "can not parse parameter count "},
    )
    assert await get(http, master, "/vol/grow?count=3&replication=001") == (
        406,
        {"error": "only 4 volumes left, not enough for 6"},
    )
    assert await get(http, master, "/vol/grow?count=1&dataCenter=zz") == (
        406,
        {
            "error": "No matching data node found! \nDefaultDataCenter:Not matching preferred data center:zz"
        },
    )


async def test_col_delete(
    master: MasterServer, volumes: Volumes, http: aiohttp.ClientSession
) -> None:
    fake = await volumes()
    await get(http, master, "/vol/grow?count=2&collection=pics")
    await get(http, master, "/vol/grow?count=1")
    assert await get(http, master, "/col/delete?collection=nope") == (
        400,
        {"error": "collection nope does not exist"},
    )
    assert await get(http, master, "/col/delete") == (400, {"error": "collection is required"})
    assert await get(http, master, "/col/delete?collection=pics") == (204, b"")
    assert ("delete_collection", {"collection": "pics"}) in fake.calls
    assert [v["collection"] for v in fake.volumes.values()] == [""]
    assert master.topology.collections() == {""}


# ------------------------------------------------------------------ /submit


async def test_submit_assigns_and_forwards_the_upload(
    master: MasterServer, volumes: Volumes, http: aiohttp.ClientSession
) -> None:
    fake = await volumes()
    form = aiohttp.FormData()
    form.add_field("file", b"hello world", filename="hello.txt", content_type="text/plain")
    async with http.post(f"http://{master.address}/submit?ttl=1h", data=form) as resp:
        assert resp.status == 201
        answer = await resp.json()
    assert list(answer) == ["eTag", "fid", "fileName", "fileUrl", "size"]
    fid = answer["fid"]
    assert answer["fileName"] == "hello.txt" and answer["fileUrl"] == f"{fake.url}/{fid}"
    assert b"hello world" in fake.uploads[fid]
    upload = next(q for c, q in fake.calls if c == "upload")
    assert upload["ttl"] == "1h" and upload["content-type"] == "multipart/form-data"
    async with http.post(f"http://{master.address}/submit", data=b"raw bytes") as resp:
        assert resp.status == 201
        assert (await resp.json())["fileName"] == "submit"
    assert await get(http, master, "/submit") == (405, {"error": "Only submit via POST!"})


# ------------------------------------------------------------------ volume server protocol


async def test_heartbeat_max_file_key_raises_the_sequencer(
    master: MasterServer, volumes: Volumes, http: aiohttp.ClientSession
) -> None:
    fake = await volumes()
    await get(http, master, "/dir/assign")
    fake.max_file_key = 5_000_000
    await fake.heartbeat()
    _, answer = await get(http, master, "/dir/assign")
    assert parse_file_id(answer["fid"]).key > 5_000_000


async def test_goodbye_heartbeat_drops_the_server(
    master: MasterServer, volumes: Volumes, http: aiohttp.ClientSession
) -> None:
    fake = await volumes()
    await get(http, master, "/dir/assign")
    version = (await fake.heartbeat())["locationsVersion"]
    assert (await fake.heartbeat())["locationsVersion"] == version  # nothing moved
    await fake.heartbeat(goodbye=True)
    assert master.topology.nodes == {}
    # Volume servers drop their cached lookups when the version moves.
    assert (await fake.heartbeat(goodbye=True))["locationsVersion"] != version
    # Its volumes are not gone, only unreachable until it returns (scenario 11, docs/compat.md).
    assert (await get(http, master, "/dir/lookup?volumeId=1"))[0] == 503
    assert (await get(http, master, "/dir/lookup?volumeId=99"))[0] == 404


async def test_unwritable_volume_is_no_longer_assigned(
    master: MasterServer, volumes: Volumes, http: aiohttp.ClientSession
) -> None:
    await volumes()
    await get(http, master, "/vol/grow?count=2")
    async with http.post(f"http://{master.address}/internal/volume/unwritable?volume=1") as resp:
        assert resp.status == 200
    for _ in range(20):
        _, answer = await get(http, master, "/dir/assign")
        assert answer["fid"].startswith("2,")
    async with http.post(f"http://{master.address}/internal/volume/unwritable?volume=9") as resp:
        assert resp.status == 404
    async with http.post(f"http://{master.address}/internal/heartbeat", data=b"{nope") as resp:
        assert resp.status == 400


async def test_dead_volume_server_is_dropped_after_three_pulses(
    tmp_path: Any, http: aiohttp.ClientSession
) -> None:
    async with master_with_fake(tmp_path, pulse_seconds=0.1) as (m, _):
        await get(http, m, "/vol/grow?count=1")
        assert (await get(http, m, "/dir/lookup?volumeId=1"))[0] == 200
        await asyncio.sleep(0.6)
        assert (await get(http, m, "/dir/lookup?volumeId=1"))[0] == 503  # held by a dead node
        assert m.topology.nodes == {}


async def test_white_list_refuses_other_addresses(
    tmp_path: Any, http: aiohttp.ClientSession
) -> None:
    m = MasterServer(
        MasterOptions(ip="127.0.0.1", port=0, mdir=str(tmp_path), white_list=("10.0.0.0/8",))
    )
    await m.start()
    try:
        assert (await get(http, m, "/dir/assign"))[0] == 401
        assert (await get(http, m, "/healthz"))[0] == 200
    finally:
        await m.stop()


async def test_restart_continues_above_every_issued_key(
    tmp_path: Any, http: aiohttp.ClientSession
) -> None:
    keys = []
    for _ in range(2):
        async with master_with_fake(tmp_path) as (m, _):
            await get(http, m, "/vol/grow?count=1")
            _, answer = await get(http, m, "/dir/assign")
            keys.append(parse_file_id(answer["fid"]))
    assert keys[1].key > keys[0].key
    assert keys[1].volume_id > keys[0].volume_id  # volume ids are never reused either


async def test_collection_info(
    master: MasterServer, volumes: Volumes, http: aiohttp.ClientSession
) -> None:
    fake = await volumes()
    await get(http, master, "/vol/grow?count=2&collection=pics")
    await get(http, master, "/vol/grow?count=1&collection=pics&replication=000&ttl=1d")
    for info in fake.volumes.values():
        info["size"], info["fileCount"] = 100, 3
    await fake.heartbeat()
    limit = master.options.volume_size_limit
    assert await get(http, master, "/collection/info?collection=pics") == (
        200,
        {
            "Collection": "pics",
            "FileCount": 9,
            "TotalSize": 3 * limit,
            "UsedSize": 300,
            "Version": master.version,
            "VolumeCount": 3,
        },
    )
    status, detail = await get(http, master, "/collection/info?collection=pics&detail=true")
    assert status == 200 and [d["FileCount"] for d in detail] == [6, 3]
    assert await get(http, master, "/collection/info") == (400, {"error": "collection is required"})
    assert await get(http, master, "/collection/info?collection=x") == (
        400,
        {"error": "collection x does not exist"},
    )


async def test_collection_info_counts_live_data_once_per_volume(
    master: MasterServer, volumes: Volumes, http: aiohttp.ClientSession
) -> None:
    # As the reference: deletes are subtracted, bytes count per replica, files per volume.
    a = await volumes(data_center="dc1", rack="r1")
    b = await volumes(data_center="dc1", rack="r1")
    status, grown = await get(http, master, "/vol/grow?count=1&collection=net&replication=001")
    assert (status, grown) == (200, {"count": 2})
    for fake in (a, b):
        [info] = fake.volumes.values()
        info.update(size=1000, fileCount=5, deleteCount=2, deletedByteCount=400)
        await fake.heartbeat()
    limit = master.options.volume_size_limit
    status, info = await get(http, master, "/collection/info?collection=net")
    assert status == 200
    assert (info["UsedSize"], info["FileCount"], info["TotalSize"]) == (1200, 3, 2 * limit)
    for fake in (a, b):
        [report] = fake.volumes.values()
        report["readOnly"] = True
        await fake.heartbeat()
    status, info = await get(http, master, "/collection/info?collection=net")
    assert (info["UsedSize"], info["FileCount"], info["TotalSize"]) == (1200, 3, 1200)


async def test_restarted_master_warms_up_before_answering_misses(
    tmp_path: Any, http: aiohttp.ClientSession
) -> None:
    opts = MasterOptions(ip="127.0.0.1", port=0, mdir=str(tmp_path), pulse_seconds=0.2)
    first = MasterServer(opts)
    await first.start()
    fake = FakeVolumeServer(first.address)
    await fake.start()
    try:
        await fake.heartbeat()
        assert (await get(http, first, "/vol/grow?count=1"))[0] == 200
    finally:
        await first.stop()
    second = MasterServer(opts)
    await second.start()
    try:
        async with http.get(f"http://{second.address}/dir/assign") as resp:
            assert resp.status == 503 and resp.headers["Retry-After"] == "1"
            assert await resp.json() == {"error": "master is warming up, topology is still loading"}
        assert await get(http, second, "/dir/lookup?volumeId=1") == (
            503,
            {"volumeOrFileId": "1", "error": "service warming up, please retry"},
        )
        fake.master = second.address
        await fake.heartbeat()  # the volume server comes back: no growth needed
        assert (await get(http, second, "/dir/assign"))[1]["fid"].startswith("1,")
        await asyncio.sleep(0.7)
        assert (await get(http, second, "/dir/lookup?volumeId=9"))[0] == 404
    finally:
        await fake.stop()
        await second.stop()


async def test_background_growth_when_every_writable_volume_is_crowded(
    tmp_path: Any, http: aiohttp.ClientSession
) -> None:
    async with master_with_fake(
        tmp_path, max_volumes=5, pulse_seconds=0.1, volume_size_limit_mb=1
    ) as (m, fake):
        assert await get(http, m, "/vol/grow?count=1") == (200, {"count": 1})
        await fake.heartbeat()
        await asyncio.sleep(0.3)
        assert sorted(fake.volumes) == [1]  # not crowded: nothing to do
        fake.volumes[1]["size"] = 1_000_000  # above 90 % of 1 MiB
        await fake.heartbeat()
        for _ in range(50):
            if len(fake.volumes) == 5:
                break
            await fake.heartbeat()  # keep the node alive while growth runs
            await asyncio.sleep(0.05)
        assert sorted(fake.volumes) == [1, 2, 3, 4, 5]  # 7 wanted, 4 slots were free
        # The fake holds the last volume as soon as it answers the allocation; the master counts
        # it a moment later, when that answer is in.
        for _ in range(50):
            _, metrics = await get(http, m, "/metrics")
            if b"weedpy_master_grown_volumes_total 5.0" in metrics:
                break
            await asyncio.sleep(0.05)
        assert b"weedpy_master_grown_volumes_total 5.0" in metrics
