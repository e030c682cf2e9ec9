"""Volume.read_checked and Volume.is_current: a kept record holds exactly while its bytes are
the live record of its key (what the volume server's answer cache relies on)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from seaweed_py.errors import CorruptNeedle, NeedleNotFound
from seaweed_py.formats.needle import NEEDLE_HEADER_SIZE, Needle
from seaweed_py.storage.volume import CheckedRecord, FsyncMode, IndexHit, Volume
from tests.disk_faults import flip_byte

COOKIE = 0x637037D6


@pytest.fixture(params=["memory", "mmap"])
def volume(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Volume]:
    v = Volume.create(tmp_path, 3, index_kind=request.param, fsync_mode=FsyncMode.NONE)
    yield v
    v.close()


def _read_checked(v: Volume, key: int, cookie: int = COOKIE) -> tuple[Needle, CheckedRecord]:
    hit = v.lookup(key)
    assert isinstance(hit, IndexHit)
    return v.read_checked(key, cookie, hit)


def test_a_kept_record_is_current_until_its_key_is_overwritten(volume: Volume) -> None:
    first = volume.write(Needle.build(COOKIE, 1, b"one"))
    volume.write(Needle.build(COOKIE, 2, b"two"))
    needle, kept = _read_checked(volume, 1)
    assert needle.data == b"one"
    assert volume.is_current(kept)
    assert volume.write(Needle.build(COOKIE, 2, b"other")).offset != first.offset
    assert volume.is_current(kept)  # another key changed
    volume.write(Needle.build(COOKIE, 1, b"one, again"))
    assert not volume.is_current(kept)


def test_a_kept_record_is_not_current_once_deleted_or_rewritten_identically(
    volume: Volume,
) -> None:
    volume.write(Needle.build(COOKIE, 1, b"one"))
    _, kept = _read_checked(volume, 1)
    volume.delete(1, COOKIE)
    assert not volume.is_current(kept)
    volume.write(Needle.build(COOKIE, 1, b"one"))  # the same bytes, elsewhere
    assert not volume.is_current(kept)


def test_a_kept_record_whose_bytes_rotted_is_not_current(volume: Volume) -> None:
    w = volume.write(Needle.build(COOKIE, 1, b"x" * 100))
    _, kept = _read_checked(volume, 1)
    volume.sync()
    flip_byte(volume.path(".dat"), w.offset + NEEDLE_HEADER_SIZE + 4 + 50)
    assert not volume.is_current(kept)
    with pytest.raises(CorruptNeedle):
        _read_checked(volume, 1)


def test_read_checked_refuses_what_read_at_refuses(volume: Volume) -> None:
    volume.write(Needle.build(COOKIE, 1, b"one"))
    with pytest.raises(NeedleNotFound):
        _read_checked(volume, 1, COOKIE ^ 1)


def test_a_kept_record_is_checked_against_the_index_columns_after_a_reopen(
    volume: Volume,
) -> None:
    # Reopened, the keys live in the packed columns (or the .sdx), not the recent writes.
    for key in range(1, 6):
        volume.write(Needle.build(COOKIE, key, b"v%d" % key))
    kept = {key: _read_checked(volume, key)[1] for key in range(1, 6)}
    volume.close()
    back = Volume.open(volume.directory, volume.id, index_kind=volume.index_kind)
    try:
        assert all(back.is_current(k) for k in kept.values())
        back.delete(2, COOKIE)  # a dead column entry
        back.write(Needle.build(COOKIE, 3, b"new"))  # a recent entry shadowing the column
        assert [key for key, k in kept.items() if back.is_current(k)] == [1, 4, 5]
    finally:
        back.close()
