"""Memory per needle of a volume server with several workers, and how soon it serves.

Builds a volume of `--needles` needles with the storage engine, then starts a master and
`weedpy volume -workers=N` on it, times until every worker answers, and reads the resident
memory of all its processes: RSS (what `ps` and compare.py add up; pages shared between the
processes count once per process) and PSS (each shared page split between its processes: the
memory the server really takes). The same is measured on an empty directory; the difference
over the needle count is the cost per needle.

    python -m bench.workers_memory                      # 1,000,000 needles, 1 and 2 workers
    python -m bench.workers_memory --needles 10000000 --workers 2
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from seaweed_py.formats.needle import Needle
from seaweed_py.storage.volume import FsyncMode, Volume


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _descendants(pid: int) -> list[int]:
    found = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _memory_kib(pids: list[int]) -> tuple[int, int]:
    """Summed (RSS, PSS) of `pids`, in KiB."""
    rss = pss = 0
    for pid in pids:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        rss += int(re.search(r"^Rss:\s+(\d+)", text, re.M).group(1))  # type: ignore[union-attr]
        pss += int(re.search(r"^Pss:\s+(\d+)", text, re.M).group(1))  # type: ignore[union-attr]
    return rss, pss


def _serving(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


def _fill(directory: Path, needles: int) -> None:
    v = Volume.create(directory, 1, fsync_mode=FsyncMode.NONE)
    try:
        for key in range(1, needles + 1):
            v.write(Needle.build(0x1234, key, b"x"))
    finally:
        v.close()


def measure(directory: Path, workers: int) -> tuple[float, int, int, int]:
    """(seconds until every worker serves, RSS KiB, PSS KiB, processes)."""
    mport, vport = _free_port(), _free_port()
    mdir = directory.parent / f"{directory.name}-master"
    mdir.mkdir(exist_ok=True)
    exe = [sys.executable, "-m", "seaweed_py"]
    master = subprocess.Popen(
        [*exe, "master", "-ip=127.0.0.1", f"-port={mport}", f"-mdir={mdir}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        started = time.monotonic()
        volume = subprocess.Popen(
            [
                *exe,
                "volume",
                "-ip=127.0.0.1",
                f"-port={vport}",
                f"-dir={directory}",
                f"-master=127.0.0.1:{mport}",
                f"-workers={workers}",
                "-preStopSeconds=0",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while not (
                _serving(f"http://127.0.0.1:{vport}/status")
                and len(_descendants(volume.pid)) >= workers
            ):
                time.sleep(0.02)
            # Every worker answers: as many fresh connections as it takes to meet them all.
            while not _all_answer(vport, volume.pid, workers):
                time.sleep(0.02)
            ready = time.monotonic() - started
            time.sleep(1.0)
            pids = _descendants(volume.pid)
            rss, pss = _memory_kib(pids)
            return ready, rss, pss, len(pids)
        finally:
            volume.terminate()
            volume.wait(60)
    finally:
        master.terminate()
        master.wait(30)


def _all_answer(port: int, leader: int, workers: int) -> bool:
    """Whether every worker process holds a listening socket on `port`."""
    listening = 0
    for pid in _descendants(leader):
        inodes = set()
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and int(cols[1].split(":")[1], 16) == port and cols[9] in inodes:
                listening += 1
                break
    return listening >= workers


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--needles", type=int, default=1_000_000)
    p.add_argument("--workers", default="1,2", help="worker counts to measure, comma-separated")
    a = p.parse_args(argv)
    counts = [int(n) for n in a.workers.split(",")]
    per = 1024 / a.needles
    with tempfile.TemporaryDirectory(prefix="workers-memory-") as tmp:
        empty, full = Path(tmp) / "empty", Path(tmp) / "full"
        empty.mkdir()
        full.mkdir()
        t = time.monotonic()
        _fill(full, a.needles)
        print(f"built a volume of {a.needles:,} needles in {time.monotonic() - t:.1f} s")
        for workers in counts:
            _, rss0, pss0, n = measure(empty, workers)
            ready, rss1, pss1, _ = measure(full, workers)
            print(f"{workers} worker(s) ({n} processes): serving {ready:.2f} s after start")
            print(
                f"  RSS {rss0 / 1024:.1f} -> {rss1 / 1024:.1f} MiB: {(rss1 - rss0) * per:.1f} B/needle"
            )
            print(
                f"  PSS {pss0 / 1024:.1f} -> {pss1 / 1024:.1f} MiB: {(pss1 - pss0) * per:.1f} B/needle"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
