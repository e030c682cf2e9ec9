"""`.idx` entries are batched in memory and written a page per pwrite (not with
`-fsync=always`): when they reach the file, that the file ends up byte-identical to per-write
entries, and that a volume abandoned with entries still batched reopens with everything."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from seaweed_py.errors import BadRequest, NeedleNotFound
from seaweed_py.formats.needle import Needle
from seaweed_py.storage.group_commit import GroupCommitter
from seaweed_py.storage.volume import FsyncMode, Volume
from seaweed_py.types import Cookie, NeedleId

COOKIE = Cookie(0x5EED)
START_NS = 1_700_000_000 * 10**9
AGE_NS = 250_000_000  # volume._IDX_BATCH_AGE_NS


class Clock:
    def __init__(self) -> None:
        self.now = START_NS

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def committer() -> Iterator[GroupCommitter]:
    c = GroupCommitter()
    yield c
    c.close()


@pytest.fixture
def make(tmp_path: Path, committer: GroupCommitter) -> Iterator[Callable[..., Volume]]:
    opened: list[Volume] = []

    def factory(
        name: str = "v", mode: FsyncMode = FsyncMode.NONE, clock: Clock | None = None, **kw: object
    ) -> Volume:
        """A volume in its own directory (clocks start equal: same appends, same bytes)."""
        d = tmp_path / name
        d.mkdir()
        v = Volume.create(
            d, 3, fsync_mode=mode, committer=committer, clock_ns=clock or Clock(), **kw
        )  # type: ignore[arg-type]
        opened.append(v)
        return v

    yield factory
    for v in opened:
        v.close()


def needle(key: int, data: bytes | None = None) -> Needle:
    return Needle.build(
        COOKIE, NeedleId(key), b"%d:" % key * 3 if data is None else data, name=b"n%d" % key
    )


def on_disk(v: Volume) -> int:
    return os.path.getsize(v.path(".idx"))


def entries(v: Volume) -> int:
    return v._idx_end // v.layout.entry_size


def counters(v: Volume) -> tuple[int, ...]:
    return (
        v.size,
        v.file_count,
        v.delete_count,
        v.deleted_byte_count,
        v.max_file_key,
        v.live_count,
    )


def abandon(v: Volume, where: Path) -> Path:
    """Copy the volume's files as they are now, as a kill -9 would leave them."""
    where.mkdir()
    for suffix in (".dat", ".idx", ".vif"):
        shutil.copyfile(v.path(suffix), where / v.path(suffix).name)
    return where


@pytest.mark.parametrize(("large_disk", "per_page"), [(False, 256), (True, 240)])
def test_entries_are_written_a_page_at_a_time(
    make: Callable[..., Volume], large_disk: bool, per_page: int
) -> None:
    v = make(large_disk=large_disk)
    w = v.layout.entry_size
    for k in range(1, per_page):
        v.write(needle(k))
    assert on_disk(v) == 0
    v.write(needle(per_page))
    assert on_disk(v) == per_page * w
    v.delete(1, COOKIE)
    assert on_disk(v) == per_page * w
    assert v.read(per_page, COOKIE).data == needle(per_page).data  # reads never need the .idx
    with pytest.raises(NeedleNotFound):
        v.read(1, COOKIE)


def test_the_next_append_writes_a_batch_older_than_its_bound(make: Callable[..., Volume]) -> None:
    clock = Clock()
    v = make(clock=clock)
    v.write(needle(1))
    clock.now += AGE_NS - 1
    v.write(needle(2))
    assert on_disk(v) == 0
    clock.now += 1
    v.write(needle(3))
    assert on_disk(v) == 3 * 16
    v.write(needle(4))  # a new batch, started now
    assert on_disk(v) == 3 * 16
    clock.now -= 10**9  # the clock stepped back: the age is unknown, so the batch is written
    v.write(needle(5))
    assert on_disk(v) == 5 * 16


def trigger_sync(v: Volume) -> None:
    v.sync()


def trigger_seal(v: Volume) -> None:
    v.set_read_only(True)


def trigger_heartbeat(v: Volume) -> None:
    v.status()


def trigger_read_deleted(v: Volume) -> None:
    v.delete(2, COOKIE)
    assert v.read(2, COOKIE, read_deleted=True).data == needle(2).data


@pytest.mark.parametrize(
    "trigger", [trigger_sync, trigger_seal, trigger_heartbeat, trigger_read_deleted]
)
def test_syncs_seals_heartbeats_and_idx_scans_write_out_the_batch(
    make: Callable[..., Volume], trigger: Callable[[Volume], None]
) -> None:
    v = make()
    for k in range(1, 4):
        v.write(needle(k))
    assert on_disk(v) == 0
    trigger(v)
    assert on_disk(v) == v._idx_end >= 3 * 16


def test_a_heartbeat_does_not_wait_for_a_write_in_progress(make: Callable[..., Volume]) -> None:
    v = make()
    v.write(needle(1))
    started: list[int] = []

    def chunks() -> Iterator[bytes]:
        started.append(v.status().file_count)  # the writer holds the lock: status skips
        yield b"abc"

    v.write_streamed(needle(2, b""), 3, chunks())
    assert started == [1] and on_disk(v) == 0
    v.close()
    assert on_disk(v) == 2 * 16


def test_always_mode_writes_and_syncs_every_entry_with_its_record(
    make: Callable[..., Volume],
) -> None:
    v = make(mode=FsyncMode.ALWAYS)
    v.write(needle(1))
    assert on_disk(v) == 16
    v.delete(1, COOKIE)
    assert on_disk(v) == 32


def workload(v: Volume, clock: Clock) -> None:
    """Writes, overwrites, deletes, an empty file, a failed and an identical streamed write,
    the latter's entry first batched, then (as the 256th entry) already written out."""
    for k in range(1, 200):
        v.write(needle(k))
        clock.now += 1000
    for k in range(3, 60, 4):
        v.delete(k, COOKIE)
    v.write(needle(7, b"back"))
    v.write(needle(8, b""))
    with pytest.raises(BadRequest):
        v.write_streamed(needle(300), 10, iter([b"short"]))
    same = needle(10)
    assert v.write_streamed(same, len(same.data), iter([same.data])).unchanged
    key = 1000
    while entries(v) < 255:
        v.write(needle(key))
        key += 1
    same = needle(1000)
    assert v.write_streamed(same, len(same.data), iter([same.data])).unchanged
    for k in range(400, 420):
        v.write(needle(k))
    v.delete(401, COOKIE)


@pytest.mark.parametrize("mode", [FsyncMode.NONE, FsyncMode.GROUP])
def test_the_closed_files_are_byte_identical_to_per_write_entries(
    make: Callable[..., Volume], tmp_path: Path, mode: FsyncMode
) -> None:
    for name, m in (("always", FsyncMode.ALWAYS), ("batched", mode)):
        clock = Clock()
        v = make(name, m, clock)
        workload(v, clock)
        v.close()
    want, got = (tmp_path / "always", tmp_path / "batched")
    for name in ("3.dat", "3.idx"):
        assert (got / name).read_bytes() == (want / name).read_bytes()


@pytest.mark.parametrize("mode", [FsyncMode.NONE, FsyncMode.GROUP])
def test_an_abandoned_volume_reopens_with_every_batched_write_and_delete(
    make: Callable[..., Volume], tmp_path: Path, mode: FsyncMode
) -> None:
    clock = Clock()
    v = make(mode=mode, clock=clock)
    workload(v, clock)
    v.delete(400, COOKIE)  # put and tombstone both batched
    v.delete(1, COOKIE)  # put written out, tombstone batched
    v.sync()  # what group mode's lazy fsync would have made durable by now at most
    for k in range(500, 510):
        v.write(needle(k))
    v.delete(502, COOKIE)
    assert on_disk(v) < v.size  # something to rebuild: entries are in memory only
    batched = len(v._idx_batch) // 16
    assert batched == 11
    copy = abandon(v, tmp_path / "abandoned")
    back = Volume.open(copy, 3, fsync_mode=FsyncMode.NONE)
    try:
        assert back.recovery.records_indexed == batched
        assert counters(back) == counters(v)
        for key in (1, 3, 7, 8, 10, 1000, *range(400, 420), *range(500, 510)):
            want = v.lookup(key)
            assert back.lookup(key) == want, key
            if want is None:
                with pytest.raises(NeedleNotFound):
                    back.read(key, COOKIE)
            else:
                assert back.read(key, COOKIE) == v.read(key, COOKIE)
    finally:
        back.close()
    v.close()  # the rebuilt .idx is the one the volume writes when closed
    assert (copy / "3.idx").read_bytes() == v.path(".idx").read_bytes()


def fail_idx_writes(monkeypatch: pytest.MonkeyPatch, v: Volume, written: int) -> list[int]:
    """Make pwrites to `v`'s .idx write `written` bytes, then fail with ENOSPC; returns the
    list of offsets tried."""
    real = os.pwrite
    tried: list[int] = []

    def pwrite(fd: int, data: bytes, offset: int) -> int:
        if fd != v._idx:
            return real(fd, data, offset)
        tried.append(offset)
        if len(tried) == 1 and written:
            return real(fd, bytes(data)[:written], offset)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", pwrite)
    return tried


def test_a_failed_flush_keeps_the_batch_and_the_next_one_rewrites_it(
    make: Callable[..., Volume], monkeypatch: pytest.MonkeyPatch
) -> None:
    want, v = make("always", FsyncMode.ALWAYS), make("batched")
    for k in range(1, 256):
        want.write(needle(k))
        v.write(needle(k))
    tried = fail_idx_writes(monkeypatch, v, written=100)  # a short write, then ENOSPC
    want.write(needle(256))
    assert not v.write(needle(256)).unchanged  # the write itself is stored and served
    monkeypatch.undo()
    assert tried == [0, 0] and on_disk(v) == 100  # the rest is retried from the start
    assert v.read(256, COOKIE).data == needle(256).data
    assert v.read_only and v.read_only_reason == "disk full" and v.status().read_only
    v.set_read_only(False)  # the operator freed space
    assert on_disk(v) == 256 * 16
    for x in (want, v):
        x.write(needle(257))
        x.close()
    for suffix in (".dat", ".idx"):
        assert v.path(suffix).read_bytes() == want.path(suffix).read_bytes()


def test_a_volume_abandoned_after_a_failed_flush_reopens_with_everything(
    make: Callable[..., Volume], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    v = make()
    for k in range(1, 255):
        v.write(needle(k))
    v.delete(5, COOKIE)
    fail_idx_writes(monkeypatch, v, written=16 * 100 + 7)  # 100 entries and a piece
    v.write(needle(255))
    monkeypatch.undo()
    copy = abandon(v, tmp_path / "abandoned")
    back = Volume.open(copy, 3, fsync_mode=FsyncMode.NONE)
    try:
        assert back.recovery.idx_bytes_cut == 7 and back.recovery.records_indexed == 156
        assert counters(back) == counters(v)
        for k in range(1, 256):
            assert back.lookup(k) == v.lookup(k)
        with pytest.raises(NeedleNotFound):
            back.read(5, COOKIE)
    finally:
        back.close()


def test_a_flush_that_fails_at_close_leaves_the_rebuild_to_the_next_open(
    make: Callable[..., Volume], monkeypatch: pytest.MonkeyPatch
) -> None:
    v = make()
    for k in range(1, 11):
        v.write(needle(k))
    v.delete(4, COOKIE)
    before = counters(v)
    fail_idx_writes(monkeypatch, v, written=0)
    v.close()
    monkeypatch.undo()
    assert on_disk(v) == 0
    back = Volume.open(v.directory, 3, fsync_mode=FsyncMode.NONE)
    try:
        assert back.recovery.records_indexed == 11
        assert counters(back) == before
        with pytest.raises(NeedleNotFound):
            back.read(4, COOKIE)
    finally:
        back.close()
