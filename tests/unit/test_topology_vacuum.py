"""What a vacuum pass works on, decided from the topology (spec §9.2): candidates, selected
replicas, per-server slots, step timeouts, sweep timing, and the writable set while a volume
is vacuumed."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from seaweed_py.formats.ttl import Ttl
from seaweed_py.topology import LayoutKey, VolumeReport
from seaweed_py.topology.vacuum import (
    MAX_VACUUMS_IN_FLIGHT,
    SWEEP_JITTER_SECONDS,
    VacuumCandidate,
    VacuumSlots,
    VacuumTimeouts,
    select_replicas,
    sweep_delay,
    vacuum_candidates,
)
from tests.unit.test_topology_build import build, heartbeat, node_id, rp

CLUSTER: dict[str, Any] = {
    "dc1": {
        "r1": {
            "a": {
                "max": 9,
                "volumes": [
                    VolumeReport(id=1),
                    VolumeReport(id=2, read_only=True),
                    VolumeReport(id=3, replica_placement=rp("001")),
                    VolumeReport(id=4, replica_placement=rp("001")),  # its replica is missing
                    VolumeReport(id=7, collection="pics"),
                ],
            },
            "b": {
                "max": 9,
                "volumes": [
                    VolumeReport(id=3, replica_placement=rp("001")),
                    VolumeReport(id=5, collection="pics"),
                    VolumeReport(id=6, collection="pics", read_only=True),
                ],
            },
        }
    }
}
A, B = node_id("a"), node_id("b")


def test_candidates_are_whole_writable_volumes_in_collection_then_id_order() -> None:
    found = vacuum_candidates(build(CLUSTER))
    assert found == [
        VacuumCandidate(1, "", (A,)),
        VacuumCandidate(3, "", (A, B)),
        VacuumCandidate(5, "pics", (B,)),
        VacuumCandidate(7, "pics", (A,)),
    ]


def test_candidates_of_one_collection() -> None:
    topo = build(CLUSTER)
    assert [c.volume_id for c in vacuum_candidates(topo, collection="pics")] == [5, 7]
    assert [c.volume_id for c in vacuum_candidates(topo, collection="")] == [1, 3]
    assert vacuum_candidates(topo, collection="nothing") == []


def test_a_named_volume_is_a_candidate_even_read_only() -> None:
    topo = build(CLUSTER)
    assert vacuum_candidates(topo, volume_id=2) == [VacuumCandidate(2, "", (A,))]
    assert vacuum_candidates(topo, volume_id=6, collection="pics") == [
        VacuumCandidate(6, "pics", (B,))
    ]
    assert vacuum_candidates(topo, volume_id=6, collection="") == []


def test_a_tiered_volume_is_a_candidate_when_named_and_says_so() -> None:
    topo = build(
        {
            "dc": {
                "r": {
                    "a": {"max": 9, "volumes": [VolumeReport(id=4, read_only=True)]},
                    "b": {
                        "max": 9,
                        "volumes": [VolumeReport(id=4, remote_storage_name="s3.default")],
                    },
                }
            }
        }
    )
    assert vacuum_candidates(topo) == []  # read-only: only when named
    (found,) = vacuum_candidates(topo, volume_id=4)
    assert found.tiered and found.servers == (node_id("a"), node_id("b"))


def test_a_volume_missing_a_replica_is_never_a_candidate() -> None:
    topo = build(CLUSTER)
    assert vacuum_candidates(topo, volume_id=4) == []
    assert vacuum_candidates(topo, volume_id=99) == []


@pytest.mark.parametrize(
    ("threshold", "selected"),
    [
        (0.3, ("b:8080", "c:8080")),
        (0.0, ("a:8080", "b:8080", "c:8080")),
        (-1.0, ("a:8080", "b:8080", "c:8080")),
        (0.5, ("c:8080",)),
        (0.51, ()),
        (math.inf, ()),
        (math.nan, ()),
    ],
)
def test_replicas_at_or_above_the_threshold_are_selected(
    threshold: float, selected: tuple[str, ...]
) -> None:
    ratios = {"c:8080": 0.5, "a:8080": 0.0, "b:8080": 0.3}
    assert select_replicas(ratios, threshold) == selected


def test_slots_bound_each_server_and_the_total() -> None:
    slots = VacuumSlots(per_server=1)
    assert slots.try_take(["a", "b"])
    assert not slots.try_take(["b", "c"])  # b is busy: nothing is taken
    assert slots.busy("c") == 0
    assert slots.try_take(["c"])
    assert slots.in_flight == 2
    slots.release(["a", "b"])
    assert slots.busy("a") == slots.busy("b") == 0
    assert slots.try_take(["b", "c"]) is False  # c still busy
    assert slots.try_take(["b"])


def test_slots_with_two_per_server() -> None:
    slots = VacuumSlots(per_server=2)
    assert slots.try_take(["a"]) and slots.try_take(["a", "b"])
    assert not slots.try_take(["a"])
    assert slots.try_take(["b"])
    assert (slots.busy("a"), slots.busy("b")) == (2, 2)


def test_slots_bound_the_total_in_flight() -> None:
    slots = VacuumSlots(per_server=1, total=MAX_VACUUMS_IN_FLIGHT)
    for i in range(MAX_VACUUMS_IN_FLIGHT):
        assert slots.try_take([f"s{i}"])
    assert not slots.try_take(["fresh"])
    slots.release(["s0"])
    assert slots.try_take(["fresh"])


def test_a_server_named_twice_takes_one_slot() -> None:
    slots = VacuumSlots(per_server=1)
    assert slots.try_take(["a", "a"])
    slots.release(["a", "a"])
    assert slots.busy("a") == 0 and slots.in_flight == 0


@pytest.mark.parametrize(("per_server", "total"), [(0, 1), (1, 0), (-1, 5)])
def test_slots_refuse_limits_below_one(per_server: int, total: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        VacuumSlots(per_server, total)


@pytest.mark.parametrize(("limit_mb", "minutes"), [(1, 1), (999, 1), (1000, 2), (30 * 1024, 31)])
def test_step_timeouts_grow_with_the_size_limit(limit_mb: int, minutes: int) -> None:
    t = VacuumTimeouts.for_size_limit(limit_mb << 20)
    assert (t.check, t.compact, t.commit) == (60.0 * minutes, 180.0 * minutes, 60.0 * minutes)


def test_sweeps_are_jittered_within_a_seventh_of_the_interval_at_most_two_minutes() -> None:
    rng = random.Random(7)
    delays = [sweep_delay(840, rng) for _ in range(500)]
    assert all(840 <= d <= 840 + SWEEP_JITTER_SECONDS for d in delays)
    assert max(delays) - min(delays) > 100  # spread, not a constant
    long = [sweep_delay(7000, rng) for _ in range(100)]
    assert all(7000 <= d <= 7000 + SWEEP_JITTER_SECONDS for d in long)
    short = [sweep_delay(1.4, rng) for _ in range(100)]
    assert all(1.4 <= d <= 1.6 for d in short)


def test_a_vacuumed_volume_leaves_the_writable_set_and_comes_back() -> None:
    topo = build(CLUSTER)
    layout = topo.layout(LayoutKey("", rp("001"), Ttl.EMPTY, "hdd"))
    assert layout.is_writable(3)
    assert topo.set_vacuuming(3, True, 1.0)
    assert not layout.is_writable(3)
    # A heartbeat meanwhile does not bring it back.
    topo.apply_heartbeat(heartbeat("dc1", "r1", "b", CLUSTER["dc1"]["r1"]["b"]), 2.0)
    assert not layout.is_writable(3)
    assert topo.set_vacuuming(3, False, 3.0)
    assert layout.is_writable(3)


def test_a_vacuum_ending_leaves_a_read_only_volume_unwritable() -> None:
    topo = build(CLUSTER)
    layout = topo.layout(LayoutKey("", rp("000"), Ttl.EMPTY, "hdd"))
    assert topo.set_vacuuming(2, True, 1.0)
    assert topo.set_vacuuming(2, False, 2.0)
    assert not layout.is_writable(2)


def test_vacuuming_an_unknown_volume_changes_nothing() -> None:
    topo = build(CLUSTER)
    assert not topo.set_vacuuming(42, True, 1.0)
