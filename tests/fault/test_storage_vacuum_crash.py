"""A vacuum cut at every step (reliability scenario 6, borg style): a process vacuums a volume
while writing and deleting, and is SIGKILLed at one step (tests/fault/vacuum_cut.py); the
volume then opens with every acknowledged needle readable and no deleted one, its files whole
(rolled back before the commit marker, forward after it), nothing of the vacuum left over, and
it takes writes and vacuums again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from seaweed_py.errors import NeedleNotFound
from seaweed_py.formats.needle import Needle
from seaweed_py.storage.volume import FsyncMode, Volume
from tests.fault.vacuum_cut import COOKIE, CUTS, data_of

# Before the marker the old files are the volume; from the marker on, the compacted ones.
FORWARD = {"marked", "renamed-dat", "renamed", "reopened", "committed"}


def _prepare(directory: Path) -> tuple[dict[int, bytes], set[int]]:
    """Volume 7 with 300 needles, every third deleted: (live, deleted)."""
    v = Volume.create(directory, 7, fsync_mode=FsyncMode.NONE)
    live: dict[int, bytes] = {}
    deleted: set[int] = set()
    try:
        for key in range(1, 301):
            v.write(Needle.build(COOKIE, key, data_of(key)))
            live[key] = data_of(key)
        for key in range(3, 301, 3):
            v.delete(key, COOKIE)
            del live[key]
            deleted.add(key)
    finally:
        v.close()
    return live, deleted


def _cut(directory: Path, cut: str, deletable: list[int]) -> list[dict[str, object]]:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.fault.vacuum_cut",
            str(directory),
            cut,
            ",".join(map(str, deletable)),
        ],
        capture_output=True,
        timeout=60,
        cwd=Path(__file__).parents[2],
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-3000:]
    events = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert events[-1] == {"cut": cut}, events[-3:]
    return events


@pytest.mark.parametrize("cut", CUTS)
def test_a_vacuum_killed_at_each_step_loses_nothing_acknowledged(tmp_path: Path, cut: str) -> None:
    live, deleted = _prepare(tmp_path)
    deletable = sorted(live)[::7]
    events = _cut(tmp_path, cut, deletable)
    for event in events:
        if "put" in event:
            key = int(event["put"])  # type: ignore[call-overload]
            live[key] = data_of(key)
        elif "delete" in event:
            key = int(event["delete"])  # type: ignore[call-overload]
            live.pop(key)
            deleted.add(key)
    assert any("put" in e for e in events) or cut == "copy"

    v = Volume.open(tmp_path, 7, fsync_mode=FsyncMode.NONE)
    try:
        # No leftover of the vacuum; the stamp log (deletes, replicated origins) is the
        # volume's own and a vacuum leaves it alone.
        assert sorted(p.name for p in tmp_path.iterdir()) == ["7.ats", "7.dat", "7.idx", "7.vif"]
        assert v.compact_revision == (1 if cut in FORWARD else 0)
        for key, data in live.items():
            assert v.read(key, COOKIE).data == data, key
        for key in deleted:
            with pytest.raises(NeedleNotFound):
                v.read(key, COOKIE)
        assert v.corrupt_needles() == []
        v.write(Needle.build(COOKIE, 99_999, b"after the crash"))
        v.compact()
        v.commit_compact()
        assert v.read(99_999, COOKIE).data == b"after the crash"
        for key, data in live.items():
            assert v.read(key, COOKIE).data == data, key
    finally:
        v.close()
    assert not any(p.suffix in (".cpd", ".cpx", ".cpc") for p in tmp_path.iterdir())
    assert os.path.getsize(tmp_path / "7.dat") < 300 * 2000
