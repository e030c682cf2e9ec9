"""`volume.list`: the volumes of every data node, from the master's `/vol/status` and
`/dir/status`, as a tree like `weed shell`'s (or JSON with `-json`)."""

from __future__ import annotations

import fnmatch
from typing import Any

from seaweed_py.cli.shell.cluster import master_json, placement_code
from seaweed_py.cli.shell.registry import ShellContext, command
from seaweed_py.config.flags import FlagSet

__all__ = ["volume_list"]


def _list_flags(fs: FlagSet) -> None:
    fs.add("volumeId", 0, "show only this volume")
    fs.add("collectionPattern", "", "show only collections matching this wildcard pattern")
    fs.add("readonly", False, "show only read-only volumes")
    fs.add("writable", False, "show only writable volumes")
    fs.add("json", False, "print JSON instead of the tree")


@command("volume.list", "list the volumes of every data node", _list_flags)
async def volume_list(ctx: ShellContext, opts: dict[str, Any], args: list[str]) -> None:
    vol_status = await master_json(ctx, "/vol/status")
    dir_status = await master_json(ctx, "/dir/status")
    tree = _tree(vol_status, dir_status, opts)
    if opts["json"]:
        ctx.emit(tree)
        return
    for line in _render(tree):
        ctx.say(line)


def _node_max(dir_status: dict[str, Any]) -> dict[str, int]:
    found: dict[str, int] = {}
    for dc in (dir_status.get("Topology") or {}).get("DataCenters") or []:
        for rack in dc.get("Racks") or []:
            for node in rack.get("DataNodes") or []:
                found[str(node.get("Url"))] = int(node.get("Max") or 0)
    return found


def _keep(v: dict[str, Any], opts: dict[str, Any]) -> bool:
    if opts["volumeId"] and v.get("Id") != opts["volumeId"]:
        return False
    pattern = opts["collectionPattern"]
    if pattern and not fnmatch.fnmatchcase(str(v.get("Collection", "")), pattern):
        return False
    if opts["readonly"] and not v.get("ReadOnly"):
        return False
    return not (opts["writable"] and v.get("ReadOnly"))


def _tree(
    vol_status: dict[str, Any], dir_status: dict[str, Any], opts: dict[str, Any]
) -> dict[str, Any]:
    maxes = _node_max(dir_status)
    volumes = vol_status.get("Volumes") or {}
    dcs = []
    for dc_id, racks in sorted((volumes.get("DataCenters") or {}).items()):
        rack_list = []
        for rack_id, nodes in sorted(racks.items()):
            node_list = []
            for url, vols in sorted(nodes.items()):
                kept = [_volume(v) for v in vols or [] if _keep(v, opts)]
                node_list.append({"url": url, "max": maxes.get(url, 0), "volumes": kept})
            rack_list.append({"id": rack_id, "nodes": node_list})
        dcs.append({"id": dc_id, "racks": rack_list})
    return {"max": volumes.get("Max", 0), "free": volumes.get("Free", 0), "dataCenters": dcs}


def _volume(v: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": v.get("Id"),
        "collection": v.get("Collection", ""),
        "size": v.get("Size", 0),
        "fileCount": v.get("FileCount", 0),
        "deleteCount": v.get("DeleteCount", 0),
        "deletedByteCount": v.get("DeletedByteCount", 0),
        "replicaPlacement": placement_code(v.get("ReplicaPlacement")),
        "version": v.get("Version", 3),
        "readOnly": bool(v.get("ReadOnly")),
        "remoteStorageName": v.get("RemoteStorageName", ""),
        "modifiedAtSecond": v.get("ModifiedAtSecond", 0),
    }


def _usage(volumes: list[dict[str, Any]], slots: int) -> str:
    remote = sum(1 for v in volumes if v["remoteStorageName"])
    local = len(volumes) - remote
    return f"(volume:{local}/{slots} free:{max(0, slots - local)} remote:{remote})"


def _render(tree: dict[str, Any]) -> list[str]:
    every = [
        v
        for dc in tree["dataCenters"]
        for rack in dc["racks"]
        for node in rack["nodes"]
        for v in node["volumes"]
    ]
    lines = [f"Topology volumes:{len(every)} max:{tree['max']} free:{tree['free']}"]
    for dc in tree["dataCenters"]:
        lines.append(f"  DataCenter {dc['id'] or 'DefaultDataCenter'}")
        for rack in dc["racks"]:
            lines.append(f"    Rack {rack['id'] or 'DefaultRack'}")
            for node in rack["nodes"]:
                lines.append(f"      DataNode {node['url']} {_usage(node['volumes'], node['max'])}")
                for v in node["volumes"]:
                    lines.append("        " + _volume_line(v))
                size = sum(int(v["size"]) for v in node["volumes"])
                files = sum(int(v["fileCount"]) for v in node["volumes"])
                lines.append(f"      DataNode {node['url']} total size:{size} file_count:{files}")
    return lines


def _volume_line(v: dict[str, Any]) -> str:
    line = (
        f'volume id:{v["id"]} size:{v["size"]} collection:"{v["collection"]}" '
        f"file_count:{v['fileCount']} delete_count:{v['deleteCount']} "
        f"deleted_byte_count:{v['deletedByteCount']} "
        f"replica_placement:{v['replicaPlacement']} version:{v['version']} "
        f"modified_at_second:{v['modifiedAtSecond']}"
    )
    if v["readOnly"]:
        line += " read_only:true"
    if v["remoteStorageName"]:
        line += f" remote_storage_name:{v['remoteStorageName']}"
    return line
