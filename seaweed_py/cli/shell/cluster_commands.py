"""Commands about the whole cluster (weed shell's names and flags; maintenance spec §1.4, §3.9,
§3.10):

| command | flags | needs `lock` |
|---|---|---|
| `lock`, `unlock` | | |
| `collection.list` | `-json` | no |
| `collection.delete` | `-collection` (`_default_`: the unnamed one), `-apply` (`-force`) | yes, even to simulate |
| `cluster.check` | `-json` | no |
| `cluster.ps` | `-json` | no |
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any

from seaweed_py import errors
from seaweed_py.cli.shell.cluster import Snapshot, master_json, snapshot
from seaweed_py.cli.shell.registry import ShellContext, apply_flags, applying, command
from seaweed_py.client.http import Timeout, json_object
from seaweed_py.config.flags import FlagSet, UsageError

__all__ = ["cluster_check", "cluster_ps", "collection_delete", "collection_list", "lock", "unlock"]

_PING = Timeout(total=5, connect=3)


@command("lock", "take the cluster's admin lock (waits while another operator holds it)")
async def lock(ctx: ShellContext, opts: dict[str, Any], args: list[str]) -> None:
    await ctx.lock.acquire()


@command("unlock", "give the cluster's admin lock back")
async def unlock(ctx: ShellContext, opts: dict[str, Any], args: list[str]) -> None:
    await ctx.lock.release()


def _json_flag(fs: FlagSet) -> None:
    fs.add("json", False, "print JSON")


# ---------------------------------------------------------------------------- collections


@command("collection.list", "list the collections with their volumes, sizes and files", _json_flag)
async def collection_list(ctx: ShellContext, opts: dict[str, Any], args: list[str]) -> None:
    rows = _collections(await snapshot(ctx))
    if opts["json"]:
        ctx.emit(rows)
        return
    for r in rows:
        ctx.say(
            f'collection:"{r["collection"]}"\tvolumeCount:{r["volumeCount"]}\t'
            f"size:{r['size']}\t"
            f"fileCount:{r['fileCount']}\tdeletedBytes:{r['deletedBytes']}\t"
            f"deletion:{r['deletion']}"
        )
    ctx.say(f"Total {len(rows)} collections.")


def _collections(snap: Snapshot) -> list[dict[str, Any]]:
    """Per collection, each figure summed over replicas and divided by the copy count, as
    weed's `collection.list` shows them."""
    sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for node in snap.nodes:
        for v in node.volumes:
            vol = snap.view.volumes[int(v["Id"])]
            copies = vol.placement.copy_count
            row = sums[vol.collection]
            row["volumeCount"] += 1 / copies
            row["size"] += int(v.get("Size") or 0) / copies
            row["fileCount"] += int(v.get("FileCount") or 0) / copies
            row["deletedBytes"] += int(v.get("DeletedByteCount") or 0) / copies
            row["deletion"] += int(v.get("DeleteCount") or 0) / copies
    return [
        {"collection": name, **{k: round(x) for k, x in sums[name].items()}}
        for name in sorted(sums)
    ]


def _delete_flags(fs: FlagSet) -> None:
    fs.add("collection", "", "the collection to delete; '_default_' for the unnamed one")
    apply_flags(fs, "delete it")


@command("collection.delete", "delete every volume of a collection", _delete_flags)
async def collection_delete(ctx: ShellContext, opts: dict[str, Any], args: list[str]) -> None:
    name = opts["collection"]
    if not name:
        raise UsageError("-collection is required ('_default_' for the unnamed one)")
    apply = applying(ctx, opts)
    ctx.lock.check()
    actual = "" if name == "_default_" else name
    if not apply:
        ctx.say(f"collection '{name}' will be deleted. Use -apply to apply the change.")
        return
    reply = await ctx.http.request(
        "POST", ctx.master, "/col/delete", params={"collection": actual}, cluster=True
    )
    reply.expect(f"delete collection {name!r}")
    ctx.say(f"collection {name} is deleted.")


# ---------------------------------------------------------------------------- cluster


async def _ping(ctx: ShellContext, server: str, path: str) -> tuple[float | None, str, Any]:
    """(round trip in ms or None, why not, the JSON answer)."""
    started = time.perf_counter()
    try:
        reply = await ctx.http.request("GET", server, path, timeout=_PING)
    except errors.WeedError as exc:
        return None, exc.message, {}
    took = (time.perf_counter() - started) * 1000
    if reply.status != 200:
        return None, f"answered {reply.status}", {}
    return took, "", json_object(reply.body)


@command("cluster.check", "check that the master and every volume server answer", _json_flag)
async def cluster_check(ctx: ShellContext, opts: dict[str, Any], args: list[str]) -> None:
    snap = await snapshot(ctx)
    dir_status = await master_json(ctx, "/dir/status")
    topo = dir_status.get("Topology") or {}
    servers = [n.url for n in snap.nodes]
    checks: list[dict[str, Any]] = []
    pings = await asyncio.gather(
        _ping(ctx, ctx.master, "/cluster/status"), *(_ping(ctx, s, "/status") for s in servers)
    )
    for (ms, why, _), (kind, server) in zip(
        pings, [("master", ctx.master), *(("volume server", s) for s in servers)], strict=True
    ):
        checks.append(
            {"kind": kind, "server": server, "ok": ms is not None, "ms": ms, "error": why}
        )
    used = sum(len(n.volumes) for n in snap.nodes)
    problems = [c for c in checks if not c["ok"]]
    if not topo.get("Max"):
        problems.append({"error": "the cluster has no volume slots"})
    if opts["json"]:
        ctx.emit({"max": topo.get("Max", 0), "free": topo.get("Free", 0), "checks": checks})
    else:
        ctx.say(f"Topology volume:{used}/{topo.get('Max', 0)} free:{topo.get('Free', 0)}")
        ctx.say(f"the cluster has {len(servers)} volume servers: [{' '.join(servers)}]")
        for c in checks:
            result = f"ok round trip {c['ms']:.3f}ms" if c["ok"] else f"FAILED: {c['error']}"
            ctx.say(f"checking {c['kind']} {c['server']} ... {result}")
    if problems:
        raise errors.ServiceUnavailable(
            "; ".join(
                f"{p['kind']} {p['server']} {p['error']}" if "server" in p else p["error"]
                for p in problems
            )
        )


@command("cluster.ps", "list the servers of the cluster and their versions", _json_flag)
async def cluster_ps(ctx: ShellContext, opts: dict[str, Any], args: list[str]) -> None:
    snap = await snapshot(ctx)
    dir_status = await master_json(ctx, "/dir/status")
    pings = await asyncio.gather(*(_ping(ctx, n.url, "/status") for n in snap.nodes))
    rows = [
        {
            "server": n.url,
            "dataCenter": n.data_center,
            "rack": n.rack,
            "version": str(answer.get("Version") or "") if ms is not None else "",
            "answering": ms is not None,
        }
        for n, (ms, _, answer) in zip(snap.nodes, pings, strict=True)
    ]
    master = {"server": ctx.master, "version": str(dir_status.get("Version") or "")}
    if opts["json"]:
        ctx.emit({"masters": [master], "volumeServers": rows})
        return
    ctx.say("* masters 1")
    ctx.say(f"  * {master['server']} ({master['version']})")
    ctx.say(f"* volume servers {len(rows)}")
    dc = rack = None
    for r in rows:
        if r["dataCenter"] != dc:
            dc, rack = r["dataCenter"], None
            ctx.say(f"  * data center: {dc or 'DefaultDataCenter'}")
        if r["rack"] != rack:
            rack = r["rack"]
            ctx.say(f"    * rack: {rack or 'DefaultRack'}")
        state = r["version"] if r["answering"] else "not answering"
        ctx.say(f"      * {r['server']} ({state})")
