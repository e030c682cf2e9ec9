"""What verifying a large needle before streaming it costs: first read against remembered verdict.

    python -m bench.verify_bench [--sizes 3 100] [--rounds 5]

A `weedpy volume` subprocess on loopback (no master: its heartbeats fail, which reads do not
need) holds one volume. For each size (MiB), `rounds` distinct needles are written, and each is
read with a plain GET three ways:

* first, page cache warm: the server reads the whole needle to check its CRC, then streams it;
* remembered, warm: the verdict is remembered, the needle is only streamed (what every read of a
  large needle cost before verification, since the stream computes the CRC as it goes anyway);
* first and remembered with the page cache cold (the `.dat` evicted with
  `posix_fadvise(DONTNEED)` before each read; the verification then reads from the disk, and
  the stream finds the data in the cache).

It prints the median time to the first body byte and to the last, per read, and checks with
the server's `weedpy_volume_needle_verifications_total` counters that each first read read the
data and each later one used the remembered verdict.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

_COOKIE = "5eed5eed"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _evict(dat: Path) -> None:
    fd = os.open(dat, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


async def _timed_get(http: aiohttp.ClientSession, url: str, size: int) -> tuple[float, float]:
    """(seconds to the first body byte, seconds to the last) of one GET."""
    start = time.perf_counter()
    first = 0.0
    got = 0
    async with http.get(url) as resp:
        assert resp.status == 200, resp.status
        async for chunk in resp.content.iter_chunked(1 << 20):
            if not got:
                first = time.perf_counter() - start
            got += len(chunk)
    assert got == size, (got, size)
    return first, time.perf_counter() - start


async def _verifications(http: aiohttp.ClientSession, base: str) -> dict[str, float]:
    async with http.get(f"{base}/metrics") as resp:
        text = await resp.text()
    return {
        how: float(value)
        for how, value in re.findall(
            r'^weedpy_volume_needle_verifications_total\{how="(\w+)"\} (\S+)$', text, re.M
        )
    }


async def _measure(base: str, dat: Path, sizes: list[int], rounds: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    key = 0
    async with aiohttp.ClientSession(auto_decompress=False) as http:
        async with http.post(f"{base}/admin/volume/allocate", params={"volume": "1"}) as resp:
            assert resp.status == 200, await resp.text()
        for mib in sizes:
            size = mib << 20
            data = os.urandom(size)
            runs: dict[str, list[tuple[float, float]]] = {}
            for cache in ("warm", "cold"):
                for _ in range(rounds):
                    key += 1
                    url = f"{base}/1,{key:x}{_COOKIE}"
                    async with http.put(url, data=data) as resp:
                        assert resp.status == 201, await resp.text()
                    before = await _verifications(http, base)
                    for label in ("first", "remembered"):
                        if cache == "cold":
                            _evict(dat)
                        runs.setdefault(f"{label}, {cache}", []).append(
                            await _timed_get(http, url, size)
                        )
                    after = await _verifications(http, base)
                    assert after["read"] - before["read"] == 1, (before, after)
                    assert after["memo"] - before["memo"] == 1, (before, after)
            results[f"{mib} MiB"] = {
                label: {
                    "first_byte_ms": round(statistics.median(t[0] for t in times) * 1e3, 2),
                    "total_ms": round(statistics.median(t[1] for t in times) * 1e3, 2),
                }
                for label, times in runs.items()
            }
    return results


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[3, 100], help="MiB")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="weedpy-verify-bench-") as tmp:
        port = _free_port()
        cmd = [sys.executable, "-m", "seaweed_py", "volume", f"-dir={tmp}", f"-port={port}"]
        cmd += ["-ip=127.0.0.1", f"-master=127.0.0.1:{_free_port()}", "-preStopSeconds=0"]
        cmd += ["-fileSizeLimitMB=1024"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.05)
            results = asyncio.run(_measure(base, Path(tmp) / "1.dat", args.sizes, args.rounds))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
