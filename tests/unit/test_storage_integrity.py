"""A volume's knowledge of its needles' soundness: `Volume.verify` (a large needle's CRC checked
before it is streamed, remembered per record), `corrupt_needles` (rotted records found on open
or by reads), and the torn/rotted rule of `scan.py` on single records."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from seaweed_py.errors import CorruptNeedle
from seaweed_py.formats.needle import Needle, encode_needle
from seaweed_py.storage.integrity import CorruptNeedles, CorruptRecord, VerifiedMemo
from seaweed_py.storage.scan import scan_records, torn_footer
from seaweed_py.storage.volume import FsyncMode, Volume
from tests.disk_faults import flip_byte

COOKIE = 0x637037D6
BIG = 3 << 20


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[Volume]:
    v = Volume.create(tmp_path, 7, fsync_mode=FsyncMode.NONE)
    yield v
    v.close()


class PreadvSpy:
    """Counts the bytes `Volume.verify` reads and the largest buffer it reads into."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.bytes = 0
        self.largest = 0
        real = os.preadv

        def preadv(fd: int, buffers: list[memoryview], offset: int) -> int:
            self.largest = max(self.largest, *(len(b) for b in buffers))
            got = real(fd, buffers, offset)
            self.bytes += got
            return got

        monkeypatch.setattr(os, "preadv", preadv)


def flip(v: Volume, at: int) -> None:
    flip_byte(v.path(".dat"), at)


def test_verify_reads_a_large_needle_once_in_bounded_chunks_then_remembers_it(
    volume: Volume, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(BIG)
    volume.write(Needle.build(COOKIE, 1, data))
    spy = PreadvSpy(monkeypatch)
    loc = volume.read_meta(1, COOKIE)
    assert not volume.verified(loc)
    volume.verify(loc)
    assert spy.bytes == BIG and spy.largest <= 1 << 20
    assert volume.verified(volume.read_meta(1, COOKIE))
    # An overwrite is another record: checked afresh.
    volume.write(Needle.build(COOKIE, 1, os.urandom(BIG)))
    loc = volume.read_meta(1, COOKIE)
    assert not volume.verified(loc)
    volume.verify(loc)
    assert spy.bytes == 2 * BIG and volume.verified(loc)


def test_a_new_compaction_revision_forgets_every_verdict(volume: Volume) -> None:
    volume.write(Needle.build(COOKIE, 1, os.urandom(BIG)))
    loc = volume.read_meta(1, COOKIE)
    volume.verify(loc)
    assert volume.verified(loc)
    volume.superblock = replace(volume.superblock, compaction_revision=1)
    assert not volume.verified(loc)


def test_verify_of_a_rotted_needle_raises_every_time_and_lists_it_until_overwritten(
    volume: Volume,
) -> None:
    volume.write(Needle.build(COOKIE, 1, os.urandom(BIG)))
    hit = volume.lookup(1)
    assert hit is not None
    flip(volume, hit[0] + 20 + BIG - 1)  # the last data byte
    for _ in range(2):
        loc = volume.read_meta(1, COOKIE)
        with pytest.raises(CorruptNeedle, match="crc mismatch") as exc:
            volume.verify(loc)
        assert exc.value.context["offset"] == hit[0] and exc.value.context["key"] == "1"
        assert not volume.verified(loc)
    assert [(c.key, c.offset, c.size) for c in volume.corrupt_needles()] == [(1, *hit)]
    volume.write(Needle.build(COOKIE, 1, b"repaired"))
    assert volume.corrupt_needles() == []


def test_bytes_that_rot_after_verification_fail_the_streamed_check_and_the_verdict_is_dropped(
    volume: Volume,
) -> None:
    volume.write(Needle.build(COOKIE, 1, os.urandom(BIG)))
    loc = volume.read_meta(1, COOKIE)
    volume.verify(loc)
    flip(volume, loc.data_offset + 12345)
    assert volume.verified(loc)  # remembered: not read again...
    with pytest.raises(CorruptNeedle):
        for _ in volume.iter_data(loc):  # ...but the streamed copy is still checked
            pass
    assert not volume.verified(loc)
    with pytest.raises(CorruptNeedle):
        volume.verify(loc)
    assert [c.key for c in volume.corrupt_needles()] == [1]


def test_small_reads_that_fail_their_crc_are_listed_once(
    volume: Volume, caplog: pytest.LogCaptureFixture
) -> None:
    r = volume.write(Needle.build(COOKIE, 1, b"x" * 100))
    flip(volume, r.offset + 20 + 50)
    for _ in range(3):
        with pytest.raises(CorruptNeedle):
            volume.read(1, COOKIE)
    assert [(c.key, c.offset) for c in volume.corrupt_needles()] == [(1, r.offset)]
    assert caplog.text.count("corrupt needle key=1 ") == 1
    volume.delete(1, COOKIE)
    assert volume.corrupt_needles() == []


def test_verified_memo_drops_the_oldest_past_its_limit() -> None:
    memo = VerifiedMemo(limit=2)
    memo.add((8, 0))
    memo.add((16, 0))
    memo.add((8, 0))  # already there: nothing dropped
    memo.add((24, 0))
    assert (8, 0) not in memo and (16, 0) in memo and (24, 0) in memo and len(memo) == 2
    memo.discard((16, 0))
    assert (16, 0) not in memo


def test_corrupt_needles_remember_a_bounded_number_and_count_them_all() -> None:
    found = CorruptNeedles(7, limit=2)
    for offset in (8, 16, 16, 24):
        found.note(CorruptRecord(1, offset, 10, "crc mismatch"))
    assert [r.offset for r in found.records()] == [8, 16] and found.seen == 3


@pytest.mark.parametrize(
    ("checksum", "append_at_ns", "version", "after_ns", "has_data", "torn"),
    [
        (0x1234, 500, 3, 499, True, False),  # this append's footer: rotted
        (0x1234, 500, 3, 500, True, True),  # not after the previous record's
        (0x1234, 400, 3, 500, True, True),
        (0x1234, 0, 3, 0, True, True),  # footer never written
        (0, 500, 3, 0, True, True),  # checksum never written
        (0x1234, 0, 2, 0, True, False),  # version 2 has no AppendAtNs
        (0, 0, 2, 0, True, True),
        # Size 0 (tombstone, empty file): only a footer never written is torn
        (0, 500, 3, 499, False, False),
        (0, 400, 3, 500, False, False),
        (0x1234, 0, 3, 0, False, True),
        (0, 0, 2, 0, False, False),
    ],
)
def test_torn_footer_rule(
    checksum: int, append_at_ns: int, version: int, after_ns: int, has_data: bool, torn: bool
) -> None:
    found = torn_footer(checksum, append_at_ns, version, after_ns, has_data)
    assert (found is not None) is torn


def test_the_walk_goes_on_past_a_rotted_record_and_stops_at_a_torn_one(tmp_path: Path) -> None:
    records = [
        encode_needle(Needle.build(COOKIE, k, b"%d" % k * 50), 3, append_at_ns=1000 + k)
        for k in (1, 2, 3, 4)
    ]
    # An empty file out of AppendAtNs order (a volume the reference compacted): sound.
    records.insert(3, encode_needle(Needle.build(COOKIE, 9, b""), 3, append_at_ns=7))
    rotted = bytearray(records[1])
    rotted[30] ^= 0x5A
    torn = bytearray(records[4])
    torn[30] ^= 0x5A
    footer = 16 + int.from_bytes(torn[12:16], "big")
    torn[footer + 4 : footer + 12] = (7).to_bytes(8, "big")  # the empty file's AppendAtNs
    path = tmp_path / "walk.dat"
    path.write_bytes(b"\x03" + bytes(7) + records[0] + rotted + records[2] + records[3] + torn)
    fd = os.open(path, os.O_RDONLY)
    try:
        found = list(scan_records(fd, 8, path.stat().st_size, 3))
    finally:
        os.close(fd)
    assert [(r.key, r.error is not None, r.fatal) for r in found] == [
        (1, False, False),
        (2, True, False),
        (3, False, False),
        (9, False, False),
        (4, True, True),
    ]
    assert "crc mismatch" in str(found[1].error) and "not after" in str(found[4].error)
    assert found[1].append_at_ns == 1002
