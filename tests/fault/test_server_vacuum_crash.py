"""A real `weedpy volume` process SIGKILLed while the master vacuums one of its volumes under
load (reliability scenario 6, end to end; each step of the sequence is cut in-process by
test_storage_vacuum_crash.py): after a restart on the same directory every acknowledged blob
reads back, every deleted one is 404, no file of the vacuum is left, and the volume vacuums
again. The copy is paced (`-compactionMBps=1`) so it lasts long enough to be cut in the
middle; a second run cuts it at a random moment of the vacuum instead."""

from __future__ import annotations

import contextlib
import random
import threading
import time
from pathlib import Path

import pytest

from tests.fault.server_harness import (
    Fleet,
    Oracle,
    call,
    fleet,
    get_json,
    put,
    read_checked,
    wait_for,
)
from tests.servers import skip_reason

pytestmark = pytest.mark.skipif(
    skip_reason("weedpy") is not None, reason=str(skip_reason("weedpy"))
)


class Load:
    """Writes to pre-assigned fids and deletes acknowledged ones until told to stop or the
    server goes away; what was answered is in `oracle`, a write that was not in `in_flight`,
    a delete that was not in `unsure` (taken out of the oracle: either state is right)."""

    def __init__(self, url: str, fids: list[str], rng: random.Random, oracle: Oracle) -> None:
        self.url = url
        self.fids = fids
        self.rng = rng
        self.oracle = oracle
        self.in_flight: dict[str, bytes] = {}
        self.unsure: dict[str, bytes] = {}
        self.errors: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        for fid in self.fids:
            if self.stop.is_set():
                return
            data = self.rng.randbytes(self.rng.randrange(1, 20_000))
            self.in_flight[fid] = data
            try:
                status, body = put(self.url, fid, data, timeout=5.0)
                del self.in_flight[fid]
                if status != 201:
                    self.errors.append(f"write {fid}: {status} {body[:200]!r}")
                    continue
                self.oracle.ack(fid, data)
            except OSError:
                return  # the server died: the write stays unanswered
            victim = self.rng.choice(sorted(self.oracle.acked))
            try:
                status, body = call("DELETE", f"{self.url}/{victim}", timeout=5.0)
            except OSError:
                self.unsure[victim] = self.oracle.acked.pop(victim)
                return
            if status == 202:
                self.oracle.delete(victim)
            else:
                self.errors.append(f"delete {victim}: {status} {body[:200]!r}")


def _fids(f: Fleet, count: int) -> list[str]:
    fid = f.assign(count=count)["fid"]
    return [fid] + [f"{fid}_{i}" for i in range(1, count)]


def _vacuum(f: Fleet) -> threading.Thread:
    """`/vol/vacuum` from a thread (the master answers once the pass ends, failed or not)."""

    def request() -> None:
        with contextlib.suppress(OSError):
            call("GET", f"{f.master_url}/vol/vacuum?garbageThreshold=0.3", timeout=60)

    thread = threading.Thread(target=request, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("when", ["mid-copy", "random"])
def test_6_sigkill_during_a_vacuum_under_load(tmp_path: Path, when: str) -> None:
    with fleet(tmp_path, f"scenario 6 end to end, {when}") as f:
        f.add_master("-disableVacuum")
        node = f.add_volume("-compactionMBps=1")
        f.wait_registered()
        oracle = Oracle()
        fids = _fids(f, 600)
        vid = fids[0].split(",")[0]
        for fid in fids[:200]:
            data = f.rng.randbytes(f.rng.randrange(10_000, 30_000))
            assert put(node.url, fid, data)[0] == 201
            oracle.ack(fid, data)
        for fid in fids[:200:2]:
            assert call("DELETE", f"{node.url}/{fid}")[0] == 202
            oracle.delete(fid)

        load = Load(node.url, fids[200:], random.Random(f.rng.random()), oracle)
        writer = threading.Thread(target=load.run, daemon=True)
        writer.start()
        vacuum = _vacuum(f)
        if when == "mid-copy":
            wait_for("the copy to begin", lambda: (node.directory / f"{vid}.cpd").exists())
            time.sleep(0.3)
        else:
            time.sleep(f.rng.uniform(0.0, 2.5))
        node.kill()
        load.stop.set()
        writer.join(10)
        vacuum.join(60)
        assert not load.errors, load.errors[:5]
        assert oracle.acked, "nothing was acknowledged"

        node.start()
        f.wait_registered()
        leftovers = [
            p.name for p in node.directory.iterdir() if p.suffix in (".cpd", ".cpx", ".cpc")
        ]
        assert leftovers == []
        for fid, data in (load.in_flight | load.unsure).items():
            assert read_checked(node.url, fid, data) in (200, 404), fid
        oracle.check(lambda fid: [node.url])

        # The volume vacuums again and keeps every acknowledged blob.
        status, body = call("GET", f"{f.master_url}/vol/vacuum?garbageThreshold=0.1", timeout=60)
        assert status == 200, body
        volumes = {str(v["Id"]): v for v in get_json(f"{node.url}/status")["Volumes"]}
        assert volumes[vid]["DeletedByteCount"] == 0
        oracle.check(lambda fid: [node.url])
