"""Vacuum: how fast a compaction copies live data, and what a vacuum does to request latency.

    python -m bench.vacuum_bench [--needles 40000] [--load-seconds 5] [--only copy|latency]

1. **Copy throughput**, weedpy against `weed` on the same volume: one volume (5-byte offsets,
   which both read) is written once with weedpy's storage engine (`--needles` needles of 1 to
   16 KiB, every other one deleted, so half of it is garbage), then copied twice; `weedpy
   compact` and `weed compact` each compact one copy offline (process start, index load, copy
   into `.cpd`/`.cpx`, sync). Reported: wall time and MB/s of live data copied, and weedpy's
   in-process `Volume.compact` and `commit_compact` alone.
2. **Latency during a vacuum**, for each implementation: a master and one volume server on
   loopback, a volume filled the same way over HTTP, then 8 clients reading live blobs (70 %)
   and writing 8 KiB blobs to fids of the same volume assigned beforehand (30 %): first idle
   for `--load-seconds`, then while `/vol/vacuum` compacts and commits that volume. Reported:
   p50 and p99 of reads and writes in each phase.

The page cache is warm throughout (the volumes were just written). The machine is shared:
figures move between runs, so compare the ratios of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from seaweed_py.formats.needle import Needle
from seaweed_py.storage.volume import FsyncMode, Volume
from tests.servers import WEED, Cluster, Impl, call, get_json, put, start_cluster

COOKIE = 0x5EED5EED
VID = 1
MB = 1e6


def _sizes(rng: random.Random, count: int) -> list[int]:
    return [rng.randrange(1024, 16 * 1024) for _ in range(count)]


def build_volume(directory: Path, count: int, seed: int = 7) -> int:
    """Volume 1 with `count` needles, every other one deleted; its live bytes."""
    rng = random.Random(seed)
    v = Volume.create(directory, VID, large_disk=True, fsync_mode=FsyncMode.NONE)
    live = 0
    try:
        for key, size in enumerate(_sizes(rng, count), start=1):
            v.write(Needle.build(COOKIE, key, rng.randbytes(size)))
        for key in range(2, count + 1, 2):
            v.delete(key, COOKIE)
        live = v.content_size - v.deleted_byte_count
    finally:
        v.close()
    return live


def _timed(argv: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, timeout=600)
    elapsed = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"{argv[0]} failed: {done.stderr.decode()[-2000:]}")
    return elapsed


def copy_throughput(work: Path, needles: int) -> None:
    source = work / "volume"
    source.mkdir(parents=True)
    live = build_volume(source, needles)
    dat = (source / f"{VID}.dat").stat().st_size
    print(f"volume: {needles} needles, .dat {dat / MB:.1f} MB, live {live / MB:.1f} MB")
    rows: list[tuple[str, float]] = []
    for name, argv in (
        ("weedpy compact", [sys.executable, "-m", "seaweed_py", "compact"]),
        ("weed compact", [str(WEED), "compact"]),
    ):
        if name.startswith("weed ") and not WEED.exists():
            print(f"{name}: skipped, {WEED} not installed")
            continue
        target = work / name.replace(" ", "-")
        shutil.copytree(source, target)
        seconds = _timed([*argv, f"-dir={target}", f"-volumeId={VID}"])
        cpd = (target / f"{VID}.cpd").stat().st_size
        rows.append((name, seconds))
        print(
            f"{name:>16}: {seconds:6.2f} s  {live / MB / seconds:7.1f} MB/s of live data "
            f"(.cpd {cpd / MB:.1f} MB)"
        )
    inproc = work / "in-process"
    shutil.copytree(source, inproc)
    v = Volume.open(inproc, VID, fsync_mode=FsyncMode.NONE)
    try:
        result = v.compact()
        commit = v.commit_compact()
    finally:
        v.close()
    print(
        f"{'Volume.compact':>16}: {result.seconds:6.2f} s  "
        f"{result.copied_bytes / MB / result.seconds:7.1f} MB/s of live data; "
        f"commit_compact {commit.seconds * 1000:.0f} ms"
    )
    if len(rows) == 2:
        print(f"ratio weedpy / weed (time): {rows[0][1] / rows[1][1]:.2f}")


@dataclass
class Phase:
    reads: list[float] = field(default_factory=list)
    writes: list[float] = field(default_factory=list)
    errors: int = 0


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _load(
    http: aiohttp.ClientSession,
    volume: str,
    live: list[str],
    fresh: list[str],
    stop: asyncio.Event,
    phase: Phase,
    rng: random.Random,
) -> None:
    body = rng.randbytes(8192)
    while not stop.is_set():
        if rng.random() < 0.3 and fresh:
            fid = fresh.pop()
            started = time.perf_counter()
            async with http.put(f"http://{volume}/{fid}", data=body) as resp:
                await resp.read()
                ok = resp.status == 201
            if ok:
                phase.writes.append(time.perf_counter() - started)
        else:
            fid = rng.choice(live)
            started = time.perf_counter()
            async with http.get(f"http://{volume}/{fid}") as resp:
                await resp.read()
                ok = resp.status == 200
            if ok:
                phase.reads.append(time.perf_counter() - started)
        phase.errors += not ok


async def _run_phase(
    volume: str, live: list[str], fresh: list[str], until: asyncio.Future[object] | float
) -> Phase:
    phase = Phase()
    stop = asyncio.Event()
    rng = random.Random(11)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=16)) as http:
        clients = [
            asyncio.create_task(
                _load(http, volume, live, fresh, stop, phase, random.Random(rng.random()))
            )
            for _ in range(8)
        ]
        if isinstance(until, float):
            await asyncio.sleep(until)
        else:
            await until
        stop.set()
        await asyncio.gather(*clients)
    return phase


def _fill(cluster: Cluster, count: int) -> tuple[str, list[str], list[str]]:
    """One volume with `count` blobs, every other one deleted, and as many fids of it kept
    for the clients' writes: (volume server, live fids, fresh fids)."""
    answer = get_json(f"{cluster.master_url}/dir/assign?count={2 * count}")
    fid, volume = answer["fid"], answer["url"]
    fids = [fid] + [f"{fid}_{i}" for i in range(1, 2 * count)]
    rng = random.Random(7)
    for f, size in zip(fids[:count], _sizes(rng, count), strict=True):
        status, body = put(volume, f, rng.randbytes(size))
        assert status == 201, body
    for f in fids[1:count:2]:
        assert call("DELETE", f"{volume}/{f}")[0] == 202
    return volume, fids[:count:2], fids[count:]


def latency(impl: Impl, work: Path, needles: int, seconds: float) -> None:
    extra = ["-disableVacuum"] if impl == "weedpy" else []
    cluster = start_cluster(impl, work, master_args=extra)
    try:
        volume, live, fresh = _fill(cluster, needles)
        idle = asyncio.run(_run_phase(volume, live, fresh, seconds))

        async def during() -> tuple[Phase, float]:
            loop = asyncio.get_running_loop()
            started = time.perf_counter()
            vacuum = loop.run_in_executor(
                None,
                lambda: call(
                    "GET", f"{cluster.master_url}/vol/vacuum?garbageThreshold=0.1", timeout=600
                ),
            )
            phase = await _run_phase(volume, live, fresh, vacuum)  # type: ignore[arg-type]
            status, _ = vacuum.result()
            assert status == 200
            return phase, time.perf_counter() - started

        busy, took = asyncio.run(during())
        vid = live[0].split(",")[0]
        [after] = [v for v in get_json(f"{volume}/status")["Volumes"] if str(v["Id"]) == vid]
        assert after["CompactRevision"] == 1, f"{impl} did not vacuum volume {vid}: {after}"
    finally:
        cluster.stop()
    print(f"{impl}: vacuum of a volume of {needles} blobs (half deleted) took {took:.2f} s")
    for name, phase in (("idle", idle), ("during vacuum", busy)):
        print(
            f"  {name:>13}: reads p50 {_pct(phase.reads, 0.5):6.2f} ms p99 "
            f"{_pct(phase.reads, 0.99):7.2f} ms ({len(phase.reads)}), writes p50 "
            f"{_pct(phase.writes, 0.5):6.2f} ms p99 {_pct(phase.writes, 0.99):7.2f} ms "
            f"({len(phase.writes)}), errors {phase.errors}"
        )
    for kind in ("reads", "writes"):
        a, b = getattr(idle, kind), getattr(busy, kind)
        if a and b:
            print(f"  {kind} p99 during / idle: {_pct(b, 0.99) / _pct(a, 0.99):.2f}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--needles", type=int, default=40_000)
    parser.add_argument("--load-needles", type=int, default=20_000)
    parser.add_argument("--load-seconds", type=float, default=5.0)
    parser.add_argument("--only", choices=("copy", "latency"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vacuum-bench-") as tmp:
        work = Path(tmp)
        if args.only in (None, "copy"):
            print("== vacuum: copy throughput ==", flush=True)
            copy_throughput(work / "copy", args.needles)
        if args.only in (None, "latency"):
            print("== vacuum: latency during a vacuum ==", flush=True)
            for impl in ("weedpy", "weed"):
                if impl == "weed" and not WEED.exists():
                    continue
                latency(impl, work / f"latency-{impl}", args.load_needles, args.load_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
