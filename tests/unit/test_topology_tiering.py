"""The master's automatic tiering picks full (or read-only), quiet, untiered volumes."""

from __future__ import annotations

import pytest

from seaweed_py.config.flags import FlagSet, UsageError
from seaweed_py.master.options import add_master_flags, master_options
from seaweed_py.topology import VolumeReport
from seaweed_py.topology.tiering import TierPolicy, volumes_to_tier
from tests.unit.test_topology_build import LIMIT, build, rp

NOW = 1_800_000_000
DAY = 86400


def cluster(a: list[VolumeReport], b: list[VolumeReport]) -> dict:  # type: ignore[type-arg]
    return {"dc1": {"r1": {"a": {"max": 20, "volumes": a}, "b": {"max": 20, "volumes": b}}}}


OLD = NOW - 2 * DAY
A = [
    VolumeReport(id=1, size=LIMIT, modified_at_second=OLD),  # full, quiet
    VolumeReport(id=2, size=LIMIT, modified_at_second=NOW - 60),  # full, busy
    VolumeReport(id=3, size=10, modified_at_second=OLD),  # not full
    VolumeReport(id=4, size=10, read_only=True, modified_at_second=OLD),  # read-only, quiet
    VolumeReport(id=5, size=LIMIT, modified_at_second=OLD, remote_storage_name="s3.default"),
    VolumeReport(id=6, size=LIMIT, modified_at_second=OLD, collection="pics"),
    VolumeReport(id=7, size=LIMIT, modified_at_second=OLD, replica_placement=rp("001")),
]
# Volume 7's other replica was written a minute ago: the volume is not quiet.
B = [VolumeReport(id=7, size=LIMIT, modified_at_second=NOW - 60, replica_placement=rp("001"))]


def test_full_or_read_only_and_quiet_volumes_are_picked() -> None:
    topo = build(cluster(A, B))
    assert volumes_to_tier(topo, TierPolicy(dest="s3"), NOW) == [1, 4, 6]
    assert volumes_to_tier(topo, TierPolicy(dest="s3", collection_pattern="pi*"), NOW) == [6]
    assert volumes_to_tier(topo, TierPolicy(dest="s3", quiet_for=0), NOW) == [1, 2, 4, 6, 7]
    assert volumes_to_tier(topo, TierPolicy(dest="s3", full_percent=0.5), NOW) == [1, 3, 4, 6]


def test_a_tiered_volume_takes_no_slot() -> None:
    topo = build(cluster(A, B))
    node = topo.lookup(1)[0]
    assert node.held("hdd") == len(A) - 1


def parse(*args: str) -> TierPolicy:
    fs = FlagSet("master", "")
    add_master_flags(fs)
    values, _ = fs.parse(list(args))
    return master_options(values).tier


def test_policy_flags() -> None:
    assert not parse().enabled
    policy = parse("-tier.dest=s3.cold", "-tier.quietFor=2h", "-tier.fullPercent=80")
    assert (policy.dest, policy.quiet_for, policy.full_percent) == ("s3.cold", 7200.0, 80.0)
    for bad in ("-tier.dest=gcs", "-tier.dest=s3.a.b", "-tier.fullPercent=0", "-tier.interval=0"):
        with pytest.raises(UsageError):
            parse(bad)
