"""Vacuum of one volume (spec §9.3, storage/volume_vacuum.py): compact, commit, cleanup; what
is copied and what is dropped; writes and deletes during the copy; reads across the commit;
refusals; TTL expiry of volumes (§9.5). Crashes between the steps: tests/fault/
test_storage_vacuum_crash.py."""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from seaweed_py.errors import Conflict, CorruptNeedle, DiskFull, NeedleNotFound, StorageError
from seaweed_py.formats.idx import iter_entries
from seaweed_py.formats.needle import NEEDLE_HEADER_SIZE, VERSION_3, decode_footer
from seaweed_py.formats.ttl import Ttl
from seaweed_py.storage import volume_vacuum
from seaweed_py.storage.backend import Backends
from seaweed_py.storage.scan import scan_records
from seaweed_py.storage.volume import FsyncMode, Volume
from tests.disk_faults import flip_byte
from tests.unit.test_storage_volume import COOKIE, Clock, needle

MINUTE_NS = 60 * 10**9


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make(tmp_path: Path, clock: Clock) -> Iterator[Callable[..., Volume]]:
    opened: list[Volume] = []

    def factory(**kw: object) -> Volume:
        kw.setdefault("fsync_mode", FsyncMode.NONE)
        v = Volume.create(tmp_path, 7, clock_ns=clock, **kw)  # type: ignore[arg-type]
        opened.append(v)
        return v

    yield factory
    for v in opened:
        v.close()


def reopen(v: Volume, clock: Clock, **kw: object) -> Volume:
    v.close()
    return Volume.open(v.directory, v.id, clock_ns=clock, fsync_mode=FsyncMode.NONE, **kw)  # type: ignore[arg-type]


def fill(v: Volume, clock: Clock, count: int = 60, size: int = 3000) -> dict[int, bytes]:
    """`count` needles of varied sizes (one empty), a third deleted and a few overwritten:
    the live ones, by key."""
    live: dict[int, bytes] = {}
    for key in range(1, count + 1):
        data = b"" if key == 5 else os.urandom(key * size // count + 1)
        v.write(needle(key, data))
        live[key] = data
        clock.now += 1000
    for key in range(3, count + 1, 3):
        v.delete(key, COOKIE)
        del live[key]
    for key in (1, 2, 4):
        data = os.urandom(700)
        v.write(needle(key, data))
        live[key] = data
    return live


def assert_holds(v: Volume, live: dict[int, bytes], gone: set[int]) -> None:
    for key, data in live.items():
        assert v.read(key, COOKIE).data == data, key
    for key in gone:
        with pytest.raises(NeedleNotFound):
            v.read(key, COOKIE)


def vacuum(v: Volume) -> None:
    v.compact()
    v.commit_compact()


def leftovers(v: Volume) -> list[str]:
    return sorted(p.name for p in v.directory.iterdir() if p.suffix in (".cpd", ".cpx", ".cpc"))


def test_a_vacuum_keeps_live_needles_drops_deleted_ones_and_bumps_the_revision(
    make: Callable[..., Volume], clock: Clock
) -> None:
    v = make()
    live = fill(v, clock)
    gone = set(range(3, 61, 3))
    before = v.size
    result = v.compact()
    assert result.needles == len(live) and result.expired == result.corrupt == 0
    assert leftovers(v) == ["7.cpd", "7.cpx"]
    committed = v.commit_compact()
    assert v.compact_revision == 1 and leftovers(v) == []
    assert committed.size_before == before and committed.size_after == v.size < before
    assert committed.reclaimed == before - v.size
    assert v.size == result.compacted_size == v.path(".dat").stat().st_size
    assert (v.file_count, v.delete_count, v.deleted_byte_count) == (len(live), 0, 0)
    assert v.garbage_level() == 0.0
    assert_holds(v, live, gone)
    v = reopen(v, clock)
    assert not v.recovery and v.compact_revision == 1
    assert_holds(v, live, gone)
    vacuum(v)  # a second vacuum of a clean volume changes no needle
    assert v.compact_revision == 2
    assert_holds(v, live, gone)


def test_a_read_only_mark_held_in_memory_outlives_the_commit(
    make: Callable[..., Volume], clock: Clock
) -> None:
    """The commit loads the compacted files afresh; a mark that was never saved (a tiered
    vacuum's hold on deletes, `volume.mark -readonly` with persist=false) must stay."""
    v = make()
    fill(v, clock)
    v.set_read_only(True, persist=False)
    vacuum(v)
    assert v.info.read_only
    with pytest.raises(StorageError):
        v.write(needle(999, b"refused"))
    v = reopen(v, clock)
    assert not v.info.read_only  # never saved: gone with the process


def test_records_are_copied_byte_for_byte_in_file_order(
    make: Callable[..., Volume], clock: Clock
) -> None:
    v = make()
    live = fill(v, clock)
    records = {k: v.record_at(v.lookup(k)) for k in live}  # type: ignore[arg-type]
    vacuum(v)
    assert {k: v.record_at(v.lookup(k)) for k in live} == records  # type: ignore[arg-type]
    # File order is time order: AppendAtNs strictly increases, and every record is sound.
    fd = os.open(v.path(".dat"), os.O_RDONLY)
    try:
        found = list(scan_records(fd, 8, v.size, VERSION_3))
    finally:
        os.close(fd)
    assert [r.key for r in found] == sorted(live, key=lambda k: v.lookup(k).offset)  # type: ignore[union-attr]
    assert all(r.error is None for r in found)
    stamps = [decode_footer(records[r.key], VERSION_3)[1] for r in found]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    # The index lists them in the same order.
    entries = list(iter_entries(v.path(".idx").read_bytes()))
    assert [e[0] for e in entries] == [r.key for r in found]


def test_writes_and_deletes_during_the_copy_survive_the_commit(
    make: Callable[..., Volume], clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(volume_vacuum, "_WINDOW", 1)  # a record per read,
    monkeypatch.setattr(volume_vacuum, "_FLUSH", 1)  # a record per write and pause
    v = make()
    live = fill(v, clock, count=90)
    gone = set(range(3, 91, 3))
    steps = iter(
        [
            lambda: v.write(needle(1000, b"written during the copy")),
            lambda: v.write(needle(1, b"overwritten during the copy")),
            lambda: v.delete(2, COOKIE),
            lambda: v.write(needle(1001, b"written and deleted during the copy")),
            lambda: v.delete(1001, COOKIE),
            lambda: v.delete(4, COOKIE),
            lambda: v.write(needle(4, b"deleted, then written again")),
        ]
    )

    def meanwhile(_seconds: float) -> None:
        """The copy's throttle pauses: writes and deletes come in then."""
        for step in steps:
            step()
            clock.now += 1000
            return

    v.compact(bytes_per_second=1, sleep=meanwhile)
    assert next(steps, None) is None, "the copy paused fewer times than there are steps"
    v.write(needle(1002, b"written between compact and commit"))
    v.delete(7, COOKIE)
    committed = v.commit_compact()
    assert committed.replayed == 9
    live |= {
        1000: b"written during the copy",
        1: b"overwritten during the copy",
        4: b"deleted, then written again",
        1002: b"written between compact and commit",
    }
    for key in (2, 7):
        del live[key]
    gone |= {2, 7, 1001}
    assert_holds(v, live, gone)
    assert_holds(reopen(v, clock), live, gone)


def test_a_commit_replays_most_of_a_long_backlog_before_it_takes_the_lock(
    make: Callable[..., Volume], clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    v = make()
    live = fill(v, clock)
    v.compact()
    for key in range(5000, 8000):  # more than the lock's share
        data = key.to_bytes(4, "big") * 10
        v.write(needle(key, data))
        live[key] = data
    for key in range(5000, 8000, 10):
        v.delete(key, COOKIE)
        del live[key]
    replays: list[bool] = []
    real = volume_vacuum._replay

    def watched(vol: Volume, *args: object) -> None:
        replays.append(vol._lock.locked())
        if len(replays) == 1:  # writes go on while the backlog is replayed
            vol.write(needle(9000, b"during the catch-up"))
            live[9000] = b"during the catch-up"
        real(vol, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(volume_vacuum, "_replay", watched)
    assert v.commit_compact().replayed == 3000 + 300 + 1
    assert replays[0] is False and replays[-1] is True
    assert_holds(v, live, set(range(5000, 8000, 10)))
    assert_holds(reopen(v, clock), live, set(range(5000, 8000, 10)))


def test_a_replayed_entry_that_changed_before_the_lock_restarts_the_replay(
    make: Callable[..., Volume], clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    v = make()
    live = fill(v, clock)
    v.compact()
    for key in range(5000, 7000):
        v.write(needle(key, b"late"))
        live[key] = b"late"
    monkeypatch.setattr(volume_vacuum, "_replayed_intact", lambda vol, state: False)
    assert v.commit_compact().replayed == 2000
    assert_holds(v, live, set())
    assert_holds(reopen(v, clock), live, set())


def test_a_delete_of_a_needle_the_copy_dropped_does_not_bring_it_back(
    make: Callable[..., Volume], clock: Clock
) -> None:
    """Its tombstone must not be replayed: alone in the copy, a Size-0 record of a key that is
    not live reads as an empty file (A2), so the needle would come back empty."""
    v = make()
    v.write(needle(1, b"expires", ttl=Ttl.parse("1m")))
    v.write(needle(2, b"stays"))
    flip_byte(v.path(".dat"), v.lookup(2).offset + NEEDLE_HEADER_SIZE + 6)  # type: ignore[union-attr]
    v.write(needle(3, b"kept"))
    clock.now += 2 * MINUTE_NS
    result = v.compact()
    assert (result.needles, result.expired, result.corrupt) == (1, 1, 1)
    v.delete(1, COOKIE)
    v.delete(2, COOKIE)
    assert v.commit_compact().replayed == 0
    v = reopen(v, clock)
    assert_holds(v, {3: b"kept"}, {1, 2})


def test_needles_are_dropped_when_their_own_ttl_has_passed(
    make: Callable[..., Volume], clock: Clock
) -> None:
    v = make()
    v.write(needle(1, b"one minute", ttl=Ttl.parse("1m")))
    v.write(needle(2, b"one hour", ttl=Ttl.parse("1h")))
    v.write(needle(3, b"no ttl"))
    clock.now += 50 * 10**9
    v.write(needle(4, b"one minute, written later", ttl=Ttl.parse("1m")))
    clock.now += 20 * 10**9  # 70 s after the first needle, 20 s after the last
    assert v.compact().expired == 1
    v.commit_compact()
    assert_holds(v, {2: b"one hour", 3: b"no ttl", 4: b"one minute, written later"}, {1})


def test_a_copy_the_disk_cannot_hold_is_refused_before_anything_is_written(
    make: Callable[..., Volume], clock: Clock
) -> None:
    v = make()
    live = fill(v, clock)
    dat = v.path(".dat").read_bytes()
    with pytest.raises(DiskFull, match="not enough free space to vacuum") as refused:
        v.compact(disk_free=1000)
    assert refused.value.status == 507
    assert leftovers(v) == [] and not v.compacting
    assert v.path(".dat").read_bytes() == dat
    v.write(needle(999, b"still writable"))
    vacuum(v)
    assert_holds(v, live | {999: b"still writable"}, set())


def test_a_full_disk_during_the_copy_leaves_the_volume_as_it_was(
    make: Callable[..., Volume], clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    v = make()
    live = fill(v, clock)
    real = os.pwrite

    def pwrite(fd: int, data: bytes, offset: int) -> int:
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".cpd") and offset > 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    with pytest.raises(DiskFull, match="no space left for the vacuum's copy"):
        v.compact()
    monkeypatch.undo()
    assert leftovers(v) == [] and not v.compacting and not v.read_only
    assert_holds(v, live, set())
    vacuum(v)
    assert_holds(v, live, set())


def test_compaction_mbps_paces_the_copy(make: Callable[..., Volume], clock: Clock) -> None:
    v = make()
    for key in range(1, 41):
        v.write(needle(key, os.urandom(200_000)))
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    rate = 1 << 20
    result = v.compact(bytes_per_second=rate, sleep=sleep, monotonic=lambda: now[0])
    assert len(slept) >= 2  # paced as it goes, not once at the end
    assert sum(slept) == pytest.approx(result.compacted_size / rate, rel=0.01)
    assert result.seconds == pytest.approx(sum(slept))


def test_one_compaction_at_a_time_and_commit_only_a_finished_one(
    make: Callable[..., Volume], clock: Clock
) -> None:
    v = make()
    live = fill(v, clock)
    with pytest.raises(Conflict, match="no finished compaction"):
        v.commit_compact()
    v.compact()
    with pytest.raises(Conflict, match="being vacuumed already"):
        v.compact()
    assert v.cleanup_compact() is True
    assert leftovers(v) == [] and not v.compacting
    with pytest.raises(Conflict):
        v.commit_compact()
    assert v.cleanup_compact() is False
    vacuum(v)
    assert_holds(v, live, set())


class _StalledBucket:
    """Enough of an `S3Backend` for `tier_upload` to start: its first upload waits for
    `go`, then fails (the volume stays local, as after a failed upload)."""

    settings = SimpleNamespace(prefix="", backend_id="default")
    name = "s3.default"

    def __init__(self) -> None:
        self.started, self.go = threading.Event(), threading.Event()

    def upload_file(self, key: str, path: Path, progress: object = None) -> int:
        self.started.set()
        assert self.go.wait(30)
        raise StorageError(f"upload of {key} stopped by the test")


def test_no_compaction_while_an_upload_runs_and_no_upload_while_a_compaction_runs(
    make: Callable[..., Volume], clock: Clock
) -> None:
    """A commit during an upload would leave the bucket's old .dat paired with the compacted
    .idx (every live blob unreadable); a MarkWritable meanwhile must not open the way."""
    v = make()
    live = fill(v, clock)
    bucket = _StalledBucket()
    failed: list[BaseException] = []

    def upload() -> None:
        try:
            v.tier_upload(bucket, Backends({}))  # type: ignore[arg-type]
        except StorageError as exc:
            failed.append(exc)

    uploading = threading.Thread(target=upload)
    uploading.start()
    try:
        assert bucket.started.wait(30)
        with pytest.raises(Conflict, match="being tiered"):
            v.compact()
        v.set_read_only(False)
        with pytest.raises(Conflict, match="being tiered"):
            v.compact()
        with pytest.raises(Conflict, match="already being tiered"):
            v.tier_upload(bucket, Backends({}))  # type: ignore[arg-type]
    finally:
        bucket.go.set()
        uploading.join(30)
    assert len(failed) == 1 and not v.read_only and v.remote is None
    v.compact()
    with pytest.raises(Conflict, match="being vacuumed"):
        v.tier_upload(bucket, Backends({}))  # type: ignore[arg-type]
    v.commit_compact()
    assert_holds(v, live, set())


def test_a_commit_after_another_vacuum_changed_the_revision_is_refused(
    make: Callable[..., Volume], clock: Clock
) -> None:
    v = make()
    fill(v, clock)
    v.compact()
    assert v._compaction is not None
    v._compaction.revision += 1  # as if the files had been compacted under it
    with pytest.raises(Conflict, match="compacted meanwhile"):
        v.commit_compact()
    assert v.compact_revision == 0 and leftovers(v) == []


def test_a_read_that_looked_its_needle_up_before_the_commit_reads_it_after(
    make: Callable[..., Volume], clock: Clock
) -> None:
    v = make()
    live = fill(v, clock)
    hits = {k: v.lookup(k) for k in live}
    vacuum(v)
    moved = [k for k in live if v.lookup(k) != hits[k]]
    assert moved
    for key in moved:  # the old place, read in the new file: found again where it is now
        hit = hits[key]
        assert hit is not None
        assert v.read_at(key, COOKIE, hit).data == live[key]
    assert v.corrupt_needles() == []


def test_a_stream_spanning_a_commit_follows_its_needle(
    make: Callable[..., Volume], clock: Clock
) -> None:
    v = make()
    for key in range(1, 11):
        v.write(needle(key, os.urandom(50_000)))
    v.delete(1, COOKIE)
    big = os.urandom(3 << 20)
    v.write(needle(100, big))
    loc = v.read_meta(100, COOKIE)
    v.verify(loc)
    assert v.verified(loc)
    chunks = v.iter_data(loc, 1 << 20)
    first = next(chunks)
    vacuum(v)
    assert v.lookup(100).offset < loc.hit.offset  # type: ignore[union-attr]
    assert not v.verified(loc)  # remembered for the old place, not the new one
    assert first + b"".join(chunks) == big
    v.verify(loc)  # found where it is now, and checked there
    ranged = loc.__class__(loc.needle, loc.data_offset + 100, 1000, loc.hit, loc.generation)
    assert b"".join(v.iter_data(ranged, 300, verify=False)) == big[100:1100]


def test_a_stream_of_a_needle_deleted_and_vacuumed_away_ends(
    make: Callable[..., Volume], clock: Clock
) -> None:
    v = make()
    v.write(needle(1, os.urandom(2 << 20)))
    v.write(needle(2, b"x"))
    loc = v.read_meta(1, COOKIE)
    chunks = v.iter_data(loc, 1 << 20)
    next(chunks)
    v.delete(1, COOKIE)
    vacuum(v)
    with pytest.raises(NeedleNotFound, match="deleted or replaced while it was read"):
        next(chunks)


@pytest.mark.parametrize(
    "kw",
    [
        {"large_disk": True},
        {"index_kind": "mmap"},
        {"ttl": Ttl.parse("1h")},
    ],
    ids=["idx5", "mmap", "ttl"],
)
def test_every_kind_of_volume_vacuums(
    make: Callable[..., Volume], clock: Clock, kw: dict[str, object]
) -> None:
    v = make(**kw)
    live = fill(v, clock)
    vacuum(v)
    assert_holds(v, live, set(range(3, 61, 3)))
    v = reopen(v, clock, index_kind=kw.get("index_kind", "memory"))
    assert not v.recovery
    assert_holds(v, live, set(range(3, 61, 3)))


def test_a_sealed_volume_vacuums_and_stays_sealed(
    make: Callable[..., Volume], clock: Clock
) -> None:
    v = make()
    live = fill(v, clock)
    v.set_read_only(True)
    vacuum(v)
    assert v.read_only and v.needle_map.kind == "mmap"
    assert_holds(v, live, set(range(3, 61, 3)))


def test_corrupt_needles_are_dropped_and_no_longer_listed(
    make: Callable[..., Volume], clock: Clock
) -> None:
    v = make()
    live = fill(v, clock)
    key = 10
    flip_byte(v.path(".dat"), v.lookup(key).offset + NEEDLE_HEADER_SIZE + 8)  # type: ignore[union-attr]
    with pytest.raises(CorruptNeedle):
        v.read(key, COOKIE)
    assert [r.key for r in v.corrupt_needles()] == [key]
    assert v.compact().corrupt == 1
    v.commit_compact()
    del live[key]
    assert v.corrupt_needles() == []
    assert_holds(v, live, {key})


def test_close_stops_a_compaction_and_the_next_open_rolls_it_back(
    make: Callable[..., Volume], clock: Clock
) -> None:
    v = make()
    live = fill(v, clock)
    v.compact()
    v = reopen(v, clock)
    assert leftovers(v) == [] and v.compact_revision == 0
    assert_holds(v, live, set())


def test_an_offline_open_of_a_commit_caught_between_its_renames_is_refused(
    make: Callable[..., Volume], clock: Clock
) -> None:
    v = make()
    live = fill(v, clock)
    v.compact()
    v.close()
    d = v.directory
    (d / "7.cpc").write_text("1\n")
    os.replace(d / "7.cpd", d / "7.dat")  # the .idx not renamed yet
    with pytest.raises(StorageError, match="interrupted vacuum commit must finish first"):
        Volume.open(d, 7, writable=False)
    v = Volume.open(d, 7, clock_ns=clock, fsync_mode=FsyncMode.NONE)
    try:
        assert v.compact_revision == 1 and leftovers(v) == [] and not v.recovery
        assert_holds(v, live, set())
    finally:
        v.close()


# ------------------------------------------------------------------ TTL volumes (spec §9.5)


def test_a_ttl_volume_expires_a_ttl_after_its_newest_needle(
    make: Callable[..., Volume], clock: Clock
) -> None:
    v = make(ttl=Ttl.parse("1m"))
    start = clock.now / 1e9
    assert not v.expired(start + 3600)  # nothing written: never expires
    v.write(needle(1, b"a"))
    clock.now += 30 * 10**9
    v.write(needle(2, b"b"))
    newest = clock.now / 1e9
    clock.now += 40 * 10**9
    v.delete(1, COOKIE)  # a delete is no write: it does not extend the volume's life
    assert not v.expired(newest + 59.9)
    assert v.expired(newest + 60)
    assert not v.expired_long_enough(newest + 65.9)  # grace: min(TTL/10, 10 min) = 6 s
    assert v.expired_long_enough(newest + 66)
    v = reopen(v, clock)  # a restart does not extend it either: AppendAtNs, not mtime
    assert v.expired(newest + 60) and not v.expired(newest + 59.9)


def test_deleting_the_newest_needle_lets_the_one_before_it_count(
    make: Callable[..., Volume], clock: Clock
) -> None:
    v = make(ttl=Ttl.parse("1m"))
    v.write(needle(1, b"a"))
    first = clock.now / 1e9
    clock.now += 30 * 10**9
    v.write(needle(2, b"b"))
    assert not v.expired(first + 60)
    v.delete(2, COOKIE)
    assert v.expired(first + 60) and not v.expired(first + 59.9)


def test_the_grace_of_a_long_ttl_is_ten_minutes(make: Callable[..., Volume], clock: Clock) -> None:
    v = make(ttl=Ttl.parse("1d"))
    v.write(needle(1, b"a"))
    written = clock.now / 1e9
    assert v.expired(written + 86400) and not v.expired_long_enough(written + 86400 + 599)
    assert v.expired_long_enough(written + 86400 + 600)


def test_a_volume_without_ttl_never_expires(make: Callable[..., Volume], clock: Clock) -> None:
    v = make()
    v.write(needle(1, b"a", ttl=Ttl.parse("1m")))
    assert not v.expired(clock.now / 1e9 + 10**9)


def test_a_commit_logs_no_interrupted_vacuum(
    make: Callable[..., Volume], clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    v = make()
    fill(v, clock)
    vacuum(v)
    assert "interrupted" not in caplog.text
    assert leftovers(v) == []


def test_a_commit_never_shows_the_files_as_missing(
    make: Callable[..., Volume], clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A heartbeat during the renames must not report the volume gone (the master would drop
    its location); files deleted under the volume still are."""
    v = make()
    fill(v, clock)
    v.compact()
    seen: list[bool] = []
    real = volume_vacuum.rename

    def watched(source: Path, target: Path) -> None:
        real(source, target)
        seen.append(v.files_missing())

    monkeypatch.setattr(volume_vacuum, "rename", watched)
    v.commit_compact()
    assert seen == [False, False]
    assert not v.files_missing()
    v.path(".idx").unlink()
    assert v.files_missing()
