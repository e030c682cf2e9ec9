"""Heartbeats, dead nodes, writable/crowded/full state and picking a volume (spec §5.5-§5.6, §7.3)."""

from __future__ import annotations

import random

from seaweed_py.formats.ttl import Ttl
from seaweed_py.topology import GrowthConfig, LayoutKey, VolumeReport
from seaweed_py.topology.layout import FULL_COOLDOWN_SECONDS
from tests.unit.test_topology_build import LIMIT, build, heartbeat, node_id, rp

KEY_000 = LayoutKey("", rp("000"), Ttl.EMPTY, "hdd")
KEY_001 = LayoutKey("", rp("001"), Ttl.EMPTY, "hdd")


def v001(vid: int, **kw: object) -> VolumeReport:
    return VolumeReport(id=vid, replica_placement=rp("001"), **kw)  # type: ignore[arg-type]


def test_growth_counts_follow_copy_count_unless_asked() -> None:
    topo = build({})
    assert [topo.growth_count(c) for c in (1, 2, 3, 4, 5)] == [7, 6, 3, 1, 1]
    assert topo.growth_count(2, writable_volume_count=4) == 4
    assert build({}).growth.count_for(1) == GrowthConfig().copy_1


def test_heartbeat_full_state_replaces_the_nodes_volumes() -> None:
    topo = build({"dc1": {"r1": {"a": {"max": 5, "volumes": [1, 2, 3]}}}})
    assert topo.layout(KEY_000).writables == [1, 2, 3]
    topo.apply_heartbeat(heartbeat("dc1", "r1", "a", {"max": 5, "volumes": [2, 4]}), 1.0)
    assert topo.layout(KEY_000).writables == [2, 4]
    assert topo.lookup(1) == [] and [n.id for n in topo.lookup(4)] == [node_id("a")]
    assert topo.max_volume_id == 4
    assert topo.nodes[node_id("a")].free_slots("hdd") == 3


def test_lookup_honours_the_collection() -> None:
    topo = build(
        {"dc1": {"r1": {"a": {"max": 5, "volumes": [VolumeReport(id=7, collection="pics")]}}}}
    )
    assert len(topo.lookup(7, "pics")) == 1
    assert topo.lookup(7, "other") == []
    assert topo.collections() == {"pics"}


def test_replicated_volume_is_writable_only_with_all_copies() -> None:
    topo = build({"dc1": {"r1": {"a": {"max": 5, "volumes": [v001(1)]}}}})
    layout = topo.layout(KEY_001)
    assert layout.writables == []
    topo.apply_heartbeat(heartbeat("dc1", "r1", "b", {"max": 5, "volumes": [v001(1)]}), 0.0)
    assert layout.writables == [1]


def test_dead_node_expires_after_three_missed_pulses() -> None:
    topo = build(
        {
            "dc1": {
                "r1": {"a": {"max": 5, "volumes": [v001(1)]}, "b": {"max": 5, "volumes": [v001(1)]}}
            }
        }
    )
    layout = topo.layout(KEY_001)
    topo.apply_heartbeat(heartbeat("dc1", "r1", "a", {"max": 5, "volumes": [v001(1)]}), 14.0)
    assert topo.expire_dead(15.0) == []  # b was last seen at 0: exactly three pulses
    assert topo.expire_dead(15.1) == [node_id("b")]
    assert [n.id for n in topo.lookup(1)] == [node_id("a")]
    assert layout.writables == []
    assert node_id("b") not in topo.nodes


def test_graceful_goodbye_drops_the_node_at_once() -> None:
    topo = build({"dc1": {"r1": {"a": {"max": 5, "volumes": [1]}}}})
    hb = heartbeat("dc1", "r1", "a", {"max": 5})
    from dataclasses import replace

    topo.apply_heartbeat(replace(hb, has_no_volumes=True), 1.0)
    assert topo.nodes == {} and topo.lookup(1) == [] and topo.data_centers == {}


def test_relabelled_node_moves_with_its_volumes() -> None:
    topo = build({"dc1": {"r1": {"a": {"max": 5, "volumes": [1]}}}})
    topo.apply_heartbeat(heartbeat("dc2", "r9", "a", {"max": 5, "volumes": [1]}), 1.0)
    assert sorted(topo.data_centers) == ["dc2"]
    assert topo.lookup(1)[0].rack.id == "r9"


def test_oversized_and_read_only_volumes_leave_the_writable_set() -> None:
    topo = build(
        {
            "dc1": {
                "r1": {
                    "a": {
                        "max": 5,
                        "volumes": [
                            VolumeReport(id=1, size=LIMIT),
                            VolumeReport(id=2, read_only=True),
                            VolumeReport(id=3, size=950),
                        ],
                    }
                }
            }
        }
    )
    layout = topo.layout(KEY_000)
    assert layout.writables == [3]
    assert layout.volumes[3].crowded and layout.crowded_count == 1
    assert not layout.volumes[2].crowded


def test_pick_only_returns_writable_volumes_and_weights_free_space() -> None:
    topo = build(
        {
            "dc1": {
                "r1": {
                    "a": {
                        "max": 9,
                        "volumes": [
                            VolumeReport(id=1, size=0),
                            VolumeReport(id=2, size=990),
                            VolumeReport(id=3, read_only=True),
                        ],
                    }
                }
            }
        }
    )
    layout = topo.layout(KEY_000)
    rng = random.Random(5)
    picks = [layout.pick_for_write(1, rng, 0.0, data_size=1).id for _ in range(500)]  # type: ignore[union-attr]
    assert set(picks) <= {1, 2}
    assert picks.count(1) > 400  # 1000 bytes free against 10


def test_pick_samples_among_many_writables() -> None:
    topo = build({"dc1": {"r1": {"a": {"max": 20, "volumes": list(range(1, 11))}}}})
    layout = topo.layout(KEY_000)
    rng = random.Random(1)
    assert {layout.pick_for_write(1, rng, 0.0, data_size=1).id for _ in range(300)} == set(
        range(1, 11)
    )  # type: ignore[union-attr]


def test_pick_with_location_constraints() -> None:
    topo = build(
        {
            "dc1": {"r1": {"a": {"max": 5, "volumes": [1]}}},
            "dc2": {"r2": {"b": {"max": 5, "volumes": [2]}}},
        }
    )
    layout = topo.layout(KEY_000)
    rng = random.Random(2)
    for _ in range(20):
        assert layout.pick_for_write(1, rng, 0.0, data_center="dc2", data_size=1).id == 2  # type: ignore[union-attr]
        assert layout.pick_for_write(1, rng, 0.0, rack="r1", data_size=1).id == 1  # type: ignore[union-attr]
        assert layout.pick_for_write(1, rng, 0.0, data_node=node_id("b"), data_size=1).id == 2  # type: ignore[union-attr]
    assert layout.pick_for_write(1, rng, 0.0, data_center="dc9") is None
    assert topo.layout(KEY_001).pick_for_write(1, rng, 0.0) is None


def test_a_huge_batch_retires_the_volume_until_the_cooldown_passes() -> None:
    topo = build({"dc1": {"r1": {"a": {"max": 5, "volumes": [1, 2]}}}})
    layout = topo.layout(KEY_000)
    rng = random.Random(0)
    chosen = layout.pick_for_write(10, rng, 0.0, data_size=100)  # 1000 bytes = the limit
    assert chosen is not None and chosen.id not in layout.writables
    other = layout.writables[0]
    for _ in range(50):  # small assigns do not accumulate
        assert layout.pick_for_write(1, rng, 1.0, data_size=100).id == other  # type: ignore[union-attr]
    hb = heartbeat("dc1", "r1", "a", {"max": 5, "volumes": [1, 2]})
    topo.apply_heartbeat(hb, FULL_COOLDOWN_SECONDS - 1)
    assert chosen.id not in layout.writables
    topo.apply_heartbeat(hb, FULL_COOLDOWN_SECONDS + 1)
    assert sorted(layout.writables) == [1, 2]


def test_unwritable_volume_returns_after_the_hold_once_every_replica_heartbeats() -> None:
    topo = build(
        {
            "dc1": {
                "r1": {"a": {"max": 5, "volumes": [v001(1)]}, "b": {"max": 5, "volumes": [v001(1)]}}
            }
        }
    )
    layout = topo.layout(KEY_001)

    def beat(name: str, now: float) -> None:
        topo.apply_heartbeat(heartbeat("dc1", "r1", name, {"max": 5, "volumes": [v001(1)]}), now)

    assert topo.mark_unwritable(1, 10.0)
    assert not topo.mark_unwritable(99, 10.0)
    assert layout.writables == [] and layout.pick_for_write(1, random.Random(), 10.0) is None
    beat("a", 12.0)
    beat("b", 14.0)
    assert layout.writables == []  # still inside the hold of one pulse (5 s)
    beat("a", 15.5)
    assert layout.writables == []  # b has not been heard since the hold ended
    beat("b", 16.0)
    assert layout.writables == [1]
    # Failing again soon doubles the hold, then doubles it again.
    topo.mark_unwritable(1, 20.0)
    beat("a", 26.0)
    beat("b", 26.0)
    assert layout.writables == []
    beat("a", 30.0)
    beat("b", 30.0)
    assert layout.writables == [1]
    topo.mark_unwritable(1, 40.0)
    assert layout.volumes[1].unwritable_until == 60.0
    # A replica that died stays missing: the volume does not come back with one copy.
    topo.remove_node(node_id("b"), 61.0)
    beat("a", 70.0)
    assert layout.writables == []


def test_repeated_failures_hold_at_most_ten_minutes_and_are_forgotten_after_an_hour() -> None:
    topo = build({"dc1": {"r1": {"a": {"max": 5, "volumes": [1]}}}})
    layout = topo.layout(KEY_000)
    for i in range(20):
        topo.mark_unwritable(1, 100.0 + i)
    assert layout.volumes[1].unwritable_until == 119.0 + 600.0
    topo.mark_unwritable(1, 119.0 + 3601.0)
    assert layout.volumes[1].unwritable_until == 119.0 + 3601.0 + 5.0


def test_commit_registers_a_grown_volume_as_writable_at_once() -> None:
    topo = build({"dc1": {"r1": {"a": {"max": 5}, "b": {"max": 5}}}})
    nodes = topo.find_slots(rp("001"), "", random.Random(1))
    topo.commit_volume(9, KEY_001, nodes, 0.0)
    assert topo.layout(KEY_001).writables == [9]
    assert {n.id for n in topo.lookup(9)} == {node_id("a"), node_id("b")}
    assert topo.free_slots() == 8 and topo.max_volume_id == 9
    # The next heartbeats carry it and change nothing.
    for name in "ab":
        topo.apply_heartbeat(heartbeat("dc1", "r1", name, {"max": 5, "volumes": [v001(9)]}), 1.0)
    assert topo.layout(KEY_001).writables == [9]


def test_drop_collection_forgets_its_volumes() -> None:
    topo = build(
        {"dc1": {"r1": {"a": {"max": 5, "volumes": [VolumeReport(id=1, collection="c"), 2]}}}}
    )
    assert [n.id for n in topo.nodes_of_collection("c")] == [node_id("a")]
    topo.drop_collection("c", 1.0)
    assert topo.lookup(1) == [] and len(topo.lookup(2)) == 1
    assert topo.collections() == {""}
    assert topo.nodes[node_id("a")].free_slots("hdd") == 4


def test_background_growth_tops_up_wanted_and_crowded_layouts() -> None:
    topo = build(
        {
            "dc1": {
                "r1": {
                    "a": {
                        "max": 20,
                        "volumes": [
                            VolumeReport(id=1, size=950),
                            VolumeReport(id=2, size=960),
                            VolumeReport(id=3, collection="c"),
                            VolumeReport(id=4, collection="c", size=990),
                        ],
                    }
                }
            }
        }
    )
    key_c = LayoutKey("c", rp("000"), Ttl.EMPTY, "hdd")
    topo.layout(LayoutKey("unused", rp("000"), Ttl.EMPTY, "hdd"))
    assert topo.background_growth() == [(KEY_000, 7)]  # every writable volume is crowded
    topo.layout(key_c).wanted_writable = 4
    assert sorted(topo.background_growth(), key=str) == sorted([(KEY_000, 7), (key_c, 2)], key=str)
    topo.layout(KEY_000).wanted_writable = 1  # two writable already: enough, but crowded
    assert (KEY_000, 1) in topo.background_growth()


def test_a_slow_pulsing_node_gets_three_of_its_own_pulses() -> None:
    from dataclasses import replace

    topo = build({})
    topo.apply_heartbeat(
        replace(heartbeat("dc1", "r1", "slow", {"max": 1}), pulse_seconds=10.0), 0.0
    )
    topo.apply_heartbeat(heartbeat("dc1", "r1", "fast", {"max": 1}), 0.0)
    assert topo.expire_dead(20.0) == [node_id("fast")]
    assert topo.expire_dead(30.5) == [node_id("slow")]
