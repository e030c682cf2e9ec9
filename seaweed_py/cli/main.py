"""`weedpy` entry point: dispatches to one module per command.

Each command lives in `seaweed_py/cli/<module>.py` and exposes `run(argv) -> int`. Modules are
imported only when their command runs, so `weedpy upload` does not pay for the server stack.
`weedpy -config_dir=DIR <command> ...`, weed's global flag, is handed to the command as its own
`-config_dir`. A security.toml the command cannot use is one line on stderr and exit code 1.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from collections.abc import Sequence

from seaweed_py import __version__
from seaweed_py.config.flags import HelpRequested, UsageError
from seaweed_py.errors import StartupError
from seaweed_py.security.settings import SecurityConfigError
from seaweed_py.storage.backend.settings import BackendConfigError

__all__ = ["COMMANDS", "SERVER_PACKAGES", "main"]

SERVER_PACKAGES = frozenset(
    (
        "uvloop",
        "httptools",
        "orjson",
        "numpy",
        "crc32c",
        "prometheus_client",
        "isal",
        "PIL",
        "obstore",
    )
)
"""Import names of the `server` extra (pyproject.toml): a client-only install lacks them, and
the commands that need them say so."""

# command -> (module under seaweed_py.cli, one-line summary)
COMMANDS: dict[str, tuple[str, str]] = {
    "master": ("master_cmd", "start a master server (topology, volume growth, file id assignment)"),
    "scaffold": ("scaffold", "print a commented security.toml (-config=security)"),
    "token": (
        "token",
        "print a cluster token (or a file id token) signed with security.toml's key",
    ),
    "benchmark": ("benchmark", "load a cluster with writes then random reads; report like weed"),
    "compact": ("compact", "copy a volume's live needles into .cpd/.cpx offline (weed compact)"),
    "download": ("download", "download blobs by file id (chunked files come back whole)"),
    "export": ("export", "list the live needles of a volume, or write them into a tar file"),
    "fix": ("fix", "check volumes for corrupt needles offline; -rebuild rewrites the .idx"),
    "server": ("server_cmd", "start a master and a volume server in one process"),
    "shell": ("shell", "administer a cluster: volume.list, volume.tier.upload/download/mount"),
    "upload": ("upload", "upload files (chunked above -maxMB) and print their file ids"),
    "volume": ("volume_cmd", "start a volume server (blob storage, replication, heartbeats)"),
}


def _usage() -> str:
    width = max((len(c) for c in COMMANDS), default=8)
    lines = [
        "weedpy: a SeaweedFS-compatible blob store.",
        "",
        "Usage: weedpy [-config_dir=DIR] <command> [flags]   (weedpy help <command> for its flags)",
        "",
        "Commands:",
    ]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in sorted(COMMANDS.items())]
    lines.append(f"  {'version':<{width}}  print the version")
    return "\n".join(lines)


def _global_config_dir(args: list[str]) -> tuple[list[str], list[str]]:
    """(`-config_dir` given before the command, as command flags; the other arguments)."""
    taken: list[str] = []
    while args and args[0].lstrip("-").partition("=")[0] == "config_dir" and args[0] != "-":
        _, eq, value = args.pop(0).lstrip("-").partition("=")
        if not eq:
            if not args:
                break
            value = args.pop(0)
        taken = [f"-config_dir={value}"]
    return taken, args


def main(argv: Sequence[str] | None = None) -> int:
    try:
        code = _main(list(sys.argv[1:] if argv is None else argv))
        sys.stdout.flush()  # here, so a closed pipe is seen here, not at interpreter exit
    except BrokenPipeError:
        # `weedpy --help | head`: the reader left; say nothing more, as a command killed by
        # SIGPIPE would (and as it, exit 128 + SIGPIPE).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    return code


def _main(argv: list[str]) -> int:
    config_dir, args = _global_config_dir(argv)
    if args[:1] == ["help"] and len(args) > 1:
        args = [args[1], "-h"]  # `weedpy help upload` is `weedpy upload -h`
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
    try:
        module = importlib.import_module(f"seaweed_py.cli.{COMMANDS[command][0]}")
        code: int = module.run([*config_dir, *rest])
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.partition(".")[0] not in SERVER_PACKAGES:
            raise
        print(
            f"weedpy {command}: needs the server dependencies (missing {exc.name}): "
            "pip install 'weedpy[server]'",
            file=sys.stderr,
        )
        return 2
    except HelpRequested as exc:
        print(exc)
        return 0
    except UsageError as exc:
        print(f"weedpy {command}: {exc}", file=sys.stderr)
        return 2
    except SecurityConfigError as exc:
        # Fail closed: a server told to be secure never starts open by mistake.
        print(f"weedpy {command}: security: {exc}", file=sys.stderr)
        return 1
    except StartupError as exc:
        # An operator mistake (port taken, -dir mistyped), not a crash: one line naming the
        # flag and what is wrong with it, a failing exit, no traceback.
        print(f"weedpy {command}: {exc}", file=sys.stderr)
        return 1
    except BackendConfigError as exc:
        print(f"weedpy {command}: tiering: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
