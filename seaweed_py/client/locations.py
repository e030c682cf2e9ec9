"""Volume locations as the master reports them, and the client's expiring cache of them.

`/dir/lookup` answers which volume servers hold a volume. Locations change rarely (a server dies,
a volume is moved or re-replicated), so clients cache them per volume id. An entry expires after
`ttl` seconds and is dropped early when a read or write through it fails (404, connection
error): the next use asks the master again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Location", "LocationCache"]


@dataclass(frozen=True, slots=True)
class Location:
    """One volume server holding a volume: `url` and `public_url` are `host:port`."""

    url: str
    public_url: str
    data_center: str = ""

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Location:
        url = str(obj.get("url") or "")
        return cls(url, str(obj.get("publicUrl") or url), str(obj.get("dataCenter") or ""))


class LocationCache:
    """Volume id -> locations, each entry valid for `ttl` seconds of `clock` time.

    Not thread-safe: it belongs to one client on one event loop.
    """

    def __init__(self, ttl: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._entries: dict[int, tuple[float, tuple[Location, ...]]] = {}

    def get(self, volume_id: int) -> tuple[Location, ...] | None:
        """The cached locations, or None when unknown or expired."""
        entry = self._entries.get(volume_id)
        if entry is None:
            return None
        expires, locations = entry
        if self._clock() >= expires:
            del self._entries[volume_id]
            return None
        return locations

    def put(self, volume_id: int, locations: Iterable[Location]) -> None:
        found = tuple(locations)
        if found and self.ttl > 0:
            self._entries[volume_id] = (self._clock() + self.ttl, found)

    def invalidate(self, volume_id: int) -> None:
        """Forget a volume, e.g. after a read through a cached location failed."""
        self._entries.pop(volume_id, None)

    def clear(self) -> None:
        self._entries.clear()

    def __contains__(self, volume_id: object) -> bool:
        return isinstance(volume_id, int) and self.get(volume_id) is not None

    def __len__(self) -> int:
        return len(self._entries)
