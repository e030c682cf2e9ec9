"""Space on the file systems of a volume server's `-dir` directories.

One `statvfs` per directory. Callers on the event loop run `disk_usages` in a thread: a hung
network file system must stall a status request, not the server.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DiskUsage", "disk_usages"]


@dataclass(frozen=True, slots=True)
class DiskUsage:
    """The file system holding `directory` (resolved); `error` says why it could not be read
    (then the sizes are 0)."""

    directory: str
    total: int = 0
    used: int = 0
    free: int = 0
    error: str = ""

    @property
    def used_fraction(self) -> float:
        return self.used / self.total if self.total else 0.0

    def status_json(self) -> dict[str, Any]:
        """The entry of `/status`'s `DiskStatuses` (the reference's field names)."""
        if self.error:
            return {"dir": self.directory, "error": self.error}
        total = self.total or 1
        return {
            "dir": self.directory,
            "all": self.total,
            "used": self.used,
            "free": self.free,
            "percent_free": round(self.free * 100 / total, 5),
            "percent_used": round(self.used * 100 / total, 5),
        }


def disk_usages(directories: Iterable[str]) -> list[DiskUsage]:
    out: list[DiskUsage] = []
    for directory in directories:
        path = str(Path(directory).resolve())
        try:
            usage = shutil.disk_usage(path)
        except OSError as exc:
            out.append(DiskUsage(path, error=str(exc)))
            continue
        out.append(DiskUsage(path, usage.total, usage.used, usage.free))
    return out
