"""Which volumes the master tiers by itself (`-tier.dest`): pure selection over the topology.

A volume is picked when, as its replicas last reported it:

- none of them is tiered already;
- its collection matches `collection_pattern` (a shell wildcard; `""` matches every one);
- it is full (the largest replica above `full_percent` of the volume size limit) or read-only;
- it is quiet: no replica modified it in the last `quiet_for` seconds.

weed's `volume.tier.upload` without `-volumeId` selects the same way (tiering spec §4.1), but
only when an operator runs it, and `""` there means the default collection only.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from seaweed_py.topology.topology import Topology

__all__ = ["TierPolicy", "volumes_to_tier"]


@dataclass(frozen=True, slots=True)
class TierPolicy:
    dest: str = ""
    """The backend volumes go to (`s3`, `s3.<id>`); `""`: the policy is off."""
    quiet_for: float = 24 * 3600.0
    full_percent: float = 95.0
    collection_pattern: str = ""
    interval: float = 600.0
    """Seconds between two selections."""

    @property
    def enabled(self) -> bool:
        return bool(self.dest)


def volumes_to_tier(topology: Topology, policy: TierPolicy, now: float) -> list[int]:
    """The volume ids to tier now (`now` in Unix seconds), in id order."""
    limit = topology.volume_size_limit * policy.full_percent / 100.0
    picked: list[int] = []
    for vid in sorted(topology.volume_ids()):
        reports = [n.volumes[vid] for n in topology.lookup(vid) if vid in n.volumes]
        if not reports or any(r.remote_storage_name for r in reports):
            continue
        collection = reports[0].collection
        if policy.collection_pattern and not fnmatch.fnmatchcase(
            collection, policy.collection_pattern
        ):
            continue
        full = max(r.size for r in reports) > limit
        if not (full or any(r.read_only for r in reports)):
            continue
        if max(r.modified_at_second for r in reports) + policy.quiet_for > now:
            continue
        picked.append(vid)
    return picked
