"""The master's status page (`/` and `/ui/index.html`): the cluster at a glance, the topology
(data center → rack → volume server) and every volume, sizes in human units."""

from __future__ import annotations

import html
from dataclasses import dataclass

from seaweed_py.httpkit.pages import (
    Cell,
    facts,
    fill_bar,
    human_bytes,
    human_duration,
    page,
    table,
)
from seaweed_py.httpkit.response import Response
from seaweed_py.master.views import layouts_in_order, nodes_in_order, volume_id_runs
from seaweed_py.topology import LayoutVolume, Topology, VolumeLayout

__all__ = ["ClusterFacts", "status_page"]


@dataclass(frozen=True, slots=True)
class ClusterFacts:
    """What the page shows about the master itself."""

    leader: str
    version: str
    uptime: float
    now: float
    """The topology's clock (heartbeat times are on it)."""


def status_page(topo: Topology, cluster: ClusterFacts) -> Response:
    return page(
        "weedpy master",
        cluster.leader,
        [
            ("Cluster", _cluster(topo, cluster)),
            ("Topology", _topology(topo, cluster.now)),
            ("Volumes", _volumes(topo)),
        ],
    )


def _cluster(topo: Topology, cluster: ClusterFacts) -> str:
    e = html.escape
    total, free = topo.max_slots(), topo.free_slots()
    volumes = sum(1 for _ in topo.volume_ids())
    writable = sum(len(lay.writables) for lay in topo.layouts.values())
    stored = sum(n.volumes[v].size for n in topo.nodes.values() for v in n.volumes)
    return facts(
        [
            ("Leader", e(cluster.leader)),
            ("Version", e(cluster.version)),
            ("Uptime", human_duration(cluster.uptime)),
            ("Volume servers", str(len(topo.nodes))),
            ("Volumes", f"{volumes} <small class='muted'>{writable} writable</small>"),
            ("Free slots", f"{free} <small class='muted'>of {total}</small>"),
            ("Stored, all copies", human_bytes(stored)),
            ("Volume size limit", human_bytes(topo.volume_size_limit)),
        ]
    )


def _topology(topo: Topology, now: float) -> str:
    rows = []
    for dc_id, rack_id, nodes in nodes_in_order(topo):
        for n in nodes:
            used = n.total_max() - n.total_free()
            link = f"<a href='http://{html.escape(n.public_url, quote=True)}/ui/index.html'>"
            rows.append(
                [
                    dc_id,
                    rack_id,
                    Cell(f"{link}{html.escape(n.url)}</a>"),
                    Cell(
                        fill_bar(
                            used / n.total_max() if n.total_max() else 1.0,
                            f"{used} of {n.total_max()}",
                        )
                    ),
                    Cell(human_bytes(sum(v.size for v in n.volumes.values())), numeric=True),
                    Cell(html.escape(volume_id_runs(n.volumes).strip() or "-")),
                    Cell(f"{human_duration(now - n.last_seen)} ago", numeric=True),
                ]
            )
    return table(
        ["Data center", "Rack", "Volume server", "Slots used", "Stored", "Volume ids", "Heartbeat"],
        rows,
        empty="no volume server has registered yet",
    )


def _volumes(topo: Topology) -> str:
    limit = topo.volume_size_limit
    rows = []
    for lay in layouts_in_order(topo):
        for vid in sorted(lay.volumes):
            vol = lay.volumes[vid]
            reports = [loc.volumes[vid] for loc in vol.locations if vid in loc.volumes]
            files = max((r.file_count - r.delete_count for r in reports), default=0)
            garbage = max((r.deleted_byte_count for r in reports), default=0)
            rows.append(
                [
                    vid,
                    lay.key.collection or "-",
                    str(lay.key.replica_placement),
                    str(lay.key.ttl) or "-",
                    lay.key.disk,
                    Cell(fill_bar(vol.size / limit if limit else 0.0, human_bytes(vol.size))),
                    files,
                    Cell(human_bytes(garbage), numeric=True),
                    Cell(_state(lay, vol)),
                    ", ".join(loc.url for loc in vol.locations),
                ]
            )
    return table(
        [
            "Id",
            "Collection",
            "Replication",
            "TTL",
            "Disk",
            "Size",
            "Files",
            "Garbage",
            "State",
            "Locations",
        ],
        rows,
        empty="no volumes yet: the first assign grows some",
    )


def _state(lay: VolumeLayout, vol: LayoutVolume) -> str:
    if lay.is_writable(vol.id):
        state, cls = "writable", "ok"
    elif vol.read_only:
        state, cls = "read-only", "warn"
    else:
        state, cls = "not writable", "warn"
    if vol.crowded:
        state += ", crowded"
    return f"<span class='{cls}'>{state}</span>"
