"""Request counters of one volume server and their Prometheus exposition.

Handlers bump plain integer attributes (no lock, no label lookup on the hot path: one event
loop owns them); a custom collector turns them into metrics when `/metrics` is scraped. Each
server has its own `CollectorRegistry`, so several servers can live in one process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

__all__ = ["Stats"]


class Stats:
    """Counters since start, plus gauges computed at scrape time."""

    def __init__(self, gauges: Callable[[], Sequence[tuple[str, str, float]]]) -> None:
        self.reads = 0
        self.writes = 0
        self.deletes = 0
        self.write_errors = 0
        self.replica_failures = 0
        self.bytes_written = 0
        self.corrupt_reads = 0  # reads answered "corrupt"
        self.verify_reads = 0  # large needles whose data was read to check its CRC
        self.verify_memo_hits = 0  # large needles a remembered verification vouched for
        self._gauges = gauges
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))

    def exposition(self) -> bytes:
        return bytes(generate_latest(self.registry))


class _Collector:
    def __init__(self, stats: Stats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Any]:
        s = self._stats
        requests = CounterMetricFamily(
            "weedpy_volume_requests", "Blob requests handled", labels=["type"]
        )
        requests.add_metric(["read"], s.reads)
        requests.add_metric(["write"], s.writes)
        requests.add_metric(["delete"], s.deletes)
        yield requests
        yield CounterMetricFamily(
            "weedpy_volume_write_errors", "Writes that failed", value=s.write_errors
        )
        yield CounterMetricFamily(
            "weedpy_volume_replica_failures",
            "Writes or deletes a replica did not store",
            value=s.replica_failures,
        )
        yield CounterMetricFamily(
            "weedpy_volume_written_bytes", "Bytes of blob data written", value=s.bytes_written
        )
        yield CounterMetricFamily(
            "weedpy_volume_corrupt_reads",
            "Reads answered 500 because the needle's stored bytes fail their checks",
            value=s.corrupt_reads,
        )
        verifications = CounterMetricFamily(
            "weedpy_volume_needle_verifications",
            "Large needles checked before streaming: data read, or a remembered verdict",
            labels=["how"],
        )
        verifications.add_metric(["read"], s.verify_reads)
        verifications.add_metric(["memo"], s.verify_memo_hits)
        yield verifications
        for name, help_text, value in s._gauges():
            yield GaugeMetricFamily(name, help_text, value=value)
