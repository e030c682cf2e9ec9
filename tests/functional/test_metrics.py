"""`/metrics` of both servers, scraped and parsed as Prometheus would (docs/metrics.md).

A real master and a real volume server run in this process; traffic of every kind goes through
them (reads, writes, deletes, replica forwards, the master's admin calls, errors), then the
scrapes are checked family by family. The Grafana dashboard in deploy/ is checked against the
same scrapes: every metric it queries is one the servers export.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from seaweed_py.client import AsyncClient
from seaweed_py.master import MasterOptions, MasterServer
from seaweed_py.volume import VolumeOptions, VolumeServer

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "weedpy-dashboard.json"
METRICS_DOC = ROOT / "docs" / "metrics.md"
_NAME = re.compile(r"^weedpy_(master|volume)_[a-z][a-z0-9_]*[a-z0-9]$")


@dataclass
class Cluster:
    master: MasterServer
    volume: VolumeServer
    http: aiohttp.ClientSession

    def volume_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.volume.port}{path}"

    def master_url(self, path: str) -> str:
        return f"http://{self.master.address}{path}"

    async def scrape(self, url: str) -> dict[str, Metric]:
        async with self.http.get(url) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain")
            text = await resp.text()
        return {family.name: family for family in text_string_to_metric_families(text)}


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    master = MasterServer(
        MasterOptions(
            ip="127.0.0.1",
            port=0,
            mdir=str(tmp_path / "m"),
            pulse_seconds=0.2,
            volume_size_limit_mb=1,
        )
    )
    await master.start()
    dirs = (tmp_path / "d1", tmp_path / "d2")
    for d in dirs:
        d.mkdir()
    volume = VolumeServer(
        VolumeOptions(
            dirs=tuple(str(d) for d in dirs),
            max_volumes=(4, 4),
            masters=(master.address,),
            ip="127.0.0.1",
            port=0,
            pulse_seconds=0.2,
            pre_stop_seconds=0,
        )
    )
    await volume.start()
    try:
        async with aiohttp.ClientSession() as http:
            yield Cluster(master, volume, http)
    finally:
        await volume.stop()
        await master.stop()


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def _value(family: Metric, sample_name: str, **labels: str) -> float:
    found = [
        s.value
        for s in family.samples
        if s.name == sample_name and s.labels.items() >= labels.items()
    ]
    assert len(found) == 1, (sample_name, labels, family.samples)
    return float(found[0])


def _labels(family: Metric, label: str) -> set[str]:
    return {s.labels[label] for s in family.samples if label in s.labels}


async def _traffic(c: Cluster) -> dict[str, int]:
    """Two uploads, three reads (one of a missing needle), a delete, a refused write and a
    replica forward; returns the byte counts the metrics must at least show."""
    first, second = os.urandom(3000), os.urandom(5000)  # incompressible: stored as sent
    async with AsyncClient(c.master.address) as client:
        one = await client.upload(first, name="a.bin")
        two = await client.upload(second, name="b.bin")
        assert await client.download(one.fid) == first
        assert await client.download(two.fid) == second
        await client.delete(two.fid)
    vid = one.fid.split(",")[0]
    async with c.http.get(c.volume_url(f"/{vid},ffffff01020304")) as resp:
        assert resp.status == 404
    async with c.http.post(c.volume_url("/not-a-fid"), data=b"x") as resp:
        assert resp.status == 400
    form = aiohttp.FormData()
    form.add_field("file", b"r" * 700, filename="r.bin")
    async with c.http.post(c.volume_url(f"/{vid},0a0b0c0d0e?type=replicate"), data=form) as resp:
        assert resp.status == 201
    return {"written": 8000, "read": 8000}


async def test_volume_server_metrics(cluster: Cluster) -> None:
    c = cluster
    expected = await _traffic(c)
    await c.http.post(c.volume_url("/admin/volume/readonly"), params={"volume": "1"})
    m = await c.scrape(c.volume_url("/metrics"))

    latency = m["weedpy_volume_request_duration_seconds"]
    assert latency.type == "histogram"
    count = "weedpy_volume_request_duration_seconds_count"
    assert _value(latency, count, operation="read", status="2xx") == 2
    assert _value(latency, count, operation="read", status="4xx") == 1
    assert _value(latency, count, operation="write", status="2xx") == 2
    assert _value(latency, count, operation="write", status="4xx") == 1
    assert _value(latency, count, operation="delete", status="2xx") == 1
    assert _value(latency, count, operation="replicate", status="2xx") == 1
    assert _value(latency, count, operation="admin", status="2xx") >= 2  # allocations, readonly
    for operation, status in (("read", "2xx"), ("write", "2xx")):
        buckets = [
            (s.labels["le"], s.value)
            for s in latency.samples
            if s.name.endswith("_bucket") and s.labels["operation"] == operation
            and s.labels["status"] == status
        ]  # fmt: skip
        assert buckets[-1] == ("+Inf", _value(latency, count, operation=operation, status=status))
        assert [v for _, v in buckets] == sorted(v for _, v in buckets)
        assert _value(latency, "weedpy_volume_request_duration_seconds_sum", operation=operation,
                      status=status) > 0  # fmt: skip
    received = m["weedpy_volume_request_received_bytes"]
    sent = m["weedpy_volume_request_sent_bytes"]
    assert received.type == sent.type == "counter"
    assert (
        _value(received, "weedpy_volume_request_received_bytes_total", operation="write")
        > (expected["written"])
    )
    assert (
        _value(sent, "weedpy_volume_request_sent_bytes_total", operation="read")
        >= (expected["read"])
    )

    dirs = {str(Path(d).resolve()) for d in c.volume.options.dirs}
    for what in ("total", "used", "free"):
        family = m[f"weedpy_volume_disk_{what}_bytes"]
        assert _labels(family, "dir") == dirs
        assert all(s.value >= 0 for s in family.samples)
    assert all(s.value > 0 for s in m["weedpy_volume_disk_total_bytes"].samples)

    volumes = m["weedpy_volume_volumes"]
    assert _value(volumes, "weedpy_volume_volumes", state="read_only") == 1
    assert _value(volumes, "weedpy_volume_volumes", state="writable") >= 1
    assert _value(volumes, "weedpy_volume_volumes", state="full") == 0
    assert _value(m["weedpy_volume_needles"], "weedpy_volume_needles") == 2  # one, replica copy
    assert _value(m["weedpy_volume_garbage_bytes"], "weedpy_volume_garbage_bytes") >= 5000
    assert _value(m["weedpy_volume_size_bytes"], "weedpy_volume_size_bytes") > 8000
    assert _value(m["weedpy_volume_master_connected"], "weedpy_volume_master_connected") == 1
    assert _value(m["weedpy_volume_info"], "weedpy_volume_info", version=c.volume.stats.version)
    for family in ("process_cpu_seconds", "process_resident_memory_bytes", "python_info",
                   "python_gc_objects_collected"):  # fmt: skip
        assert m[family].samples, family
    assert all(_NAME.match(n) for n in m if n.startswith("weedpy"))


async def test_a_volume_at_the_size_limit_counts_as_full(cluster: Cluster) -> None:
    c = cluster
    async with AsyncClient(c.master.address) as client:
        batch = await client.assign(count=2)
        for fid in batch.fids:  # 2 x 470 KiB: past 90 % of the 1 MiB limit of one volume
            await client.write(fid, bytes(470 * 1024), url=batch.url, name="big.bin")

    async def full() -> bool:
        m = await c.scrape(c.volume_url("/metrics"))
        return _value(m["weedpy_volume_volumes"], "weedpy_volume_volumes", state="full") == 1

    await _until(full)


async def test_master_metrics(cluster: Cluster) -> None:
    c = cluster
    await _traffic(c)
    async with c.http.get(c.master_url("/dir/lookup"), params={"volumeId": "99"}) as resp:
        assert resp.status == 404
    async with c.http.get(c.master_url("/dir/assign"), params={"replication": "9x"}) as resp:
        assert resp.status == 406
    m = await c.scrape(c.master_url("/metrics"))
    latency = m["weedpy_master_request_duration_seconds"]
    count = "weedpy_master_request_duration_seconds_count"
    assert _value(latency, count, operation="assign", status="2xx") == 2
    assert _value(latency, count, operation="assign", status="4xx") == 1
    assert _value(latency, count, operation="lookup", status="2xx") >= 1
    assert _value(latency, count, operation="lookup", status="4xx") == 1
    assert _value(latency, count, operation="heartbeat", status="2xx") >= 1
    assert (
        _value(
            m["weedpy_master_request_sent_bytes"],
            "weedpy_master_request_sent_bytes_total",
            operation="assign",
        )
        > 0
    )
    assert _value(m["weedpy_master_volume_servers"], "weedpy_master_volume_servers") == 1
    assert _value(m["weedpy_master_info"], "weedpy_master_info", version=c.master.version) == 1
    assert m["process_cpu_seconds"].samples and m["python_info"].samples
    assert all(_NAME.match(n) for n in m if n.startswith("weedpy"))


def _sample_names(families: dict[str, Metric]) -> set[str]:
    """Every series name a PromQL query could use."""
    names: set[str] = set()
    for family in families.values():
        names.add(family.name)
        names |= {s.name for s in family.samples}
        if family.type == "histogram":
            names |= {f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count")}
        elif family.type == "counter":
            names.add(f"{family.name}_total")
    return names


async def test_every_metric_the_dashboard_queries_is_exported(cluster: Cluster) -> None:
    c = cluster
    await _traffic(c)
    exported = _sample_names(await c.scrape(c.master_url("/metrics")))
    exported |= _sample_names(await c.scrape(c.volume_url("/metrics")))
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = {
        name for e in exprs for name in re.findall(r"\b(?:weedpy|process|python)_[a-z0-9_]+", e)
    }
    assert {n for n in used if n.startswith("weedpy_volume_request_duration")}, "latency panels"
    assert not used - exported, sorted(used - exported)
    for prefix in ("weedpy_master_", "weedpy_volume_"):
        assert any(n.startswith(prefix) for n in used)
    assert any("histogram_quantile" in e for e in exprs)
    assert any("weedpy_volume_disk_" in e for e in exprs)


async def test_every_exported_metric_is_documented(cluster: Cluster) -> None:
    c = cluster
    await _traffic(c)
    doc = METRICS_DOC.read_text()
    for url in (c.master_url("/metrics"), c.volume_url("/metrics")):
        for name in await c.scrape(url):
            if name.startswith("weedpy_"):
                shared = re.sub(r"^weedpy_(master|volume)_", "weedpy_<server>_", name)
                assert f"`{name}`" in doc or f"`{shared}`" in doc, f"{name} not in docs/metrics.md"
