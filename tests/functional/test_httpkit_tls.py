"""httpkit over TLS (`HttpServer(ssl=...)`, issue 16): the same connection code runs on the
loop's TLS transport, so keep-alive, pipelining, streamed bodies both ways and backpressure
must behave as over plain TCP; a plain-HTTP client is refused, a client that never completes
its handshake is cut after the header timeout, and with a CA only clients presenting a
certificate it signed get in (mutual TLS). Certificates are made for the test by `trustme`."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from seaweed_py.security import SecurityConfigError, ServerTls
from seaweed_py.security.tls import server_context
from tests.functional.test_httpkit_helpers import (
    SMALL_LIMITS,
    RawClient,
    on_uvloop,
    serving,
)
from tests.secure_cluster import Pki, make_pki

GET_HELLO = b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _server_ctx(pki: Pki, *, mutual: bool = False) -> ssl.SSLContext:
    ca = str(pki.ca) if mutual else ""
    return server_context(ServerTls(str(pki.server_cert), str(pki.server_key), ca))


@on_uvloop
async def test_keep_alive_and_pipelining_over_tls(pki: Pki) -> None:
    async with serving(tls=_server_ctx(pki)) as (server, calls):
        client = await RawClient.connect(server.port, pki.client_context(with_cert=False))
        await client.send(GET_HELLO)
        assert (await client.read_response()).body == b"hello"
        # Pipelined, with a slow handler in the middle: answered in order on one connection.
        burst = GET_HELLO + b"GET /slow?s=0.05 HTTP/1.1\r\nHost: t\r\n\r\n" + GET_HELLO * 8
        await client.send(burst)
        bodies = [(await client.read_response()).body for _ in range(10)]
        assert bodies == [b"hello", b"slow", *[b"hello"] * 8]
        assert calls.order.count("hello") == 10
        assert server.connection_count == 1
        await client.close()


@on_uvloop
async def test_streamed_bodies_both_ways_over_tls(pki: Pki) -> None:
    async with serving(tls=_server_ctx(pki)) as (server, calls):
        client = await RawClient.connect(server.port, pki.client_context(with_cert=False))
        body = bytes(range(256)) * 8192  # 2 MiB: streamed (threshold 16 KiB), 100-continue
        await client.send(
            b"POST /upload HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        assert (await client.read_response()).status == 100
        await client.send(body)
        resp = await client.read_response(timeout=30)
        assert resp.status == 200 and resp.body == body and calls.streamed == [len(body)]
        await client.close()


@on_uvloop
async def test_a_slow_reader_pauses_the_response_over_tls(pki: Pki) -> None:
    async with serving(tls=_server_ctx(pki)) as (server, calls):
        client = await RawClient.connect(server.port, pki.client_context(with_cert=False))
        size = 64 * 1024 * 1024
        await client.send(b"GET /stream?size=%d HTTP/1.1\r\nHost: t\r\n\r\n" % size)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        # The client reads nothing: the TLS transport's buffer fills and pauses the writer.
        while not any(c._write_paused for c in server._connections):
            assert loop.time() < deadline, "the server never paused writing"
            await asyncio.sleep(0.01)
        assert calls.produced < size // 4
        resp = await client.read_response(timeout=60)
        assert len(resp.body) == size and calls.produced == size
        await client.close()


@on_uvloop
async def test_plain_http_and_silent_clients_are_refused(pki: Pki) -> None:
    async with serving(tls=_server_ctx(pki)) as (server, _):
        client = await RawClient.connect(server.port)  # no TLS
        await client.send(GET_HELLO)
        assert await client.closed_by_server()
        await client.close()
        silent = await RawClient.connect(server.port)  # connects, never says hello
        assert await silent.closed_by_server(timeout=SMALL_LIMITS.header_timeout + 3)
        await silent.close()
        # Plain TCP is not served at all while the TLS port runs.
        ok = await RawClient.connect(server.port, pki.client_context(with_cert=False))
        await ok.send(GET_HELLO)
        assert (await ok.read_response()).body == b"hello"
        await ok.close()


@on_uvloop
async def test_mutual_tls_admits_only_certificates_of_the_ca(pki: Pki) -> None:
    async with serving(tls=_server_ctx(pki, mutual=True)) as (server, _):
        for ctx in (pki.client_context(with_cert=False), pki.client_context(stranger=True)):
            try:
                client = await RawClient.connect(server.port, ctx)
            except (ssl.SSLError, ConnectionError):
                continue  # refused during the handshake
            # TLS 1.3 sends the server's verdict after the client thinks it is done.
            await client.send(GET_HELLO)
            with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
                await client.read_response()
            await client.close()
        client = await RawClient.connect(server.port, pki.client_context())
        await client.send(GET_HELLO)
        assert (await client.read_response()).body == b"hello"
        await client.close()


def test_server_context_refuses_what_it_cannot_load(pki: Pki, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    for tls in (
        ServerTls(str(tmp_path / "none.pem"), str(pki.server_key), section="https.volume"),
        ServerTls(str(junk), str(pki.server_key)),
        ServerTls(str(pki.server_cert), str(pki.client_key)),  # a key of another certificate
        ServerTls(str(pki.server_cert), str(pki.server_key), str(junk)),
    ):
        with pytest.raises(SecurityConfigError):
            server_context(tls)
