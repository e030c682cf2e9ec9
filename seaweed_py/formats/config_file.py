"""weed's TOML configuration files (`security.toml`, `master.toml`): where one is looked for,
and reading it.

weed (viper) looks in `-config_dir` when given, then in `SEARCH_DIRS` in order, and reads the
first regular file of that name (a directory of that name is passed over)."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["SEARCH_DIRS", "find_config_file", "read_config_file"]

SEARCH_DIRS = (".", "~/.seaweedfs", "/usr/local/etc/seaweedfs", "/etc/seaweedfs")
"""Searched in this order after `-config_dir`, as weed searches them."""


def find_config_file(
    name: str,
    config_dir: str | None,
    search_dirs: tuple[str, ...] = SEARCH_DIRS,
    *,
    fail_closed: bool = False,
) -> Path | None:
    """The file `name` that is read: the first one in the search order; None if none is.
    `fail_closed` returns the first entry of that name even if it is no regular file, so that
    reading it fails instead of the search going on (security.toml: a server must not start
    without the security its operator meant to give it)."""
    dirs = (config_dir, *search_dirs) if config_dir else search_dirs
    for directory in dirs:
        candidate = Path(os.path.expanduser(directory)) / name
        if candidate.is_file() or (fail_closed and candidate.exists()):
            return candidate
    return None


def read_config_file(path: Path, error: Callable[[str], Exception]) -> dict[str, Any]:
    """The TOML document at `path`; `error(message)` raised (one line, naming the file) when
    it cannot be read or is not TOML."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise error(f"{path}: {exc.strerror or exc}") from None
