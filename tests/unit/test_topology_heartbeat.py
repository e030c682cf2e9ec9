"""Steady heartbeats are cheap: a report the layouts already reflect skips the layout work,
and what a heartbeat changes still reaches the layouts exactly as before (spec §5.5, §7.3)."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest

from seaweed_py.errors import Conflict
from seaweed_py.formats.ttl import Ttl
from seaweed_py.topology import DataNode, Heartbeat, LayoutKey, Topology, VolumeReport
from seaweed_py.topology.layout import VolumeLayout
from tests.unit.test_topology_build import LIMIT, build, heartbeat, node_id, rp

KEY_000 = LayoutKey("", rp("000"), Ttl.EMPTY, "hdd")
KEY_001 = LayoutKey("", rp("001"), Ttl.EMPTY, "hdd")
KEY_PICS = LayoutKey("pics", rp("000"), Ttl.EMPTY, "hdd")

A_VOLUMES = [
    VolumeReport(id=1),
    VolumeReport(id=2, size=950),  # crowded
    VolumeReport(id=3, size=LIMIT),  # oversized
    VolumeReport(id=4, read_only=True),
    VolumeReport(id=5, replica_placement=rp("001")),
    VolumeReport(id=6, collection="pics", disk_type="HDD"),
]
B_VOLUMES = [VolumeReport(id=5, replica_placement=rp("001"))]
CLUSTER: dict[str, Any] = {
    "dc1": {"r1": {"a": {"max": 9, "volumes": A_VOLUMES}, "b": {"max": 9, "volumes": B_VOLUMES}}}
}


def snapshot(topo: Topology) -> Any:
    """Everything the layouts decide, with the writable lists in order."""
    layouts = {
        key: (
            list(layout.writables),
            {
                vid: (
                    [n.id for n in vol.locations],
                    vol.size,
                    vol.read_only,
                    vol.oversized,
                    vol.crowded,
                    vol.full_since,
                    vol.unwritable_until,
                    vol.strikes,
                    vol.last_failure,
                )
                for vid, vol in layout.volumes.items()
            },
        )
        for key, layout in topo.layouts.items()
    }
    owners = {vid: topo.layout_of(vid) for vid in topo.volume_ids()}
    return (
        layouts,
        {vid: layout.key for vid, layout in owners.items() if layout is not None},
        sorted(topo.lost_volumes),
        topo.max_volume_id,
        {nid: dict(node.volumes) for nid, node in topo.nodes.items()},
    )


@pytest.fixture
def layout_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Volume ids `VolumeLayout.add_location` and `refresh` were called for."""
    calls: list[int] = []
    add_location, refresh = VolumeLayout.add_location, VolumeLayout.refresh

    def counted_add(self: VolumeLayout, vid: int, node: DataNode, now: float) -> None:
        calls.append(vid)
        add_location(self, vid, node, now)

    def counted_refresh(self: VolumeLayout, vid: int, now: float) -> None:
        calls.append(vid)
        refresh(self, vid, now)

    monkeypatch.setattr(VolumeLayout, "add_location", counted_add)
    monkeypatch.setattr(VolumeLayout, "refresh", counted_refresh)
    return calls


def beat(topo: Topology, name: str, volumes: list[VolumeReport], now: float) -> None:
    topo.apply_heartbeat(heartbeat("dc1", "r1", name, {"max": 9, "volumes": volumes}), now)


def test_an_unchanged_re_report_leaves_the_layouts_identical_and_untouched(
    layout_calls: list[int],
) -> None:
    topo = build(CLUSTER)
    before = snapshot(topo)
    assert topo.layout(KEY_000).writables == [1, 2] and topo.layout(KEY_001).writables == [5]
    layout_calls.clear()
    # Counters the layouts do not read (files, deletes, modification time) may move.
    busier = [replace(v, file_count=v.file_count + 3, modified_at_second=99) for v in A_VOLUMES]
    beat(topo, "a", busier, 4.0)
    beat(topo, "b", B_VOLUMES, 4.0)
    assert layout_calls == []
    after = snapshot(topo)
    assert after[:4] == before[:4]
    assert topo.nodes[node_id("a")].volumes[1].file_count == 3  # the node's view is current
    assert topo.nodes[node_id("a")].last_seen == 4.0


def test_changed_reports_still_reach_the_layouts(layout_calls: list[int]) -> None:
    topo = build(CLUSTER)
    layout_calls.clear()
    flipped = [replace(A_VOLUMES[0], read_only=True), *A_VOLUMES[1:]]
    beat(topo, "a", flipped, 1.0)
    assert set(layout_calls) == {1}  # only the volume whose report changed
    assert topo.layout(KEY_000).writables == [2]
    beat(topo, "a", A_VOLUMES, 2.0)
    assert topo.layout(KEY_000).writables == [2, 1]
    # Size crossing the limit leaves the writable set; shrinking below it (vacuum) returns it.
    beat(topo, "a", [replace(A_VOLUMES[0], size=LIMIT), *A_VOLUMES[1:]], 3.0)
    layout = topo.layout(KEY_000)
    assert layout.writables == [2] and layout.volumes[1].oversized
    beat(topo, "a", [A_VOLUMES[0], replace(A_VOLUMES[1], size=10), *A_VOLUMES[2:]], 4.0)
    assert layout.writables == [2, 1] and layout.crowded_count == 0
    # A replica turning read-only stops the replicated volume on both copies.
    beat(topo, "b", [replace(B_VOLUMES[0], read_only=True)], 5.0)
    assert topo.layout(KEY_001).writables == []
    # A changed collection moves the volume to the other layout; a missing one loses the node.
    beat(topo, "a", [replace(A_VOLUMES[0], collection="pics"), *A_VOLUMES[2:]], 6.0)
    assert topo.layout_of(1) is topo.layout(KEY_PICS)
    assert topo.layout(KEY_PICS).writables == [6, 1] and topo.lookup(2) == []


def test_a_crowded_estimate_is_cleared_by_the_next_steady_heartbeat() -> None:
    topo = build(CLUSTER)
    layout = topo.layout(KEY_PICS)
    chosen = layout.pick_for_write(1, random.Random(0), 1.0, data_size=950)
    assert chosen is not None and chosen.crowded and layout.crowded_count == 1
    beat(topo, "a", A_VOLUMES, 2.0)
    assert not layout.volumes[6].crowded and layout.crowded_count == 0


class _AlwaysApplies(Topology):
    """The topology before steady heartbeats were cheap: every report goes through the
    layouts. The reference the cheap path must agree with."""

    def _applied(self, report: VolumeReport, previous: VolumeReport, node: DataNode) -> bool:
        return False


def _mutate(rng: random.Random, volumes: dict[int, VolumeReport]) -> None:
    vid = rng.randrange(1, 9)
    old = volumes.get(vid) or VolumeReport(id=vid, replica_placement=rp(rng.choice(["000", "001"])))
    change = rng.randrange(5)
    if change == 0 and vid in volumes:
        del volumes[vid]
    elif change == 1:
        volumes[vid] = replace(
            old, size=rng.choice([0, 100, 899, 901, 950, LIMIT - 1, LIMIT, 2000])
        )
    elif change == 2:
        volumes[vid] = replace(old, read_only=not old.read_only)
    elif change == 3:
        volumes[vid] = replace(old, collection=rng.choice(["", "pics"]))
    else:
        volumes[vid] = replace(old, file_count=old.file_count + 1)


@pytest.mark.parametrize("seed", range(6))
def test_the_cheap_path_agrees_with_applying_every_report(seed: int) -> None:
    """Random heartbeats (mostly steady), assigns, failed writes, deaths and goodbyes, fed to
    both topologies: after every step the layouts are the same, writable order included."""
    rng = random.Random(seed)
    cheap, full = Topology(LIMIT, 5.0), _AlwaysApplies(LIMIT, 5.0)
    rng_cheap, rng_full = random.Random(seed), random.Random(seed)
    names = ["a", "b", "c", "d"]
    held: dict[str, dict[int, VolumeReport]] = {name: {} for name in names}
    now = 0.0
    for _ in range(400):
        now += rng.choice([0.0, 0.5, 2.0, 7.0, 31.0])
        action = rng.random()
        if action < 0.7:
            name = rng.choice(names)
            if rng.random() < 0.3:
                _mutate(rng, held[name])
            hb = heartbeat(
                f"dc{names.index(name) % 2}",
                "r1",
                name,
                {"max": 9, "volumes": list(held[name].values())},
            )
            if rng.random() < 0.02:
                hb = replace(hb, has_no_volumes=True)
            for topo in (cheap, full):
                topo.apply_heartbeat(hb, now)
        elif action < 0.82:
            key = rng.choice([KEY_000, KEY_001, KEY_PICS])
            count, size = rng.choice([1, 5]), rng.choice([1, 60, 200, 950])
            one, other = (
                topo.layout(key).pick_for_write(count, r, now, data_size=size)
                for topo, r in ((cheap, rng_cheap), (full, rng_full))
            )
            assert (one and one.id) == (other and other.id)
        elif action < 0.92:
            vid = rng.randrange(1, 9)
            assert cheap.mark_unwritable(vid, now) == full.mark_unwritable(vid, now)
        else:
            assert cheap.expire_dead(now) == full.expire_dead(now)
        assert snapshot(cheap) == snapshot(full)


def test_a_goodbye_then_the_same_volumes_again_re_registers_them() -> None:
    topo = build(CLUSTER)
    hb: Heartbeat = heartbeat("dc1", "r1", "a", {"max": 9, "volumes": A_VOLUMES})
    topo.apply_heartbeat(replace(hb, has_no_volumes=True), 1.0)
    assert topo.lookup(1) == [] and 1 in topo.lost_volumes
    topo.apply_heartbeat(hb, 2.0)
    assert [n.id for n in topo.lookup(1)] == [node_id("a")] and not topo.lost_volumes
    assert topo.layout(KEY_000).writables == [1, 2] and topo.layout(KEY_001).writables == [5]


def test_locations_version_moves_only_when_a_volume_gains_or_loses_a_holder() -> None:
    topo = build(CLUSTER)
    hb = heartbeat("dc1", "r1", "a", {"max": 9, "volumes": A_VOLUMES})
    version = topo.locations_version
    busier = [replace(v, file_count=v.file_count + 1, size=v.size + 8) for v in A_VOLUMES]
    topo.apply_heartbeat(replace(hb, volumes=tuple(busier)), 1.0)
    topo.apply_heartbeat(hb, 2.0)
    assert topo.locations_version == version  # same holders, other counters
    topo.apply_heartbeat(replace(hb, volumes=tuple(A_VOLUMES[1:])), 3.0)  # volume 1 left "a"
    assert topo.locations_version > version
    version = topo.locations_version
    topo.apply_heartbeat(hb, 4.0)  # and came back
    assert topo.locations_version > version
    version = topo.locations_version
    assert topo.remove_node(node_id("b"), 5.0)  # the second holder of volume 5
    assert topo.locations_version > version
    version = topo.locations_version
    topo.drop_collection("pics", 6.0)
    assert topo.locations_version > version


# ---------------------------------------------------------------- one directory served twice


def _serving(name: str, uuids: tuple[str, ...], volumes: tuple[int, ...] = ()) -> Heartbeat:
    return replace(
        heartbeat("dc1", "r1", name, {"max": 5, "volumes": list(volumes)}),
        location_uuids=uuids,
    )


def test_a_directory_another_live_node_serves_is_refused_and_changes_nothing() -> None:
    topo = Topology(volume_size_limit=LIMIT, pulse_seconds=5.0)
    topo.apply_heartbeat(_serving("a", ("u1", "u2"), (1,)), 0.0)
    before = snapshot(topo)
    with pytest.raises(Conflict, match=r"u2 by a:8080") as refused:
        topo.apply_heartbeat(_serving("copy", ("u2", "u3"), (1, 2)), 1.0)
    assert refused.value.status == 409
    assert refused.value.body()["duplicatedUuids"] == ["u2"]
    assert snapshot(topo) == before and node_id("copy") not in topo.nodes


def test_the_directory_is_free_again_once_its_node_leaves_or_dies() -> None:
    topo = Topology(volume_size_limit=LIMIT, pulse_seconds=5.0)
    topo.apply_heartbeat(_serving("a", ("u1",), (1,)), 0.0)
    topo.apply_heartbeat(_serving("b", ("u2",), (2,)), 0.0)
    topo.apply_heartbeat(_serving("a", ("u1",)).goodbye(), 1.0)
    topo.apply_heartbeat(_serving("a2", ("u1",), (1,)), 2.0)  # restarted on another port
    assert [n.id for n in topo.lookup(1)] == [node_id("a2")]
    topo.apply_heartbeat(_serving("a2", ("u1",), (1,)), 20.0)
    assert topo.expire_dead(20.0) == [node_id("b")]  # silent for more than 3 pulses
    topo.apply_heartbeat(_serving("b2", ("u2",), (2,)), 20.0)
    assert [n.id for n in topo.lookup(2)] == [node_id("b2")]


def test_a_node_may_repeat_and_change_its_own_directories() -> None:
    topo = Topology(volume_size_limit=LIMIT, pulse_seconds=5.0)
    topo.apply_heartbeat(_serving("a", ("u1", "u2")), 0.0)
    topo.apply_heartbeat(_serving("a", ("u1", "u2")), 1.0)
    topo.apply_heartbeat(_serving("a", ("u1",)), 2.0)  # u2 was unmounted
    topo.apply_heartbeat(_serving("b", ("u2",)), 3.0)  # and is served elsewhere now
    assert topo.nodes[node_id("b")].location_uuids == ("u2",)
    with pytest.raises(Conflict):
        topo.apply_heartbeat(_serving("b", ("u1", "u2")), 4.0)


def test_nodes_that_send_no_directories_never_conflict() -> None:
    topo = build(CLUSTER)
    topo.apply_heartbeat(heartbeat("dc1", "r1", "c", {"max": 1}), 1.0)
    assert len(topo.nodes) == 3
