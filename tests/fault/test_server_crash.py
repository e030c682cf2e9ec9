"""Crash, signals and a doubled process against real `weedpy volume` processes (reliability
scenarios 1, 21 and 35).

* #1: SIGKILL in the middle of a stream of acknowledged writes, with `-fsync=always` and with the
  default `-fsync=group`, then a restart on the same directory.
* #21: a second volume server on a directory another one serves refuses to start.
* #35: SIGTERM with uploads and reads in flight.

Each ends with the oracle of `server_harness.Oracle`. Writes that were in flight when the
process died (sent, never answered) must be absent or whole, never partial.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
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
from tests.servers import free_port, skip_reason

pytestmark = pytest.mark.skipif(
    skip_reason("weedpy") is not None, reason=str(skip_reason("weedpy"))
)

WRITERS = 4


@dataclass
class Stream:
    """Writers PUT distinct blobs to pre-assigned fids until told to stop or their server
    goes away; each fid is acknowledged (201) or in flight (no answer)."""

    url: str
    fids: list[str]
    rng: random.Random
    oracle: Oracle = field(default_factory=Oracle)
    in_flight: dict[str, bytes] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, threads: int = WRITERS) -> list[threading.Thread]:
        shares = [self.fids[i::threads] for i in range(threads)]
        workers = [
            threading.Thread(
                target=self._write, args=(share, random.Random(self.rng.random())), daemon=True
            )
            for share in shares
        ]
        for w in workers:
            w.start()
        return workers

    def _write(self, fids: list[str], rng: random.Random) -> None:
        # Mostly small blobs, some above the server's 1 MiB streaming threshold.
        sizes = (100, 3000, 70_000, 100, 3000, 70_000, 100, 1_500_000)
        for fid in fids:
            if self.stop.is_set():
                return
            data = rng.randbytes(rng.choice(sizes)) + fid.encode()
            with self._lock:
                self.in_flight[fid] = data
            try:
                status, body = put(self.url, fid, data, timeout=5.0)
            except OSError:
                return  # the server died under us: this fid stays "in flight"
            with self._lock:
                del self.in_flight[fid]
                if status == 201:
                    self.oracle.ack(fid, data)
                else:
                    self.errors.append(f"{fid}: {status} {body[:200]!r}")


def _fids(f: Fleet, count: int) -> list[str]:
    answer = f.assign(count=count)
    fid = answer["fid"]
    return [fid] + [f"{fid}_{i}" for i in range(1, count)]


def _kill_mid_stream(f: Fleet, node: Node, count: int) -> Stream:
    stream = Stream(node.url, _fids(f, count), f.rng)
    workers = stream.run()
    time.sleep(0.3 + f.rng.random() * 0.7)
    node.kill()
    stream.stop.set()
    for w in workers:
        w.join(10)
    assert not stream.errors, stream.errors[:5]
    return stream


@pytest.mark.parametrize("fsync", ["always", "group"])
def test_1_sigkill_during_acknowledged_writes(tmp_path: Path, fsync: str) -> None:
    with fleet(tmp_path, f"scenario 1 fsync={fsync}") as f:
        f.add_master()
        node = f.add_volume(f"-fsync={fsync}")
        f.wait_registered()
        stream = _kill_mid_stream(f, node, 3000)
        acked = len(stream.oracle.acked)
        print(f"acknowledged {acked}, in flight at the kill {len(stream.in_flight)}")
        assert acked > 0, "no write was acknowledged before the kill"

        node.start()
        f.wait_registered()
        print(
            "restart log:",
            [
                line
                for line in node.tail(20_000).splitlines()
                if "recovered" in line or "cutting" in line
            ],
        )
        for fid, data in stream.in_flight.items():
            assert read_checked(node.url, fid, data) in (200, 404), fid
        stream.oracle.check(lambda fid: [node.url])

        # The same volume takes a new write after the restart.
        vid = next(iter(stream.oracle.acked)).split(",")[0]
        fresh = f.assign()
        assert fresh["fid"].split(",")[0] == vid or fresh["url"] == node.url
        new_fid = stream.fids[-1] + "0"  # a key beyond every one the stream used
        status, body = put(node.url, new_fid, b"after restart")
        assert status == 201, body
        stream.oracle.ack(new_fid, b"after restart")
        stream.oracle.check(lambda fid: [node.url])


def test_21_second_volume_server_on_the_same_dir_refuses(tmp_path: Path) -> None:
    with fleet(tmp_path, "scenario 21") as f:
        f.add_master()
        first = f.add_volume()
        f.wait_registered()
        # Grown up front, and answered only when done: an assign's own growth goes on after
        # its answer (7 volumes, one at a time), and would change the directory after the
        # snapshot below.
        assert call("GET", f"{f.master_url}/vol/grow?count=2")[0] == 200
        oracle = Oracle()
        for i in range(5):
            fid = f.assign()["fid"]
            data = f.rng.randbytes(500 + i)
            assert put(first.url, fid, data)[0] == 201
            oracle.ack(fid, data)
        # The first server writes its batched .idx entries out on its own (at the next pulse):
        # let that happen before the snapshot, so only the second server could change a file.
        wait_for(
            "the first server's .idx entries on disk",
            lambda: sum(p.stat().st_size for p in first.directory.glob("*.idx")) == 5 * 16,
        )
        before = {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in first.directory.iterdir()
            if p.is_file()
        }

        port = free_port(f.rng)
        args = [a if not a.startswith("-port=") else f"-port={port}" for a in first.args]
        second = Node("volume", args, first.directory, port, tmp_path / "second.log")
        proc = second.spawn()
        code = proc.wait(20)
        log = second.tail()
        assert code != 0, log
        assert str(first.directory) in log and "lock" in log.lower(), log
        assert "Traceback" not in log, log

        after = {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in first.directory.iterdir()
            if p.is_file()
        }
        assert after == before
        oracle.check(lambda fid: [first.url])


def test_35_sigterm_with_uploads_and_reads_in_flight(tmp_path: Path) -> None:
    with fleet(tmp_path, "scenario 35") as f:
        f.add_master()
        node = f.add_volume()
        f.wait_registered()
        stream = Stream(node.url, _fids(f, 1500), f.rng)
        seed_data = {fid: f.rng.randbytes(2000) for fid in _fids(f, 20)}
        for fid, data in seed_data.items():
            assert put(node.url, fid, data)[0] == 201
            stream.oracle.ack(fid, data)

        wrong: list[str] = []

        def reader() -> None:
            while not stream.stop.is_set():
                fid, data = random.choice(list(seed_data.items()))
                try:
                    status, body = call("GET", f"{node.url}/{fid}", timeout=5.0)
                except OSError:
                    return
                if status == 200 and body != data:
                    wrong.append(fid)

        workers = stream.run()
        readers = [threading.Thread(target=reader, daemon=True) for _ in range(2)]
        for r in readers:
            r.start()
        time.sleep(0.3 + f.rng.random() * 0.5)
        started = time.monotonic()
        code = node.terminate(grace=15)
        took = time.monotonic() - started
        stream.stop.set()
        for w in [*workers, *readers]:
            w.join(10)
        print(
            f"exit {code} after {took:.2f} s; acknowledged {len(stream.oracle.acked)}, "
            f"in flight {len(stream.in_flight)}"
        )
        assert code == 0, node.tail()
        assert not wrong, wrong
        assert not stream.errors, stream.errors[:5]

        node.start()
        # A clean stop leaves nothing to repair: the restart neither cuts nor rebuilds.
        restart_log = node.log.read_text(errors="replace").rsplit("=== start", 1)[1]
        assert "recovered on open" not in restart_log, restart_log
        assert "cutting .dat" not in restart_log, restart_log
        for fid, data in stream.in_flight.items():
            assert read_checked(node.url, fid, data) in (200, 404), fid
        stream.oracle.check(lambda fid: [node.url])
        assert put(node.url, stream.fids[-1] + "0", b"after restart")[0] == 201
