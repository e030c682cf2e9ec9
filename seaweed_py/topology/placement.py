"""Choosing the data nodes for one new volume (spec §5.3).

For a replica placement `xyz` (x other data centers, y other racks, z other nodes in the rack):

1. order the data centers with free slots by a weighted random draw (weight = free slots) and
   take the first that can hold the main copy (the requested `dataCenter`, at least y+1 racks,
   y+z+1 free slots, y+1 racks with z+1 nodes that have a free slot), plus x others;
2. in the main data center, likewise the main rack (the requested `rack`, z+1 nodes with a free
   slot) plus y other racks;
3. in the main rack, the main node (the requested `dataNode`) plus z others, preferring other
   hosts than the main node's (unlike the reference, which filters only at this level, a
   requested `dataNode` also steers the choice of data center and rack);
4. one node in each other rack and in each other data center, drawn by free slots.

The result is ordered main node, same-rack nodes, other-rack nodes, other-data-center nodes; the
first one is the location assigns hand out. Failure raises `NoFreeSlots` saying what is missing.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from seaweed_py.errors import NoFreeSlots
from seaweed_py.formats.replica_placement import ReplicaPlacement
from seaweed_py.topology.nodes import DataCenter, DataNode, Rack

__all__ = ["PlacementRequest", "find_slots_for_one_volume"]


@dataclass(frozen=True, slots=True)
class PlacementRequest:
    replica_placement: ReplicaPlacement
    disk: str
    data_center: str = ""
    rack: str = ""
    data_node: str = ""


class _Named(Protocol):
    @property
    def id(self) -> str: ...


_T = TypeVar("_T", bound=_Named)


def _weighted_order(
    items: Sequence[_T], weight: Callable[[_T], int], rng: random.Random
) -> list[_T]:
    """Weighted random permutation without replacement (Efraimidis-Spirakis keys)."""
    keyed = [(rng.random() ** (1.0 / weight(it)), i) for i, it in enumerate(items)]
    keyed.sort(reverse=True)
    return [items[i] for _, i in keyed]


def _pick_by_weight(
    level: str,
    children: Sequence[_T],
    n: int,
    weight: Callable[[_T], int],
    unfit: Callable[[_T], str | None],
    rng: random.Random,
) -> tuple[_T, list[_T]]:
    """Main child (first in weighted order that `unfit` accepts) and n-1 other children."""
    candidates = [c for c in children if weight(c) > 0]
    if len(candidates) < n:
        raise NoFreeSlots(
            f"Only has {len(candidates)} {level} with free slots, not enough for {n}."
        )
    order = _weighted_order(candidates, weight, rng)
    errors: list[str] = []
    for child in order:
        why = unfit(child)
        if why is None:
            return child, [c for c in order if c is not child][: n - 1]
        errors.append(f"{child.id}:{why}")
    raise NoFreeSlots("No matching data node found! \n" + "\n".join(errors))


def _one_node_by_weight(nodes: Sequence[DataNode], disk: str, rng: random.Random) -> DataNode:
    free = [n for n in nodes if n.free_slots(disk) > 0]
    return _weighted_order(free, lambda n: n.free_slots(disk), rng)[0]


def find_slots_for_one_volume(
    data_centers: Sequence[DataCenter], req: PlacementRequest, rng: random.Random
) -> list[DataNode]:
    """The nodes that should each hold one replica of a new volume, main copy first."""
    rp, disk = req.replica_placement, req.disk
    x, y, z = rp.diff_data_center, rp.diff_rack, rp.same_rack

    def dc_unfit(dc: DataCenter) -> str | None:
        if req.data_center and dc.id != req.data_center:
            return f"Not matching preferred data center:{req.data_center}"
        if req.data_node and not any(n.id == req.data_node for n in dc.nodes()):
            return f"Not holding preferred data node:{req.data_node}"
        if len(dc.racks) < y + 1:
            return f"Only has {len(dc.racks)} racks, not enough for {y + 1}."
        free = dc.free_slots(disk)
        if free < y + z + 1:
            return f"Free:{free} < Expected:{y + z + 1}"
        able = sum(1 for r in dc.racks.values() if _nodes_with_free(r, disk) >= z + 1)
        if able < y + 1:
            return (
                f"Only has {able} racks with at least {z + 1} data nodes with free slots,"
                f" not enough for {y + 1}."
            )
        return None

    def rack_unfit(rack: Rack) -> str | None:
        if req.rack and rack.id != req.rack:
            return f"Not matching preferred rack:{req.rack}"
        if req.data_node and req.data_node not in rack.nodes:
            return f"Not holding preferred data node:{req.data_node}"
        free = rack.free_slots(disk)
        if free < z + 1:
            return f"Free:{free} < Expected:{z + 1}"
        able = _nodes_with_free(rack, disk)
        if able < z + 1:
            return f"Only has {able} data nodes with free slots, not enough for {z + 1}."
        return None

    def node_unfit(node: DataNode) -> str | None:
        if req.data_node and node.id != req.data_node:
            return f"Not matching preferred data node:{req.data_node}"
        return None

    main_dc, other_dcs = _pick_by_weight(
        "data centers", list(data_centers), x + 1, lambda d: d.free_slots(disk), dc_unfit, rng
    )
    main_rack, other_racks = _pick_by_weight(
        "racks", list(main_dc.racks.values()), y + 1, lambda r: r.free_slots(disk), rack_unfit, rng
    )
    # The rack filter guaranteed z+1 nodes with free slots; order all of them so the other
    # replicas can prefer other hosts than the main one.
    main_node, ordered = _pick_by_weight(
        "data nodes",
        list(main_rack.nodes.values()),
        max(z + 1, _nodes_with_free(main_rack, disk)),
        lambda n: n.free_slots(disk),
        node_unfit,
        rng,
    )
    # Other hosts first: two replicas on one machine share its fate.
    same_rack = sorted(ordered, key=lambda n: n.ip == main_node.ip)[:z]
    picked = [main_node, *same_rack]
    picked += [_one_node_by_weight(list(r.nodes.values()), disk, rng) for r in other_racks]
    for dc in other_dcs:
        racks = [r for r in dc.racks.values() if r.free_slots(disk) > 0]
        rack = _weighted_order(racks, lambda r: r.free_slots(disk), rng)[0]
        picked.append(_one_node_by_weight(list(rack.nodes.values()), disk, rng))
    return picked


def _nodes_with_free(rack: Rack, disk: str) -> int:
    return sum(1 for n in rack.nodes.values() if n.free_slots(disk) > 0)
