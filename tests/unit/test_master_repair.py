"""The master's repair loop (master/repair.py) and admin lock (master/admin_lock.py) on
clusters described as data, with the copies and trims faked: when it acts, what it orders, what
it leaves alone, and what it shows."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from seaweed_py.errors import Conflict, ServerUnreachable
from seaweed_py.formats.wire import LeaseLock, ReleaseLock
from seaweed_py.master.admin_lock import LEASE_SECONDS, AdminLocks
from seaweed_py.master.metrics import MasterStats
from seaweed_py.master.repair import RepairLoop
from seaweed_py.topology import Topology, VolumeReport
from seaweed_py.topology.repair import CopyOrder, TrimOrder
from tests.unit.test_topology_build import build, node_id, rp

PULSE = 1.0
DELAY = 30.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeRepairs:
    """Records the orders; each waits for `release` (set by default) and fails with `fail`."""

    def __init__(self) -> None:
        self.orders: list[CopyOrder | TrimOrder] = []
        self.release = asyncio.Event()
        self.release.set()
        self.fail: Exception | None = None

    async def copy(self, order: CopyOrder) -> Any:
        return await self._do(order)

    async def trim(self, order: TrimOrder) -> Any:
        return await self._do(order)

    async def _do(self, order: CopyOrder | TrimOrder) -> Any:
        self.orders.append(order)
        await self.release.wait()
        if self.fail is not None:
            raise self.fail

        class Done:
            size = rounds = pulled = 0

        return Done()


def v(vid: int, code: str) -> VolumeReport:
    return VolumeReport(id=vid, replica_placement=rp(code))


def loop_for(
    topo: Topology, *, delay: float = DELAY
) -> tuple[RepairLoop, FakeRepairs, Clock, AdminLocks, MasterStats]:
    clock = Clock()
    repairs = FakeRepairs()
    locks = AdminLocks(clock)
    stats = MasterStats()
    loop = RepairLoop(
        topo,
        repairs,  # type: ignore[arg-type]
        locks,
        stats,
        delay=delay,
        pulse=PULSE,
        clock=clock,
    )
    return loop, repairs, clock, locks, stats


async def settle_tasks() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


SHORT_001 = {
    "dc1": {
        "r1": {"a": {"max": 3, "volumes": [v(1, "001")]}, "b": {"max": 3}},
        "r2": {"c": {"max": 9}},
    }
}


async def test_a_short_volume_is_copied_after_the_delay_to_a_node_the_placement_accepts() -> None:
    loop, repairs, clock, _, stats = loop_for(build(SHORT_001))
    assert loop.step() == []
    assert stats.under_replicated == 1
    assert loop.status()["underReplicated"] == [{"volume": 1, "seconds": 0.0, "dueIn": DELAY}]
    clock.now += DELAY - 1
    assert loop.step() == []
    clock.now += 1
    repairs.release.clear()
    [order] = loop.step()
    # c has more free slots, but another rack breaks 001: b it is.
    assert order == CopyOrder(1, node_id("a"), node_id("b"), "", order.reason)
    await settle_tasks()
    assert stats.repairs_in_flight == 1
    assert [f["kind"] for f in loop.status()["inFlight"]] == ["copy"]
    clock.now += 100
    assert loop.step() == []  # in flight: left alone
    repairs.release.set()
    await settle_tasks()
    assert stats.repairs_in_flight == 0
    assert stats.repairs["copies", "done"] == 1
    assert loop.step() == []  # cooling: its target's heartbeat has yet to show the copy
    clock.now += loop.timing.settle
    assert len(loop.step()) == 1  # still short as far as the topology says: tried again
    status = loop.status()
    assert status["done"] == {"copies": 1, "trims": 0}
    assert status["recent"][0]["ok"] is True and status["recent"][0]["target"] == node_id("b")
    await loop.stop()


async def test_a_failed_copy_is_counted_shown_and_tried_again_later() -> None:
    loop, repairs, clock, _, stats = loop_for(build(SHORT_001), delay=0)
    repairs.fail = ServerUnreachable("b went away", server=node_id("b"))
    assert len(loop.step()) == 1
    await settle_tasks()
    assert stats.repairs["copies", "failed"] == 1
    [recent] = loop.status()["recent"]
    assert recent["ok"] is False and "b went away" in recent["error"]
    assert loop.step() == []
    clock.now += loop.timing.settle
    assert loop.step() == []  # once failed: twice the settle time
    clock.now += loop.timing.settle
    assert len(loop.step()) == 1
    await settle_tasks()
    clock.now += 3 * loop.timing.settle
    assert loop.step() == []  # twice failed: four times
    clock.now += loop.timing.settle
    assert len(loop.step()) == 1
    await settle_tasks()
    assert stats.repairs["copies", "failed"] == 3 and stats.repairs["copies", "done"] == 0
    repairs.fail = None
    clock.now += loop.timing.settle * 8 - 0.5
    assert loop.step() == []  # three times: eight times
    clock.now += 0.5
    assert len(loop.step()) == 1
    await settle_tasks()
    assert stats.repairs["copies", "done"] == 1
    clock.now += loop.timing.settle  # a success resets the wait to the settle time
    assert len(loop.step()) == 1
    await loop.stop()


@pytest.mark.parametrize(
    ("code", "cluster", "allowed"),
    [
        (
            "010",
            {
                "dc1": {
                    "r1": {"a": {"max": 3, "volumes": [v(1, "010")]}, "b": {"max": 9}},
                    "r2": {"c": {"max": 3}},
                },
                "dc2": {"r1": {"d": {"max": 9}}},
            },
            {"c"},
        ),
        (
            "100",
            {
                "dc1": {
                    "r1": {"a": {"max": 3, "volumes": [v(1, "100")]}, "b": {"max": 9}},
                    "r2": {"c": {"max": 9}},
                },
                "dc2": {"r1": {"d": {"max": 2}}},
            },
            {"d"},
        ),
    ],
)
async def test_copies_follow_010_and_100(
    code: str, cluster: dict[str, Any], allowed: set[str]
) -> None:
    loop, _, _, _, _ = loop_for(build(cluster), delay=0)
    [order] = loop.step()
    assert isinstance(order, CopyOrder)
    assert order.target in {node_id(n) for n in allowed}, code
    await loop.stop()


OVER_001 = {
    "dc1": {
        "r1": {
            "a": {"max": 3, "volumes": [v(1, "001")]},
            "b": {"max": 3, "volumes": [v(1, "001")]},
            "c": {"max": 2, "volumes": [v(1, "001")]},
        },
    }
}


async def test_a_surplus_copy_is_trimmed_after_the_settle_time_never_below_the_count() -> None:
    topo = build(OVER_001)
    loop, _, clock, _, stats = loop_for(topo)
    assert loop.step() == []
    assert stats.over_replicated == 1 and loop.status()["surplus"] == [1]
    clock.now += loop.timing.settle
    [order] = loop.step()
    assert isinstance(order, TrimOrder)
    assert order.doomed == node_id("c")  # the fewest free slots
    assert sorted(order.keep) == [node_id("a"), node_id("b")]
    await settle_tasks()
    assert stats.repairs["trims", "done"] == 1
    assert [n.id for n in topo.lookup(1)] == [node_id("a"), node_id("b")]  # forgotten at once
    clock.now += 10 * loop.timing.settle
    assert loop.step() == []
    assert loop.status()["surplus"] == []


async def test_nothing_starts_while_the_admin_lock_is_held_or_with_a_negative_delay() -> None:
    loop, _, _, locks, _ = loop_for(build(SHORT_001), delay=0)
    lease = locks.lease(LeaseLock("operator", message="moving volumes"))
    assert loop.step() == []
    assert loop.status()["pausedBy"] == "operator"
    locks.release(ReleaseLock(lease.token))
    assert len(loop.step()) == 1
    await settle_tasks()

    off, off_repairs, off_clock, _, off_stats = loop_for(build(SHORT_001), delay=-1)
    off_clock.now += 1e6
    assert off.step() == []
    assert off_stats.under_replicated == 1
    assert off_repairs.orders == []


async def test_a_volume_being_vacuumed_is_left_alone_until_the_vacuum_ends() -> None:
    topo = build(SHORT_001)
    loop, _, _, _, _ = loop_for(topo, delay=0)
    layout = topo.layout_of(1)
    assert layout is not None and layout.set_vacuuming(1, True, 0.0)
    assert loop.step() == []
    layout.set_vacuuming(1, False, 0.0)
    assert len(loop.step()) == 1
    await settle_tasks()


async def test_an_unplaceable_volume_is_reported_not_placed_against_its_placement() -> None:
    cluster = {"dc1": {"r1": {"a": {"max": 3, "volumes": [v(1, "100")]}, "b": {"max": 9}}}}
    loop, repairs, _, _, stats = loop_for(build(cluster), delay=0)
    assert loop.step() == []
    assert stats.unplaceable == 1
    [u] = loop.status()["unplaceable"]
    assert u["volume"] == 1 and "100" in u["reason"]
    assert repairs.orders == []


# ---------------------------------------------------------------------------- the admin lock


def test_the_admin_lock_is_a_lease_held_by_one_client() -> None:
    clock = Clock()
    locks = AdminLocks(clock)
    first = locks.lease(LeaseLock("alice", message="balancing"))
    assert first.token > 0
    with pytest.raises(Conflict) as refused:
        locks.lease(LeaseLock("bob"))
    assert refused.value.extra == {"holder": "alice", "message": "balancing"}
    with pytest.raises(Conflict):
        locks.lease(LeaseLock("alice"))  # another shell of the same name: still refused
    with pytest.raises(Conflict):
        locks.lease(LeaseLock("bob", token=first.token + 2))
    clock.now += LEASE_SECONDS - 1
    renewed = locks.lease(LeaseLock("alice", token=first.token))
    assert renewed.token == first.token
    clock.now += LEASE_SECONDS - 1
    assert locks.holder("shell") is not None
    with pytest.raises(Conflict):
        locks.release(ReleaseLock(first.token + 2))
    locks.release(ReleaseLock(first.token))
    assert locks.holder("shell") is None
    locks.release(ReleaseLock(first.token))  # nothing held: fine


def test_a_lease_that_ran_out_is_lost_and_must_be_taken_again() -> None:
    clock = Clock()
    locks = AdminLocks(clock)
    first = locks.lease(LeaseLock("alice"))
    clock.now += LEASE_SECONDS
    assert locks.holder("shell") is None
    with pytest.raises(Conflict, match="lost"):
        locks.lease(LeaseLock("alice", token=first.token))
    second = locks.lease(LeaseLock("bob"))
    assert second.token != first.token
    other = locks.lease(LeaseLock("carol", name="other"))  # names are separate locks
    assert other.name == "other"
