"""The master's Prometheus metrics, read from its counters and topology at scrape time.

Counting is a plain integer increment on the hot path; the collector turns the counts into
metric families only when `/metrics` is scraped. Each `MasterServer` has its own registry.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from seaweed_py.topology import Sequencer, Topology

__all__ = ["MasterStats", "master_registry"]


@dataclass
class MasterStats:
    assigns: int = 0
    assigned_keys: int = 0
    assign_errors: int = 0
    lookups: int = 0
    lookup_misses: int = 0
    heartbeats: int = 0
    grown_volumes: int = 0
    expired_nodes: int = 0


class _Collector:
    def __init__(self, stats: MasterStats, topology: Topology, sequencer: Sequencer) -> None:
        self._stats = stats
        self._topo = topology
        self._seq = sequencer

    def collect(self) -> Iterator[Metric]:
        s, topo = self._stats, self._topo
        for name, doc, value in (
            ("weedpy_master_assign_requests", "Successful /dir/assign requests.", s.assigns),
            ("weedpy_master_assigned_keys", "File keys handed out by assigns.", s.assigned_keys),
            ("weedpy_master_assign_errors", "Assigns answered with an error.", s.assign_errors),
            ("weedpy_master_lookup_requests", "/dir/lookup requests.", s.lookups),
            ("weedpy_master_lookup_misses", "Lookups of unknown volumes.", s.lookup_misses),
            ("weedpy_master_heartbeats", "Heartbeats received.", s.heartbeats),
            ("weedpy_master_grown_volumes", "Volumes created by growth.", s.grown_volumes),
            (
                "weedpy_master_expired_nodes",
                "Volume servers dropped after missed pulses.",
                s.expired_nodes,
            ),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        writable = sum(len(lay.writables) for lay in topo.layouts.values())
        volumes = sum(1 for _ in topo.volume_ids())
        for name, doc, gauge in (
            ("weedpy_master_volume_servers", "Live volume servers.", len(topo.nodes)),
            ("weedpy_master_volumes", "Volumes known from heartbeats.", volumes),
            ("weedpy_master_writable_volumes", "Volumes taking writes.", writable),
            ("weedpy_master_volume_slots_free", "Free volume slots.", topo.free_slots()),
            ("weedpy_master_volume_slots_max", "Volume slots in total.", topo.max_slots()),
            ("weedpy_master_max_volume_id", "Highest volume id.", topo.max_volume_id),
            ("weedpy_master_next_file_key", "Next file key to hand out.", self._seq.peek),
        ):
            yield GaugeMetricFamily(name, doc, value=gauge)


def master_registry(
    stats: MasterStats, topology: Topology, sequencer: Sequencer
) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(stats, topology, sequencer))
    return registry
