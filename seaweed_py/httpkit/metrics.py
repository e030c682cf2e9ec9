"""Request latency and bytes per operation, counted for one server's `/metrics`.

A route added with `observe=` reports each answer it gives (`Observer`): the status, the
seconds from the handler's start to the answer handed to the transport (the last chunk, for a
streamed body), and the body bytes sent. `RequestMetrics` turns those reports into one latency
histogram per operation and status class, and byte counters per operation:

    metrics = RequestMetrics("weedpy_master")
    router.add("/dir/assign", handler, observe=metrics.observer("assign"))
    registry.register(metrics)      # a prometheus_client collector

Counting is integer arithmetic on lists made once per operation (no label lookup, no lock: one
event loop owns the counts); the metric families are built only when `/metrics` is scraped.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

from seaweed_py.httpkit.request import Request

__all__ = [
    "LATENCY_BUCKETS",
    "Observer",
    "OperationRate",
    "OperationStats",
    "RecentRates",
    "RequestMetrics",
    "received_bytes",
]

Observer = Callable[[Request, int, float, int], None]
"""`observe(request, status, seconds, sent_body_bytes)`, called once per answer."""

LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
"""Upper bounds (seconds) of the latency buckets: a page-cache read takes well under a
millisecond, a durable write a few, a large blob seconds."""

_BUCKET_LABELS = tuple(repr(bound) for bound in LATENCY_BUCKETS)  # as Prometheus prints them
_CLASSES = 10  # status // 100 for statuses 100-999


def received_bytes(req: Request) -> int:
    """Body bytes received for `req` (a streamed body: what arrived so far)."""
    stream = req.stream
    return len(req.body) if stream is None else stream.received


class OperationStats:
    """Counts of one operation: a latency histogram per status class, bytes in and out."""

    __slots__ = ("_counts", "_sums", "name", "received", "sent")

    def __init__(self, name: str) -> None:
        self.name = name
        # [status class][bucket]; the last bucket holds what is above every bound (+Inf).
        self._counts = [[0] * (len(LATENCY_BUCKETS) + 1) for _ in range(_CLASSES)]
        self._sums = [0.0] * _CLASSES
        self.received = 0
        self.sent = 0

    def observe(self, status: int, seconds: float, received: int, sent: int) -> None:
        cls = status // 100
        self._counts[cls][bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self._sums[cls] += seconds
        self.received += received
        self.sent += sent

    def __call__(self, req: Request, status: int, seconds: float, sent: int) -> None:
        """This operation's `Observer`."""
        self.observe(status, seconds, received_bytes(req), sent)

    @property
    def count(self) -> int:
        """Answers given, of every status."""
        return sum(sum(row) for row in self._counts)

    @property
    def errors(self) -> int:
        """Answers with a 5xx status."""
        return sum(self._counts[5])

    def histograms(self) -> Iterator[tuple[str, list[tuple[str, float]], float]]:
        """(status class like `2xx`, cumulative buckets, sum) of each class seen."""
        for cls, row in enumerate(self._counts):
            if not any(row):
                continue
            buckets: list[tuple[str, float]] = []
            total = 0
            for label, n in zip(_BUCKET_LABELS, row, strict=False):
                total += n
                buckets.append((label, total))
            buckets.append(("+Inf", total + row[-1]))
            yield f"{cls}xx", buckets, self._sums[cls]


class RequestMetrics:
    """The request metrics of one server, named `<prefix>_request_duration_seconds`,
    `<prefix>_request_received_bytes_total` and `<prefix>_request_sent_bytes_total`.
    Register it in the server's registry; it is a collector."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._operations: dict[str, OperationStats] = {}

    def operation(self, name: str) -> OperationStats:
        stats = self._operations.get(name)
        if stats is None:
            stats = self._operations[name] = OperationStats(name)
        return stats

    def observer(self, name: str) -> Observer:
        """The observer of a route that serves one operation."""
        return self.operation(name)

    @property
    def operations(self) -> list[OperationStats]:
        return list(self._operations.values())

    def collect(self) -> Iterator[Metric]:
        p = self._prefix
        latency = HistogramMetricFamily(
            f"{p}_request_duration_seconds",
            "Seconds from a request's handler start to its answer sent, by operation and "
            "status class.",
            labels=["operation", "status"],
        )
        received = CounterMetricFamily(
            f"{p}_request_received_bytes",
            "Request body bytes received, by operation.",
            labels=["operation"],
        )
        sent = CounterMetricFamily(
            f"{p}_request_sent_bytes",
            "Response body bytes sent, by operation.",
            labels=["operation"],
        )
        for name, stats in sorted(self._operations.items()):
            for cls, buckets, total in stats.histograms():
                latency.add_metric([name, cls], buckets, total)
            received.add_metric([name], stats.received)
            sent.add_metric([name], stats.sent)
        yield latency
        yield received
        yield sent


@dataclass(frozen=True, slots=True)
class OperationRate:
    """Per second over the recent window: answers, 5xx answers, body bytes in and out; and
    the answers since start."""

    name: str
    requests: float
    errors: float
    received: float
    sent: float
    total: int


_Totals = dict[str, tuple[int, int, int, int]]


class RecentRates:
    """Request rates over the last `window` seconds (for status pages), from snapshots of
    the counts that the server takes with `sample(now)` every few seconds."""

    def __init__(self, metrics: RequestMetrics, window: float = 60.0) -> None:
        self._metrics = metrics
        self._window = window
        self._samples: deque[tuple[float, _Totals]] = deque()

    def _totals(self) -> _Totals:
        return {s.name: (s.count, s.errors, s.received, s.sent) for s in self._metrics.operations}

    def sample(self, now: float) -> None:
        samples = self._samples
        samples.append((now, self._totals()))
        # Keep the newest sample at least `window` old: the base of the rates.
        while len(samples) > 1 and samples[1][0] <= now - self._window:
            samples.popleft()

    def rates(self, now: float) -> list[OperationRate]:
        """Since the newest sample at least `window` seconds old (the oldest one while the
        server is younger than that); zero before the first sample."""
        totals = self._totals()
        since, base = self._samples[0] if self._samples else (now, totals)
        for at, counts in self._samples:
            if at > now - self._window:
                break
            since, base = at, counts
        elapsed = now - since
        out = []
        for name, (count, errors, received, sent) in totals.items():
            count0, errors0, received0, sent0 = base.get(name, (0, 0, 0, 0))
            if elapsed <= 0:
                out.append(OperationRate(name, 0.0, 0.0, 0.0, 0.0, count))
                continue
            out.append(
                OperationRate(
                    name,
                    (count - count0) / elapsed,
                    (errors - errors0) / elapsed,
                    (received - received0) / elapsed,
                    (sent - sent0) / elapsed,
                    count,
                )
            )
        return out
