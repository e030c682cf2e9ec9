"""`weedpy volume -workers=N` under bad luck: a worker killed mid-load, the whole server killed
mid-load, a worker restarted while the others serve (volume/workers.py, storage/shared.py).

Writers PUT distinct blobs over fresh connections (so the kernel spreads them over the
workers) to fids of several volumes, deleting some of what they wrote; every 201/202 is
acknowledged. A request whose connection dies with its worker is in flight: its blob must be
absent or whole afterwards, never partial. The oracle then checks every acknowledged outcome.
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.fault.server_harness import (
    Fleet,
    Node,
    Oracle,
    call,
    fleet,
    frozen,
    put,
    read_checked,
    wait_for,
)
from tests.servers import skip_reason
from tests.uring_kernel import io_uring_refusal, sync_rings

pytestmark = pytest.mark.skipif(
    skip_reason("weedpy") is not None, reason=str(skip_reason("weedpy"))
)

WRITERS = 6


def workers_of(node: Node) -> list[int]:
    """Pids of the worker processes the leader `node` started."""
    return node.pids()[1:]


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


@dataclass
class Load:
    """Writers over several volumes until `stop`; tolerant of connections dying under them."""

    url: str
    fids: list[str]
    seed: int
    oracle: Oracle = field(default_factory=Oracle)
    in_flight: dict[str, bytes] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    waiting: int = 0
    """Writers with a request sent and not yet answered."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> list[threading.Thread]:
        threads = [
            threading.Thread(target=self._write, args=(self.fids[i::WRITERS], i), daemon=True)
            for i in range(WRITERS)
        ]
        for t in threads:
            t.start()
        return threads

    def _write(self, fids: list[str], i: int) -> None:
        rng = random.Random(self.seed * 100 + i)
        mine: list[str] = []
        for fid in fids:
            if self.stop.is_set():
                return
            if mine and rng.random() < 0.1:
                self._delete(mine.pop(rng.randrange(len(mine))))
                continue
            data = rng.randbytes(rng.choice((100, 1500, 40_000))) + fid.encode()
            with self._lock:
                self.in_flight[fid] = data
            try:
                status, body = self._ask(put, self.url, fid, data, timeout=10.0)
            except OSError:
                continue  # its worker died: in flight, absent or whole
            with self._lock:
                del self.in_flight[fid]
                if status == 201:
                    self.oracle.ack(fid, data)
                    mine.append(fid)
                else:
                    self.errors.append(f"{fid}: {status} {body[:200]!r}")

    def _delete(self, fid: str) -> None:
        with self._lock:
            data = self.oracle.acked.pop(fid)
        try:
            status, body = self._ask(call, "DELETE", f"{self.url}/{fid}", timeout=10.0)
        except OSError:
            with self._lock:  # in flight: present (as acknowledged) or deleted
                self.in_flight[fid] = data
            return
        with self._lock:
            if status == 202:
                self.oracle.delete(fid)
            else:
                self.oracle.acked[fid] = data
                self.errors.append(f"DELETE {fid}: {status} {body[:200]!r}")

    def _ask(
        self, request: Callable[..., tuple[int, bytes]], *args: Any, **kw: Any
    ) -> tuple[int, bytes]:
        with self._lock:
            self.waiting += 1
        try:
            return request(*args, **kw)
        finally:
            with self._lock:
                self.waiting -= 1

    def finish(self, threads: list[threading.Thread]) -> None:
        self.stop.set()
        for t in threads:
            t.join(30)
        assert not self.errors, self.errors[:5]


def several_volumes(f: Fleet, count: int) -> list[str]:
    """Fids spread over every volume a few assigns pick (at least two volumes)."""
    assert call("GET", f"{f.master_url}/vol/grow?count=4")[0] == 200
    bases: dict[str, str] = {}
    for _ in range(40):
        fid = f.assign(count=count)["fid"]
        bases.setdefault(fid.split(",")[0], fid)
        if len(bases) >= 3:
            break
    assert len(bases) >= 2, bases
    per = count // len(bases)
    return [f"{base}_{i}" if i else base for i in range(per) for base in sorted(bases.values())]


def stuck(load: Load) -> bool:
    """Whether every writer has a request out (none answered: the server is frozen)."""
    return load.waiting == WRITERS


def check_in_flight(url: str, load: Load) -> None:
    for fid, data in load.in_flight.items():
        assert read_checked(url, fid, data) in (200, 404), fid


def test_kill_9_of_one_worker_under_write_load_loses_no_acknowledged_write(
    tmp_path: Path,
) -> None:
    """A worker is SIGKILLed while writes and deletes run over several volumes: the leader
    starts another, the writers go on through it and the others, and every acknowledged
    outcome holds (also after a restart of the whole server on the same directory)."""
    with fleet(tmp_path, "kill one worker") as f:
        f.add_master()
        node = f.add_volume("-workers=2")
        f.wait_registered()
        wait_for("the second worker", lambda: len(workers_of(node)) == 1)
        load = Load(node.url, several_volumes(f, 6000), f.rng.randrange(1 << 30))
        threads = load.run()
        wait_for("writes acknowledged", lambda: len(load.oracle.acked) > 50)
        (victim,) = workers_of(node)
        os.kill(victim, 9)
        wait_for("a new worker", lambda: workers_of(node) not in ([], [victim]), timeout=20)
        acked_at_kill = len(load.oracle.acked)
        wait_for("writes after the restart", lambda: len(load.oracle.acked) > acked_at_kill + 50)
        load.finish(threads)
        assert "exited with -9; starting another" in node.tail(50_000)
        check_in_flight(node.url, load)
        load.oracle.check(lambda fid: [node.url])

        node.terminate(grace=30)
        node.start()
        f.wait_registered()
        load.oracle.check(lambda fid: [node.url])


@pytest.mark.parametrize("workers", [1, 2])
def test_kill_9_of_the_whole_server_under_write_load_loses_no_acknowledged_write(
    tmp_path: Path, workers: int
) -> None:
    """Writes and deletes over several volumes with `-fsync=group`, each process syncing its
    journal's rounds in the background (it holds an io_uring): the whole server is frozen
    (SIGSTOP) with every writer waiting on it, thawed, then SIGKILLed mid-load. Its workers
    die with it (none lingers on the port or the directory), and after a restart every
    acknowledged outcome holds."""
    with fleet(tmp_path, f"kill the whole server of {workers} worker(s)") as f:
        f.add_master()
        node = f.add_volume(f"-workers={workers}")
        f.wait_registered()
        wait_for("the other workers", lambda: len(workers_of(node)) == workers - 1)
        others = workers_of(node)
        load = Load(node.url, several_volumes(f, 6000), f.rng.randrange(1 << 30))
        threads = load.run()
        wait_for("writes acknowledged", lambda: len(load.oracle.acked) > 100)
        if io_uring_refusal() is None:  # each process syncs through its own ring
            wait_for(
                "every process's rounds through its io_uring",
                lambda: all(sum(sync_rings(pid)) > 0 for pid in node.pids()),
            )
        with frozen(node):
            wait_for("every writer waiting on the frozen server", lambda: stuck(load))
        thawed_at = len(load.oracle.acked)
        wait_for("writes after the thaw", lambda: len(load.oracle.acked) > thawed_at + 100)
        node.kill()
        wait_for(
            "the workers to die with their leader",
            lambda: not any(Path(f"/proc/{pid}").exists() for pid in others),
        )
        load.finish(threads)
        print(f"acknowledged {len(load.oracle.acked)}, in flight {len(load.in_flight)}")

        node.start()
        f.wait_registered()
        check_in_flight(node.url, load)
        load.oracle.check(lambda fid: [node.url])


def test_a_restarted_worker_serves_while_the_others_do(tmp_path: Path) -> None:
    """Between two writes, the second worker is killed; while the leader alone serves, and
    after the new worker came up, every connection reads what any worker wrote, and the new
    worker takes its share of the connections."""
    with fleet(tmp_path, "restart a worker") as f:
        f.add_master()
        node = f.add_volume("-workers=2")
        f.wait_registered()
        wait_for("the second worker", lambda: len(workers_of(node)) == 1)
        oracle = Oracle()
        fids = several_volumes(f, 400)
        for fid in fids[:100]:
            data = f.rng.randbytes(300) + fid.encode()
            assert put(node.url, fid, data)[0] == 201
            oracle.ack(fid, data)
        (old,) = workers_of(node)
        os.kill(old, 9)
        for fid in fids[100:150]:  # served by the leader alone meanwhile
            data = f.rng.randbytes(300) + fid.encode()
            assert put(node.url, fid, data)[0] == 201
            oracle.ack(fid, data)
        wait_for("a new worker", lambda: workers_of(node) not in ([], [old]), timeout=20)
        (new,) = workers_of(node)
        wait_for("the new worker to listen", lambda: _listens(new))
        before = cpu_ticks(new)
        oracle.check(lambda fid: [node.url])
        for fid in fids[150:400]:
            data = f.rng.randbytes(300) + fid.encode()
            assert put(node.url, fid, data)[0] == 201
            oracle.ack(fid, data)
        oracle.check(lambda fid: [node.url])
        assert cpu_ticks(new) > before, "the new worker served nothing"


def _listens(pid: int) -> bool:
    """Whether process `pid` holds a listening TCP socket."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                return True
    return False


def test_several_workers_see_each_other_s_volumes_marks_and_deletes(tmp_path: Path) -> None:
    """Admin calls land on any worker: a volume allocated, marked read-only, made writable
    and deleted through one is seen so through every connection."""
    with fleet(tmp_path, "admin with workers") as f:
        f.add_master()
        node = f.add_volume("-workers=2")
        f.wait_registered()
        wait_for("the second worker", lambda: len(workers_of(node)) == 1)
        assert call("POST", f"{node.url}/admin/volume/allocate?volume=77")[0] == 200
        assert put(node.url, "77,0100000001", b"seen")[0] == 201
        for _ in range(20):  # fresh connections, so both workers: each knows it is stored
            assert put(node.url, "77,0100000001", b"seen")[0] == 204
        assert call("POST", f"{node.url}/admin/volume/readonly?volume=77")[0] == 200
        for i in range(20):
            status, _ = put(node.url, f"77,0{i + 2:x}00000001", b"refused")
            assert status != 201, "a worker wrote to a volume marked read-only"
        assert call("POST", f"{node.url}/admin/volume/writable?volume=77")[0] == 200
        for i in range(20):
            assert put(node.url, f"77,0{i + 40:x}00000001", b"again")[0] == 201
        assert call("POST", f"{node.url}/admin/volume/delete?volume=77")[0] == 200
        for _ in range(20):
            assert call("GET", f"{node.url}/77,0100000001")[0] == 404
        assert not list(node.directory.glob("77.*"))
        # The heartbeat names no volume 77 any more.
        wait_for(
            "the master to forget volume 77",
            lambda: call("GET", f"{f.master_url}/dir/lookup?volumeId=77")[0] == 404,
        )
