"""A real S3-compatible server for tiering tests: the S3 gateway of the reference `weed` binary.

    from tests import s3_server
    s3 = s3_server.s3                       # bind the fixture in the test module

    def test_x(s3):
        bucket = s3.new_bucket()            # a fresh, empty bucket per test
        env = s3.env(bucket)                # WEEDPY_S3_* for a weedpy volume server

One `weed server -s3` per test session (master, volume, filer and S3 gateway in one process,
ready in about four seconds), on loopback with ephemeral ports, in a temporary directory, its
admin identity given by AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in its environment; readiness
is polled (a signed listing that succeeds), and the process is stopped at the end of the
session. Tests share it through their own buckets; none may stop or damage it (one that must
calls `start_s3_server` itself). `s3_store`, the session fixture, lives in tests/conftest.py:
a session fixture bound in each module would be one per module. moto's server is not used:
its range reads slow down with object size (issue 15).
"""

from __future__ import annotations

import itertools
import os
import secrets
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.servers import WEED, free_port

__all__ = ["S3Server", "s3", "s3_store", "start_s3_server"]

START_TIMEOUT = 60.0
ACCESS_KEY = "weedpytier"


@dataclass
class S3Server:
    endpoint: str
    filer: str
    master: str
    access_key: str
    secret_key: str
    directory: Path
    popen: subprocess.Popen[bytes]
    log: Path
    _names: Iterator[int] = field(default_factory=itertools.count)

    def new_bucket(self) -> str:
        """Create an empty bucket (a directory under the filer's /buckets) and name it."""
        name = f"tier{next(self._names)}-{secrets.token_hex(3)}"
        request = urllib.request.Request(
            f"http://{self.filer}/buckets/{name}/?op=mkdir", method="POST"
        )
        with _OPENER.open(request, timeout=10) as resp:
            assert resp.status in (200, 201), resp.status
        return name

    def env(self, bucket: str, **extra: str) -> dict[str, str]:
        """WEEDPY_S3_* naming `bucket` on this server (`extra` adds or overrides variables)."""
        return {
            "WEEDPY_S3_ENDPOINT": self.endpoint,
            "WEEDPY_S3_ACCESS_KEY": self.access_key,
            "WEEDPY_S3_SECRET_KEY": self.secret_key,
            "WEEDPY_S3_BUCKET": bucket,
            "WEEDPY_S3_REGION": "us-east-1",
            **extra,
        }

    def master_toml(self, bucket: str, backend_id: str = "default") -> str:
        """A SeaweedFS master.toml section naming `bucket`, as weed users write it."""
        return (
            "[storage.backend]\n"
            f"[storage.backend.s3.{backend_id}]\n"
            "enabled = true\n"
            f'aws_access_key_id = "{self.access_key}"\n'
            f'aws_secret_access_key = "{self.secret_key}"\n'
            'region = "us-east-1"\n'
            f'bucket = "{bucket}"\n'
            f'endpoint = "{self.endpoint}"\n'
            'storage_class = "STANDARD"\n'
            "force_path_style = true\n"
        )

    def log_tail(self, limit: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:  # weed server takes its full 10 s to stop on SIGTERM; a test store need not
                self.popen.wait(1)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def start_s3_server(directory: Path) -> S3Server:
    """Start `weed server -s3` under `directory`; returns once a signed request succeeds."""
    if not WEED.exists():
        pytest.skip(f"reference binary not installed at {WEED}")
    directory.mkdir(parents=True, exist_ok=True)
    ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
    secret = "s3-" + secrets.token_hex(12)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WEEDPY_S3_"))}
    env.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=secret)
    args = [
        str(WEED),
        "server",
        f"-dir={directory}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={ports['master'] + 10000}",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={ports['volume'] + 10000}",
        "-filer",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={ports['filer'] + 10000}",
        "-s3",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={ports['s3'] + 10000}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.telemetry=false",
        "-volume.preStopSeconds=0",
        # Each bucket is a collection that grows its own volumes (7 at a time): room for the
        # many small ones of a whole session's buckets.
        "-master.volumeSizeLimitMB=64",
        "-volume.max=1000",
    ]
    log = directory / "weed-s3.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=directory,
            env=env,
        )
    server = S3Server(
        endpoint=f"http://127.0.0.1:{ports['s3']}",
        filer=f"127.0.0.1:{ports['filer']}",
        master=f"127.0.0.1:{ports['master']}",
        access_key=ACCESS_KEY,
        secret_key=secret,
        directory=directory,
        popen=popen,
        log=log,
    )
    try:
        _wait_ready(server)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_ready(server: S3Server) -> None:
    """Ready when a bucket can be made and a signed listing of it answers."""
    from seaweed_py.storage.backend import S3Backend, S3Settings

    deadline = time.monotonic() + START_TIMEOUT
    last: object = None
    while time.monotonic() < deadline:
        if server.popen.poll() is not None:
            raise RuntimeError(
                f"weed s3 exited with {server.popen.returncode}:\n{server.log_tail()}"
            )
        try:
            bucket = server.new_bucket()
            store = S3Backend(
                S3Settings(
                    bucket=bucket,
                    endpoint=server.endpoint,
                    access_key=server.access_key,
                    secret_key=server.secret_key,
                )
            )
            list(store.list(""))
            return
        except Exception as exc:  # not up yet: connection refused, 5xx, 403 before identities load
            last = exc
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"weed s3 not ready in {START_TIMEOUT} s ({last}):\n{server.log_tail()}")


@pytest.fixture(scope="session")
def s3_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """The session's S3 store (module docstring)."""
    server = start_s3_server(tmp_path_factory.mktemp("s3"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def s3(s3_store: S3Server) -> S3Server:
    return s3_store
