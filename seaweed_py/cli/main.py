"""`weedpy` entry point: dispatches to one module per command.

Each command lives in `seaweed_py/cli/<module>.py` and exposes `run(argv) -> int`. Modules are
imported only when their command runs, so `weedpy upload` does not pay for the server stack.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from seaweed_py import __version__
from seaweed_py.config.flags import HelpRequested, UsageError

__all__ = ["COMMANDS", "main"]

# command -> (module under seaweed_py.cli, one-line summary)
COMMANDS: dict[str, tuple[str, str]] = {
    "master": ("master_cmd", "start a master server (topology, volume growth, file id assignment)"),
    "benchmark": ("benchmark", "load a cluster with writes then random reads; report like weed"),
    "download": ("download", "download blobs by file id (chunked files come back whole)"),
    "export": ("export", "list the live needles of a volume, or write them into a tar file"),
    "fix": ("fix", "check volumes for corrupt needles offline; -rebuild rewrites the .idx"),
    "server": ("server_cmd", "start a master and a volume server in one process"),
    "upload": ("upload", "upload files (chunked above -maxMB) and print their file ids"),
    "volume": ("volume_cmd", "start a volume server (blob storage, replication, heartbeats)"),
}


def _usage() -> str:
    width = max((len(c) for c in COMMANDS), default=8)
    lines = [
        "weedpy: a SeaweedFS-compatible blob store.",
        "",
        "Usage: weedpy <command> [flags]   (weedpy <command> -h for its flags)",
        "",
        "Commands:",
    ]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in sorted(COMMANDS.items())]
    lines.append(f"  {'version':<{width}}  print the version")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "-help", "--help", "help"):
        print(_usage())
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command in ("version", "-version", "--version"):
        print(f"weedpy {__version__}")
        return 0
    if command not in COMMANDS:
        print(f"weedpy: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"seaweed_py.cli.{COMMANDS[command][0]}")
    try:
        code: int = module.run(rest)
    except HelpRequested as exc:
        print(exc)
        return 0
    except UsageError as exc:
        print(f"weedpy {command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
