"""Vacuum of a volume several workers serve (storage/volume_vacuum.py, "several workers";
storage/shared.py), step by step in one process: a store that loaded the directory and
shares it (the leader) and one that attached to it (another worker), used one after the
other, so every hand-over between them is deterministic. The real processes under load are
tests/fault/test_server_vacuum_workers.py.

Each test checks every acknowledged write and delete through both stores afterwards, and
after a restart on the same directory.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from seaweed_py.errors import Conflict, NeedleNotFound, VolumeReadOnly
from seaweed_py.formats.needle import Needle
from seaweed_py.formats.ttl import Ttl
from seaweed_py.storage.shared import STAGE, STAGE_PID, WorkerShare
from seaweed_py.storage.store import DiskLocation, Store
from seaweed_py.storage.volume import FsyncMode, Volume
from seaweed_py.storage.volume_vacuum import (
    COMMITTING,
    COMPACTION_SUFFIXES,
    COPIED,
    COPYING,
    NONE,
    rename,
    write_marker,
)
from tests.fault.storage_workload import COOKIE, journaled_store, leader_and_worker, payload

VID = 3


@dataclass
class Pair:
    """The leader's store and another worker's, over one directory."""

    directory: Path
    leader: Store
    worker: Store
    acked: dict[int, bytes | None] = field(default_factory=dict)

    def volume(self, store: Store) -> Volume:
        v = store.get(VID)
        assert v is not None
        return v

    def write(self, store: Store, key: int, copies: int = 1) -> None:
        data = b"%d:" % key + payload(key) * copies
        self.volume(store).write(Needle.build(COOKIE, key, data)).durable.result(timeout=10)
        self.acked[key] = data

    def delete(self, store: Store, key: int) -> None:
        self.volume(store).delete(key, COOKIE).durable.result(timeout=10)
        self.acked[key] = None

    def check(self, store: Store) -> None:
        v = self.volume(store)
        for key, data in self.acked.items():
            if data is None:
                with pytest.raises(NeedleNotFound):
                    v.read(key, COOKIE)
            else:
                assert v.read(key, COOKIE).data == data, f"key {key}"


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    directory = tmp_path / "d"
    directory.mkdir()
    leader, worker = leader_and_worker(directory, allocate=VID)
    p = Pair(directory, leader, worker)
    try:
        yield p
    finally:
        worker.close()
        leader.close()


def test_a_saved_read_only_mark_holds_in_every_worker_after_a_restart(tmp_path: Path) -> None:
    """A claimed slot starts with clear flags: the leader publishes the `.vif`'s mark, or
    the first lock taken in any worker made the volume writable again."""
    directory = tmp_path / "d"
    directory.mkdir()
    first = journaled_store(directory)
    first.load()
    first.allocate(VID)
    first.mark_read_only(VID, True, persist=True)
    first.close()
    leader, worker = leader_and_worker(directory)
    try:
        for store in (leader, worker, leader):
            v = store.get(VID)
            assert v is not None
            with pytest.raises(VolumeReadOnly):
                v.write(Needle.build(COOKIE, 1, b"refused"))
            assert v.info.read_only
    finally:
        worker.close()
        leader.close()


def _garbage(p: Pair) -> None:
    """Writes through both stores, two thirds of them deleted."""
    for key in range(1, 61):
        p.write(p.leader if key % 2 else p.worker, key, copies=20)
    for key in range(1, 61):
        if key % 3:
            p.delete(p.worker if key % 2 else p.leader, key)


def _restarted(p: Pair) -> None:
    """Close both stores and open the directory again: every outcome holds."""
    p.worker.close()
    p.leader.close()
    again = journaled_store(p.directory)
    again.load()
    try:
        p.check(again)
        assert not [x for x in p.directory.iterdir() if x.suffix in COMPACTION_SUFFIXES]
    finally:
        again.close()
    p.leader, p.worker = (
        journaled_store(p.directory),
        journaled_store(p.directory),
    )  # closed by the fixture


def _stage(v: Volume) -> int:
    assert v._share is not None
    return int(v._share.words[v._slot + STAGE])


def test_a_compaction_one_worker_copied_is_committed_by_another(pair: Pair) -> None:
    """The leader compacts; the other worker writes and deletes meanwhile (in `.idx`, so the
    commit replays them) and commits; the leader then reads from the new files (it follows
    the commit: new descriptors, new map), writes to them, and both agree."""
    p = pair
    _garbage(p)
    size_before = p.volume(p.leader).size
    p.leader.compact_volume(VID)
    assert _stage(p.volume(p.worker)) == COPIED
    assert p.volume(p.worker).compacting  # its writes would go off the loop too
    p.write(p.worker, 100, copies=5)
    p.delete(p.worker, 6)
    p.write(p.leader, 101)
    result = p.worker.commit_compaction(VID)
    assert result.replayed == 3
    assert _stage(p.volume(p.leader)) == NONE
    leader_v = p.volume(p.leader)
    assert leader_v.size < size_before
    p.check(p.leader)  # follows the commit first
    assert leader_v.compact_revision == 1 and leader_v._generation == 1
    p.write(p.leader, 102)
    p.delete(p.leader, 9)
    p.check(p.worker)
    p.check(p.leader)
    assert not p.volume(p.worker).files_missing()
    assert not p.volume(p.leader).files_missing()
    _restarted(p)


def test_a_compaction_is_committed_by_the_worker_that_copied_it_and_followed(
    pair: Pair,
) -> None:
    """The same worker compacts and commits: the other one, which wrote in between, follows
    at its next lookup and at its next append."""
    p = pair
    _garbage(p)
    p.worker.compact_volume(VID)
    p.write(p.leader, 200)
    p.worker.commit_compaction(VID)
    p.write(p.leader, 201)  # the append follows the commit under the lock first
    p.check(p.leader)
    p.check(p.worker)
    _restarted(p)


def test_cleanup_through_another_worker_drops_the_copy(pair: Pair) -> None:
    """A compaction copied by one worker is cleaned up through the other: the files go, no
    worker can commit it, and a new compaction starts and commits."""
    p = pair
    _garbage(p)
    p.leader.compact_volume(VID)
    assert p.worker.cleanup_compaction(VID)
    assert not list(p.directory.glob(f"{VID}.cp*"))
    with pytest.raises(Conflict):
        p.leader.commit_compaction(VID)
    with pytest.raises(Conflict):
        p.worker.commit_compaction(VID)
    p.worker.compact_volume(VID)
    with pytest.raises(Conflict):  # one compaction at a time, whichever worker asks
        p.leader.compact_volume(VID)
    p.leader.commit_compaction(VID)
    p.check(p.worker)
    p.check(p.leader)


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_copy_whose_worker_died_does_not_block_the_next_vacuum(pair: Pair) -> None:
    """The share says a worker that no longer exists is copying: a compaction starts anyway
    (and cleanup reports the partial files)."""
    p = pair
    _garbage(p)
    v = p.volume(p.worker)
    assert v._share is not None
    (p.directory / f"{VID}.cpd").write_bytes(b"partial")
    v._share.words[v._slot + STAGE_PID] = _dead_pid()
    v._share.words[v._slot + STAGE] = COPYING
    with pytest.raises(Conflict):
        p.leader.commit_compaction(VID)
    assert p.worker.cleanup_compaction(VID)
    assert not (p.directory / f"{VID}.cpd").exists()
    v._share.words[v._slot + STAGE_PID] = _dead_pid()
    v._share.words[v._slot + STAGE] = COPYING
    p.leader.compact_volume(VID)
    p.worker.commit_compaction(VID)
    p.check(p.leader)


@pytest.mark.parametrize("renamed", [0, 1, 2])
def test_a_worker_that_died_committing_is_rolled_forward_by_the_next_lock_holder(
    pair: Pair, renamed: int
) -> None:
    """A worker died in the middle of a commit (marker written, `renamed` of the two renames
    done, the share still saying it commits): the next worker to take the volume's lock
    finishes the commit as an open after a crash would, every worker follows, and every
    acknowledged write holds."""
    p = pair
    _garbage(p)
    p.leader.compact_volume(VID)
    v = p.volume(p.leader)
    state = v._compaction
    assert state is not None
    base = p.directory / str(VID)
    write_marker(Path(f"{base}.cpc"), state.revision)
    for ext in (".cpd", ".cpx")[:renamed]:
        suffix = ".dat" if ext == ".cpd" else ".idx"
        rename(Path(f"{base}{ext}"), Path(f"{base}{suffix}"))
    assert v._share is not None
    v._share.words[v._slot + STAGE_PID] = _dead_pid()
    v._share.words[v._slot + STAGE] = COMMITTING
    p.write(p.worker, 300)  # takes the lock: recovers first
    assert _stage(v) == NONE
    assert not [x for x in p.directory.iterdir() if x.suffix in COMPACTION_SUFFIXES]
    assert p.volume(p.worker).compact_revision == 1
    p.check(p.worker)
    p.check(p.leader)
    p.write(p.leader, 301)
    p.check(p.worker)
    _restarted(p)


def test_a_worker_that_died_committing_before_its_marker_is_rolled_back(pair: Pair) -> None:
    p = pair
    _garbage(p)
    p.leader.compact_volume(VID)
    v = p.volume(p.leader)
    assert v._share is not None
    v._share.words[v._slot + STAGE_PID] = _dead_pid()
    v._share.words[v._slot + STAGE] = COMMITTING
    p.delete(p.worker, 3)
    assert _stage(v) == NONE
    assert not list(p.directory.glob(f"{VID}.cp*"))
    assert p.volume(p.worker).compact_revision == 0
    p.check(p.leader)
    p.leader.compact_volume(VID)
    p.leader.commit_compaction(VID)
    p.check(p.worker)
    _restarted(p)


def test_only_this_process_pid_counts_as_its_own(pair: Pair) -> None:
    """The stage names the worker by pid: another live process is not this one."""
    p = pair
    v = p.volume(p.worker)
    assert v._share is not None
    v._share.words[v._slot + STAGE_PID] = os.getppid()  # alive, not us
    v._share.words[v._slot + STAGE] = COPYING
    with pytest.raises(Conflict):
        p.leader.compact_volume(VID)
    assert p.worker.cleanup_compaction(VID)  # asks that copy to stop
    assert _stage(v) == NONE


def test_a_ttl_volume_expires_after_the_newest_write_of_any_worker_and_the_others_let_go(
    tmp_path: Path,
) -> None:
    """A `1m` TTL volume the leader never writes to, written by the other worker twice, 50 s
    apart: the leader (the one that heartbeats and removes expired volumes) counts the other
    worker's writes, so the volume lives until a minute after the second; then the leader
    deletes it and the other worker lets go of it (no error, no file left)."""
    directory = tmp_path / "d"
    directory.mkdir()
    now = [1_700_000_000 * 10**9]

    def clock() -> int:
        return now[0]

    def store() -> Store:
        return Store(
            [DiskLocation(directory, 8)],
            fsync_mode=FsyncMode.GROUP,
            journal_ring=1 << 20,
            clock_ns=clock,
        )

    leader, worker = store(), store()
    leader.load()
    leader.share_workers(WorkerShare(directory, create=True))
    try:
        leader.allocate(VID, ttl=Ttl.parse("1m"))
        worker.attach(WorkerShare(directory, create=False))
        lv, wv = leader.get(VID), worker.get(VID)
        assert lv is not None and wv is not None
        wv.write(Needle.build(COOKIE, 1, b"first")).durable.result(timeout=10)
        assert not leader.expired_volumes()
        now[0] += 50 * 10**9
        wv.write(Needle.build(COOKIE, 2, b"second")).durable.result(timeout=10)
        now[0] += 15 * 10**9  # 65 s after the first write, 15 s after the second
        assert leader.expired_volumes() == []
        assert leader.remove_expired_volumes() == []
        now[0] += 46 * 10**9  # 61 s after the second write: expired, within its grace
        assert leader.expired_volumes() == [VID]
        assert leader.remove_expired_volumes() == []
        now[0] += 6 * 10**9
        assert leader.remove_expired_volumes() == [VID]
        assert not list(directory.glob(f"{VID}.*"))
        assert worker.get(VID) is None
        assert VID not in [v.id for v in worker.volumes()]
    finally:
        worker.close()
        leader.close()
