"""Vacuum across the implementations (spec §9): same answers, and compacted volumes that cross.

- `/vol/vacuum` answers alike on both masters (the `/dir/status` body; 406 for a threshold
  that is no float) and reclaims a volume's garbage on both.
- A volume weedpy vacuumed (through its master's `/vol/vacuum`, so the volume server's commit)
  is served by `weed` 4.48, every needle with the bytes and headers weedpy served before.
- A volume `weed compact` compacted offline (its `.cpd`/`.cpx` renamed to `.dat`/`.idx`, as its
  help says) is served by weedpy likewise, and weedpy vacuums it once more.
- `weedpy compact` writes what `weed compact` writes: `.cpd`/`.cpx`, the volume untouched, and
  the renamed files open in `weed`.

The compacted files differ in layout (weedpy copies needles in file order, the reference in key
order: docs/compat.md); each implementation reads the other's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from seaweed_py.cli.main import main
from seaweed_py.storage.volume import Volume
from tests.parity.blobs import assign, put_raw, split_fid
from tests.parity.client import get, request
from tests.parity.targets import Endpoints, skip_unless_runnable
from tests.parity.test_weed_reads_weedpy_volume import (
    COLLECTION,
    COOKIE,
    VOLUME_ID,
    assert_served,
    store_variety,
    volume_directory,
    wait_for_volume,
    weedpy_blobs,
    write_weedpy_volume,
)
from tests.servers import WEED, Impl, start_cluster

pytestmark = pytest.mark.parity


def _garbage(target: Endpoints, count: int = 12) -> tuple[str, list[str], list[str]]:
    """`count` blobs in one volume (one batch assign), every other one deleted: (vid, kept
    fids, deleted fids)."""
    batch = assign(target, f"count={count}")
    vid = split_fid(batch.fid)[0]
    fids = [batch.fid] + [f"{batch.fid}_{i}" for i in range(1, count)]
    for i, fid in enumerate(fids):
        reply = put_raw(batch.url, fid, os.urandom(3000 + i), "application/octet-stream")
        assert reply.status == 201, reply.describe()
    for fid in fids[1::2]:
        assert request("DELETE", f"{batch.url}/{fid}").status == 202
    return vid, fids[::2], fids[1::2]


def _volume_status(volume: str, vid: str) -> dict[str, object]:
    [found] = [v for v in get(f"{volume}/status").json()["Volumes"] if str(v["Id"]) == vid]
    return dict(found)


def test_vol_vacuum_refuses_a_threshold_that_is_no_float(cluster: Endpoints) -> None:
    refused = request("GET", f"{cluster.master}/vol/vacuum?garbageThreshold=abc")
    assert refused.status == 406
    assert refused.json() == {"error": "garbageThreshold abc is not a valid float number"}


@pytest.mark.parametrize(
    "impl", [pytest.param("weed", marks=pytest.mark.slow), pytest.param("weedpy")]
)
def test_vol_vacuum_reclaims_garbage_and_answers_the_status(impl: Impl, tmp_path: Path) -> None:
    """The default run vacuums weedpy (and asks both implementations for the 406 above); the
    `slow` run vacuums `weed` too, whose master holds `/vol/vacuum` some 20 s before it
    compacts, which is why that case is not in the default run."""
    skip_unless_runnable(impl)
    cluster = start_cluster(impl, tmp_path)
    try:
        target = Endpoints(impl, cluster.master_url, cluster.volume_urls[0])
        vid, kept, deleted = _garbage(target)
        refused = request("GET", f"{target.master}/vol/vacuum?garbageThreshold=abc")
        assert refused.status == 406
        assert refused.json() == {"error": "garbageThreshold abc is not a valid float number"}
        before = _volume_status(target.volume, vid)
        assert before["DeletedByteCount"] and before["CompactRevision"] == 0
        reply = request("GET", f"{target.master}/vol/vacuum?garbageThreshold=0.3", timeout=120)
        assert reply.status == 200, reply.describe()
        assert {"Topology", "Version"} <= set(reply.json())
        after = _volume_status(target.volume, vid)
        assert after["CompactRevision"] == 1 and after["DeletedByteCount"] == 0
        assert after["FileCount"] == len(kept)
        for fid in kept:
            assert get(f"{target.volume}/{fid}").status == 200, fid
        for fid in deleted:
            assert get(f"{target.volume}/{fid}").status == 404, fid
    finally:
        cluster.stop()


def test_weed_serves_a_volume_weedpy_vacuumed(tmp_path: Path) -> None:
    skip_unless_runnable("weed")
    skip_unless_runnable("weedpy")
    cluster = start_cluster("weedpy", tmp_path, volume_args=["-largeDisk"])
    try:
        target = Endpoints("weedpy", cluster.master_url, cluster.volume_urls[0])
        live, gone = store_variety(target)
        vid, kept, deleted = _garbage(target)
        answers = {fid: get(f"{target.volume}/{fid}").body for fid in kept}
        # (store_variety's 3 MiB blob may share the volume: its few KB of garbage are then
        # under 1 % of it, which a 0.01 threshold left alone about one run in seven)
        vacuum = f"/vol/vacuum?volumeId={vid}&garbageThreshold=0.0001"
        reply = request("GET", f"{target.master}{vacuum}", timeout=120)
        assert reply.status == 200, reply.describe()
        assert _volume_status(target.volume, vid)["CompactRevision"] == 1
    finally:
        cluster.stop()
    served = tmp_path / "served"
    shutil.copytree(volume_directory(cluster.directory), served)
    assert not list(served.glob("*.cp?"))
    other = start_cluster("weed", tmp_path, volume_args=[f"-dir={served}"], wait_writable=False)
    try:
        volume = other.volume_urls[0]
        for v in {split_fid(f)[0] for f in [*(u.fid for u in live), *gone, *kept]}:
            wait_for_volume(other.master_url, int(v))
        assert _volume_status(volume, vid)["CompactRevision"] == 1
        for u in live:
            plain = get(f"{volume}/{u.fid}")
            assert plain.status == 200 and plain.body == u.plain, u.fid
            for name, value in u.headers.items():
                assert plain.header(name) == value, (u.fid, name)
        for fid, body in answers.items():
            assert get(f"{volume}/{fid}").body == body, fid
        for fid in [*gone, *deleted]:
            assert get(f"{volume}/{fid}").status == 404, fid
    finally:
        other.stop()


def test_weedpy_serves_a_volume_weed_compacted_offline(tmp_path: Path) -> None:
    skip_unless_runnable("weed")
    skip_unless_runnable("weedpy")
    cluster = start_cluster("weed", tmp_path)
    try:
        target = Endpoints("weed", cluster.master_url, cluster.volume_urls[0])
        live, gone = store_variety(target)
        vid, kept, deleted = _garbage(target)
        answers = {fid: get(f"{target.volume}/{fid}").body for fid in kept}
    finally:
        cluster.stop()
    served = tmp_path / "served"
    shutil.copytree(volume_directory(cluster.directory), served)
    before = (served / f"{vid}.dat").stat().st_size
    done = subprocess.run(
        [str(WEED), "compact", f"-dir={served}", f"-volumeId={vid}"],
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    os.replace(served / f"{vid}.cpd", served / f"{vid}.dat")
    os.replace(served / f"{vid}.cpx", served / f"{vid}.idx")
    assert (served / f"{vid}.dat").stat().st_size < before

    other = start_cluster("weedpy", tmp_path, volume_args=[f"-dir={served}"], wait_writable=False)
    try:
        volume = other.volume_urls[0]
        for v in {split_fid(f)[0] for f in [*(u.fid for u in live), *gone, *kept]}:
            wait_for_volume(other.master_url, int(v))
        assert _volume_status(volume, vid)["CompactRevision"] == 1

        def check() -> None:
            for u in live:
                plain = get(f"{volume}/{u.fid}")
                assert plain.status == 200 and plain.body == u.plain, u.fid
                for name, value in u.headers.items():
                    assert plain.header(name) == value, (u.fid, name)
            for fid, body in answers.items():
                assert get(f"{volume}/{fid}").body == body, fid
            for fid in [*gone, *deleted]:
                assert get(f"{volume}/{fid}").status == 404, fid

        check()
        # ... and vacuums it again: a delete, then every volume with garbage.
        assert request("DELETE", f"{volume}/{kept[0]}").status == 202
        answers.pop(kept[0])
        deleted.append(kept[0])
        vacuum = f"/vol/vacuum?volumeId={vid}&garbageThreshold=0.0001"  # as above
        reply = request("GET", f"{other.master_url}{vacuum}", timeout=120)
        assert reply.status == 200
        assert _volume_status(volume, vid)["CompactRevision"] == 2
        check()
    finally:
        other.stop()


def test_weedpy_compact_writes_what_weed_compact_writes(tmp_path: Path) -> None:
    skip_unless_runnable("weed")
    live, deleted, old = weedpy_blobs()
    write_weedpy_volume(tmp_path, live, deleted, old)
    base = tmp_path / f"{COLLECTION}_{VOLUME_ID}"
    dat = Path(f"{base}.dat").read_bytes()
    args = [f"-dir={tmp_path}", f"-volumeId={VOLUME_ID}", f"-collection={COLLECTION}"]
    assert main(["compact", *args]) == 0
    assert Path(f"{base}.dat").read_bytes() == dat  # the volume itself is untouched
    assert Path(f"{base}.cpd").stat().st_size < len(dat)
    assert Path(f"{base}.cpx").stat().st_size % 17 == 0  # its 5-byte offsets kept
    os.replace(f"{base}.cpd", f"{base}.dat")
    os.replace(f"{base}.cpx", f"{base}.idx")
    cluster = start_cluster("weed", tmp_path, volume_args=[f"-dir={tmp_path}"], wait_writable=False)
    try:
        wait_for_volume(cluster.master_url, VOLUME_ID)
        for b in live:
            assert_served(cluster.volume_urls[0], b)
        for b in deleted:
            assert get(f"{cluster.volume_urls[0]}/{b.fid}").status == 404
    finally:
        cluster.stop()
    volume = Volume.open(tmp_path, VOLUME_ID, collection=COLLECTION)
    try:
        assert volume.compact_revision == 1
        assert volume.read(live[0].key, COOKIE).data == live[0].data
    finally:
        volume.close()
