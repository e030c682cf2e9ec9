"""The master's Prometheus metrics, read from its counters and topology at scrape time
(names: docs/metrics.md).

Counting is a plain integer increment on the hot path, and the request metrics of
`httpkit.metrics`; the collector turns the counts into metric families only when `/metrics` is
scraped. Each `MasterServer` has its own registry, with the process and Python runtime
collectors of prometheus-client.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)

from seaweed_py.httpkit.metrics import RequestMetrics
from seaweed_py.topology import Sequencer, Topology

__all__ = ["OPERATIONS", "MasterStats", "master_registry"]

OPERATIONS = ("assign", "lookup", "submit", "redirect", "status", "admin", "heartbeat")
"""What the request metrics are labelled with: `/dir/assign`, `/dir/lookup`, `/submit`, the
`/<fid>` redirects, the JSON status endpoints, the cluster changes (`/vol/grow`, `/vol/vacuum`,
`/col/delete`) and the volume servers' calls (heartbeats, `/internal/volume/unwritable` counts as admin)."""


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
    vacuum_passes: int = 0
    vacuumed_volumes: int = 0
    vacuum_failures: int = 0
    vacuum_reclaimed_bytes: int = 0
    vacuum_seconds_count: int = 0
    vacuum_seconds_sum: float = 0.0
    # The repair loop's (master/repair.py): gauges as of its last pass, and its outcomes.
    under_replicated: int = 0
    over_replicated: int = 0
    unplaceable: int = 0
    repairs_in_flight: int = 0
    repairs: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(`copies`|`trims`, `done`|`failed`) → how many."""

    def observe_vacuum(self, seconds: float) -> None:
        """One volume's vacuum (compact and commit, or cleanup) took `seconds`."""
        self.vacuum_seconds_count += 1
        self.vacuum_seconds_sum += seconds


class _Collector:
    def __init__(
        self,
        stats: MasterStats,
        topology: Topology,
        sequencer: Sequencer,
        version: str,
        started: float,
    ) -> None:
        self._stats = stats
        self._topo = topology
        self._seq = sequencer
        self._version = version
        self._started = started

    def collect(self) -> Iterator[Metric]:
        s, topo = self._stats, self._topo
        info = GaugeMetricFamily(
            "weedpy_master_info", "Always 1; labelled with the version.", labels=["version"]
        )
        info.add_metric([self._version], 1)
        yield info
        yield GaugeMetricFamily(
            "weedpy_master_start_time_seconds",
            "When the master started (Unix time).",
            value=self._started,
        )
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
            (
                "weedpy_master_vacuum_passes",
                "Vacuum passes run (automatic sweeps and /vol/vacuum).",
                s.vacuum_passes,
            ),
            (
                "weedpy_master_vacuumed_volumes",
                "Volumes whose selected replicas were compacted and committed.",
                s.vacuumed_volumes,
            ),
            (
                "weedpy_master_vacuum_failures",
                "Volume vacuums that failed (a compaction or a commit), then cleaned up.",
                s.vacuum_failures,
            ),
            (
                "weedpy_master_vacuum_reclaimed_bytes",
                "Bytes of .dat freed by committed vacuums, summed over replicas.",
                s.vacuum_reclaimed_bytes,
            ),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        yield SummaryMetricFamily(
            "weedpy_master_vacuum_duration_seconds",
            "Time to vacuum one volume: compaction, commit (or cleanup) on its replicas.",
            count_value=s.vacuum_seconds_count,
            sum_value=s.vacuum_seconds_sum,
        )
        writable = sum(len(lay.writables) for lay in topo.layouts.values())
        volumes = sum(1 for _ in topo.volume_ids())
        read_only = sum(
            1 for lay in topo.layouts.values() for vol in lay.volumes.values() if vol.read_only
        )
        for name, doc, gauge in (
            ("weedpy_master_volume_servers", "Live volume servers.", len(topo.nodes)),
            ("weedpy_master_volumes", "Volumes known from heartbeats.", volumes),
            ("weedpy_master_writable_volumes", "Volumes taking writes.", writable),
            ("weedpy_master_read_only_volumes", "Volumes marked read-only.", read_only),
            ("weedpy_master_volume_slots_free", "Free volume slots.", topo.free_slots()),
            ("weedpy_master_volume_slots_max", "Volume slots in total.", topo.max_slots()),
            ("weedpy_master_max_volume_id", "Highest volume id.", topo.max_volume_id),
            ("weedpy_master_next_file_key", "Next file key to hand out.", self._seq.peek),
            (
                "weedpy_master_under_replicated_volumes",
                "Volumes with fewer copies than their placement asks, or a spread it refuses.",
                s.under_replicated,
            ),
            (
                "weedpy_master_over_replicated_volumes",
                "Volumes with a copy more than their placement asks.",
                s.over_replicated,
            ),
            (
                "weedpy_master_unplaceable_volumes",
                "Short volumes no live node can take a copy of.",
                s.unplaceable,
            ),
            ("weedpy_master_repairs_in_flight", "Copies and trims under way.", s.repairs_in_flight),
        ):
            yield GaugeMetricFamily(name, doc, value=gauge)
        repairs = CounterMetricFamily(
            "weedpy_master_repairs",
            "Repairs ended, by kind (copy, trim) and outcome (done, failed).",
            labels=["kind", "outcome"],
        )
        for kind, label in (("copies", "copy"), ("trims", "trim")):
            for outcome in ("done", "failed"):
                repairs.add_metric([label, outcome], s.repairs[kind, outcome])
        yield repairs


def master_registry(
    stats: MasterStats,
    topology: Topology,
    sequencer: Sequencer,
    requests: RequestMetrics,
    *,
    version: str,
    started: float,
) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(stats, topology, sequencer, version, started))
    registry.register(requests)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry
