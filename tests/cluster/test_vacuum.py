"""Vacuum of replicated volumes across real processes: one weedpy master (its automatic sweep
off) and two weedpy volume servers in one rack, so `001` volumes have a replica on each.

* Reliability scenario 7: writes and deletes keep coming to a volume while `/vol/vacuum`
  compacts and commits both of its replicas (paced by `-compactionMBps` so the copy lasts):
  everything acknowledged survives, every deleted blob is gone, and the replicas agree.
* A replica below the threshold is left alone while the other is vacuumed.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fault.server_harness import Oracle, seeded
from tests.servers import Cluster, VolumeSpec, call, get_json, put, skip_reason, start_cluster

pytestmark = pytest.mark.skipif(
    skip_reason("weedpy") is not None, reason=str(skip_reason("weedpy"))
)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    running = start_cluster(
        "weedpy",
        tmp_path,
        [VolumeSpec("dc1", "rack1", 10), VolumeSpec("dc1", "rack1", 10)],
        replication="001",
        master_args=["-disableVacuum"],
        volume_args=["-preStopSeconds=0", "-compactionMBps=1"],
    )
    try:
        yield running
    finally:
        running.stop()


def _batch(cluster: Cluster, count: int) -> tuple[str, list[str]]:
    """`count` fids of one 001 volume: (its vid, the fids)."""
    answer = get_json(f"{cluster.master_url}/dir/assign?replication=001&count={count}")
    fid = answer["fid"]
    return fid.split(",")[0], [fid] + [f"{fid}_{i}" for i in range(1, count)]


def _holders(cluster: Cluster, vid: str) -> list[str]:
    answer = get_json(f"{cluster.master_url}/dir/lookup?volumeId={vid}")
    return sorted(loc["url"] for loc in answer["locations"])


def _status(url: str, vid: str) -> dict[str, Any]:
    [found] = [v for v in get_json(f"{url}/status")["Volumes"] if str(v["Id"]) == vid]
    return dict(found)


def _vacuum(cluster: Cluster, query: str) -> None:
    status, body = call("GET", f"{cluster.master_url}/vol/vacuum?{query}", timeout=120)
    assert status == 200, body
    assert "Topology" in json.loads(body)


def test_writes_and_deletes_during_a_vacuum_of_a_replicated_volume_lose_nothing(
    cluster: Cluster,
) -> None:
    rng = seeded("vacuum under load")
    vid, fids = _batch(cluster, 400)
    holders = _holders(cluster, vid)
    assert len(holders) == 2
    oracle = Oracle()
    for fid in fids[:150]:
        data = rng.randbytes(rng.randrange(5_000, 20_000))
        assert put(holders[0], fid, data)[0] == 201
        oracle.ack(fid, data)
    for fid in fids[:150:2]:
        assert call("DELETE", f"{holders[1]}/{fid}")[0] == 202
        oracle.delete(fid)

    done = threading.Event()
    during: list[str] = []
    failures: list[str] = []

    def clients(rng: random.Random) -> None:
        """Writes to fids assigned before the vacuum (the volume is out of the writable set
        meanwhile, but blobs already assigned to it keep coming), deletes, and reads."""
        for fid in fids[150:]:
            if done.is_set():
                return
            data = rng.randbytes(rng.randrange(1, 8_000))
            status, body = put(rng.choice(holders), fid, data)
            if status != 201:
                failures.append(f"write {fid}: {status} {body[:200]!r}")
                continue
            oracle.ack(fid, data)
            during.append(fid)
            victim = rng.choice(sorted(oracle.acked))
            status, body = call("DELETE", f"{rng.choice(holders)}/{victim}")
            if status != 202:
                failures.append(f"delete {victim}: {status} {body[:200]!r}")
                continue
            oracle.delete(victim)
            probe = rng.choice(sorted(oracle.acked))
            status, body = call("GET", f"{rng.choice(holders)}/{probe}")
            if status == 200 and body != oracle.acked.get(probe):
                failures.append(f"{probe}: 200 with wrong bytes")

    writer = threading.Thread(target=clients, args=(random.Random(rng.random()),))
    writer.start()
    try:
        _vacuum(cluster, "garbageThreshold=0.3")
    finally:
        done.set()
        writer.join(60)
    assert failures == []
    assert during, "no write came in during the vacuum"
    for url in holders:
        status = _status(url, vid)
        assert status["CompactRevision"] == 1, (url, status)
    oracle.check(lambda fid: holders)
    # The replicas agree: the same live needles, counted the same.
    counts = [_status(url, vid)["FileCount"] - _status(url, vid)["DeleteCount"] for url in holders]
    assert counts[0] == counts[1] == len([f for f in oracle.acked if f.startswith(f"{vid},")])


def test_a_replica_below_the_threshold_is_left_alone(cluster: Cluster) -> None:
    vid, fids = _batch(cluster, 20)
    holders = _holders(cluster, vid)
    oracle = Oracle()
    for fid in fids:
        data = random.randbytes(3000)
        assert put(holders[0], fid, data)[0] == 201
        oracle.ack(fid, data)
    for fid in fids[::2]:
        assert call("DELETE", f"{holders[0]}/{fid}")[0] == 202
        oracle.delete(fid)
    # One replica was vacuumed on its own before (the reference's replicas drift apart so).
    early = holders[1]
    for step in ("compact", "commit"):
        status, body = call("POST", f"{early}/admin/vacuum/{step}?volume={vid}")
        assert status == 200, body
    late = holders[0]
    assert _status(early, vid)["CompactRevision"] == 1
    assert _status(late, vid)["DeletedByteCount"] > 0

    _vacuum(cluster, "garbageThreshold=0.3")
    assert _status(late, vid)["CompactRevision"] == 1
    assert _status(late, vid)["DeletedByteCount"] == 0
    assert _status(early, vid)["CompactRevision"] == 1  # not compacted again
    oracle.check(lambda fid: holders)
    # Writable again afterwards: a new blob in the same volume lands on both replicas.
    more = get_json(f"{cluster.master_url}/dir/assign?replication=001")
    assert put(more["url"], more["fid"], b"after the vacuum")[0] == 201
    oracle.ack(more["fid"], b"after the vacuum")
    oracle.check(lambda fid: _holders(cluster, fid.split(",")[0]))
