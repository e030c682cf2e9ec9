"""Group commit acknowledges a write once `.dat` is fsynced; `.idx` is fsynced lazily.

A power loss may then lose any part of the `.idx` written since its last sync: pages reach the
disk in any order, a page that never did reads back as zeros, and the file length on disk can
be anything from the synced length up. Recovery must still index every acknowledged write and
keep every acknowledged delete, rebuilding the lost entries from the `.dat`.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from seaweed_py.formats.needle import Needle
from seaweed_py.storage.group_commit import GroupCommitter
from seaweed_py.storage.volume import FsyncMode, Volume
from tests.fault.storage_workload import COOKIE, assert_allowed, run_workload
from tests.fault.test_storage_recovery import PowerLossDisk, place

_PAGE = 64  # small "pages" (4 entries) so that a short test has many of them


def idx_crash_image(durable: bytes, now: bytes, rng: random.Random) -> bytes:
    """The synced `.idx` content, then a random length of what followed, each page of which
    either made it to the disk or reads back as zeros."""
    assert now.startswith(durable)
    length = rng.randint(len(durable), len(now))
    image = bytearray(now[:length])
    first_page = len(durable) // _PAGE
    for page in range(first_page, (length + _PAGE - 1) // _PAGE):
        if rng.random() < 0.5:
            start = max(page * _PAGE, len(durable))
            end = min((page + 1) * _PAGE, length)
            image[start:end] = bytes(end - start)
    return bytes(image)


class StepClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("seed", range(16))
def test_power_loss_with_idx_pages_lost_in_any_order_loses_no_acknowledged_write(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    rng = random.Random(seed)
    print("seed", seed)
    disk = PowerLossDisk(monkeypatch)
    clock = StepClock()
    committer = GroupCommitter(lazy_interval=rng.choice([5.0, 1e9]), clock=clock)
    (tmp_path / "live").mkdir()
    v = Volume.create(tmp_path / "live", 1, fsync_mode=FsyncMode.GROUP, committer=committer)

    def tick(step: int) -> None:
        clock.now = float(step)

    try:
        outcomes = run_workload(v, rng, seed, steps=80, keys=30, ack_chance=0.6, at_step=tick)
        dat = disk.crash_image(v._dat, rng)
        idx_now = v.base.with_suffix(".idx").read_bytes()
        idx = idx_crash_image(disk.synced.get(v._idx, b""), idx_now, rng)
    finally:
        v.close()
        committer.close()
    d = place(tmp_path, "after", dat, idx, (tmp_path / "live" / "1.vif").read_bytes())
    v = Volume.open(d, 1, fsync_mode=FsyncMode.NONE)
    try:
        assert_allowed(v, outcomes)
        v.write(Needle.build(COOKIE, 999, b"power is back"))
    finally:
        v.close()
    again = Volume.open(d, 1, fsync_mode=FsyncMode.NONE)
    try:
        assert not again.recovery, again.recovery
        assert again.read(999, COOKIE).data == b"power is back"
    finally:
        again.close()


def test_group_mode_syncs_the_idx_lazily_and_on_close(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Acknowledgements fsync the .dat only; the .idx is synced once it has waited
    `lazy_interval`, and when the volume closes."""
    disk = PowerLossDisk(monkeypatch)
    clock = StepClock()
    committer = GroupCommitter(lazy_interval=10.0, clock=clock)
    v = Volume.create(tmp_path, 1, fsync_mode=FsyncMode.GROUP, committer=committer)
    try:
        idx_fd = v._idx
        v.write(Needle.build(COOKIE, 1, b"one")).durable.result(timeout=10)
        assert disk.synced.get(idx_fd, b"") == b""
        clock.now = 11.0
        v.write(Needle.build(COOKIE, 2, b"two")).durable.result(timeout=10)
        v.write(Needle.build(COOKIE, 3, b"three")).durable.result(timeout=10)
        assert len(disk.synced.get(idx_fd, b"")) >= 16
        v.close()
        assert len(disk.synced[idx_fd]) == 3 * 16
    finally:
        v.close()
        committer.close()
