"""Which volumes `volume.balance` moves, as data (pure; the shell carries the moves out).

Load is counted in volume slots: a node's ratio is its local (not tiered) volumes over its
slots (used + free). Repeatedly, the node with the highest ratio gives one volume to the node
with the lowest ratio that can take one, as long as the taker's ratio after the move stays
below the giver's before it (equal slot counts: the two differ by at least two volumes), so
every move narrows the spread and the plan ends. The volume moved is the smallest of the
giver's that the taker may hold (a "good move", maintenance spec §2): the taker holds no copy
of it, no other copy lives on the taker's host, and the placement accepts the taker beside the
volume's other copies. Tiered volumes never move.

The reference weighs bytes (a node with less than one size limit of data counts as empty, so
small clusters never move: docs/compat.md); slots are what weedpy's placement and growth count.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from seaweed_py.topology.repair import ClusterView, VolumeView, can_add

__all__ = ["MoveOrder", "plan_balance"]


@dataclass(frozen=True, slots=True)
class MoveOrder:
    volume: int
    collection: str
    source: str
    target: str
    source_ratio: float
    target_ratio: float
    """The target's ratio once the volume is there."""

    def describe(self) -> str:
        name = f"{self.collection}_{self.volume}" if self.collection else str(self.volume)
        return f"moving volume {name} {self.source} => {self.target}"


def plan_balance(
    view: ClusterView,
    *,
    nodes: Collection[str] | None = None,
    volumes: Callable[[VolumeView], bool] | None = None,
    max_moves: int = 0,
) -> list[MoveOrder]:
    """The moves that even out the slot ratios of `nodes` (None: every node), moving only
    the volumes `volumes` accepts (None: every one); at most `max_moves` (0: no limit)."""
    chosen = [n for n in view.nodes if nodes is None or n in nodes]
    held: dict[str, set[int]] = {n: set() for n in chosen}
    slots: dict[str, int] = {}
    for vol in view.volumes.values():
        if vol.remote:
            continue
        for c in vol.copies:
            if c.node in held:
                held[c.node].add(vol.id)
    for n in chosen:
        slots[n] = len(held[n]) + view.nodes[n].free_slots("hdd")
    holders = {
        vid: {c.node for c in vol.copies if c.node in view.nodes}
        for vid, vol in view.volumes.items()
    }
    size = {vid: max((c.size for c in vol.copies), default=0) for vid, vol in view.volumes.items()}
    movable = {
        vid
        for vid, vol in view.volumes.items()
        if not vol.remote and (volumes is None or volumes(vol))
    }
    usable = [n for n in chosen if slots[n] > 0]
    moves: list[MoveOrder] = []
    # Each move lowers the giver below its ratio and keeps the taker below it: bounded anyway.
    for _ in range(sum(len(v) for v in held.values()) + 1):
        if max_moves and len(moves) >= max_moves:
            break
        move = _next_move(view, usable, held, slots, holders, size, movable)
        if move is None:
            break
        moves.append(move)
        held[move.source].discard(move.volume)
        held[move.target].add(move.volume)
        holders[move.volume] = (holders[move.volume] - {move.source}) | {move.target}
    return moves


def _ratio(count: int, slots: int) -> float:
    return count / slots


def _next_move(
    view: ClusterView,
    nodes: list[str],
    held: dict[str, set[int]],
    slots: dict[str, int],
    holders: dict[int, set[str]],
    size: dict[int, int],
    movable: set[int],
) -> MoveOrder | None:
    by_ratio = sorted(nodes, key=lambda n: (_ratio(len(held[n]), slots[n]), n))
    for source in reversed(by_ratio):
        src_ratio = _ratio(len(held[source]), slots[source])
        candidates = sorted((v for v in held[source] if v in movable), key=lambda v: (size[v], v))
        for target in by_ratio:
            if target == source or len(held[target]) >= slots[target]:
                continue
            dst_next = _ratio(len(held[target]) + 1, slots[target])
            if dst_next >= src_ratio:
                break  # the takers after this one are fuller still
            for vid in candidates:
                if _good_move(view, vid, source, target, holders[vid]):
                    vol = view.volumes[vid]
                    return MoveOrder(vid, vol.collection, source, target, src_ratio, dst_next)
    return None


def _good_move(view: ClusterView, vid: int, source: str, target: str, where: set[str]) -> bool:
    if target in where:
        return False
    rest = [view.nodes[n].place for n in sorted(where) if n != source and n in view.nodes]
    dest = view.nodes[target].place
    if any(p.host == dest.host for p in rest):
        return False
    return can_add(rest, dest, view.volumes[vid].placement)
