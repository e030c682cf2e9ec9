"""Real `weedpy` processes for the server-level fault tests (tests/fault/test_server_*.py).

`tests.servers.start_cluster` starts a cluster once; fault tests also need to restart one
server on the same directory, signal it, read its RSS and start a second process on its
directory. `Node` is one such process, restartable; `Oracle` is the end-of-test check every
reliability scenario shares (spec/reliability-scenarios.md): every acknowledged blob reads back
byte-identical from every replica that claims it, every deleted blob is 404 everywhere, and no
request ever returned 200 with wrong bytes.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.servers import call, count_data_nodes, free_port, get_json, put, worker_flags

STOP_GRACE = 5.0


def seeded(name: str) -> random.Random:
    """A randomness source whose seed is printed, so a failing run can be replayed."""
    seed = random.SystemRandom().randrange(2**32)
    print(f"{name}: seed={seed}")
    return random.Random(seed)


def raw(
    host_port: str,
    method: str,
    target: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    """A request sent as given (no quoting of `target`), for hostile input."""
    host, port = host_port.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        if body or method in ("POST", "PUT"):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body or None)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def wait_for(what: str, check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class Node:
    """One `weedpy master` or `weedpy volume` process; `start()` again reuses its port and
    directory, like an operator restarting it."""

    role: str
    args: list[str]
    directory: Path
    port: int
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0
    env: dict[str, str] | None = None
    """The process's environment (None: this one's)."""
    module: str = "seaweed_py"
    """What `python -m` runs (a wrapper that installs a fault first, e.g. tests.fault.tier_cut)."""

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def spawn(self) -> subprocess.Popen[bytes]:
        """Start the process without waiting for it to serve."""
        self.starts += 1
        with self.log.open("ab") as out:
            out.write(f"\n=== start {self.starts} ===\n".encode())
            out.flush()
            self.popen = subprocess.Popen(
                [sys.executable, "-m", self.module, self.role, *self.args],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.directory.parent,
                env=self.env,
            )
        return self.popen

    def start(self, timeout: float = 20.0) -> None:
        self.spawn()
        self.wait_serving(timeout)

    def wait_serving(self, timeout: float = 20.0) -> None:
        """Wait until the process `spawn()` started answers its status page."""
        proc = self.popen
        assert proc is not None
        probe = "/dir/status" if self.role == "master" else "/status"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{self.role} exited with {proc.returncode}:\n{self.tail()}")
            try:
                if call("GET", self.url + probe, timeout=2.0)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.role} did not serve within {timeout} s:\n{self.tail()}")

    def pids(self) -> list[int]:
        """The process and the workers it started (`weedpy volume -workers=N`)."""
        found = [self.pid]
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == self.pid:
                    found.append(int(entry.name))
        return found

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL: no goodbye, no flush, like a crash."""
        if self.alive():
            assert self.popen is not None
            self.popen.kill()
            self.popen.wait(STOP_GRACE)

    def terminate(self, grace: float = STOP_GRACE) -> int:
        """SIGTERM, then SIGKILL after `grace`; the exit status."""
        assert self.popen is not None
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                return self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        return self.popen.wait(STOP_GRACE)

    def rss_kib(self, field: str = "VmRSS") -> int:
        """The largest resident memory of its processes now, or at their peak
        (`field="VmHWM"`), in KiB."""
        found = []
        for pid in self.pids():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith(f"{field}:"):
                        found.append(int(line.split()[1]))
        if not found:
            raise AssertionError(f"no {field} for pid {self.pid}")
        return max(found)

    def open_files(self) -> list[str]:
        """What the descriptors of its processes point to."""
        found = []
        for pid in self.pids():
            with contextlib.suppress(OSError):  # a worker gone meanwhile
                for fd in Path(f"/proc/{pid}/fd").iterdir():
                    with contextlib.suppress(OSError):  # closed meanwhile
                        found.append(str(fd.readlink()))
        return found

    def tail(self, limit: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-limit:]
        except OSError:
            return ""


@dataclass
class Fleet:
    """A master and volume servers started by one test; `stop()` ends every process."""

    root: Path
    rng: random.Random
    nodes: list[Node] = field(default_factory=list)
    master: Node | None = None
    volumes: list[Node] = field(default_factory=list)

    @property
    def master_url(self) -> str:
        assert self.master is not None
        return self.master.url

    def add_master(self, *extra: str, pulse: float = 0.5) -> Node:
        port = free_port(self.rng)
        mdir = self.root / "master"
        mdir.mkdir(exist_ok=True)
        node = Node(
            "master",
            [
                "-ip=127.0.0.1",
                f"-port={port}",
                f"-mdir={mdir}",
                "-peers=none",
                f"-pulseSeconds={pulse}",
                *extra,
            ],
            mdir,
            port,
            self.root / "master.log",
        )
        self.nodes.append(node)
        self.master = node
        node.start()
        return node

    def add_volume(self, *extra: str, start: bool = True, rack: str = "rack1") -> Node:
        """A volume server; `-workers=N` from `WEEDPY_TEST_WORKERS` unless `extra` names
        it (tests/servers.py `worker_flags`)."""
        assert self.master is not None
        extra = (*worker_flags(extra), *extra)
        index = len(self.volumes)
        port = free_port(self.rng)
        vdir = self.root / f"volume{index}"
        vdir.mkdir()
        node = Node(
            "volume",
            [
                "-ip=127.0.0.1",
                f"-port={port}",
                f"-dir={vdir}",
                "-max=8",
                f"-master={self.master.url}",
                "-preStopSeconds=0",
                "-pulseSeconds=1",
                "-dataCenter=dc1",
                f"-rack={rack}",
                *extra,
            ],
            vdir,
            port,
            self.root / f"volume{index}.log",
        )
        self.nodes.append(node)
        self.volumes.append(node)
        if start:
            node.start()
        return node

    def add_volumes(self, count: int, *extra: str, rack: str = "rack1") -> list[Node]:
        """`count` volume servers as `add_volume` makes them, started side by side (a start
        is mostly the interpreter importing): returns once every one serves."""
        nodes = [self.add_volume(*extra, start=False, rack=rack) for _ in range(count)]
        for node in nodes:
            node.spawn()
        for node in nodes:
            node.wait_serving()
        return nodes

    def wait_registered(self, count: int | None = None) -> None:
        assert self.master is not None
        want = len(self.volumes) if count is None else count
        url = f"{self.master.url}/dir/status"

        wait_for(
            f"{want} volume servers to register", lambda: count_data_nodes(get_json(url)) == want
        )

    def assign(self, replication: str = "000", count: int = 1) -> dict[str, Any]:
        assert self.master is not None
        query = f"replication={replication}&count={count}"
        deadline = time.monotonic() + 15
        while True:
            status, body = call("GET", f"{self.master.url}/dir/assign?{query}")
            answer = json.loads(body or b"{}")
            if status == 200 and "fid" in answer:
                return dict(answer)
            if time.monotonic() > deadline:
                raise AssertionError(f"assign failed: {status} {body!r}")
            time.sleep(0.1)

    def holders(self, fid: str) -> list[str]:
        assert self.master is not None
        vid = fid.split(",")[0]
        answer = get_json(f"{self.master.url}/dir/lookup?volumeId={vid}")
        return sorted(loc["url"] for loc in answer["locations"])

    def stop(self) -> None:
        """Every volume server at once (each takes a moment to close), then the masters, so
        the volume servers' goodbyes still reach theirs."""
        _terminate_together([n for n in reversed(self.nodes) if n.role != "master"])
        _terminate_together([n for n in reversed(self.nodes) if n.role == "master"])


@contextmanager
def frozen(node: Node) -> Iterator[None]:
    """Every process of `node` (its workers too) stopped with SIGSTOP inside the block, and
    continued whatever happens, so teardown can stop it."""
    pids = node.pids()
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


def _terminate_together(nodes: Sequence[Node], grace: float = STOP_GRACE) -> None:
    """SIGTERM each of `nodes`, then SIGKILL those still up `grace` seconds later."""
    live = [n for n in nodes if n.alive() and n.popen is not None]
    for node in live:
        assert node.popen is not None
        node.popen.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for node in live:
        assert node.popen is not None
        try:
            node.popen.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            node.popen.kill()
            node.popen.wait(STOP_GRACE)


@contextmanager
def fleet(root: Path, name: str) -> Iterator[Fleet]:
    running = Fleet(root, seeded(name))
    try:
        yield running
    finally:
        running.stop()


@dataclass
class Oracle:
    """What the cluster acknowledged; `check()` is the shared end-of-test assertion."""

    acked: dict[str, bytes] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)

    def ack(self, fid: str, data: bytes) -> None:
        self.acked[fid] = data
        self.deleted.discard(fid)

    def delete(self, fid: str) -> None:
        self.acked.pop(fid, None)
        self.deleted.add(fid)

    def check(self, holders: Callable[[str], Sequence[str]]) -> None:
        """Every acked fid reads back exactly from each of `holders(fid)`; every deleted one
        is 404 on each."""
        for fid, data in self.acked.items():
            urls = holders(fid)
            assert urls, f"{fid}: acknowledged but no server claims it"
            for url in urls:
                status, body = call("GET", f"{url}/{fid}")
                assert status == 200, f"{fid} on {url}: {status} {body[:200]!r}"
                assert body == data, f"{fid} on {url}: 200 with wrong bytes"
        for fid in self.deleted:
            for url in holders(fid):
                status, body = call("GET", f"{url}/{fid}")
                assert status == 404, f"deleted {fid} on {url}: {status} {body[:200]!r}"


def ask_worker(
    node: Node,
    method: str,
    target: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes, int]:
    """A request to `node` over a fresh connection (so the kernel picks any of its workers):
    (status, body, pid of the worker that answered), the pid found from the server's end of
    the connection in /proc while it is still open."""
    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=10.0)
    try:
        conn.request(method, target, body=body or None, headers=headers or {})
        assert conn.sock is not None
        client_port = conn.sock.getsockname()[1]
        resp = conn.getresponse()
        pid = _serving_pid(node, client_port)  # (before the body: a close may follow it)
        return resp.status, resp.read(), pid
    finally:
        conn.close()


def _serving_pid(node: Node, client_port: int) -> int:
    inode = ""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            local, remote = cols[1].rsplit(":", 1)[1], cols[2].rsplit(":", 1)[1]
            if int(local, 16) == node.port and int(remote, 16) == client_port and cols[9] != "0":
                inode = cols[9]
    assert inode, f"no server end of the connection from port {client_port}"
    for pid in node.pids():
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) == f"socket:[{inode}]":
                        return pid
    raise AssertionError(f"no process of {node.url} holds socket {inode}")


def multipart_file(data: bytes) -> tuple[bytes, dict[str, str]]:
    """An upload body of `data` as one form file, and its headers."""
    body = (
        b'--xx\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n--xx--\r\n"
    )
    return body, {"Content-Type": "multipart/form-data; boundary=xx"}


def read_checked(url: str, fid: str, expected: bytes) -> int:
    """GET `fid`; a 200 must carry exactly `expected`. The status."""
    status, body = call("GET", f"{url}/{fid}")
    if status == 200:
        assert body == expected, f"{fid} on {url}: 200 with wrong bytes"
    return status


__all__ = [
    "Fleet",
    "Node",
    "Oracle",
    "ask_worker",
    "call",
    "fleet",
    "get_json",
    "multipart_file",
    "put",
    "raw",
    "read_checked",
    "seeded",
    "wait_for",
]
