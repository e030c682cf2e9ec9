"""Re-replication and surplus removal planned on clusters described as data (STYLE.md #9):
every repair respects the placement (`001`, `010`, `100`), never takes a volume below its copy
count, and waits as long as it should (topology/repair.py)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from seaweed_py.formats.replica_placement import ReplicaPlacement
from seaweed_py.topology import VolumeReport
from seaweed_py.topology.repair import (
    ClusterView,
    CopyOrder,
    Place,
    RepairClock,
    can_add,
    classify,
    misplaced,
    plan,
    spread_complete,
)
from tests.unit.test_topology_build import build, node_id


def rp(code: str) -> ReplicaPlacement:
    return ReplicaPlacement.parse(code)


def vol(vid: int, code: str, **kw: Any) -> VolumeReport:
    return VolumeReport(id=vid, replica_placement=rp(code), **kw)


def place(spec: str) -> Place:
    dc, rack, node = spec.split("/")
    return Place(node, dc, rack, node)


def places(*specs: str) -> list[Place]:
    return [place(s) for s in specs]


def view(cluster: dict[str, Any]) -> ClusterView:
    return ClusterView.of(build(cluster))


def placed(v: ClusterView, node: str) -> tuple[str, str]:
    p = v.nodes[node].place
    return p.data_center, p.rack


# ---------------------------------------------------------------------------- the rules


@pytest.mark.parametrize(
    ("code", "existing", "target", "ok"),
    [
        ("001", ["dc1/r1/a"], "dc1/r1/b", True),
        ("001", ["dc1/r1/a"], "dc1/r2/b", False),
        ("001", ["dc1/r1/a"], "dc2/r1/b", False),
        ("001", ["dc1/r1/a", "dc1/r1/b"], "dc1/r1/c", False),
        ("010", ["dc1/r1/a"], "dc1/r2/b", True),
        ("010", ["dc1/r1/a"], "dc1/r1/b", False),
        ("010", ["dc1/r1/a"], "dc2/r1/b", False),
        ("100", ["dc1/r1/a"], "dc2/r1/b", True),
        ("100", ["dc1/r1/a"], "dc1/r2/b", False),
        ("100", ["dc1/r1/a"], "dc1/r1/b", False),
        ("100", ["dc1/r1/a", "dc2/r1/b"], "dc3/r1/c", False),
        ("110", ["dc1/r1/a", "dc2/r1/b"], "dc1/r2/c", True),
        ("110", ["dc1/r1/a", "dc1/r2/c"], "dc2/r1/b", True),
        ("000", [], "dc1/r1/a", True),
        ("001", ["dc1/r1/a"], "dc1/r1/a", False),  # a node never holds two copies
    ],
)
def test_can_add_follows_the_reference_rule(
    code: str, existing: list[str], target: str, ok: bool
) -> None:
    assert can_add(places(*existing), place(target), rp(code)) is ok


def test_spread_complete_and_misplaced() -> None:
    assert spread_complete(places("dc1/r1/a", "dc1/r1/b"), rp("001"))
    assert not spread_complete(places("dc1/r1/a", "dc1/r2/b"), rp("001"))
    assert spread_complete(places("dc1/r1/a", "dc1/r2/b"), rp("010"))
    assert not spread_complete(places("dc1/r1/a", "dc1/r1/b"), rp("010"))
    assert spread_complete(places("dc1/r1/a", "dc2/r1/b"), rp("100"))
    assert not spread_complete(places("dc1/r1/a"), rp("100"))
    # Two data centers count as two racks for 010, but the copies are misplaced all the same.
    two_dcs = places("dc1/r1/a", "dc2/r1/b")
    assert spread_complete(two_dcs, rp("010"))
    assert misplaced(two_dcs, rp("010")) is not None
    assert misplaced(places("dc1/r1/a", "dc1/r2/b"), rp("010")) is None


# ---------------------------------------------------------------------------- copies


def test_010_lost_copy_goes_to_the_other_rack_only() -> None:
    v = view(
        {
            "dc1": {
                "r1": {"a": {"max": 3, "volumes": [vol(5, "010")]}, "b": {"max": 9}},
                "r2": {"c": {"max": 2}, "d": {"max": 1}},
            }
        }
    )
    assert classify(v).short == (5,)
    result = plan(v)
    assert result.copies == [
        CopyOrder(5, node_id("a"), node_id("c"), "", "replication 010 has 1 of 2 copies")
    ]
    assert placed(v, result.copies[0].target) == ("dc1", "r2")


def test_010_without_room_in_another_rack_is_unplaceable_not_misplaced() -> None:
    v = view(
        {
            "dc1": {
                "r1": {"a": {"max": 3, "volumes": [vol(5, "010")]}, "b": {"max": 9}},
                "r2": {"c": {"max": 1, "volumes": [vol(6, "000")]}},
            }
        }
    )
    result = plan(v)
    assert result.copies == []
    assert [u.volume for u in result.unplaceable] == [5]
    assert "satisfies replication 010" in result.unplaceable[0].reason


def test_100_lost_copy_goes_to_another_data_center() -> None:
    v = view(
        {
            "dc1": {"r1": {"a": {"max": 3, "volumes": [vol(7, "100")]}, "b": {"max": 9}}},
            "dc2": {"r1": {"c": {"max": 2}}},
            "dc3": {"r9": {"d": {"max": 5}}},
        }
    )
    (order,) = plan(v).copies
    assert placed(v, order.target)[0] in ("dc2", "dc3")
    assert order.target == node_id("d")  # the most free slots of the fitting ones


def test_001_copy_stays_in_the_rack() -> None:
    v = view(
        {
            "dc1": {
                "r1": {"a": {"max": 3, "volumes": [vol(3, "001")]}, "b": {"max": 1}},
                "r2": {"c": {"max": 9}},
            }
        }
    )
    assert [c.target for c in plan(v).copies] == [node_id("b")]


def test_fewest_copies_first_and_slots_reserved_within_a_pass() -> None:
    v = view(
        {
            "dc1": {
                "r1": {
                    "a": {"max": 9, "volumes": [vol(1, "001"), vol(2, "002")]},
                    "b": {"max": 1},
                    "c": {"max": 1},
                }
            }
        }
    )
    result = plan(v, per_node=1)
    # 2 has 1 of 3 copies, 1 has 1 of 2: 2 is planned first; each node takes one copy.
    assert [c.volume for c in result.copies] == [2, 1]
    assert len({c.target for c in result.copies}) == 2
    assert plan(v, max_copies=1).copies[0].volume == 2
    assert plan(v, in_flight={node_id("b"): 1, node_id("c"): 1}).copies == []


def test_source_is_a_writable_copy_and_busy_or_tiered_volumes_are_left_alone() -> None:
    v = view(
        {
            "dc1": {
                "r1": {
                    "a": {"max": 9, "volumes": [vol(1, "002", read_only=True, size=900)]},
                    "b": {"max": 9, "volumes": [vol(1, "002", size=10)]},
                    "c": {"max": 9, "volumes": [vol(2, "001", remote_storage_name="s3.default")]},
                    "d": {"max": 9},
                }
            }
        }
    )
    (order,) = plan(v).copies
    assert (order.volume, order.source) == (1, node_id("b"))
    assert plan(v, busy={1}).copies == []
    assert plan(v, volumes={2}).copies == []


def test_copies_wait_their_delay_and_trims_their_settle() -> None:
    cluster = {
        "dc1": {
            "r1": {
                "a": {"max": 9, "volumes": [vol(1, "001"), vol(2, "000")]},
                "b": {"max": 9, "volumes": [vol(2, "000")]},
            }
        }
    }
    v = view(cluster)
    clock = RepairClock(delay=900, settle=15)
    due_short, due_surplus = clock.observe(classify(v), now=100)
    assert (due_short, due_surplus) == (set(), set())
    assert plan(v, due_short=due_short, due_surplus=due_surplus).actions() == []
    assert clock.observe(classify(v), now=114) == (set(), set())
    assert clock.observe(classify(v), now=115) == (set(), {2})
    assert clock.observe(classify(v), now=1000) == ({1}, {2})
    # Healthy again (the server came back): the wait starts over next time.
    healthy = view({"dc1": {"r1": {"a": {"max": 9}}}})
    assert clock.observe(classify(healthy), now=1001) == (set(), set())
    assert clock.short_since(1) is None
    assert clock.observe(classify(v), now=1002) == (set(), set())


# ---------------------------------------------------------------------------- trims


def test_surplus_trim_keeps_the_copy_count_and_the_spread() -> None:
    v = view(
        {
            "dc1": {
                "r1": {
                    "a": {"max": 9, "volumes": [vol(4, "010")]},
                    "b": {"max": 2, "volumes": [vol(4, "010")]},
                },
                "r2": {"c": {"max": 9, "volumes": [vol(4, "010")]}},
            }
        }
    )
    assert classify(v).surplus == (4,)
    (trim,) = plan(v).trims
    # Either r1 copy may go (the r2 one may not); the one whose node has fewer free slots goes.
    assert trim.doomed == node_id("b")
    assert sorted(trim.keep) == [node_id("a"), node_id("c")]


def test_misplaced_001_gets_a_copy_first_then_loses_the_wrong_one() -> None:
    cluster: dict[str, Any] = {
        "dc1": {
            "r1": {"a": {"max": 9, "volumes": [vol(4, "001")]}, "c": {"max": 9}},
            "r2": {"b": {"max": 9, "volumes": [vol(4, "001")]}},
        }
    }
    v = view(cluster)
    assert classify(v).misplaced == (4,)
    (copy,) = plan(v).copies
    assert copy.target == node_id("c") and "not well placed" in copy.reason
    assert plan(v).trims == []  # never trim before the well-placed copy exists
    cluster["dc1"]["r1"]["c"]["volumes"] = [vol(4, "001")]
    v = view(cluster)
    assert plan(v).copies == []
    (trim,) = plan(v).trims
    assert trim.doomed == node_id("b")


def test_no_trim_that_breaks_the_spread() -> None:
    # 100 with three copies, two in dc1: only a dc1 copy may go, never dc2's.
    v = view(
        {
            "dc1": {
                "r1": {"a": {"max": 9, "volumes": [vol(9, "100")]}},
                "r2": {"b": {"max": 9, "volumes": [vol(9, "100")]}},
            },
            "dc2": {"r1": {"c": {"max": 1, "volumes": [vol(9, "100")]}}},
        }
    )
    (trim,) = plan(v).trims
    assert trim.doomed in (node_id("a"), node_id("b"))
    assert node_id("c") in trim.keep


@pytest.mark.parametrize("seed", range(40))
def test_random_clusters_every_action_respects_the_placement(seed: int) -> None:
    rng = random.Random(seed)
    codes = ["001", "010", "100", "011", "110", "002"]
    cluster: dict[str, Any] = {
        f"dc{d}": {
            f"r{r}": {f"n{d}{r}{n}": {"max": rng.randrange(1, 6), "volumes": []} for n in range(3)}
            for r in range(rng.randrange(1, 4))
        }
        for d in range(rng.randrange(1, 4))
    }
    nodes = [
        spec for racks in cluster.values() for rack in racks.values() for spec in rack.values()
    ]
    for vid in range(1, 15):
        code = rng.choice(codes)
        for spec in rng.sample(nodes, min(len(nodes), rng.randrange(1, 5))):
            if len(spec["volumes"]) < spec["max"]:
                spec["volumes"].append(vol(vid, code))
    v = view(cluster)
    result = plan(v, per_node=3)
    for order in result.copies:
        volume = v.volumes[order.volume]
        here = v.places(volume)
        base = here
        if len(here) >= volume.placement.copy_count and misplaced(here, volume.placement):
            wrong = misplaced(here, volume.placement)
            base = [p for p in here if p is not wrong]
        assert can_add(base, v.nodes[order.target].place, volume.placement)
        assert order.target not in {c.node for c in volume.copies}
        assert order.source in {c.node for c in volume.copies}
    for trim in result.trims:
        volume = v.volumes[trim.volume]
        rest = [v.nodes[n].place for n in trim.keep]
        assert len(rest) >= volume.placement.copy_count
        assert spread_complete(rest, volume.placement)
    targets = [o.target for o in result.copies]
    for node, count in {t: targets.count(t) for t in targets}.items():
        assert count <= min(3, v.nodes[node].free_slots("hdd"))
