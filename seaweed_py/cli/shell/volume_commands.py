"""`volume.list`: the volumes of every data node, from the master's `/vol/status` and
`/dir/status`, as weed 4.48's shell prints them (maintenance spec §3.1), or JSON with `-json`.

Flags as weed's: `-v` (0..5: topology, data centers, racks, data nodes, disks, volumes),
`-collectionPattern` (comma-separated, `*`/`?`; `_default` is the unnamed collection),
`-readonly`, `-writable`, `-volumeId`, `-dataCenter`, `-rack`, `-dataNode`. Usage headers count
every volume under them; the `{Size:...}` totals and the last line count the volumes shown; a
header is printed only when a volume under it is. weed's topology line starts with the master's
`volumeSizeLimit`, which weedpy's JSON views do not carry: it is left out (docs/compat.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from seaweed_py.cli.shell.cluster import collection_matcher, master_json, placement_code
from seaweed_py.cli.shell.registry import ShellContext, command
from seaweed_py.config.flags import FlagSet, UsageError
from seaweed_py.errors import WeedError
from seaweed_py.formats.ttl import Ttl

__all__ = ["volume_list"]


def _list_flags(fs: FlagSet) -> None:
    fs.add("v", 5, "verbose mode: 0, 1, 2, 3, 4, 5")
    fs.add("volumeId", 0, "show only this volume")
    fs.add("collectionPattern", "", "comma-separated collection names, with '*' and '?' wildcards")
    fs.add("readonly", False, "show only read-only volumes")
    fs.add("writable", False, "show only writable volumes")
    fs.add("dataCenter", "", "show volumes only from the specified data center")
    fs.add("rack", "", "show volumes only from the specified rack")
    fs.add("dataNode", "", "show volumes only from the specified data node")
    fs.add("json", False, "print JSON instead of the tree")


@command("volume.list", "list the volumes of every data node", _list_flags)
async def volume_list(ctx: ShellContext, opts: dict[str, Any], args: list[str]) -> None:
    if not 0 <= opts["v"] <= 5:
        raise UsageError(f"-v {opts['v']}: want 0 to 5")
    if not 0 <= opts["volumeId"] <= 0xFFFFFFFF:
        raise UsageError(f"-volumeId {opts['volumeId']}: want a volume id up to 4294967295")
    vol_status = await master_json(ctx, "/vol/status")
    dir_status = await master_json(ctx, "/dir/status")
    tree = _tree(vol_status, dir_status, opts)
    if opts["json"]:
        ctx.emit(_without_all(tree))
        return
    for line in _render(tree, opts["v"]):
        ctx.say(line)


def _node_max(dir_status: Mapping[str, Any]) -> dict[str, int]:
    found: dict[str, int] = {}
    for dc in (dir_status.get("Topology") or {}).get("DataCenters") or []:
        for rack in dc.get("Racks") or []:
            for node in rack.get("DataNodes") or []:
                found[str(node.get("Url"))] = int(node.get("Max") or 0)
    return found


def _tree(
    vol_status: Mapping[str, Any], dir_status: Mapping[str, Any], opts: dict[str, Any]
) -> dict[str, Any]:
    """Every node with all its volumes (`all`) and those the filters keep (`volumes`)."""
    maxes = _node_max(dir_status)
    volumes = vol_status.get("Volumes") or {}
    match = collection_matcher(opts["collectionPattern"])

    def keep(v: dict[str, Any]) -> bool:
        if opts["volumeId"] and v["id"] != opts["volumeId"]:
            return False
        if not match(v["collection"]):
            return False
        if opts["readonly"] and not v["readOnly"]:
            return False
        return not (opts["writable"] and v["readOnly"])

    dcs = []
    for dc_id, racks in sorted((volumes.get("DataCenters") or {}).items()):
        if opts["dataCenter"] and dc_id != opts["dataCenter"]:
            continue
        rack_list = []
        for rack_id, nodes in sorted(racks.items()):
            if opts["rack"] and rack_id != opts["rack"]:
                continue
            node_list = []
            for url, vols in sorted(nodes.items()):
                if opts["dataNode"] and url != opts["dataNode"]:
                    continue
                every = [_volume(v) for v in vols or []]
                node_list.append(
                    {
                        "url": url,
                        "max": maxes.get(url, 0),
                        "all": every,
                        "volumes": [v for v in every if keep(v)],
                    }
                )
            rack_list.append({"id": rack_id, "nodes": node_list})
        dcs.append({"id": dc_id, "racks": rack_list})
    return {"max": volumes.get("Max", 0), "free": volumes.get("Free", 0), "dataCenters": dcs}


def _without_all(tree: dict[str, Any]) -> dict[str, Any]:
    """The tree as `-json` shows it: each node's volumes the filters keep."""
    return {
        **tree,
        "dataCenters": [
            {
                **dc,
                "racks": [
                    {
                        **rack,
                        "nodes": [
                            {k: v for k, v in n.items() if k != "all"} for n in rack["nodes"]
                        ],
                    }
                    for rack in dc["racks"]
                ],
            }
            for dc in tree["dataCenters"]
        ],
    }


def _volume(v: Mapping[str, Any]) -> dict[str, Any]:
    ttl = v.get("Ttl") or {}
    try:
        ttl_text = str(Ttl(int(ttl.get("Count") or 0), int(ttl.get("Unit") or 0)))
    except (WeedError, ValueError):
        ttl_text = ""
    return {
        "id": v.get("Id"),
        "collection": v.get("Collection", ""),
        "size": v.get("Size", 0),
        "fileCount": v.get("FileCount", 0),
        "deleteCount": v.get("DeleteCount", 0),
        "deletedByteCount": v.get("DeletedByteCount", 0),
        "replicaPlacement": placement_code(v.get("ReplicaPlacement")),
        "ttl": ttl_text,
        "diskType": v.get("DiskType") or "hdd",
        "version": v.get("Version", 3),
        "readOnly": bool(v.get("ReadOnly")),
        "compactRevision": v.get("CompactRevision", 0),
        "remoteStorageName": v.get("RemoteStorageName", ""),
        "modifiedAtSecond": v.get("ModifiedAtSecond", 0),
    }


def _usage(volumes: list[dict[str, Any]], slots: int) -> str:
    """weed's `hdd(volume:N/M active:A free:F remote:R)` of everything under a header."""
    by_disk: dict[str, list[dict[str, Any]]] = {}
    for v in volumes:
        by_disk.setdefault(v["diskType"], []).append(v)
    by_disk.setdefault("hdd", [])
    parts = []
    for disk, vols in sorted(by_disk.items()):
        remote = sum(1 for v in vols if v["remoteStorageName"])
        local = len(vols) - remote
        active = sum(1 for v in vols if not v["readOnly"])
        cap = slots if disk == "hdd" else local
        parts.append(
            f"{disk}(volume:{len(vols)}/{cap} active:{active} free:{max(0, cap - local)} "
            f"remote:{remote})"
        )
    return " ".join(parts)


def _totals(volumes: Iterable[dict[str, Any]]) -> tuple[int, int, int, int]:
    size = files = deleted = deleted_bytes = 0
    for v in volumes:
        size += int(v["size"])
        files += int(v["fileCount"])
        deleted += int(v["deleteCount"])
        deleted_bytes += int(v["deletedByteCount"])
    return size, files, deleted, deleted_bytes


def _sums(volumes: Iterable[dict[str, Any]]) -> str:
    size, files, deleted, deleted_bytes = _totals(volumes)
    return (
        f"{{Size:{size} FileCount:{files} DeletedFileCount:{deleted} "
        f"DeletedBytes:{deleted_bytes}}} "
    )


def _render(tree: dict[str, Any], level: int) -> list[str]:
    nodes = [n for dc in tree["dataCenters"] for rack in dc["racks"] for n in rack["nodes"]]
    every = [v for n in nodes for v in n["all"]]
    shown = [v for n in nodes for v in n["volumes"]]
    lines = [f"Topology {_usage(every, sum(n['max'] for n in nodes))}"]
    for dc in tree["dataCenters"]:
        dc_nodes = [n for rack in dc["racks"] for n in rack["nodes"]]
        dc_shown = [v for n in dc_nodes for v in n["volumes"]]
        if not dc_shown or level < 1:
            continue
        dc_every = [v for n in dc_nodes for v in n["all"]]
        name = dc["id"] or "DefaultDataCenter"
        lines.append(f"  DataCenter {name} {_usage(dc_every, sum(n['max'] for n in dc_nodes))}")
        for rack in dc["racks"]:
            rack_shown = [v for n in rack["nodes"] for v in n["volumes"]]
            if not rack_shown or level < 2:
                continue
            rack_every = [v for n in rack["nodes"] for v in n["all"]]
            rack_max = sum(n["max"] for n in rack["nodes"])
            rack_name = rack["id"] or "DefaultRack"
            lines.append(f"    Rack {rack_name} {_usage(rack_every, rack_max)}")
            for node in rack["nodes"]:
                if node["volumes"] and level >= 3:
                    lines.extend(_node_lines(node, level))
            lines.append(f"    Rack {rack_name} {_sums(rack_shown)}")
        lines.append(f"  DataCenter {name} {_sums(dc_shown)}")
    size, files, deleted, deleted_bytes = _totals(shown)
    last = f"total size:{size} file_count:{files} "
    if deleted or deleted_bytes:
        last += f"deleted_file:{deleted} deleted_bytes:{deleted_bytes} "
    lines.append(last)
    return lines


def _node_lines(node: dict[str, Any], level: int) -> list[str]:
    lines = [f"      DataNode {node['url']} {_usage(node['all'], node['max'])}"]
    if level >= 4:
        disks = sorted({v["diskType"] for v in node["volumes"]})
        for disk in disks:
            every = [v for v in node["all"] if v["diskType"] == disk]
            shown = [v for v in node["volumes"] if v["diskType"] == disk]
            cap = node["max"] if disk == "hdd" else len(every)
            lines.append(f"        Disk {_usage(every, cap)} id:0")
            if level >= 5:
                lines.extend("          " + _volume_line(v) for v in shown)
            lines.append(f"        Disk {disk} {_sums(shown)}")
    lines.append(f"      DataNode {node['url']} {_sums(node['volumes'])}")
    return lines


def _volume_line(v: dict[str, Any]) -> str:
    line = (
        f"volume Id:{v['id']}, Size:{v['size']}, ReplicaPlacement:{v['replicaPlacement']}, "
        f"Collection:{v['collection']}, Version:{v['version']}, Ttl:{v['ttl']}, "
        f"FileCount:{v['fileCount']}, DeleteCount:{v['deleteCount']}, "
        f"DeletedByteCount:{v['deletedByteCount']}, "
        f"ReadOnly:{str(v['readOnly']).lower()}, ModifiedAtSecond:{v['modifiedAtSecond']}"
    )
    if v["remoteStorageName"]:
        line += f", RemoteStorageName:{v['remoteStorageName']}"
    return line + " "
