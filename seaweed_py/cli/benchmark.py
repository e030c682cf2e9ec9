"""`weedpy benchmark`: write many small blobs, then read them back at random, like `weed benchmark`.

The report has the layout of `weed benchmark` (requests per second, transfer rate, latency
min/avg/max/std and percentiles at 0.1 ms resolution) so the two can be compared line by line.

One Python process cannot load a server as hard as Go's goroutines can, so the load comes from
`-procs` worker processes (spawned, each with its own event loop and connection pool) that share
`-c` concurrent requests and `-n` files between them. Each write is an assign at the master plus
a multipart POST to the volume server (timed together, as the user sees it); each read is a GET
after a lookup that is cached per volume in each worker. Bodies are `-size` bytes plus 0-63
random bytes, typed `image/bench` so no server compresses them. The fids written are saved to
`-list` so `-readOnly` can replay reads later.
"""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures
import math
import multiprocessing
import multiprocessing.sharedctypes
import os
import platform
import random
import secrets
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httptools
import orjson

from seaweed_py import __version__
from seaweed_py.config.flags import FlagSet, UsageError
from seaweed_py.errors import InvalidFileId, WeedError
from seaweed_py.formats.fid import parse_file_id
from seaweed_py.types import VolumeId

__all__ = ["PhaseStats", "build_flags", "format_report", "run"]

PERCENTILES: Final = (50, 66, 75, 80, 90, 95, 98, 99)
_BUCKETS_PER_MS: Final = 10  # latency histogram resolution 0.1 ms, like weed
# Per worker: [completed, bytes] in a shared array the parent reads for its per-second line.
_FIELDS: Final = 2
_START_TIMEOUT: Final = 120.0
_ASSIGN_PATIENCE: Final = 10.0
_ERROR_KINDS: Final = 10
_REQUEST_TIMEOUT: Final = 60.0
_PROBE_TIMEOUT: Final = 5.0


def build_flags() -> FlagSet:
    flags = FlagSet(
        "benchmark",
        "Write small blobs, then read them back at random, and report "
        "throughput and latency like weed benchmark.",
    )
    flags.add("master", "localhost:9333", "master address host:port")
    flags.add("n", 1024 * 1024, "number of files to write, and of random reads")
    flags.add("c", 16, "number of concurrent requests, shared by the worker processes")
    flags.add("size", 1024, "file size in bytes, plus a random 0-63 bytes")
    flags.add("collection", "benchmark", "collection to write to")
    flags.add("replication", "000", "replica placement code xyz")
    flags.add("dataCenter", "", "assign only volumes in this data center")
    flags.add("disk", "", "disk type: hdd, ssd or a tag")
    flags.add(
        "list",
        str(Path(tempfile.gettempdir()) / "benchmark_list.txt"),
        "file that receives the written fids, one per line; -readOnly reads it",
    )
    flags.add("readOnly", False, "only read, the fids in -list")
    flags.add("writeOnly", False, "only write")
    flags.add("procs", os.cpu_count() or 1, "worker processes generating the load")
    return flags


@dataclass
class PhaseStats:
    """What a phase measured; workers' stats merge into one."""

    completed: int = 0
    failed: int = 0
    transferred: int = 0
    latency_sum_ms: float = 0.0
    latency_sq_sum_ms: float = 0.0
    latency_min_ms: float = math.inf
    latency_max_ms: float = 0.0
    # latency in units of 0.1 ms -> requests
    histogram: Counter[int] = field(default_factory=Counter)
    # why requests failed -> how many (the first few distinct reasons)
    errors: Counter[str] = field(default_factory=Counter)

    def record(self, latency_ms: float, nbytes: int) -> None:
        self.completed += 1
        self.transferred += nbytes
        self.latency_sum_ms += latency_ms
        self.latency_sq_sum_ms += latency_ms * latency_ms
        self.latency_min_ms = min(self.latency_min_ms, latency_ms)
        self.latency_max_ms = max(self.latency_max_ms, latency_ms)
        self.histogram[int(latency_ms * _BUCKETS_PER_MS)] += 1

    def fail(self, reason: str) -> None:
        self.failed += 1
        if reason in self.errors or len(self.errors) < _ERROR_KINDS:
            self.errors[reason] += 1

    def merge(self, other: PhaseStats) -> None:
        self.completed += other.completed
        self.failed += other.failed
        self.errors.update(other.errors)
        self.transferred += other.transferred
        self.latency_sum_ms += other.latency_sum_ms
        self.latency_sq_sum_ms += other.latency_sq_sum_ms
        self.latency_min_ms = min(self.latency_min_ms, other.latency_min_ms)
        self.latency_max_ms = max(self.latency_max_ms, other.latency_max_ms)
        self.histogram.update(other.histogram)

    def percentile_ms(self, percent: int) -> float:
        """The latency that `percent`% of the timed requests stayed within (bucket floor)."""
        if not self.completed:
            return 0.0
        wanted = math.ceil(self.completed * percent / 100)
        seen = 0
        for bucket in sorted(self.histogram):
            seen += self.histogram[bucket]
            if seen >= wanted:
                return bucket / _BUCKETS_PER_MS
        return self.latency_max_ms


def format_report(stats: PhaseStats, concurrency: int, seconds: float) -> str:
    """The block `weed benchmark` prints after each phase."""
    n = stats.completed
    avg = stats.latency_sum_ms / n if n else 0.0
    std = math.sqrt(max(stats.latency_sq_sum_ms / n - avg * avg, 0.0)) if n else 0.0
    low = stats.latency_min_ms if n else 0.0
    seconds = max(seconds, 1e-9)
    lines = [
        "",
        f"Concurrency Level:      {concurrency}",
        f"Time taken for tests:   {seconds:.3f} seconds",
        f"Completed requests:      {n}",
        f"Failed requests:        {stats.failed}",
        f"Total transferred:      {stats.transferred} bytes",
        f"Requests per second:    {n / seconds:.2f} [#/sec]",
        f"Transfer rate:          {stats.transferred / 1024 / seconds:.2f} [Kbytes/sec]",
        "",
        "Connection Times (ms)",
        "              min      avg        max      std",
        f"Total:        {low:2.1f}      {avg:3.1f}       {stats.latency_max_ms:3.1f}      "
        f"{std:3.1f}",
        "",
        "Percentage of the requests served within a certain time (ms)",
    ]
    lines += [f"   {p:2d}%    {stats.percentile_ms(p):5.1f} ms" for p in PERCENTILES]
    lines.append(f"  100%    {stats.latency_max_ms:5.1f} ms")
    return "\n".join(lines)


def run(argv: Sequence[str]) -> int:
    opts, rest = build_flags().parse(argv)
    if rest:
        raise UsageError(f"unexpected arguments: {' '.join(rest)}")
    if opts["n"] < 1 or opts["c"] < 1 or opts["procs"] < 1 or opts["size"] < 0:
        raise UsageError("-n, -c and -procs must be positive and -size not negative")
    if opts["readOnly"] and opts["writeOnly"]:
        raise UsageError("-readOnly and -writeOnly exclude each other")
    # A bad -list is named before the master is asked anything.
    listed = _read_targets(Path(opts["list"])) if opts["readOnly"] else None
    problem = _master_problem(opts["master"])
    if problem:
        # One line, before any worker starts: not a report of n failed requests.
        print(f"weedpy benchmark: {problem}", file=sys.stderr)
        return 1
    print(f"This is weedpy version {__version__} {sys.platform} {platform.machine()}")
    failed = 0
    if not opts["readOnly"]:
        print("\n------------ Writing Benchmark ----------")
        stats, fids = _run_phase(opts, "write", [])
        Path(opts["list"]).write_text("".join(f"{fid}\n" for fid in fids))
        failed += stats.failed
    if not opts["writeOnly"]:
        targets = listed if listed is not None else _read_targets(Path(opts["list"]))
        if not targets:
            raise UsageError(f"no fids to read in {opts['list']}")
        print("\n------------ Randomly Reading Benchmark ----------")
        stats, _ = _run_phase(opts, "read", targets)
        failed += stats.failed
    return 1 if failed else 0


def _master_problem(master: str) -> str:
    """Why the load cannot start at `master` (unreachable, not a master), or ""."""
    # Imported here, in the parent only: the workers never load aiohttp.
    from seaweed_py.client import Client

    try:
        with Client(master, connect_timeout=_PROBE_TIMEOUT, read_timeout=_PROBE_TIMEOUT) as c:
            c.cluster_status()
    except WeedError as exc:
        return f"master {master}: {exc.message}"
    return ""


def _read_targets(listing: Path) -> list[tuple[VolumeId, str]]:
    """(volume id, fid) for every fid in `listing`, parsed before any worker starts: a line
    that is not a fid is refused here rather than timed as a stream of failed reads. The text
    is kept for the URL, so a `_N` fid is read as listed."""
    targets: list[tuple[VolumeId, str]] = []
    try:
        text = listing.read_text()
    except OSError as exc:
        raise UsageError(f"-list {listing}: {exc.strerror or exc}") from None
    for fid in text.split():
        try:
            targets.append((parse_file_id(fid).volume_id, fid))
        except InvalidFileId as exc:
            raise UsageError(f"{listing}: {exc.message}") from None
    return targets


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _run_phase(
    opts: dict[str, Any], phase: str, targets: list[tuple[VolumeId, str]]
) -> tuple[PhaseStats, list[str]]:
    procs = min(opts["procs"], opts["c"], opts["n"])
    counts = _split(opts["n"], procs)
    concurrency = _split(opts["c"], procs)
    counters = multiprocessing.sharedctypes.RawArray("q", procs * _FIELDS)
    context = multiprocessing.get_context("spawn")
    stats = PhaseStats()
    written: list[str] = []
    # Timing starts once every worker process is up and has its job: spawning and imports
    # take about a second and are not part of the load.
    start_line = context.Barrier(procs + 1)
    with concurrent.futures.ProcessPoolExecutor(
        procs, mp_context=context, initializer=_init_worker, initargs=(counters, start_line)
    ) as pool:
        jobs = [
            pool.submit(_worker, phase, i, counts[i], concurrency[i], opts, targets)
            for i in range(procs)
        ]
        start_line.wait(_START_TIMEOUT)
        started = time.perf_counter()
        _report_progress(jobs, counters, opts["n"])
        for job in jobs:
            part, part_fids = job.result()
            stats.merge(part)
            written += part_fids
        taken = time.perf_counter() - started
    print(format_report(stats, opts["c"], taken))
    for reason, count in stats.errors.most_common():
        print(f"{count} failed: {reason}", file=sys.stderr)
    return stats, written


def _report_progress(jobs: list[concurrent.futures.Future[Any]], counters: Any, total: int) -> None:
    """Every second: `Completed <done> of <total> requests, <pct>% <rate>/s <MB/s>MB/s`."""
    last_done = last_bytes = 0
    last = time.perf_counter()
    while True:
        finished, _ = concurrent.futures.wait(jobs, timeout=1.0)
        if len(finished) == len(jobs):
            return
        now = time.perf_counter()
        done = sum(counters[i] for i in range(0, len(counters), _FIELDS))
        moved = sum(counters[i] for i in range(1, len(counters), _FIELDS))
        elapsed = max(now - last, 1e-9)
        print(
            f"Completed {done} of {total} requests, {done * 100 / total:3.1f}% "
            f"{(done - last_done) / elapsed:3.1f}/s "
            f"{(moved - last_bytes) / elapsed / 1e6:3.1f}MB/s",
            flush=True,
        )
        last_done, last_bytes, last = done, moved, now


# ---- worker processes ------------------------------------------------------------------------

# Set once per worker process by the pool's initializer: shared arrays can reach a spawned
# process only at its creation, not through a submitted call's pickled arguments.
_counters: Any = None
_start_line: Any = None


def _init_worker(counters: Any, start_line: Any) -> None:
    global _counters, _start_line
    _counters, _start_line = counters, start_line


def _worker(
    phase: str,
    index: int,
    count: int,
    concurrency: int,
    opts: dict[str, Any],
    targets: list[tuple[VolumeId, str]],
) -> tuple[PhaseStats, list[str]]:
    load = _WriteLoad(opts) if phase == "write" else _ReadLoad(opts, targets)
    _start_line.wait(_START_TIMEOUT)
    try:
        import uvloop
    except ImportError:  # uvloop is a dependency; still work without it
        return asyncio.run(load.run(index, count, concurrency))
    result: tuple[PhaseStats, list[str]] = uvloop.run(load.run(index, count, concurrency))
    return result


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time, responses parsed by llhttp.

    The load generator's own client: aiohttp spends several times more CPU per request than
    the servers under test, which would make the benchmark measure itself.
    """

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[tuple[int, bytes, dict[bytes, bytes]]] | None = None
        self._body: list[bytes] = []
        self._headers: dict[bytes, bytes] = {}
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"bad HTTP response: {exc}"))
            self.close()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        status = self._parser.get_status_code()
        body, headers = b"".join(self._body), self._headers
        self._body, self._headers = [], {}
        if not self._parser.should_keep_alive():
            self.close()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((status, body, headers))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionError(f"connection closed: {exc}" if exc else "connection closed"))

    def _fail(self, exc: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    def request(self, data: bytes) -> asyncio.Future[tuple[int, bytes, dict[bytes, bytes]]]:
        assert self._transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(data)
        return self._waiter


class _Client:
    """The connections of one load coroutine: one per server it talks to."""

    def __init__(self) -> None:
        self._connections: dict[str, _Connection] = {}

    async def call(self, address: str, request: bytes) -> tuple[int, bytes, dict[bytes, bytes]]:
        conn = self._connections.get(address)
        if conn is None or conn.closed:
            host, _, port = address.rpartition(":")
            _, conn = await asyncio.get_running_loop().create_connection(
                _Connection, host, int(port)
            )
            self._connections[address] = conn
        try:
            async with asyncio.timeout(_REQUEST_TIMEOUT):
                return await conn.request(request)
        except BaseException:
            conn.close()
            raise

    def close(self) -> None:
        for conn in self._connections.values():
            conn.close()


class _Load(abc.ABC):
    """Shared by both phases: `count` operations over `concurrency` coroutines."""

    def __init__(self, opts: dict[str, Any]) -> None:
        self.master = str(opts["master"]).removeprefix("http://")
        self.opts = opts
        self.stats = PhaseStats()
        self.rng = random.Random()

    async def run(self, index: int, count: int, concurrency: int) -> tuple[PhaseStats, list[str]]:
        remaining = [count]
        slot = index * _FIELDS

        async def loop() -> None:
            client = _Client()
            try:
                while remaining[0] > 0:
                    remaining[0] -= 1
                    started = time.perf_counter()
                    try:
                        nbytes = await self.one(client)
                    except (OSError, TimeoutError, ValueError, KeyError) as exc:
                        self.stats.fail(f"{type(exc).__name__}: {exc}")
                        continue
                    self.stats.record((time.perf_counter() - started) * 1000, nbytes)
                    _counters[slot] += 1
                    _counters[slot + 1] += nbytes
            finally:
                client.close()

        await asyncio.gather(*(loop() for _ in range(concurrency)))
        return self.stats, self.results()

    @abc.abstractmethod
    async def one(self, client: _Client) -> int:
        """One timed operation; returns the payload bytes moved."""

    def results(self) -> list[str]:
        return []


def _get(address: str, target: str) -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: {address}\r\n\r\n".encode()


class _WriteLoad(_Load):
    def __init__(self, opts: dict[str, Any]) -> None:
        super().__init__(opts)
        params = {
            "collection": opts["collection"],
            "replication": opts["replication"],
            "dataCenter": opts["dataCenter"],
            "disk": opts["disk"],
        }
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v})
        self.assign_request = _get(self.master, f"/dir/assign?{query}")
        # One random buffer per worker; each body is a slice of it (content does not matter,
        # only that it does not compress).
        self.size = int(opts["size"])
        self.pool = os.urandom(self.size + 64)
        boundary = secrets.token_hex(16)
        self.head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="bench"\r\nContent-Type: image/bench\r\n\r\n'
        ).encode()
        self.tail = f"\r\n--{boundary}--\r\n".encode()
        self.content_type = f"multipart/form-data; boundary={boundary}"
        self.fids: list[str] = []

    async def assign(self, client: _Client) -> tuple[dict[str, Any], bytes]:
        """An assign and its `Authorization` header (a write token, with security.toml keys),
        waiting out 503s (volumes being grown for a new collection) like the SDK does: they
        say "retry", not "failed"."""
        deadline = time.monotonic() + _ASSIGN_PATIENCE
        while True:
            status, body, headers = await client.call(self.master, self.assign_request)
            assigned = orjson.loads(body) if body else None
            if status == 200 and isinstance(assigned, dict) and "fid" in assigned:
                token = headers.get(b"authorization", b"")
                return assigned, b"Authorization: %s\r\n" % token if token else b""
            if status != 503 or time.monotonic() > deadline:
                raise ValueError(f"assign: HTTP {status} {body[:200]!r}")
            retry = headers.get(b"retry-after", b"")
            await asyncio.sleep(min(float(retry), 1.0) if retry.isdigit() else 0.1)

    async def one(self, client: _Client) -> int:
        assigned, auth = await self.assign(client)
        size = self.size + self.rng.randrange(64)
        fid, url = assigned["fid"], assigned["url"]
        body_length = len(self.head) + size + len(self.tail)
        request = (
            (
                f"POST /{fid} HTTP/1.1\r\nHost: {url}\r\nContent-Type: {self.content_type}"
                f"\r\nContent-Length: {body_length}\r\n"
            ).encode()
            + auth
            + b"\r\n"
        )
        status, answer, _ = await client.call(
            url, b"".join((request, self.head, self.pool[:size], self.tail))
        )
        if status not in (200, 201, 204):
            raise ValueError(f"upload {fid}: HTTP {status} {answer[:200]!r}")
        self.fids.append(fid)
        return size

    def results(self) -> list[str]:
        return self.fids


class _ReadLoad(_Load):
    def __init__(self, opts: dict[str, Any], targets: list[tuple[VolumeId, str]]) -> None:
        super().__init__(opts)
        self.targets = targets
        self.locations: dict[VolumeId, list[str]] = {}

    async def locate(self, client: _Client, vid: VolumeId) -> list[str]:
        """Volume servers of `vid`, looked up once per worker (like weed's cached vid map)."""
        urls = self.locations.get(vid)
        if urls is None:
            request = _get(self.master, f"/dir/lookup?volumeId={vid}")
            status, body, _ = await client.call(self.master, request)
            found = orjson.loads(body) if status == 200 else {}
            urls = [loc["url"] for loc in found.get("locations") or []]
            if not urls:
                raise ValueError(f"lookup volume {vid}: HTTP {status} {body[:200]!r}")
            self.locations[vid] = urls
        return urls

    async def one(self, client: _Client) -> int:
        vid, fid = self.targets[self.rng.randrange(len(self.targets))]
        urls = await self.locate(client, vid)
        url = urls[self.rng.randrange(len(urls))]
        status, body, _ = await client.call(url, _get(url, f"/{fid}"))
        if status != 200:
            raise ValueError(f"read {fid}: HTTP {status}")
        return len(body)
