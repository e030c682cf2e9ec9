"""Healing costs: how long a cluster takes to restore full replication after losing a server,
and what the background scrubber costs a busy volume server.

    python -m bench.heal_bench [--gib 1.0] [--seconds 20] [--only rereplication|scrub]

**Re-replication.** A master (`-pulseSeconds=1`, `-repairDelaySeconds=0`,
`-volumeSizeLimitMB=128`) and three volume servers in one rack; `gib` GiB of 1 MiB blobs written
with replication `001`; the server holding the most volumes is SIGKILLed. Measured: seconds
from the kill until the master names 2 live copies of every volume again (the master notices
the loss after 3 missed pulses: reported apart), the bytes copied and the rate after that; at
the default `-maintenanceMBps` (64) and with no limit (0).

**Scrubber.** One volume server holding a `replication=000` volume of 256 MiB (16 KiB blobs, so
that a pass outlasts the measurement); for `seconds` each: an idle server, and a read load (16
concurrent GETs of random blobs), each with `-scrubMBps=0` and at the default (8). Measured: the
server's CPU seconds (utime + stime) per second idle, and per 1,000 reads and reads per second
under load. The data sits in the page cache, so the scrubber's cost here is CPU (checksums,
decoding), not disk reads.

The machine is shared and noisy: compare the figures of one run, not across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

import aiohttp

from tests.fault.server_harness import Fleet, Node, call, wait_for

MIB = 1 << 20
_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


async def fill(
    master: str, count: int, size: int, replication: str, parallel: int = 4
) -> list[str]:
    fids: list[str] = []
    gate = asyncio.Semaphore(parallel)
    payload = os.urandom(size)
    async with aiohttp.ClientSession() as http:

        async def one(i: int) -> None:
            async with gate:
                url = f"http://{master}/dir/assign?replication={replication}"
                for _ in range(50):  # a volume filled up meanwhile: assign again, as clients do
                    async with http.get(url) as resp:
                        assigned = await resp.json()
                    if "fid" not in assigned:
                        await asyncio.sleep(0.2)
                        continue
                    data = aiohttp.FormData()
                    data.add_field("file", payload[i % 97 :] + payload[: i % 97], filename="b")
                    target = f"http://{assigned['url']}/{assigned['fid']}"
                    async with http.post(target, data=data) as r:
                        if r.status == 201:
                            fids.append(assigned["fid"])
                            return
                raise AssertionError(f"blob {i} could not be stored")

        await asyncio.gather(*(one(i) for i in range(count)))
    return fids


def volume_ids(node: Node) -> set[int]:
    status = json.loads(call("GET", f"{node.url}/status")[1])
    return {int(v["Id"]) for v in status["Volumes"]}


def holders(master: str, vid: int) -> list[str]:
    status, body = call("GET", f"{master}/dir/lookup?volumeId={vid}")
    return [loc["url"] for loc in json.loads(body)["locations"]] if status == 200 else []


def rereplication(gib: float, maintenance: str) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix="heal-bench-"))
    f = Fleet(root, random.Random(1))
    try:
        f.add_master("-repairDelaySeconds=0", "-volumeSizeLimitMB=128", pulse=1.0)
        for _ in range(3):
            f.add_volume(
                "-max=40",
                "-scrubMBps=0",
                "-replicaCheckSeconds=0",
                f"-maintenanceMBps={maintenance}",
            )
        f.wait_registered()
        count = int(gib * 1024)
        asyncio.run(fill(f.master_url, count, MIB, "001"))
        victim = max(f.volumes, key=lambda n: len(volume_ids(n)))
        lost = volume_ids(victim)
        sizes = {}
        for vid in lost:
            other = next(n for n in f.volumes if n is not victim and vid in volume_ids(n))
            sizes[vid] = (other.directory / f"{vid}.dat").stat().st_size
        everything = set().union(*(volume_ids(n) for n in f.volumes))
        start = time.monotonic()
        victim.kill()
        wait_for(
            "the loss to be noticed",
            lambda: all(victim.url not in holders(f.master_url, vid) for vid in lost),
            timeout=60,
        )
        noticed = time.monotonic() - start
        wait_for(
            "full replication",
            lambda: all(
                len(h := holders(f.master_url, vid)) == 2 and victim.url not in h
                for vid in everything
            ),
            timeout=1800,
        )
        took = time.monotonic() - start
        copied = sum(sizes.values())
        return {
            "volumes": len(lost),
            "copied_mib": copied / MIB,
            "seconds": took,
            "noticed": noticed,
            "mib_per_s": copied / MIB / (took - noticed),
        }
    finally:
        f.stop()
        shutil.rmtree(root, ignore_errors=True)


async def read_load(url: str, fids: list[str], seconds: float, parallel: int = 16) -> int:
    done = 0
    deadline = time.monotonic() + seconds
    rng = random.Random(2)
    async with aiohttp.ClientSession() as http:

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                async with http.get(f"http://{url}/{rng.choice(fids)}") as resp:
                    await resp.read()
                    assert resp.status == 200
                done += 1

        await asyncio.gather(*(worker() for _ in range(parallel)))
    return done


def scrub_cost(seconds: float) -> dict[str, dict[str, float]]:
    root = Path(tempfile.mkdtemp(prefix="heal-bench-"))
    out: dict[str, dict[str, float]] = {}
    try:
        f = Fleet(root, random.Random(3))
        f.add_master("-volumeSizeLimitMB=1024")
        node = f.add_volume("-scrubMBps=0", "-replicaCheckSeconds=0")
        f.wait_registered()
        fids = asyncio.run(fill(f.master_url, 256 * MIB // (16 << 10), 16 << 10, "000", 8))
        for rate in ("0", "8"):
            node.terminate()
            node.args = [a for a in node.args if not a.startswith("-scrubMBps")]
            node.args.append(f"-scrubMBps={rate}")
            node.start()
            time.sleep(2)  # the load-time work of a start is not the scrubber's
            before = cpu_seconds(node.pid)
            time.sleep(seconds)
            idle = (cpu_seconds(node.pid) - before) / seconds
            before = cpu_seconds(node.pid)
            reads = asyncio.run(read_load(node.url, fids, seconds))
            busy = cpu_seconds(node.pid) - before
            out[f"scrubMBps={rate}"] = {
                "idle_cpu_per_s": idle,
                "reads_per_s": reads / seconds,
                "cpu_ms_per_1000_reads": 1000 * 1000 * busy / reads,
            }
        f.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--only", choices=["rereplication", "scrub"])
    args = parser.parse_args()
    if args.only in (None, "rereplication"):
        for maintenance in ("64", "0"):
            r = rereplication(args.gib, maintenance)
            print(
                f"re-replication, -maintenanceMBps={maintenance}: {r['volumes']:.0f} volumes, "
                f"{r['copied_mib']:.0f} MiB back at 2 copies {r['seconds']:.1f} s after the kill "
                f"(noticed after {r['noticed']:.1f} s; {r['mib_per_s']:.0f} MiB/s from then)",
                flush=True,
            )
    if args.only in (None, "scrub"):
        for label, r in scrub_cost(args.seconds).items():
            print(
                f"scrubber {label}: idle {100 * r['idle_cpu_per_s']:.1f}% of a core; "
                f"under read load {r['reads_per_s']:.0f} reads/s, "
                f"{r['cpu_ms_per_1000_reads']:.0f} ms CPU per 1000 reads",
                flush=True,
            )


if __name__ == "__main__":
    main()
