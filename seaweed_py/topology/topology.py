"""The master's model of the cluster, rebuilt from heartbeats (spec §5, §7.3).

Pure: no I/O, no asyncio; time comes in as `now` arguments and randomness as a `random.Random`.
The master daemon feeds it heartbeats, asks it where a volume lives, which volume takes the next
write and where a new volume should go, and commits grown volumes once every replica server has
confirmed them.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, replace

from seaweed_py.errors import Conflict
from seaweed_py.formats.replica_placement import ReplicaPlacement
from seaweed_py.topology.layout import LayoutKey, VolumeLayout
from seaweed_py.topology.nodes import (
    DEFAULT_DATA_CENTER,
    DEFAULT_RACK,
    DataCenter,
    DataNode,
    Heartbeat,
    Rack,
    VolumeReport,
    normalize_disk,
)
from seaweed_py.topology.placement import PlacementRequest, find_slots_for_one_volume

__all__ = ["DEAD_AFTER_PULSES", "GrowthConfig", "Topology", "layout_key_of"]

DEAD_AFTER_PULSES = 3
"""A node silent for this many pulses is dead: its volumes lose that location."""


@dataclass(frozen=True, slots=True)
class GrowthConfig:
    """How many logical volumes one automatic growth creates, by copy count (spec §5.4)."""

    copy_1: int = 7
    copy_2: int = 6
    copy_3: int = 3
    copy_other: int = 1
    crowded_ratio: float = 0.9

    def count_for(self, copy_count: int) -> int:
        if copy_count == 1:
            return self.copy_1
        if copy_count == 2:
            return self.copy_2
        if copy_count == 3:
            return self.copy_3
        return self.copy_other


def layout_key_of(report: VolumeReport) -> LayoutKey:
    return LayoutKey(
        report.collection, report.replica_placement, report.ttl, normalize_disk(report.disk_type)
    )


class Topology:
    """Data centers → racks → data nodes → volumes, and the volume layouts."""

    def __init__(
        self,
        volume_size_limit: int,
        pulse_seconds: float = 5.0,
        growth: GrowthConfig | None = None,
    ) -> None:
        self.volume_size_limit = volume_size_limit
        self.pulse_seconds = pulse_seconds
        self.growth = growth or GrowthConfig()
        self.data_centers: dict[str, DataCenter] = {}
        self.nodes: dict[str, DataNode] = {}
        self.layouts: dict[LayoutKey, VolumeLayout] = {}
        self._vid_layout: dict[int, VolumeLayout] = {}
        # Volumes whose last holder left the topology (died or stopped) while holding them:
        # unreachable rather than gone, so lookups answer 503, not 404 (scenario 11).
        self.lost_volumes: set[int] = set()
        # Data directory uuid (`vol_dir.uuid`) → the node serving it.
        self._directories: dict[str, DataNode] = {}
        self.max_volume_id = 0
        self.locations_version = 0
        """Bumped whenever a volume gains or loses a location: volume servers that cache
        lookups drop them when the heartbeat answer carries a new value."""

    # ------------------------------------------------------------ layouts

    def layout(self, key: LayoutKey) -> VolumeLayout:
        """The layout for `key`, created empty on first use."""
        layout = self.layouts.get(key)
        if layout is None:
            layout = self.layouts[key] = VolumeLayout(
                key, self.volume_size_limit, self.growth.crowded_ratio
            )
        return layout

    def layout_of(self, vid: int) -> VolumeLayout | None:
        return self._vid_layout.get(vid)

    def lookup(self, vid: int, collection: str = "") -> list[DataNode]:
        """The nodes holding `vid` (empty when unknown or not in `collection`, if given)."""
        layout = self._vid_layout.get(vid)
        if layout is None or (collection and layout.key.collection != collection):
            return []
        return layout.locations(vid)

    def collections(self) -> set[str]:
        return {key.collection for key, layout in self.layouts.items() if layout.volumes}

    def volume_ids(self) -> Iterator[int]:
        return iter(self._vid_layout)

    # ------------------------------------------------------------ heartbeats

    def apply_heartbeat(self, hb: Heartbeat, now: float) -> DataNode | None:
        """Replace what we knew of the sending node with its full state.

        A heartbeat with `has_no_volumes` is a graceful goodbye: the node is dropped at once.
        One naming a data directory (`location_uuids`) that another live node serves is refused
        with `Conflict` and changes nothing: two servers of one directory would each report its
        volumes as their own copy.
        """
        if hb.has_no_volumes:
            self.remove_node(hb.node_id, now)
            return None
        self._check_directories(hb)
        node = self._place_node(hb, now)
        self._claim_directories(node, hb.location_uuids)
        node.max_volume_counts = {normalize_disk(d): c for d, c in hb.max_volume_counts.items()}
        node.last_seen = now
        node.pulse_seconds = hb.pulse_seconds
        reports = {v.id: _normalized(v) for v in hb.volumes}
        last = node.volumes  # set_volumes below rebinds node.volumes, this dict stays as is
        for vid in last.keys() - reports.keys():
            self._remove_location(vid, node, now)
        node.set_volumes(reports)
        for report in reports.values():
            previous = last.get(report.id)
            if previous is None or not self._applied(report, previous, node):
                self._add_location(report, node, now)
        return node

    def _applied(self, report: VolumeReport, previous: VolumeReport, node: DataNode) -> bool:
        """Whether `_add_location(report, node)` would change nothing, so a steady heartbeat
        can skip it: `node` is already a location of the volume in the layout of `report`'s key
        and the volume's state was computed from a report with the same size and read-only flag.

        A volume whose state waits on time or on an assign's estimate (marked full, held after
        a failed replicated write, crowded by estimate rather than by reported size) is never
        skipped: `VolumeLayout.refresh` is what clears those, at the next heartbeat."""
        if report.size != previous.size or report.read_only != previous.read_only:
            return False
        layout = self._vid_layout.get(report.id)
        if layout is None:
            return False
        vol = layout.volumes.get(report.id)
        key = layout.key
        return (
            vol is not None
            and vol.full_since is None
            and vol.unwritable_until is None
            and vol.crowded == (vol.size > layout.crowded_ratio * layout.volume_size_limit)
            and key.collection == report.collection
            and key.replica_placement == report.replica_placement
            and key.ttl == report.ttl
            and key.disk == report.disk_type
            and node in vol.locations
        )

    def _place_node(self, hb: Heartbeat, now: float) -> DataNode:
        rack = self._rack(hb.data_center or DEFAULT_DATA_CENTER, hb.rack or DEFAULT_RACK)
        node = self.nodes.get(hb.node_id)
        if node is None:
            node = DataNode(hb.ip, hb.port, hb.public_url, rack, now)
            self.nodes[node.id] = node
            rack.nodes[node.id] = node
        elif node.rack is not rack:  # relabelled: move it, volumes and all
            self._detach(node)
            node.rack, node.data_center = rack, rack.data_center
            self.nodes[node.id] = node
            rack.nodes[node.id] = node
        node.public_url = hb.public_url or node.id
        return node

    def _check_directories(self, hb: Heartbeat) -> None:
        held = self._directories
        taken = {
            uuid: held[uuid].id
            for uuid in hb.location_uuids
            if uuid in held and held[uuid].id != hb.node_id
        }
        if taken:
            where = ", ".join(f"{uuid} by {node}" for uuid, node in sorted(taken.items()))
            raise Conflict(
                f"volume server {hb.node_id} serves a data directory that another live volume "
                f"server serves: {where} (vol_dir.uuid); it is refused until that server "
                "leaves or misses 3 pulses",
                extra={"duplicatedUuids": sorted(taken)},
            )

    def _claim_directories(self, node: DataNode, uuids: tuple[str, ...]) -> None:
        if node.location_uuids == uuids:
            return
        self._release_directories(node)
        node.location_uuids = uuids
        for uuid in uuids:
            self._directories[uuid] = node

    def _release_directories(self, node: DataNode) -> None:
        for uuid in node.location_uuids:
            if self._directories.get(uuid) is node:
                del self._directories[uuid]
        node.location_uuids = ()

    def _rack(self, dc_id: str, rack_id: str) -> Rack:
        dc = self.data_centers.get(dc_id)
        if dc is None:
            dc = self.data_centers[dc_id] = DataCenter(dc_id)
        rack = dc.racks.get(rack_id)
        if rack is None:
            rack = dc.racks[rack_id] = Rack(rack_id, dc)
        return rack

    def _add_location(self, report: VolumeReport, node: DataNode, now: float) -> None:
        layout = self.layout(layout_key_of(report))
        previous = self._vid_layout.get(report.id)
        if previous is not None and previous is not layout:
            previous.remove_location(report.id, node, now)
        self._vid_layout[report.id] = layout
        self.lost_volumes.discard(report.id)
        if node not in layout.locations(report.id):
            self.locations_version += 1
        layout.add_location(report.id, node, now)
        if report.id > self.max_volume_id:
            self.max_volume_id = report.id

    def _remove_location(self, vid: int, node: DataNode, now: float) -> None:
        layout = self._vid_layout.get(vid)
        if layout is None:
            return
        if node in layout.locations(vid):
            self.locations_version += 1
        layout.remove_location(vid, node, now)
        if vid not in layout.volumes:
            del self._vid_layout[vid]

    def remove_node(self, node_id: str, now: float) -> bool:
        """Forget a node: its volumes lose that location (and stop being writable if they fall
        below their copy count)."""
        node = self.nodes.get(node_id)
        if node is None:
            return False
        for vid in list(node.volumes):
            self._remove_location(vid, node, now)
            if vid not in self._vid_layout:
                self.lost_volumes.add(vid)
        node.set_volumes({})
        self._release_directories(node)
        self._detach(node)
        return True

    def forget_copy(self, vid: int, node_id: str, now: float) -> None:
        """A copy deleted on the master's order: forgotten now rather than at its server's next
        heartbeat, so that no decision counts it meanwhile."""
        node = self.nodes.get(node_id)
        if node is None or vid not in node.volumes:
            return
        self._remove_location(vid, node, now)
        node.remove_volume(vid)

    def _detach(self, node: DataNode) -> None:
        rack, dc = node.rack, node.data_center
        rack.nodes.pop(node.id, None)
        self.nodes.pop(node.id, None)
        if not rack.nodes:
            dc.racks.pop(rack.id, None)
        if not dc.racks:
            self.data_centers.pop(dc.id, None)

    def expire_dead(self, now: float) -> list[str]:
        """Drop every node that missed `DEAD_AFTER_PULSES` pulses (its own, if it heartbeats
        slower than the master's pulse); return their ids."""
        base = self.pulse_seconds
        dead = [
            nid
            for nid, node in self.nodes.items()
            if now - node.last_seen > DEAD_AFTER_PULSES * max(base, node.pulse_seconds)
        ]
        for nid in dead:
            self.remove_node(nid, now)
        return dead

    # ------------------------------------------------------------ writes and growth

    def mark_unwritable(self, vid: int, now: float) -> bool:
        layout = self._vid_layout.get(vid)
        return layout is not None and layout.mark_unwritable(vid, now, self.pulse_seconds)

    def set_vacuuming(self, vid: int, vacuuming: bool, now: float) -> bool:
        """See `VolumeLayout.set_vacuuming`."""
        layout = self._vid_layout.get(vid)
        return layout is not None and layout.set_vacuuming(vid, vacuuming, now)

    def find_slots(
        self,
        replica_placement: ReplicaPlacement,
        disk: str,
        rng: random.Random,
        data_center: str = "",
        rack: str = "",
        data_node: str = "",
    ) -> list[DataNode]:
        """Nodes for one new volume, main copy first; raises `NoFreeSlots`."""
        req = PlacementRequest(
            replica_placement, normalize_disk(disk), data_center, rack, data_node
        )
        ordered = sorted(self.data_centers.values(), key=lambda d: d.id)
        return find_slots_for_one_volume(ordered, req, rng)

    def growth_count(self, copy_count: int, writable_volume_count: int = 0) -> int:
        """Logical volumes to grow when an assign finds nothing writable."""
        if writable_volume_count > 0:
            return writable_volume_count
        return self.growth.count_for(copy_count)

    def background_growth(self) -> list[tuple[LayoutKey, int]]:
        """Layouts that should grow before an assign runs dry, and by how many volumes:
        up to the `writableVolumeCount` last asked for, or a normal growth when every writable
        volume is crowded (spec §5.4). Layouts nobody wrote to (no volumes) are left alone."""
        plans = []
        for key, layout in self.layouts.items():
            if not layout.volumes:
                continue
            writable = len(layout.writables)
            wanted = layout.wanted_writable
            if wanted and writable < wanted:
                plans.append((key, wanted - writable))
            elif writable and layout.crowded_count == writable:
                plans.append((key, self.growth_count(layout.copy_count, wanted)))
        return plans

    def commit_volume(self, vid: int, key: LayoutKey, nodes: list[DataNode], now: float) -> None:
        """Register a volume every node in `nodes` has confirmed creating (writable at once)."""
        report = VolumeReport(
            id=vid,
            collection=key.collection,
            replica_placement=key.replica_placement,
            ttl=key.ttl,
            disk_type=key.disk,
        )
        for node in nodes:
            if self.nodes.get(node.id) is not node:
                continue  # died while allocating; its heartbeat will re-register it
            if vid not in node.volumes:
                node.add_volume(report)
            self._add_location(node.volumes[vid], node, now)

    def drop_collection(self, collection: str, now: float) -> None:
        """Forget every volume of `collection` (after the volume servers deleted them)."""
        for key in [k for k in self.layouts if k.collection == collection]:
            self.locations_version += 1
            layout = self.layouts.pop(key)
            for vid, vol in layout.volumes.items():
                for node in vol.locations:
                    node.remove_volume(vid)
                self._vid_layout.pop(vid, None)
                self.lost_volumes.discard(vid)

    def nodes_of_collection(self, collection: str) -> list[DataNode]:
        seen: dict[str, DataNode] = {}
        for key, layout in self.layouts.items():
            if key.collection != collection:
                continue
            for vol in layout.volumes.values():
                for node in vol.locations:
                    seen.setdefault(node.id, node)
        return list(seen.values())

    # ------------------------------------------------------------ totals

    def max_slots(self) -> int:
        return sum(n.total_max() for n in self.nodes.values())

    def free_slots(self, disk: str | None = None) -> int:
        if disk is None:
            return sum(n.total_free() for n in self.nodes.values())
        d = normalize_disk(disk)
        return sum(n.free_slots(d) for n in self.nodes.values())


def _normalized(report: VolumeReport) -> VolumeReport:
    disk = normalize_disk(report.disk_type)
    if disk == report.disk_type:
        return report
    return replace(report, disk_type=disk)
