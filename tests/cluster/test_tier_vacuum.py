"""Vacuum of a tiered volume on a real weedpy cluster (a master and two volume servers as
processes, replication 001, a bucket on weed's S3 gateway): `/vol/vacuum?volumeId=` downloads
the volume to one holder, compacts it, uploads it under a fresh key, moves the other holder to
that key and deletes the old object; the blobs kept read the same everywhere and the deleted
ones stay deleted."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from seaweed_py.storage.backend import Backends, S3Backend
from seaweed_py.storage.backend.settings import BackendSource
from tests import s3_server
from tests.servers import Cluster, call, get_json, shell, start_cluster

s3 = s3_server.s3


@pytest.fixture
def cluster(s3: s3_server.S3Server, tmp_path: Path) -> Iterator[Cluster]:
    bucket = s3.new_bucket()
    config = tmp_path / "config"
    config.mkdir()
    (config / "master.toml").write_text(s3.master_toml(bucket))
    running = start_cluster(
        "weedpy", tmp_path, volumes=2, replication="001", config_dir=config, pulse_seconds=1
    )
    running.bucket = bucket  # type: ignore[attr-defined]
    yield running
    running.stop()


def bucket_of(s3: s3_server.S3Server, cluster: Cluster) -> S3Backend:
    bucket = cluster.bucket  # type: ignore[attr-defined]
    return Backends(BackendSource(env=s3.env(bucket), search_dirs=()).load()).get("s3")


def tiered_volume(cluster: Cluster, count: int) -> tuple[int, dict[str, bytes]]:
    """Volume id and blobs (fid -> bytes) of one volume, written and then tiered."""
    blobs: dict[str, bytes] = {}
    for i in range(count):
        assigned = get_json(f"{cluster.master_url}/dir/assign?replication=001")
        data = os.urandom(2000 + i * 101)
        assert call("PUT", f"{assigned['url']}/{assigned['fid']}", data)[0] == 201
        blobs[assigned["fid"]] = data
    counts = Counter(int(fid.split(",")[0]) for fid in blobs)
    vid = counts.most_common(1)[0][0]
    done = shell(cluster.master_url, f"lock\nvolume.tier.upload -volumeId={vid} -dest=s3\n")
    assert done.returncode == 0, done.stdout + done.stderr
    return vid, {fid: data for fid, data in blobs.items() if fid.startswith(f"{vid},")}


def state(server: str, vid: int) -> dict[str, object]:
    answer: dict[str, object] = get_json(f"{server}/admin/volume/status?volume={vid}")
    return answer


def vacuum(cluster: Cluster, vid: int, threshold: float) -> None:
    status, body = call(
        "GET",
        f"{cluster.master_url}/vol/vacuum?volumeId={vid}&garbageThreshold={threshold}",
        timeout=120,
    )
    assert status == 200, body


def test_a_tiered_volume_is_downloaded_compacted_and_uploaded_again(
    s3: s3_server.S3Server, cluster: Cluster
) -> None:
    vid, blobs = tiered_volume(cluster, 24)
    before = [state(server, vid) for server in cluster.volume_urls]
    old_key = before[0]["remoteStorageKey"]
    assert {s["remoteStorageKey"] for s in before} == {old_key}
    gone = dict(list(blobs.items())[::2])
    for fid in gone:
        assert call("DELETE", f"{cluster.volume_urls[0]}/{fid}")[0] == 202
    kept = {fid: data for fid, data in blobs.items() if fid not in gone}

    done = shell(
        cluster.master_url, f"lock\nvolume.tier.compact -volumeId={vid} -garbageThreshold=0.3\n"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"volume {vid} vacuumed: " in done.stdout and "bytes reclaimed" in done.stdout

    after = [state(server, vid) for server in cluster.volume_urls]
    new_key = after[0]["remoteStorageKey"]
    assert new_key != old_key
    assert [(s["remoteStorageName"], s["remoteStorageKey"]) for s in after] == [
        ("s3.default", new_key)
    ] * 2
    assert all(s["compactRevision"] == 1 for s in after), after
    assert all(int(s["size"]) < int(b["size"]) for s, b in zip(after, before, strict=True))
    for server in cluster.volume_urls:
        for fid, data in kept.items():
            assert call("GET", f"{server}/{fid}") == (200, data), (server, fid)
        for fid in gone:
            assert call("GET", f"{server}/{fid}")[0] == 404, (server, fid)
    keys = sorted(o.key for o in bucket_of(s3, cluster).list(""))
    assert keys == sorted([str(new_key), f"{new_key}.idx", f"{new_key}.vif"])
    for directory in cluster.directory.glob("volume*"):  # nothing of it left on local disk
        assert not list(directory.rglob(f"{vid}.dat")) and not list(directory.rglob(f"{vid}.cp?"))


def test_a_tiered_volume_below_the_threshold_is_left_alone(
    s3: s3_server.S3Server, cluster: Cluster
) -> None:
    vid, blobs = tiered_volume(cluster, 20)
    assert len(blobs) >= 3
    fid = next(iter(blobs))
    assert call("DELETE", f"{cluster.volume_urls[1]}/{fid}")[0] == 202
    before = [state(server, vid) for server in cluster.volume_urls]

    vacuum(cluster, vid, 0.9)
    done = shell(cluster.master_url, "lock\nvolume.tier.compact -garbageThreshold=0.9 -json\n")
    assert done.returncode == 0, done.stdout + done.stderr
    (report,) = json.loads(done.stdout)
    assert report["volumeId"] == vid and report["already"] and report["reclaimed"] == 0
    wrong = shell(cluster.master_url, "volume.tier.compact -garbageThreshold=1.5\n")
    assert wrong.returncode == 1 and "-garbageThreshold must be a ratio" in wrong.stdout
    for bad in ("-5s", "soon"):
        wrong = shell(
            cluster.master_url, f"lock\nvolume.tier.compact -volumeId={vid} -timeout={bad}\n"
        )
        assert wrong.returncode == 1 and "-timeout" in wrong.stdout, wrong.stdout

    assert [state(server, vid) for server in cluster.volume_urls] == before
    assert len(list(bucket_of(s3, cluster).list(""))) == 3


def test_only_an_earlier_upload_of_the_volume_itself_is_forgotten(
    s3: s3_server.S3Server, cluster: Cluster
) -> None:
    vid, _ = tiered_volume(cluster, 3)
    server = cluster.volume_urls[0]
    key = str(state(server, vid)["remoteStorageKey"])
    forget = f"{server}/admin/volume/tier/forget?volume={vid}&source=s3&key="
    head, _, token = key.rpartition("/")
    cases = {
        key: 409,  # still read here
        f"{head[: -len(str(vid))]}{vid + 1}/{token}": 400,  # another volume's
        "etc/passwd": 400,
        "": 400,
        "\x00": 400,
        "k" * 2000: 400,
    }
    for wrong, status in cases.items():
        got, body = call("POST", forget + quote(wrong, safe=""))
        assert got == status, (wrong, got, body)
        assert b'"error"' in body
    assert (
        call("POST", f"{server}/admin/volume/tier/forget?volume={vid}&source=gcs&key={key}")[0]
        == 400
    )
    assert len(list(bucket_of(s3, cluster).list(""))) == 3
