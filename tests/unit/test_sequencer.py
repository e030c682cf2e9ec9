"""The file-key sequencer never issues a key twice, across restarts too."""

from __future__ import annotations

import pytest

from seaweed_py.errors import WeedError
from seaweed_py.topology import Sequencer
from seaweed_py.topology.sequencer import ADOPT_LIMIT, KEY_LIMIT


class Disk:
    """Stands in for -mdir: remembers the last durable mark; can be made to fail."""

    def __init__(self) -> None:
        self.mark = 0
        self.writes = 0
        self.broken = False

    def reserve(self, mark: int) -> None:
        if self.broken:
            raise OSError("disk full")
        self.mark = mark
        self.writes += 1


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_keys_start_at_one_and_batches_are_consecutive() -> None:
    disk = Disk()
    seq = Sequencer(disk.mark, disk.reserve, Clock())
    assert seq.next_keys(1) == 1
    assert seq.next_keys(5) == 2
    assert seq.next_keys(1) == 7


def test_no_key_is_issued_beyond_the_durable_mark() -> None:
    disk = Disk()
    seq = Sequencer(0, disk.reserve, Clock(), min_step=100)
    for _ in range(1000):
        first = seq.next_keys(3)
        assert first + 3 <= disk.mark


def test_restarts_never_repeat_a_key() -> None:
    disk, clock = Disk(), Clock()
    issued: set[int] = set()
    for _ in range(5):  # each loop is one master life, killed at an arbitrary point
        seq = Sequencer(disk.mark, disk.reserve, clock, min_step=50)
        for i in range(137):
            first = seq.next_keys(1 + i % 4)
            batch = set(range(first, first + 1 + i % 4))
            assert not batch & issued
            issued |= batch


def test_a_batch_of_millions_is_one_reservation() -> None:
    disk = Disk()
    seq = Sequencer(0, disk.reserve, Clock())
    first = seq.next_keys(2_000_000)
    assert first == 1 and disk.writes == 1 and disk.mark > 2_000_000
    assert seq.next_keys(1) == 2_000_001


def test_reservations_grow_with_demand_and_shrink_when_it_is_slow() -> None:
    disk, clock = Disk(), Clock()
    seq = Sequencer(0, disk.reserve, clock, min_step=10, max_step=80)
    steps = []
    for _ in range(6):
        before = disk.mark
        seq.next_keys(disk.mark - seq.peek + 1)  # exhaust the reservation, in no time
        steps.append(disk.mark - before)
    assert steps[-1] > steps[1] > 0
    assert disk.mark - seq.peek <= 80
    clock.t = 100.0
    seq.next_keys(disk.mark - seq.peek + 1)
    assert disk.mark - seq.peek == 10


def test_failed_reservation_issues_nothing() -> None:
    disk = Disk()
    seq = Sequencer(0, disk.reserve, Clock(), min_step=10)
    seq.next_keys(5)
    disk.broken = True
    with pytest.raises(OSError):
        seq.next_keys(100)
    assert seq.peek == 6
    disk.broken = False
    assert seq.next_keys(1) == 6


def test_heartbeat_max_file_key_pushes_the_counter_up() -> None:
    disk = Disk()
    seq = Sequencer(0, disk.reserve, Clock(), min_step=10)
    seq.set_max(500)
    assert disk.mark > 500
    assert seq.next_keys(1) == 501
    seq.set_max(7)  # lower: ignored
    assert seq.next_keys(1) == 502


@pytest.mark.parametrize(
    "seen", [ADOPT_LIMIT, KEY_LIMIT - 2, KEY_LIMIT - 1, KEY_LIMIT, (1 << 64) - 1]
)
def test_a_key_the_master_never_issues_is_ignored(seen: int) -> None:
    """Clients choose the fids they write, so a heartbeat may report any uint64 key; one at
    or above the issuing limit cannot collide with an issued key, and raising the mark to it
    would overflow the persisted uint64 and leave no keys."""
    disk = Disk()
    seq = Sequencer(0, disk.reserve, Clock(), min_step=10)
    seq.set_max(seen)
    assert seq.next_keys(1) == 1
    assert seq.next_keys(1000) == 2  # keys remain to issue
    assert disk.mark < ADOPT_LIMIT


def test_the_highest_key_adopted_leaves_the_key_space_open() -> None:
    disk = Disk()
    seq = Sequencer(0, disk.reserve, Clock(), min_step=10)
    seq.set_max(ADOPT_LIMIT - 1)
    assert seq.next_keys(1_000_000) == ADOPT_LIMIT


def test_keys_stop_at_the_limit_rather_than_wrap() -> None:
    disk = Disk()
    seq = Sequencer(KEY_LIMIT - 3, disk.reserve, Clock(), min_step=1)
    assert seq.next_keys(2) == KEY_LIMIT - 3
    with pytest.raises(WeedError, match="exhausted"):
        seq.next_keys(2)
    assert seq.next_keys(1) == KEY_LIMIT - 1
