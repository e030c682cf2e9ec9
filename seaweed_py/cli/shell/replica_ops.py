"""The steps the shell's repair commands are made of, over the volume servers' admin calls
(`client/volume_admin.py`): copy a volume, prove one replica holds everything another does,
remove a surplus copy without losing a write, move a volume.

* **copy**: the target pulls the volume (`/admin/volume/copy`: checksummed pieces, catch-up
  rounds, then a pull of anything newer from the source).
* **lacking**: the needle states `holder` has that `other` lacks or holds older (digests
  first, needle lists only of the buckets that differ; formats/replica_digest.py decides).
* **trim**: every survivor first pulls what the doomed copy holds newer (`/admin/volume/sync`),
  then each must be proven to lack nothing of it, and only then is the copy deleted. The
  reference's trim deletes a needle's only copy (maintenance spec §3.2); this one refuses.
* **move**: the source is frozen (read-only, not persisted), the target copies it, the two are
  compared (same live needles, both frozen now), and only then the source's copy is deleted.
  A failure before that deletes the copy this move made and makes the source writable again
  if the move froze it.
"""

from __future__ import annotations

from collections.abc import Callable

from seaweed_py import errors
from seaweed_py.cli.shell.registry import ShellContext
from seaweed_py.formats.replica_digest import NeedleState, newer_states
from seaweed_py.formats.wire import (
    CopyVolume,
    DeleteVolume,
    MarkReadonly,
    MarkWritable,
)

__all__ = ["copy_volume", "lacking", "move_volume", "trim_copy"]

Say = Callable[[str], None]
Check = Callable[[], None]


async def copy_volume(
    ctx: ShellContext, vid: int, source: str, target: str, collection: str
) -> int:
    """Have `target` copy volume `vid` from `source`; the bytes copied."""
    if source == target:
        raise errors.BadRequest(f"source and target are both {source}", volume_id=vid)
    done = await ctx.admin.copy_volume(target, CopyVolume(vid, source, collection))
    return int(done.get("size") or 0)


async def lacking(ctx: ShellContext, vid: int, holder: str, other: str) -> list[NeedleState]:
    """The states of `holder`'s copy that `other` lacks or holds older."""
    mine = await ctx.admin.digest(holder, vid)
    theirs = await ctx.admin.digest(other, vid)
    differ = tuple(mine.differing(theirs))
    if not differ:
        return []
    held = await ctx.admin.needle_states(holder, vid, differ)
    other_states = {s.key: s for s in await ctx.admin.needle_states(other, vid, differ)}
    return newer_states(other_states, held)


async def trim_copy(
    ctx: ShellContext, vid: int, doomed: str, keep: tuple[str, ...], say: Say, check: Check
) -> None:
    """Delete the copy of `vid` on `doomed` once every node of `keep` holds what it holds."""
    if not keep:
        raise errors.Conflict(f"volume {vid}: no other copy to keep", volume_id=vid)
    for survivor in keep:
        report = await ctx.admin.sync(survivor, vid, doomed)
        if report.changed:
            say(
                f"volume {vid}: {survivor} took {report.changed} newer needle state(s) from {doomed}"
            )
    for survivor in keep:
        missing = await lacking(ctx, vid, doomed, survivor)
        if missing:
            raise errors.Conflict(
                f"volume {vid}: {survivor} still lacks {len(missing)} needle state(s) of the "
                f"copy on {doomed}; not deleting it",
                volume_id=vid,
            )
    check()
    await ctx.admin.send(doomed, DeleteVolume(vid))


async def move_volume(
    ctx: ShellContext, vid: int, source: str, target: str, say: Say, check: Check
) -> None:
    """Move volume `vid` from `source` to `target` (module docstring), saying each step;
    `check` (the lock's, unless `-noLock`) runs before the source's copy is deleted."""
    if source == target:
        raise errors.BadRequest(f"source and target are both {source}", volume_id=vid)
    status = await ctx.admin.volume_status(source, vid)
    if status.remote_storage_name:
        raise errors.Conflict(
            f"volume {vid} is tiered to {status.remote_storage_name}: mount it instead",
            volume_id=vid,
        )
    froze = not status.read_only
    await ctx.admin.send(source, MarkReadonly(vid, persist=False))
    copied = False
    try:
        say(f"copying volume {vid} from {source} to {target}")
        await copy_volume(ctx, vid, source, target, status.collection)
        copied = True
        say(f"verifying volume {vid} on {target} against {source}")
        missing = await lacking(ctx, vid, source, target)
        if missing:
            raise errors.Conflict(
                f"volume {vid}: the copy on {target} lacks {len(missing)} needle state(s) "
                f"of {source}",
                volume_id=vid,
            )
        check()
    except BaseException:
        await _undo(ctx, vid, source, target, copied=copied, froze=froze, say=say)
        raise
    say(f"deleting volume {vid} from {source}")
    await ctx.admin.send(source, DeleteVolume(vid))
    if froze:
        # The copy took the source's read-only flag with its .vif only if it was persisted;
        # the move's own freeze must not outlive it.
        await ctx.admin.send(target, MarkWritable(vid))
    say(f"moved volume {vid} from {source} to {target}")


async def _undo(
    ctx: ShellContext, vid: int, source: str, target: str, *, copied: bool, froze: bool, say: Say
) -> None:
    if copied:
        try:
            await ctx.admin.send(target, DeleteVolume(vid))
        except errors.WeedError as exc:
            say(f"volume {vid} on {target} was not removed: {exc.message}")
            say(f"volume {vid} is left readonly on {source}")
            return
    if froze:
        try:
            await ctx.admin.send(source, MarkWritable(vid))
        except errors.WeedError as exc:
            say(f"volume {vid} is left readonly on {source}: {exc.message}")
