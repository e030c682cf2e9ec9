"""Replication across real processes: one weedpy master and three weedpy volume servers over two
racks on loopback (spec §6).

* `000`, `001` (another server in the same rack) and `010` (another rack): a write through the
  server the master names lands on every replica the placement asks for, reads back from each
  of them, and a delete removes it everywhere.
* A replica that is down during a write: the client gets an error, the copy that did land is
  rolled back (not readable, while earlier blobs stay), a delete fails the same way, and the
  master stops assigning the volume.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import Cluster, VolumeSpec, call, get_json, put, skip_reason, start_cluster

pytestmark = pytest.mark.skipif(
    skip_reason("weedpy") is not None, reason=str(skip_reason("weedpy"))
)

_TOPOLOGY = [
    VolumeSpec("dc1", "rack1", 16),
    VolumeSpec("dc1", "rack1", 16),
    VolumeSpec("dc1", "rack2", 16),
]
# Stopping servers need not linger for clients to notice (-preStopSeconds, default 10).
_FAST_STOP = ["-preStopSeconds=0"]


def _holders(cluster: Cluster, fid: str) -> list[str]:
    vid = fid.split(",")[0]
    answer = get_json(f"{cluster.master_url}/dir/lookup?volumeId={vid}")
    return sorted(loc["url"] for loc in answer["locations"])


def _racks(cluster: Cluster, urls: list[str]) -> set[str]:
    rack_of = {u: _TOPOLOGY[i].rack for i, u in enumerate(cluster.volume_urls)}
    return {rack_of[u] for u in urls}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    running = start_cluster(
        "weedpy",
        tmp_path_factory.mktemp("replication"),
        _TOPOLOGY,
        replication="001",
        volume_args=_FAST_STOP,
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.mark.parametrize(
    ("replication", "copies", "racks"), [("000", 1, 1), ("001", 2, 1), ("010", 2, 2)]
)
def test_write_reaches_every_replica_and_delete_removes_it(
    cluster: Cluster, replication: str, copies: int, racks: int
) -> None:
    assigned = get_json(f"{cluster.master_url}/dir/assign?replication={replication}")
    fid, url = assigned["fid"], assigned["url"]
    data = uuid.uuid4().bytes * 100
    status, body = put(url, fid, data)
    assert status == 201, body
    holders = _holders(cluster, fid)
    assert len(holders) == copies
    assert len(_racks(cluster, holders)) == racks
    for holder in holders:
        assert call("GET", f"{holder}/{fid}") == (200, data), holder
    status, body = call("DELETE", f"{url}/{fid}")
    assert status == 202, body
    for holder in holders:
        assert call("GET", f"{holder}/{fid}")[0] == 404, holder


def test_write_through_a_server_without_the_volume_is_forwarded(cluster: Cluster) -> None:
    assigned = get_json(f"{cluster.master_url}/dir/assign?replication=000")
    fid = assigned["fid"]
    [holder] = _holders(cluster, fid)
    outsider = next(u for u in cluster.volume_urls if u != holder)
    assert put(outsider, fid, b"forwarded")[0] == 201
    assert call("GET", f"{holder}/{fid}") == (200, b"forwarded")
    assert call("GET", f"{outsider}/{fid}") == (200, b"forwarded")  # proxied read


def test_replica_down_during_a_write_fails_rolls_back_and_tells_the_master(
    tmp_path: Path,
) -> None:
    with start_cluster(
        "weedpy", tmp_path, _TOPOLOGY, replication="001", volume_args=_FAST_STOP
    ) as cluster:
        assigned = get_json(f"{cluster.master_url}/dir/assign?replication=001&count=2")
        fid, url = assigned["fid"], assigned["url"]
        earlier = f"{fid}_1"
        assert put(url, earlier, b"stored before the outage")[0] == 201
        vid = int(fid.split(",")[0])
        holders = _holders(cluster, fid)
        replica = next(h for h in holders if h != url)
        cluster.kill_volume(cluster.volume_urls.index(replica))

        status, body = put(url, fid, b"must not survive")
        assert status == 500, body
        assert replica in json.loads(body)["error"]
        assert call("GET", f"{url}/{fid}")[0] == 404  # rolled back
        assert call("GET", f"{url}/{earlier}") == (200, b"stored before the outage")

        status, body = call("DELETE", f"{url}/{earlier}")
        assert status == 500 and b"Deletion Failed" in body

        layouts = get_json(f"{cluster.master_url}/dir/status")["Topology"]["Layouts"]
        writable = {v for lay in layouts for v in (lay["writables"] or [])}
        assert vid not in writable
