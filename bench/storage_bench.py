"""Storage-engine benchmark: needle-map memory and load time, append and read throughput.

    python -m bench.storage_bench [--needles N ...] [--ops N] [--dir PATH]

1. For each needle count (default 1M and 10M) and each index kind (memory, mmap): build a
   volume whose `.idx` is written directly with numpy (1 KiB needles, sequential keys; the
   `.dat` is sparse, only its superblock and last record are real), then open it in a fresh
   subprocess and report the RSS it added per needle, the open time (the `.idx` is in the page
   cache, as after a restart of the server), and the lookup time of random keys.
2. Append and read throughput of 1 KiB needles through `Volume` in each durability mode. In
   `group` mode 64 writes are in flight at a time (as 64 concurrent uploads would be) and the
   writer waits for the last one's `durable`; in `always` every write is fsynced before the
   next.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from seaweed_py.formats.idx import IDX4, entry_dtype
from seaweed_py.formats.needle import Needle, encode_needle, record_length
from seaweed_py.formats.superblock import SuperBlock
from seaweed_py.storage.volume import FsyncMode, Volume
from seaweed_py.storage.volume_loading import release_free_memory
from seaweed_py.types import Cookie, NeedleId

_DATA = 1024
_COOKIE = Cookie(0x5EED)
_IN_FLIGHT = 64


def _rss_bytes() -> tuple[int, int]:
    """(resident, resident and anonymous) bytes of this process; the difference is mapped
    file pages, i.e. page cache."""
    with open("/proc/self/statm") as f:
        fields = f.read().split()
    page = os.sysconf("SC_PAGE_SIZE")
    return int(fields[1]) * page, (int(fields[1]) - int(fields[2])) * page


def build_sparse_volume(directory: Path, n: int) -> None:
    """Volume 1 with `n` 1 KiB needles at keys 1..n: real `.idx`, sparse `.dat`."""
    sample = encode_needle(Needle.build(_COOKIE, NeedleId(n), bytes(_DATA)), 3, append_at_ns=1)
    size = int.from_bytes(sample[12:16], "big")
    step = record_length(size, 3)
    offsets = 8 + np.arange(n, dtype=np.uint64) * np.uint64(step)
    rec = np.empty(n, dtype=entry_dtype(IDX4))
    rec["key"] = np.arange(1, n + 1, dtype=np.uint64)
    rec["units"] = offsets >> np.uint64(3)
    rec["size"] = size
    (directory / "1.idx").write_bytes(rec.tobytes())
    del rec
    last = int(offsets[-1])
    with open(directory / "1.dat", "wb") as f:
        f.write(SuperBlock().encode())
        f.truncate(last)
        f.seek(last)
        f.write(sample)
    (directory / "1.vif").write_text('{"version": 3, "bytesOffset": 4}')


def child_open(directory: str, kind: str, n: int, lookups: int = 200_000) -> dict[str, Any]:
    """Runs in a fresh process: open the volume, measure what it costs."""
    rng = random.Random(1)
    keys = [rng.randrange(1, n + 1) for _ in range(lookups)]
    gc.collect()
    release_free_memory()  # the baseline must not hold garbage that the open then trims
    before, before_anon = _rss_bytes()
    t0 = time.perf_counter()
    v = Volume.open(directory, 1, index_kind=kind, fsync_mode=FsyncMode.NONE)
    opened = time.perf_counter() - t0
    gc.collect()
    after, after_anon = _rss_bytes()
    lookup = v.lookup
    per_lookup = float("inf")
    for _ in range(3):  # best of three: the machine is shared
        t0 = time.perf_counter()
        for k in keys:
            lookup(k)
        per_lookup = min(per_lookup, (time.perf_counter() - t0) / len(keys))
    after_lookups, after_lookups_anon = _rss_bytes()
    ok = v.lookup(n) is not None and v.lookup(n + 1) is None and v.live_count == n
    v.close()
    return {
        "open_s": opened,
        "rss_per_needle": (after - before) / n,
        "anon_per_needle": (after_anon - before_anon) / n,
        "rss_per_needle_after_lookups": (after_lookups - before) / n,
        "anon_per_needle_after_lookups": (after_lookups_anon - before_anon) / n,
        "lookup_us": per_lookup * 1e6,
        "ok": ok,
    }


def measure_map(n: int, base: Path) -> list[dict[str, Any]]:
    rows = []
    directory = base / f"map{n}"
    directory.mkdir()
    build_sparse_volume(directory, n)
    for kind in ("memory", "mmap"):
        out = subprocess.run(
            [sys.executable, "-m", "bench.storage_bench", "--child", str(directory), kind, str(n)],
            check=True,
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
        ).stdout
        rows.append({"needles": n, "kind": kind, **json.loads(out.strip().splitlines()[-1])})
    shutil.rmtree(directory)
    return rows


def measure_throughput(mode: FsyncMode, ops: int, base: Path) -> dict[str, Any]:
    directory = base / f"tp-{mode.value}"
    directory.mkdir()
    v = Volume.create(directory, 1, fsync_mode=mode)
    data = os.urandom(_DATA)
    needles = [Needle.build(_COOKIE, NeedleId(k), data) for k in range(1, ops + 1)]
    t0 = time.perf_counter()
    pending = None
    for i, nd in enumerate(needles):
        r = v.write(nd)
        if mode is FsyncMode.GROUP and (i + 1) % _IN_FLIGHT == 0:
            r.durable.result()
        pending = r
    if pending is not None:
        pending.durable.result()
    write_s = time.perf_counter() - t0
    rng = random.Random(2)
    keys = [rng.randrange(1, ops + 1) for _ in range(min(ops, 200_000))]
    read = v.read
    t0 = time.perf_counter()
    for k in keys:
        read(k, _COOKIE)
    read_s = time.perf_counter() - t0
    v.close()
    shutil.rmtree(directory)
    return {
        "mode": mode.value,
        "ops": ops,
        "appends_per_s": ops / write_s,
        "reads_per_s": len(keys) / read_s,
        "read_us": read_s / len(keys) * 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--needles",
        type=int,
        nargs="*",
        default=[1_000_000, 10_000_000],
        help="needle counts for the map memory/load measurement",
    )
    p.add_argument(
        "--ops",
        type=int,
        default=100_000,
        help="appends per throughput run (fsync=always runs ops/20)",
    )
    p.add_argument("--dir", default=None, help="scratch directory (default: a temp dir)")
    p.add_argument("--child", nargs=3, metavar=("DIR", "KIND", "N"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        directory, kind, n = args.child
        print(json.dumps(child_open(directory, kind, int(n))))
        return 0
    base = Path(tempfile.mkdtemp(prefix="weedpy-bench-", dir=args.dir))
    try:
        print(
            "RSS per needle: all / anonymous (the rest is mapped page cache), after open and "
            "after 600k random lookups"
        )
        print("   needles  index   open s   RSS B/needle   after lookups   lookup us")
        for n in args.needles:
            for row in measure_map(n, base):
                print(
                    f"{row['needles']:>10,}  {row['kind']:<6}  {row['open_s']:6.2f}  "
                    f"{row['rss_per_needle']:6.2f}/{row['anon_per_needle']:<6.2f} "
                    f"{row['rss_per_needle_after_lookups']:6.2f}/"
                    f"{row['anon_per_needle_after_lookups']:<6.2f}  {row['lookup_us']:9.2f}"
                    f"{'' if row['ok'] else '  WRONG ANSWERS'}",
                    flush=True,
                )
        print()
        print("fsync    appends/s (1 KiB)   reads/s (1 KiB)   read us")
        for mode in FsyncMode:
            ops = args.ops // 20 if mode is FsyncMode.ALWAYS else args.ops
            r = measure_throughput(mode, ops, base)
            print(
                f"{r['mode']:<7}  {r['appends_per_s']:17,.0f}  {r['reads_per_s']:16,.0f}  "
                f"{r['read_us']:8.2f}",
                flush=True,
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
