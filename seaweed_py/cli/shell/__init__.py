"""`weedpy shell`: administer a cluster, as `weed shell` does.

    weedpy shell -master=127.0.0.1:9333                  # interactive (history, tab completion)
    echo "volume.list" | weedpy shell -master=...        # commands from standard input
    weedpy shell -master=... -c "lock; volume.tier.upload -volumeId=7 -dest=s3"

One command per line (or several separated by `;`), each `name -flag=value ...` as in weed
shell; `help` lists the commands, `help NAME` (or `NAME -h`) shows a command's flags, `exit`
leaves. A failing command prints one line `error: ...` and the shell goes on; the exit status
is 1 when any command failed (as weed 4.48's from standard input). The commands talk
to the master and the volume servers through `seaweed_py.client` only, and sign their calls
with a cluster token when security.toml (found like the servers find it, `-config_dir`) has a
signing key.

Commands that change the cluster need the admin lock first (`lock`, then `unlock` or leaving
the shell gives it back), as weed's do: `need to run "lock" first to continue` otherwise. The
shell checks at start that the master answers: without one it says so in one line and exits 1.

Command groups live one module each (`volume_commands.py`, `tier_commands.py`,
`repair_commands.py`, `check_commands.py`, `cluster_commands.py`) and register themselves in
`registry.COMMANDS`; the steps the repairs are made of are `replica_ops.py`, the master's views
as a placement `ClusterView` `cluster.py`, the lock's client `lock.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

import aiohttp

from seaweed_py.cli.secure import add_config_dir_flag, load_security
from seaweed_py.cli.shell import (
    check_commands,
    cluster_commands,
    repair_commands,
    tier_commands,
    volume_commands,
)
from seaweed_py.cli.shell.cluster import master_json
from seaweed_py.cli.shell.registry import COMMANDS, ShellContext
from seaweed_py.client.cluster import Outgoing
from seaweed_py.config.flags import FlagSet, HelpRequested, UsageError
from seaweed_py.errors import WeedError

__all__ = ["build_flags", "execute", "run"]

# Imported for their registrations.
_GROUPS = (check_commands, cluster_commands, repair_commands, tier_commands, volume_commands)
_HISTORY = "~/.weedpy_shell_history"
_PROMPT = "> "


def build_flags() -> FlagSet:
    fs = FlagSet(
        "shell",
        "administer a cluster as weed shell does: volume.list, volume.fix.replication, "
        "volume.balance, volume.move, volume.check.disk, collection.list, lock, ... "
        "(help inside lists them)",
    )
    fs.add("master", "localhost:9333", "the master, host:port")
    fs.add("c", "", "run these commands (';'-separated) and exit, instead of reading stdin")
    add_config_dir_flag(fs)
    return fs


def run(argv: Sequence[str]) -> int:
    opts, _ = build_flags().parse(argv)
    _, security = load_security(opts)
    out = Outgoing(security.https_client, security.keys)
    master = opts["master"].split("://", 1)[-1].split(",")[0].strip()
    if opts["c"]:
        lines: Iterable[str] = [opts["c"]]
    elif sys.stdin.isatty():
        lines = _interactive()
    else:
        lines = sys.stdin
    try:
        return asyncio.run(_session(master, out, lines, sys.stdout))
    except KeyboardInterrupt:
        print(file=sys.stdout)
        return 130


async def _session(
    master: str,
    out: Outgoing,
    lines: Iterable[str],
    stdout: IO[str],
    connector: aiohttp.BaseConnector | None = None,
) -> int:
    """Run `lines` against `master`; the exit status. `connector`: how to reach the cluster
    (default: `out`'s TLS; tests bind another source address)."""
    async with aiohttp.ClientSession(connector=connector or out.connector()) as session:
        ctx = ShellContext(master, out, session, stdout)
        try:
            await master_json(ctx, "/cluster/status")
        except WeedError as exc:
            ctx.say(f"error: {exc.message}")
            return 1
        try:
            return await _commands(ctx, lines)
        finally:
            await ctx.lock.close()


async def _commands(ctx: ShellContext, lines: Iterable[str]) -> int:
    failed = False
    source = iter(lines)
    while True:
        # Read off the event loop: the lock's renewals go on while the prompt waits.
        line = await asyncio.to_thread(next, source, None)
        if line is None:
            break
        for text in _split(line):
            if text in ("exit", "quit"):
                return 1 if failed else 0
            if not await execute(ctx, text):
                failed = True
    return 1 if failed else 0


def _split(line: str) -> list[str]:
    """The commands of one input line (or of `-c`'s text): `;` and newlines separate them,
    `#` starts a comment line."""
    parts = (p.strip() for row in line.splitlines() for p in row.split(";"))
    return [p for p in parts if p and not p.startswith("#")]


async def execute(ctx: ShellContext, text: str) -> bool:
    """Run one command line; False when it failed (the reason printed as one line)."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        ctx.say(f"error: {exc}")
        return False
    name, args = words[0], words[1:]
    if name == "help":
        _help(ctx, args)
        return True
    cmd = COMMANDS.get(name)
    if cmd is None:
        ctx.say(f"error: unknown command {name!r} (help lists the commands)")
        return False
    try:
        opts, positional = cmd.flags().parse(args)
        await cmd.run(ctx, opts, positional)
    except HelpRequested as exc:
        ctx.say(_usage(str(exc)))
    except UsageError as exc:
        ctx.say(f"error: {name}: {str(exc).splitlines()[0]}")
        return False
    except WeedError as exc:
        ctx.say(f"error: {name}: {exc.message}")
        return False
    return True


def _usage(text: str) -> str:
    return text.replace("Usage: weedpy ", "Usage: ", 1)


def _help(ctx: ShellContext, args: list[str]) -> None:
    if args and args[0] in COMMANDS:
        ctx.say(_usage(COMMANDS[args[0]].flags().usage()))
        return
    ctx.say(
        'Type:\t"help <command>" for help on <command>. Most commands support "<command> -h" also for options. '
    )
    width = max(len(n) for n in COMMANDS) + 8
    for name in sorted(COMMANDS):
        ctx.say(f"  {name:<{width}}\t# {COMMANDS[name].summary} ")
    ctx.say(f"  {'exit':<{width}}\t# leave the shell (also quit, or end of input) ")


def _interactive() -> Iterable[str]:
    """Lines typed at the prompt, with readline history and tab completion."""
    try:
        import readline
    except ImportError:  # not on every platform: plain input then
        readline = None  # type: ignore[assignment]
    history = Path(os.path.expanduser(_HISTORY))
    if readline is not None:
        readline.set_completer(_completer)
        readline.set_completer_delims(" ;")
        readline.parse_and_bind("tab: complete")
        with contextlib.suppress(OSError):
            readline.read_history_file(history)
    try:
        while True:
            try:
                yield input(_PROMPT)
            except EOFError:
                print(file=sys.stdout)
                return
            except KeyboardInterrupt:
                print(file=sys.stdout)
                continue
    finally:
        if readline is not None:
            with contextlib.suppress(OSError):
                readline.write_history_file(history)


def _completer(text: str, state: int) -> str | None:
    import readline

    words = readline.get_line_buffer().split(";")[-1].split()
    if len(words) <= 1 and not readline.get_line_buffer().endswith(" "):
        options = [n + " " for n in sorted([*COMMANDS, "help", "exit"]) if n.startswith(text)]
    else:
        cmd = COMMANDS.get(words[0]) if words else None
        flags: dict[str, Any] = cmd.flags().flags if cmd is not None else {}
        options = [f"-{f}=" for f in sorted(flags) if f"-{f}".startswith(text)]
    return options[state] if state < len(options) else None
