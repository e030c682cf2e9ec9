"""Vacuum of a volume that `weedpy volume -workers=2` serves, under write, delete and read
load (storage/volume_vacuum.py, "several workers"): the vacuum calls go over fresh
connections, so the kernel hands compact and commit to either worker; and a SIGKILL of one
worker, or of the whole server, in the middle of a vacuum. In-process, step-by-step
hand-overs are tests/fault/test_storage_vacuum_workers.py.

Writers PUT new blobs and delete some of their own; readers GET blobs written before the
load (never deleted: 200 with their bytes, or deleted before: 404) all along, so reads that
straddle a commit in either worker are checked too. Every acknowledged outcome holds at the
end and after a restart.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.fault.server_harness import (
    Fleet,
    Node,
    Oracle,
    call,
    fleet,
    put,
    read_checked,
    wait_for,
)
from tests.servers import skip_reason

pytestmark = pytest.mark.skipif(
    skip_reason("weedpy") is not None, reason=str(skip_reason("weedpy"))
)

WRITERS = 3
READERS = 2
CROSS = "committing the compaction another worker copied"
FOLLOW = "following the vacuum another worker committed"


@dataclass
class Load:
    url: str
    fids: list[str]
    stable: dict[str, bytes]
    gone: list[str]
    seed: int
    oracle: Oracle = field(default_factory=Oracle)
    in_flight: dict[str, bytes] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    reads: int = 0
    writes: int = 0  # acknowledged writes and deletes
    stop: threading.Event = field(default_factory=threading.Event)
    tolerate_deaths: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> list[threading.Thread]:
        threads = [
            threading.Thread(target=self._write, args=(self.fids[i::WRITERS], i), daemon=True)
            for i in range(WRITERS)
        ] + [threading.Thread(target=self._read, args=(i,), daemon=True) for i in range(READERS)]
        for t in threads:
            t.start()
        return threads

    def _write(self, fids: list[str], i: int) -> None:
        rng = random.Random(self.seed * 100 + i)
        mine: list[str] = []
        for fid in fids:
            if self.stop.is_set():
                return
            if len(mine) > 5 and rng.random() < 0.4:
                self._delete(mine.pop(rng.randrange(len(mine))))
                continue
            data = rng.randbytes(rng.choice((200, 3000, 20_000))) + fid.encode()
            with self._lock:
                self.in_flight[fid] = data
            try:
                status, body = put(self.url, fid, data, timeout=30.0)
            except OSError as exc:
                if not self.tolerate_deaths:
                    self.errors.append(f"PUT {fid}: {exc}")
                continue  # its worker died: in flight, absent or whole
            with self._lock:
                del self.in_flight[fid]
                if status == 201:
                    self.oracle.ack(fid, data)
                    mine.append(fid)
                    self.writes += 1
                else:
                    self.errors.append(f"PUT {fid}: {status} {body[:200]!r}")

    def _delete(self, fid: str) -> None:
        with self._lock:
            data = self.oracle.acked.pop(fid)
        try:
            status, body = call("DELETE", f"{self.url}/{fid}", timeout=30.0)
        except OSError as exc:
            with self._lock:  # in flight: present (as acknowledged) or deleted
                self.in_flight[fid] = data
            if not self.tolerate_deaths:
                self.errors.append(f"DELETE {fid}: {exc}")
            return
        with self._lock:
            if status == 202:
                self.oracle.delete(fid)
                self.writes += 1
            else:
                self.oracle.acked[fid] = data
                self.errors.append(f"DELETE {fid}: {status} {body[:200]!r}")

    def _read(self, i: int) -> None:
        rng = random.Random(self.seed * 1000 + i)
        stable = sorted(self.stable)
        while not self.stop.is_set():
            if rng.random() < 0.8:
                fid = rng.choice(stable)
                want: bytes | None = self.stable[fid]
            else:
                fid, want = rng.choice(self.gone), None
            try:
                status, body = call("GET", f"{self.url}/{fid}", timeout=30.0)
            except OSError as exc:
                if not self.tolerate_deaths:
                    self.errors.append(f"GET {fid}: {exc}")
                continue
            expected = 200 if want is not None else 404
            if status != expected or (want is not None and body != want):
                self.errors.append(f"GET {fid}: {status} {body[:100]!r}, wanted {expected}")
            with self._lock:
                self.reads += 1

    def finish(self, threads: list[threading.Thread]) -> None:
        self.stop.set()
        for t in threads:
            t.join(60)
        assert not self.errors, self.errors[:5]


def _workers_of(node: Node) -> list[int]:
    return node.pids()[1:]


def _setup(f: Fleet, node: Node, count: int) -> tuple[str, list[str], Load]:
    """A volume with 300 blobs, two thirds of them deleted, and the load over the rest of
    `count` fids of that volume (not started)."""
    f.wait_registered()
    wait_for("the second worker", lambda: len(_workers_of(node)) == 1)
    fid = f.assign(count=count)["fid"]
    fids = [fid] + [f"{fid}_{i}" for i in range(1, count)]
    vid = fid.split(",")[0]
    stable: dict[str, bytes] = {}
    gone: list[str] = []
    for fid in fids[:300]:
        data = f.rng.randbytes(f.rng.randrange(2_000, 20_000)) + fid.encode()
        assert put(node.url, fid, data)[0] == 201
        stable[fid] = data
    for fid in fids[:300]:
        if f.rng.random() < 0.66:
            assert call("DELETE", f"{node.url}/{fid}")[0] == 202
            gone.append(fid)
            del stable[fid]
    load = Load(node.url, fids[300:], stable, gone, f.rng.randrange(1 << 30))
    return vid, fids, load


def _more_load(load: Load, reads: int, writes: int) -> Callable[[], bool]:
    return lambda: load.reads > reads and load.writes > writes


def _vacuum_call(node: Node, step: str, vid: str) -> dict[str, object]:
    status, body = call("POST", f"{node.url}/admin/vacuum/{step}?volume={vid}", timeout=120)
    assert status == 200, (step, status, body)
    answer: dict[str, object] = json.loads(body)
    return answer


def _check_all(node: Node, load: Load) -> None:
    for fid, data in load.stable.items():
        assert read_checked(node.url, fid, data) == 200, fid
    for fid in load.gone:
        assert call("GET", f"{node.url}/{fid}")[0] == 404, fid
    for fid, data in load.in_flight.items():
        assert read_checked(node.url, fid, data) in (200, 404), fid
    load.oracle.check(lambda fid: [node.url])


def test_vacuum_with_two_workers_under_write_delete_and_read_load(tmp_path: Path) -> None:
    """Compact and commit, each over a fresh connection (either worker), again and again
    while the load runs, until a commit took up a compaction the other worker copied: no
    acknowledged blob is lost, deleted ones stay gone, every read during the vacuums is
    right, the other worker follows each commit, and the garbage is reclaimed."""
    with fleet(tmp_path, "vacuum with workers") as f:
        f.add_master("-disableVacuum")
        node = f.add_volume("-workers=2")
        vid, _, load = _setup(f, node, 20_000)
        threads = load.run()
        wait_for("writes acknowledged", lambda: len(load.oracle.acked) > 30)
        reclaimed = 0
        cycles = 0
        while cycles < 5 or (CROSS not in node.tail(10**7) and cycles < 20):
            reads, writes = load.reads, load.writes
            _vacuum_call(node, "compact", vid)
            answer = _vacuum_call(node, "commit", vid)
            reclaimed += int(str(answer["reclaimedBytes"]))
            cycles += 1
            wait_for("load after the commit", _more_load(load, reads + 20, writes + 30))
        load.finish(threads)
        log = node.tail(10**7)
        assert CROSS in log, f"no commit of the other worker's copy in {cycles} vacuums"
        assert FOLLOW in log
        assert reclaimed > 0
        print(f"{cycles} vacuums, {load.writes} writes and deletes, {load.reads} reads")
        _check_all(node, load)

        node.terminate(grace=30)
        node.start()
        f.wait_registered()
        assert not [p for p in node.directory.iterdir() if p.suffix in (".cpd", ".cpx", ".cpc")]
        _check_all(node, load)


@pytest.mark.parametrize("victim", ["one worker", "whole server"])
def test_sigkill_during_a_vacuum_with_two_workers(tmp_path: Path, victim: str) -> None:
    """A vacuum (paced at 1 MB/s, so it lasts) runs under load; one worker, or the leader
    with every worker, is SIGKILLed at a random moment of it. Then: with one worker gone,
    the vacuum is cleaned up and done again through whichever worker answers; with the
    whole server gone, it restarts. Every acknowledged outcome holds, and the volume
    vacuums again."""
    with fleet(tmp_path, f"kill during vacuum, {victim}") as f:
        f.add_master("-disableVacuum")
        node = f.add_volume("-workers=2", "-compactionMBps=1")
        vid, _, load = _setup(f, node, 20_000)
        load.tolerate_deaths = True
        threads = load.run()
        wait_for("writes acknowledged", lambda: len(load.oracle.acked) > 30)

        def vacuum() -> None:
            for step in ("compact", "commit"):
                try:
                    call("POST", f"{node.url}/admin/vacuum/{step}?volume={vid}", timeout=120)
                except OSError:
                    return

        running = threading.Thread(target=vacuum, daemon=True)
        running.start()
        time.sleep(f.rng.uniform(0.2, 2.0))
        if victim == "one worker":
            (worker,) = _workers_of(node)
            os.kill(worker, 9)
            wait_for("a new worker", lambda: _workers_of(node) not in ([], [worker]), timeout=30)
        else:
            node.kill()
        running.join(150)
        load.stop.set()
        for t in threads:
            t.join(60)
        unexpected = [e for e in load.errors if "Connection" not in e and "reset" not in e]
        assert not unexpected, unexpected[:5]
        if victim == "whole server":
            node.start()
            f.wait_registered()
            assert not [p for p in node.directory.iterdir() if p.suffix in (".cpd", ".cpx", ".cpc")]
        _check_all(node, load)

        # Whatever the kill left of the vacuum, it is cleaned up and the volume vacuums again.
        _vacuum_call(node, "cleanup", vid)
        _vacuum_call(node, "compact", vid)
        _vacuum_call(node, "commit", vid)
        _check_all(node, load)
        node.terminate(grace=30)
        node.start()
        f.wait_registered()
        _check_all(node, load)
