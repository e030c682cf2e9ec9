"""The master SIGKILLed and restarted alone while clients keep asking (reliability scenario 18):
assigns that arrive before the volume servers have heartbeated again are refused (503) or served
from persisted counters, never a file key or volume id handed out before the crash.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from seaweed_py.formats.fid import parse_file_id
from tests.fault.server_harness import Fleet, Oracle, call, fleet, get_json, put
from tests.servers import skip_reason

pytestmark = pytest.mark.skipif(
    skip_reason("weedpy") is not None, reason=str(skip_reason("weedpy"))
)


def _assign_and_write(
    f: Fleet, oracle: Oracle, seen: list[tuple[int, int]], statuses: dict[int, int]
) -> None:
    for replication in ("000", "001"):
        status, body = call(
            "GET", f"{f.master_url}/dir/assign?replication={replication}&count=3", timeout=5.0
        )
        statuses[status] = statuses.get(status, 0) + 1
        if status != 200:
            assert status in (406, 503), (status, body)
            continue
        answer = json.loads(body)
        fid = parse_file_id(answer["fid"])
        seen.extend((fid.volume_id, fid.key + i) for i in range(answer["count"]))
        data = f.rng.randbytes(f.rng.randrange(10, 3000))
        status, body = put(answer["url"], answer["fid"], data)
        if status == 201:
            oracle.ack(answer["fid"], data)
        else:  # the volume server may not know the restarted master's view yet
            assert status in (404, 500, 503), (status, body)


def _volume_ids(f: Fleet) -> set[int]:
    """Every volume id the volume servers hold."""
    return {int(v["Id"]) for node in f.volumes for v in get_json(f"{node.url}/status")["Volumes"]}


def test_18_master_sigkilled_and_restarted_alone(tmp_path: Path) -> None:
    with fleet(tmp_path, "scenario 18") as f:
        master = f.add_master()
        f.add_volumes(2, "-max=40")
        f.wait_registered()
        oracle = Oracle()
        seen: list[tuple[int, int]] = []
        statuses: dict[int, int] = {}
        for _ in range(20):
            _assign_and_write(f, oracle, seen, statuses)
        assert get_json(f"{f.master_url}/vol/grow?count=2&replication=000")
        vids_before = _volume_ids(f)
        print("before the kill:", len(seen), "keys; volumes", sorted(vids_before))

        master.kill()
        master.start()
        deadline = time.monotonic() + 2.5  # past the volume servers' reconnect and warm-up
        while time.monotonic() < deadline:
            _assign_and_write(f, oracle, seen, statuses)
        print("assign statuses:", statuses)
        f.wait_registered()

        status, body = call("GET", f"{f.master_url}/vol/grow?count=2&replication=000")
        assert status == 200, (status, body)
        new_vids = _volume_ids(f) - vids_before
        print("volumes grown after the restart:", sorted(new_vids))
        assert len(new_vids) >= 2
        assert min(new_vids) > max(vids_before), (sorted(vids_before), sorted(new_vids))

        duplicates = len(seen) - len(set(seen))
        assert duplicates == 0, f"{duplicates} (volume, key) pairs were handed out twice"
        oracle.check(f.holders)
