"""`-concurrentUploadLimitMB` and `-inflightUploadDataTimeout` (spec §3.8), against both: past
the limit an upload waits, its body unread, and gets the same 429; a replica copy does not
wait; once the upload in flight is done, uploads go through again."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from tests.parity.blobs import assign, put_raw
from tests.parity.client import get
from tests.parity.targets import Endpoints, skip_unless_runnable
from tests.servers import IMPLS, Impl, start_cluster

pytestmark = pytest.mark.parity

MIB = 1 << 20


@pytest.fixture(scope="module", params=IMPLS)
def capped(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Endpoints]:
    impl: Impl = request.param
    skip_unless_runnable(impl)
    running = start_cluster(
        impl,
        tmp_path_factory.mktemp(f"upload-limit-{impl}"),
        volume_args=["-concurrentUploadLimitMB=1", "-inflightUploadDataTimeout=1s"],
    )
    try:
        yield Endpoints(impl, running.master_url, running.volume_urls[0])
    finally:
        running.stop()


def _started_put(volume: str, target: str, length: int, body: bytes, expect: bool) -> socket.socket:
    host, port = volume.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=20)
    extra = "Expect: 100-continue\r\n" if expect else ""
    head = (
        f"PUT {target} HTTP/1.1\r\nHost: {volume}\r\nContent-Length: {length}\r\n"
        f"Content-Type: application/octet-stream\r\n{extra}\r\n"
    )
    sock.sendall(head.encode() + body)
    return sock


def _reply(sock: socket.socket) -> tuple[int, bytes]:
    """The status line's code and the body (by Content-Length) of the first answer."""
    data = b""
    while True:
        more = sock.recv(65536)
        if not more:
            break
        data += more
        head, sep, body = data.partition(b"\r\n\r\n")
        if not sep:
            continue
        if head.startswith(b"HTTP/1.1 100 "):
            return 100, b""
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        if len(body) >= length:
            return int(head.split()[1]), body[:length]
    raise AssertionError(f"connection closed after {data[:200]!r}")


def test_past_the_limit_uploads_wait_then_get_429(capped: Endpoints) -> None:
    fid = assign(capped, "count=4").fid
    holder = _started_put(capped.volume, f"/{fid}", 4 * MIB, b"h" * MIB, expect=False)
    try:
        deadline = time.monotonic() + 10
        while True:
            # Admitted (a 100 Continue) means the first upload did not count yet: leave
            # without a body, which stores nothing, and look again.
            started = time.monotonic()
            waiting = _started_put(capped.volume, f"/{fid}_1", 2000, b"", expect=True)
            try:
                status, body = _reply(waiting)
            finally:
                waiting.close()
            if status != 100 or started > deadline:
                break
            time.sleep(0.05)
        assert status == 429, body
        assert time.monotonic() - started >= 0.9  # it waited out the 1 s
        assert json.loads(body) == {
            "error": f"reject because inflight upload data {4 * MIB} > {MIB}, and wait timeout"
        }
        assert get(f"{capped.volume}/{fid}_1").status == 404
        copy = _started_put(capped.volume, f"/{fid}_2?type=replicate", 4, b"copy", expect=False)
        try:
            assert _reply(copy)[0] == 201
        finally:
            copy.close()
        holder.sendall(b"h" * (3 * MIB))
        assert _reply(holder)[0] == 201
    finally:
        holder.close()
    assert put_raw(capped.volume, f"{fid}_3", b"after", "text/plain").status == 201
