"""`volume.tier.upload`, `volume.tier.download` (weed shell's names and flags) and weedpy's
`volume.tier.mount`; the sequences themselves are `client/tiering.py`.

| command | flags |
|---|---|
| `volume.tier.upload` | `-volumeId` (required), `-dest` (`s3`, `s3.default`, `s3.<id>`; required), `-collection`, `-keepLocalDatFile`, `-json` |
| `volume.tier.download` | `-volumeId` (required), `-collection`, `-json` |
| `volume.tier.mount` | `-volumeId`, `-node` (`host:port`), `-source` (backend, default `s3`), `-collection`, `-key`, `-json` |
| `volume.tier.compact` | `-volumeId` (default: every tiered volume), `-collection`, `-garbageThreshold` (0.3), `-timeout` (weedpy's), `-json` |

weed's automatic selection (`volume.tier.upload` without `-volumeId`: `-fullPercent`,
`-quietFor`) is the master's `-tier.*` policy in weedpy; `-concurrency` is not offered (the
volume server uploads 4 parts at a time). Both are docs/compat.md rows. `volume.tier.compact`
runs `Tiering.vacuum` on each volume in turn (weed's moves every holder but one off the object);
rerun, it finishes a vacuum cut short (`client/tier_vacuum.py`). `-timeout` bounds each of its
steps, so that a frozen volume server fails the command instead of hanging it.
Each command needs the admin lock (`lock`), as weed's `volume.tier.*` do.
"""

from __future__ import annotations

import time
from typing import Any

from seaweed_py.cli.shell.registry import ShellContext, command
from seaweed_py.config.flags import Duration, FlagSet, UsageError
from seaweed_py.storage.backend.settings import backend_name
from seaweed_py.topology.vacuum import VacuumTimeouts

__all__ = ["tier_compact", "tier_download", "tier_mount", "tier_upload"]

_VACUUM_TIMEOUTS = VacuumTimeouts.for_size_limit(30_000 << 20)
"""Step deadlines of a tiered vacuum from the shell: those of the largest default volume."""


def _upload_flags(fs: FlagSet) -> None:
    fs.add("volumeId", 0, "the volume to move to the bucket")
    fs.add("dest", "", "the backend to upload to: s3, s3.default or s3.<id>")
    fs.add("collection", "", "the volume's collection (checked when given)")
    fs.add("keepLocalDatFile", False, "keep the .dat on the source server (reads use the bucket)")
    fs.add("json", False, "print the result as JSON")


def _download_flags(fs: FlagSet) -> None:
    fs.add("volumeId", 0, "the volume to bring back to local disk")
    fs.add("collection", "", "the volume's collection (checked when given)")
    fs.add("json", False, "print the result as JSON")


def _mount_flags(fs: FlagSet) -> None:
    fs.add("volumeId", 0, "the tiered volume to mount")
    fs.add("node", "", "the volume server (host:port) to mount it on")
    fs.add("source", "s3", "the backend holding it: s3, s3.default or s3.<id>")
    fs.add("collection", "", "the volume's collection")
    fs.add("key", "", "the data object's key (default: the newest upload of the volume)")
    fs.add("json", False, "print the result as JSON")


def _compact_flags(fs: FlagSet) -> None:
    fs.add("volumeId", 0, "the tiered volume to vacuum (default: every tiered volume)")
    fs.add("collection", "", "only the tiered volumes of this collection")
    fs.add("garbageThreshold", 0.3, "vacuum a volume whose garbage ratio is at least this")
    fs.add(
        "timeout",
        Duration(0),
        "the longest any one step may take, or stay silent while it transfers (default: a "
        "minute per GB of the largest volume for a check, three for a compaction, 120s of "
        "silence for a transfer)",
    )
    fs.add("json", False, "print the results as JSON")


def _volume_id(opts: dict[str, Any]) -> int:
    vid = int(opts["volumeId"])
    if vid <= 0 or vid > 0xFFFFFFFF:
        raise UsageError("-volumeId is required (a volume id from 1 to 4294967295)")
    return vid


class _Progress:
    """`copied P%, N bytes, X MB/s` lines, at most one a second, as weed prints them."""

    def __init__(self, ctx: ShellContext) -> None:
        self._ctx = ctx
        self._start = time.monotonic()

    def __call__(self, line: dict[str, Any]) -> None:
        done = int(line.get("processed", 0))
        rate = done / max(1e-6, time.monotonic() - self._start) / 1e6
        pct = float(line.get("percentage", 0.0))
        self._ctx.say(f"copied {pct:.2f}%, {done} bytes, {rate:.2f} MB/s")


@command("volume.tier.upload", "move a volume's .dat to an S3 bucket", _upload_flags)
async def tier_upload(ctx: ShellContext, opts: dict[str, Any], args: list[str]) -> None:
    vid = _volume_id(opts)
    ctx.lock.check()
    if not opts["dest"]:
        raise UsageError("-dest is required: s3, s3.default or s3.<id>")
    try:
        dest = backend_name(opts["dest"])
    except ValueError as exc:
        raise UsageError(f"-dest: {exc}") from None
    report = await ctx.tiering.upload(
        vid,
        dest,
        collection=opts["collection"] or None,
        keep_local=opts["keepLocalDatFile"],
        progress=None if opts["json"] else _Progress(ctx),
        say=None if opts["json"] else ctx.say,
    )
    if opts["json"]:
        ctx.emit(report.to_json())
    elif report.already:
        ctx.say(f"volume {vid} is already in {report.backend} as {report.key}")
    else:
        ctx.say(
            f"volume {vid} moved to {report.backend} as {report.key}: {report.size} bytes "
            f"in {report.seconds:.1f}s"
            + (f"; mounted on {', '.join(report.replicas)}" if report.replicas else "")
        )


@command("volume.tier.download", "bring a tiered volume's .dat back to local disk", _download_flags)
async def tier_download(ctx: ShellContext, opts: dict[str, Any], args: list[str]) -> None:
    vid = _volume_id(opts)
    ctx.lock.check()
    report = await ctx.tiering.download(
        vid,
        collection=opts["collection"] or None,
        progress=None if opts["json"] else _Progress(ctx),
        say=None if opts["json"] else ctx.say,
    )
    if opts["json"]:
        ctx.emit(report.to_json())
    elif report.already:
        ctx.say(f"volume {vid} is already on local disk")
    else:
        holders = [report.source, *report.replicas]
        ctx.say(
            f"volume {vid} is local again on {', '.join(holders)}: {report.size} bytes "
            f"in {report.seconds:.1f}s"
        )


@command(
    "volume.tier.mount",
    "serve a tiered volume on a volume server from its bucket alone",
    _mount_flags,
)
async def tier_mount(ctx: ShellContext, opts: dict[str, Any], args: list[str]) -> None:
    vid = _volume_id(opts)
    ctx.lock.check()
    if not opts["node"]:
        raise UsageError("-node is required: the volume server (host:port) to mount it on")
    try:
        source = backend_name(opts["source"])
    except ValueError as exc:
        raise UsageError(f"-source: {exc}") from None
    answer = await ctx.tiering.mount(
        vid, opts["node"], source, collection=opts["collection"], key=opts["key"]
    )
    if opts["json"]:
        ctx.emit(answer)
    else:
        ctx.say(f"volume {vid} mounted on {opts['node']} from {source} as {answer.get('key')}")


@command(
    "volume.tier.compact",
    "vacuum tiered volumes: download, compact and upload again, every holder moved",
    _compact_flags,
)
async def tier_compact(ctx: ShellContext, opts: dict[str, Any], args: list[str]) -> None:
    threshold = float(opts["garbageThreshold"])
    if not 0.0 <= threshold <= 1.0:
        raise UsageError("-garbageThreshold must be a ratio from 0 to 1")
    step = float(opts["timeout"])
    if step < 0:
        raise UsageError("-timeout must not be negative")
    timeouts = VacuumTimeouts.every(step) if step else _VACUUM_TIMEOUTS
    ctx.lock.check()
    if opts["volumeId"]:
        vids = [_volume_id(opts)]
    else:
        vids = await ctx.tiering.tiered_volumes(opts["collection"] or None)
    reports = []
    for vid in vids:
        report = await ctx.tiering.vacuum(
            vid,
            threshold=threshold,
            timeouts=timeouts,
            say=None if opts["json"] else ctx.say,
        )
        reports.append(report.to_json())
        if opts["json"]:
            continue
        if report.already:
            ctx.say(f"volume {vid}: garbage below {threshold}, left as it is")
        else:
            ctx.say(
                f"volume {vid} vacuumed: {report.reclaimed} bytes reclaimed, now "
                f"{report.backend} {report.key} ({report.size} bytes) in {report.seconds:.1f}s"
            )
    if opts["json"]:
        ctx.emit(reports)
    elif not vids:
        ctx.say("no tiered volume")
