"""Start-up checks of the directories a server keeps its files in (`-dir`, `-mdir`).

A server refuses a directory it could not use before it serves anything, with one
`DirectoryUnusable` naming the setting, the path and what is wrong, rather than failing at the
first write. What is checked, and what `weed` 4.48 does there:

| directory | weedpy | weed |
|---|---|---|
| missing | refused; with `create` (the master's `-mdir`) made, one level, as `weed master` does | the same |
| a regular file, or below one | refused: not a directory | the same |
| not writable (read-only file system, permissions) | refused: a probe file cannot be created | refuses by permission bits only |
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from seaweed_py.errors import DirectoryUnusable

__all__ = ["check_directory"]

_PROBE_PREFIX = ".weedpy-probe-"


def check_directory(path: str | os.PathLike[str], setting: str, *, create: bool = False) -> None:
    """Raise `DirectoryUnusable(setting, path, why)` unless `path` is a directory this process
    can create files in. With `create`, a missing directory whose parent exists is made."""
    where = Path(path)
    try:
        is_dir = where.is_dir()
        exists = is_dir or where.exists()
    except OSError as exc:  # e.g. a component that cannot be searched
        raise DirectoryUnusable(setting, path, _why(exc)) from None
    if not exists:
        if not create or not where.parent.is_dir():
            raise DirectoryUnusable(setting, path, _missing(where))
        try:
            where.mkdir()
        except OSError as exc:
            raise DirectoryUnusable(setting, path, f"cannot create it: {_why(exc)}") from None
    elif not is_dir:
        raise DirectoryUnusable(setting, path, "not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=_PROBE_PREFIX, dir=where)
    except OSError as exc:
        raise DirectoryUnusable(setting, path, f"not writable: {_why(exc)}") from None
    os.close(fd)
    os.unlink(probe)


def _missing(where: Path) -> str:
    """Why a path that does not exist is missing: itself, or a parent that is a file."""
    for parent in where.parents:
        if parent.exists():
            if not parent.is_dir():
                return f"not a directory ({parent} is a file)"
            break
    return "no such directory"


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)
