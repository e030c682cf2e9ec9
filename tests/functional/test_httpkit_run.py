"""`run_servers`: a daemon process that stops gracefully on SIGTERM / SIGINT."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from seaweed_py.errors import CannotListen
from seaweed_py.httpkit import HttpServer, Router, serve_until_signalled
from tests.functional.test_httpkit_helpers import RawClient, on_uvloop

_DAEMON = textwrap.dedent(
    """
    import asyncio, sys
    from seaweed_py.httpkit import HttpServer, Response, Router, run_servers

    async def slow(req):
        await asyncio.sleep(0.5)
        return Response(200, None, b"finished")

    router = Router()
    router.add("/slow", slow, ["GET"])
    server = HttpServer(router)

    async def start():
        await server.start("127.0.0.1", 0)
        print(server.port, flush=True)

    async def stop():
        await server.stop(grace=5)
        print("stopped", flush=True)

    sys.exit(run_servers(start, stop))
    """
)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_daemon_after_in_flight_requests(signum: int, tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-c", _DAEMON],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(root)},
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
            time.sleep(0.1)  # the request is in flight
            proc.send_signal(signum)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert answer.endswith(b"\r\n\r\nfinished")
        assert b"Connection: close\r\n" in answer
        out, err = proc.communicate(timeout=10)
        assert out.strip() == "stopped"
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@on_uvloop
async def test_failed_start_still_runs_stop_and_raises() -> None:
    first = HttpServer(Router())
    await first.start("127.0.0.1", 0)
    second = HttpServer(Router())
    stopped: list[bool] = []

    async def start() -> None:
        await second.start("127.0.0.1", first.port)  # taken: fails

    async def stop() -> None:
        await second.stop()
        stopped.append(True)

    try:
        with pytest.raises(CannotListen) as raised:
            await serve_until_signalled(start, stop)
        assert stopped == [True]
        # The one line the CLI prints names the flag, the port and why, not uvloop's tuple.
        assert str(raised.value) == (
            f"-port {first.port}: cannot listen on 127.0.0.1:{first.port}: "
            "the port is in use by another process"
        )
    finally:
        await first.stop()


@on_uvloop
async def test_signal_in_process_returns_zero_and_port_is_released() -> None:
    server = HttpServer(Router())

    async def start() -> None:
        await server.start("127.0.0.1", 0)
        asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGTERM)

    async def stop() -> None:
        await server.stop(1.0)

    assert await serve_until_signalled(start, stop) == 0
    with pytest.raises(ConnectionError):
        await RawClient.connect(server.port)
