"""The shell's commands: a registry filled by one module per command group.

    @command("volume.list", "list volumes of every data node", flags=_list_flags)
    async def volume_list(ctx: ShellContext, opts: dict[str, Any], args: list[str]) -> None: ...

A command's flags are a `FlagSet` (weed's spellings: `-volumeId=7`, `-volumeId 7`); `-h` prints
its help. A command reports through `ctx.say` (human lines) or `ctx.emit` (`-json` objects) and
fails by raising a `WeedError` or `UsageError`, which the shell prints as one line.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import IO, Any

import aiohttp

from seaweed_py.cli.shell.lock import ShellLock
from seaweed_py.client.cluster import Outgoing
from seaweed_py.client.http import HttpClient, Timeout
from seaweed_py.client.repair import Repairs
from seaweed_py.client.tiering import Tiering
from seaweed_py.client.volume_admin import VolumeAdmin
from seaweed_py.config.flags import FlagSet

__all__ = ["COMMANDS", "Command", "ShellContext", "command"]

# Admin calls of the shell's commands (the tiering ones stream, with their own deadline).
_ADMIN_TIMEOUT = Timeout(total=120, connect=5)
Handler = Callable[["ShellContext", dict[str, Any], list[str]], Awaitable[None]]


@dataclass
class ShellContext:
    """What every command reaches the cluster with, and where it writes."""

    master: str
    out: Outgoing
    session: aiohttp.ClientSession
    stdout: IO[str]
    http: HttpClient = field(init=False)
    admin: VolumeAdmin = field(init=False)
    repairs: Repairs = field(init=False)
    tiering: Tiering = field(init=False)
    lock: ShellLock = field(init=False)

    def __post_init__(self) -> None:
        self.http = HttpClient(self.out, _ADMIN_TIMEOUT, session=self.session)
        self.tiering = Tiering(self.http, self.master)
        self.admin = self.tiering.admin
        self.repairs = Repairs(self.admin)
        self.lock = ShellLock(self.http, self.master, self.say)

    def say(self, line: str) -> None:
        print(line, file=self.stdout, flush=True)

    def emit(self, obj: object) -> None:
        print(json.dumps(obj, indent=2), file=self.stdout, flush=True)


@dataclass(frozen=True)
class Command:
    name: str
    summary: str
    flags: Callable[[], FlagSet]
    run: Handler


COMMANDS: dict[str, Command] = {}


def command(
    name: str, summary: str, flags: Callable[[FlagSet], None] | None = None
) -> Callable[[Handler], Handler]:
    """Register the decorated coroutine as the shell command `name`."""

    def build() -> FlagSet:
        fs = FlagSet(name, summary)
        if flags is not None:
            flags(fs)
        return fs

    def register(handler: Handler) -> Handler:
        if name in COMMANDS:
            raise ValueError(f"shell command {name} registered twice")
        COMMANDS[name] = Command(name, summary, build, handler)
        return handler

    return register


# ---------------------------------------------------------------------------- shared flags

SIMULATION = 'Running in simulation mode. Use "-apply" option to apply the changes.'


def apply_flags(fs: FlagSet, what: str) -> None:
    """weed 4.48's `-apply`, and `-force`, its deprecated alias."""
    fs.add("apply", False, what)
    fs.add("force", False, f"{what} (alias for -apply)")


def applying(ctx: ShellContext, opts: dict[str, Any]) -> bool:
    """Whether `-apply` (or `-force`, with weed's warning) was given."""
    if opts["force"]:
        ctx.say("WARNING: -force is deprecated, please use -apply instead.")
    return bool(opts["apply"] or opts["force"])
