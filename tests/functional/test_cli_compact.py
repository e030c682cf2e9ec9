"""`weedpy compact` (as `weed compact`) and the vacuum flags of `weedpy master` and
`weedpy volume`: what they write, and what they refuse."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from seaweed_py.cli.main import main
from seaweed_py.cli.master_cmd import flag_set as master_flag_set
from seaweed_py.config.flags import UsageError
from seaweed_py.formats.needle import Needle
from seaweed_py.master.options import MasterOptions, master_options
from seaweed_py.storage.store import held_directory
from seaweed_py.storage.volume import FsyncMode, Volume
from seaweed_py.volume.options import VolumeOptions

COOKIE = 0x1234ABCD


def _volume(directory: Path, collection: str = "") -> dict[int, bytes]:
    v = Volume.create(directory, 3, collection=collection, fsync_mode=FsyncMode.NONE)
    live = {}
    try:
        for key in range(1, 41):
            data = os.urandom(500 + key)
            v.write(Needle.build(COOKIE, key, data))
            live[key] = data
        for key in range(1, 41, 2):
            v.delete(key, COOKIE)
            del live[key]
    finally:
        v.close()
    return live


def test_compact_writes_cpd_and_cpx_beside_the_untouched_volume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live = _volume(tmp_path, "pics")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert main(["compact", f"-dir={tmp_path}", "-volumeId=3", "-collection=pics"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("volume pics_3: 20 needles") and "pics_3.cpd and pics_3.cpx" in out
    for name, data in before.items():
        assert (tmp_path / name).read_bytes() == data, name
    os.replace(tmp_path / "pics_3.cpd", tmp_path / "pics_3.dat")
    os.replace(tmp_path / "pics_3.cpx", tmp_path / "pics_3.idx")
    v = Volume.open(tmp_path, 3, collection="pics")
    try:
        assert v.compact_revision == 1 and v.size < len(before["pics_3.dat"])
        assert {k: v.read(k, COOKIE).data for k in live} == live
    finally:
        v.close()


def test_compact_refuses_a_directory_a_server_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _volume(tmp_path)
    with held_directory(tmp_path):
        assert main(["compact", f"-dir={tmp_path}", "-volumeId=3"]) == 1
    assert "in use by another process" in capsys.readouterr().err
    assert not list(tmp_path.glob("3.cp?"))


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["-volumeId=9"], 1, "no volume 9 in"),
        ([], 2, "-volumeId must name a volume"),
        (["-volumeId=4294967296"], 2, "-volumeId must name a volume"),
        (["-volumeId=3", "-preallocateMB=-1"], 2, "-preallocateMB cannot be negative"),
        (["-volumeId=3", "-collection=../x"], 2, "invalid collection"),
        (["-volumeId=3", "-dir=/nonexistent/dir"], 2, "is not a directory"),
        (["-volumeId=3", "stray"], 2, "unexpected arguments"),
    ],
)
def test_compact_refuses_bad_arguments(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    code: int,
    says: str,
) -> None:
    _volume(tmp_path)
    dir_given = any(a.startswith("-dir=") for a in args)
    argv = ["compact", *([] if dir_given else [f"-dir={tmp_path}"]), *args]
    assert main(argv) == code
    assert says in capsys.readouterr().err
    assert not list(tmp_path.glob("3.cp?"))


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("max_parallel_vacuum_per_server", 0, "-maxParallelVacuumPerServer=0"),
        ("vacuum_interval_seconds", 0, "-vacuumIntervalSeconds=0"),
        ("vacuum_interval_seconds", float("inf"), "-vacuumIntervalSeconds=inf"),
    ],
)
def test_master_vacuum_flags_out_of_range(field: str, value: float, says: str) -> None:
    with pytest.raises(UsageError, match=says):
        MasterOptions(**{field: value})  # type: ignore[arg-type]


def test_volume_compaction_mbps_cannot_be_negative() -> None:
    with pytest.raises(UsageError, match="-compactionMBps cannot be negative"):
        VolumeOptions(dirs=("d",), max_volumes=(1,), compaction_mbps=-1)


def test_the_flags_reach_the_options() -> None:
    values, _ = master_flag_set().parse(
        [
            "-garbageThreshold=0.5",
            "-maxParallelVacuumPerServer=3",
            "-vacuumIntervalSeconds=60",
            "-disableVacuum",
        ]
    )
    opts = master_options(values)
    assert (
        opts.garbage_threshold,
        opts.max_parallel_vacuum_per_server,
        opts.vacuum_interval_seconds,
        opts.disable_vacuum,
    ) == (0.5, 3, 60, True)
