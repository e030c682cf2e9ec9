"""Commands that check what replicas hold (weed shell's names; maintenance spec §3.6-3.8):

| command | flags | needs `lock` |
|---|---|---|
| `volume.check.disk` | `-volumeId`, `-apply` (`-force`), `-json` | yes (weed: even read-only runs) |
| `volume.scrub` | `-node`, `-volumeId`, `-mode`, `-details`, `-json` | yes |
| `volume.vacuum` | `-garbageThreshold`, `-collection`, `-volumeId` | yes |

`volume.check.disk` compares the replicas of each volume by their live needles (bucket
digests, then the needle lists of the buckets that differ: formats/replica_digest.py), never by
files or counts, which independent vacuums make differ. It reports, for each pair, the needle
states one holds newer than the other (a put or a delete; the newest record wins); `-apply`
has every replica pull from every other (`/admin/volume/sync`) and checks again.

`volume.scrub` has each server read every live needle of the volumes named (all without
`-volumeId`) and check its CRC; a volume server repairs a rotted needle from a replica at once,
so the report says which were repaired and which could not be (no sound copy anywhere): those
fail the command.
"""

from __future__ import annotations

import itertools
from typing import Any

from seaweed_py import errors
from seaweed_py.cli.shell.cluster import holders, parse_ids, snapshot
from seaweed_py.cli.shell.registry import ShellContext, apply_flags, applying, command
from seaweed_py.cli.shell.replica_ops import lacking
from seaweed_py.config.flags import FlagSet, UsageError
from seaweed_py.formats.wire import ScrubReport

__all__ = ["check_disk", "scrub", "vacuum"]


# ---------------------------------------------------------------------------- check.disk


def _check_flags(fs: FlagSet) -> None:
    apply_flags(fs, "have every replica take what another holds newer")
    fs.add("volumeId", 0, "the volume to check (0: every replicated volume)")
    fs.add("json", False, "print the differences as JSON")


@command(
    "volume.check.disk",
    "compare the live needles of each volume's replicas; -apply makes them converge",
    _check_flags,
)
async def check_disk(ctx: ShellContext, opts: dict[str, Any], args: list[str]) -> None:
    apply = applying(ctx, opts)
    vid_flag = opts["volumeId"]
    if not 0 <= vid_flag <= 0xFFFFFFFF:
        raise UsageError(f"-volumeId {vid_flag}: want a volume id from 1 to 4294967295 (0: all)")
    ctx.lock.check()
    snap = await snapshot(ctx)
    if vid_flag:
        if vid_flag not in snap.view.volumes:
            raise errors.VolumeNotFound(f"volume {vid_flag} not found", volume_id=vid_flag)
        vids = [vid_flag]
    else:
        vids = sorted(v.id for v in snap.view.volumes.values() if len(v.copies) > 1)
    quiet = opts["json"]
    report: list[dict[str, Any]] = []
    differing = 0
    for vid in vids:
        nodes = snap.holders(vid)
        if snap.view.volumes[vid].remote:
            continue
        pairs = await _differences(ctx, vid, nodes)
        entry: dict[str, Any] = {"volume": vid, "replicas": nodes, "differences": pairs}
        if pairs and apply:
            for node, peer in itertools.permutations(nodes, 2):
                ctx.lock.check()
                await ctx.admin.sync(node, vid, peer)
            entry["after"] = await _differences(ctx, vid, nodes)
        report.append(entry)
        still = entry.get("after", pairs)
        differing += bool(still)
        if not quiet:
            _say_volume(ctx, entry, apply)
    if quiet:
        ctx.emit({"apply": apply, "volumes": report})
    elif not report:
        ctx.say("no volume has more than one replica")
    if differing and apply:
        raise errors.Conflict(f"{differing} volume(s) still differ between replicas")


async def _differences(ctx: ShellContext, vid: int, nodes: list[str]) -> list[dict[str, Any]]:
    found = []
    for node, peer in itertools.permutations(nodes, 2):
        newer = await lacking(ctx, vid, node, peer)
        if newer:
            deletes = sum(1 for s in newer if s.deleted)
            found.append(
                {"holder": node, "lacking": peer, "puts": len(newer) - deletes, "deletes": deletes}
            )
    return found


def _say_volume(ctx: ShellContext, entry: dict[str, Any], apply: bool) -> None:
    vid, nodes = entry["volume"], entry["replicas"]
    if not entry["differences"]:
        ctx.say(f"volume {vid}: {len(nodes)} replicas agree ({', '.join(nodes)})")
        return
    for d in entry["differences"]:
        ctx.say(
            f"volume {vid}: {d['holder']} holds {d['puts']} newer needle(s) and "
            f"{d['deletes']} newer delete(s) that {d['lacking']} lacks"
        )
    if not apply:
        ctx.say(f"volume {vid}: replicas differ; -apply makes them converge")
    elif entry["after"]:
        ctx.say(f"volume {vid}: replicas still differ after syncing")
    else:
        ctx.say(f"volume {vid}: synced, {len(nodes)} replicas agree")


# ---------------------------------------------------------------------------- scrub

_MODES = ("full", "local", "reads")


def _scrub_flags(fs: FlagSet) -> None:
    fs.add("node", "", "comma-separated volume servers <host>:<port> (default: every one)")
    fs.add("volumeId", "", "comma-separated volume ids (default: every volume)")
    fs.add("mode", "full", "full (local and reads mean the same for normal volumes)")
    fs.add("details", False, "list every corrupt needle")
    fs.add("json", False, "print the reports as JSON")


@command(
    "volume.scrub",
    "check the CRC of every live needle now (rotted ones are repaired from a replica)",
    _scrub_flags,
)
async def scrub(ctx: ShellContext, opts: dict[str, Any], args: list[str]) -> None:
    if opts["mode"] not in _MODES:
        raise UsageError(
            f"-mode {opts['mode']!r}: weedpy scrubs in full mode ({', '.join(_MODES)})"
        )
    vids = parse_ids(opts["volumeId"])
    ctx.lock.check()
    snap = await snapshot(ctx)
    known = [n.url for n in snap.nodes]
    nodes = [n for n in opts["node"].split(",") if n] or known
    unknown = [n for n in nodes if n not in known]
    if unknown:
        raise UsageError(f"-node: {', '.join(unknown)} not in the cluster")
    jobs: list[tuple[str, int | None]] = []
    for node in nodes:
        if not vids:
            jobs.append((node, None))
            continue
        jobs.extend((node, vid) for vid in vids if node in snap.holders(vid))
    missing = [vid for vid in vids if not any(v == vid for _, v in jobs)]
    if missing:
        raise errors.VolumeNotFound(
            f"volume(s) {', '.join(map(str, missing))} not found on {', '.join(nodes)}"
        )
    quiet = opts["json"]
    if not quiet:
        ctx.say("using FULL mode")
    reports: list[tuple[str, ScrubReport]] = []
    done_nodes: list[str] = []
    for node, vid in jobs:
        if not quiet and node not in done_nodes:
            ctx.say(f"Scrubbing {node} ({len(done_nodes) + 1}/{len(nodes)})...")
            done_nodes.append(node)
        reports.append((node, await ctx.admin.scrub(node, vid)))
    broken = [(node, c) for node, r in reports for c in r.corrupt if not c.repaired]
    repaired = [(node, c) for node, r in reports for c in r.corrupt if c.repaired]
    if quiet:
        ctx.emit(
            [
                {"node": node, "volume": vid, **_json(r)}
                for (node, vid), (_, r) in zip(jobs, reports, strict=True)
            ]
        )
    else:
        needles = sum(r.needles for _, r in reports)
        volumes = sum(r.volumes for _, r in reports)
        checked = sum(r.checked_bytes for _, r in reports)
        ctx.say(
            f"Scrubbed {needles} needles ({checked} bytes) in {volumes} volumes "
            f"on {len(done_nodes)} nodes"
        )
        for label, found in (("repaired from a replica", repaired), ("NOT repaired", broken)):
            if not found:
                continue
            affected = sorted({f"{node}:{c.volume_id}" for node, c in found})
            ctx.say(f"{len(found)} corrupt needle(s) {label}: {' '.join(affected)}")
            if opts["details"]:
                for node, c in found:
                    ctx.say(
                        f"\t[{node}] needle {c.key:x} of volume {c.volume_id} at offset "
                        f"{c.offset}: {c.reason}"
                    )
    if broken:
        raise errors.WeedError(f"{len(broken)} corrupt needle(s) have no sound copy on any replica")


def _json(r: ScrubReport) -> dict[str, Any]:
    return {
        "volumes": r.volumes,
        "needles": r.needles,
        "bytes": r.checked_bytes,
        "corrupt": [
            {
                "volume": c.volume_id,
                "key": c.key,
                "offset": c.offset,
                "size": c.size,
                "reason": c.reason,
                "repaired": c.repaired,
            }
            for c in r.corrupt
        ],
    }


# ---------------------------------------------------------------------------- vacuum


def _vacuum_flags(fs: FlagSet) -> None:
    fs.add("garbageThreshold", 0.3, "vacuum volumes whose garbage ratio is above this")
    fs.add("collection", "", "vacuum only this collection")
    fs.add("volumeId", "", "comma-separated volume ids (default: every volume)")


@command("volume.vacuum", "compact volumes holding more garbage than the threshold", _vacuum_flags)
async def vacuum(ctx: ShellContext, opts: dict[str, Any], args: list[str]) -> None:
    threshold = float(opts["garbageThreshold"])
    if not 0.0 <= threshold <= 1.0:
        raise UsageError(f"-garbageThreshold {threshold}: want a ratio from 0 to 1")
    vids = parse_ids(opts["volumeId"])
    ctx.lock.check()
    for vid in vids:
        if not await holders(ctx, vid):
            raise errors.VolumeNotFound(f"volume {vid} not found", volume_id=vid)
    params = {"garbageThreshold": repr(threshold)}
    if opts["collection"]:
        params["collection"] = opts["collection"]
    for query in [{**params, "volumeId": str(v)} for v in vids] or [params]:
        reply = await ctx.http.request(
            "POST", ctx.master, "/vol/vacuum", params=query, cluster=True
        )
        reply.expect("the master's /vol/vacuum")
    what = f"volume(s) {','.join(map(str, vids))}" if vids else "every volume"
    ctx.say(
        f"vacuumed {what} above {threshold} garbage"
        + (f" in collection {opts['collection']!r}" if opts["collection"] else "")
    )
