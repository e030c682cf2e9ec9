"""Bit rot under real `weedpy volume` processes: found, repaired from a replica, never served
(reliability scenario 4; issue 14's scrubber and read repair).

* a read that meets a rotted needle answers with a replica's bytes and repairs the local copy;
* the background scrubber (`-scrubMBps`) finds and repairs rotted needles nobody reads, on both
  servers of a volume;
* a needle rotted on every replica stays reported (`/status`, `/metrics`, one log line), is
  listed by `/admin/volume/scrub`, and is never answered with a 200.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from seaweed_py.formats.fid import parse_file_id
from tests.disk_faults import flip_byte
from tests.fault.server_harness import Fleet, Node, call, fleet, put, wait_for
from tests.fault.test_server_corruption import (
    DATA_SIZE_FIELD,
    NEEDLE_HEADER,
    get_never_wrong,
    needle_offset,
)
from tests.servers import skip_reason

pytestmark = pytest.mark.skipif(
    skip_reason("weedpy") is not None, reason=str(skip_reason("weedpy"))
)


def two_copies(f: Fleet, sizes: list[int], *extra: str) -> tuple[dict[str, bytes], Node, Node]:
    f.add_master()
    f.add_volumes(2, *extra)
    f.wait_registered()
    answer = f.assign(replication="001", count=len(sizes))
    blobs = {}
    for i, size in enumerate(sizes):
        fid = answer["fid"] if i == 0 else f"{answer['fid']}_{i}"
        blobs[fid] = f.rng.randbytes(size)
        assert put(answer["url"], fid, blobs[fid])[0] == 201
    a, b = f.volumes
    return blobs, a, b


def rot(f: Fleet, node: Node, fid: str, size: int) -> None:
    dat, offset = needle_offset(node.directory, fid)
    flip_byte(dat, offset + NEEDLE_HEADER + DATA_SIZE_FIELD + f.rng.randrange(size))


def local_read(node: Node, fid: str) -> tuple[int, bytes]:
    """What `node` itself holds: `proxied=true` keeps it from asking a replica."""
    return call("GET", f"{node.url}/{fid}?proxied=true")


def metric(node: Node, name: str) -> float:
    text = call("GET", f"{node.url}/metrics")[1].decode()
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def corrupt_listed(node: Node) -> list[dict[str, object]]:
    status = json.loads(call("GET", f"{node.url}/status")[1])
    return [c for v in status["Volumes"] for c in v.get("CorruptNeedles", [])]


@pytest.mark.parametrize("size", [4000, 3 << 20], ids=["small", "streamed"])
def test_4_a_read_of_a_rotted_needle_gets_a_replicas_bytes_and_repairs_it(
    tmp_path: Path, size: int
) -> None:
    with fleet(tmp_path, f"read repair {size}") as f:
        blobs, a, b = two_copies(f, [1000, size, 2000], "-scrubMBps=0")
        fid = list(blobs)[1]
        rot(f, a, fid, size)
        assert local_read(a, fid)[0] >= 500
        assert get_never_wrong(a.url, fid, blobs[fid]) == 200
        wait_for("the local copy to be repaired", lambda: local_read(a, fid) == (200, blobs[fid]))
        assert corrupt_listed(a) == []
        assert metric(a, "weedpy_volume_read_repairs_total") >= 1
        assert metric(a, "weedpy_volume_needle_repairs_total") >= 1
        for fid, data in blobs.items():
            for node in (a, b):
                assert local_read(node, fid) == (200, data)


def test_4_the_scrubber_repairs_what_nobody_reads_on_both_servers(tmp_path: Path) -> None:
    with fleet(tmp_path, "scrubber") as f:
        sizes = [f.rng.randrange(100, 30_000) for _ in range(40)] + [2 << 20]
        # A pass every second: the first passes run before anything is rotted.
        blobs, a, b = two_copies(f, sizes, "-scrubMBps=64", "-scrubPassSeconds=1")
        fids = list(blobs)
        on_a, on_b = [*fids[3:6], fids[-1]], fids[10:12]
        for fid in on_a:
            rot(f, a, fid, len(blobs[fid]))
        for fid in on_b:
            rot(f, b, fid, len(blobs[fid]))
        wait_for(
            "the scrubbers to repair every rotted needle",
            lambda: (
                all(local_read(a, x) == (200, blobs[x]) for x in on_a)
                and all(local_read(b, x) == (200, blobs[x]) for x in on_b)
            ),
            timeout=60,
        )
        assert metric(a, "weedpy_volume_scrub_corrupt_total") >= len(on_a)
        assert metric(a, "weedpy_volume_needle_repairs_total") >= len(on_a)
        assert metric(b, "weedpy_volume_needle_repairs_total") >= len(on_b)
        assert metric(a, "weedpy_volume_scrubbed_needles_total") >= len(fids)
        for fid, data in blobs.items():
            for node in (a, b):
                assert local_read(node, fid) == (200, data)


def test_4_a_needle_rotted_everywhere_is_reported_never_served(tmp_path: Path) -> None:
    with fleet(tmp_path, "rotted everywhere") as f:
        blobs, a, b = two_copies(f, [1500, 2500, 3500], "-scrubMBps=0")
        fid = list(blobs)[1]
        for node in (a, b):
            rot(f, node, fid, len(blobs[fid]))
        for _ in range(3):
            for node in (a, b):
                assert get_never_wrong(node.url, fid, blobs[fid]) >= 500
        vid = parse_file_id(fid).volume_id
        status, body = call("POST", f"{a.url}/admin/volume/scrub?volume={vid}")
        assert status == 200, body
        report = json.loads(body)
        assert report["needles"] == 3
        key = parse_file_id(fid).key
        assert [(c["key"], c["repaired"]) for c in report["corrupt"]] == [(key, False)]
        for node in (a, b):
            assert [c["Key"] for c in corrupt_listed(node)] == [f"{key:x}"]
            assert metric(node, "weedpy_volume_corrupt_needles") == 1
            logged = node.tail(1 << 20).count(f"corrupt needle key={key:x} ")
            assert logged == 1, f"{node.url} logged it {logged} times"
        for other in list(blobs)[::2]:
            assert call("GET", f"{a.url}/{other}") == (200, blobs[other])
