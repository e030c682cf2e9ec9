"""Placement of one new volume for every replica code, and the ways it can fail (spec §5.3)."""

from __future__ import annotations

import random

import pytest

from seaweed_py.errors import NoFreeSlots
from tests.unit.test_topology_build import build, grid, node_id, rp

CODES = ["000", "001", "002", "010", "011", "020", "100", "101", "110", "111", "200", "210"]


@pytest.mark.parametrize("code", CODES)
def test_every_replica_code_spreads_copies_as_its_digits_say(code: str) -> None:
    topo = build(grid(dcs=3, racks=3, nodes=3))
    placement = rp(code)
    x, y, z = placement.diff_data_center, placement.diff_rack, placement.same_rack
    for seed in range(40):
        nodes = topo.find_slots(placement, "", random.Random(seed))
        assert len(nodes) == placement.copy_count
        assert len({n.id for n in nodes}) == len(nodes)
        main = nodes[0]
        same_rack, other_racks, other_dcs = (
            nodes[1 : 1 + z],
            nodes[1 + z : 1 + z + y],
            nodes[1 + z + y :],
        )
        assert all(n.rack is main.rack for n in same_rack)
        assert all(
            n.data_center is main.data_center and n.rack is not main.rack for n in other_racks
        )
        assert len({n.rack.id for n in other_racks}) == y
        assert all(n.data_center is not main.data_center for n in other_dcs)
        assert len({n.data_center.id for n in other_dcs}) == x


def test_placement_spreads_load_over_all_nodes() -> None:
    topo = build(grid(dcs=1, racks=2, nodes=2))
    mains = {topo.find_slots(rp("000"), "", random.Random(s))[0].id for s in range(60)}
    assert len(mains) == 4


def test_not_enough_racks_names_the_racks() -> None:
    topo = build({"dc1": {"r1": {"a": {"max": 5}, "b": {"max": 5}}}})
    with pytest.raises(NoFreeSlots, match=r"dc1:Only has 1 racks, not enough for 2"):
        topo.find_slots(rp("010"), "", random.Random(1))


def test_not_enough_data_centers_names_the_data_centers() -> None:
    topo = build({"dc1": {"r1": {"a": {"max": 5}, "b": {"max": 5}}}})
    with pytest.raises(
        NoFreeSlots, match=r"Only has 1 data centers with free slots, not enough for 3"
    ):
        topo.find_slots(rp("200"), "", random.Random(1))


def test_not_enough_nodes_in_a_rack_for_same_rack_copies() -> None:
    topo = build({"dc1": {"r1": {"a": {"max": 5}}, "r2": {"b": {"max": 5}}}})
    with pytest.raises(NoFreeSlots, match=r"racks with at least 2 data nodes with free slots"):
        topo.find_slots(rp("001"), "", random.Random(1))


def test_no_free_slots_anywhere() -> None:
    topo = build({"dc1": {"r1": {"a": {"max": 1, "volumes": [1]}}}})
    with pytest.raises(NoFreeSlots, match=r"Only has 0 data centers with free slots"):
        topo.find_slots(rp("000"), "", random.Random(1))


def test_full_nodes_are_never_chosen() -> None:
    topo = build({"dc1": {"r1": {"full": {"max": 1, "volumes": [1]}, "free": {"max": 1}}}})
    for seed in range(20):
        assert [n.id for n in topo.find_slots(rp("000"), "", random.Random(seed))] == [
            node_id("free")
        ]
    with pytest.raises(NoFreeSlots):
        topo.find_slots(rp("001"), "", random.Random(1))


def test_data_center_constraint_picks_the_main_copy_there() -> None:
    topo = build(grid(dcs=3, racks=2, nodes=2))
    for seed in range(20):
        nodes = topo.find_slots(rp("100"), "", random.Random(seed), data_center="dc2")
        assert nodes[0].data_center.id == "dc2"
        assert nodes[1].data_center.id != "dc2"


def test_unknown_data_center_is_refused_with_its_name() -> None:
    topo = build(grid(dcs=1, racks=1, nodes=1))
    with pytest.raises(NoFreeSlots, match=r"dc0:Not matching preferred data center:zz"):
        topo.find_slots(rp("000"), "", random.Random(1), data_center="zz")


def test_rack_and_node_constraints() -> None:
    topo = build(grid(dcs=1, racks=3, nodes=2))
    for seed in range(20):
        assert topo.find_slots(rp("001"), "", random.Random(seed), rack="r01")[0].rack.id == "r01"
        nodes = topo.find_slots(rp("000"), "", random.Random(seed), data_node=node_id("n021"))
        assert [n.id for n in nodes] == [node_id("n021")]
    with pytest.raises(NoFreeSlots, match="Not matching preferred rack:nope"):
        topo.find_slots(rp("000"), "", random.Random(1), rack="nope")


def test_same_rack_copies_prefer_another_host() -> None:
    cluster = {"dc1": {"r1": {}}}
    topo = build(cluster)
    from seaweed_py.topology import Heartbeat

    for ip, port in (("10.0.0.1", 1), ("10.0.0.1", 2), ("10.0.0.2", 1)):
        topo.apply_heartbeat(
            Heartbeat(ip=ip, port=port, data_center="dc1", rack="r1", max_volume_counts={"hdd": 5}),
            0.0,
        )
    for seed in range(30):
        main, other = topo.find_slots(rp("001"), "", random.Random(seed))
        assert main.ip != other.ip


def test_disk_types_have_their_own_slots() -> None:
    topo = build({"dc1": {"r1": {"h": {"disks": {"hdd": 2}}, "s": {"disks": {"ssd": 2}}}}})
    assert [n.id for n in topo.find_slots(rp("000"), "ssd", random.Random(3))] == [node_id("s")]
    assert [n.id for n in topo.find_slots(rp("000"), "", random.Random(3))] == [node_id("h")]
    with pytest.raises(NoFreeSlots):
        topo.find_slots(rp("000"), "nvme", random.Random(3))
