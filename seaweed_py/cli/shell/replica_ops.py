"""The steps the shell's commands are made of, over the volume servers' admin calls
(`client/volume_admin.py`); copies and trims are `client/repair.py`'s, shared with the
master's repair loop.

* **lacking**: the needle states `holder` has that `other` lacks or holds older (digests
  first, needle lists only of the buckets that differ; formats/replica_digest.py decides).
* **move**: the source is frozen (read-only, not persisted), the target copies it, the two are
  compared (every state of the frozen source must be on the target), and only then the
  source's copy is deleted. A failure before that deletes the copy this move made and makes
  the source writable again if the move froze it.
"""

from __future__ import annotations

from collections.abc import Callable

from seaweed_py import errors
from seaweed_py.cli.shell.registry import ShellContext
from seaweed_py.formats.replica_digest import NeedleState, newer_states
from seaweed_py.formats.wire import DeleteVolume, MarkReadonly, MarkWritable
from seaweed_py.topology.repair import CopyOrder

__all__ = ["copy_volume", "lacking", "move_volume"]

Say = Callable[[str], None]
Check = Callable[[], None]


async def copy_volume(
    ctx: ShellContext, vid: int, source: str, target: str, collection: str, why: str
) -> int:
    """Have `target` copy volume `vid` from `source` (client/repair.py, as the master's
    re-replication does); the bytes copied."""
    if source == target:
        raise errors.BadRequest(f"source and target are both {source}", volume_id=vid)
    done = await ctx.repairs.copy(CopyOrder(vid, source, target, collection, why))
    return done.size


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
        await copy_volume(ctx, vid, source, target, status.collection, "volume.move")
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
