"""Offline scrub (`storage.check`, `weedpy fix`) reads a volume's format facts as `Volume` does."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from seaweed_py.cli.export import run as export_run
from seaweed_py.cli.fix import run as fix_run
from seaweed_py.config.flags import UsageError
from seaweed_py.errors import CorruptVolume
from seaweed_py.formats.needle import Needle
from seaweed_py.storage.check import check_volume, rebuild_index
from seaweed_py.storage.volume import FsyncMode, Volume
from seaweed_py.types import Cookie, NeedleId


def _volume_claiming_bytes_offset(directory: Path, bytes_offset: int) -> Path:
    """A one-needle volume `pics_7` whose `.vif` names `bytes_offset`; returns its `.idx`."""
    v = Volume.create(directory, 7, collection="pics", fsync_mode=FsyncMode.NONE)
    try:
        v.write(Needle.build(Cookie(0x637037D6), NeedleId(1), b"hello", name=b"a.txt"))
    finally:
        v.close()
    vif = directory / "pics_7.vif"
    info = json.loads(vif.read_text())
    info["bytesOffset"] = bytes_offset
    vif.write_text(json.dumps(info))
    return directory / "pics_7.idx"


def test_an_unknown_bytes_offset_is_refused_by_check_and_rebuild_as_by_volume_open(
    tmp_path: Path,
) -> None:
    idx = _volume_claiming_bytes_offset(tmp_path, 7)
    before = idx.read_bytes()
    attempts: list[Callable[[], object]] = [
        lambda: Volume.open(
            tmp_path, 7, collection="pics", fsync_mode=FsyncMode.NONE, writable=False
        ),
        lambda: check_volume(tmp_path, 7, "pics"),
        lambda: rebuild_index(tmp_path, 7, "pics"),
    ]
    for attempt in attempts:
        with pytest.raises(CorruptVolume, match=r"unsupported bytesOffset 7 .*volume_id=7"):
            attempt()
    assert idx.read_bytes() == before  # not rewritten with a guessed entry width


def test_weedpy_fix_reports_an_unknown_bytes_offset_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    idx = _volume_claiming_bytes_offset(tmp_path, 7)
    before = idx.read_bytes()
    assert fix_run([f"-dir={tmp_path}", "-rebuild"]) == 1
    captured = capsys.readouterr()
    assert "volume pics_7: cannot check: " in captured.err
    assert "unsupported bytesOffset 7" in captured.err
    assert "rebuilt" not in captured.out
    assert idx.read_bytes() == before


def test_a_known_bytes_offset_still_checks_clean(tmp_path: Path) -> None:
    _volume_claiming_bytes_offset(tmp_path, 4)
    report = check_volume(tmp_path, 7, "pics")
    assert report.ok and (report.records, report.indexed) == (1, 1)


def test_weedpy_fix_and_export_find_a_dotted_collection_and_refuse_a_traversal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "a" / "data"
    data.mkdir(parents=True)
    v = Volume.create(data, 7, collection="my.bucket", fsync_mode=FsyncMode.NONE)
    v.write(Needle.build(Cookie(0x637037D6), NeedleId(1), b"hello", name=b"a.txt"))
    v.close()
    assert fix_run([f"-dir={data}", "-rebuild"]) == 0
    assert "volume my.bucket_7: 1 records" in capsys.readouterr().out
    assert fix_run([f"-dir={data}", "-collection=my.bucket", "-volumeId=7"]) == 0
    assert export_run([f"-dir={data}", "-collection=my.bucket", "-volumeId=7"]) == 0
    assert "\ta.txt\t" in capsys.readouterr().out
    before = sorted(p.name for p in tmp_path.rglob("*"))
    for bad in ("../a/x", "..", "/etc/x", "my bucket"):
        for run in (fix_run, export_run):
            with pytest.raises(UsageError, match=r"^-collection: invalid collection "):
                run([f"-dir={data}", f"-collection={bad}", "-volumeId=7"])
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
