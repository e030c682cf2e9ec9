"""Reads of a tiered volume: one batch read against single GETs, and weedpy's tiered GET
against weed's, all on one S3 server (weed's gateway, as the tests start it).

    python -m bench.tier_bench [--blobs 5000] [--picks 1000] [--concurrency 16]

A weedpy cluster and a weed 4.48 cluster (master + one volume server each, both configured by a
weed-style master.toml naming their own bucket) each get one volume of `blobs` random 4 KiB
blobs (`/vol/grow` of a collection, then assigns into it), which each tiers with its own
`shell volume.tier.upload`. weedpy runs with `-tierCacheMB=0`, so every read goes to S3 as
weed's do. Then, for `picks` random fids:

* weedpy, one `POST /batch/read` of all of them, against `picks` GETs one after the other and
  `picks` GETs `concurrency` at a time: seconds, and S3 requests made (the volume server's
  `weedpy_volume_tier_requests_total`);
* GET latency, one at a time, p50 and p99: weedpy against weed.

The machine is shared and noisy: read the ratios of one run, not the absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from seaweed_py.formats.multipart_mixed import MultipartMixedReader, boundary_of
from tests.s3_server import S3Server, start_s3_server
from tests.servers import WEED, Cluster, start_cluster

COLLECTION = "bench"
BLOB = 4096


async def _fill(http: aiohttp.ClientSession, master: str, count: int, parallel: int) -> list[str]:
    async with http.get(f"http://{master}/vol/grow?collection={COLLECTION}&count=1") as resp:
        assert resp.status == 200, await resp.text()
    fids: list[str] = []
    gate = asyncio.Semaphore(parallel)

    async def one() -> None:
        async with gate:
            async with http.get(f"http://{master}/dir/assign?collection={COLLECTION}") as resp:
                assigned = await resp.json()
            data = aiohttp.FormData()
            data.add_field("file", os.urandom(BLOB), filename="b")
            async with http.post(f"http://{assigned['url']}/{assigned['fid']}", data=data) as r:
                assert r.status == 201, await r.text()
            fids.append(assigned["fid"])

    await asyncio.gather(*(one() for _ in range(count)))
    return fids


def _tier(command: list[str], master: str, script: str) -> None:
    done = subprocess.run(
        [*command, "shell", f"-master={master}"],
        input=script,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0 or "error" in done.stdout.lower():
        raise SystemExit(f"tiering failed: {done.stdout}{done.stderr}")


async def _requests(http: aiohttp.ClientSession, volume: str) -> int:
    async with http.get(f"http://{volume}/metrics") as resp:
        text = await resp.text()
    found = re.search(r'weedpy_volume_tier_requests_total\{backend="s3.default"\} (\S+)', text)
    return int(float(found.group(1))) if found else 0


async def _batch(http: aiohttp.ClientSession, volume: str, fids: list[str]) -> float:
    start = time.perf_counter()
    async with http.post(f"http://{volume}/batch/read", json={"fids": fids}) as resp:
        reader = MultipartMixedReader(boundary_of(resp.headers["Content-Type"]))
        parts = reader.feed(await resp.read())
        reader.close()
    seconds = time.perf_counter() - start
    assert [p.headers["x-weedpy-status"] for p in parts] == ["200"] * len(fids)
    assert all(len(p.body) == BLOB for p in parts)
    return seconds


async def _gets(
    http: aiohttp.ClientSession, volume: str, fids: list[str], parallel: int
) -> tuple[float, list[float]]:
    gate = asyncio.Semaphore(parallel)
    latencies: list[float] = []

    async def one(fid: str) -> None:
        async with gate:
            start = time.perf_counter()
            async with http.get(f"http://{volume}/{fid}") as resp:
                body = await resp.read()
            latencies.append(time.perf_counter() - start)
            assert resp.status == 200 and len(body) == BLOB, (fid, resp.status)

    start = time.perf_counter()
    await asyncio.gather(*(one(f) for f in fids))
    return time.perf_counter() - start, latencies


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _run(args: argparse.Namespace, s3: S3Server, root: Path) -> None:
    clusters: dict[str, Cluster] = {}
    try:
        for impl in ("weedpy", "weed"):
            cfg = root / f"cfg-{impl}"
            cfg.mkdir()
            (cfg / "master.toml").write_text(s3.master_toml(s3.new_bucket()))
            extra = ["-tierCacheMB=0"] if impl == "weedpy" else []
            clusters[impl] = start_cluster(
                impl, root, volumes=1, config_dir=cfg, volume_args=extra, wait_writable=False
            )
        rng = random.Random(15)
        picks: dict[str, list[str]] = {}
        async with aiohttp.ClientSession() as http:
            for impl, cluster in clusters.items():
                fids = await _fill(http, cluster.master_url, args.blobs, args.concurrency)
                vids = {f.split(",")[0] for f in fids}
                assert len(vids) == 1, f"{impl}: blobs went to volumes {vids}"
                vid = vids.pop()
                if impl == "weedpy":
                    script = f"lock\nvolume.tier.upload -volumeId={vid} -dest=s3\n"
                    _tier([sys.executable, "-m", "seaweed_py"], cluster.master_url, script)
                else:
                    script = (
                        f"lock\nvolume.tier.upload -volumeId={vid} -dest=s3.default "
                        f"-collection={COLLECTION}\nunlock\n"
                    )
                    _tier([str(WEED)], cluster.master_url, script)
                picks[impl] = rng.sample(fids, args.picks)
            volume = clusters["weedpy"].volume_urls[0]
            chosen = picks["weedpy"]
            print(f"{args.picks} random {BLOB}-byte blobs of a tiered volume of {args.blobs}:")
            before = await _requests(http, volume)
            seconds = await _batch(http, volume, chosen)
            batch_requests = await _requests(http, volume) - before
            print(
                f"  weedpy batch read:         {seconds * 1000:8.1f} ms, {batch_requests} S3 GETs"
            )
            before = await _requests(http, volume)
            seconds, latencies = await _gets(http, volume, chosen, 1)
            seq_requests = await _requests(http, volume) - before
            print(f"  weedpy GETs, one at a time: {seconds * 1000:7.1f} ms, {seq_requests} S3 GETs")
            before = await _requests(http, volume)
            seconds, _ = await _gets(http, volume, chosen, args.concurrency)
            par_requests = await _requests(http, volume) - before
            print(
                f"  weedpy GETs, {args.concurrency} at a time:  {seconds * 1000:7.1f} ms, "
                f"{par_requests} S3 GETs"
            )
            print("tiered GET latency, one at a time (ms):")
            weed_volume = clusters["weed"].volume_urls[0]
            _, weed_latencies = await _gets(http, weed_volume, picks["weed"], 1)
            for name, values in (("weedpy", latencies), ("weed", weed_latencies)):
                print(
                    f"  {name:<7} p50 {_pct(values, 0.5):6.2f}  p99 {_pct(values, 0.99):6.2f}  "
                    f"mean {statistics.fmean(values) * 1000:6.2f}"
                )
            print(
                f"  weedpy/weed: p50 {_pct(latencies, 0.5) / _pct(weed_latencies, 0.5):.2f}, "
                f"p99 {_pct(latencies, 0.99) / _pct(weed_latencies, 0.99):.2f}"
            )
    finally:
        for cluster in clusters.values():
            cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blobs", type=int, default=5000)
    parser.add_argument("--picks", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tier-bench-") as tmp:
        root = Path(tmp)
        s3 = start_s3_server(root / "s3")
        try:
            asyncio.run(_run(args, s3, root))
        finally:
            s3.stop()


if __name__ == "__main__":
    main()
