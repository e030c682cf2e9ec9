"""A real weedpy master with real weedpy volume servers in two racks: placement across racks, and
what happens when a volume server dies without saying goodbye."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.servers import VolumeSpec, skip_reason, start_cluster


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _post(url: str, body: bytes) -> int:
    req = urllib.request.Request(
        url, body, {"Content-Type": "application/octet-stream"}, method="POST"
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status


def _read(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        data: bytes = resp.read()
        return data


@pytest.mark.skipif(skip_reason("weedpy") is not None, reason=str(skip_reason("weedpy")))
def test_rack_spread_and_a_killed_volume_server(tmp_path: Path) -> None:
    specs = [VolumeSpec("dc1", "r1", 4), VolumeSpec("dc1", "r1", 4), VolumeSpec("dc1", "r2", 4)]
    with start_cluster("weedpy", tmp_path, specs, replication="010", pulse_seconds=1) as cluster:
        master = cluster.master_http
        status, answer = _get(f"{master}/dir/assign?replication=010")
        assert status == 200
        fid, vid = answer["fid"], answer["fid"].split(",")[0]
        _, lookup = _get(f"{master}/dir/lookup?volumeId={vid}")
        urls = sorted(loc["url"] for loc in lookup["locations"])
        assert len(urls) == 2 and cluster.volume_urls[2] in urls  # one copy per rack
        assert _post(f"http://{answer['url']}/{fid}", b"both racks") == 201
        for url in urls:
            assert _read(f"http://{url}/{fid}") == b"both racks"

        cluster.kill_volume(2)  # the only server in r2, no goodbye
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            _, lookup = _get(f"{master}/dir/lookup?volumeId={vid}")
            if len(lookup.get("locations", [])) == 1:
                break
            time.sleep(0.2)
        assert [loc["url"] for loc in lookup["locations"]] != [cluster.volume_urls[2]]
        assert len(lookup["locations"]) == 1
        # One rack left: "010" can neither be written nor grown, and the answer says why.
        status, body = _get(f"{master}/dir/assign?replication=010")
        assert status == 406 and "racks" in body["error"]
        # Unreplicated writes carry on in the surviving rack.
        status, answer = _get(f"{master}/dir/assign?replication=000")
        assert status == 200 and answer["url"] in cluster.volume_urls[:2]
