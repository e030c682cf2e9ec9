"""Crash recovery of a volume (reliability scenarios 1, 2, 3, 5 and 14).

Each test cuts or damages the files the way a crash or a bad disk would, reopens the volume,
and checks the oracle: every needle whose record survived whole reads back byte-identical,
a cut needle is absent (never partial), deleted needles stay deleted, and the volume takes new
writes. Needles are small so that cutting at every byte stays fast.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from seaweed_py.errors import CorruptNeedle, DiskFull, NeedleNotFound, VolumeReadOnly
from seaweed_py.formats.idx import IDX4, iter_entries
from seaweed_py.formats.needle import Needle
from seaweed_py.storage.check import check_volume
from seaweed_py.storage.volume import FsyncMode, Volume
from tests.disk_faults import fail_writes_to, flip_byte
from tests.fault.storage_workload import (
    COOKIE,
    assert_allowed,
    assert_reopens_clean,
    payload,
    run_workload,
    seeds,
)


@dataclass
class Built:
    dat: bytes
    idx: bytes
    ends: dict[int, int]  # key -> where its latest record is complete (padding may follow)
    deleted_at: dict[int, int]  # key -> where its tombstone is complete


def build(tmp: Path, keys: int = 8, delete: tuple[int, ...] = (2, 5)) -> Built:
    """A volume with `keys` needles, then tombstones for `delete`, then two more needles."""
    v = Volume.create(tmp, 1, fsync_mode=FsyncMode.NONE)
    ends: dict[int, int] = {}
    deleted_at: dict[int, int] = {}
    for k in range(1, keys + 1):
        r = v.write(Needle.build(COOKIE, k, payload(k), name=b"n%d" % k))
        ends[k] = r.offset + 16 + r.size + 12
    for k in delete:
        deleted_at[k] = v.size + 16 + 12
        v.delete(k, COOKIE)
    for k in (keys + 1, keys + 2):
        r = v.write(Needle.build(COOKIE, k, payload(k)))
        ends[k] = r.offset + 16 + r.size + 12
    v.close()
    b = Built(
        v.path(".dat").read_bytes(),
        v.path(".idx").read_bytes(),
        ends,
        deleted_at,
    )
    for ext in (".dat", ".idx", ".vif"):
        v.path(ext).unlink()
    return b


def place(tmp: Path, name: str, dat: bytes, idx: bytes | None, vif: bytes) -> Path:
    d = tmp / name
    d.mkdir()
    (d / "1.dat").write_bytes(dat)
    if idx is not None:
        (d / "1.idx").write_bytes(idx)
    (d / "1.vif").write_bytes(vif)
    return d


VIF = b'{"version": 3, "bytesOffset": 4}'


def assert_oracle(d: Path, b: Built, dat_len: int) -> None:
    """Open the damaged volume, check every needle, write one more, reopen clean."""
    v = Volume.open(d, 1, fsync_mode=FsyncMode.NONE)
    try:
        for k, end in b.ends.items():
            survived = end <= dat_len
            tomb = b.deleted_at.get(k)
            if survived and not (tomb is not None and tomb <= dat_len):
                got = v.read(k, COOKIE)
                assert got.data == payload(k), (dat_len, k)
            else:
                with pytest.raises(NeedleNotFound):
                    v.read(k, COOKIE)
        assert v.size % 8 == 0 and v.size <= max(dat_len + 7, 8)
        v.write(Needle.build(COOKIE, 1000, b"after the crash"))
    finally:
        v.close()
    assert_reopens_clean(d, 1000, b"after the crash")


def test_torn_tail_at_every_byte_of_the_last_records_power_loss(tmp_path: Path) -> None:
    """Scenario 2: the .dat lost its unsynced tail (cut anywhere in the last four records:
    two needles, a tombstone before them); the .idx may be ahead of it."""
    b = build(tmp_path)
    start = sorted(b.ends.values())[-4]
    for cut in range(start - 8, len(b.dat) + 1):
        d = place(tmp_path, f"cut{cut}", b.dat[:cut], b.idx, VIF)
        assert_oracle(d, b, cut)


def test_torn_tail_with_the_idx_behind_the_dat(tmp_path: Path) -> None:
    """The .dat got further than the .idx: missing entries are rebuilt from the records, and
    a torn last record is cut."""
    b = build(tmp_path)
    start = sorted(b.ends.values())[-3]
    for cut in range(start, len(b.dat) + 1, 5):
        for entries in range(len(b.idx) // 16 - 4, len(b.idx) // 16 + 1):
            d = place(tmp_path, f"c{cut}e{entries}", b.dat[:cut], b.idx[: entries * 16], VIF)
            assert_oracle(d, b, cut)


def live_and_deleted(d: Path) -> tuple[dict[int, bytes], set[int]]:
    v = Volume.open(d, 1, fsync_mode=FsyncMode.NONE)
    try:
        live: dict[int, bytes] = {}
        gone: set[int] = set()
        for k in range(1, 20):
            try:
                live[k] = v.read(k, COOKIE).data
            except NeedleNotFound:
                gone.add(k)
        return live, gone
    finally:
        v.close()


def test_idx_cut_at_every_entry_boundary_and_inside_entries(tmp_path: Path) -> None:
    """Scenario 3: .dat intact, .idx truncated anywhere: rebuilt, nothing resurrected."""
    b = build(tmp_path)
    want = live_and_deleted(place(tmp_path, "whole", b.dat, b.idx, VIF))
    assert want[1] >= {2, 5}
    for cut in range(len(b.idx) + 1):
        d = place(tmp_path, f"idx{cut}", b.dat, b.idx[:cut], VIF)
        assert live_and_deleted(d) == want, cut
        assert len((d / "1.idx").read_bytes()) == len(b.idx)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda idx: None, id="idx-deleted"),
        pytest.param(lambda idx: b"", id="idx-empty"),
        pytest.param(lambda idx: idx + b"\x13\x37garbage", id="idx-partial-garbage-entry"),
        pytest.param(
            lambda idx: idx + bytes.fromhex("00000000000000630fffffff00000010"),
            id="idx-entry-past-the-end",
        ),
        pytest.param(
            lambda idx: idx + bytes.fromhex("00000000000000630000000100000010"),
            id="idx-entry-pointing-at-another-record",
        ),
        # A page of the lazily synced .idx lost mid-entry: the last entry's Size reads 0.
        pytest.param(lambda idx: idx[:-4] + bytes(4), id="idx-last-entry-size-zeroed"),
        pytest.param(lambda idx: idx[:-6] + bytes(6), id="idx-last-entry-half-zeroed"),
    ],
)
def test_damaged_idx_is_rebuilt_from_the_dat(
    tmp_path: Path, damage: Callable[[bytes], bytes | None]
) -> None:
    b = build(tmp_path)
    want = live_and_deleted(place(tmp_path, "whole", b.dat, b.idx, VIF))
    d = place(tmp_path, "damaged", b.dat, damage(b.idx), VIF)
    assert live_and_deleted(d) == want
    entries = list(iter_entries((d / "1.idx").read_bytes(), IDX4))
    assert 0x63 not in {e[0] for e in entries}


def test_corrupt_header_in_the_middle_is_reported_and_neighbours_stay_readable(
    tmp_path: Path,
) -> None:
    """Scenario 5: a needle header with a huge Size; the volume loads, the needle is
    reported corrupt, its neighbours read back."""
    b = build(tmp_path)
    start_of_4 = next(o for k, o, _ in iter_entries(b.idx, IDX4) if k == 4)
    dat = bytearray(b.dat)
    dat[start_of_4 + 12 : start_of_4 + 16] = (0x7FFFFFF0).to_bytes(4, "big")
    d = place(tmp_path, "hdr", bytes(dat), b.idx, VIF)
    report = check_volume(d, 1)
    assert [(c.key, c.offset) for c in report.corrupt] == [(4, start_of_4)]
    v = Volume.open(d, 1, fsync_mode=FsyncMode.NONE)
    try:
        assert not v.recovery
        with pytest.raises(CorruptNeedle):
            v.read(4, COOKIE)
        for k in (1, 3, 6, 7, 8, 9, 10):
            assert v.read(k, COOKIE).data == payload(k)
    finally:
        v.close()


@pytest.mark.parametrize("failing_write", [0, 1], ids=["dat-write", "idx-write"])
def test_enospc_during_append_keeps_nothing_and_turns_read_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing_write: int
) -> None:
    """Scenario 14: ENOSPC on the .dat or the .idx write of an append (an append writes its
    .idx entry itself only with fsync=always; batched entries: test_storage_volume_idx_batch)."""
    v = Volume.create(tmp_path, 1, fsync_mode=FsyncMode.ALWAYS if failing_write else FsyncMode.NONE)
    try:
        v.write(Needle.build(COOKIE, 1, b"existing"))
        dat_len, idx_len = v.size, len(v.path(".idx").read_bytes())
        real = os.pwrite
        calls = [0]

        def pwrite(fd: int, data: bytes, offset: int) -> int:
            calls[0] += 1
            if calls[0] - 1 == failing_write:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(fd, data, offset)

        monkeypatch.setattr(os, "pwrite", pwrite)
        with pytest.raises(DiskFull) as exc:
            v.write(Needle.build(COOKIE, 2, b"does not fit"))
        monkeypatch.undo()
        assert exc.value.status == 507
        assert os.path.getsize(v.path(".dat")) == dat_len == v.size
        assert len(v.path(".idx").read_bytes()) == idx_len
        with pytest.raises(NeedleNotFound):
            v.read(2, COOKIE)
        assert v.read(1, COOKIE).data == b"existing"
        assert v.read_only and v.status().read_only
        with pytest.raises(DiskFull, match=r"read-only: disk full .*volume_id=1"):
            v.write(Needle.build(COOKIE, 3, b"x"))  # 507 while it stays full, not a 500
        with pytest.raises(DiskFull):
            v.delete(1, COOKIE)  # a tombstone needs room too
        v.set_read_only(False)  # the operator freed space
        v.write(Needle.build(COOKIE, 3, b"x"))
        assert v.read(3, COOKIE).data == b"x"
    finally:
        v.close()


def test_a_volume_read_only_for_another_reason_keeps_its_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only "disk full" answers 507: an operator's mark and a failed index write keep the
    read-only error (500), and neither clears by itself (see the store's disk-full check)."""
    marked = Volume.create(tmp_path, 1)
    broken = Volume.create(tmp_path, 2)
    try:
        marked.set_read_only(True)
        with pytest.raises(VolumeReadOnly) as exc:
            marked.write(Needle.build(COOKIE, 1, b"x"))
        assert exc.value.status == 500 and not isinstance(exc.value, DiskFull)
        fail_writes_to(monkeypatch, broken._idx, errno.EIO, "Input/output error")
        for key in range(1, 300):  # enough for a batched .idx page to be flushed
            broken.write(Needle.build(COOKIE, key, b"y"))
            if broken.read_only:
                break
        monkeypatch.undo()
        assert broken.read_only_reason.startswith("index write failed")
        with pytest.raises(VolumeReadOnly) as exc:
            broken.write(Needle.build(COOKIE, 999, b"z"))
        assert not isinstance(exc.value, DiskFull)
        assert not marked.clear_disk_full() and not broken.clear_disk_full()
        assert marked.read_only and broken.read_only
    finally:
        marked.close()
        broken.close()


_WRITER = textwrap.dedent(
    """
    import sys
    from seaweed_py.formats.needle import Needle
    from seaweed_py.storage.volume import FsyncMode, Volume
    v = Volume.create(sys.argv[1], 1, fsync_mode=FsyncMode.ALWAYS)
    key = 0
    while True:
        key += 1
        r = v.write(Needle.build(0xC0FFEE, key, bytes([key % 256]) * (100 + key % 900)))
        r.durable.result()
        if key % 7 == 0:
            v.delete(key - 3, 0xC0FFEE).durable.result()
        print(key, flush=True)
    """
)


def test_sigkill_during_fsync_always_writes_loses_no_acknowledged_write(tmp_path: Path) -> None:
    """Scenario 1: kill -9 a writer that prints each key once its write is durable."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    acked = 0
    try:
        for line in proc.stdout:
            acked = int(line)
            if acked >= 150:
                break
    finally:
        proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()
    assert acked >= 150
    v = Volume.open(tmp_path, 1, fsync_mode=FsyncMode.NONE)
    try:
        deleted = {k - 3 for k in range(7, acked + 1, 7)}
        for key in range(1, acked + 1):
            if key in deleted:
                with pytest.raises(NeedleNotFound):
                    v.read(key, COOKIE)
            else:
                assert v.read(key, COOKIE).data == bytes([key % 256]) * (100 + key % 900)
        v.write(Needle.build(COOKIE, 10**6, b"writable"))
    finally:
        v.close()


def test_last_record_zeroed_by_power_loss_is_dropped_not_served(tmp_path: Path) -> None:
    """Scenario 2: the .idx entry and the file length made it to disk but the last record's
    data pages did not (they read back as zeros, or with a zeroed body)."""
    b = build(tmp_path)
    last_key = max(b.ends)
    start = next(o for k, o, _ in iter_entries(b.idx, IDX4) if k == last_key)
    for name, damaged in (
        ("all-zero", b.dat[:start] + bytes(len(b.dat) - start)),
        # From the header's Size on: it reads as a Size-0 record (a tombstone, or an empty
        # file of a new key) whose footer was never written.
        ("zero-from-size", b.dat[: start + 12] + bytes(len(b.dat) - start - 12)),
        # From DataSize on: a body without data, whose zero checksum matches empty data.
        ("zero-from-data-size", b.dat[: start + 16] + bytes(len(b.dat) - start - 16)),
        ("zero-body", b.dat[: start + 20] + bytes(len(b.dat) - start - 20)),
    ):
        d = place(tmp_path, name, damaged, b.idx, VIF)
        v = Volume.open(d, 1, fsync_mode=FsyncMode.NONE)
        try:
            assert v.recovery.dat_bytes_cut == len(b.dat) - start
            with pytest.raises(NeedleNotFound):
                v.read(last_key, COOKIE)
            assert v.read(last_key - 1, COOKIE).data == payload(last_key - 1)
            v.write(Needle.build(COOKIE, 500, b"next"))
        finally:
            v.close()


class PowerLossDisk:
    """Records each file's content at every fdatasync, to replay a power loss: the synced
    content survives, plus a random prefix of what was appended after it, whose last part
    may read back as zeros (pages that never reached the disk)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.synced: dict[int, bytes] = {}
        real = os.fdatasync

        def fdatasync(fd: int) -> None:
            real(fd)
            self.synced[fd] = _read_fd(fd)

        monkeypatch.setattr(os, "fdatasync", fdatasync)

    def crash_image(self, fd: int, rng: random.Random) -> bytes:
        durable = self.synced.get(fd, b"")
        now = _read_fd(fd)
        assert now.startswith(durable)
        kept = now[: len(durable) + rng.randint(0, len(now) - len(durable))]
        if len(kept) > len(durable) and rng.random() < 0.3:
            zero_from = rng.randint(len(durable), len(kept))
            kept = kept[:zero_from] + bytes(len(kept) - zero_from)
        return kept


def _read_fd(fd: int) -> bytes:
    return os.pread(fd, os.fstat(fd).st_size, 0)


@pytest.mark.parametrize("seed", seeds(12))
def test_power_loss_in_group_mode_loses_only_unacknowledged_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """Scenario 2 with group commit: writes and deletes, some acknowledged (their `durable`
    resolved), the rest not; then the power goes. Every acknowledged write reads back, every
    acknowledged delete stays deleted, nothing reads back wrong, the volume takes writes."""
    rng = random.Random(seed)
    print("seed", seed)
    disk = PowerLossDisk(monkeypatch)
    (tmp_path / "live").mkdir()
    v = Volume.create(tmp_path / "live", 1, fsync_mode=FsyncMode.GROUP)
    try:
        outcomes = run_workload(v, rng, seed, steps=60, keys=25, ack_chance=0.5)
        images = {
            suffix: disk.crash_image(fd, rng) for suffix, fd in ((".dat", v._dat), (".idx", v._idx))
        }
    finally:
        v.close()
    d = place(
        tmp_path,
        "after",
        images[".dat"],
        images[".idx"],
        (tmp_path / "live" / "1.vif").read_bytes(),
    )
    v = Volume.open(d, 1, fsync_mode=FsyncMode.NONE)
    try:
        assert_allowed(v, outcomes)
        v.write(Needle.build(COOKIE, 999, b"power is back"))
        assert v.read(999, COOKIE).data == b"power is back"
    finally:
        v.close()


# ---------------------------------------------------------------- rotted, not torn (scenario 4)


def data_at(record_offset: int, i: int = 0) -> int:
    """File offset of data byte `i` of the version-3 needle record at `record_offset`."""
    return record_offset + 16 + 4 + i


@pytest.mark.parametrize("mode", list(FsyncMode), ids=lambda m: m.value)
def test_rotted_last_record_stays_and_reads_as_corrupt_not_missing(
    tmp_path: Path, mode: FsyncMode, caplog: pytest.LogCaptureFixture
) -> None:
    """A complete, fsynced last record whose data byte rotted is no torn write: opening keeps it
    on disk and in the index, reports it, and reads raise CorruptNeedle (never NotFound, never
    the bytes); later appends go after it."""
    v = Volume.create(tmp_path, 1, fsync_mode=mode)
    try:
        for k in range(1, 5):
            last = v.write(Needle.build(COOKIE, k, payload(k)))
            last.durable.result(timeout=10)
    finally:
        v.close()
    dat = tmp_path / "1.dat"
    dat_len = dat.stat().st_size
    flip_byte(dat, data_at(last.offset, 5))
    caplog.set_level(logging.WARNING, logger="seaweed_py.storage")
    v = Volume.open(tmp_path, 1, fsync_mode=mode)
    try:
        assert not v.recovery, v.recovery
        assert v.size == dat_len == dat.stat().st_size
        with pytest.raises(CorruptNeedle, match="crc mismatch"):
            v.read(4, COOKIE)
        for k in (1, 2, 3):
            assert v.read(k, COOKIE).data == payload(k)
        assert [(c.key, c.offset) for c in v.corrupt_needles()] == [(4, last.offset)]
        logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert any(f"offset={last.offset}" in m and "key=4" in m for m in logged), logged
        after = v.write(Needle.build(COOKIE, 5, b"after the rot"))
        after.durable.result(timeout=10)
        assert after.offset == dat_len
    finally:
        v.close()
    v = Volume.open(tmp_path, 1, fsync_mode=mode)
    try:
        assert not v.recovery, v.recovery
        assert v.read(5, COOKIE).data == b"after the rot"
        with pytest.raises(CorruptNeedle):
            v.read(4, COOKIE)
    finally:
        v.close()


@pytest.mark.parametrize("entries_kept", [None, 0, 3, 5])
def test_rotted_record_in_the_unindexed_tail_keeps_the_sound_records_after_it(
    tmp_path: Path, entries_kept: int | None
) -> None:
    """The index lost its tail (or all of it): the walk of the `.dat` meets a rotted record
    with sound ones after it. The rotted one is indexed and answers corrupt; the sound ones
    after it are indexed and served; nothing is cut."""
    b = build(tmp_path)
    victim_key = 6  # live; keys 7 to 10 and two tombstones follow it
    victim_at = next(o for k, o, _ in iter_entries(b.idx, IDX4) if k == victim_key)
    dat = bytearray(b.dat)
    dat[data_at(victim_at, 2)] ^= 0x5A
    idx = None if entries_kept is None else b.idx[: entries_kept * 16]
    d = place(tmp_path, f"tail{entries_kept}", bytes(dat), idx, VIF)
    v = Volume.open(d, 1, fsync_mode=FsyncMode.NONE)
    try:
        assert v.recovery.dat_bytes_cut == 0
        for k in b.ends:
            if k in b.deleted_at:
                with pytest.raises(NeedleNotFound):
                    v.read(k, COOKIE)
            elif k == victim_key:
                with pytest.raises(CorruptNeedle):
                    v.read(k, COOKIE)
            else:
                assert v.read(k, COOKIE).data == payload(k), k
        assert [(c.key, c.offset) for c in v.corrupt_needles()] == [(victim_key, victim_at)]
        v.write(Needle.build(COOKIE, 1000, b"after"))
    finally:
        v.close()
    assert_reopens_clean(d, 1000, b"after")


@pytest.mark.parametrize(
    "damage",
    ["append-at-ns-zero", "append-at-ns-equal", "append-at-ns-older", "checksum-zero"],
)
def test_a_last_record_whose_footer_was_never_written_whole_is_cut(
    tmp_path: Path, damage: str
) -> None:
    """Torn, provably: the last record fails its CRC and its footer is not this write's (a
    zero checksum or AppendAtNs, or an AppendAtNs not after the previous record's, which a
    weedpy volume never writes). It is cut as before, whatever the index says."""
    b = build(tmp_path)
    entries = list(iter_entries(b.idx, IDX4))
    (_, prev_at, prev_size), (last_key, last_at, last_size) = entries[-2], entries[-1]
    prev_ns = int.from_bytes(b.dat[prev_at + 16 + prev_size + 4 : prev_at + 16 + prev_size + 12])
    dat = bytearray(b.dat)
    dat[data_at(last_at, 1)] ^= 0x5A
    foot = last_at + 16 + last_size
    if damage == "checksum-zero":
        dat[foot : foot + 4] = bytes(4)
    else:
        ns = {"append-at-ns-zero": 0, "append-at-ns-equal": prev_ns}.get(damage, prev_ns - 1000)
        dat[foot + 4 : foot + 12] = ns.to_bytes(8, "big")
    for name, idx in (("indexed", b.idx), ("unindexed", b.idx[:-16])):
        d = place(tmp_path, f"{damage}-{name}", bytes(dat), idx, VIF)
        v = Volume.open(d, 1, fsync_mode=FsyncMode.NONE)
        try:
            assert v.recovery.dat_bytes_cut == len(b.dat) - last_at
            assert v.size == last_at
            with pytest.raises(NeedleNotFound):
                v.read(last_key, COOKIE)
            assert v.read(last_key - 1, COOKIE).data == payload(last_key - 1)
            assert not v.corrupt_needles()
            v.write(Needle.build(COOKIE, 1000, b"after"))
        finally:
            v.close()
        assert_reopens_clean(d, 1000, b"after")


def test_a_last_record_with_a_lost_middle_page_but_its_footer_is_kept_as_corrupt(
    tmp_path: Path,
) -> None:
    """Zeros inside the data with the footer written could be a power loss that dropped one
    page of an unacknowledged write, or an acknowledged record the disk damaged: not provably
    torn, so the record is kept and reported, and never served."""
    v = Volume.create(tmp_path, 1, fsync_mode=FsyncMode.NONE)
    try:
        v.write(Needle.build(COOKIE, 1, b"first"))
        last = v.write(Needle.build(COOKIE, 2, os.urandom(20_000)))
    finally:
        v.close()
    dat = tmp_path / "1.dat"
    raw = bytearray(dat.read_bytes())
    raw[data_at(last.offset, 4096) : data_at(last.offset, 8192)] = bytes(4096)
    dat.write_bytes(bytes(raw))
    v = Volume.open(tmp_path, 1, fsync_mode=FsyncMode.NONE)
    try:
        assert v.recovery.dat_bytes_cut == 0
        with pytest.raises(CorruptNeedle):
            v.read(2, COOKIE)
        assert [c.key for c in v.corrupt_needles()] == [2]
        assert v.read(1, COOKIE).data == b"first"
    finally:
        v.close()


@pytest.mark.parametrize(
    "size_field", [0x7FFFFFF0, 0xFFFFFFFB, 7], ids=["huge", "negative", "small"]
)
def test_a_rotted_header_size_of_the_last_record_keeps_it_as_corrupt(
    tmp_path: Path, size_field: int
) -> None:
    """Scenario 5 on the last record: its header's Size rotted, its key and footer did not. A
    torn write leaves zeros there, not another Size, so the record is kept where its index
    entry says it ends, reads as corrupt, and later appends go after it."""
    b = build(tmp_path)
    last_key, last_at, _ = list(iter_entries(b.idx, IDX4))[-1]
    dat = bytearray(b.dat)
    dat[last_at + 12 : last_at + 16] = size_field.to_bytes(4, "big")
    d = place(tmp_path, "hdr", bytes(dat), b.idx, VIF)
    v = Volume.open(d, 1, fsync_mode=FsyncMode.NONE)
    try:
        assert not v.recovery, v.recovery
        with pytest.raises(CorruptNeedle):
            v.read(last_key, COOKIE)
        assert v.read(last_key - 1, COOKIE).data == payload(last_key - 1)
        assert [(c.key, c.offset) for c in v.corrupt_needles()] == [(last_key, last_at)]
        assert v.write(Needle.build(COOKIE, 1000, b"after")).offset == len(b.dat)
    finally:
        v.close()
    assert_reopens_clean(d, 1000, b"after")
