"""The volume server's side of vacuum (spec §9.3) and TTL expiry (§9.5): the storage calls the
master's `/admin/vacuum/*` requests make, run off the event loop and counted, and the pulse's
removal of expired TTL volumes.

| call | storage | answer |
|---|---|---|
| `GET /admin/vacuum/check?volume=` | `Volume.garbage_level` | `{"garbageRatio"}` |
| `POST /admin/vacuum/compact?volume=&preallocate=` | `Store.compact_volume` | `{"processedBytes", "needles", "expired", "corrupt", "sizeBefore", "compactedSize"}` |
| `POST /admin/vacuum/commit?volume=` | `Store.commit_compaction` | `{"isReadOnly", "volumeSize", "reclaimedBytes", "replayed"}` |
| `POST /admin/vacuum/cleanup?volume=` | `Store.cleanup_compaction` | `{}` |

A compaction holds no lock while it copies, so it runs in a thread of its own for as long as
it takes; the commit holds the volume's write lock (writes to that volume wait) for the
replay, two renames and the reopen.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from seaweed_py.errors import VolumeNotFound
from seaweed_py.storage.store import Store
from seaweed_py.storage.volume_vacuum import CommitResult, CompactResult

if TYPE_CHECKING:
    from seaweed_py.volume.stats import Stats

__all__ = ["VolumeVacuum"]

log = logging.getLogger(__name__)


class VolumeVacuum:
    """Vacuum steps of one volume server's store, with their figures in `stats`."""

    def __init__(self, store: Store, stats: Stats) -> None:
        self._store = store
        self._stats = stats

    def check(self, vid: int) -> float:
        """The garbage ratio of volume `vid` (spec §9.1)."""
        volume = self._store.get(vid)
        if volume is None:
            raise VolumeNotFound("volume not found on this server", volume_id=vid)
        return volume.garbage_level()

    async def compact(self, vid: int, preallocate: int) -> CompactResult:
        stats = self._stats.vacuum
        try:
            result = await asyncio.to_thread(
                self._store.compact_volume, vid, preallocate=preallocate
            )
        except Exception:
            stats.failed("compact")
            raise
        stats.compacted(result)
        return result

    async def commit(self, vid: int) -> CommitResult:
        stats = self._stats.vacuum
        try:
            result = await asyncio.to_thread(self._store.commit_compaction, vid)
        except Exception:
            stats.failed("commit")
            raise
        stats.committed(result)
        return result

    async def cleanup(self, vid: int) -> bool:
        return await asyncio.to_thread(self._store.cleanup_compaction, vid)

    def remove_expired(self) -> list[int]:
        """Delete the TTL volumes expired long enough (blocking: run it off the loop)."""
        removed = self._store.remove_expired_volumes()
        self._stats.vacuum.expired_volumes_removed += len(removed)
        return removed
