"""What the status endpoints show: the reference's JSON shapes (field names and order as `weed`
4.48 prints them) and the HTML page at `/`."""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any

from seaweed_py.master.params import placement_object
from seaweed_py.topology import DataNode, Topology, VolumeLayout, VolumeReport

__all__ = [
    "cluster_status",
    "collection_info",
    "dir_status",
    "status_page",
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


def _sorted_nodes(topo: Topology) -> Iterable[tuple[str, str, list[DataNode]]]:
    for dc_id in sorted(topo.data_centers):
        dc = topo.data_centers[dc_id]
        for rack_id in sorted(dc.racks):
            yield dc_id, rack_id, sorted(dc.racks[rack_id].nodes.values(), key=lambda n: n.url)


def _layouts(topo: Topology) -> list[VolumeLayout]:
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
    for dc_id, rack_id, nodes in _sorted_nodes(topo):
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
        for lay in _layouts(topo)
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
        "RemoteStorageName": "",
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
        "ReadOnlyCanDelete": False,
    }


def vol_status(topo: Topology, version: str) -> dict[str, Any]:
    dcs: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = {}
    for dc_id, rack_id, nodes in _sorted_nodes(topo):
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
    layouts = [lay for lay in _layouts(topo) if lay.key.collection == collection]
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


_PAGE_STYLE = (
    "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1.5em}"
    "td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}"
    ".bar{background:#eee;width:10em;height:.8em}.bar div{background:#4a8;height:100%}"
)


def _fill_bar(fraction: float) -> str:
    pct = max(0.0, min(1.0, fraction)) * 100
    return f'<div class="bar" title="{pct:.1f}%"><div style="width:{pct:.1f}%"></div></div>'


def status_page(topo: Topology, leader: str, version: str) -> str:
    """Server-rendered HTML: nodes by data center and rack, then volumes and their fill."""
    e = html.escape
    limit = topo.volume_size_limit
    out = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>weedpy master</title>",
        f"<style>{_PAGE_STYLE}</style></head><body>",
        f"<h1>weedpy master {e(leader)}</h1>",
        f"<p>{e(version)} · volume size limit {limit // (1 << 20)} MiB · "
        f"{len(topo.nodes)} volume servers · slots {topo.free_slots()} free of {topo.max_slots()}</p>",
        "<h2>Topology</h2><table><tr><th>Data center</th><th>Rack</th><th>Volume server</th>"
        "<th>Volumes</th><th>Max</th><th>Volume ids</th></tr>",
    ]
    for dc_id, rack_id, nodes in _sorted_nodes(topo):
        for n in nodes:
            out.append(
                f"<tr><td>{e(dc_id)}</td><td>{e(rack_id)}</td>"
                f"<td><a href='http://{e(n.public_url, quote=True)}/ui/index.html'>{e(n.url)}</a></td>"
                f"<td>{len(n.volumes)}</td><td>{n.total_max()}</td>"
                f"<td>{e(volume_id_runs(n.volumes))}</td></tr>"
            )
    out.append(
        "</table><h2>Volumes</h2><table><tr><th>Id</th><th>Collection</th>"
        "<th>Replication</th><th>TTL</th><th>Disk</th><th>Size</th><th>Fill</th>"
        "<th>Files</th><th>State</th><th>Locations</th></tr>"
    )
    for lay in _layouts(topo):
        for vid in sorted(lay.volumes):
            vol = lay.volumes[vid]
            files = max(
                (loc.volumes[vid].file_count for loc in vol.locations if vid in loc.volumes),
                default=0,
            )
            state = (
                "writable"
                if lay.is_writable(vid)
                else "read-only"
                if vol.read_only
                else "not writable"
            )
            if vol.crowded:
                state += ", crowded"
            out.append(
                f"<tr><td>{vid}</td><td>{e(lay.key.collection)}</td>"
                f"<td>{lay.key.replica_placement}</td><td>{e(str(lay.key.ttl))}</td>"
                f"<td>{e(lay.key.disk)}</td><td>{vol.size}</td><td>{_fill_bar(vol.size / limit)}</td>"
                f"<td>{files}</td><td>{state}</td>"
                f"<td>{e(', '.join(loc.url for loc in vol.locations))}</td></tr>"
            )
    out.append("</table></body></html>")
    return "".join(out)
