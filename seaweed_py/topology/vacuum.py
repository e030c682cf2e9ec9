"""What a vacuum pass works on (spec §9.2), decided from the topology alone: which volumes to
check, which replicas to compact, how many volumes may be vacuumed at once on one server, how
long each step may take and when the next automatic sweep starts.

Pure: the master's `master/vacuum.py` asks these questions and makes the calls.

A volume is a candidate when every one of its `copy_count` replicas is registered (a missing
replica could not take part, and would come back with the old layout) and, in an automatic
sweep or a pass without `volumeId`, when no replica is read-only (an explicit `volumeId`
vacuums a sealed volume too, as the reference's `volume.vacuum -volumeId` does). The replicas
whose garbage ratio is at or above the threshold are compacted; the others keep their files
(replicas of one volume may then differ in layout and compaction revision, never in content).

A tiered volume (its `.dat` an object in a bucket) is read-only, so only an explicit `volumeId`
vacuums it; its candidate says so (`tiered`), and the pass runs the tiered sequence for it
(download, compact, re-upload: `client/tiering.py`) instead of compacting where it lies.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from seaweed_py.topology.topology import Topology

__all__ = [
    "MAX_VACUUMS_IN_FLIGHT",
    "SWEEP_JITTER_SECONDS",
    "VacuumCandidate",
    "VacuumPass",
    "VacuumSlots",
    "VacuumTimeouts",
    "select_replicas",
    "sweep_delay",
    "vacuum_candidates",
]

MAX_VACUUMS_IN_FLIGHT: Final = 100
"""Volumes vacuumed at once by one master, whatever the per-server limit (the reference's)."""

SWEEP_JITTER_SECONDS: Final = 120.0
"""At most this much is added to the sweep interval, so masters restarted together (and their
volume servers' disks) do not all sweep in the same second."""


@dataclass(frozen=True, slots=True)
class VacuumPass:
    """What one pass is asked to do: vacuum replicas at or above `threshold`, of `collection`
    (None: every collection) or of `volume_id` only (None: every volume)."""

    threshold: float
    collection: str | None = None
    volume_id: int | None = None


@dataclass(frozen=True, slots=True)
class VacuumCandidate:
    """One volume to check: its id, collection and the servers (`host:port`) holding it;
    `tiered` if any of them reads it from a bucket."""

    volume_id: int
    collection: str
    servers: tuple[str, ...]
    tiered: bool = False


def vacuum_candidates(
    topology: Topology, *, collection: str | None = None, volume_id: int | None = None
) -> list[VacuumCandidate]:
    """The volumes a pass checks, in collection then id order: every one of `collection`
    (None: of every collection), or only `volume_id`. Read-only volumes are left out unless
    `volume_id` names them; so are volumes with fewer registered replicas than their copy
    count."""
    found: list[VacuumCandidate] = []
    for key, layout in sorted(
        topology.layouts.items(), key=lambda kv: (kv[0].collection, str(kv[0].replica_placement))
    ):
        if collection is not None and key.collection != collection:
            continue
        for vid in sorted(layout.volumes):
            if volume_id is not None and vid != volume_id:
                continue
            vol = layout.volumes[vid]
            if len(vol.locations) < layout.copy_count:
                continue
            if vol.read_only and volume_id is None:
                continue
            servers = tuple(sorted(node.url for node in vol.locations))
            tiered = any(
                vid in node.volumes and node.volumes[vid].remote_storage_name
                for node in vol.locations
            )
            found.append(VacuumCandidate(vid, key.collection, servers, tiered))
    return found


def select_replicas(ratios: Mapping[str, float], threshold: float) -> tuple[str, ...]:
    """The servers whose replica's garbage ratio is at or above `threshold` (spec §9.1: a volume
    qualifies when ratio ≥ threshold; a NaN threshold selects none, as in the reference)."""
    return tuple(server for server, ratio in sorted(ratios.items()) if ratio >= threshold)


class VacuumSlots:
    """How many volumes each server is vacuuming, bounded per server (the master's
    `-maxParallelVacuumPerServer`) and in total (`MAX_VACUUMS_IN_FLIGHT`): compaction reads and
    writes a volume's worth of data, so one disk should not copy many volumes at once."""

    def __init__(self, per_server: int, total: int = MAX_VACUUMS_IN_FLIGHT) -> None:
        if per_server < 1 or total < 1:
            raise ValueError(f"vacuum limits must be positive: {per_server}, {total}")
        self.per_server = per_server
        self.total = total
        self._busy: dict[str, int] = {}
        self._in_flight = 0

    def try_take(self, servers: Iterable[str]) -> bool:
        """Take a slot on every one of `servers` if each has one free (and the total allows);
        else take nothing and return False."""
        wanted = set(servers)
        if self._in_flight >= self.total or any(
            self._busy.get(s, 0) >= self.per_server for s in wanted
        ):
            return False
        for s in wanted:
            self._busy[s] = self._busy.get(s, 0) + 1
        self._in_flight += 1
        return True

    def release(self, servers: Iterable[str]) -> None:
        """Give back what `try_take(servers)` took."""
        for s in set(servers):
            left = self._busy.get(s, 0) - 1
            if left > 0:
                self._busy[s] = left
            else:
                self._busy.pop(s, None)
        self._in_flight = max(0, self._in_flight - 1)

    def busy(self, server: str) -> int:
        return self._busy.get(server, 0)

    @property
    def in_flight(self) -> int:
        return self._in_flight


@dataclass(frozen=True, slots=True)
class VacuumTimeouts:
    """Seconds each step may take on one server, scaled by the volume size limit as the
    reference scales them: a minute per started GB for a check or a commit, three for a
    compaction (which copies the whole volume, throttled by `-compactionMBps`). A tiered
    volume's transfers (download, upload: they report progress) and mounts may stay silent
    `transfer` seconds."""

    check: float
    compact: float
    commit: float
    transfer: float = 120.0

    @classmethod
    def every(cls, seconds: float) -> VacuumTimeouts:
        """One bound for every step (the shell's `-timeout`)."""
        return cls(check=seconds, compact=seconds, commit=seconds, transfer=seconds)

    @classmethod
    def for_size_limit(cls, volume_size_limit: int) -> VacuumTimeouts:
        minutes = (volume_size_limit >> 20) // 1000 + 1
        return cls(check=60.0 * minutes, compact=180.0 * minutes, commit=60.0 * minutes)


def sweep_delay(interval: float, rng: random.Random) -> float:
    """Seconds until the next automatic sweep: `interval` plus up to a seventh of it, at most
    `SWEEP_JITTER_SECONDS` (the reference: 14 minutes plus up to 2)."""
    return interval + rng.uniform(0.0, min(SWEEP_JITTER_SECONDS, interval / 7))
