"""Master admin endpoints (spec §2.5-§2.13), the same assertions against `weed` and weedpy.

These grow and delete volumes, so they run on a cluster of their own with room for 20 volumes,
shared by the module.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.parity.blobs import etag_of
from tests.parity.client import get, multipart, request
from tests.parity.targets import Endpoints, skip_unless_runnable
from tests.servers import IMPLS, Impl, VolumeSpec, start_cluster

pytestmark = pytest.mark.parity


@pytest.fixture(scope="module", params=IMPLS)
def roomy(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Endpoints]:
    impl: Impl = request.param
    skip_unless_runnable(impl)
    base = tmp_path_factory.mktemp(f"admin-{impl}")
    running = start_cluster(impl, base, [VolumeSpec(max_volumes=20)])
    try:
        yield Endpoints(impl, running.master_url, running.volume_urls[0])
    finally:
        running.stop()


def layouts(cluster: Endpoints) -> dict[str, list[int]]:
    """Writable volume ids per collection (default replication), from /dir/status."""
    topology = get(f"{cluster.master}/dir/status").json()["Topology"]
    return {
        layout["collection"]: sorted(layout["writables"] or [])
        for layout in topology["Layouts"]
        if layout["replication"] == "000"
    }


def test_vol_grow_creates_volumes_in_a_collection(roomy: Endpoints) -> None:
    reply = get(f"{roomy.master}/vol/grow?count=2&collection=grown")
    assert reply.status == 200, reply.describe()
    assert reply.json() == {"count": 2}
    grown = layouts(roomy)["grown"]
    assert len(grown) == 2
    for vid in grown:
        found = get(f"{roomy.master}/dir/lookup?volumeId={vid}&collection=grown")
        assert found.status == 200, found.describe()
        assert found.json()["locations"][0]["url"] == roomy.volume


@pytest.mark.parametrize("query", ["count=x", ""])
def test_vol_grow_needs_a_count(roomy: Endpoints, query: str) -> None:
    reply = get(f"{roomy.master}/vol/grow?{query}")
    assert reply.status == 406, reply.describe()
    assert "count" in reply.json()["error"]


def test_col_delete_removes_the_collection(roomy: Endpoints) -> None:
    assert get(f"{roomy.master}/vol/grow?count=1&collection=doomed").status == 200
    [vid] = layouts(roomy)["doomed"]
    reply = get(f"{roomy.master}/col/delete?collection=doomed")
    assert reply.status == 204, reply.describe()
    assert reply.body == b""
    assert "doomed" not in layouts(roomy)
    assert get(f"{roomy.master}/dir/lookup?volumeId={vid}").status == 404
    again = get(f"{roomy.master}/col/delete?collection=doomed")
    assert again.status == 400, again.describe()
    assert again.json() == {"error": "collection doomed does not exist"}


def test_submit_assigns_and_uploads_in_one_request(roomy: Endpoints) -> None:
    data = b"submitted through the master"
    body, form_type = multipart(data, "s.bin")
    reply = request(
        "POST", f"{roomy.master}/submit", headers={"Content-Type": form_type}, body=body
    )
    assert reply.status == 201, reply.describe()
    answer = reply.json()
    assert set(answer) == {"fileName", "fid", "fileUrl", "size", "eTag"}, answer
    assert answer["fileName"] == "s.bin"
    assert answer["size"] == len(data)
    assert answer["eTag"] == etag_of(data)
    assert answer["fileUrl"] == f"{roomy.volume}/{answer['fid']}"
    assert get(answer["fileUrl"]).body == data


def test_submit_only_accepts_post(roomy: Endpoints) -> None:
    reply = get(f"{roomy.master}/submit")
    assert reply.status == 405, reply.describe()
    assert reply.json() == {"error": "Only submit via POST!"}


def test_assign_in_an_unknown_data_center_fails(roomy: Endpoints) -> None:
    # The spec says 400; the reference answers 503 (growth cannot place a volume there) and
    # weedpy 406 (no free slot there). Clients see a JSON error and no fid either way.
    reply = get(f"{roomy.master}/dir/assign?dataCenter=nowhere")
    assert reply.status in (400, 406, 503), reply.describe()
    body = reply.json()
    assert isinstance(body["error"], str)
    assert "fid" not in body


def test_cluster_status_names_the_leader(roomy: Endpoints) -> None:
    reply = get(f"{roomy.master}/cluster/status")
    assert reply.status == 200, reply.describe()
    body = reply.json()
    assert body["IsLeader"] is True
    # weed appends ".<grpc port>"; weedpy has no gRPC listener.
    assert re.fullmatch(re.escape(roomy.master) + r"(\.\d+)?", body["Leader"]), body
    assert isinstance(body["MaxVolumeId"], int) and body["MaxVolumeId"] >= 7


def test_vol_status_lists_volumes_per_node(roomy: Endpoints) -> None:
    reply = get(f"{roomy.master}/vol/status")
    assert reply.status == 200, reply.describe()
    body = reply.json()
    assert isinstance(body["Version"], str)
    nodes = body["Volumes"]["DataCenters"]["DefaultDataCenter"]["DefaultRack"]
    volumes = nodes[roomy.volume]
    assert volumes, body
    for info in volumes:
        assert {"Id", "Collection", "Size", "FileCount", "ReadOnly", "ReplicaPlacement"} <= set(
            info
        )
    assert set(layouts(roomy)[""]) <= {v["Id"] for v in volumes}


def test_collection_info_of_an_unknown_collection_is_400(roomy: Endpoints) -> None:
    reply = get(f"{roomy.master}/collection/info?collection=nope")
    assert reply.status == 400, reply.describe()
    assert reply.json() == {"error": "collection nope does not exist"}


def test_vol_grow_of_zero_volumes_creates_none(roomy: Endpoints) -> None:
    before = layouts(roomy)
    reply = get(f"{roomy.master}/vol/grow?count=0&collection=none")
    assert reply.status == 200, reply.describe()
    assert reply.json() == {"count": 0}
    assert layouts(roomy).get("none", []) == before.get("none", [])


def test_vol_grow_beyond_the_free_slots_is_406(roomy: Endpoints) -> None:
    reply = get(f"{roomy.master}/vol/grow?count=1000")
    assert reply.status == 406, reply.describe()
    error = reply.json()["error"]
    assert re.fullmatch(r"only \d+ volumes left, not enough for 1000", error), error


@pytest.mark.parametrize(
    ("query", "error"),
    [
        (
            "replication=010",
            "No matching data node found! \nDefaultDataCenter:Only has 1 racks, not enough for 2.",
        ),
        (
            "dataCenter=nowhere",
            "No matching data node found! \nDefaultDataCenter:"
            "Not matching preferred data center:nowhere",
        ),
    ],
)
def test_vol_grow_that_cannot_be_placed_says_why(roomy: Endpoints, query: str, error: str) -> None:
    reply = get(f"{roomy.master}/vol/grow?count=1&{query}")
    assert reply.status == 406, reply.describe()
    assert reply.json() == {"error": error}


@pytest.mark.parametrize("param", ["memoryMapMaxSizeMb=x", "preallocate=x", "ttl=abc"])
def test_vol_grow_with_an_unparsable_option_grows_nothing(roomy: Endpoints, param: str) -> None:
    before = layouts(roomy)
    reply = get(f"{roomy.master}/vol/grow?count=1&collection=badopt&{param}")
    assert reply.status == 406, reply.describe()
    assert set(reply.json()) == {"error"}
    assert layouts(roomy).get("badopt") == before.get("badopt")


def test_vol_grow_and_col_delete_read_a_form_body(roomy: Endpoints) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    grown = request(
        "POST", f"{roomy.master}/vol/grow", headers=form, body=b"count=1&collection=formed&pretty=y"
    )
    assert grown.status == 200, grown.describe()
    assert grown.body == b'{"count":1}'  # `pretty` counts in the URL only
    assert len(layouts(roomy)["formed"]) == 1
    deleted = request("POST", f"{roomy.master}/col/delete", headers=form, body=b"collection=formed")
    assert deleted.status == 204, deleted.describe()
    assert "formed" not in layouts(roomy)


@pytest.mark.parametrize("query", ["", "collection="])
def test_collection_info_needs_a_collection(roomy: Endpoints, query: str) -> None:
    reply = get(f"{roomy.master}/collection/info?{query}")
    assert reply.status == 400, reply.describe()
    assert reply.json() == {"error": "collection is required"}


def test_collection_info_sums_and_details_a_collection(roomy: Endpoints) -> None:
    assert get(f"{roomy.master}/vol/grow?count=1&collection=counted").status == 200
    [vid] = layouts(roomy)["counted"]
    data = b"counted blob"
    body, form_type = multipart(data, "c.bin")
    stored = request(
        "POST",
        f"{roomy.volume}/{vid},01637037d6",
        headers={"Content-Type": form_type},
        body=body,
    )
    assert stored.status == 201, stored.describe()
    info = get(f"{roomy.master}/collection/info?collection=counted").json()
    assert set(info) == {
        "Version",
        "Collection",
        "TotalSize",
        "FileCount",
        "UsedSize",
        "VolumeCount",
    }, info
    assert info["Collection"] == "counted"
    assert info["VolumeCount"] == 1
    # TotalSize counts the size limit of a writable volume (30 GB by default).
    assert info["TotalSize"] == 30 * 1024**3
    detail = get(f"{roomy.master}/collection/info?collection=counted&detail=true")
    assert detail.status == 200, detail.describe()
    [layout] = detail.json()
    assert set(layout) == {"Version", "Collection", "TotalSize", "FileCount", "UsedSize"}
    assert layout["Collection"] == "counted"
    assert layout["TotalSize"] == info["TotalSize"]


def test_a_ttl_volume_shows_its_ttl_in_both_status_pages(roomy: Endpoints) -> None:
    grown = get(f"{roomy.master}/vol/grow?count=1&collection=ttlcol&ttl=3d")
    assert grown.status == 200, grown.describe()
    topology = get(f"{roomy.master}/dir/status").json()["Topology"]
    [layout] = [lay for lay in topology["Layouts"] if lay["collection"] == "ttlcol"]
    assert layout["ttl"] == "3d"
    assert layout["replication"] == "000"
    assert layout["diskType"] == "hdd"
    [vid] = layout["writables"]
    volumes = get(f"{roomy.master}/vol/status").json()["Volumes"]
    [info] = [
        v
        for v in volumes["DataCenters"]["DefaultDataCenter"]["DefaultRack"][roomy.volume]
        if v["Id"] == vid
    ]
    assert info["Ttl"] == {"Count": 3, "Unit": 3}  # unit 3 is days (spec §4.6)
    assert info["ReplicaPlacement"] == {}  # zero counts are omitted
    assert info["Collection"] == "ttlcol"
    assert info["DiskType"] == ""
    assert info["ReadOnly"] is False
    assigned = get(f"{roomy.master}/dir/assign?collection=ttlcol&ttl=3d")
    assert assigned.status == 200, assigned.describe()
    assert assigned.json()["fid"].startswith(f"{vid},")
