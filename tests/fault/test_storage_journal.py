"""Power losses and torn tails with the per-disk journal (storage/journal.py).

The disk model: every file keeps what its last fdatasync/fsync saw; of what was written after
it, each 4 KiB page of each pwrite reaches the disk or not, independently, in any order (a
page that did not reads as what was there before, zeros past the old end). That covers a
journal whose ring overwrites an earlier lap, torn entries, a `.dat` that lost its unsynced
tail or a page in its middle, and an `.idx` with holes. After the loss a new store opens the
images: every acknowledged write and delete holds, nothing reads back wrong. A sync run by
io_uring (the server's background rounds) covers what its file held when it was submitted,
once its completion is collected (`RingSyncs`).
"""

from __future__ import annotations

import os
import random
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from seaweed_py.errors import NeedleNotFound
from seaweed_py.formats.needle import Needle
from seaweed_py.storage.group_commit import RoundFuture
from seaweed_py.storage.journal import JOURNAL_FILE, Journal, read_entries
from seaweed_py.storage.store import DiskLocation, Store
from seaweed_py.storage.uring import AsyncSync
from seaweed_py.storage.volume import FsyncMode, Volume
from tests.fault.storage_workload import COOKIE, payload
from tests.fault.storage_workload import seeds as with_slow_seeds
from tests.uring_kernel import needs_io_uring, readable

_PAGE = 4096


def seeds(n: int) -> list[int]:
    return list(range(n))


@dataclass
class _File:
    synced: bytes = b""
    pending: list[tuple[int, bytes]] = field(default_factory=list)


class PageLossDisk:
    """Tracks, per descriptor, the content at its last sync and the pwrites since."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.files: dict[int, _File] = {}
        real_pwrite, real_fdatasync, real_fsync = os.pwrite, os.fdatasync, os.fsync
        real_ftruncate, real_close = os.ftruncate, os.close

        def pwrite(fd: int, data: bytes | memoryview, offset: int) -> int:
            try:
                f = self.files.setdefault(fd, _File(_read_fd(fd)))
            except OSError:  # opened for writing only (a vacuum's marker): not modelled
                return real_pwrite(fd, data, offset)
            f.pending.append((offset, bytes(data)))
            return real_pwrite(fd, data, offset)

        def sync(real: object, fd: int) -> None:
            assert callable(real)
            real(fd)
            try:
                self.files[fd] = _File(_read_fd(fd))
            except OSError:  # opened for writing only: written whole, then synced
                self.files.pop(fd, None)

        def close(fd: int) -> None:
            self.files.pop(fd, None)
            real_close(fd)

        def ftruncate(fd: int, length: int) -> None:
            real_ftruncate(fd, length)
            f = self.files.setdefault(fd, _File(_read_fd(fd)))
            f.pending.append((length, b""))  # marks a cut: applied as it happened

        monkeypatch.setattr(os, "pwrite", pwrite)
        monkeypatch.setattr(os, "fdatasync", lambda fd: sync(real_fdatasync, fd))
        monkeypatch.setattr(os, "fsync", lambda fd: sync(real_fsync, fd))
        monkeypatch.setattr(os, "ftruncate", ftruncate)
        monkeypatch.setattr(os, "close", close)

    def crash_image(self, fd: int, rng: random.Random) -> bytes:
        f = self.files.get(fd)
        if f is None:
            return _read_fd(fd)  # never written since it was opened
        image = bytearray(f.synced)
        for offset, data in f.pending:
            if not data:  # a cut
                del image[offset:]
                continue
            for start in range(offset - offset % _PAGE, offset + len(data), _PAGE):
                if rng.random() < 0.5:
                    continue
                lo, hi = max(start, offset), min(start + _PAGE, offset + len(data))
                if len(image) < hi:
                    image.extend(bytes(hi - len(image)))
                image[lo:hi] = data[lo - offset : hi - offset]
        return bytes(image)


def _read_fd(fd: int) -> bytes:
    return os.pread(fd, os.fstat(fd).st_size, 0)


class RingSyncs:
    """The disk model for fdatasyncs run by io_uring (storage/uring.py): one covers what its
    file held when it was submitted, and counts once its completion is collected (the
    journal acknowledges nothing before). What was written after the submit stays pending,
    each page kept or lost."""

    def __init__(self, disk: PageLossDisk, monkeypatch: pytest.MonkeyPatch) -> None:
        # token -> the descriptor, its model when submitted, its content, the pwrites covered
        submitted: dict[int, tuple[int, _File | None, bytes, int]] = {}
        real_submit, real_drain = AsyncSync.submit, AsyncSync._drain

        def submit(ring: AsyncSync, fd: int, token: int) -> None:
            f = disk.files.get(fd)
            covered = (fd, f, _read_fd(fd), len(f.pending) if f else 0)
            real_submit(ring, fd, token)
            submitted[token] = covered

        def drain(ring: AsyncSync) -> list[tuple[int, OSError | None]]:
            done = real_drain(ring)
            for token, error in done:
                fd, f, image, count = submitted.pop(token)
                # A sync of the file since the submit (a checkpoint's) covered more already.
                if error is None and f is not None and disk.files.get(fd) is f:
                    disk.files[fd] = _File(image, f.pending[count:])
            return done

        monkeypatch.setattr(AsyncSync, "submit", submit)
        monkeypatch.setattr(AsyncSync, "_drain", drain)


def make_store(directory: Path, ring: int) -> Store:
    directory.mkdir(exist_ok=True)
    s = Store([DiskLocation(directory, 8)], fsync_mode=FsyncMode.GROUP, journal_ring=ring)
    s.load()
    return s


@dataclass
class Outcomes:
    acked: dict[tuple[int, int], bytes | None] = field(default_factory=dict)
    maybe: dict[tuple[int, int], set[bytes | None]] = field(default_factory=dict)


Change = tuple[tuple[int, int], bytes | None, Future[None]]
"""A write or delete: its (volume, key), what it leaves there (None: deleted), its future."""


def random_change(s: Store, rng: random.Random, seed: int, step: int) -> Change:
    """A write of a random key of a random volume of `s`, or sometimes, of a live key, its
    delete."""
    vid, key = rng.choice([v.id for v in s.volumes()]), rng.randrange(1, 20)
    v = s.get(vid)
    assert v is not None
    data = b"%d:%d:" % (seed, step) + payload(key) * rng.choice((1, 1, 40))
    if v.lookup(key) is not None and rng.random() < 0.3:
        return (vid, key), None, v.delete(key, COOKIE).durable
    return (vid, key), data, v.write(Needle.build(COOKIE, key, data)).durable


def workload(s: Store, rng: random.Random, seed: int, steps: int) -> Outcomes:
    """Writes and deletes spread over every volume, some acknowledged (their future waited
    on), the others left in flight."""
    out = Outcomes()
    for step in range(steps):
        slot, outcome, durable = random_change(s, rng, seed, step)
        if rng.random() < 0.6:
            durable.result(timeout=10)
            out.acked[slot] = outcome
            out.maybe.pop(slot, None)
        else:
            out.maybe.setdefault(slot, set()).add(outcome)
    return out


def assert_allowed(s: Store, out: Outcomes) -> None:
    for slot in set(out.acked) | set(out.maybe):
        vid, key = slot
        allowed = set(out.maybe.get(slot, set()))
        allowed.add(out.acked.get(slot))  # None when never acknowledged: absent is fine
        v = s.get(vid)
        assert v is not None
        try:
            got: bytes | None = v.read(key, COOKIE).data
        except NeedleNotFound:
            got = None
        assert got in allowed, f"volume {vid} key {key}: {got!r:.40} not in {len(allowed)}"


def crash_copy(s: Store, disk: PageLossDisk, rng: random.Random, to: Path) -> None:
    """The images of every file of the store's one directory after a power loss, in `to`."""
    src = s.locations[0].path
    to.mkdir()
    fds: dict[str, int] = {}
    for v in s.volumes():
        fds[v.name + ".dat"] = v._dat
        fds[v.name + ".idx"] = v._idx
    journal = s.journals[0]
    assert journal is not None
    fds[JOURNAL_FILE] = journal._fd
    for name in os.listdir(src):
        if name in fds:
            (to / name).write_bytes(disk.crash_image(fds[name], rng))
        elif name.endswith((".vif", ".uuid")):
            shutil.copyfile(src / name, to / name)


def quiesce(s: Store) -> None:
    """Wait for a background checkpoint to end."""
    for journal in s.journals:
        if journal is not None:
            thread = journal._checkpointing
            if thread is not None:
                thread.join()


def abandon(s: Store) -> None:
    """The process is gone: nothing more reaches the files (no close, no sync)."""
    quiesce(s)
    for fd in s._locks:
        os.close(fd)
    s._locks.clear()


@pytest.mark.parametrize("ring", [1 << 20, 8192])
@pytest.mark.parametrize("seed", seeds(10))
def test_power_loss_with_the_journal_loses_only_unacknowledged_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int, ring: int
) -> None:
    """Writes and deletes over three volumes of one disk, acknowledged once the journal's
    round is synced; then the power goes, with any subset of the pages written since each
    file's last sync lost. With a small ring the journal laps many times (checkpoints,
    entries overwriting earlier laps, skips at its end). Every acknowledged outcome holds."""
    rng = random.Random(seed)
    disk = PageLossDisk(monkeypatch)
    live = tmp_path / "live"
    s = make_store(live, ring)
    for vid in (1, 2, 3):
        s.allocate(vid)
    outcomes = workload(s, rng, seed, steps=80)
    quiesce(s)  # the images are taken one after another: nothing may move meanwhile
    crash_copy(s, disk, rng, tmp_path / "after")
    abandon(s)
    monkeypatch.undo()
    after = make_store(tmp_path / "after", ring)
    try:
        assert_allowed(after, outcomes)
        v = after.get(1)
        assert v is not None
        v.write(Needle.build(COOKIE, 999, b"power is back")).durable.result(timeout=10)
        assert v.read(999, COOKIE).data == b"power is back"
    finally:
        after.close()


def background_workload(s: Store, rng: random.Random, seed: int, steps: int) -> list[Change]:
    """`workload`, with the journal's rounds synced in the background and this thread driven
    as the server's loop: after a write, sometimes its kick, sometimes a pass collecting a
    completion and running the kicks it deferred, sometimes a wait on the write's future (in
    the loop's thread). Ends with a round in flight. Every write and delete, in order."""
    journal = s.journals[0]
    assert journal is not None
    deferred: list[Callable[[], None]] = []
    fd = journal.sync_in_background(deferred.append)
    assert fd is not None
    done: list[Change] = []
    for step in range(steps):
        change = random_change(s, rng, seed, step)
        durable = change[2]
        assert isinstance(durable, RoundFuture)
        done.append(change)
        chance = rng.random()
        if chance < 0.5:
            durable.kick()
        if chance < 0.05:
            durable.result(timeout=10)
        if rng.random() < 0.5 and readable(fd, rng.choice((0, 0, 0.005))):
            journal.synced()
        while deferred:
            deferred.pop(0)()
    # Then the power goes with a round in flight: a burst of fresh keys over every volume.
    done[-1][2].result(timeout=10)  # nothing in flight or pending before it
    vids = [v.id for v in s.volumes()]
    # No checkpoint thread during the burst: one (a quarter of a small ring is soon used)
    # would sync the journal from its thread and could cover the burst before the kick, which
    # would then resolve it at once. (A full ring still checkpoints inline, before the kick.)
    quiesce(s)
    journal._checkpointing = threading.current_thread()  # as if one ran: appends start none
    try:
        for n in range(6):
            vid, key = vids[n % len(vids)], 20 + n
            v = s.get(vid)
            assert v is not None
            data = b"%d:burst:" % seed + payload(key) * rng.choice((1, 40))
            done.append(((vid, key), data, v.write(Needle.build(COOKIE, key, data)).durable))
        last = done[-1][2]
        assert isinstance(last, RoundFuture)
        last.kick()
        assert journal._in_flight is not None
    finally:
        journal._checkpointing = None
    return done


def acknowledged(done: list[Change]) -> Outcomes:
    """What `background_workload` acknowledged: the writes whose futures resolved."""
    out = Outcomes()
    for slot, outcome, durable in done:
        if durable.done() and durable.exception(timeout=0) is None:
            out.acked[slot] = outcome
            out.maybe.pop(slot, None)
        else:
            out.maybe.setdefault(slot, set()).add(outcome)
    return out


@needs_io_uring
@pytest.mark.parametrize("ring", [1 << 20, 8192])
@pytest.mark.parametrize("seed", with_slow_seeds(6, 100))
def test_power_loss_with_rounds_synced_in_the_background_loses_only_unacknowledged_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int, ring: int
) -> None:
    """The power-loss test above with the rounds synced through io_uring, as the volume
    server runs them: the power goes with a round in flight or its completion not yet
    collected, pages written since a submit kept or lost. Every write whose future resolved
    holds."""
    rng = random.Random(seed)
    disk = PageLossDisk(monkeypatch)
    RingSyncs(disk, monkeypatch)
    live = tmp_path / "live"
    s = make_store(live, ring)
    for vid in (1, 2, 3):
        s.allocate(vid)
    done = background_workload(s, rng, seed, steps=120)
    quiesce(s)
    outcomes = acknowledged(done)  # the power goes now: nothing resolves after this
    assert outcomes.acked, "nothing acknowledged: the test proves nothing"
    crash_copy(s, disk, rng, tmp_path / "after")
    journal = s.journals[0]
    assert journal is not None
    journal.stop_background()  # frees the ring; the images are taken
    abandon(s)
    monkeypatch.undo()
    after = make_store(tmp_path / "after", ring)
    try:
        assert_allowed(after, outcomes)
    finally:
        after.close()


def test_torn_journal_tail_at_every_byte_keeps_every_acknowledged_entry(tmp_path: Path) -> None:
    """The journal cut at every byte of its last entry (and of the one before): replay keeps
    exactly the whole entries before the cut, and the volume opens with every record of
    them, the torn one's record cut if it never reached the `.dat` either."""
    live = tmp_path / "live"
    s = make_store(live, 1 << 20)
    v = s.allocate(1)
    dat_start = v.size
    for key in (1, 2, 3):
        v.write(Needle.build(COOKIE, key, payload(key))).durable.result(timeout=10)
    journal_bytes = (live / JOURNAL_FILE).read_bytes()
    entries, end = read_entries(live / JOURNAL_FILE)
    assert len(entries) == 3 and entries[0].offset == dat_start
    abandon(s)
    last_two = entries[1].offset  # where key 2's record starts in .dat
    dat = (live / "1.dat").read_bytes()
    ends = _entry_ends(live / JOURNAL_FILE, journal_bytes)
    for cut in range(ends[0], ends[2] + 1):
        d = tmp_path / f"cut{cut}"
        d.mkdir()
        (d / JOURNAL_FILE).write_bytes(journal_bytes[:cut])
        (d / "1.dat").write_bytes(dat[:last_two])  # the .dat lost both last records
        (d / "1.idx").write_bytes(b"")
        shutil.copyfile(live / "1.vif", d / "1.vif")
        after = make_store(d, 1 << 20)
        try:
            w = after.get(1)
            assert w is not None
            whole = sum(1 for e in ends if e <= cut)
            for key in (1, 2, 3):
                if key <= whole:
                    assert w.read(key, COOKIE).data == payload(key)
                else:
                    with pytest.raises(NeedleNotFound):
                        w.read(key, COOKIE)
        finally:
            after.close()
    assert end == ends[2] - 4096


def _entry_ends(path: Path, image: bytes) -> list[int]:
    """File offsets where each entry of the journal `image` ends."""
    ends = []
    entries, _ = read_entries(path)
    at = 4096
    for e in entries:
        at += 40 + (len(e.record) + 7) // 8 * 8
        ends.append(at)
    assert len(image) >= ends[-1]
    return ends


def test_a_destroyed_volume_s_entries_never_reach_a_new_volume_with_its_id(
    tmp_path: Path,
) -> None:
    """Destroy checkpoints first: a volume created later under the same id, then a crash,
    gets none of the old volume's records written into its `.dat`."""
    live = tmp_path / "live"
    s = make_store(live, 1 << 20)
    v = s.allocate(7)
    for key in range(1, 30):
        v.write(Needle.build(COOKIE, key, payload(key) * 20)).durable.result(timeout=10)
    s.delete_volume(7)
    w = s.allocate(7)
    w.write(Needle.build(COOKIE, 1, b"new")).durable.result(timeout=10)
    entries, _ = read_entries(live / JOURNAL_FILE)
    assert [len(e.record) for e in entries] == [len(entries[0].record)]
    abandon(s)
    after = make_store(live, 1 << 20)
    try:
        x = after.get(7)
        assert x is not None
        assert x.read(1, COOKIE).data == b"new"
        assert x.live_count == 1
        assert x.file_count == 1  # nothing of the old volume came back
    finally:
        after.close()


def test_one_round_syncs_the_journal_once_whatever_the_volumes(tmp_path: Path) -> None:
    """Eight volumes written, one round: one fdatasync (of the journal), none of a `.dat`."""
    s = make_store(tmp_path / "d", 1 << 20)
    try:
        volumes = [s.allocate(vid) for vid in range(1, 9)]
        journal = s.journals[0]
        assert isinstance(journal, Journal)
        before = journal.syncs
        futures = [v.write(Needle.build(COOKIE, 1, b"x" * 1000)).durable for v in volumes]
        assert len({id(f) for f in futures}) == 1
        futures[0].result(timeout=10)
        assert journal.syncs - before == 1
    finally:
        s.close()


def test_a_record_too_large_for_the_journal_is_synced_before_the_next_append(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A streamed record skips the journal: its `.dat` is synced while the volume's lock is
    held, so a later small record's acknowledgement never comes before it is durable."""
    s = make_store(tmp_path / "d", 1 << 20)
    try:
        v = s.allocate(1)
        synced: list[int] = []
        real = os.fdatasync
        monkeypatch.setattr(os, "fdatasync", lambda fd: (synced.append(fd), real(fd))[1])
        big = b"y" * (2 << 20)
        result = v.write_streamed(Needle.build(COOKIE, 1, b""), len(big), (big,))
        assert result.durable.done() and synced == [v._dat]
        assert v.read(1, COOKIE).data == big
    finally:
        s.close()


def test_the_journal_is_dropped_when_the_server_restarts_without_group_commit(
    tmp_path: Path,
) -> None:
    """`-fsync=none` after a crash in group mode: the entries are still replayed, then the
    journal goes (later appends would make its entries stale)."""
    live = tmp_path / "live"
    s = make_store(live, 1 << 20)
    v = s.allocate(1)
    v.write(Needle.build(COOKIE, 5, b"acked")).durable.result(timeout=10)
    dat_len = v.size
    abandon(s)
    with open(live / "1.dat", "r+b") as f:
        f.truncate(dat_len - 8)  # the record's last bytes never reached the disk
    plain = Store([DiskLocation(live, 8)], fsync_mode=FsyncMode.NONE)
    plain.load()
    try:
        w = plain.get(1)
        assert w is not None
        assert w.read(5, COOKIE).data == b"acked"
        assert not (live / JOURNAL_FILE).exists()
    finally:
        plain.close()


def test_a_volume_alone_keeps_its_group_committer(tmp_path: Path) -> None:
    """Outside a store (tools, tests) a group-mode volume syncs its own `.dat` as before."""
    v = Volume.create(tmp_path, 1, fsync_mode=FsyncMode.GROUP)
    try:
        v.write(Needle.build(COOKIE, 1, b"x")).durable.result(timeout=10)
        assert not (tmp_path / JOURNAL_FILE).exists()
    finally:
        v.close()


@pytest.mark.parametrize("seed", seeds(12))
def test_power_loss_after_a_vacuum_commit_replays_no_old_entry_into_the_new_dat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """Writes and deletes journaled and never checkpointed (a large ring), a vacuum of
    volume 1 (more writes while it copies, replayed by the commit), its commit swapping a
    compacted `.dat` in, more writes to it; then the power goes. The journal still holds the
    old `.dat`'s records at offsets the new one uses for other records: replay writes none of
    them there (their compaction revision is the old one), and every acknowledged outcome
    holds."""
    rng = random.Random(seed)
    disk = PageLossDisk(monkeypatch)
    live = tmp_path / "live"
    s = make_store(live, 1 << 20)
    for vid in (1, 2):
        s.allocate(vid)
    outcomes = workload(s, rng, seed, steps=60)
    v = s.get(1)
    assert v is not None
    v.compact()
    during = workload(s, rng, seed + 1000, steps=20)
    v.commit_compact()
    after = workload(s, rng, seed + 2000, steps=20)
    for more in (during, after):
        for slot, outcome in more.acked.items():
            outcomes.acked[slot] = outcome
            outcomes.maybe.pop(slot, None)
        for slot, maybe in more.maybe.items():
            outcomes.maybe.setdefault(slot, set()).update(maybe)
    old = [e for e in read_entries(live / JOURNAL_FILE)[0] if e.volume_id == 1 and e.revision == 0]
    assert old and v.compact_revision == 1
    assert any(e.offset < v.size for e in old), "no old entry lies inside the new .dat"
    quiesce(s)
    crash_copy(s, disk, rng, tmp_path / "after")
    abandon(s)
    monkeypatch.undo()
    reopened = make_store(tmp_path / "after", 1 << 20)
    try:
        assert_allowed(reopened, outcomes)
        w = reopened.get(1)
        assert w is not None
        assert w.compact_revision == 1
        assert not w.corrupt_needles()
    finally:
        reopened.close()
