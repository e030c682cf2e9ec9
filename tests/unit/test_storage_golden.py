"""The storage engine on volumes the reference wrote: open, read every live needle, scrub.

Copies of `../shared/golden/` files are used (opening may repair a volume's tail).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest

from seaweed_py.cli.export import run as export_run
from seaweed_py.cli.fix import run as fix_run
from seaweed_py.errors import CorruptNeedle, NeedleNotFound
from seaweed_py.formats.fid import parse_file_id
from seaweed_py.formats.idx import IDX4, decode_entries, iter_entries
from seaweed_py.formats.needle import FLAG_GZIP
from seaweed_py.storage.check import check_volume, rebuild_index
from seaweed_py.storage.needle_map import replay_index
from seaweed_py.storage.volume import FsyncMode, Volume

GOLDEN = Path(__file__).resolve().parents[3] / "shared" / "golden"
REPO = GOLDEN / "seaweedfs-repo"
WEED48 = GOLDEN / "weed-4.48-8000GB"

pytestmark = pytest.mark.skipif(
    not GOLDEN.is_dir(), reason=f"golden files not found at {GOLDEN} (shared/ beside the checkout)"
)


def copy_repo_volume(name: str, dest: Path, vid: int = 1) -> Path:
    """`test_files__<name>_volume.*` as volume `<vid>` of collection `<name>` in `dest`."""
    for ext in ("dat", "idx"):
        target = dest / f"{name}_{vid}.{ext}"
        shutil.copyfile(REPO / f"test_files__{name}_volume.{ext}", target)
    return dest


def live_keys(idx: bytes) -> dict[int, int]:
    live: dict[int, int] = {}
    for key, offset, size in iter_entries(idx, IDX4):
        if offset and size >= 0:
            live[key] = size
        else:
            live.pop(key, None)
    return live


def test_bitrot_volume_reports_exactly_needles_3_and_48(tmp_path: Path) -> None:
    copy_repo_volume("bitrot", tmp_path)
    report = check_volume(tmp_path, 1, "bitrot")
    assert [c.key for c in report.corrupt] == [3, 48]
    assert all("crc mismatch" in c.reason for c in report.corrupt)
    assert report.tail_error == "1 trailing bytes" and report.tail_offset == 942856
    assert not report.unindexed


def test_healthy_and_empty_volumes_report_nothing(tmp_path: Path) -> None:
    copy_repo_volume("healthy", tmp_path)
    copy_repo_volume("empty", tmp_path)
    healthy = check_volume(tmp_path, 1, "healthy")
    assert healthy.ok and healthy.records == 27 and healthy.indexed == 27
    assert check_volume(tmp_path, 1, "empty").ok


def test_bitrot_volume_opens_serves_the_sound_needles_and_never_the_rotten(tmp_path: Path) -> None:
    copy_repo_volume("bitrot", tmp_path)
    v = Volume.open(tmp_path, 1, collection="bitrot", fsync_mode=FsyncMode.NONE)
    try:
        live = live_keys((REPO / "test_files__bitrot_volume.idx").read_bytes())
        assert len(live) == 7  # 17 needles written, 10 of them deleted
        assert v.recovery.dat_bytes_cut == 1  # the stray trailing byte
        served = 0
        for key in live:
            cookie = v.read_meta(key, _cookie(v, key)).needle.cookie
            if key in (3, 48):
                with pytest.raises(CorruptNeedle):
                    v.read(key, cookie)
            else:
                assert v.read(key, cookie).name.startswith(b"file_")
                served += 1
        assert served == len(live) - len({3, 48} & set(live))
        assert v.live_count == len(live)
    finally:
        v.close()


def _cookie(v: Volume, key: int) -> int:
    hit = v.lookup(key)
    assert hit is not None
    with open(v.path(".dat"), "rb") as f:
        f.seek(hit[0])
        return int.from_bytes(f.read(4), "big")


def test_rebuilt_index_of_the_healthy_volume_has_the_same_live_set(tmp_path: Path) -> None:
    copy_repo_volume("healthy", tmp_path)
    original = (tmp_path / "healthy_1.idx").read_bytes()
    assert rebuild_index(tmp_path, 1, "healthy") == 27
    rebuilt = (tmp_path / "healthy_1.idx").read_bytes()
    assert live_keys(rebuilt) == live_keys(original)
    assert replay_index(*decode_entries(rebuilt, IDX4))[1].delete_count == 10


@pytest.mark.parametrize("name", ["healthy", "empty"])
def test_repo_volumes_open_clean_and_read_every_live_needle(tmp_path: Path, name: str) -> None:
    copy_repo_volume(name, tmp_path)
    v = Volume.open(tmp_path, 1, collection=name, fsync_mode=FsyncMode.NONE)
    try:
        assert not v.recovery
        assert str(v.replica_placement) == "002"
        live = live_keys((REPO / f"test_files__{name}_volume.idx").read_bytes())
        for key, size in live.items():
            n = v.read(key, _cookie(v, key))
            assert n.name.startswith(b"file_") and n.flags == 0x0E
            hit = v.lookup(key)
            assert hit is not None and hit[1] == size
        assert v.live_count == len(live)
    finally:
        v.close()


def test_legacy_crc_volume_reads_every_needle(tmp_path: Path) -> None:
    for ext in ("dat", "idx"):
        shutil.copyfile(REPO / f"erasure_coding__1.{ext}", tmp_path / f"1.{ext}")
    v = Volume.open(tmp_path, 1, fsync_mode=FsyncMode.NONE, index_kind="mmap")
    try:
        live = live_keys((tmp_path / "1.idx").read_bytes())
        assert len(live) == 298
        gz = sum(bool(v.read(k, _cookie(v, k)).flags & FLAG_GZIP) for k in live)
        assert gz == 293
    finally:
        v.close()


def _manifest() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads((WEED48 / "manifest.json").read_text())["cases"]
    return cases


@pytest.mark.parametrize("index_kind", ["memory", "mmap"])
def test_weed_448_five_byte_volumes_give_the_manifest_bodies(
    tmp_path: Path, index_kind: str
) -> None:
    for f in WEED48.iterdir():
        if f.suffix in (".dat", ".idx", ".vif"):
            shutil.copyfile(f, tmp_path / f.name)
    volumes = {
        4: Volume.open(
            tmp_path, 4, collection="golden", index_kind=index_kind, fsync_mode=FsyncMode.NONE
        ),
        10: Volume.open(
            tmp_path, 10, collection="goldenttl", index_kind=index_kind, fsync_mode=FsyncMode.NONE
        ),
    }
    try:
        assert all(v.layout.entry_size == 17 and not v.recovery for v in volumes.values())
        for case in _manifest():
            fid = parse_file_id(case["fid"])
            v = volumes[fid.volume_id]
            if case["get_status"] == 404:
                with pytest.raises(NeedleNotFound):
                    v.read(fid.key, fid.cookie)
                continue
            n = v.read(fid.key, fid.cookie)
            body = gzip.decompress(n.data) if n.flags & FLAG_GZIP else n.data
            assert hashlib.sha256(body).hexdigest() == case["sha256"], case["desc"]
            assert len(body) == case["length"]
            if "etag" in case:
                assert case["etag"] == f'"{n.checksum:08x}"'
            with pytest.raises(NeedleNotFound):
                v.read(fid.key, fid.cookie ^ 0xFFFFFFFF)
        assert str(volumes[10].ttl) == "3d"
    finally:
        for v in volumes.values():
            v.close()


def test_weedpy_fix_prints_the_corrupt_needles_and_rebuilds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy_repo_volume("bitrot", tmp_path)
    copy_repo_volume("healthy", tmp_path)
    assert fix_run(["-dir", str(tmp_path), "-collection", "healthy", "-volumeId", "1"]) == 0
    assert fix_run([f"-dir={tmp_path}", "-collection=bitrot", "-volumeId=1", "-rebuild"]) == 1
    out = capsys.readouterr().out
    assert "corrupt needle key=3 offset=8 " in out
    assert "corrupt needle key=30 offset=913216 " in out
    assert out.count("corrupt needle") == 2
    assert "rebuilt bitrot_1.idx: 27 entries" in out


def test_weedpy_export_lists_and_tars_the_live_needles_without_touching_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for ext in ("dat", "idx", "vif"):
        shutil.copyfile(WEED48 / f"golden_4.{ext}", tmp_path / f"golden_4.{ext}")
    before = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in tmp_path.iterdir())
    assert export_run([f"-dir={tmp_path}", "-collection=golden", "-volumeId=4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    live = {c["fid"] for c in _manifest() if c["get_status"] == 200 and c["fid"].startswith("4,")}
    listed = {line.split("\t")[0] for line in lines}
    assert {str(parse_file_id(f)) for f in live} == listed
    assert "4,08779fc7ca\t3145728\tbig.bin\t-\t" in "\n".join(lines)
    out = tmp_path / "out.tar"
    assert export_run([f"-dir={tmp_path}", "-collection=golden", "-volumeId=4", f"-o={out}"]) == 0
    with tarfile.open(out) as tar:
        member = tar.extractfile("readme.txt")
        assert member is not None
        readme = next(c for c in _manifest() if c["desc"].startswith("multipart text readme"))
        assert hashlib.sha256(member.read()).hexdigest() == readme["sha256"]
    out.unlink()
    after = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in tmp_path.iterdir())
    assert after == before


def test_volume_without_an_index_is_rebuilt_from_its_dat(tmp_path: Path) -> None:
    """`needle/43.dat` ships without an `.idx`: opening it indexes its one big needle."""
    shutil.copyfile(REPO / "needle__43.dat", tmp_path / "43.dat")
    v = Volume.open(tmp_path, 43, fsync_mode=FsyncMode.NONE)
    try:
        assert v.recovery.records_indexed == 1 and v.recovery.dat_bytes_cut == 0
        ((key, offset, size),) = zip(*(a.tolist() for a in v.needle_map.live_arrays()), strict=True)
        assert (offset, size) == (8, 1_153_890)  # the body Size
        n = v.read(key, _cookie(v, key))
        assert n.name == b"Stickies.app.zip" and n.data.startswith(b"PK\x03\x04")
        assert len((tmp_path / "43.idx").read_bytes()) == 16
    finally:
        v.close()
