"""Shared pieces of the httpkit functional tests (no tests here): a demo router, a server
context and a raw HTTP/1.1 client that reads responses byte-exactly off a socket.

Each test runs on its own uvloop loop (`on_uvloop`), as the daemons do.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, ClassVar, ParamSpec, TypeVar

import uvloop

from seaweed_py.errors import NeedleNotFound, NoWritableVolume, VolumeNotFound
from seaweed_py.httpkit import HttpServer, Limits, Request, Response, Router, json_response

P = ParamSpec("P")
T = TypeVar("T")

SMALL_LIMITS = Limits(
    max_url=256,
    max_header_bytes=1024,
    max_body=64 * 1024,
    stream_threshold=16 * 1024,
    stream_high_water=64 * 1024,
    idle_timeout=0.4,
    header_timeout=0.4,
    body_timeout=0.4,
    send_timeout=2.0,
    linger=0.3,
)


def on_uvloop(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, T]:
    """Run an async test on a fresh uvloop loop."""

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        return uvloop.run(fn(*args, **kwargs))

    return run


@dataclass
class Calls:
    """What the demo handlers saw."""

    bodies: list[bytes] = field(default_factory=list)
    streamed: list[int] = field(default_factory=list)
    slow_started: asyncio.Event = field(default_factory=asyncio.Event)
    consume_gate: asyncio.Event = field(default_factory=asyncio.Event)
    order: list[str] = field(default_factory=list)
    produced: int = 0


def demo_router(calls: Calls) -> Router:
    router = Router()

    def hello(req: Request) -> Response:
        calls.order.append("hello")
        return Response(200, {"X-Path": req.path}, b"hello")

    async def slow(req: Request) -> Response:
        calls.order.append("slow-start")
        calls.slow_started.set()
        await asyncio.sleep(float(req.query.get("s", "0.2")))
        calls.order.append("slow-end")
        return Response(200, None, b"slow")

    async def echo(req: Request) -> Response:
        if req.stream is not None:
            sizes = []
            parts = []
            async for chunk in req.stream:
                sizes.append(len(chunk))
                parts.append(chunk)
            calls.streamed.append(sum(sizes))
            body = b"".join(parts)
        else:
            body = req.body
        calls.bodies.append(body)
        return Response(200, {"Content-Type": "application/octet-stream"}, body)

    def ignore_body(req: Request) -> Response:
        return json_response({"streamed": req.stream is not None}, 201)

    def info(req: Request) -> Response:
        return json_response(
            {
                "method": req.method,
                "path": req.path,
                "query": req.query,
                "form": req.form(),
                "version": req.version,
                "remote": req.remote,
                "headers": req.headers,
            },
            pretty=bool(req.query.get("pretty")),
        )

    def missing(req: Request) -> Response:
        raise NeedleNotFound("needle not found", volume_id=3, key=0x1637037D6)

    def busy(req: Request) -> Response:
        raise NoWritableVolume("no writable volumes", headers={"Retry-After": "1"})

    def crash(req: Request) -> Response:
        raise RuntimeError("handler bug")

    async def stream_out(req: Request) -> Response:
        size = int(req.query.get("size", "1048576"))
        chunk = b"s" * 65536

        fail_after = int(req.query.get("fail", "-1"))

        async def produce() -> AsyncIterator[bytes]:
            left = size
            while left > 0:
                if 0 <= fail_after <= size - left:
                    raise OSError("disk read failed")
                piece = chunk[: min(left, len(chunk))]
                calls.produced += len(piece)
                left -= len(piece)
                yield piece

        length = size if req.query.get("length") else None
        if "claim" in req.query:  # a handler bug: announces a length it does not produce
            length = int(req.query["claim"])
        return Response(200, None, produce(), content_length=length)

    async def consume_later(req: Request) -> Response:
        """Reads a streamed body only once the test opens the gate."""
        assert req.stream is not None
        await calls.consume_gate.wait()
        total = 0
        async for chunk in req.stream:
            total += len(chunk)
        calls.streamed.append(total)
        return Response(200, None, b"%d" % total)

    async def cancelled_inside(req: Request) -> Response:
        raise asyncio.CancelledError  # a handler bug, not a cancellation of ours

    def not_a_response(req: Request) -> Response:
        return "oops"  # type: ignore[return-value]

    def injects_header(req: Request) -> Response:
        return Response(200, {"X-Name": "a\r\nSet-Cookie: evil=1"}, b"")

    def unrenderable(req: Request) -> Response:
        raise VolumeNotFound("volume 7 not found", extra={"bad": {1, 2}})  # a set is not JSON

    def status(req: Request) -> Response:
        code = int(req.query.get("code", "200"))
        return Response(code, {"ETag": '"x"'}, b"" if code in (204, 304) else b"body")

    def big(req: Request) -> Response:
        return Response(200, None, b"B" * int(req.query.get("size", "0")))

    router.add("/status", status, ["GET"])
    router.add("/big", big, ["GET"])
    router.add("/unrenderable", unrenderable, ["GET"])
    router.add("/cancelled", cancelled_inside, ["GET"])
    router.add("/not-a-response", not_a_response, ["GET"])
    router.add("/inject", injects_header, ["GET"])
    router.add("/hello", hello, ["GET"])
    router.add("/consume", consume_later, ["POST"], max_body=64 * 1024 * 1024)
    router.add("/slow", slow, ["GET"])
    router.add("/echo", echo, ["POST", "PUT"])
    router.add("/ignore", ignore_body, ["POST"])
    router.add("/info", info)
    router.add("/missing", missing, ["GET"])
    router.add("/busy", busy, ["GET"])
    router.add("/crash", crash, ["GET"])
    router.add("/stream", stream_out, ["GET"])
    router.add("/upload", echo, ["POST"], max_body=8 * 1024 * 1024)
    return router


@contextlib.asynccontextmanager
async def serving(
    limits: Limits = SMALL_LIMITS,
    calls: Calls | None = None,
    grace: float = 2.0,
    tls: ssl.SSLContext | None = None,
) -> AsyncIterator[tuple[HttpServer, Calls]]:
    calls = calls or Calls()
    server = HttpServer(demo_router(calls), limits, server_header="weedpy-test", ssl=tls)
    await server.start("127.0.0.1", 0)
    try:
        yield server, calls
    finally:
        for client in list(RawClient.unclosed):
            await client.close()
        await server.stop(grace)


@dataclass
class RawResponse:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes
    head: bytes


class RawClient:
    """A socket that speaks HTTP/1.1 by hand, so tests control every byte sent."""

    # Clients still open when a test fails half-way; `serving` closes them on exit.
    unclosed: ClassVar[set[RawClient]] = set()

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        RawClient.unclosed.add(self)

    @classmethod
    async def connect(cls, port: int, tls: ssl.SSLContext | None = None) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_response(
        self, *, head_request: bool = False, timeout: float = 3.0
    ) -> RawResponse:
        return await asyncio.wait_for(self._read_response(head_request), timeout)

    async def _read_response(self, head_request: bool) -> RawResponse:
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head[:-4].decode("latin-1").split("\r\n")
        _version, status, reason = [*lines[0].split(" ", 2), ""][:3]
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        code = int(status)
        if head_request or code in (100, 204, 304):
            body = b""
        elif "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            body = await self._read_chunked()
        else:
            body = await self.reader.read()
        return RawResponse(code, reason, headers, body, head)

    async def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n"))[:-2], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)

    async def closed_by_server(self, timeout: float = 3.0) -> bool:
        """True once the server has closed its side (EOF or reset), within `timeout`."""
        try:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
        except ConnectionError:
            return True
        except TimeoutError:
            return False
        return data == b"" or await self.closed_by_server(timeout)

    async def close(self) -> None:
        RawClient.unclosed.discard(self)
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


async def with_client(port: int, fn: Callable[[RawClient], Awaitable[T]]) -> T:
    client = await RawClient.connect(port)
    try:
        return await fn(client)
    finally:
        await client.close()
