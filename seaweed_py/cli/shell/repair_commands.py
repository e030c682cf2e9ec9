"""Commands that change where volumes live (weed shell's names and flags; maintenance spec §3):

| command | flags | needs `lock` |
|---|---|---|
| `volume.fix.replication` | `-apply` (`-force`), `-n`, `-collectionPattern`, `-doDelete`, `-maxParallelization`, `-maxParallelizationPerServer`, `-volumesPerStep`, `-json` | with `-apply` |
| `volume.balance` | `-apply` (`-force`), `-collection`, `-dataCenter`, `-racks`, `-nodes`, `-volumesPerExec`, `-noLock`, `-json` | yes, unless `-noLock` |
| `volume.move` | `-volumeId`, `-source`, `-target`, `-noLock` | yes, unless `-noLock` |
| `volume.copy` | `-volumeId`, `-source`, `-target`, `-noLock` | yes, unless `-noLock` |
| `volume.delete` | `-node`, `-volumeId` | yes |
| `volume.mark` | `-node` and `-volumeId`, or `-collection`; `-readonly` or `-writable` | yes |

The plans are data (`topology/repair.py` for re-replication and trims, `topology/balance.py`
for balance); the steps are `client/repair.py` (copies and trims, shared with the master's repair loop) and
`replica_ops.py` (moves). Without `-apply` the two planners only print what
they would do, after weed's simulation line.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from seaweed_py import errors
from seaweed_py.cli.shell.cluster import (
    Snapshot,
    collection_matcher,
    holders,
    snapshot,
    wait_for_holders,
)
from seaweed_py.cli.shell.registry import (
    SIMULATION,
    ShellContext,
    apply_flags,
    applying,
    command,
)
from seaweed_py.cli.shell.replica_ops import copy_volume, move_volume
from seaweed_py.config.flags import FlagSet, UsageError
from seaweed_py.formats.wire import DeleteVolume, MarkReadonly, MarkWritable
from seaweed_py.topology.balance import MoveOrder, plan_balance
from seaweed_py.topology.repair import CopyOrder, RepairPlan, TrimOrder, plan

__all__ = [
    "balance",
    "fix_replication",
    "volume_copy",
    "volume_delete",
    "volume_mark",
    "volume_move",
]

# `-apply` repeats passes while they make progress (one new copy per volume per pass).
_MAX_PASSES: Final = 10


def volume_id(opts: dict[str, Any], flag: str = "volumeId") -> int:
    vid = opts[flag]
    if not isinstance(vid, int) or not 0 < vid <= 0xFFFFFFFF:
        raise UsageError(f"-{flag} is required: a volume id from 1 to 4294967295")
    return vid


def server(opts: dict[str, Any], flag: str) -> str:
    """A `host:port` flag's value, checked."""
    text = str(opts[flag]).strip()
    host, _, port = text.rpartition(":")
    if not text:
        raise UsageError(f"-{flag} is required: a volume server as host:port")
    if not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise UsageError(f"-{flag} {text!r}: want a volume server as host:port")
    return text


def _positive(opts: dict[str, Any], flag: str, low: int = 1) -> int:
    value = int(opts[flag])
    if value < low:
        raise UsageError(f"-{flag} {value}: want at least {low}")
    return value


# ---------------------------------------------------------------------------- fix.replication


def _fix_flags(fs: FlagSet) -> None:
    apply_flags(fs, "apply the fix")
    fs.add("n", False, "only print the plan, even with -apply (older weed's spelling)")
    fs.add("collectionPattern", "", "comma-separated collections, '*' and '?' wildcards")
    fs.add(
        "doDelete",
        True,
        "also remove surplus copies (each survivor first takes what that copy holds newer)",
    )
    fs.add("maxParallelization", 10, "copies made at once")
    fs.add("maxParallelizationPerServer", 1, "copies made onto one server at once")
    fs.add("volumesPerStep", 0, "copies planned per pass (0: no limit)")
    fs.add("json", False, "print the actions and their results as JSON")


@command(
    "volume.fix.replication",
    "copy under-replicated volumes to where their placement wants them, trim surplus copies",
    _fix_flags,
)
async def fix_replication(ctx: ShellContext, opts: dict[str, Any], args: list[str]) -> None:
    apply = applying(ctx, opts) and not opts["n"]
    parallel = _positive(opts, "maxParallelization")
    per_server = _positive(opts, "maxParallelizationPerServer")
    per_step = _positive(opts, "volumesPerStep", 0)
    if apply:
        ctx.lock.check()
    quiet = opts["json"]
    say = (lambda line: None) if quiet else ctx.say
    if not apply:
        say(SIMULATION)
    match = collection_matcher(opts["collectionPattern"])
    actions: list[dict[str, Any]] = []
    unplaceable: set[int] = set()
    failed = 0
    for _ in range(_MAX_PASSES):
        snap = await snapshot(ctx)
        wanted = {vid for vid, v in snap.view.volumes.items() if match(v.collection)}
        todo = plan(snap.view, volumes=wanted, per_node=per_server, max_copies=per_step or None)
        if not opts["doDelete"]:
            todo.trims = []
        _describe(todo, snap, say)
        for u in todo.unplaceable:
            if u.volume not in unplaceable:
                unplaceable.add(u.volume)
                actions.append({"action": "unplaceable", "volume": u.volume, "reason": u.reason})
        if not apply or not todo.actions():
            actions.extend(_planned(todo))
            break
        results = await _carry_out(ctx, todo, parallel, say)
        actions.extend(results)
        done = sum(1 for r in results if r["result"] == "done")
        failed += len(results) - done
        if not done:
            say(
                f"no progress made on {len(todo.actions())} volume(s), stopping; free up "
                "capacity or adjust replica placement, then re-run"
            )
            break
    if quiet:
        ctx.emit({"apply": apply, "actions": actions})
    elif not actions:
        ctx.say("every volume has the copies its replica placement asks for")
    if failed:
        raise errors.WeedError(f"{failed} repair(s) failed (see above)")


def _describe(todo: RepairPlan, snap: Snapshot, say: Any) -> None:
    """The plan in weed's words (maintenance spec §3.2)."""
    view = snap.view
    for c in todo.copies:
        vol = view.volumes[c.volume]
        places, rp = view.places(vol), vol.placement
        if len(places) < rp.copy_count:
            say(f"volume {c.volume} replication {rp}, but under replicated +{len(places)}")
        else:
            say(
                f"volume {c.volume} replication {rp} is not well placed "
                f"[{', '.join(map(str, places))}], adding a well-placed replica before trimming..."
            )
        say(f"replicating volume {c.volume} {rp} from {c.source} to dataNode {c.target} ...")
    for t in todo.trims:
        vol = view.volumes[t.volume]
        say(
            f"volume {t.volume} replication {vol.placement}, but over replicated "
            f"+{len(view.places(vol))}"
        )
        say(f"deleting volume {t.volume} from {t.doomed} ...")
    for u in todo.unplaceable:
        vol = view.volumes[u.volume]
        say(
            f"failed to place volume {u.volume} replica as {vol.placement}, "
            f"existing:{len(vol.copies)}: {u.reason}"
        )


def _planned(todo: RepairPlan) -> list[dict[str, Any]]:
    return [_action(a, "planned") for a in todo.actions()]


def _action(a: CopyOrder | TrimOrder, result: str, error: str = "") -> dict[str, Any]:
    if isinstance(a, CopyOrder):
        found: dict[str, Any] = {
            "action": "copy",
            "volume": a.volume,
            "source": a.source,
            "target": a.target,
        }
    else:
        found = {"action": "trim", "volume": a.volume, "node": a.doomed, "keep": list(a.keep)}
    found["reason"] = a.reason
    found["result"] = result
    if error:
        found["error"] = error
    return found


async def _carry_out(
    ctx: ShellContext, todo: RepairPlan, parallel: int, say: Any
) -> list[dict[str, Any]]:
    gate = asyncio.Semaphore(parallel)

    async def one(a: CopyOrder | TrimOrder) -> dict[str, Any]:
        async with gate:
            try:
                ctx.lock.check()
                if isinstance(a, CopyOrder):
                    copied = await ctx.repairs.copy(a)
                    after = {*await holders(ctx, a.volume), a.target}
                    await wait_for_holders(ctx, a.volume, after)
                    say(f"copied volume {a.volume} to {a.target}: {copied.size} bytes")
                else:
                    trimmed = await ctx.repairs.trim(a)
                    await wait_for_holders(ctx, a.volume, a.keep)
                    took = f" (the others took {trimmed.pulled} newer states first)"
                    say(f"deleted volume {a.volume} from {a.doomed}" + took * bool(trimmed.pulled))
            except errors.WeedError as exc:
                what = "under" if isinstance(a, CopyOrder) else "over"
                say(f"fixing {what} replicated volume {a.volume}: {exc.message}")
                return _action(a, "failed", exc.message)
            return _action(a, "done")

    return list(await asyncio.gather(*(one(a) for a in todo.actions())))


# ---------------------------------------------------------------------------- balance


def _balance_flags(fs: FlagSet) -> None:
    apply_flags(fs, "apply the balancing plan")
    fs.add(
        "collection",
        "ALL_COLLECTIONS",
        "move only volumes of these collections (comma-separated, wildcards; _default: the "
        "unnamed one); ALL_COLLECTIONS: any",
    )
    fs.add("dataCenter", "", "only balance the servers of this data center")
    fs.add("racks", "", "only balance the servers of these racks (comma-separated)")
    fs.add("nodes", "", "only balance these servers (comma-separated host:port)")
    fs.add("volumesPerExec", 0, "move at most this many volumes (0: no limit)")
    fs.add("noLock", False, "do not require the admin lock, at your own risk")
    fs.add("json", False, "print the plan (and results) as JSON")


@command(
    "volume.balance",
    "even out the volumes per slot across servers (the plan only, without -apply)",
    _balance_flags,
)
async def balance(ctx: ShellContext, opts: dict[str, Any], args: list[str]) -> None:
    apply = applying(ctx, opts)
    limit = _positive(opts, "volumesPerExec", 0)
    if not opts["noLock"]:
        ctx.lock.check()
    if opts["collection"] == "EACH_COLLECTION":
        raise UsageError("-collection EACH_COLLECTION is not offered: name the collections")
    snap = await snapshot(ctx)
    racks = {r for r in opts["racks"].split(",") if r}
    named = {n for n in opts["nodes"].split(",") if n}
    chosen = [
        n.url
        for n in snap.nodes
        if (not opts["dataCenter"] or n.data_center == opts["dataCenter"])
        and (not racks or n.rack in racks)
        and (not named or n.url in named)
    ]
    unknown = named - {n.url for n in snap.nodes}
    if unknown:
        raise UsageError(f"-nodes: {', '.join(sorted(unknown))} not in the cluster")
    pattern = "" if opts["collection"] == "ALL_COLLECTIONS" else opts["collection"]
    match = collection_matcher(pattern)
    moves = plan_balance(
        snap.view, nodes=chosen, volumes=lambda v: bool(match(v.collection)), max_moves=limit
    )
    quiet = opts["json"]
    say = (lambda line: None) if quiet else ctx.say
    if not apply:
        say(SIMULATION)
    for m in moves:
        say(f"{m.describe()} (slots used {m.source_ratio:.2f} => {m.target_ratio:.2f})")
    if not moves:
        say(f"{len(chosen)} servers are balanced: nothing to move")
    results: list[dict[str, Any]] = []
    failed = 0
    for m in moves:
        result = _move_json(m, "planned")
        if apply:
            try:
                await move_volume(ctx, m.volume, m.source, m.target, say, _checker(ctx, opts))
                result["result"] = "done"
            except errors.WeedError as exc:
                failed += 1
                say(f"moving volume {m.volume}: {exc.message}")
                result.update(result="failed", error=exc.message)
        results.append(result)
    if quiet:
        ctx.emit({"apply": apply, "moves": results})
    if failed:
        raise errors.WeedError(f"{failed} of {len(moves)} moves failed (see above)")


def _move_json(m: MoveOrder, result: str) -> dict[str, Any]:
    return {
        "volume": m.volume,
        "collection": m.collection,
        "source": m.source,
        "target": m.target,
        "result": result,
    }


def _checker(ctx: ShellContext, opts: dict[str, Any]) -> Any:
    return (lambda: None) if opts.get("noLock") else ctx.lock.check


# ---------------------------------------------------------------------------- move, copy


def _move_flags(fs: FlagSet) -> None:
    fs.add("volumeId", 0, "the volume id")
    fs.add("source", "", "the source volume server <host>:<port>")
    fs.add("target", "", "the target volume server <host>:<port>")
    fs.add("noLock", False, "do not require the admin lock, at your own risk")


@command(
    "volume.move",
    "move a volume to another server: copy, compare, then delete the source's copy",
    _move_flags,
)
async def volume_move(ctx: ShellContext, opts: dict[str, Any], args: list[str]) -> None:
    vid = volume_id(opts)
    source, target = server(opts, "source"), server(opts, "target")
    check = _checker(ctx, opts)
    check()
    await move_volume(ctx, vid, source, target, ctx.say, check)


@command(
    "volume.copy",
    "copy a volume to another server (one copy more than its placement asks)",
    _move_flags,
)
async def volume_copy(ctx: ShellContext, opts: dict[str, Any], args: list[str]) -> None:
    vid = volume_id(opts)
    source, target = server(opts, "source"), server(opts, "target")
    _checker(ctx, opts)()
    if source == target:
        raise UsageError(f"-source and -target are both {source}")
    status = await ctx.admin.volume_status(source, vid)
    froze = not status.read_only
    if froze:
        # weed freezes a writable source for the copy too: what it holds is then what the
        # copy holds (the copy also catches up, so this only shortens it).
        await ctx.admin.send(source, MarkReadonly(vid, persist=False))
    try:
        size = await copy_volume(ctx, vid, source, target, status.collection, "volume.copy")
    finally:
        if froze:
            await ctx.admin.send(source, MarkWritable(vid))
    ctx.say(f"copied volume {vid} from {source} to {target}: {size} bytes")


# ---------------------------------------------------------------------------- delete, mark


def _delete_flags(fs: FlagSet) -> None:
    fs.add("node", "", "the volume server <host>:<port>")
    fs.add("volumeId", 0, "the volume id")


@command("volume.delete", "delete one copy of a volume from one server", _delete_flags)
async def volume_delete(ctx: ShellContext, opts: dict[str, Any], args: list[str]) -> None:
    vid = volume_id(opts)
    node = server(opts, "node")
    ctx.lock.check()
    await ctx.admin.send(node, DeleteVolume(vid))
    ctx.say(f"deleted volume {vid} from {node}")


def _mark_flags(fs: FlagSet) -> None:
    fs.add("node", "", "the volume server <host>:<port> (with -volumeId)")
    fs.add("volumeId", 0, "the volume id (with -node)")
    fs.add("collection", "", "every copy of every volume of this collection (_default: unnamed)")
    fs.add("readonly", False, "mark read-only (kept across restarts)")
    fs.add("writable", False, "mark writable")


@command("volume.mark", "mark volumes read-only or writable", _mark_flags)
async def volume_mark(ctx: ShellContext, opts: dict[str, Any], args: list[str]) -> None:
    if opts["readonly"] == opts["writable"]:
        raise UsageError("give exactly one of -readonly and -writable")
    by_collection = bool(opts["collection"])
    if by_collection == bool(opts["node"] or opts["volumeId"]):
        raise UsageError("give -node and -volumeId, or -collection")
    targets: list[tuple[int, str]]
    if by_collection:
        ctx.lock.check()
        match = collection_matcher(opts["collection"])
        snap = await snapshot(ctx)
        targets = [
            (vid, c.node)
            for vid, vol in sorted(snap.view.volumes.items())
            if match(vol.collection)
            for c in sorted(vol.copies, key=lambda c: c.node)
        ]
        if not targets:
            raise errors.NotFound(f"no volume in collection {opts['collection']!r}")
    else:
        targets = [(volume_id(opts), server(opts, "node"))]
        ctx.lock.check()
    state = "readonly" if opts["readonly"] else "writable"
    for vid, node in targets:
        message = MarkReadonly(vid, persist=True) if opts["readonly"] else MarkWritable(vid)
        await ctx.admin.send(node, message)
        ctx.say(f"volume {vid} on {node} marked {state}")
