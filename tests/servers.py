"""Start real clusters (a master and volume servers as subprocesses) for end-to-end tests.

One helper drives both implementations, so the same assertions run against the reference
SeaweedFS binary (`weed`) and against weedpy (STYLE.md #10):

    cluster = start_cluster("weed", tmp_path, volumes=2, replication="001")
    try:
        ...  # talk to cluster.master_url ("127.0.0.1:<port>") and cluster.volume_urls
    finally:
        cluster.stop()

or, in pytest, use the fixtures below, which are parametrised over `IMPLS`; bind them as module
attributes so pytest finds them:

    from tests import servers

    impl = servers.impl
    cluster_factory = servers.cluster_factory     # a fresh cluster per test, any shape
    shared_cluster = servers.shared_cluster       # one default cluster per module

    def test_x(cluster_factory):
        cluster = cluster_factory(volumes=2, replication="001")

The weedpy variant is skipped (with the reason) while `weedpy master`/`weedpy volume` are not yet
registered commands, and the weed variant when the reference binary is missing.

Every process binds 127.0.0.1 on an ephemeral port whose +10000 neighbour is free too (`weed`
also listens for gRPC on port+10000), writes its log to `<tmp_path>/<name>.log` (quoted in the
error when it fails to start), and is stopped with SIGTERM, then SIGKILL after a grace period.

`WEEDPY_TEST_WORKERS=N` in the environment starts every `weedpy volume` of these harnesses (and
of tests/fault/server_harness.py) with `-workers=N` unless the test names its own `-workers`;
the default is one worker. `WEEDPY_TEST_WORKERS=2 make test` runs the cluster, parity and fault
tests with two processes serving each volume server (`worker_flags`).
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

__all__ = [
    "IMPLS",
    "Cluster",
    "Impl",
    "VolumeSpec",
    "call",
    "cluster_factory",
    "count_data_nodes",
    "free_port",
    "get_json",
    "impl",
    "put",
    "shared_cluster",
    "skip_reason",
    "start_cluster",
    "worker_flags",
]

Impl = Literal["weed", "weedpy"]
IMPLS: tuple[Impl, ...] = ("weed", "weedpy")

_BIN = Path(sys.executable).parent
WEED = _BIN / "weed"
START_TIMEOUT = 30.0
STOP_GRACE = 5.0


@dataclass(frozen=True)
class VolumeSpec:
    """One volume server: where it sits in the topology and how many volumes it may hold."""

    data_center: str = ""
    rack: str = ""
    max_volumes: int = 8


def worker_flags(extra: Sequence[str]) -> list[str]:
    """`-workers=N` from `WEEDPY_TEST_WORKERS` (module docstring) unless `extra` (a
    `weedpy volume`'s own flags) names it; nothing when unset or 1."""
    text = os.environ.get("WEEDPY_TEST_WORKERS", "").strip()
    if not text or any(flag.startswith("-workers=") for flag in extra):
        return []
    count = int(text)
    if count < 1:
        raise ValueError(f"WEEDPY_TEST_WORKERS must be 1 or more: {text!r}")
    return [] if count == 1 else [f"-workers={count}"]


def skip_reason(impl: Impl) -> str | None:
    """Why `impl` cannot be started here, or None when it can."""
    if impl == "weed":
        return None if WEED.exists() else f"reference binary not installed at {WEED}"
    from seaweed_py.cli.main import COMMANDS

    missing = [c for c in ("master", "volume") if c not in COMMANDS]
    if missing:
        return "weedpy commands not registered yet: " + ", ".join(f"weedpy {c}" for c in missing)
    return None


def free_port(rng: random.Random | None = None) -> int:
    """A port free on 127.0.0.1 whose port+10000 is free too (weed's gRPC listener).

    Both stay below the kernel's ephemeral range (32768 and up), so an outgoing connection of
    another test cannot take the port between this check and the server's bind.
    """
    rng = rng or random.Random()
    for _ in range(200):
        port = rng.randrange(10000, 32768 - 10000)
        if _bindable(port) and _bindable(port + 10000):
            return port
    raise RuntimeError("no free port pair found on 127.0.0.1")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class _Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, limit: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def stop(self, grace: float = STOP_GRACE) -> None:
        if self.popen.poll() is not None:
            return
        if grace > 0:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(grace)
                return
            except subprocess.TimeoutExpired:
                pass
        self.popen.kill()
        self.popen.wait(STOP_GRACE)


def _stop_together(procs: Sequence[_Proc], grace: float = STOP_GRACE) -> None:
    """`_Proc.stop` for several at once: SIGTERM each, SIGKILL those still up after `grace`."""
    live = [p for p in procs if p.popen.poll() is None]
    for proc in live:
        proc.popen.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in live:
        try:
            proc.popen.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            proc.popen.wait(STOP_GRACE)


@dataclass
class Cluster:
    """A running master and its volume servers. Addresses are `host:port`, without a scheme."""

    impl: Impl
    master_url: str
    volume_urls: list[str]
    directory: Path
    _master: _Proc
    _volumes: list[_Proc] = field(default_factory=list)

    @property
    def master_http(self) -> str:
        return f"http://{self.master_url}"

    def stop_volume(self, index: int, *, grace: float = STOP_GRACE) -> None:
        """Stop one volume server (SIGTERM, then SIGKILL after `grace` seconds)."""
        self._volumes[index].stop(grace)

    def kill_volume(self, index: int) -> None:
        """SIGKILL one volume server: no goodbye heartbeat, like a crash."""
        self._volumes[index].stop(grace=0.0)

    def stop(self) -> None:
        """Stop every process this cluster started; safe to call twice. The volume servers
        stop side by side (each takes a moment to close), then the master, so their goodbyes
        still reach it."""
        _stop_together(self._volumes)
        self._master.stop()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _command(impl: Impl) -> list[str]:
    if impl == "weed":
        return [str(WEED)]
    return [sys.executable, "-m", "seaweed_py"]


def _spawn(
    impl: Impl, name: str, args: list[str], directory: Path, config_dir: Path | None = None
) -> _Proc:
    log = directory / f"{name}.log"
    # `-config_dir` is a global flag, before the command, for weed and weedpy alike.
    global_args = [f"-config_dir={config_dir}"] if config_dir is not None else []
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [*_command(impl), *global_args, *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=directory,
        )
    return _Proc(name, popen, log)


# Loopback only: never route through an HTTP proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get_json(url: str, timeout: float = 2.0) -> tuple[int, Any]:
    try:
        with _OPENER.open(url, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return exc.code, json.loads(body or b"null")
        except ValueError:
            return exc.code, None


def call(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    """One HTTP request to `host:port/path`; connection failures raise OSError."""
    req = urllib.request.Request(f"http://{url}", data=body, method=method, headers=headers or {})
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def put(url: str, fid: str, data: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
    return call("PUT", f"{url}/{fid}", data, {"Content-Type": "application/octet-stream"}, timeout)


def shell(master: str, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`weedpy shell -master=<master> <args>` fed `script` on its stdin (60 s at most)."""
    return subprocess.run(
        [sys.executable, "-m", "seaweed_py", "shell", f"-master={master}", *args],
        input=script,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def get_json(url: str) -> Any:
    status, body = call("GET", url)
    assert status == 200, (url, status, body)
    return json.loads(body)


def count_data_nodes(status: Any) -> int:
    """Volume servers registered in a master's `/dir/status` answer."""
    topology = (status or {}).get("Topology") or {}
    return sum(
        len(rack.get("DataNodes") or [])
        for dc in topology.get("DataCenters") or []
        for rack in dc.get("Racks") or []
    )


def _wait(what: str, check: Callable[[], bool], procs: Sequence[_Proc], deadline: float) -> None:
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.popen.poll() is not None:
                raise RuntimeError(
                    f"{proc.name} exited with {proc.popen.returncode} while waiting for {what}:\n"
                    f"{proc.log_tail()}"
                )
        try:
            if check():
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    logs = "\n".join(f"--- {p.name} ---\n{p.log_tail(1500)}" for p in procs)
    raise RuntimeError(f"timed out waiting for {what}\n{logs}")


def start_cluster(
    impl: Impl,
    tmp_path: Path,
    volumes: int | Sequence[VolumeSpec] = 1,
    *,
    replication: str = "",
    collection: str = "",
    volume_size_limit_mb: int | None = None,
    pulse_seconds: int | None = None,
    master_args: Sequence[str] = (),
    volume_args: Sequence[str] = (),
    wait_writable: bool = True,
    timeout: float = START_TIMEOUT,
    config_dir: Path | None = None,
) -> Cluster:
    """Start a master and volume servers of `impl` under `tmp_path/<impl>-cluster-N`.

    `volumes` is a count or one `VolumeSpec` per server (data center, rack, max volumes). The
    call returns once every volume server has registered with the master and, with
    `wait_writable` (the default), once `/dir/assign` with `replication`/`collection` hands out a
    fid, which grows the first volumes; pass `wait_writable=False` to test a cold cluster.
    `config_dir` holds the security.toml every process reads (weed's global `-config_dir`).
    On any failure every process started so far is stopped before the error propagates.
    """
    specs = [VolumeSpec()] * volumes if isinstance(volumes, int) else list(volumes)
    directory = _fresh_dir(tmp_path, f"{impl}-cluster")
    rng = random.Random()
    master_port = free_port(rng)
    mdir = directory / "master"
    mdir.mkdir()
    margs = [
        "master",
        "-ip=127.0.0.1",
        f"-port={master_port}",
        f"-mdir={mdir}",
        "-peers=none",
        "-telemetry=false",
    ]
    if volume_size_limit_mb is not None:
        margs.append(f"-volumeSizeLimitMB={volume_size_limit_mb}")
    if pulse_seconds is not None:
        margs.append(f"-pulseSeconds={pulse_seconds}")
    master = _spawn(impl, "master", [*margs, *master_args], directory, config_dir)
    cluster = Cluster(impl, f"127.0.0.1:{master_port}", [], directory, master)
    try:
        deadline = time.monotonic() + timeout
        status_url = f"{cluster.master_http}/dir/status"
        _wait("the master", lambda: _get_json(status_url)[0] == 200, [master], deadline)
        for i, spec in enumerate(specs):
            _start_volume(impl, cluster, i, spec, pulse_seconds, volume_args, rng, config_dir)
        procs = [master, *cluster._volumes]
        _wait(
            f"{len(specs)} volume server(s) to register",
            lambda: count_data_nodes(_get_json(status_url)[1]) >= len(specs),
            procs,
            deadline,
        )
        if wait_writable:
            query = f"replication={replication}&collection={collection}"
            assign_url = f"{cluster.master_http}/dir/assign?{query}"
            _wait(
                "a writable volume",
                lambda: "fid" in (_get_json(assign_url, 12.0)[1] or {}),
                procs,
                deadline,
            )
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _start_volume(
    impl: Impl,
    cluster: Cluster,
    index: int,
    spec: VolumeSpec,
    pulse_seconds: int | None,
    extra: Sequence[str],
    rng: random.Random,
    config_dir: Path | None = None,
) -> None:
    port = free_port(rng)
    vdir = cluster.directory / f"volume{index}"
    vdir.mkdir()
    args = [
        "volume",
        "-ip=127.0.0.1",
        f"-port={port}",
        f"-dir={vdir}",
        f"-max={spec.max_volumes}",
        f"-master={cluster.master_url}",
    ]
    if spec.data_center:
        args.append(f"-dataCenter={spec.data_center}")
    if spec.rack:
        args.append(f"-rack={spec.rack}")
    if pulse_seconds is not None:
        args.append(f"-pulseSeconds={pulse_seconds}")
    # Both wait -preStopSeconds (10) after SIGTERM before they stop serving.
    args.append("-preStopSeconds=0")
    if impl == "weedpy":
        args += worker_flags(extra)
    cluster._volumes.append(
        _spawn(impl, f"volume{index}", [*args, *extra], cluster.directory, config_dir)
    )
    cluster.volume_urls.append(f"127.0.0.1:{port}")


def _fresh_dir(parent: Path, stem: str) -> Path:
    for n in range(1000):
        candidate = parent / f"{stem}-{n}"
        try:
            candidate.mkdir(parents=True)
        except FileExistsError:
            continue
        return candidate
    raise RuntimeError(f"cannot create a cluster directory under {parent}")


@pytest.fixture(params=IMPLS)
def impl(request: pytest.FixtureRequest) -> Impl:
    """Each implementation in turn; skipped with the reason when it cannot run here."""
    name: Impl = request.param
    reason = skip_reason(name)
    if reason:
        pytest.skip(reason)
    return name


@pytest.fixture(scope="module", params=IMPLS)
def shared_cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """One default cluster (a master, one volume server) per implementation, shared by the
    tests of a module: for tests that only need somewhere to read and write."""
    name: Impl = request.param
    reason = skip_reason(name)
    if reason:
        pytest.skip(reason)
    with start_cluster(name, tmp_path_factory.mktemp(f"shared-{name}")) as running:
        yield running


@pytest.fixture
def cluster_factory(impl: Impl, tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    """`cluster_factory(volumes=..., replication=..., ...)` -> a Cluster of the current `impl`,
    stopped at teardown. Keyword arguments are those of `start_cluster`."""
    started: list[Cluster] = []

    def factory(**kwargs: Any) -> Cluster:
        cluster = start_cluster(impl, tmp_path, **kwargs)
        started.append(cluster)
        return cluster

    yield factory
    for cluster in started:
        cluster.stop()
