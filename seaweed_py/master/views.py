"""What the status endpoints show: the reference's JSON shapes (field names and order as `weed`
4.48 prints them). The HTML page at `/` is `master/ui.py`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from seaweed_py.master.params import placement_object
from seaweed_py.topology import DataNode, Topology, VolumeLayout, VolumeReport

__all__ = [
    "cluster_status",
    "collection_info",
    "dir_status",
    "layouts_in_order",
    "nodes_in_order",
    "vol_status",
    "volume_id_runs",
]

_MAX_LISTED_IDS = 100


def volume_id_runs(ids: Iterable[int]) -> str:
    """`" 1-3 5 7-10"`: the reference's space-prefixed run-length list (at most 100 ids)."""
    ordered = sorted(ids)
    truncated = len(ordered) > _MAX_LISTED_IDS
    ordered = ordered[:_MAX_LISTED_IDS]
    runs: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        runs.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return " " + " ".join(runs) + (" ..." if truncated else "")


def nodes_in_order(topo: Topology) -> Iterable[tuple[str, str, list[DataNode]]]:
    for dc_id in sorted(topo.data_centers):
        dc = topo.data_centers[dc_id]
        for rack_id in sorted(dc.racks):
            yield dc_id, rack_id, sorted(dc.racks[rack_id].nodes.values(), key=lambda n: n.url)


def layouts_in_order(topo: Topology) -> list[VolumeLayout]:
    return sorted(
        topo.layouts.values(),
        key=lambda lay: (
            lay.key.collection,
            str(lay.key.replica_placement),
            str(lay.key.ttl),
            lay.key.disk,
        ),
    )


def dir_status(topo: Topology, topology_id: str, version: str) -> dict[str, Any]:
    racks_of: dict[str, list[dict[str, Any]]] = {dc_id: [] for dc_id in sorted(topo.data_centers)}
    for dc_id, rack_id, nodes in nodes_in_order(topo):
        racks_of[dc_id].append(
            {
                "Id": rack_id,
                "DataNodes": [
                    {
                        "Url": n.url,
                        "PublicUrl": n.public_url,
                        "Volumes": len(n.volumes),
                        "EcShards": 0,
                        "Max": n.total_max(),
                        "VolumeIds": volume_id_runs(n.volumes),
                    }
                    for n in nodes
                ],
            }
        )
    data_centers = [{"Id": dc_id, "Racks": racks} for dc_id, racks in racks_of.items()]
    layouts = [
        {
            "replication": str(lay.key.replica_placement),
            "ttl": str(lay.key.ttl),
            "writables": list(lay.writables) or None,
            "collection": lay.key.collection,
            "diskType": lay.key.disk,
        }
        for lay in layouts_in_order(topo)
    ]
    return {
        "Topology": {
            "Max": topo.max_slots(),
            "Free": topo.free_slots(),
            "DataCenters": data_centers,
            "Layouts": layouts,
        },
        "TopologyId": topology_id,
        "Version": version,
    }


def _volume_info(v: VolumeReport) -> dict[str, Any]:
    return {
        "Collection": v.collection,
        "DiskType": "" if v.disk_type == "hdd" else v.disk_type,
        "RemoteStorageName": v.remote_storage_name,
        "ReplicaPlacement": placement_object(v.replica_placement),
        "Ttl": {"Count": v.ttl.count, "Unit": v.ttl.unit},
        "Size": v.size,
        "DeletedByteCount": v.deleted_byte_count,
        "ModifiedAtSecond": v.modified_at_second,
        "Id": v.id,
        "DiskId": 0,
        "CompactRevision": v.compact_revision,
        "FileCount": v.file_count,
        "DeleteCount": v.delete_count,
        "Version": v.version,
        "ReadOnly": v.read_only,
        "ReadOnlyCanDelete": bool(v.remote_storage_name),
    }


def vol_status(topo: Topology, version: str) -> dict[str, Any]:
    dcs: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = {}
    for dc_id, rack_id, nodes in nodes_in_order(topo):
        rack = dcs.setdefault(dc_id, {}).setdefault(rack_id, {})
        for n in nodes:
            rack[n.url] = [_volume_info(n.volumes[vid]) for vid in sorted(n.volumes)]
    return {
        "Version": version,
        "Volumes": {"DataCenters": dcs, "Free": topo.free_slots(), "Max": topo.max_slots()},
    }


def _layout_usage(lay: VolumeLayout) -> tuple[int, int, int]:
    """(total size, used size, file count) of a layout, as the reference counts them: each
    volume's live bytes and files (deletes subtracted) as its first reporting replica has
    them; bytes count once per replica, files once per volume; the total counts the size limit
    per replica of a volume that is not read-only (room it may still fill), else its bytes."""
    total = used = files = 0
    for vid, vol in lay.volumes.items():
        report = next((loc.volumes[vid] for loc in vol.locations if vid in loc.volumes), None)
        if report is None:
            continue
        live = max(0, report.size - report.deleted_byte_count)
        replicas = len(vol.locations)
        used += live * replicas
        files += max(0, report.file_count - report.delete_count)
        total += (live if vol.read_only else lay.volume_size_limit) * replicas
    return total, used, files


def collection_info(
    topo: Topology, collection: str, version: str, detail: bool
) -> dict[str, Any] | list[dict[str, Any]]:
    """`/collection/info` (keys sorted, as the reference's map renders them)."""
    layouts = [lay for lay in layouts_in_order(topo) if lay.key.collection == collection]
    per_layout = []
    for lay in layouts:
        total, used, files = _layout_usage(lay)
        per_layout.append(
            {
                "Collection": collection,
                "FileCount": files,
                "TotalSize": total,
                "UsedSize": used,
                "Version": version,
            }
        )
    if detail:
        return per_layout
    return {
        "Collection": collection,
        "FileCount": sum(p["FileCount"] for p in per_layout),
        "TotalSize": sum(p["TotalSize"] for p in per_layout),
        "UsedSize": sum(p["UsedSize"] for p in per_layout),
        "Version": version,
        # Quirk A25 fixed: the number of volumes, not of layouts.
        "VolumeCount": sum(len(lay.volumes) for lay in layouts),
    }


def cluster_status(leader: str, max_volume_id: int) -> dict[str, Any]:
    status: dict[str, Any] = {"IsLeader": True, "Leader": leader}
    if max_volume_id:
        status["MaxVolumeId"] = max_volume_id
    return status
