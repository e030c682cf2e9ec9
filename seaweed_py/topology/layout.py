"""Volume layouts: the volumes of one (collection, replication, ttl, disk type) and which of them
take writes (spec §5.5, §5.6).

A volume is writable while all of these hold:

| condition | cleared by |
|---|---|
| it has exactly `copy_count` known locations | a replica (re)registers / a dead one is replaced |
| no replica reports `readOnly` | the replicas report writable again |
| no replica reports a size ≥ `volumeSizeLimit` ("oversized") | vacuum shrinking it |
| not marked full by an assign's size estimate | ≥ 30 s later, reported size below the crowded line |
| not held back after a failed replicated write | the hold (one pulse, doubling for each failure within an hour, at most 10 minutes) is over and every replica has heartbeated since |
| not being vacuumed (compacted or committed) | the vacuum pass ends, whatever its outcome |

"Crowded" (reported size above 90 % of the limit) keeps a volume writable; it is shown on the
status page and tells background growth to add volumes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from seaweed_py.formats.replica_placement import ReplicaPlacement
from seaweed_py.formats.ttl import Ttl
from seaweed_py.topology.nodes import DataNode

__all__ = [
    "FULL_COOLDOWN_SECONDS",
    "MAX_HOLD_SECONDS",
    "LayoutKey",
    "LayoutVolume",
    "VolumeLayout",
]

FULL_COOLDOWN_SECONDS = 30.0
"""A volume an assign estimate marked full stays out of the writable set at least this long."""

_SAMPLE = 3
"""How many writable volumes an assign samples before the capacity-weighted choice."""

MAX_HOLD_SECONDS = 600.0
"""Longest time a volume whose replicated writes keep failing is held out of the writable set."""

_STRIKE_MEMORY_SECONDS = 3600.0
"""Failures further apart than this start the hold afresh."""


@dataclass(frozen=True, slots=True)
class LayoutKey:
    collection: str
    replica_placement: ReplicaPlacement
    ttl: Ttl
    disk: str


class LayoutVolume:
    """One volume of a layout: where its replicas are and the state that decides writability."""

    __slots__ = (
        "crowded",
        "full_since",
        "id",
        "last_failure",
        "locations",
        "oversized",
        "read_only",
        "size",
        "strikes",
        "unwritable_until",
        "vacuuming",
    )

    def __init__(self, vid: int) -> None:
        self.id = vid
        self.locations: list[DataNode] = []
        self.size = 0
        self.read_only = False
        self.oversized = False
        self.crowded = False
        self.full_since: float | None = None
        self.unwritable_until: float | None = None
        self.last_failure = float("-inf")
        self.strikes = 0
        self.vacuuming = False

    def has_location_in(self, data_center: str, rack: str, node: str) -> bool:
        for loc in self.locations:
            if data_center and loc.data_center.id != data_center:
                continue
            if rack and loc.rack.id != rack:
                continue
            if node and loc.id != node:
                continue
            return True
        return False


class VolumeLayout:
    """The volumes of one layout key, with an ordered list of the writable ones."""

    def __init__(
        self,
        key: LayoutKey,
        volume_size_limit: int,
        crowded_ratio: float = 0.9,
        estimate_bytes: int = 1 << 20,
    ) -> None:
        self.key = key
        self.copy_count = key.replica_placement.copy_count
        self.volume_size_limit = volume_size_limit
        self.crowded_ratio = crowded_ratio
        self.estimate_bytes = estimate_bytes
        self._crowded_line = crowded_ratio * volume_size_limit
        self.wanted_writable = 0
        """The last `writableVolumeCount` an assign asked for (0: none); background growth keeps
        at least that many volumes writable."""
        self.volumes: dict[int, LayoutVolume] = {}
        self.writables: list[int] = []
        self._writable_set: set[int] = set()

    # ------------------------------------------------------------ locations

    def add_location(self, vid: int, node: DataNode, now: float) -> None:
        vol = self.volumes.get(vid)
        if vol is None:
            vol = self.volumes[vid] = LayoutVolume(vid)
        if node not in vol.locations:
            vol.locations.append(node)
        self.refresh(vid, now)

    def remove_location(self, vid: int, node: DataNode, now: float) -> None:
        vol = self.volumes.get(vid)
        if vol is None:
            return
        if node in vol.locations:
            vol.locations.remove(node)
        if not vol.locations:
            del self.volumes[vid]
            self._set_writable(vid, False)
            return
        self.refresh(vid, now)

    def locations(self, vid: int) -> list[DataNode]:
        vol = self.volumes.get(vid)
        return vol.locations if vol is not None else []

    # ------------------------------------------------------------ state

    def refresh(self, vid: int, now: float) -> None:
        """Recompute a volume's state from its replicas' latest reports."""
        vol = self.volumes.get(vid)
        if vol is None:
            return
        reports = [loc.volumes[vid] for loc in vol.locations if vid in loc.volumes]
        vol.size = max((r.size for r in reports), default=0)
        vol.read_only = any(r.read_only for r in reports)
        vol.oversized = vol.size >= self.volume_size_limit
        vol.crowded = vol.size > self.crowded_ratio * self.volume_size_limit
        if (
            vol.full_since is not None
            and now - vol.full_since >= FULL_COOLDOWN_SECONDS
            and not vol.crowded
        ):
            vol.full_since = None
        if vol.unwritable_until is not None and self._replicas_heard_after(
            vol, vol.unwritable_until, now
        ):
            vol.unwritable_until = None
        self._set_writable(vid, self._is_writable(vol))

    def _replicas_heard_after(self, vol: LayoutVolume, until: float, now: float) -> bool:
        """The hold is over and every replica has heartbeated since it ended."""
        if now < until or len(vol.locations) != self.copy_count:
            return False
        return all(loc.last_seen >= until and vol.id in loc.volumes for loc in vol.locations)

    def _is_writable(self, vol: LayoutVolume) -> bool:
        return (
            len(vol.locations) == self.copy_count
            and not vol.read_only
            and not vol.oversized
            and vol.full_since is None
            and vol.unwritable_until is None
            and not vol.vacuuming
        )

    def _set_writable(self, vid: int, writable: bool) -> None:
        if writable:
            if vid not in self._writable_set:
                self._writable_set.add(vid)
                self.writables.append(vid)
        elif vid in self._writable_set:
            self._writable_set.discard(vid)
            self.writables.remove(vid)

    def mark_unwritable(self, vid: int, now: float, base_hold: float) -> bool:
        """A replicated write to `vid` failed: stop assigning it for a while.

        The hold is `base_hold` (a pulse), doubled for every further failure within an hour,
        at most `MAX_HOLD_SECONDS`; the volume returns once the hold is over and every replica
        has heartbeated since, i.e. all of them are alive again. A volume whose replicas keep
        failing is thus retried less and less often instead of retired for good (the volume
        server rolls a failed write back, so the replicas hold the same live needles)."""
        vol = self.volumes.get(vid)
        if vol is None:
            return False
        vol.strikes = vol.strikes + 1 if now - vol.last_failure < _STRIKE_MEMORY_SECONDS else 1
        vol.last_failure = now
        hold = min(MAX_HOLD_SECONDS, base_hold * (1 << min(vol.strikes - 1, 16)))
        vol.unwritable_until = now + hold
        self._set_writable(vid, False)
        return True

    def set_vacuuming(self, vid: int, vacuuming: bool, now: float) -> bool:
        """Take `vid` out of the writable set while it is compacted and committed (spec §9.2),
        or end that; False if the layout does not hold it. Writes that reach a replica meanwhile
        (fids assigned before) are still stored: the commit replays them."""
        vol = self.volumes.get(vid)
        if vol is None:
            return False
        vol.vacuuming = vacuuming
        self.refresh(vid, now)
        return True

    def is_writable(self, vid: int) -> bool:
        return vid in self._writable_set

    @property
    def crowded_count(self) -> int:
        return sum(1 for vid in self.writables if self.volumes[vid].crowded)

    # ------------------------------------------------------------ assign

    def pick_for_write(
        self,
        count: int,
        rng: random.Random,
        now: float,
        data_center: str = "",
        rack: str = "",
        data_node: str = "",
        data_size: int = 0,
    ) -> LayoutVolume | None:
        """Choose a writable volume for `count` new files, or None (the caller should grow).

        Samples up to three writable volumes (matching the location constraints, if any) and
        picks one with probability proportional to its remaining capacity.
        """
        writables = self.writables
        n = len(writables)
        if n == 0:
            return None
        if data_center or rack or data_node:
            sample = self._matching_sample(rng, data_center, rack, data_node)
            if not sample:
                return None
            chosen = self._weighted(sample, rng)
        elif n > _SAMPLE:
            # The common case, unrolled: three uniform draws, one capacity-weighted choice.
            rnd, volumes, limit = rng.random, self.volumes, self.volume_size_limit
            a = volumes[writables[int(rnd() * n)]]
            b = volumes[writables[int(rnd() * n)]]
            c = volumes[writables[int(rnd() * n)]]
            wa = max(1, limit - a.size)
            wb = max(1, limit - b.size)
            r = rnd() * (wa + wb + max(1, limit - c.size))
            chosen = a if r < wa else b if r < wa + wb else c
        else:
            chosen = self._weighted([self.volumes[vid] for vid in writables], rng)
        pending = count * (data_size or self.estimate_bytes)
        if chosen.size + pending > self._crowded_line:
            self._account(chosen, pending, now)
        return chosen

    def _matching_sample(
        self, rng: random.Random, data_center: str, rack: str, data_node: str
    ) -> list[LayoutVolume]:
        writables = self.writables
        n = len(writables)
        start = rng.randrange(n)
        sample: list[LayoutVolume] = []
        for i in range(n):
            vol = self.volumes[writables[(start + i) % n]]
            if vol.has_location_in(data_center, rack, data_node):
                sample.append(vol)
                if len(sample) == _SAMPLE:
                    break
        return sample

    def _weighted(self, sample: list[LayoutVolume], rng: random.Random) -> LayoutVolume:
        if len(sample) == 1:
            return sample[0]
        limit = self.volume_size_limit
        weights = [max(1, limit - v.size) for v in sample]
        r = rng.random() * sum(weights)
        for vol, w in zip(sample, weights, strict=True):
            r -= w
            if r < 0:
                return vol
        return sample[-1]

    def _account(self, vol: LayoutVolume, pending: int, now: float) -> None:
        # The estimate is per assign, on top of the last reported size (as the reference
        # behaves): one huge batch retires a volume at once, a stream of small assigns does not.
        estimate = vol.size + pending
        if estimate >= self.volume_size_limit:
            vol.full_since = now
            self._set_writable(vol.id, False)
        elif estimate > self.crowded_ratio * self.volume_size_limit:
            vol.crowded = True
