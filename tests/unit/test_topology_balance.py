"""`volume.balance`'s plan on clusters described as data (topology/balance.py): moves even out
the slot ratios, never put two copies on one node or host, keep the placement, leave tiered
volumes alone, and end."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from seaweed_py.formats.replica_placement import ReplicaPlacement
from seaweed_py.topology.balance import plan_balance
from seaweed_py.topology.repair import (
    ClusterView,
    CopyView,
    NodeView,
    Place,
    VolumeView,
    can_add,
    spread_complete,
)


def cluster(
    nodes: dict[str, tuple[str, int]],
    volumes: dict[int, tuple[str, list[str]]],
    *,
    remote: frozenset[int] = frozenset(),
    hosts: dict[str, str] | None = None,
) -> ClusterView:
    """`nodes`: name -> ("dc/rack", slots); `volumes`: id -> (placement, holders)."""
    used = Counter(n for vid, (_, where) in volumes.items() if vid not in remote for n in where)
    views = {}
    for name, (spot, slots) in nodes.items():
        dc, rack = spot.split("/")
        host = (hosts or {}).get(name, name)
        views[name] = NodeView(Place(name, dc, rack, host), {"hdd": slots - used[name]})
    vols = {
        vid: VolumeView(
            vid,
            ReplicaPlacement.parse(code),
            tuple(CopyView(n, size=vid * 10) for n in where),
            remote=vid in remote,
        )
        for vid, (code, where) in volumes.items()
    }
    return ClusterView(views, vols)


def counts(view: ClusterView, moves: list) -> Counter[str]:
    held = Counter(c.node for v in view.volumes.values() if not v.remote for c in v.copies)
    for m in moves:
        held[m.source] -= 1
        held[m.target] += 1
    return held


def test_a_crowded_node_gives_to_the_empty_ones_smallest_first() -> None:
    view = cluster(
        {"a": ("dc1/r1", 6), "b": ("dc1/r1", 6), "c": ("dc1/r2", 6)},
        {vid: ("000", ["a"]) for vid in range(1, 7)},
    )
    moves = plan_balance(view)
    assert [m.volume for m in moves] == [1, 2, 3, 4]
    assert {m.source for m in moves} == {"a"}
    assert counts(view, moves) == {"a": 2, "b": 2, "c": 2}
    assert plan_balance(view, max_moves=1) == moves[:1]


def test_a_balanced_cluster_plans_nothing() -> None:
    view = cluster(
        {"a": ("dc1/r1", 4), "b": ("dc1/r1", 4)},
        {1: ("000", ["a"]), 2: ("000", ["b"]), 3: ("000", ["a"])},
    )
    assert plan_balance(view) == []  # 2 against 1: moving would only swap them


def test_ratios_count_slots_not_volumes() -> None:
    view = cluster(
        {"big": ("dc1/r1", 8), "small": ("dc1/r1", 2)},
        {1: ("000", ["big"]), 2: ("000", ["big"]), 3: ("000", ["small"])},
    )
    # big is 2/8 full, small 1/2: small gives one to big.
    moves = plan_balance(view)
    assert [(m.source, m.target) for m in moves] == [("small", "big")]


@pytest.mark.parametrize("code", ["001", "010", "100"])
def test_moves_keep_the_placement_and_never_stack_copies(code: str) -> None:
    rng = random.Random(int(code, 2) + 7)
    nodes = {
        f"n{i:02}": (f"dc{1 + i % 2}/r{1 + (i // 2) % 2}", rng.randrange(4, 12)) for i in range(12)
    }
    names = sorted(nodes)
    rp = ReplicaPlacement.parse(code)
    places = {n: Place(n, *nodes[n][0].split("/"), host=n) for n in names}
    volumes: dict[int, tuple[str, list[str]]] = {}
    for vid in range(1, 13):
        first = names[vid % 2]  # n00 and n01 hold a copy of everything
        second = next(n for n in names if n != first and can_add([places[first]], places[n], rp))
        volumes[vid] = (code, [first, second])
    view = cluster(nodes, volumes)
    moves = plan_balance(view)
    assert moves
    where = {vid: set(h) for vid, (_, h) in volumes.items()}
    for m in moves:
        assert m.target not in where[m.volume]
        where[m.volume] = (where[m.volume] - {m.source}) | {m.target}
    for vid, held in where.items():
        assert len(held) == 2
        assert spread_complete([places[n] for n in held], rp), (vid, held)
    spread = [counts(view, moves)[n] / nodes[n][1] for n in names]
    before = [counts(view, [])[n] / nodes[n][1] for n in names]
    assert max(spread) - min(spread) < max(before) - min(before)


def test_no_two_copies_on_one_host_and_tiered_volumes_stay() -> None:
    view = cluster(
        {"a": ("dc1/r1", 4), "b": ("dc1/r1", 4), "c": ("dc1/r1", 4)},
        {1: ("001", ["a", "b"]), 2: ("000", ["a"]), 3: ("000", ["a"])},
        remote=frozenset({2, 3}),
        hosts={"a": "h1", "b": "h2", "c": "h2"},
    )
    # Volume 1 may not go to c (b's host holds a copy); 2 and 3 live in a bucket.
    assert plan_balance(view) == []


def test_filters_by_node_and_volume() -> None:
    view = cluster(
        {"a": ("dc1/r1", 4), "b": ("dc1/r1", 4), "c": ("dc1/r2", 4)},
        {1: ("000", ["a"]), 2: ("000", ["a"]), 3: ("000", ["a"])},
    )
    moves = plan_balance(view, nodes=["a", "c"])
    assert {m.target for m in moves} == {"c"}
    assert [m.volume for m in plan_balance(view, volumes=lambda v: v.id == 3)] == [3]
