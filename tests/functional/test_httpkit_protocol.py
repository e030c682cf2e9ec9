"""httpkit on a real loopback socket, driven byte by byte: the HTTP/1.1 edge cases."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct

import pytest
import uvloop

from seaweed_py.httpkit import Limits
from tests.functional.test_httpkit_helpers import (
    SMALL_LIMITS,
    RawClient,
    on_uvloop,
    serving,
)

GET_HELLO = b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"


@on_uvloop
async def test_pipelined_requests_in_one_packet_are_answered_in_order() -> None:
    async with serving() as (server, calls):
        client = await RawClient.connect(server.port)
        # The slow async handler comes first: the sync ones behind it must wait their turn.
        await client.send(
            b"GET /slow?s=0.2 HTTP/1.1\r\nHost: t\r\n\r\n"
            + GET_HELLO
            + b"GET /info?x=3 HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        first = await client.read_response()
        second = await client.read_response()
        third = await client.read_response()
        assert (first.body, second.body) == (b"slow", b"hello")
        assert third.status == 200 and b'"x":"3"' in third.body
        assert calls.order == ["slow-start", "slow-end", "hello"]
        await client.close()


@on_uvloop
async def test_deep_pipeline_behind_a_slow_request_is_answered_in_order() -> None:
    async with serving() as (server, _):
        client = await RawClient.connect(server.port)
        requests = [b"GET /slow?s=0.2 HTTP/1.1\r\nHost: t\r\n\r\n"]
        requests += [b"GET /info?n=%d HTTP/1.1\r\nHost: t\r\n\r\n" % i for i in range(100)]
        await client.send(b"".join(requests))  # more than Limits.max_pipeline behind the first
        assert (await client.read_response()).body == b"slow"
        for i in range(100):
            resp = await client.read_response()
            assert b'"n":"%d"' % i in resp.body
        await client.close()


@on_uvloop
async def test_request_split_byte_by_byte_is_parsed() -> None:
    async with serving() as (server, _):
        client = await RawClient.connect(server.port)
        request = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nabcde" + GET_HELLO
        for i in range(len(request)):
            await client.send(request[i : i + 1])
        echo = await client.read_response()
        hello = await client.read_response()
        assert (echo.status, echo.body) == (200, b"abcde")
        assert (hello.status, hello.body) == (200, b"hello")
        assert hello.headers["x-path"] == "/hello"
        await client.close()


@on_uvloop
async def test_response_carries_server_date_and_length() -> None:
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)  # as the daemons run
    async with serving() as (server, _):
        client = await RawClient.connect(server.port)
        await client.send(GET_HELLO)
        resp = await client.read_response()
        assert resp.head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert resp.headers["server"] == "weedpy-test"
        assert resp.headers["date"].endswith(" GMT")
        assert resp.headers["content-length"] == "5"
        assert "connection" not in resp.headers  # HTTP/1.1 keep-alive is the default
        await client.close()


@pytest.mark.parametrize(
    "request_line",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /hello HTTP/1.1 extra\r\nHost: t\r\n\r\n",
        b"GET /hello HTTP/9.1\r\nHost: t\r\n\r\n",
        b"GET /hello HTTP/1.1\r\nHost: t\r\nBad Header Name: x\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
    ],
)
@on_uvloop
async def test_malformed_request_is_400_and_closes(request_line: bytes) -> None:
    async with serving() as (server, _):
        client = await RawClient.connect(server.port)
        await client.send(request_line)
        resp = await client.read_response()
        assert resp.status == 400
        assert resp.headers["connection"] == "close"
        assert resp.headers["content-type"] == "application/json"
        assert b'"error"' in resp.body
        assert await client.closed_by_server()
        await client.close()


@on_uvloop
async def test_http11_request_without_host_is_400() -> None:
    async with serving() as (server, calls):
        client = await RawClient.connect(server.port)
        await client.send(b"GET /hello HTTP/1.1\r\nAccept: */*\r\n\r\n")
        resp = await client.read_response()
        assert resp.status == 400
        assert b"Host" in resp.body
        assert calls.order == []
        await client.send(b"GET /hello HTTP/1.0\r\n\r\n")  # HTTP/1.0 needs none
        assert (await client.read_response()).body == b"hello"
        await client.close()


@on_uvloop
async def test_an_error_after_good_pipelined_requests_is_answered_after_them() -> None:
    async with serving() as (server, _):
        client = await RawClient.connect(server.port)
        await client.send(GET_HELLO + b"GET /slow?s=0.1 HTTP/1.1\r\nHost: t\r\n\r\nBROKEN\r\n\r\n")
        assert (await client.read_response()).body == b"hello"
        assert (await client.read_response()).body == b"slow"
        assert (await client.read_response()).status == 400
        assert await client.closed_by_server()
        await client.close()


@on_uvloop
async def test_oversized_url_is_414() -> None:
    async with serving() as (server, _):
        client = await RawClient.connect(server.port)
        await client.send(
            b"GET /" + b"a" * (SMALL_LIMITS.max_url + 1) + b" HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        resp = await client.read_response()
        assert resp.status == 414
        assert await client.closed_by_server()
        await client.close()


@on_uvloop
async def test_oversized_headers_are_431_in_one_packet_and_dripped() -> None:
    async with serving() as (server, _):
        many = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 50) for i in range(40))
        client = await RawClient.connect(server.port)
        await client.send(b"GET /hello HTTP/1.1\r\nHost: t\r\n" + many + b"\r\n")
        assert (await client.read_response()).status == 431
        assert await client.closed_by_server()
        await client.close()

        # Complete lines in two reads, each under the limit, together over it.
        client = await RawClient.connect(server.port)
        half = b"".join(b"X-A%d: %s\r\n" % (i, b"v" * 50) for i in range(12))  # ~700 bytes
        await client.send(b"GET /hello HTTP/1.1\r\nHost: t\r\n" + half)
        await asyncio.sleep(0.05)
        await client.send(half.replace(b"X-A", b"X-B") + b"\r\n")
        assert (await client.read_response()).status == 431
        await client.close()

        # One endless header line, sent in pieces: never completes, still refused.
        client = await RawClient.connect(server.port)
        await client.send(b"GET /hello HTTP/1.1\r\nHost: t\r\nX-Long: ")
        for _ in range(12):
            await client.send(b"v" * 100)
            await asyncio.sleep(0.005)
        assert (await client.read_response()).status == 431
        await client.close()


@on_uvloop
async def test_headers_just_under_the_limit_straddling_packets_with_a_body_are_accepted() -> None:
    async with serving() as (server, _):
        client = await RawClient.connect(server.port)
        head = (
            b"POST /echo HTTP/1.1\r\nHost: t\r\nX-Pad: "
            + b"p" * 700
            + b"\r\nContent-Length: 5000\r\n\r\n"
        )
        await client.send(head[:300])
        await asyncio.sleep(0.05)
        await client.send(head[300:] + b"b" * 5000)
        resp = await client.read_response()
        assert resp.status == 200 and resp.body == b"b" * 5000
        await client.close()


@on_uvloop
async def test_body_over_the_limit_is_413_before_the_body_is_sent() -> None:
    async with serving() as (server, calls):
        client = await RawClient.connect(server.port)
        too_big = SMALL_LIMITS.max_body + 1
        await client.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % too_big)
        resp = await client.read_response()
        assert resp.status == 413
        assert resp.headers["connection"] == "close"
        assert b"exceeds the limit" in resp.body
        assert calls.bodies == []
        await client.close()


@on_uvloop
async def test_route_limit_overrides_the_server_limit() -> None:
    async with serving() as (server, calls):
        client = await RawClient.connect(server.port)
        body = b"u" * (SMALL_LIMITS.max_body * 4)  # allowed on /upload, streamed
        await client.send(
            b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        )
        resp = await client.read_response()
        assert resp.status == 200 and resp.body == body
        assert calls.streamed == [len(body)]
        await client.close()


@pytest.mark.parametrize(
    "framing",
    [
        b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
        b"Content-Length: 5\r\nContent-Length: 6\r\n",
        b"Transfer-Encoding: gzip\r\n",
        b"Transfer-Encoding: chunked, identity\r\n",
    ],
)
@on_uvloop
async def test_ambiguous_body_framing_is_400_and_closes(framing: bytes) -> None:
    async with serving() as (server, calls):
        client = await RawClient.connect(server.port)
        smuggled = b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"
        await client.send(
            b"POST /echo HTTP/1.1\r\nHost: t\r\n"
            + framing
            + b"\r\n5\r\nabcde\r\n0\r\n\r\n"
            + smuggled
        )
        resp = await client.read_response()
        assert resp.status == 400
        assert await client.closed_by_server()
        assert calls.bodies == [] and calls.order == []  # the smuggled request never ran
        await client.close()


@on_uvloop
async def test_chunked_request_body_is_reassembled() -> None:
    async with serving() as (server, _):
        client = await RawClient.connect(server.port)
        await client.send(
            b"PUT /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n1;ext=1\r\n,\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n" + GET_HELLO
        )
        resp = await client.read_response()
        assert (resp.status, resp.body) == (200, b"hello, world")
        assert (await client.read_response()).body == b"hello"  # connection reusable
        await client.close()


@on_uvloop
async def test_large_chunked_body_switches_to_streaming_and_is_bounded() -> None:
    async with serving() as (server, calls):
        client = await RawClient.connect(server.port)
        chunk = b"c" * 8192
        body = b"".join(b"2000\r\n" + chunk + b"\r\n" for _ in range(5))  # 40 KiB > threshold
        await client.send(
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + body
        )
        await client.send(b"0\r\n\r\n")
        resp = await client.read_response()
        assert resp.body == chunk * 5
        assert calls.streamed == [5 * 8192]

        # Past max_body (64 KiB) the stream fails: the handler answers 413 and the
        # connection closes, since the rest of the body is never read.
        await client.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(10):
            await client.send(b"2000\r\n" + chunk + b"\r\n")
        resp = await client.read_response()
        assert resp.status == 413
        assert await client.closed_by_server()
        await client.close()


@on_uvloop
async def test_expect_100_continue_accepted() -> None:
    async with serving() as (server, _):
        client = await RawClient.connect(server.port)
        await client.send(
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
        )
        interim = await client.read_response()
        assert interim.status == 100 and interim.body == b""
        await client.send(b"data")
        final = await client.read_response()
        assert (final.status, final.body) == (200, b"data")
        await client.close()


@on_uvloop
async def test_expect_100_continue_for_a_streamed_body_waits_for_the_handler() -> None:
    async with serving() as (server, calls):
        client = await RawClient.connect(server.port)
        size = SMALL_LIMITS.stream_threshold + 1
        await client.send(
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n"
            % size
        )
        assert (await client.read_response()).status == 100
        await client.send(b"z" * size)
        final = await client.read_response()
        assert final.status == 200 and len(final.body) == size
        assert calls.streamed == [size]
        await client.close()


@on_uvloop
async def test_expect_100_continue_rejected_sends_the_final_status_only() -> None:
    async with serving() as (server, _):
        client = await RawClient.connect(server.port)
        await client.send(
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 999999999\r\nExpect: 100-continue\r\n\r\n"
        )
        resp = await client.read_response()
        assert resp.status == 413  # no 100 Continue first
        assert await client.closed_by_server()
        await client.close()

        client = await RawClient.connect(server.port)
        await client.send(
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nExpect: teapot\r\n\r\n"
        )
        assert (await client.read_response()).status == 417
        await client.close()


@on_uvloop
async def test_expect_100_continue_behind_a_slow_request_waits_its_turn() -> None:
    async with serving() as (server, _):
        client = await RawClient.connect(server.port)
        # Slower than the body timeout: the silent client is waiting for us, not stalling.
        await client.send(
            b"GET /slow?s=0.6 HTTP/1.1\r\nHost: t\r\n\r\n"
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"
        )
        first = await client.read_response()
        assert first.body == b"slow"  # the 100 never overtakes an earlier answer
        assert (await client.read_response()).status == 100
        await client.send(b"ok")
        assert (await client.read_response()).body == b"ok"
        await client.close()


@on_uvloop
async def test_http10_closes_unless_keep_alive_is_asked() -> None:
    async with serving() as (server, _):
        client = await RawClient.connect(server.port)
        await client.send(b"GET /hello HTTP/1.0\r\n\r\n" + GET_HELLO)
        resp = await client.read_response()
        assert resp.body == b"hello"
        assert resp.headers["connection"] == "close"
        assert await client.closed_by_server()  # the pipelined request is not answered
        await client.close()

        client = await RawClient.connect(server.port)
        await client.send(b"GET /info HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        resp = await client.read_response()
        assert resp.headers["connection"] == "keep-alive"
        assert b'"version":"1.0"' in resp.body
        await client.send(b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        assert (await client.read_response()).body == b"hello"
        await client.close()


@on_uvloop
async def test_http10_streamed_response_is_delimited_by_close() -> None:
    async with serving() as (server, _):
        client = await RawClient.connect(server.port)
        await client.send(b"GET /stream?size=100000 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        resp = await client.read_response()
        assert "transfer-encoding" not in resp.headers
        assert resp.headers["connection"] == "close"
        assert resp.body == b"s" * 100000
        await client.close()


@pytest.mark.parametrize(
    "request_head",
    [
        b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        b"CONNECT /hello HTTP/1.1\r\nHost: t\r\n\r\n",
    ],
)
@on_uvloop
async def test_protocol_switch_requests_are_answered_then_closed(request_head: bytes) -> None:
    async with serving() as (server, _):
        client = await RawClient.connect(server.port)
        await client.send(request_head + b"\x00\x01 not http any more")
        resp = await client.read_response()
        assert resp.status in (200, 405)  # answered as a plain request
        assert await client.closed_by_server()
        await client.close()
        await asyncio.sleep(0.05)
        assert server.connection_count == 0


@on_uvloop
async def test_connection_close_is_honoured() -> None:
    async with serving() as (server, _):
        client = await RawClient.connect(server.port)
        await client.send(
            b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" + GET_HELLO
        )
        resp = await client.read_response()
        assert resp.headers["connection"] == "close"
        assert await client.closed_by_server()
        await client.close()


@on_uvloop
async def test_head_has_the_get_headers_and_no_body() -> None:
    async with serving() as (server, _):
        client = await RawClient.connect(server.port)
        await client.send(
            b"HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n"
            + b"HEAD /stream?size=5000&length=1 HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        head = await client.read_response(head_request=True)
        assert head.status == 200
        assert head.headers["content-length"] == "5"
        assert head.headers["x-path"] == "/hello"
        streamed = await client.read_response(head_request=True)
        assert streamed.headers["content-length"] == "5000"
        # Had any body bytes been sent, they would be read here as a broken status line.
        await client.send(GET_HELLO)
        assert (await client.read_response()).body == b"hello"
        await client.close()


@on_uvloop
async def test_no_more_answers_are_produced_while_the_client_is_not_reading() -> None:
    async with serving() as (server, calls):
        client = await RawClient.connect(server.port)
        await client.send(b"GET /big?size=16777216 HTTP/1.1\r\nHost: t\r\n\r\n" + GET_HELLO * 5)
        await asyncio.sleep(0.2)
        assert calls.order == []  # the hellos wait until the big answer drains
        assert len((await client.read_response(timeout=10)).body) == 16777216
        for _ in range(5):
            assert (await client.read_response()).body == b"hello"
        await client.close()


@on_uvloop
async def test_204_and_304_carry_no_body_and_no_length() -> None:
    async with serving() as (server, _):
        client = await RawClient.connect(server.port)
        await client.send(
            b"GET /status?code=204 HTTP/1.1\r\nHost: t\r\n\r\nGET /status?code=304 HTTP/1.1\r\nHost: t\r\n\r\n"
            + GET_HELLO
        )
        for code in (204, 304):
            resp = await client.read_response()
            assert resp.status == code
            assert "content-length" not in resp.headers
            assert resp.headers["etag"] == '"x"'
        assert (await client.read_response()).body == b"hello"
        await client.close()


@on_uvloop
async def test_client_that_stops_reading_is_cut_after_the_send_timeout() -> None:
    limits = Limits(send_timeout=0.3, idle_timeout=5)
    async with serving(limits) as (server, _):
        client = await RawClient.connect(server.port)
        # 16 MiB answers, never read: socket buffers fill, the transport pauses writing.
        await client.send(b"GET /big?size=16777216 HTTP/1.1\r\nHost: t\r\n\r\n" * 2)
        loop = asyncio.get_running_loop()
        started = loop.time()
        while server.connection_count and loop.time() - started < 5:
            await asyncio.sleep(0.05)
        assert server.connection_count == 0
        await client.close()


@on_uvloop
async def test_method_not_allowed_names_the_allowed_ones() -> None:
    async with serving() as (server, _):
        client = await RawClient.connect(server.port)
        await client.send(b"DELETE /hello HTTP/1.1\r\nHost: t\r\n\r\n")
        resp = await client.read_response()
        assert resp.status == 405
        assert resp.headers["allow"] == "GET, HEAD"
        assert resp.headers["x-content-type-options"] == "nosniff"
        await client.send(GET_HELLO)  # no body was pending: the connection stays usable
        assert (await client.read_response()).status == 200
        await client.close()


@on_uvloop
async def test_unexpected_exception_is_500_json_and_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="seaweed_py.httpkit")
    async with serving() as (server, _):
        client = await RawClient.connect(server.port)
        await client.send(b"GET /crash HTTP/1.1\r\nHost: t\r\n\r\n" + GET_HELLO)
        resp = await client.read_response()
        assert resp.status == 500
        assert resp.body == b'{"error":"internal server error"}'
        assert (await client.read_response()).body == b"hello"  # the connection survived
        await client.close()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "GET /crash" in errors[0].getMessage()
    assert errors[0].exc_info is not None and "handler bug" in str(errors[0].exc_info[1])


@pytest.mark.parametrize("path", [b"/cancelled", b"/not-a-response", b"/inject", b"/unrenderable"])
@on_uvloop
async def test_handler_bugs_are_500_and_the_connection_survives(
    path: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="seaweed_py.httpkit")
    async with serving() as (server, _):
        client = await RawClient.connect(server.port)
        await client.send(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path + GET_HELLO)
        resp = await client.read_response()
        assert resp.status == 500
        assert b"Set-Cookie" not in resp.head
        assert (await client.read_response()).body == b"hello"
        await client.close()
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1


@on_uvloop
async def test_response_stream_failing_midway_cuts_the_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="seaweed_py.httpkit")
    async with serving() as (server, _):
        client = await RawClient.connect(server.port)
        await client.send(b"GET /stream?size=1000000&fail=200000 HTTP/1.1\r\nHost: t\r\n\r\n")
        head = await client.reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK") and b"chunked" in head
        try:
            rest = await asyncio.wait_for(client.reader.read(), 3)
        except ConnectionResetError:
            rest = b""
        assert not rest.endswith(b"0\r\n\r\n")  # no last chunk: the client sees the break
        await client.close()
    assert any("disk read failed" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


@pytest.mark.parametrize(("size", "claim"), [(100_000, 50_000), (1_000, 5_000)])
@on_uvloop
async def test_stream_not_matching_its_content_length_cuts_the_connection(
    size: int, claim: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="seaweed_py.httpkit")
    async with serving() as (server, _):
        client = await RawClient.connect(server.port)
        await client.send(
            b"GET /stream?size=%d&claim=%d HTTP/1.1\r\nHost: t\r\n\r\n" % (size, claim) + GET_HELLO
        )
        head = await client.reader.readuntil(b"\r\n\r\n")
        assert b"Content-Length: %d\r\n" % claim in head
        try:
            rest = await asyncio.wait_for(client.reader.read(), 3)
        except ConnectionResetError:
            rest = b""
        # Never more than announced (the pipelined hello is not answered on a broken stream).
        assert len(rest) < claim and b"hello" not in rest
        await client.close()
    assert any("Content-Length said" in r.getMessage() for r in caplog.records)


@on_uvloop
async def test_idle_keep_alive_connection_is_closed() -> None:
    async with serving() as (server, _):
        client = await RawClient.connect(server.port)
        await client.send(GET_HELLO)
        await client.read_response()
        assert server.connection_count == 1
        assert await client.closed_by_server(timeout=SMALL_LIMITS.idle_timeout * 4)
        await client.close()


@on_uvloop
async def test_slowloris_is_closed_while_another_client_is_served() -> None:
    async with serving() as (server, _):
        slow = await RawClient.connect(server.port)
        fast = await RawClient.connect(server.port)
        header = b"GET /hello HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"s" * 200
        served = 0
        loop = asyncio.get_running_loop()
        started = loop.time()
        closed = False
        for i in range(len(header)):
            try:
                await slow.send(header[i : i + 1])
            except ConnectionError:
                closed = True
                break
            # Each byte arrives well inside any idle timeout, yet headers never complete.
            await asyncio.sleep(0.02)
            await fast.send(GET_HELLO)
            assert (await fast.read_response()).body == b"hello"
            served += 1
            if slow.reader.at_eof() or loop.time() - started > SMALL_LIMITS.header_timeout * 5:
                break
        if not closed:
            resp = await slow.read_response()
            assert resp.status == 408
            assert await slow.closed_by_server()
        assert loop.time() - started < SMALL_LIMITS.header_timeout * 5
        assert served >= 3
        await slow.close()
        await fast.close()


@on_uvloop
async def test_stalled_body_times_out_with_408() -> None:
    async with serving() as (server, _):
        client = await RawClient.connect(server.port)
        await client.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly-part")
        resp = await client.read_response(timeout=SMALL_LIMITS.body_timeout * 5)
        assert resp.status == 408
        assert await client.closed_by_server()
        await client.close()


@on_uvloop
async def test_handler_that_ignores_a_streamed_body_answers_and_closes() -> None:
    async with serving() as (server, _):
        client = await RawClient.connect(server.port)
        size = SMALL_LIMITS.stream_threshold * 3
        await client.send(b"POST /ignore HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % size)
        await client.send(b"i" * 1000)
        resp = await client.read_response()
        assert resp.status == 201 and resp.body == b'{"streamed":true}'
        assert resp.headers["connection"] == "close"
        # The server lingers, draining what the client still sends, then closes.
        await client.send(b"i" * (size - 1000))
        assert await client.closed_by_server()
        await client.close()


@on_uvloop
async def test_streamed_response_waits_for_a_slow_reader() -> None:
    async with serving() as (server, calls):
        client = await RawClient.connect(server.port)
        size = 64 * 1024 * 1024
        await client.send(b"GET /stream?size=%d HTTP/1.1\r\nHost: t\r\n\r\n" % size)
        await asyncio.sleep(0.3)
        # Without backpressure the generator would have produced all 64 MiB by now.
        assert calls.produced < size // 4
        resp = await client.read_response(timeout=30)
        assert resp.headers["transfer-encoding"] == "chunked"
        assert len(resp.body) == size
        assert calls.produced == size
        await client.close()


@on_uvloop
async def test_streamed_request_body_pauses_reading_while_the_handler_is_behind() -> None:
    limits = Limits(stream_threshold=64 * 1024, stream_high_water=256 * 1024, body_timeout=5)
    async with serving(limits) as (server, calls):
        client = await RawClient.connect(server.port)
        size = 32 * 1024 * 1024
        await client.send(b"POST /consume HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % size)
        sent = 0
        block = b"q" * (1024 * 1024)
        try:
            while sent < size:
                client.writer.write(block)
                await asyncio.wait_for(client.writer.drain(), 0.5)
                sent += len(block)
        except TimeoutError:
            pass  # the server stopped reading: the socket buffers between us are full
        assert sent < size // 2
        calls.consume_gate.set()
        client.writer.write(b"q" * (size - sent))
        await client.writer.drain()
        resp = await client.read_response(timeout=30)
        assert resp.body == b"%d" % size and calls.streamed == [size]
        await client.close()


@on_uvloop
async def test_graceful_stop_finishes_in_flight_and_closes_idle() -> None:
    async with serving(grace=3.0) as (server, calls):
        busy = await RawClient.connect(server.port)
        idle = await RawClient.connect(server.port)
        await idle.send(GET_HELLO)
        await idle.read_response()
        await busy.send(b"GET /slow?s=0.5 HTTP/1.1\r\nHost: t\r\n\r\n")
        await calls.slow_started.wait()
        stopping = asyncio.create_task(server.stop(3.0))
        assert await idle.closed_by_server(timeout=1.0)
        resp = await busy.read_response()
        assert resp.body == b"slow"
        assert resp.headers["connection"] == "close"
        assert await busy.closed_by_server()
        await stopping
        with pytest.raises(ConnectionError):
            await RawClient.connect(server.port)
        await busy.close()
        await idle.close()


@on_uvloop
async def test_graceful_stop_lets_a_handler_whose_client_left_finish() -> None:
    async with serving() as (server, calls):
        client = await RawClient.connect(server.port)
        await client.send(b"GET /slow?s=0.3 HTTP/1.1\r\nHost: t\r\n\r\n")
        await calls.slow_started.wait()
        sock = client.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await client.close()  # reset: gone before the answer
        await asyncio.sleep(0.05)
        assert server.connection_count == 0
        await server.stop(3.0)
        assert calls.order == ["slow-start", "slow-end"]


@on_uvloop
async def test_stop_grace_is_bounded() -> None:
    async with serving() as (server, calls):
        client = await RawClient.connect(server.port)
        await client.send(b"GET /slow?s=30 HTTP/1.1\r\nHost: t\r\n\r\n")
        await calls.slow_started.wait()
        loop = asyncio.get_running_loop()
        started = loop.time()
        await server.stop(0.2)
        assert loop.time() - started < 2.0
        assert await client.closed_by_server(timeout=1.0)
        assert calls.order == ["slow-start"]  # cancelled, never finished
        await client.close()
