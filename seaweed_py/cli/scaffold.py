"""`weedpy scaffold -config=security`: print a commented security.toml (or write it into
`-output`), like `weed scaffold`. weedpy reads no other configuration file, so `security` is the
only `-config` it knows."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from seaweed_py.config.flags import FlagSet, UsageError
from seaweed_py.security.scaffold import SECURITY_TOML
from seaweed_py.security.settings import FILE_NAME

__all__ = ["build_flags", "run"]


def build_flags() -> FlagSet:
    flags = FlagSet(
        "scaffold",
        "Print a configuration file with every setting weedpy reads, commented.\n"
        "Example: weedpy scaffold -config=security -output=/etc/seaweedfs",
    )
    flags.add("config", "security", "[security] the configuration file to generate")
    flags.add("output", "", "if not empty, save the file into this directory instead")
    return flags


def run(argv: Sequence[str]) -> int:
    opts, rest = build_flags().parse(argv)
    if rest:
        raise UsageError(f"unexpected arguments: {' '.join(rest)}")
    if opts["config"] != "security":
        raise UsageError(f"-config={opts['config']}: weedpy reads only security.toml")
    if not opts["output"]:
        print(SECURITY_TOML, end="")
        return 0
    folder = Path(opts["output"])
    if not folder.is_dir():
        raise UsageError(f"-output is not a directory: {folder}")
    (folder / FILE_NAME).write_text(SECURITY_TOML)
    return 0
