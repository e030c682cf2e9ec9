"""What the shell's commands know of the cluster: the master's JSON views (`/dir/status`,
`/vol/status`, `/dir/lookup`) read through the shell's `HttpClient`, and a `Snapshot` of them
as the placement planner's `ClusterView` (topology/repair.py).

Volume slots: `/dir/status` gives each node's `Max` over all its disk types; a node's free
slots are that minus its volumes that are not tiered (weedpy's volume servers have one disk
type, `hdd`).
"""

from __future__ import annotations

import asyncio
import fnmatch
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from seaweed_py import errors
from seaweed_py.cli.shell.registry import ShellContext
from seaweed_py.client.http import json_object
from seaweed_py.config.flags import UsageError
from seaweed_py.formats.replica_placement import ReplicaPlacement
from seaweed_py.topology.repair import ClusterView, CopyView, NodeView, Place, VolumeView

__all__ = [
    "Snapshot",
    "collection_matcher",
    "holders",
    "master_json",
    "parse_ids",
    "placement_code",
    "snapshot",
    "wait_for_holders",
]

_HOLDERS_WAIT = 15.0


async def master_json(ctx: ShellContext, path: str, **params: str) -> dict[str, Any]:
    """The master's JSON answer to `GET path`; its error as a `WeedError`."""
    try:
        reply = await ctx.http.request("GET", ctx.master, path, params=params or None)
    except errors.ServerUnreachable as exc:
        raise errors.ServerUnreachable(
            f"cannot reach the master: {exc.message}", master=ctx.master
        ) from None
    reply.expect(f"the master's {path}")
    return json_object(reply.body)


async def holders(ctx: ShellContext, vid: int) -> list[str]:
    """The servers the master names for volume `vid` ([] when none)."""
    try:
        answer = await master_json(ctx, "/dir/lookup", volumeId=str(vid))
    except errors.NotFound:
        return []
    return sorted(
        str(loc["url"])
        for loc in answer.get("locations") or []
        if isinstance(loc, dict) and loc.get("url")
    )


async def wait_for_holders(ctx: ShellContext, vid: int, want: Iterable[str]) -> bool:
    """Wait (a bounded time) until the master names exactly `want` as `vid`'s holders: a copy
    or a delete is announced by the volume server's next heartbeat, sent at once."""
    wanted = sorted(want)
    deadline = time.monotonic() + _HOLDERS_WAIT
    while True:
        try:
            if await holders(ctx, vid) == wanted:
                return True
        except errors.WeedError:
            pass
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.2)


def parse_ids(text: str, flag: str = "volumeId") -> list[int]:
    """`-volumeId 3,4` as volume ids (each 1..2^32-1)."""
    ids = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if not (part.isascii() and part.isdigit()) or not 0 < int(part) <= 0xFFFFFFFF:
            raise UsageError(f"-{flag}: {part!r} is not a volume id (1 to 4294967295)")
        ids.append(int(part))
    return ids


def collection_matcher(pattern: str) -> Any:
    """`-collectionPattern a,b*`: a predicate on collection names (`_default` and `_default_`
    name the unnamed collection; empty matches all)."""
    parts = [p.strip() for p in pattern.split(",") if p.strip()]

    def match(name: str) -> bool:
        if not parts:
            return True
        for p in parts:
            if p in ("_default", "_default_") and name == "":
                return True
            if fnmatch.fnmatchcase(name, p):
                return True
        return False

    return match


@dataclass(frozen=True, slots=True)
class NodeInfo:
    url: str
    data_center: str
    rack: str
    max: int
    volumes: tuple[Mapping[str, Any], ...]
    """The master's `/vol/status` entries of this node."""


@dataclass
class Snapshot:
    """The cluster as the master saw it at one moment."""

    nodes: list[NodeInfo]
    view: ClusterView
    collections: dict[int, str] = field(default_factory=dict)

    def holders(self, vid: int) -> list[str]:
        vol = self.view.volumes.get(vid)
        return sorted(c.node for c in vol.copies) if vol is not None else []

    def node(self, url: str) -> NodeInfo | None:
        return next((n for n in self.nodes if n.url == url), None)


async def snapshot(ctx: ShellContext) -> Snapshot:
    dir_status = await master_json(ctx, "/dir/status")
    vol_status = await master_json(ctx, "/vol/status")
    return build_snapshot(dir_status, vol_status)


def build_snapshot(dir_status: Mapping[str, Any], vol_status: Mapping[str, Any]) -> Snapshot:
    maxes: dict[str, int] = {}
    for dc in (dir_status.get("Topology") or {}).get("DataCenters") or []:
        for rack in dc.get("Racks") or []:
            for node in rack.get("DataNodes") or []:
                maxes[str(node.get("Url"))] = int(node.get("Max") or 0)
    nodes: list[NodeInfo] = []
    views: dict[str, NodeView] = {}
    copies: dict[int, list[CopyView]] = {}
    first: dict[int, Mapping[str, Any]] = {}
    remote: set[int] = set()
    volumes = vol_status.get("Volumes") or {}
    for dc_id, racks in sorted((volumes.get("DataCenters") or {}).items()):
        for rack_id, by_node in sorted(racks.items()):
            for url, vols in sorted(by_node.items()):
                vols = list(vols or [])
                local = sum(1 for v in vols if not v.get("RemoteStorageName"))
                info = NodeInfo(url, dc_id, rack_id, maxes.get(url, 0), tuple(vols))
                nodes.append(info)
                host = url.rsplit(":", 1)[0]
                views[url] = NodeView(
                    Place(url, dc_id, rack_id, host), {"hdd": max(0, info.max - local)}
                )
                for v in vols:
                    vid = int(v["Id"])
                    first.setdefault(vid, v)
                    if v.get("RemoteStorageName"):
                        remote.add(vid)
                    copies.setdefault(vid, []).append(
                        CopyView(
                            url,
                            int(v.get("Size") or 0),
                            bool(v.get("ReadOnly")),
                            int(v.get("ModifiedAtSecond") or 0),
                        )
                    )
    view_volumes = {
        vid: VolumeView(
            vid,
            _placement(first[vid].get("ReplicaPlacement")),
            tuple(found),
            str(first[vid].get("Collection") or ""),
            str(first[vid].get("DiskType") or "hdd"),
            vid in remote,
        )
        for vid, found in copies.items()
    }
    return Snapshot(
        nodes,
        ClusterView(views, view_volumes),
        {vid: v.collection for vid, v in view_volumes.items()},
    )


def _placement(raw: object) -> ReplicaPlacement:
    return ReplicaPlacement.parse(placement_code(raw))


def placement_code(raw: object) -> str:
    """`xyz` of a `/vol/status` placement object (Go's encoding: `dc`, `rack`, `node`, zero
    counts omitted), or of its text."""
    if isinstance(raw, Mapping):
        return "{}{}{}".format(
            int(raw.get("dc") or 0), int(raw.get("rack") or 0), int(raw.get("node") or 0)
        )
    return str(raw or "000")
