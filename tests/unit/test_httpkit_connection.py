"""`HttpConnection` against a fake transport: what it writes, and when it stops reading."""

from __future__ import annotations

import asyncio
from typing import Any

from seaweed_py.errors import NeedleNotFound
from seaweed_py.httpkit import HttpServer, Later, Limits, Request, Response, Router
from seaweed_py.httpkit.connection import HttpConnection


class FakeTransport:
    """Records writes and reading/closing calls the way uvloop's TCP transport receives them."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.reading = True
        self.closed = False
        self.eof_written = False

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))

    def writelines(self, parts: Any) -> None:
        self.written.append(b"".join(bytes(p) for p in parts))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 5555) if name == "peername" else default

    def pause_reading(self) -> None:
        assert self.reading
        self.reading = False

    def resume_reading(self) -> None:
        assert not self.reading
        self.reading = True

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof_written = True

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    @property
    def data(self) -> bytes:
        return b"".join(self.written)


def _connect(router: Router, limits: Limits | None = None) -> tuple[HttpConnection, FakeTransport]:
    server = HttpServer(router, limits, server_header=None)
    conn = HttpConnection(server)
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode()


async def test_sync_handler_answers_inside_data_received_in_one_write() -> None:
    router = Router()
    router.add("/a", lambda req: Response(200, None, b"A"), ["GET"])
    conn, transport = _connect(router)
    conn.data_received(_get("/a") + _get("/a"))
    assert len(transport.written) == 2  # one write per response, no task in between
    assert all(w.endswith(b"\r\n\r\nA") for w in transport.written)
    assert b"Content-Length: 1\r\n" in transport.written[0]
    assert b"Server:" not in transport.written[0]  # server_header=None


async def test_queue_beyond_max_pipeline_pauses_reading_until_drained() -> None:
    gate = asyncio.Event()

    async def slow(req: Request) -> Response:
        await gate.wait()
        return Response(200, None, b"S")

    router = Router()
    router.add("/slow", slow, ["GET"])
    router.add("/a", lambda req: Response(200, None, b"A"), ["GET"])
    conn, transport = _connect(router, Limits(max_pipeline=4))
    conn.data_received(_get("/slow") + _get("/a") * 3)
    assert transport.reading  # 3 queued behind the slow one
    conn.data_received(_get("/a"))
    assert not transport.reading  # 4 queued: stop reading
    gate.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert transport.reading
    bodies = [w.rsplit(b"\r\n\r\n", 1)[1] for w in transport.written]
    assert bodies == [b"S", b"A", b"A", b"A", b"A"]


async def test_full_write_buffer_stops_reading_and_answering_until_it_drains() -> None:
    router = Router()
    router.add("/a", lambda req: Response(200, None, b"A"), ["GET"])
    conn, transport = _connect(router)
    conn.pause_writing()
    assert not transport.reading
    conn.data_received(_get("/a") * 3)
    assert transport.written == []
    conn.resume_writing()
    assert transport.reading
    assert len(transport.written) == 3


async def test_header_limit_is_exact_across_reads() -> None:
    router = Router()
    router.add("/a", lambda req: Response(200, None, b"A"), ["GET"])
    limits = Limits(max_header_bytes=200)
    line = b"X-Pad: " + b"p" * 43 + b"\r\n"  # 52 bytes: name + value + 4, as counted
    head = b"GET /a HTTP/1.1\r\nHost: t\r\n"  # the Host line counts 9

    ok, ok_transport = _connect(router, limits)
    for piece in (head, line, line, line):  # 9 + 3 * 52 = 165 <= 200
        ok.data_received(piece)
    ok.data_received(b"\r\n")
    assert ok_transport.data.startswith(b"HTTP/1.1 200 ")

    too_big, big_transport = _connect(router, limits)
    for piece in (head, line, line, line, line):  # 9 + 4 * 52 = 217 > 200
        too_big.data_received(piece)
    too_big.data_received(b"\r\n")
    assert big_transport.data.startswith(b"HTTP/1.1 431 ")


async def test_streamed_body_pauses_reading_above_high_water() -> None:
    seen: list[int] = []
    gate = asyncio.Event()

    async def consume(req: Request) -> Response:
        assert req.stream is not None
        await gate.wait()
        total = 0
        async for chunk in req.stream:
            total += len(chunk)
        seen.append(total)
        return Response(200, None, b"%d" % total)

    router = Router()
    router.add("/up", consume, ["POST"])
    limits = Limits(stream_threshold=1000, stream_high_water=4000)
    conn, transport = _connect(router, limits)
    conn.data_received(b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 10000\r\n\r\n")
    await asyncio.sleep(0)
    conn.data_received(b"x" * 3000)
    assert transport.reading
    conn.data_received(b"x" * 3000)  # 6000 buffered > 4000
    assert not transport.reading
    gate.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert transport.reading  # consumed below a quarter of the high-water mark
    conn.data_received(b"x" * 4000)
    for _ in range(5):
        await asyncio.sleep(0)
    assert seen == [10000]
    assert transport.data.endswith(b"\r\n\r\n10000")


async def test_batched_writes_leave_after_the_loop_turn_in_order_and_before_a_close() -> None:
    router = Router()
    router.add("/a", lambda req: Response(200, None, b"A"), ["GET"])
    router.add("/b", lambda req: Response(200, None, b"B"), ["GET"])
    server = HttpServer(router, server_header=None, batch_writes=True)
    pairs = []
    for _ in range(2):
        conn = HttpConnection(server)
        transport = FakeTransport()
        conn.connection_made(transport)  # type: ignore[arg-type]
        pairs.append((conn, transport))
    (first, t1), (second, t2) = pairs
    first.data_received(_get("/a") + _get("/b"))
    second.data_received(_get("/b"))
    assert t1.written == [] and t2.written == []  # held until the loop turns
    await asyncio.sleep(0)
    assert len(t1.written) == 1 and len(t2.written) == 1  # one write per connection
    assert [w.rsplit(b"\r\n\r\n", 1)[1] for w in t1.data.split(b"HTTP/1.1 ")[1:]] == [b"A", b"B"]
    assert t2.data.endswith(b"\r\n\r\nB")
    # An answer that ends the connection is written before the close.
    second.data_received(b"GET /a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert t2.closed and t2.data.endswith(b"\r\n\r\nA")
    # A peer that half-closes right after its request still gets the answer.
    first.data_received(_get("/b"))
    first.eof_received()
    assert t1.data.endswith(b"\r\n\r\nB")


async def test_a_future_answer_is_sent_in_order_once_resolved_without_a_task() -> None:
    loop = asyncio.get_running_loop()
    pending: list[asyncio.Future[Response]] = []

    def later(req: Request) -> asyncio.Future[Response]:
        future: asyncio.Future[Response] = loop.create_future()
        pending.append(future)
        return future

    router = Router()
    router.add("/later", later, ["GET"])
    router.add("/a", lambda req: Response(200, None, b"A"), ["GET"])
    conn, transport = _connect(router)
    conn.data_received(_get("/later") + _get("/a") + _get("/later"))
    assert transport.written == [] and len(pending) == 1
    assert not conn._server._tasks  # a done callback waits, not a task
    pending[0].set_result(Response(201, None, b"L"))
    for _ in range(3):
        await asyncio.sleep(0)
    assert len(pending) == 2  # the queued requests ran after the first answer
    pending[1].set_exception(OSError(5, "fsync failed"))
    for _ in range(3):
        await asyncio.sleep(0)
    statuses = [w.split(b" ", 2)[1] for w in transport.written]
    assert statuses == [b"201", b"200", b"500"]
    assert transport.written[2].endswith(b'{"error":"internal server error"}')


async def test_a_later_answer_is_sent_in_order_when_given_with_no_loop_turn() -> None:
    """A `Later` is answered inside the call that gives it: no task, no loop callback."""
    pending: list[Later] = []

    def later(req: Request) -> Later:
        answer = Later()
        pending.append(answer)
        return answer

    router = Router()
    router.add("/later", later, ["GET"])
    router.add("/a", lambda req: Response(200, None, b"A"), ["GET"])
    conn, transport = _connect(router)
    conn.data_received(_get("/later") + _get("/a") + _get("/later") + _get("/later"))
    assert transport.written == [] and len(pending) == 1
    assert not conn._server._tasks
    pending[0].give(Response(201, None, b"L"))
    pending[0].give(Response(202, None, b"again"))  # ignored: answered once
    conn._server.flush_writes()
    assert len(pending) == 2  # the queued requests ran right after the first answer
    pending[1].fail(NeedleNotFound("not found"))
    conn._server.flush_writes()
    pending[2].fail(OSError(5, "fsync failed"))
    conn._server.flush_writes()
    statuses = [w.split(b" ", 2)[1] for w in transport.written]
    assert statuses == [b"201", b"200", b"404", b"500"]
    assert transport.written[2].endswith(b'{"error":"not found"}')
    assert transport.written[3].endswith(b'{"error":"internal server error"}')


async def test_a_later_given_after_the_client_left_is_dropped() -> None:
    pending: list[Later] = []

    def later(req: Request) -> Later:
        pending.append(Later())
        return pending[-1]

    router = Router()
    router.add("/later", later, ["GET"])
    conn, transport = _connect(router)
    conn.data_received(_get("/later"))
    conn.connection_lost(None)
    pending[0].give(Response(200, None, b"late"))
    conn._server.flush_writes()
    assert transport.written == []


async def test_a_later_can_be_awaited_given_before_or_after() -> None:
    """Code that wraps a handler's answer (CORS, a request that waited for room) awaits it."""
    early = Later()
    early.give(Response(200, None, b"early"))
    assert (await early).body == b"early"
    late = Later()
    asyncio.get_running_loop().call_soon(late.give, Response(201, None, b"late"))
    assert (await late).status == 201
    failed = Later()
    asyncio.get_running_loop().call_soon(failed.fail, OSError(5, "fsync failed"))
    try:
        await failed
    except OSError as exc:
        assert exc.errno == 5
    else:
        raise AssertionError("the failure was not raised")
    cancelled = Later()
    task = asyncio.ensure_future(_await(cancelled))
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    cancelled.give(Response(200))  # the waiter is gone: nothing raises


async def _await(later: Later) -> Response:
    return await later
