"""Request metrics: the histogram arithmetic, the recent rates, and which answers a route's
observer is told of (against a fake transport, no sockets)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from seaweed_py.errors import NotAcceptable
from seaweed_py.httpkit import Limits, Request, RequestStream, Response, Router
from seaweed_py.httpkit.metrics import (
    LATENCY_BUCKETS,
    OperationStats,
    RecentRates,
    RequestMetrics,
    received_bytes,
)
from tests.unit.test_httpkit_connection import _connect, _get


def _buckets(stats: OperationStats, cls: str) -> list[tuple[str, float]]:
    return next(b for c, b, _ in stats.histograms() if c == cls)


def test_a_value_on_a_bound_falls_in_that_bucket_and_the_rest_in_inf() -> None:
    stats = OperationStats("read")
    stats.observe(200, LATENCY_BUCKETS[0], 0, 10)  # le="0.0005" holds 0.0005 itself
    stats.observe(200, LATENCY_BUCKETS[0] * 1.01, 0, 10)
    stats.observe(200, 10_000.0, 0, 10)  # above every bound: only +Inf
    buckets = dict(_buckets(stats, "2xx"))
    assert buckets["0.0005"] == 1
    assert buckets["0.001"] == 2
    assert buckets["30.0"] == 2
    assert buckets["+Inf"] == 3
    assert (stats.count, stats.errors, stats.sent) == (3, 0, 30)


def test_status_classes_are_kept_apart_and_only_seen_classes_are_exposed() -> None:
    stats = OperationStats("write")
    for status in (201, 204, 404, 500, 503):
        stats.observe(status, 0.01, 5, 0)
    classes = {c: b[-1][1] for c, b, _ in stats.histograms()}
    assert classes == {"2xx": 2, "4xx": 1, "5xx": 2}
    assert stats.errors == 2 and stats.received == 25


def test_exposition_parses_as_prometheus_text() -> None:
    metrics = RequestMetrics("weedpy_test")
    metrics.operation("read").observe(200, 0.002, 0, 100)
    metrics.operation("read").observe(404, 0.0001, 0, 20)
    metrics.operation("write").observe(201, 0.02, 1000, 50)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics)
    families = {
        f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())
    }
    latency = families["weedpy_test_request_duration_seconds"]
    assert latency.type == "histogram"
    counts = {
        (s.labels["operation"], s.labels["status"]): s.value
        for s in latency.samples
        if s.name.endswith("_count")
    }
    assert counts == {("read", "2xx"): 1, ("read", "4xx"): 1, ("write", "2xx"): 1}
    sent = {
        s.labels["operation"]: s.value
        for s in families["weedpy_test_request_sent_bytes"].samples
        if s.name.endswith("_total")
    }
    assert sent == {"read": 120, "write": 50}


def test_recent_rates_use_the_oldest_sample_within_the_window() -> None:
    metrics = RequestMetrics("weedpy_test")
    read = metrics.operation("read")
    rates = RecentRates(metrics, window=60.0)
    assert [(r.name, r.requests, r.total) for r in rates.rates(0.0)] == [("read", 0.0, 0)]
    rates.sample(0.0)
    for _ in range(120):
        read.observe(200, 0.001, 0, 10)
    rates.sample(30.0)
    [r] = rates.rates(60.0)
    assert (r.requests, r.sent, r.total) == (2.0, 20.0, 120)
    for t in (65.0, 70.0, 95.0):
        rates.sample(t)
    # The base is now the newest sample at least a window old: the one at 65.
    [r] = rates.rates(125.0)
    assert r.requests == 0.0 and r.total == 120
    read.observe(500, 0.1, 0, 0)
    [r] = rates.rates(125.0)
    assert r.errors == pytest.approx(1 / 60)


# ---- what the connection reports --------------------------------------------------------------


class Seen:
    def __init__(self) -> None:
        self.answers: list[tuple[str, int, int]] = []
        self.seconds: list[float] = []

    def __call__(self, req: Request, status: int, seconds: float, sent: int) -> None:
        self.answers.append((req.method, status, sent))
        self.seconds.append(seconds)


def _refuse(req: Request) -> Response:
    raise NotAcceptable("no")


async def _later(req: Request) -> Response:
    await asyncio.sleep(0)
    return Response(201, None, b"done")


async def _chunks() -> AsyncIterator[bytes]:
    yield b"abc"
    yield b"defg"


def _streamed(req: Request) -> Response:
    return Response(200, None, _chunks())


async def test_every_answer_of_an_observed_route_is_reported() -> None:
    seen, unseen = Seen(), Seen()
    router = Router()
    router.add("/sync", lambda req: Response(200, None, b"12345"), ["GET"], observe=seen)
    router.add("/refused", _refuse, ["GET"], observe=seen)
    router.add("/async", _later, ["GET"], observe=seen)
    router.add("/stream", _streamed, ["GET"], observe=seen)
    router.add("/post", lambda req: Response(200), ["POST"], observe=seen)
    router.add("/quiet", lambda req: Response(200), ["GET"], observe=None)
    router.fallback(lambda req: Response(404), ["GET"], observe=unseen)
    conn, transport = _connect(router, Limits(max_body=10))
    conn.data_received(_get("/sync") + b"HEAD /sync HTTP/1.1\r\nHost: t\r\n\r\n")
    conn.data_received(_get("/refused") + _get("/quiet"))
    conn.data_received(b"DELETE /post HTTP/1.1\r\nHost: t\r\n\r\n")  # 405 before any handler
    conn.data_received(_get("/async"))
    for _ in range(5):
        await asyncio.sleep(0)
    conn.data_received(_get("/stream"))
    for _ in range(10):
        await asyncio.sleep(0)
    conn.data_received(_get("/elsewhere"))
    assert [answer[:2] for answer in seen.answers] == [
        ("GET", 200),
        ("HEAD", 200),
        ("GET", 406),
        ("DELETE", 405),
        ("GET", 201),
        ("GET", 200),
    ]
    sent = [answer[2] for answer in seen.answers]
    assert sent[:3] == [5, 0, len(b'{"error":"no"}')]
    assert sent[3] > 0 and sent[4:] == [4, 7]  # the 405's JSON; "done"; "abc" + "defg"
    assert b"HTTP/1.1 405" in transport.data
    assert all(0 <= s < 5 for s in seen.seconds)
    assert unseen.answers == [("GET", 404, 0)]


async def test_a_body_refused_for_its_size_counts_what_was_announced_as_not_received() -> None:
    seen = Seen()
    router = Router()
    router.add("/post", lambda req: Response(200), ["POST"], observe=seen)
    conn, _ = _connect(router, Limits(max_body=10))
    conn.data_received(b"POST /post HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\n")
    assert [a[:2] for a in seen.answers] == [("POST", 413)]


def test_received_bytes_of_buffered_and_streamed_bodies() -> None:
    assert received_bytes(Request("POST", "/x", body=b"12345")) == 5
    streamed = Request("POST", "/x")
    streamed.stream = RequestStream(100)
    streamed.stream.feed(b"x" * 40)
    assert received_bytes(streamed) == 40
