"""The tree of the cluster: data center → rack → data node. What a heartbeat reports
(`Heartbeat`, `VolumeReport`) is the wire codec's (`formats/wire.py`), re-exported here.

Free slots (spec §5.2) are per disk type: `free = max volumes - volumes held`. A rack's or data
center's free count is the sum over its children; they are computed on demand because the tree is
small (tens of nodes) and growth, the only reader, is rare.

Disk types are normalised so that `""` and `"hdd"` are the same type, named `"hdd"`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from seaweed_py.formats.wire import HDD, Heartbeat, VolumeReport, normalize_disk

__all__ = [
    "DEFAULT_DATA_CENTER",
    "DEFAULT_RACK",
    "HDD",
    "DataCenter",
    "DataNode",
    "Heartbeat",
    "Rack",
    "VolumeReport",
    "normalize_disk",
]

DEFAULT_DATA_CENTER = "DefaultDataCenter"
DEFAULT_RACK = "DefaultRack"


class DataNode:
    """One volume server: its address, slots per disk type and the volumes it holds."""

    __slots__ = (
        "_held",
        "data_center",
        "id",
        "ip",
        "last_seen",
        "location_uuids",
        "max_volume_counts",
        "port",
        "public_url",
        "pulse_seconds",
        "rack",
        "volumes",
    )

    def __init__(self, ip: str, port: int, public_url: str, rack: Rack, now: float) -> None:
        self.id = f"{ip}:{port}"
        self.ip = ip
        self.port = port
        self.public_url = public_url or self.id
        self.rack = rack
        self.data_center = rack.data_center
        self.max_volume_counts: dict[str, int] = {}
        self.volumes: dict[int, VolumeReport] = {}
        self._held: dict[str, int] = {}
        self.last_seen = now
        self.pulse_seconds = 0.0
        self.location_uuids: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return self.id

    def set_volumes(self, volumes: Mapping[int, VolumeReport]) -> None:
        self.volumes = dict(volumes)
        self._recount()

    def add_volume(self, report: VolumeReport) -> None:
        self.volumes[report.id] = report
        self._recount()

    def remove_volume(self, vid: int) -> None:
        if self.volumes.pop(vid, None) is not None:
            self._recount()

    def _recount(self) -> None:
        held: dict[str, int] = {}
        for v in self.volumes.values():
            if not v.remote_storage_name:  # a tiered volume's data takes no local slot
                held[v.disk_type] = held.get(v.disk_type, 0) + 1
        self._held = held

    def max_slots(self, disk: str) -> int:
        return self.max_volume_counts.get(disk, 0)

    def held(self, disk: str) -> int:
        return self._held.get(disk, 0)

    def free_slots(self, disk: str) -> int:
        return max(0, self.max_slots(disk) - self.held(disk))

    def total_max(self) -> int:
        return sum(self.max_volume_counts.values())

    def total_free(self) -> int:
        return sum(self.free_slots(d) for d in self.max_volume_counts)

    def __repr__(self) -> str:
        return f"DataNode({self.id} in {self.data_center.id}/{self.rack.id})"


class Rack:
    __slots__ = ("data_center", "id", "nodes")

    def __init__(self, rack_id: str, data_center: DataCenter) -> None:
        self.id = rack_id
        self.data_center = data_center
        self.nodes: dict[str, DataNode] = {}

    def free_slots(self, disk: str) -> int:
        return sum(n.free_slots(disk) for n in self.nodes.values())

    def __repr__(self) -> str:
        return f"Rack({self.data_center.id}/{self.id})"


class DataCenter:
    __slots__ = ("id", "racks")

    def __init__(self, dc_id: str) -> None:
        self.id = dc_id
        self.racks: dict[str, Rack] = {}

    def free_slots(self, disk: str) -> int:
        return sum(r.free_slots(disk) for r in self.racks.values())

    def nodes(self) -> Iterator[DataNode]:
        for rack in self.racks.values():
            yield from rack.nodes.values()

    def __repr__(self) -> str:
        return f"DataCenter({self.id})"
