"""Group commit acknowledges a write once `.dat` is fsynced; `.idx` is fsynced lazily.

A power loss may then lose any part of the `.idx` written since its last sync: pages reach the
disk in any order, a page that never did reads back as zeros, and the file length on disk can
be anything from the synced length up. Recovery must still index every acknowledged write and
keep every acknowledged delete, rebuilding the lost entries from the `.dat`.

Outside `-fsync=always` the entries are also batched in memory and written a page at a time, so
a killed process leaves the `.idx` short of its last entries (tombstones included) even though
every record reached the page cache: the same rebuild must bring them all back.
"""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from seaweed_py.errors import NeedleNotFound
from seaweed_py.formats.needle import Needle
from seaweed_py.storage.group_commit import GroupCommitter
from seaweed_py.storage.volume import FsyncMode, Volume
from tests.fault.storage_workload import (
    COOKIE,
    assert_allowed,
    assert_reopens_clean,
    run_workload,
    seeds,
)
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


@pytest.mark.parametrize("seed", seeds(16))
def test_power_loss_with_idx_pages_lost_in_any_order_loses_no_acknowledged_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
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
        idx_now = v.path(".idx").read_bytes()
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
    assert_reopens_clean(d, 999, b"power is back")


def test_group_mode_syncs_the_idx_lazily_and_on_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Acknowledgements fsync the .dat only. The .idx entries are written in batches (here: once
    the batch has aged) and synced once the lazy request has waited `lazy_interval`; closing
    writes and syncs the rest."""
    disk = PowerLossDisk(monkeypatch)
    clock = StepClock()
    volume_ns = [0]
    committer = GroupCommitter(lazy_interval=10.0, clock=clock)
    v = Volume.create(
        tmp_path, 1, fsync_mode=FsyncMode.GROUP, committer=committer, clock_ns=lambda: volume_ns[0]
    )
    try:
        idx_fd = v._idx
        v.write(Needle.build(COOKIE, 1, b"one")).durable.result(timeout=10)
        assert disk.synced.get(idx_fd, b"") == b""
        clock.now = 11.0
        volume_ns[0] = 10**9  # the batch is older than its bound: the next append writes it
        v.write(Needle.build(COOKIE, 2, b"two")).durable.result(timeout=10)
        v.write(Needle.build(COOKIE, 3, b"three")).durable.result(timeout=10)
        assert len(disk.synced.get(idx_fd, b"")) == 2 * 16  # entry 3 is still batched
        v.close()
        assert len(disk.synced[idx_fd]) == 3 * 16
    finally:
        v.close()
        committer.close()


_IDLE_WRITER = textwrap.dedent(
    """
    import os, sys, time
    from seaweed_py.formats.needle import Needle
    from seaweed_py.storage.volume import FsyncMode, Volume
    # A clock that does not move: no batch ages, so only a full page is written out.
    v = Volume.create(sys.argv[1], 1, fsync_mode=FsyncMode(sys.argv[2]),
                      clock_ns=lambda: 1_700_000_000 * 10**9)
    for key in range(1, 301):
        v.write(Needle.build(0xC0FFEE, key, bytes([key % 256]) * (50 + key))).durable.result()
        if key % 7 == 0:
            v.delete(key - 3, 0xC0FFEE).durable.result()
    v.delete(1, 0xC0FFEE).durable.result()  # its put entry is in the .idx, the tombstone's not
    v.delete(300, 0xC0FFEE).durable.result()  # both entries batched
    print(os.path.getsize(v.path(".idx")), flush=True)
    time.sleep(60)
    """
)


@pytest.mark.parametrize("mode", [FsyncMode.NONE, FsyncMode.GROUP])
def test_sigkill_with_batched_idx_entries_keeps_every_write_and_delete(
    tmp_path: Path, mode: FsyncMode
) -> None:
    """kill -9 a writer whose last entries (the final ones deletes) are batched, not yet in
    the .idx: reopening indexes every write from the .dat and no deleted needle comes back."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _IDLE_WRITER, str(tmp_path), mode.value],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    try:
        idx_on_disk = int(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()
    deleted = {k - 3 for k in range(7, 301, 7)} | {1, 300}
    entries = 300 + len(deleted)
    assert idx_on_disk == entries // 256 * 256 * 16  # the last entries were batched only
    v = Volume.open(tmp_path, 1, fsync_mode=FsyncMode.NONE)
    try:
        assert v.recovery.records_indexed == entries % 256
        for key in range(1, 301):
            if key in deleted:
                with pytest.raises(NeedleNotFound):
                    v.read(key, COOKIE)
            else:
                assert v.read(key, COOKIE).data == bytes([key % 256]) * (50 + key)
        assert (v.file_count, v.delete_count) == (300, len(deleted))
    finally:
        v.close()
