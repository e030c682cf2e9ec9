"""httpkit's `InflightLimit` on a real loopback socket: body bytes in flight are counted from
the headers to the answer, a request past the limit waits with its body unread and is refused
with 429 after the timeout, or goes ahead as if it had never waited; nothing stays counted
after a client leaves."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import orjson

from seaweed_py.errors import TooManyRequests
from seaweed_py.httpkit import HttpServer, Request, Response, Router
from seaweed_py.httpkit.inflight import InflightLimit
from tests.functional.test_httpkit_helpers import SMALL_LIMITS, RawClient, on_uvloop

LIMIT = 10 * 1024  # SMALL_LIMITS streams bodies above 16 KiB


@dataclass
class Seen:
    handled: list[str] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    holding: asyncio.Event = field(default_factory=asyncio.Event)


def _router(seen: Seen, limit: InflightLimit) -> Router:
    async def body_of(req: Request) -> tuple[bool, int]:
        streamed = req.stream is not None
        return streamed, len(await req.read())

    async def hold(req: Request) -> Response:
        """Answers only once the test sets `release`: its request stays in flight."""
        seen.handled.append(req.path)
        seen.holding.set()
        await seen.release.wait()
        streamed, size = await body_of(req)
        return Response(200, None, orjson.dumps({"streamed": streamed, "size": size}))

    async def look(req: Request) -> Response:
        seen.handled.append(req.path)
        streamed, size = await body_of(req)
        return Response(200, None, orjson.dumps({"streamed": streamed, "size": size}))

    def quick(req: Request) -> Response:
        seen.handled.append(req.path)
        return Response(201, None, b"%d" % limit.in_flight)

    router = Router()
    for path, handler in (("/hold", hold), ("/look", look), ("/quick", quick)):
        router.add(path, handler, ["POST"], max_body=1 << 20, inflight=limit)
    return router


def _limit(timeout: float = 5.0, exempt: Callable[[Request], bool] | None = None) -> InflightLimit:
    def rejection(in_flight: int, limit: int) -> TooManyRequests:
        return TooManyRequests(f"reject because inflight upload data {in_flight} > {limit}")

    if exempt is None:
        return InflightLimit(LIMIT, timeout, rejection)
    return InflightLimit(LIMIT, timeout, rejection, exempt=exempt)


@contextlib.asynccontextmanager
async def _serving(limit: InflightLimit) -> AsyncIterator[tuple[HttpServer, Seen]]:
    seen = Seen()
    server = HttpServer(_router(seen, limit), SMALL_LIMITS, server_header="weedpy-test")
    await server.start("127.0.0.1", 0)
    try:
        yield server, seen
        # Whatever a test did, nothing stays counted or waiting once it is over.
        await _until(lambda: limit.in_flight == 0 and limit.waiting == 0)
    finally:
        seen.release.set()
        for client in list(RawClient.unclosed):
            await client.close()
        await server.stop(2.0)


def _post(path: str, size: int, *, expect: bool = False, query: str = "") -> bytes:
    head = f"POST {path}{query} HTTP/1.1\r\nHost: t\r\nContent-Length: {size}\r\n"
    if expect:
        head += "Expect: 100-continue\r\n"
    return (head + "\r\n").encode()


def _chunked_head(path: str) -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".encode()


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


async def _until(check: Callable[[], bool], timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.005)


async def _sent(server: HttpServer, data: bytes) -> RawClient:
    client = await RawClient.connect(server.port)
    await client.send(data)
    return client


async def _seen_by_handler(client: RawClient) -> object:
    """What the handler answering `client` saw of its body."""
    return orjson.loads((await client.read_response()).body)


async def _hold_over_the_limit(server: HttpServer, seen: Seen, size: int) -> RawClient:
    """A request on /hold with a `size`-byte body, admitted and kept in flight."""
    holder = await _sent(server, _post("/hold", size) + b"h" * size)
    await asyncio.wait_for(seen.holding.wait(), 3)
    return holder


async def _let_go(holder: RawClient, seen: Seen) -> None:
    seen.release.set()
    assert (await holder.read_response()).status == 200


@on_uvloop
async def test_bodies_count_from_their_headers_until_their_answer() -> None:
    limit = _limit()
    async with _serving(limit) as (server, seen):
        holder = await _hold_over_the_limit(server, seen, 1000)
        assert limit.in_flight == 1000
        client = await _sent(server, _post("/quick", 500) + b"q" * 500)  # the sync hot path
        answer = await client.read_response()
        assert (answer.status, answer.body) == (201, b"1500")  # its own body, while handled
        assert limit.in_flight == 1000
        big = 40 * 1024  # streamed
        await client.send(_post("/look", big) + b"s" * big)
        assert await _seen_by_handler(client) == {"streamed": True, "size": big}
        await _let_go(holder, seen)


@on_uvloop
async def test_a_chunked_body_counts_what_has_arrived() -> None:
    limit = _limit()
    async with _serving(limit) as (server, seen):
        client = await _sent(server, _chunked_head("/hold") + _chunk(b"a" * 3000))
        await _until(lambda: limit.in_flight == 3000)
        await client.send(_chunk(b"b" * 4000))
        await _until(lambda: limit.in_flight == 7000)
        await client.send(b"0\r\n\r\n")
        seen.release.set()
        assert await _seen_by_handler(client) == {"streamed": False, "size": 7000}


@on_uvloop
async def test_past_the_limit_a_request_waits_unread_then_gets_429() -> None:
    limit = _limit(timeout=0.3)
    async with _serving(limit) as (server, seen):
        holder = await _hold_over_the_limit(server, seen, LIMIT + 1)
        waiting = await RawClient.connect(server.port)
        # The client waits for `100 Continue` before it sends the body: it never gets one.
        await waiting.send(_post("/look", 5000, expect=True))
        answer = await waiting.read_response()
        assert answer.status == 429, answer
        assert orjson.loads(answer.body) == {
            "error": f"reject because inflight upload data {LIMIT + 1} > {LIMIT}"
        }
        assert answer.headers["connection"] == "close"
        assert await waiting.closed_by_server()
        # A client that sends its body at once is refused the same way, the body unread.
        eager = await _sent(server, _post("/look", 40 * 1024) + b"e" * 4096)
        assert (await eager.read_response()).status == 429
        assert seen.handled == ["/hold"]
        assert limit.in_flight == LIMIT + 1
        await _let_go(holder, seen)


@on_uvloop
async def test_a_waiting_request_goes_ahead_as_if_it_had_not_waited() -> None:
    limit = _limit(timeout=10.0)
    async with _serving(limit) as (server, seen):
        holder = await _hold_over_the_limit(server, seen, LIMIT + 1)
        small = await _sent(server, _post("/look", 1000, expect=True))
        await _until(lambda: limit.waiting == 1)
        large = await _sent(server, _post("/look", 40 * 1024) + b"L" * 1024)
        await _until(lambda: limit.waiting == 2)
        chunked = await _sent(server, _chunked_head("/look") + _chunk(b"c" * 2000))
        await _until(lambda: limit.waiting == 3)
        assert seen.handled == ["/hold"]
        await _let_go(holder, seen)
        # Room for the first two (the limit is checked before a body is added); the small one
        # gets its 100 Continue only now. Each reaches its handler as it would have without
        # the wait: small bodies buffered, large ones streamed.
        assert (await small.read_response()).status == 100
        await small.send(b"s" * 1000)
        assert await _seen_by_handler(small) == {"streamed": False, "size": 1000}
        assert limit.waiting == 1
        await large.send(b"L" * (39 * 1024))
        assert await _seen_by_handler(large) == {"streamed": True, "size": 40 * 1024}
        await chunked.send(_chunk(b"d" * 500) + b"0\r\n\r\n")
        assert await _seen_by_handler(chunked) == {"streamed": False, "size": 2500}


@on_uvloop
async def test_a_chunked_body_past_the_buffered_size_stays_a_stream_after_waiting() -> None:
    limit = _limit(timeout=10.0)
    async with _serving(limit) as (server, seen):
        holder = await _hold_over_the_limit(server, seen, LIMIT + 1)
        chunked = await _sent(server, _chunked_head("/look") + _chunk(b"c" * 12 * 1024))
        await _until(lambda: limit.waiting == 1)
        await _let_go(holder, seen)
        await chunked.send(_chunk(b"d" * 12 * 1024) + b"0\r\n\r\n")
        assert await _seen_by_handler(chunked) == {"streamed": True, "size": 24 * 1024}


@on_uvloop
async def test_exempt_requests_never_wait_and_still_count() -> None:
    limit = _limit(timeout=10.0, exempt=lambda req: req.query.get("type") == "replicate")
    async with _serving(limit) as (server, seen):
        holder = await _hold_over_the_limit(server, seen, LIMIT + 1)
        client = await _sent(server, _post("/quick", 700, query="?type=replicate") + b"r" * 700)
        answer = await client.read_response()
        assert (answer.status, answer.body) == (201, b"%d" % (LIMIT + 1 + 700))
        await _let_go(holder, seen)


@on_uvloop
async def test_clients_that_leave_leave_nothing_counted() -> None:
    limit = _limit(timeout=10.0)
    async with _serving(limit) as (server, seen):
        holder = await _hold_over_the_limit(server, seen, LIMIT + 1)
        # One leaves while it waits for room (its connection is not read meanwhile, so the
        # server learns it once there is room), one mid-body, one before its body was
        # complete, one mid-chunks.
        waiting = await _sent(server, _post("/look", 2000))
        await _until(lambda: limit.waiting == 1)
        await waiting.close()
        await _let_go(holder, seen)
        await _until(lambda: limit.in_flight == 0 and limit.waiting == 0)
        assert seen.handled == ["/hold"]
        streaming = await _sent(server, _post("/look", 40 * 1024) + b"x" * 8192)
        await _until(lambda: limit.in_flight == 40 * 1024)
        await streaming.close()
        await _until(lambda: limit.in_flight == 0)
        buffering = await _sent(server, _post("/look", 5000) + b"y" * 100)
        await _until(lambda: limit.in_flight == 5000)
        await buffering.close()
        await _until(lambda: limit.in_flight == 0)
        chunked = await _sent(server, _chunked_head("/look") + _chunk(b"z" * 6000))
        await _until(lambda: limit.in_flight == 6000)
        await chunked.close()
