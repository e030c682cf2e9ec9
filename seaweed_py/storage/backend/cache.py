"""A bounded in-memory cache of byte ranges of remote `.dat` objects (`-tierCacheMB`).

Entries are the exact spans reads asked for (a needle record, a chunk of a large needle), keyed
by (object key, offset). A read hits when one cached span of its object covers it whole; a hit
moves the span to the young end, and the oldest spans go when the byte budget is passed. Spans
of objects that are tiered are immutable (a key names one upload), so nothing is ever stale:
a re-upload writes a new key.

Thread-safe (one lock; lookups are a bisect in a sorted list of the object's span starts).
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict

__all__ = ["RangeCache"]


class RangeCache:
    """Up to `capacity` bytes of spans; `capacity` 0 keeps nothing."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(0, capacity)
        self._lru: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._starts: dict[str, list[int]] = {}
        self._size = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def size(self) -> int:
        """Bytes held now."""
        return self._size

    def get(self, key: str, offset: int, length: int) -> bytes | None:
        """The `length` bytes at `offset` of object `key`, if one cached span holds them."""
        if not self.capacity:
            return None
        with self._lock:
            starts = self._starts.get(key)
            if starts:
                i = bisect.bisect_right(starts, offset) - 1
                # The span starting nearest below may be short; an earlier, longer one may
                # still cover the read: look back a few spans (they rarely overlap).
                for j in range(i, max(-1, i - 4), -1):
                    start = starts[j]
                    data = self._lru.get((key, start))
                    if data is not None and start + len(data) >= offset + length:
                        self._lru.move_to_end((key, start))
                        self.hits += 1
                        return data[offset - start : offset - start + length]
            self.misses += 1
            return None

    def put(self, key: str, offset: int, data: bytes) -> None:
        if not self.capacity or not data or len(data) > self.capacity // 4:
            return  # a span larger than a quarter of the cache would flush it
        with self._lock:
            old = self._lru.pop((key, offset), None)
            if old is not None:
                self._size -= len(old)
            else:
                bisect.insort(self._starts.setdefault(key, []), offset)
            self._lru[(key, offset)] = data
            self._size += len(data)
            while self._size > self.capacity:
                (old_key, old_offset), dropped = self._lru.popitem(last=False)
                self._size -= len(dropped)
                starts = self._starts[old_key]
                del starts[bisect.bisect_left(starts, old_offset)]
                if not starts:
                    del self._starts[old_key]

    def forget(self, key: str) -> None:
        """Drop every span of `key` (its object was deleted)."""
        with self._lock:
            for offset in self._starts.pop(key, []):
                data = self._lru.pop((key, offset), None)
                if data is not None:
                    self._size -= len(data)
