"""The stamp log, volume copies, corrupt needles and healing counters of a volume server several
workers serve (storage/stamps.py "Several workers"; storage/shared.py; Store.finish_copy;
storage/integrity.py; volume/stats.py), step by step in one process: the leader's store and
another worker's over one directory, used one after the other, so every hand-over is
deterministic. The real processes are tests/fault/test_server_workers_replicas.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from seaweed_py.errors import Conflict, CorruptNeedle, NeedleNotFound
from seaweed_py.formats.needle import Needle
from seaweed_py.formats.stamp_log import STAMP_ENTRY_SIZE, StampKind, decode_stamps, encode_stamp
from seaweed_py.storage.shared import ATS_END, HOLDER, MAX_WORKERS, WorkerShare
from seaweed_py.storage.store import Store
from seaweed_py.storage.volume import FsyncMode, Volume
from tests.fault.storage_workload import COOKIE, journaled_store, leader_and_worker

VID = 5
SECOND = 1_000_000_000


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    directory = tmp_path / "d"
    directory.mkdir()
    leader, worker = leader_and_worker(directory, allocate=VID)
    try:
        yield leader, worker
    finally:
        worker.close()
        leader.close()


def volume(store: Store, vid: int = VID) -> Volume:
    v = store.get(vid)
    assert v is not None
    return v


def put(store: Store, key: int, origin: int | None = None) -> int:
    """A write through `store` (a replicated one with `origin`); the time it stands for."""
    needle = Needle.build(COOKIE, key, b"%d" % key * 50)
    result = volume(store).write(needle, origin_ns=origin)
    result.durable.result(timeout=10)
    return result.stamp


def entries(v: Volume) -> list[tuple[int, int, int, int]]:
    """(key, at, origin, kind) of every entry of the volume's `.ats`, in file order; the file
    holds whole entries only, none of them zero."""
    raw = v.path(".ats").read_bytes()
    assert len(raw) % STAMP_ENTRY_SIZE == 0, len(raw)
    log = decode_stamps(raw)
    assert len(log) * STAMP_ENTRY_SIZE == len(raw), "a hole (zero entry) in the stamp log"
    return list(
        zip(
            log.keys.tolist(), log.at.tolist(), log.origin.tolist(), log.kinds.tolist(), strict=True
        )
    )


def test_every_worker_logs_origins_and_deletes_and_sees_the_others(
    pair: tuple[Store, Store],
) -> None:
    """Replicated writes and deletes land on either worker, in an order that makes some of
    them older than the volume's last record: each is logged once, after the others' entries
    (no overwrite, no hole), and every worker, and a restart, tells the same time for each."""
    leader, worker = pair
    now = put(leader, 1)  # a fresh stamp: the replicated writes below are older
    stands: dict[int, int] = {}
    for key in range(2, 22):
        store = worker if key % 2 else leader
        stands[key] = put(store, key, origin=now - (30 - key) * SECOND)
        assert stands[key] == now - (30 - key) * SECOND
    for key in (3, 4):  # deletes from the primary, one through each worker
        store = worker if key % 2 else leader
        d = volume(store).delete(key, COOKIE, origin_ns=now + key)
        d.durable.result(timeout=10)
        stands[key] = -(now + key)
    logged = entries(volume(leader))
    origins = {k: o for k, _, o, kind in logged if kind == StampKind.ORIGIN}
    deletes = {k: o for k, _, o, kind in logged if kind == StampKind.DELETE}
    assert set(origins) == set(range(2, 22)), "a worker's ORIGIN entry is missing"
    assert deletes == {3: now + 3, 4: now + 4}
    assert len(logged) == 22
    expected = {k: (abs(s), s < 0) for k, s in stands.items()}
    for store in (leader, worker):
        states = volume(store).states()
        got = {k: (s.stamp, s.deleted) for k, s in states.items() if k != 1}
        assert got == expected
    assert volume(leader).digest() == volume(worker).digest()
    directory = volume(leader).directory
    worker.close()
    leader.close()
    again = journaled_store(directory)
    again.load()
    try:
        got = {k: (s.stamp, s.deleted) for k, s in volume(again).states().items() if k != 1}
        assert got == expected
    finally:
        again.close()


def test_a_worker_dead_holding_the_lock_leaves_nothing_the_next_appender_builds_on(
    pair: tuple[Store, Store],
) -> None:
    """The worker died in the middle of an append: its slot still names it as the holder and
    its entry (whole, then torn) lies past the published end. The next taker cuts it off and
    appends where the published end says; nothing of it is read, by any worker or a
    restart."""
    leader, worker = pair
    now = put(leader, 1)
    put(worker, 2, origin=now - SECOND)
    v = volume(worker)
    assert v._share is not None
    words, slot = v._share.words, v._slot
    end = int(words[slot + ATS_END])
    assert end == STAMP_ENTRY_SIZE  # key 2's ORIGIN entry only
    ghost = encode_stamp(9, now + SECOND, now - 5 * SECOND, COOKIE, StampKind.DELETE)
    with open(v.path(".ats"), "r+b") as f:
        f.seek(end)
        f.write(ghost + ghost[:11])  # a whole unpublished entry, then a torn one
    dead = 2**22 + 12345  # no such process
    words[slot + HOLDER] = dead
    assert leader.recover_from(dead) == [VID]
    assert words[slot + HOLDER] == 0
    assert os.path.getsize(v.path(".ats")) == end
    put(worker, 3, origin=now - 2 * SECOND)
    assert [k for k, *_ in entries(v)] == [2, 3]
    for store in (leader, worker):
        states = volume(store).states()
        assert 9 not in states
        assert states[3].stamp == now - 2 * SECOND
    assert leader.recover_from(dead) == []  # once recovered, nothing more to do


def test_a_torn_entry_without_a_dead_holder_is_overwritten_by_the_next_append(
    pair: tuple[Store, Store],
) -> None:
    """Bytes past the published end that no holder owns (a crash before the share was
    made, or a test's): the next entry goes at the published end, over them."""
    leader, worker = pair
    now = put(leader, 1)
    put(leader, 2, origin=now - SECOND)
    v = volume(worker)
    with open(v.path(".ats"), "ab") as f:
        f.write(b"\xff" * 20)
    put(worker, 3, origin=now - 2 * SECOND)
    assert [k for k, *_ in entries(v)] == [2, 3]


def test_a_volume_copied_in_through_one_worker_is_served_by_the_other(
    pair: tuple[Store, Store], tmp_path: Path
) -> None:
    """Store.finish_copy shares the copy and tells the others: the other worker serves it,
    with its stamps, and writes to it through either worker land in one log; its deletion
    through the other worker is seen by the first."""
    leader, worker = pair
    src_dir = tmp_path / "src"
    src_dir.mkdir()
    src = Volume.create(src_dir, 12, fsync_mode=FsyncMode.NONE)
    try:
        for key in range(1, 30):
            src.write(Needle.build(COOKIE, key, b"x%d" % key), origin_ns=1000 + key)
        src.write(Needle.build(COOKIE, 40, b"late"), origin_ns=10)  # an ORIGIN entry
        src.delete(5, COOKIE)
        snap = src.copy_snapshot()
        assert snap.stamps_size >= 2 * STAMP_ENTRY_SIZE
        incoming = worker.begin_copy(12, "", snap.dat_size, "src:8080")
        for file, size in (
            ("dat", snap.dat_size),
            ("idx", snap.idx_size),
            ("ats", snap.stamps_size),
        ):
            incoming.write(file, 0, src.read_for_copy(file, 0, size, snap.compact_revision))
        incoming.commit(snap.vif)
        for store in (leader, worker):
            copied = volume(store, 12)
            assert copied.states() == src.states()
            assert copied.read(7, COOKIE).data == b"x7"
            with pytest.raises(NeedleNotFound):
                copied.read(5, COOKIE)
        first = volume(leader, 12).write(Needle.build(COOKIE, 50, b"after"))
        now = first.stamp
        second = volume(worker, 12).write(
            Needle.build(COOKIE, 51, b"older"), origin_ns=now - SECOND
        )
        for done in (first, second):
            done.durable.result(timeout=10)
        for store in (leader, worker):
            states = volume(store, 12).states()
            assert states[51].stamp == now - SECOND
            assert states[40].stamp == 10
        leader.delete_volume(12)
        assert worker.get(12) is None
        assert not list(leader.locations[0].path.glob("12.*"))
    finally:
        src.close()


def test_a_corrupt_needle_one_worker_found_is_listed_by_every_worker_and_logged_once(
    pair: tuple[Store, Store], caplog: pytest.LogCaptureFixture
) -> None:
    """The worker's read meets a rotted needle: the leader lists it too (its `/status` and
    metrics), a read there does not log it again, and once repaired (overwritten) it is
    listed nowhere."""
    leader, worker = pair
    put(leader, 1)
    put(leader, 2)
    v = volume(worker)
    hit = v.lookup(2)
    assert hit is not None
    with open(v.path(".dat"), "r+b") as f:
        f.seek(hit.offset + 20 + 8)  # inside the data
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(CorruptNeedle):
        v.read(2, COOKIE)
    for store in (leader, worker):
        assert [(r.key, r.offset) for r in volume(store).corrupt_needles()] == [(2, hit.offset)]
    with pytest.raises(CorruptNeedle):
        volume(leader).read(2, COOKIE)
    assert sum("corrupt needle key=2 " in r.getMessage() for r in caplog.records) == 1
    put(leader, 2)  # the key's new record replaces the rotted one
    for store in (leader, worker):
        assert volume(store).corrupt_needles() == []


def test_the_healing_counters_are_summed_over_the_workers(tmp_path: Path) -> None:
    """Each worker adds to its own row of the share; any worker reports the sum, and a
    worker started again in a row goes on from the count its predecessor left."""
    directory = tmp_path / "d"
    directory.mkdir()
    leader = WorkerShare(directory, create=True)
    first, second = leader.counters(0), WorkerShare(directory, create=False).counters(1)
    first[3] += 5
    second[3] += 7
    second[0] += 1
    assert (leader.counter_total(3), leader.counter_total(0)) == (12, 1)
    again = WorkerShare(directory, create=False).counters(1)
    again[3] += 1
    assert leader.counter_total(3) == 13
    with pytest.raises(ValueError):
        leader.counters(MAX_WORKERS)


def test_a_copy_a_dead_worker_left_half_written_is_removed_when_the_leader_sees_it_gone(
    pair: tuple[Store, Store],
) -> None:
    """Its `.note` names the worker: the leader deletes that copy's files at once (not at the
    next start), so the volume may be copied there again; another process's copy stays."""
    leader, worker = pair
    directory = leader.locations[0].path
    incoming = worker.begin_copy(12, "", 1000, "src:8080")
    incoming.write("dat", 0, b"x" * 100)
    incoming._close()  # the worker dies here (this process plays it: the note names it)
    worker.forget_copy(incoming)
    (directory / "13.note").write_text("copying from src:8080\nby process 4194304999\n")
    (directory / "13.dat").write_bytes(b"y" * 10)
    with pytest.raises(Conflict):
        leader.begin_copy(12, "", 1000, "src:8080")
    leader.recover_from(os.getpid())
    assert not list(directory.glob("12.*"))
    assert sorted(p.name for p in directory.glob("13.*")) == ["13.dat", "13.note"]
    again = leader.begin_copy(12, "", 1000, "src:8080")
    again.abort()
