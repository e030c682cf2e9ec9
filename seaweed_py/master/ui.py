"""The master's status page (`/` and `/ui/index.html`): the cluster at a glance, the topology
(data center → rack → volume server) and every volume, sizes in human units."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

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


def status_page(topo: Topology, cluster: ClusterFacts, repair: dict[str, Any]) -> Response:
    """`repair`: the repair loop's status (`RepairLoop.status`, `GET /cluster/repair`)."""
    return page(
        "weedpy master",
        cluster.leader,
        [
            ("Cluster", _cluster(topo, cluster)),
            ("Repairs", _repairs(repair)),
            ("Topology", _topology(topo, cluster.now)),
            ("Volumes", _volumes(topo)),
        ],
    )


def _repairs(status: dict[str, Any]) -> str:
    e = html.escape

    def ids(items: list[Any]) -> str:
        vids = [str(i["volume"] if isinstance(i, dict) else i) for i in items]
        return f"{len(vids)} <small class='muted'>{e(' '.join(vids[:20]))}</small>"

    paused = status["pausedBy"]
    delay = status["delaySeconds"]
    summary = facts(
        [
            ("Under-replicated", ids(status["underReplicated"] + status["misplaced"])),
            ("A copy too many", ids(status["surplus"])),
            ("Cannot be placed", ids(status["unplaceable"])),
            ("In flight", str(len(status["inFlight"]))),
            (
                "Copies made",
                f"{status['done']['copies']} "
                f"<small class='muted'>{status['failed']['copies']} failed</small>",
            ),
            (
                "Copies removed",
                f"{status['done']['trims']} "
                f"<small class='muted'>{status['failed']['trims']} failed</small>",
            ),
            ("Repair delay", "off" if delay < 0 else human_duration(delay)),
            ("Paused", f"<span class='warn'>lock held by {e(paused)}</span>" if paused else "no"),
        ]
    )
    rows = [
        [
            item["volume"],
            item["kind"],
            Cell(e(_action(item))),
            Cell(e(item["reason"])),
            Cell(
                "<span class='ok'>in flight</span>"
                if "ok" not in item
                else "<span class='ok'>done</span>"
                if item["ok"]
                else f"<span class='warn'>failed: {e(item['error'])}</span>"
            ),
            Cell(human_duration(item["seconds"]), numeric=True),
        ]
        for item in status["inFlight"] + status["recent"]
    ]
    unplaceable = "".join(
        f"<p class='warn'>volume {u['volume']}: {e(u['reason'])}</p>" for u in status["unplaceable"]
    )
    return (
        summary
        + unplaceable
        + table(
            ["Volume", "Action", "Where", "Why", "State", "Took"],
            rows,
            empty="nothing repaired since the master started",
        )
    )


def _action(item: dict[str, Any]) -> str:
    if item["kind"] == "copy":
        return f"{item['source']} → {item['target']}"
    return f"remove from {item['doomed']}"


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
