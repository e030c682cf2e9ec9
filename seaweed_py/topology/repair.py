"""Re-replication and surplus removal, as data: which copy of a volume goes where, and which
copy goes away (maintenance spec §2, §3.2, §6).

Pure: the master (`master/repair.py`) and `weedpy shell`'s `volume.fix.replication` build a
`ClusterView` (from the master's `Topology`, or from its JSON views) and ask `plan` what to do;
both then carry the actions out with `client/repair.py`. Time comes in as `now`.

Placement rules (the reference's `SatisfyReplicaPlacement`, `SatisfyReplicaCurrentLocation`,
`IsMisplaced`), for a placement `xyz` and the places `R` of the existing copies:

* `can_add(R, T)`: a copy may go to T unless T's node holds one. If T's data center holds no
  copy, yes iff R spans fewer than x+1 data centers. Otherwise T's data center must be one of
  those holding the most copies; within it, if T's rack holds none, yes iff the data center's
  copies span fewer than y+1 racks; else T's rack must be one of its most populated racks, and
  yes iff that rack holds fewer than z+1 copies.
* `spread_complete(R)`: R spans at least x+1 data centers and y+1 racks, and when z > 0 some
  rack holds at least z+1 copies.
* `misplaced(R)`: a copy that fails `can_add` against the others (None when all pass).

What `plan` decides, one action per volume per pass, volumes with the fewest copies first:

| the volume's copies | action |
|---|---|
| fewer than the placement asks, or a spread the placement does not accept | **copy** to a node `can_add` accepts (against the copies without the misplaced one, when one is), from a live holder |
| more than it asks, the spread complete | **trim** one: among the copies whose removal leaves a complete spread of enough copies, the one placement likes least (a misplaced one, else one whose removal leaves the rest well placed, then the node with the fewest free slots) |
| none, or tiered to a bucket | nothing (no source; a tiered volume lives in its bucket) |

A copy waits `delay` seconds after the volume was first seen short (a restarting server must not
cause a copy), a trim `settle` seconds after it was first seen over (the copy just made must be
reported by its server first). A target needs a free slot of the volume's disk type after the
copies already planned or in flight, and at most `per_node` copies in flight; a volume no node
satisfies is `Unplaceable`, reported and never placed against its placement. The trim itself
(`client/repair.py`) first has every survivor pull what the doomed copy holds newer, and proves
it before deleting: trims never lose a write, and never take a volume below its copy count.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from seaweed_py.formats.replica_placement import ReplicaPlacement
from seaweed_py.topology.nodes import normalize_disk
from seaweed_py.topology.topology import Topology

__all__ = [
    "ClusterView",
    "CopyOrder",
    "CopyView",
    "Health",
    "NodeView",
    "Place",
    "RepairClock",
    "RepairPlan",
    "TrimOrder",
    "Unplaceable",
    "VolumeView",
    "can_add",
    "classify",
    "misplaced",
    "plan",
    "spread_complete",
]


@dataclass(frozen=True, slots=True)
class Place:
    """Where a copy lives, or could: the node (`ip:port`), its data center, rack and host."""

    node: str
    data_center: str
    rack: str
    host: str = ""

    def __str__(self) -> str:
        return f"{self.data_center} {self.rack} {self.node}"


@dataclass(frozen=True, slots=True)
class NodeView:
    place: Place
    free: Mapping[str, int] = field(default_factory=dict)
    """Free volume slots by disk type."""

    def free_slots(self, disk: str) -> int:
        return self.free.get(normalize_disk(disk), 0)


@dataclass(frozen=True, slots=True)
class CopyView:
    """One copy of a volume as its server last reported it."""

    node: str
    size: int = 0
    read_only: bool = False
    modified_at_second: int = 0


@dataclass(frozen=True, slots=True)
class VolumeView:
    id: int
    placement: ReplicaPlacement
    copies: tuple[CopyView, ...]
    collection: str = ""
    disk: str = "hdd"
    remote: bool = False
    """Tiered to a bucket: no copy is made or removed."""


@dataclass(frozen=True, slots=True)
class ClusterView:
    """The live nodes and every volume with at least one live copy."""

    nodes: Mapping[str, NodeView]
    volumes: Mapping[int, VolumeView]

    @classmethod
    def of(cls, topology: Topology) -> ClusterView:
        nodes = {
            n.id: NodeView(
                Place(n.id, n.data_center.id, n.rack.id, n.ip),
                {d: n.free_slots(d) for d in n.max_volume_counts},
            )
            for n in topology.nodes.values()
        }
        volumes: dict[int, VolumeView] = {}
        for key, layout in topology.layouts.items():
            for vid, vol in layout.volumes.items():
                reports = [(n, n.volumes.get(vid)) for n in vol.locations]
                copies = tuple(
                    CopyView(n.id, r.size, r.read_only, r.modified_at_second)
                    for n, r in reports
                    if r is not None
                )
                remote = any(r is not None and r.remote_storage_name for _, r in reports)
                volumes[vid] = VolumeView(
                    vid, key.replica_placement, copies, key.collection, key.disk, remote
                )
        return cls(nodes, volumes)

    def places(self, volume: VolumeView) -> list[Place]:
        return [self.nodes[c.node].place for c in volume.copies if c.node in self.nodes]


# ---------------------------------------------------------------------------- placement rules


def can_add(existing: Sequence[Place], target: Place, rp: ReplicaPlacement) -> bool:
    """Whether one more copy may go to `target` (module docstring)."""
    if any(p.node == target.node for p in existing):
        return False
    per_dc = Counter(p.data_center for p in existing)
    if target.data_center not in per_dc:
        return len(per_dc) < rp.diff_data_center + 1
    if per_dc[target.data_center] != max(per_dc.values()):
        return False
    in_dc = [p for p in existing if p.data_center == target.data_center]
    per_rack = Counter(p.rack for p in in_dc)
    if target.rack not in per_rack:
        return len(per_rack) < rp.diff_rack + 1
    if per_rack[target.rack] != max(per_rack.values()):
        return False
    return per_rack[target.rack] < rp.same_rack + 1


def spread_complete(existing: Sequence[Place], rp: ReplicaPlacement) -> bool:
    """Whether the copies span what the placement asks (module docstring)."""
    if len({p.data_center for p in existing}) < rp.diff_data_center + 1:
        return False
    racks = Counter((p.data_center, p.rack) for p in existing)
    if len(racks) < rp.diff_rack + 1:
        return False
    return rp.same_rack == 0 or max(racks.values(), default=0) >= rp.same_rack + 1


def misplaced(existing: Sequence[Place], rp: ReplicaPlacement) -> Place | None:
    """A copy the others would not accept where it is (the last such one), or None."""
    found = None
    for i, p in enumerate(existing):
        if not can_add([*existing[:i], *existing[i + 1 :]], p, rp):
            found = p
    return found


# ---------------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class CopyOrder:
    """Copy volume `volume` from `source` to `target`."""

    volume: int
    source: str
    target: str
    collection: str
    reason: str

    def describe(self) -> str:
        return f"volume {self.volume} {self.reason}: copying from {self.source} to {self.target}"


@dataclass(frozen=True, slots=True)
class TrimOrder:
    """Remove the copy of `volume` on `doomed`, once every node of `keep` holds what it holds."""

    volume: int
    doomed: str
    keep: tuple[str, ...]
    reason: str

    def describe(self) -> str:
        return f"volume {self.volume} {self.reason}: removing the copy on {self.doomed}"


@dataclass(frozen=True, slots=True)
class Unplaceable:
    volume: int
    reason: str

    def describe(self) -> str:
        return f"volume {self.volume}: {self.reason}"


@dataclass
class RepairPlan:
    copies: list[CopyOrder] = field(default_factory=list)
    trims: list[TrimOrder] = field(default_factory=list)
    unplaceable: list[Unplaceable] = field(default_factory=list)

    def actions(self) -> list[CopyOrder | TrimOrder]:
        return [*self.copies, *self.trims]


def _needs_copy(places: Sequence[Place], rp: ReplicaPlacement) -> bool:
    if len(places) < rp.copy_count or not spread_complete(places, rp):
        return True
    return len(places) == rp.copy_count and misplaced(places, rp) is not None


def _reason(places: Sequence[Place], rp: ReplicaPlacement) -> str:
    if len(places) < rp.copy_count:
        return f"replication {rp} has {len(places)} of {rp.copy_count} copies"
    return f"replication {rp} is not well placed [{', '.join(map(str, places))}]"


@dataclass(frozen=True, slots=True)
class Health:
    """The volumes that are not as their placement asks."""

    short: tuple[int, ...] = ()
    """Fewer copies than the placement asks."""
    surplus: tuple[int, ...] = ()
    """More copies than it asks, in a spread it accepts."""
    misplaced: tuple[int, ...] = ()
    """Enough copies (or more) in a spread it does not accept."""


def classify(view: ClusterView) -> Health:
    short, surplus, wrong = [], [], []
    for vol in sorted(view.volumes.values(), key=lambda v: v.id):
        places = view.places(vol)
        rp = vol.placement
        if vol.remote or not places:
            continue
        if len(places) < rp.copy_count:
            short.append(vol.id)
        elif _needs_copy(places, rp):
            wrong.append(vol.id)
        elif len(places) > rp.copy_count:
            surplus.append(vol.id)
    return Health(tuple(short), tuple(surplus), tuple(wrong))


def plan(
    view: ClusterView,
    *,
    due_short: Collection[int] | None = None,
    due_surplus: Collection[int] | None = None,
    busy: Collection[int] = (),
    in_flight: Mapping[str, int] | None = None,
    per_node: int = 1,
    max_copies: int | None = None,
    volumes: Collection[int] | None = None,
) -> RepairPlan:
    """What to do now. `due_short`/`due_surplus`: the volumes whose wait has passed
    (`RepairClock`; None: all, as the shell asks); `busy`: volumes with an action in flight
    (left alone); `in_flight`: copies under way per target node (each holds a reserved slot);
    `max_copies`: how many new copies at most; `volumes`: only these (None: every one)."""
    result = RepairPlan()
    flying = Counter(in_flight or {})
    reserved: Counter[tuple[str, str]] = Counter()
    for vol in sorted(view.volumes.values(), key=lambda v: _urgency(view, v)):
        places = view.places(vol)
        rp = vol.placement
        if vol.remote or not places or vol.id in busy:
            continue
        if volumes is not None and vol.id not in volumes:
            continue
        if _needs_copy(places, rp):
            if due_short is not None and vol.id not in due_short:
                continue
            if max_copies is not None and len(result.copies) >= max_copies:
                continue
            order = _copy(view, vol, places, flying, reserved, per_node)
            if isinstance(order, CopyOrder):
                flying[order.target] += 1
                reserved[order.target, normalize_disk(vol.disk)] += 1
                result.copies.append(order)
            elif order is not None:
                result.unplaceable.append(order)
        elif len(places) > rp.copy_count:
            if due_surplus is not None and vol.id not in due_surplus:
                continue
            trim = _trim(view, vol, places)
            if trim is not None:
                result.trims.append(trim)
    return result


def _urgency(view: ClusterView, vol: VolumeView) -> tuple[float, int, int]:
    """Fewest copies (relative to what the placement asks) first."""
    have = sum(1 for c in vol.copies if c.node in view.nodes)
    return have / vol.placement.copy_count, have, vol.id


def _copy(
    view: ClusterView,
    vol: VolumeView,
    places: list[Place],
    flying: Counter[str],
    reserved: Counter[tuple[str, str]],
    per_node: int,
) -> CopyOrder | Unplaceable | None:
    rp, disk = vol.placement, normalize_disk(vol.disk)
    base = places
    if len(places) >= rp.copy_count:
        wrong = misplaced(places, rp)
        if wrong is not None:
            base = [p for p in places if p is not wrong]
    hosts = {p.host for p in places}
    fits = [
        n
        for n in view.nodes.values()
        if n.free_slots(disk) - reserved[n.place.node, disk] > 0
        and can_add(base, n.place, rp)
        and all(p.node != n.place.node for p in places)
    ]
    if not fits:
        return Unplaceable(
            vol.id,
            f"no node with a free {disk} slot satisfies replication {rp} beside "
            f"[{', '.join(map(str, places))}]",
        )
    free = [n for n in fits if flying[n.place.node] < per_node]
    if not free:
        return None  # every fitting node is busy: next pass
    target = min(
        free,
        key=lambda n: (
            n.place.host in hosts,  # another machine first: copies on one host share its fate
            -(n.free_slots(disk) - reserved[n.place.node, disk]),
            n.place.node,
        ),
    )
    source = _source(view, vol)
    return CopyOrder(vol.id, source, target.place.node, vol.collection, _reason(places, rp))


def _source(view: ClusterView, vol: VolumeView) -> str:
    """The live copy to copy from: writable first, then the largest, then the newest."""
    live = [c for c in vol.copies if c.node in view.nodes]
    best = min(live, key=lambda c: (c.read_only, -c.size, -c.modified_at_second, c.node))
    return best.node


def _trim(view: ClusterView, vol: VolumeView, places: list[Place]) -> TrimOrder | None:
    rp = vol.placement
    candidates = []
    for p in places:
        rest = [q for q in places if q is not p]
        if len(rest) < rp.copy_count or not spread_complete(rest, rp):
            continue
        node = view.nodes[p.node]
        candidates.append(
            (
                can_add(rest, p, rp),  # a copy the others would not accept goes first
                misplaced(rest, rp) is not None,  # then one whose removal leaves them well placed
                node.free_slots(vol.disk),  # then where slots are scarcest
                p.node,
                p,
                rest,
            )
        )
    if not candidates:
        return None
    *_, doomed, rest = min(candidates)
    reason = f"replication {rp} has {len(places)} of {rp.copy_count} copies"
    return TrimOrder(vol.id, doomed.node, tuple(q.node for q in rest), reason)


# ---------------------------------------------------------------------------- timing


class RepairClock:
    """When each volume was first seen short or over, so that copies wait `delay` seconds
    (a server that restarts, or a master warming up, must not cause copies) and trims `settle`
    seconds (the new copy's server reports it first)."""

    def __init__(self, delay: float, settle: float) -> None:
        self.delay = delay
        self.settle = settle
        self._short: dict[int, float] = {}
        self._over: dict[int, float] = {}

    def observe(self, health: Health, now: float) -> tuple[set[int], set[int]]:
        """Note the volumes `health` lists; the ones whose wait has passed: (due for a copy,
        due for a trim)."""
        return (
            _due(self._short, [*health.short, *health.misplaced], now, self.delay),
            _due(self._over, health.surplus, now, self.settle),
        )

    def short_since(self, vid: int) -> float | None:
        return self._short.get(vid)


def _due(since: dict[int, float], vids: Iterable[int], now: float, wait: float) -> set[int]:
    current = set(vids)
    for vid in list(since):
        if vid not in current:
            del since[vid]
    for vid in current:
        since.setdefault(vid, now)
    return {vid for vid in current if now - since[vid] >= wait}
