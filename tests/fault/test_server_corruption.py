"""Bytes damaged on disk under real `weedpy volume` processes (reliability scenarios 4 and 5).

* #4: a flipped byte in a needle's payload on one replica of a `001` volume: that server never
  answers 200 with the wrong bytes, the SDK reads the healthy replica, `weedpy fix` names the
  needle.
* #5: a needle header whose size field says huge or negative: the server starts, that needle is
  an error, its neighbours read fine, the volume takes writes.

The needle's place in the `.dat` comes from a walk of the `.dat` (the running server's `.idx`
may still lack the newest entries, which it batches in memory).
"""

from __future__ import annotations

import http.client
import io
import os
import random
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from seaweed_py.client import Client
from seaweed_py.errors import CorruptNeedle
from seaweed_py.formats.fid import parse_file_id
from seaweed_py.storage.scan import read_superblock, scan_records
from tests.disk_faults import flip_byte
from tests.fault.server_harness import Fleet, Node, Oracle, call, fleet, put
from tests.servers import skip_reason

pytestmark = pytest.mark.skipif(
    skip_reason("weedpy") is not None, reason=str(skip_reason("weedpy"))
)

NEEDLE_HEADER = 16  # cookie u32, key u64, size u32
DATA_SIZE_FIELD = 4  # a version-3 body starts with the data size


def needle_offset(vdir: Path, fid: str) -> tuple[Path, int]:
    """(the .dat, the byte offset of the newest record putting `fid`'s needle), sound or not."""
    parsed = parse_file_id(fid)
    dat = vdir / f"{parsed.volume_id}.dat"
    fd = os.open(dat, os.O_RDONLY)
    try:
        sb = read_superblock(fd, volume_id=parsed.volume_id)
        found = [
            rec.offset
            for rec in scan_records(
                fd, sb.block_size, os.fstat(fd).st_size, sb.version, volume_id=parsed.volume_id
            )
            if not rec.fatal and rec.key == parsed.key and rec.size > 0
        ]
    finally:
        os.close(fd)
    assert found, f"{fid} not in {vdir}"
    return dat, found[-1]


def get_never_wrong(url: str, fid: str, data: bytes) -> int:
    """GET `fid` on `url`: the status; a 200 with the wrong bytes fails the test. A body cut
    short (the server aborting a streamed answer) counts as a failed read, status 0."""
    try:
        status, body = call("GET", f"{url}/{fid}")
    except http.client.IncompleteRead:
        return 0
    if status == 200:
        assert body == data, f"{fid} on {url}: 200 with wrong bytes ({len(body)} of {len(data)})"
    return status


def _write_replicated(f: Fleet, sizes: list[int]) -> tuple[Oracle, list[str], str]:
    oracle = Oracle()
    fids = []
    answer = f.assign(replication="001", count=len(sizes))
    url = answer["url"]
    for i, size in enumerate(sizes):
        fid = answer["fid"] if i == 0 else f"{answer['fid']}_{i}"
        data = f.rng.randbytes(size)
        status, body = put(url, fid, data)
        assert status == 201, body
        oracle.ack(fid, data)
        fids.append(fid)
    return oracle, fids, url


class TryFirst(random.Random):
    """Makes the SDK try the replica at `url` first (its read order is a shuffle)."""

    def __init__(self, url: str) -> None:
        super().__init__(0)
        self.url = url

    def shuffle(self, x: Any) -> None:
        x.sort(key=lambda loc: loc.url != self.url)


def _flip_on_one_replica(f: Fleet, size: int, within: int = 0) -> tuple[Oracle, str, Node]:
    """Three blobs on a `001` volume; a payload byte of the middle one (among its first
    `within` bytes, if given) flipped on one replica. No scrubber: it would repair the damage
    before the checks that want to meet it."""
    f.add_master()
    f.add_volumes(2, "-scrubMBps=0")
    f.wait_registered()
    oracle, fids, _ = _write_replicated(f, [3000, size, 4000])
    victim = fids[1]
    holders = f.holders(victim)
    assert len(holders) == 2, holders
    bad = next(v for v in f.volumes if v.url == holders[0])
    dat, offset = needle_offset(bad.directory, victim)
    data = oracle.acked[victim]
    flip_byte(dat, offset + NEEDLE_HEADER + DATA_SIZE_FIELD + f.rng.randrange(within or len(data)))
    return oracle, victim, bad


@pytest.mark.parametrize("size", [5000, 3 << 20], ids=["small", "streamed"])
def test_4_flipped_payload_byte_is_never_served(tmp_path: Path, size: int) -> None:
    with fleet(tmp_path, f"scenario 4 size={size}") as f:
        oracle, victim, bad = _flip_on_one_replica(f, size)
        data = oracle.acked[victim]
        vid = parse_file_id(victim).volume_id
        fix = subprocess.run(
            [
                sys.executable,
                "-m",
                "seaweed_py",
                "fix",
                f"-dir={bad.directory}",
                f"-volumeId={vid}",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        print(fix.stdout, fix.stderr)
        assert fix.returncode == 1
        _, offset = needle_offset(bad.directory, victim)
        key = f"{parse_file_id(victim).key:x}"
        assert f"corrupt needle key={key} offset={offset}" in fix.stdout

        # Read locally only (proxied=true: no replica is asked), the damage is a 5xx.
        status, body = call("GET", f"{bad.url}/{victim}?proxied=true")
        assert status >= 500 and body != data, status
        # A client's read is answered with the healthy replica's bytes (read repair), never
        # the damaged ones; the SDK reads it whichever replica it tries first.
        assert get_never_wrong(bad.url, victim, data) == 200
        healthy = next(h for h in f.holders(victim) if h != bad.url)
        assert call("GET", f"{healthy}/{victim}") == (200, data)
        if size < 1 << 20:
            for first in f.holders(victim):
                with Client(f.master_url, rng=TryFirst(first)) as client:
                    assert client.download(victim) == data
        oracle.check(f.holders)


def test_4_sdk_falls_back_from_a_corrupt_streamed_replica(tmp_path: Path) -> None:
    """The corrupt replica, tried first, answers 500 before any byte (it verifies a streamed
    needle first) or, had its bytes rotted after a verification it remembers, sends most of
    the blob and breaks off: either way the SDK reads the healthy replica, never completing a
    prefix with the other's tail."""
    with fleet(tmp_path, "scenario 4 sdk streamed") as f:
        oracle, victim, bad = _flip_on_one_replica(f, 3 << 20, within=2 << 20)
        data = oracle.acked[victim]
        with Client(f.master_url, rng=TryFirst(bad.url)) as client:
            assert client.download(victim) == data
            target = tmp_path / "copy"
            assert client.download_to(victim, target) == len(data)
            assert target.read_bytes() == data
            saved = client.save(victim, tmp_path, name="saved")
            assert saved.read_bytes() == data
            # A caller's stream cannot take bytes back: an error, never a spliced blob (the
            # download completes only if the bytes that arrived held no damage).
            stream = io.BytesIO()
            try:
                client.download_to(victim, stream)
            except CorruptNeedle as exc:
                print("stream download refused:", exc)
            else:
                assert stream.getvalue() == data


@pytest.mark.parametrize("size_field", [0x7FFFFFF0, 0xFFFFFFFB], ids=["huge", "negative"])
def test_5_corrupt_needle_header_size(tmp_path: Path, size_field: int) -> None:
    with fleet(tmp_path, f"scenario 5 size={size_field:#x}") as f:
        f.add_master()
        node = f.add_volume()
        f.wait_registered()
        oracle = Oracle()
        answer = f.assign(count=6)
        fids = [answer["fid"]] + [f"{answer['fid']}_{i}" for i in range(1, 6)]
        for fid in fids:
            data = f.rng.randbytes(f.rng.randrange(100, 5000))
            assert put(node.url, fid, data)[0] == 201
            oracle.ack(fid, data)
        victim = fids[2]
        dat, offset = needle_offset(node.directory, victim)
        assert node.terminate() == 0

        fd = os.open(dat, os.O_RDWR)
        try:
            os.pwrite(fd, struct.pack(">I", size_field), offset + 12)
        finally:
            os.close(fd)

        node.start()
        f.wait_registered()
        status = get_never_wrong(node.url, victim, oracle.acked.pop(victim))
        assert status >= 500 or status == 0, status
        oracle.check(lambda fid: [node.url])
        fresh = f"{fids[-1]}0"
        assert put(node.url, fresh, b"after the damage")[0] == 201
        oracle.ack(fresh, b"after the damage")
        oracle.check(lambda fid: [node.url])
        assert node.alive()
