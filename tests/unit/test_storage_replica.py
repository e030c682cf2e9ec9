"""Stamps, the stamp log and what a volume offers its replicas (storage/stamps.py,
storage/volume_replica.py, formats/stamp_log.py, formats/replica_digest.py): the time a
replicated record stands for survives out-of-order arrival and reopening without ever breaking
the file order recovery relies on, deletes outlive their tombstones, and "newest wins" is
applied only when newer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from seaweed_py.errors import Conflict, CorruptNeedle, NeedleNotFound
from seaweed_py.formats.needle import NEEDLE_HEADER_SIZE, Needle, decode_footer
from seaweed_py.formats.replica_digest import (
    BUCKETS,
    NeedleState,
    bucket_of,
    buckets_of,
    digests,
    newer_states,
    winner,
)
from seaweed_py.formats.stamp_log import (
    STAMP_ENTRY_SIZE,
    StampKind,
    decode_stamps,
    encode_stamp,
)
from seaweed_py.storage.scan import scan_records
from seaweed_py.storage.stamps import MAX_AHEAD_NS, next_stamp
from seaweed_py.storage.volume import FsyncMode, Volume

COOKIE = 0x1234ABCD
T0 = 1_700_000_000_000_000_000
SECOND = 1_000_000_000


class Clock:
    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def needle(key: int, data: bytes, cookie: int = COOKIE) -> Needle:
    return Needle.build(cookie, key, data, name=b"n", mime=b"text/plain")


def open_pair(tmp_path: Path, clock: Clock) -> tuple[Volume, Volume]:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    kw = {"fsync_mode": FsyncMode.NONE, "clock_ns": clock}
    return Volume.create(a, 3, **kw), Volume.create(b, 3, **kw)  # type: ignore[arg-type]


def reopen(v: Volume, clock: Clock) -> Volume:
    v.close()
    return Volume.open(v.directory, v.id, fsync_mode=FsyncMode.NONE, clock_ns=clock)


def stamps_in_file_order(v: Volume) -> list[int]:
    v.sync()
    fd = v._dat
    return [r.append_at_ns for r in scan_records(fd, 8, v.size, v.version, volume_id=v.id)]


# ---------------------------------------------------------------------------- the rule


def test_next_stamp_keeps_file_order_and_bounds_a_fast_peer() -> None:
    now = T0
    assert next_stamp(None, now - 5, now) == now
    assert next_stamp(None, now + 5, now) == now + 6  # a clock stepped back
    assert next_stamp(now - 100, now - 200, now) == now - 100  # an older origin, in order
    assert next_stamp(now - 100, now - 50, now) == now  # out of order: our own stamp
    assert next_stamp(now + MAX_AHEAD_NS, 0, now) == now + MAX_AHEAD_NS
    assert next_stamp(now + MAX_AHEAD_NS + 1, 0, now) == now  # too far ahead


def test_stamp_log_codec_skips_zero_pages_and_a_partial_tail() -> None:
    one = encode_stamp(5, T0, T0 - 7, COOKIE, StampKind.ORIGIN)
    two = encode_stamp(6, 0, T0, 9, StampKind.DELETE)
    assert len(one) == STAMP_ENTRY_SIZE == 32
    stamps = decode_stamps(one + bytes(STAMP_ENTRY_SIZE) + two + two[:20])
    assert len(stamps) == 2
    assert stamps.newest(StampKind.ORIGIN) == {5: (T0, T0 - 7, COOKIE)}
    assert stamps.newest(StampKind.DELETE) == {6: (0, T0, 9)}
    older = encode_stamp(6, 0, T0 - 1, 8, StampKind.DELETE)
    assert decode_stamps(two + older).newest(StampKind.DELETE)[6] == (0, T0, 9)


def test_winner_orders_by_stamp_then_tombstone_then_content() -> None:
    live = NeedleState(1, COOKIE, 100, 10, 0xAA)
    gone = NeedleState(1, COOKIE, 100, -1)
    assert winner(live, gone) is gone and winner(gone, live) is gone
    newer = NeedleState(1, COOKIE, 101, 10, 0x01)
    assert winner(gone, newer) is newer
    assert winner(None, live) is live and winner(live, None) is live
    other = NeedleState(1, COOKIE, 100, 10, 0xAB)
    assert winner(live, other) is other and winner(other, live) is other
    assert newer_states({1: live}, [live, newer, NeedleState(2, 1, 1, 1, 1)]) == [
        newer,
        NeedleState(2, 1, 1, 1, 1),
    ]


def test_digests_are_order_independent_and_bucketed() -> None:
    keys = np.arange(1, 2000, dtype=np.uint64)
    cookies = keys * np.uint64(3)
    sizes = keys % np.uint64(97)
    crcs = keys * np.uint64(7)
    d = digests(keys, cookies, sizes, crcs)
    perm = np.random.default_rng(1).permutation(len(keys))
    assert digests(keys[perm], cookies[perm], sizes[perm], crcs[perm]) == d
    assert len(d) == BUCKETS
    assert len(set(buckets_of(keys).tolist())) == BUCKETS  # sequential keys spread out
    crcs2 = crcs.copy()
    crcs2[10] ^= np.uint64(1)
    after = digests(keys, cookies, sizes, crcs2)
    changed = [i for i in range(BUCKETS) if d[i] != after[i]]
    assert changed == [bucket_of(int(keys[10]))]


# ---------------------------------------------------------------------------- stamps on disk


def test_replicated_writes_keep_their_origin_out_of_order(tmp_path: Path) -> None:
    clock = Clock()
    a, _ = open_pair(tmp_path, clock)
    a.write(needle(1, b"own"))  # stamped T0
    clock.now += SECOND
    a.write(needle(2, b"in order"), origin_ns=T0 + 500)  # after the last: kept as is
    a.write(needle(3, b"late"), origin_ns=T0 - SECOND)  # older than the last: logged
    stamps = stamps_in_file_order(a)
    assert stamps == sorted(stamps) and len(set(stamps)) == 3
    assert stamps[1] == T0 + 500
    states = a.states()
    assert [states[k].stamp for k in (1, 2, 3)] == [T0, T0 + 500, T0 - SECOND]
    a = reopen(a, clock)
    assert a.states()[3].stamp == T0 - SECOND  # the log kept it
    a.write(needle(3, b"overwritten"))
    overwritten = a.states()[3].stamp
    assert overwritten == stamps_in_file_order(a)[-1] > T0 + SECOND  # it stands for itself
    a.close()


def test_deletes_are_logged_with_their_origin(tmp_path: Path) -> None:
    clock = Clock()
    a, _ = open_pair(tmp_path, clock)
    a.write(needle(1, b"x"))
    a.write(needle(2, b"y"))
    clock.now += SECOND
    a.delete(1, COOKIE)
    a.delete(2, COOKIE, origin_ns=T0 - 5)
    with pytest.raises(NeedleNotFound):
        a.delete(3, COOKIE)
    states = a.states()
    assert states[1] == NeedleState(1, COOKIE, T0 + SECOND, -1)
    assert states[2] == NeedleState(2, COOKIE, T0 - 5, -1)
    a = reopen(a, clock)
    # The log, which a vacuum leaves alone, remembers both (tombstones do not outlive it).
    log = decode_stamps(a.path(".ats").read_bytes()).newest(StampKind.DELETE)
    assert set(log) == {1, 2}
    a.close()


def test_record_stamp_order_survives_recovery_of_a_torn_tail(tmp_path: Path) -> None:
    clock = Clock()
    a, _ = open_pair(tmp_path, clock)
    for i in range(1, 20):
        a.write(needle(i, b"d" * i), origin_ns=T0 - i * SECOND)  # every one out of order
    a.sync()
    size = a.size
    a.close()
    with open(a.path(".dat"), "r+b") as f:  # tear the last record
        f.truncate(size - 20)
    b = Volume.open(a.directory, 3, fsync_mode=FsyncMode.NONE, clock_ns=clock)
    assert b.recovery.dat_bytes_cut
    assert sorted(b.states()) == list(range(1, 19))
    assert b.states()[18].stamp == T0 - 18 * SECOND
    b.close()


# ---------------------------------------------------------------------------- peers


def pull(here: Volume, there: Volume) -> int:
    """What the volume server's sync does, without the network."""
    mine, theirs = here.digest(), there.digest()
    diff = [i for i in range(BUCKETS) if mine.buckets[i] != theirs.buckets[i]]
    ours = here.states(diff)
    changed = 0
    for state in newer_states(ours, there.states(diff).values()):
        if state.deleted:
            changed += here.apply_delete(state, ours.get(state.key))
        else:
            record, stamp = there.record_for_peer(state.key)
            changed += here.apply_put(record, stamp, ours.get(state.key))
    return changed


def test_two_replicas_converge_both_ways_newest_wins(tmp_path: Path) -> None:
    clock = Clock()
    a, b = open_pair(tmp_path, clock)
    for v in (a, b):
        v.write(needle(1, b"both"), origin_ns=T0)
        v.write(needle(2, b"both"), origin_ns=T0 + 1)
    clock.now += SECOND
    a.write(needle(3, b"only on a"))  # a write killed mid fan-out
    b.delete(2, COOKIE)  # a delete a missed
    clock.now += SECOND
    a.write(needle(1, b"a rewrote it"))  # newer on a
    b.write(needle(4, b"only on b"))
    assert a.digest() != b.digest()
    assert pull(a, b) == 2 and pull(b, a) == 2
    assert a.digest() == b.digest()
    assert pull(a, b) == 0 and pull(b, a) == 0
    for v in (a, b):
        assert v.read(1, COOKIE).data == b"a rewrote it"
        with pytest.raises(NeedleNotFound):
            v.read(2, COOKIE)
        assert v.read(3, COOKIE).data == b"only on a"
        assert v.read(4, COOKIE).data == b"only on b"
        assert v.states()[3].stamp == a.states()[3].stamp  # the origin travelled
    a.close()
    b.close()


def test_a_rolled_back_write_stays_rolled_back_on_a_late_replica(tmp_path: Path) -> None:
    clock = Clock()
    primary, late = open_pair(tmp_path, clock)
    written = primary.write(needle(9, b"told the client it failed"))
    stamp = primary.states()[9].stamp
    clock.now += 5 * SECOND
    primary.delete(9, COOKIE)  # the rollback (A20)
    clock.now += 5 * SECOND
    late.write(needle(20, b"something else, stamped later"))
    late.write(needle(9, b"told the client it failed"), origin_ns=stamp)  # applied late
    assert written.size and late.states()[9].stamp == stamp
    assert pull(late, primary) == 1
    with pytest.raises(NeedleNotFound):
        late.read(9, COOKIE)
    assert pull(primary, late) == 1  # key 20 travels the other way
    assert primary.read(20, COOKIE).data == b"something else, stamped later"
    assert primary.digest() == late.digest()
    primary.close()
    late.close()


def test_older_peer_states_are_never_applied(tmp_path: Path) -> None:
    clock = Clock()
    a, b = open_pair(tmp_path, clock)
    a.write(needle(1, b"new"), origin_ns=T0 + 10)
    b.write(needle(1, b"old"), origin_ns=T0)
    record, stamp = b.record_for_peer(1)
    assert not a.apply_put(record, stamp, None)
    assert not a.apply_delete(NeedleState(1, COOKIE, T0 + 5, -1), None)
    assert a.read(1, COOKIE).data == b"new"
    # A key a does not hold: a deletion is remembered, and an older put then loses to it.
    assert a.apply_delete(NeedleState(7, COOKIE, T0 + 50, -1), None)
    b.write(needle(7, b"late write"), origin_ns=T0 + 40)
    record, stamp = b.record_for_peer(7)
    assert not a.apply_put(record, stamp, a.states([bucket_of(7)]).get(7))
    a.close()
    b.close()


def test_corrupt_records_are_never_handed_to_a_peer(tmp_path: Path) -> None:
    clock = Clock()
    a, b = open_pair(tmp_path, clock)
    a.write(needle(1, b"will rot" * 10))
    hit = a.lookup(1)
    assert hit is not None
    a.sync()
    with open(a.path(".dat"), "r+b") as f:
        f.seek(hit.offset + NEEDLE_HEADER_SIZE + 6)
        f.write(b"X")
    with pytest.raises(CorruptNeedle):
        a.record_for_peer(1)
    b.write(needle(1, b"will rot" * 10))
    record, stamp = b.record_for_peer(1)
    assert decode_footer(record)[1] == stamp
    # Rot does not show in stamps or digests (the footer still holds the right CRC): the
    # scrubber finds it and repairs it with the peer's copy of the same needle.
    assert a.digest() == b.digest()
    assert not a.apply_put(record, stamp, a.states().get(1))
    assert a.repair_corrupt(record, stamp)
    assert a.read(1, COOKIE).data == b"will rot" * 10
    assert a.corrupt_needles() == []
    assert not a.repair_corrupt(record, stamp)  # sound now: nothing to repair
    b.write(needle(1, b"another version"))
    record, stamp = b.record_for_peer(1)
    assert not a.repair_corrupt(record, stamp)  # not the same needle: anti-entropy's job
    a.close()
    b.close()


def test_copy_snapshot_agrees_and_reads_refuse_what_is_not_there(tmp_path: Path) -> None:
    clock = Clock()
    a, _ = open_pair(tmp_path, clock)
    for i in range(1, 50):
        a.write(needle(i, b"z" * 100), origin_ns=T0 - i)
    a.delete(5, COOKIE)
    snap = a.copy_snapshot()
    assert snap.dat_size == a.size and snap.idx_size % 16 == 0 and snap.stamps_size > 0
    dat = a.read_for_copy("dat", 0, snap.dat_size, snap.compact_revision)
    assert dat == a.path(".dat").read_bytes()[: snap.dat_size]
    idx = a.read_for_copy("idx", 0, snap.idx_size, snap.compact_revision)
    assert len(idx) == snap.idx_size
    assert len(a.read_for_copy("ats", 0, snap.stamps_size, 0)) == snap.stamps_size
    with pytest.raises(Conflict):
        a.read_for_copy("dat", 0, 8, snap.compact_revision + 1)
    with pytest.raises(Conflict):
        a.read_for_copy("dat", snap.dat_size - 4, 8, snap.compact_revision)
    a.close()


# ---------------------------------------------------------------------------- scrubbing


def test_a_scrub_pass_finds_every_rotted_needle_and_only_those(tmp_path: Path) -> None:
    clock = Clock()
    a, b = open_pair(tmp_path, clock)
    for key in range(1, 300):
        data = bytes([key % 251]) * (key * 50 if key != 150 else 3 << 20)  # one large needle
        a.write(needle(key, data))
    a.delete(10, COOKIE)
    a.sync()
    rotten = {17: 30, 150: 2 << 20, 299: 5}  # key -> where in the data a byte flips
    with open(a.path(".dat"), "r+b") as f:
        for key, at in rotten.items():
            hit = a.lookup(key)
            assert hit is not None
            f.seek(hit.offset + NEEDLE_HEADER_SIZE + 4 + at)
            f.write(b"\xff" if at % 2 else b"\x00")
    steps = list(a.scrub_pass(batch_bytes=64 << 10))
    assert sum(s.needles for s in steps) == 298
    assert sum(s.checked_bytes for s in steps) >= 298 * 50
    found = sorted(r.key for s in steps for r in s.corrupt)
    assert found == sorted(rotten)
    assert sorted(r.key for r in a.corrupt_needles()) == sorted(rotten)
    for key in rotten:  # repaired from a sound copy, the next pass finds nothing
        b.write(needle(key, bytes([key % 251]) * (key * 50 if key != 150 else 3 << 20)))
        record, stamp = b.record_for_peer(key)
        assert a.repair_corrupt(record, stamp)
    assert [r for s in a.scrub_pass() for r in s.corrupt] == []
    assert a.corrupt_needles() == []
    a.close()
    b.close()


def test_a_vacuum_keeps_every_state_and_opens_no_descriptor_it_keeps(tmp_path: Path) -> None:
    """Compaction copies records with their stamps and leaves the stamp log alone: the times
    states stand for, logged origins and deletes (their tombstones vacuumed away) all survive,
    and a commit leaves no descriptor behind (the fresh volume's stamp log is closed)."""
    clock = Clock()
    a, _ = open_pair(tmp_path, clock)
    clock.now += SECOND
    a.write(needle(1, b"first"))
    a.write(needle(2, b"late"), origin_ns=T0 - SECOND)  # out of order: logged
    a.write(needle(3, b"gone soon"))
    a.delete(3, COOKIE, origin_ns=T0 - 5)
    for i in range(4, 20):
        a.write(needle(i, b"garbage" * 50))
        a.delete(i, COOKIE)
    before = a.states()
    fds = len(list(Path("/proc/self/fd").iterdir()))
    for _ in range(3):
        a.compact()
        a.commit_compact()
    assert a.compact_revision == 3
    assert a.states() == before
    assert before[2].stamp == T0 - SECOND and before[3].deleted and before[3].stamp == T0 - 5
    # The old descriptors a commit keeps for reads in progress are closed at the next one.
    assert len(list(Path("/proc/self/fd").iterdir())) <= fds + 2
    a.close()
