"""`weedpy shell` tiers a replicated volume of a real weedpy cluster (master and two volume
servers as processes, their S3 settings in a weed-style master.toml) and brings it back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from seaweed_py.storage.backend import Backends
from seaweed_py.storage.backend.settings import BackendSource
from tests import s3_server
from tests.servers import Cluster, call, get_json, shell, start_cluster

s3 = s3_server.s3


def upload(cluster: Cluster, count: int) -> dict[str, bytes]:
    blobs: dict[str, bytes] = {}
    for i in range(count):
        assigned = get_json(f"{cluster.master_url}/dir/assign?replication=001")
        data = os.urandom(100 + i * 37)
        status, _ = call("PUT", f"{assigned['url']}/{assigned['fid']}", data)
        assert status == 201
        blobs[assigned["fid"]] = data
    return blobs


def read_everywhere(cluster: Cluster, blobs: dict[str, bytes]) -> None:
    for fid, data in blobs.items():
        for server in cluster.volume_urls:
            assert call("GET", f"{server}/{fid}") == (200, data), (server, fid)


@pytest.fixture
def cluster(s3: s3_server.S3Server, tmp_path: Path) -> object:
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


def test_upload_list_and_download_through_the_shell(
    s3: s3_server.S3Server, cluster: Cluster
) -> None:
    blobs = upload(cluster, 20)
    vid = int(next(iter(blobs)).split(",")[0])
    mine = {fid: data for fid, data in blobs.items() if fid.startswith(f"{vid},")}

    done = shell(cluster.master_url, f"lock\nvolume.tier.upload -volumeId={vid} -dest=s3\n")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"volume {vid} moved to s3.default as " in done.stdout
    assert "mounted on" in done.stdout  # the other replica serves the same object
    read_everywhere(cluster, mine)

    listed = shell(cluster.master_url, "volume.list -json")
    assert listed.returncode == 0, listed.stderr
    tree = json.loads(listed.stdout)
    rows = [
        v
        for dc in tree["dataCenters"]
        for rack in dc["racks"]
        for node in rack["nodes"]
        for v in node["volumes"]
        if v["id"] == vid
    ]
    assert len(rows) == 2 and all(r["remoteStorageName"] == "s3.default" for r in rows), rows
    human = shell(cluster.master_url, "volume.list")
    assert ", RemoteStorageName:s3.default " in human.stdout

    back = shell(cluster.master_url, f"lock\nvolume.tier.download -volumeId={vid} -json")
    assert back.returncode == 0, back.stdout + back.stderr
    report = json.loads(back.stdout)
    assert report["volumeId"] == vid and len([report["source"], *report["replicas"]]) == 2
    read_everywhere(cluster, mine)
    bucket = cluster.bucket  # type: ignore[attr-defined]
    store = Backends(BackendSource(env=s3.env(bucket), search_dirs=()).load()).get("s3")
    assert [o.key for o in store.list("")] == []  # the object went with the last holder
    for log in cluster.directory.glob("*.log"):
        assert s3.secret_key not in log.read_text(errors="replace")


def test_mistakes_are_one_line_and_a_failing_status(cluster: Cluster) -> None:
    blobs = upload(cluster, 2)
    vid = int(next(iter(blobs)).split(",")[0])
    cases = {
        f"volume.tier.upload -volumeId={vid}": "-dest is required",
        "volume.tier.upload -dest=s3": "-volumeId is required",
        f"volume.tier.upload -volumeId={vid} -dest=s3.cold": "s3.cold not found, configured: s3.default",
        f"volume.tier.upload -volumeId={vid} -dest=gcs": "not a backend name",
        f"volume.tier.upload -volumeId={vid} -dest=s3 -force": "flag provided but not defined",
        f"volume.tier.upload -volumeId={vid} -dest=s3 -collection=x": "collection",
        "volume.tier.upload -volumeId=4000 -dest=s3": "volume 4000 not found",
        f"volume.tier.download -volumeId={vid}": "",
        "volume.nothing": "unknown command",
    }
    done = shell(cluster.master_url, "lock\n" + "\n".join(cases) + "\n")
    assert done.returncode == 1, done.stdout
    errors = [out for out in done.stdout.splitlines() if out.startswith("error:")]
    wanted = [says for says in cases.values() if says]
    assert len(errors) == len(wanted), done.stdout
    for error, says in zip(errors, wanted, strict=True):
        assert says in error, (says, error)
    assert "already on local disk" in done.stdout
    read_everywhere(cluster, blobs)  # nothing changed
    assert call("PUT", f"{cluster.volume_urls[0]}/{vid},ff00000001", b"x")[0] == 201
    helped = shell(cluster.master_url, "help\nvolume.tier.upload -h\n")
    assert "volume.tier.download" in helped.stdout and "-keepLocalDatFile" in helped.stdout


@pytest.mark.parametrize(
    ("env", "toml", "says"),
    [
        ({"WEEDPY_S3_ENDPOINT": "http://127.0.0.1:9"}, "", "WEEDPY_S3_BUCKET is not"),
        ({"WEEDPY_S3_BUCKET": "b1", "WEEDPY_S3_ENDPOINT": "s3.example"}, "", "not an http"),
        ({}, "[storage.backend.s3.default]\nenabled = true\nbucket = 'b1'\nkey = 'x'\n", "key"),
    ],
)
def test_volume_server_with_unusable_s3_settings_stops_with_one_line(
    tmp_path: Path, env: dict[str, str], toml: str, says: str
) -> None:
    if toml:
        (tmp_path / "master.toml").write_text(toml)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WEEDPY_S3_"))}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "seaweed_py",
            f"-config_dir={tmp_path}",
            "volume",
            f"-dir={tmp_path}",
            "-port=0",
            "-master=127.0.0.1:9",
            "-ip=127.0.0.1",
        ],
        env={**clean, **env, "WEEDPY_S3_SECRET_KEY": "topsecret-42"} if env else clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert lines[0].startswith("weedpy volume: tiering: ") and says in lines[0]
    assert "topsecret-42" not in done.stderr + done.stdout
