"""HTTP/1.1 plumbing a client relies on, against both: keep-alive, pipelining, HTTP/1.0,
chunked request bodies and `Expect: 100-continue` (what curl sends for bodies over 1 KiB).

Raw sockets, so that nothing between the test and the server smooths the protocol over.
"""

from __future__ import annotations

import os
import socket

import pytest

from tests.parity.blobs import assign, store
from tests.parity.client import get
from tests.parity.targets import Endpoints

pytestmark = pytest.mark.parity

TIMEOUT = 10.0


def connect(address: str) -> socket.socket:
    host, port = address.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=TIMEOUT)


def read_response(
    sock: socket.socket, buffer: bytearray, *, head_only: bool = False
) -> tuple[int, dict[str, str], bytes]:
    """One response from `sock` (bytes already received are in `buffer`, which keeps any excess
    for the next response). Bodies are framed by Content-Length; responses to HEAD have none."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a full response head: {bytes(buffer)!r}"
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    length = (
        0 if head_only or status in (100, 204, 304) else int(headers.get("content-length", "0"))
    )
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside a body"
        rest += chunk
    buffer[:] = rest[length:]
    return status, headers, rest[:length]


def request_bytes(
    method: str, path: str, address: str, extra: str = "", body: bytes = b""
) -> bytes:
    length = f"Content-Length: {len(body)}\r\n" if body else ""
    return f"{method} {path} HTTP/1.1\r\nHost: {address}\r\n{length}{extra}\r\n".encode() + body


def test_keep_alive_serves_several_requests_on_one_connection(cluster: Endpoints) -> None:
    fid = store(cluster, b"kept alive", "k.bin")
    with connect(cluster.volume) as sock:
        buffer = bytearray()
        for method in ("GET", "HEAD", "GET"):
            sock.sendall(request_bytes(method, f"/{fid}", cluster.volume))
            status, headers, body = read_response(sock, buffer, head_only=method == "HEAD")
            assert status == 200, (method, headers)
            assert headers["content-length"] == "10"
            assert body == (b"" if method == "HEAD" else b"kept alive")


def test_pipelined_requests_are_answered_in_order(cluster: Endpoints) -> None:
    fids = [store(cluster, f"pipelined {i}".encode(), "p.bin") for i in range(3)]
    with connect(cluster.volume) as sock:
        sock.sendall(b"".join(request_bytes("GET", f"/{fid}", cluster.volume) for fid in fids))
        buffer = bytearray()
        for i in range(3):
            status, _, body = read_response(sock, buffer)
            assert (status, body) == (200, f"pipelined {i}".encode())


def test_http_1_0_request_is_answered_and_closed(cluster: Endpoints) -> None:
    fid = store(cluster, b"old protocol", "o.bin")
    with connect(cluster.volume) as sock:
        sock.sendall(f"GET /{fid} HTTP/1.0\r\n\r\n".encode())
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"200", head
    assert body == b"old protocol"


def test_chunked_request_body_is_stored(cluster: Endpoints) -> None:
    fid = assign(cluster).fid
    data = os.urandom(5000)
    chunked = (
        b"".join(
            b"%x\r\n%s\r\n" % (len(piece), piece)
            for piece in (data[:1000], data[1000:4096], data[4096:])
        )
        + b"0\r\n\r\n"
    )
    extra = "Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n"
    with connect(cluster.volume) as sock:
        sock.sendall(request_bytes("PUT", f"/{fid}", cluster.volume, extra) + chunked)
        status, _, body = read_response(sock, bytearray())
    assert status == 201, body
    assert get(f"{cluster.volume}/{fid}").body == data


def test_expect_100_continue_is_honoured(cluster: Endpoints) -> None:
    fid = assign(cluster).fid
    data = os.urandom(4096)
    extra = "Content-Type: application/octet-stream\r\nExpect: 100-continue\r\n"
    head = request_bytes(
        "PUT", f"/{fid}", cluster.volume, extra + f"Content-Length: {len(data)}\r\n"
    )
    with connect(cluster.volume) as sock:
        sock.sendall(head)
        buffer = bytearray()
        status, _, _ = read_response(sock, buffer)
        assert status == 100
        sock.sendall(data)
        status, _, body = read_response(sock, buffer)
    assert status == 201, body
    assert get(f"{cluster.volume}/{fid}").body == data
