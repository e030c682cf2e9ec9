"""Build topologies from dicts (STYLE.md #9) for the topology tests.

    {"dc1": {"rack1": {"n1": {"max": 3, "volumes": [1, 2]}}}}

A node named `n1` registers as `n1:8080`. Volumes are ids (placement "000") or VolumeReports.
"""

from __future__ import annotations

from typing import Any

from seaweed_py.formats.replica_placement import ReplicaPlacement
from seaweed_py.topology import Heartbeat, Topology, VolumeReport

LIMIT = 1000


def node_id(name: str) -> str:
    return f"{name}:8080"


def heartbeat(dc: str, rack: str, name: str, spec: dict[str, Any]) -> Heartbeat:
    volumes = tuple(
        v if isinstance(v, VolumeReport) else VolumeReport(id=v) for v in spec.get("volumes", ())
    )
    return Heartbeat(
        ip=name,
        port=8080,
        data_center=dc,
        rack=rack,
        max_volume_counts=spec.get("disks", {"hdd": spec.get("max", 0)}),
        volumes=volumes,
    )


def build(
    cluster: dict[str, dict[str, dict[str, dict[str, Any]]]], now: float = 0.0, limit: int = LIMIT
) -> Topology:
    topo = Topology(volume_size_limit=limit, pulse_seconds=5.0)
    for dc, racks in cluster.items():
        for rack, nodes in racks.items():
            for name, spec in nodes.items():
                topo.apply_heartbeat(heartbeat(dc, rack, name, spec), now)
    return topo


def grid(dcs: int, racks: int, nodes: int, max_volumes: int = 5) -> dict[str, Any]:
    return {
        f"dc{d}": {
            f"r{d}{r}": {f"n{d}{r}{n}": {"max": max_volumes} for n in range(nodes)}
            for r in range(racks)
        }
        for d in range(dcs)
    }


def rp(code: str) -> ReplicaPlacement:
    return ReplicaPlacement.parse(code)


def test_build_places_nodes_under_their_data_center_and_rack() -> None:
    topo = build(
        {"dc1": {"rack1": {"n1": {"max": 3, "volumes": [1, 2]}}, "rack2": {"n2": {"max": 2}}}}
    )
    assert sorted(topo.data_centers) == ["dc1"]
    assert sorted(topo.data_centers["dc1"].racks) == ["rack1", "rack2"]
    n1 = topo.nodes[node_id("n1")]
    assert (n1.data_center.id, n1.rack.id) == ("dc1", "rack1")
    assert n1.free_slots("hdd") == 1
    assert topo.max_slots() == 5 and topo.free_slots() == 3
    assert [n.id for n in topo.lookup(2)] == [node_id("n1")]
