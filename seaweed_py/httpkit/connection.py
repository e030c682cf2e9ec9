"""One client connection: an `asyncio.Protocol` that feeds llhttp and runs handlers in order.

llhttp (through `httptools`) does all parsing and calls back as it goes. Requests of one
connection are handled strictly one after another, so pipelined responses leave in request
order even when handlers are async; requests parsed meanwhile wait in `_queue`. A sync handler
is called straight from the parser callback and its response written with one
`transport.write`: no task, no coroutine, no extra object. With `HttpServer.batch_writes` that
write is held until the loop has read every ready connection (`flush`); anything else written
to, or closing, the connection flushes it first, so answers keep their order.

Phases of the message being received (`_phase`):

    IDLE ──target──► HEADERS ──headers complete──► BODY ──message complete──► IDLE
                        │ (431/414/400/timeout)   │ (413/timeout/client gone)
                        └───────────► closed ◄────┘ (LINGER first if input is unread)

Reading pauses (a bitmask of reasons) while a streamed body's consumer is behind, while too
many requests are queued, while the transport's write buffer is above its high-water mark, and
while a request waits for room under its route's `InflightLimit`.

A route with an `InflightLimit` counts the body of each request it admits from the end of the
headers until the answer is handed over (or the connection is lost: `_release`). A request it
does not admit at once gets a stream whatever its size and is handled by `_admit` instead of
the route's handler: the body stays unread until there is room, and a request that fits the
buffered size then reaches the handler buffered, as it would have without the wait.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from collections.abc import AsyncIterable, Awaitable, Callable
from inspect import isawaitable
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote_to_bytes

from httptools import (
    HttpParserCallbackError,
    HttpParserError,
    HttpParserUpgrade,
    HttpRequestParser,
)

from seaweed_py.errors import (
    BadRequest,
    ExpectationFailed,
    HeaderFieldsTooLarge,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    UriTooLong,
    WeedError,
)
from seaweed_py.httpkit.inflight import InflightLimit
from seaweed_py.httpkit.later import Later
from seaweed_py.httpkit.request import Request, RequestStream
from seaweed_py.httpkit.response import (
    JSON_HEADERS,
    Response,
    encode_headers,
    error_response,
    status_line,
)
from seaweed_py.httpkit.router import Route

if TYPE_CHECKING:
    from seaweed_py.httpkit.server import HttpServer

__all__ = ["HttpConnection"]

log = logging.getLogger("seaweed_py.httpkit")

_IDLE, _HEADERS, _BODY, _LINGER = 0, 1, 2, 3

_PAUSE_STREAM, _PAUSE_PIPELINE, _PAUSE_WRITE, _PAUSE_INFLIGHT = 1, 2, 4, 8

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_CLOSE = b"Connection: close\r\n"
_KEEP_ALIVE = b"Connection: keep-alive\r\n"
_CHUNKED = b"Transfer-Encoding: chunked\r\n"
_LAST_CHUNK = b"0\r\n\r\n"
_INTERNAL_ERROR = b'{"error":"internal server error"}'
_NO_BODY_STATUSES = frozenset((204, 304))
# Status line by code, 100 to 999: one index on the hot path.
_STATUS_LINE_TABLE = [b""] * 100 + [status_line(code) for code in range(100, 1000)]
# Bodies up to this size are copied behind the head into one buffer; larger ones are handed
# to the transport as a second buffer of the same write, uncopied.
_COALESCE_LIMIT = 16 * 1024

# `len(name) << 8 | first letter, lower-cased` of the headers that need a look before a request
# is handled; a cheap filter run on every header line, confirmed with a full comparison.
_NOTABLE_SHAPES = frozenset(
    len(name) << 8 | (ord(name[0]) | 0x20)
    for name in ("content-length", "transfer-encoding", "connection", "upgrade", "expect")
)

_HOST_SHAPE = 4 << 8 | ord("h")

_perf_counter = time.perf_counter

_METHODS = {
    m.encode(): m
    for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT")
}


class _StopParsing(Exception):
    """Raised from a parser callback to make llhttp stop: the rest of the input is not ours to
    interpret (the connection is closing)."""


class _ParseRejection(Exception):
    """Raised from a parser callback when the request breaks a limit before it is complete."""

    def __init__(self, error: WeedError) -> None:
        super().__init__(error.message)
        self.error = error


class HttpConnection(asyncio.Protocol):
    __slots__ = (
        "_active",
        "_admitting",
        "_body_inflight",
        "_body_parts",
        "_body_size",
        "_closed",
        "_closing",
        "_continue_wanted",
        "_drain_waiter",
        "_hdr_raw_bytes",
        "_hdr_started",
        "_headers",
        "_held",
        "_host",
        "_last_activity",
        "_last_recv",
        "_limits",
        "_linger_needed",
        "_linger_until",
        "_loop",
        "_max_body",
        "_max_header_bytes",
        "_max_url",
        "_notable",
        "_parser",
        "_parsing",
        "_pause_reasons",
        "_peer_eof",
        "_phase",
        "_pumping",
        "_queue",
        "_read_size",
        "_remote",
        "_req",
        "_router",
        "_routes",
        "_server",
        "_started",
        "_stream",
        "_task",
        "_transport",
        "_url",
        "_write_paused",
        "_write_paused_since",
    )

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._router = server.router
        self._routes = server.router.exact
        self._limits = server.limits
        self._max_url = server.limits.max_url
        self._max_header_bytes = server.limits.max_header_bytes
        self._max_body = server.limits.max_body
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._held: bytes | None = None  # answers not yet written (`HttpServer.batch_writes`)
        self._parser = HttpRequestParser(self)
        self._parsing = True
        self._phase = _IDLE
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._hdr_raw_bytes = 0
        self._hdr_started = 0.0
        self._notable = False  # a header that needs a look (framing, Expect, Upgrade...)
        self._host = False  # a Host header was seen (HTTP/1.1 requires one)
        self._read_size = 0
        self._req: Request | None = None  # the request whose body is being received
        self._stream: RequestStream | None = None  # its stream, if it is streamed
        self._body_parts: list[bytes] | None = None
        self._body_size = 0
        # The limit that counts `self._req`'s chunked body as it arrives, if any.
        self._body_inflight: InflightLimit | None = None
        self._admitting = False  # the active request waits for room under its InflightLimit
        self._active: Request | None = None  # the request being handled
        self._queue: deque[Request] = deque()  # parsed, waiting for `_active` to finish
        self._task: asyncio.Future[Any] | None = None  # the async handler's task or future
        self._started = 0.0  # when `_active`'s handler started (perf_counter), for observers
        self._pumping = False
        self._closing = False  # parse no new requests; close once the queue is answered
        self._closed = False
        self._linger_needed = False  # input we never read may still be arriving
        self._continue_wanted = False  # `self._req` sent `Expect: 100-continue`, not yet answered
        self._peer_eof = False
        self._pause_reasons = 0
        self._write_paused = False
        self._write_paused_since = 0.0
        self._drain_waiter: asyncio.Future[None] | None = None
        self._remote = ""
        self._last_recv = server.now
        self._last_activity = server.now
        self._linger_until = 0.0

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport implements asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and peer:
            self._remote = str(peer[0])
        self._server.connection_opened(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._held = None
        self._parsing = False
        stream = self._stream
        if stream is not None:
            stream.fail(ConnectionResetError("client closed the connection during the body"))
        for req in self._queue:
            if req.stream is not None:
                req.stream.fail(ConnectionResetError("client closed the connection"))
            self._release(req)
        self._queue.clear()
        for unanswered in (self._active, self._req):
            if unanswered is not None:
                self._release(unanswered)
        if self._admitting and self._task is not None:
            self._task.cancel()  # nobody is left to answer: stop waiting for room
        self._release_drain_waiter()
        self._server.connection_closed(self)

    def eof_received(self) -> bool:
        self.flush()  # returning False closes the transport, with only what it holds
        self._peer_eof = True
        self._parsing = False
        self._closing = True
        if self._phase == _LINGER:
            return False
        stream = self._stream
        if stream is not None:
            # Its handler is running and answers for it: it sees the error from the stream.
            stream.fail(ConnectionResetError("client ended its side before the body was complete"))
        # A request still arriving can never complete: drop it.
        if self._req is not None:
            self._release(self._req)
        self._req = None
        self._stream = None
        self._phase = _IDLE
        # With requests already received, keep the write side open to answer them.
        return self._active is not None or bool(self._queue)

    def data_received(self, data: bytes) -> None:
        if not self._parsing:
            return  # lingering after an answer, or closing: input is discarded
        self._last_recv = self._server.now
        self._read_size = len(data)
        # The header list of a message whose header block was unfinished before this read.
        unfinished = self._headers if self._phase == _HEADERS else None
        try:
            self._parser.feed_data(data)
        except HttpParserCallbackError as exc:
            self._on_callback_error(exc)
            return
        except HttpParserUpgrade:
            # We speak no other protocol: the upgrade request (or CONNECT) is answered as a
            # plain request, and what follows it is not HTTP.
            self._stop_reading_requests(unread_input=True)
            if self._active is None and not self._queue:
                self._close(linger=True)
            return
        except HttpParserError as exc:
            self._reject_input(BadRequest(f"malformed request: {exc}"))
            return
        if self._phase == _HEADERS:
            self._account_unfinished_headers(len(data), self._headers is unfinished)

    def pause_writing(self) -> None:
        self._write_paused = True
        self._write_paused_since = self._server.now
        self._pause(_PAUSE_WRITE)

    def resume_writing(self) -> None:
        self._write_paused = False
        self._resume(_PAUSE_WRITE)
        self._release_drain_waiter()
        if self._queue and self._active is None:
            self._pump()

    # -- llhttp callbacks ---------------------------------------------------------------------

    def on_url(self, url: bytes) -> None:
        if self._phase == _IDLE:
            # The first piece of a new request's target: the request begins. (Done here rather
            # than in an `on_message_begin` callback, which would cost a call per request;
            # the few bytes of method before the target fall under the idle timeout.)
            if self._closing:
                raise _StopParsing
            self._phase = _HEADERS
            self._headers = []
            self._hdr_raw_bytes = 0
            self._notable = False
            self._host = False
            self._hdr_started = self._server.now
        else:
            url = self._url + url
        if len(url) > self._max_url:
            raise _ParseRejection(UriTooLong(f"request target longer than {self._max_url} bytes"))
        self._url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        # Sizes are checked per read and at the end of the block, not per line.
        self._headers.append((name, value))
        shape = len(name) << 8 | name[0] | 0x20
        if shape in _NOTABLE_SHAPES:
            self._notable = True
        elif shape == _HOST_SHAPE:
            self._host = True

    def on_headers_complete(self) -> None:
        parser = self._parser
        raw_method = parser.get_method()
        method = _METHODS.get(raw_method) or raw_method.decode("ascii", "replace")
        keep_alive = parser.should_keep_alive()
        target = self._url.decode("latin-1")
        if target.isascii() and target[0] == "/" and "%" not in target and "#" not in target:
            path, _, query = target.partition("?")
        else:
            path, query = _split_target(self._url)
        headers = self._headers
        if (self._hdr_raw_bytes or self._read_size > self._max_header_bytes) and sum(
            len(n) + len(v) + 4 for n, v in headers
        ) > self._max_header_bytes:
            # Summed only when the block may exceed the limit: it spanned reads, or came in a
            # big one (within one read no larger than the limit, it cannot).
            raise _ParseRejection(self._headers_too_large())
        # An HTTP/1.1 request is keep-alive unless it says `Connection: close`; an HTTP/1.0 one
        # is keep-alive only if it says `Connection: keep-alive`, which is a notable header.
        version = "1.1" if keep_alive else parser.get_http_version()
        req = Request(method, path, query, None, b"", self._remote, version, keep_alive, headers)
        self._phase = _BODY
        route = self._routes.get(path) or self._router.fallback_route
        if (
            not self._notable
            and self._host
            and route is not None
            and (route.methods is None or method in route.methods)
        ):
            # The common case: no body, nothing to negotiate, a known route. (`_stream` is
            # None between messages; `_body_size` matters only to requests with a body.)
            req._route = route
            self._req = req
            return
        self._check_request(req, route)

    def _check_request(self, req: Request, route: Route | None) -> None:
        length: int | None = None
        transfer_encoding: bytes | None = None
        expect: bytes | None = None
        for name, value in self._headers:
            if (len(name) << 8 | name[0] | 0x20) not in _NOTABLE_SHAPES:
                continue
            key = name.lower()
            if key == b"content-length":
                length = int(value)
            elif key == b"transfer-encoding":
                transfer_encoding = value
            elif key == b"connection" and req.keep_alive:
                req.version = self._parser.get_http_version()
            elif key == b"upgrade":
                req.keep_alive = False  # we switch to no other protocol: answer, then close
            elif key == b"expect":
                expect = value
        chunked = transfer_encoding is not None
        has_body = chunked or bool(length)
        error: WeedError | None = None
        continue_wanted = False
        max_body = self._limits.max_body
        if not self._host and req.version != "1.0":
            error = BadRequest("missing required Host header")
        elif chunked and length is not None:
            # Both framings at once is the request-smuggling shape: never guess which one wins.
            error = BadRequest("both Content-Length and Transfer-Encoding present")
        elif transfer_encoding is not None and transfer_encoding.lower() != b"chunked":
            error = BadRequest(
                f"unsupported Transfer-Encoding {transfer_encoding.decode('latin-1')!r}"
            )
        elif route is None:
            error = NotFound(f"no handler for {req.path}")
        elif route.methods is not None and req.method not in route.methods:
            error = MethodNotAllowed(
                f"method {req.method} not allowed on {req.path}", headers={"Allow": route.allow}
            )
        else:
            if route.max_body is not None:
                max_body = route.max_body
            if length is not None and length > max_body:
                error = PayloadTooLarge(
                    f"request body of {length} bytes exceeds the limit of {max_body} bytes"
                )
            elif expect is not None and req.version != "1.0":
                if expect.lower() != b"100-continue":
                    error = ExpectationFailed(f"unsupported Expect: {expect.decode('latin-1')}")
                else:
                    continue_wanted = has_body
        if error is not None:
            req._error = error
            req._route = route  # its observer, if any, counts the refusal
            self._req = None  # its body, if any, is never read
            if has_body:
                req.keep_alive = False
                self._stop_reading_requests(unread_input=True)
                self._enqueue(req)
                raise _StopParsing
            self._enqueue(req)
            return
        assert route is not None  # (no error)
        req._route = route
        self._req = req
        self._stream = None
        self._body_size = 0
        self._max_body = max_body
        self._continue_wanted = continue_wanted
        self._body_inflight = None
        inflight = route.inflight
        if inflight is not None and has_body:
            if not inflight.admits(req):
                self._wait_for_room(req, route, inflight, length)
                return
            self._count(req, inflight, length, chunked)
        if length is not None and length > self._limits.stream_threshold:
            self._start_stream(req, length)
        elif continue_wanted and self._active is None and not self._queue:
            self._send_continue()

    # -- the in-flight body limit of a route ----------------------------------------------------

    def _count(
        self, req: Request, inflight: InflightLimit, length: int | None, chunked: bool
    ) -> None:
        """Count an admitted request's body: its length now, or a chunked one as it comes."""
        if length:
            req._charge = length
            inflight.add(length)
        if chunked and self._req is req:
            self._body_inflight = inflight

    def _release(self, req: Request) -> None:
        """`req` is answered, or will never be: its body no longer counts."""
        if self._req is req:
            self._body_inflight = None
        charge = req._charge
        if charge:
            req._charge = 0
            route = req._route
            if route is not None and route.inflight is not None:
                route.inflight.release(charge)

    def _wait_for_room(
        self, req: Request, route: Route, inflight: InflightLimit, length: int | None
    ) -> None:
        """Hold `req` unread until its route's limit has room (`_admit`)."""
        self._pause(_PAUSE_INFLIGHT)
        req._route = Route(
            functools.partial(self._admit, route.handler, inflight),
            route.methods,
            route.max_body,
            route.inflight,
            route.observe,
        )
        self._start_stream(req, length)

    async def _admit(
        self,
        handler: Callable[[Request], Response | Awaitable[Response]],
        inflight: InflightLimit,
        req: Request,
    ) -> Response:
        """Wait for room (the limit's rejection after its timeout), count the body, read on,
        and hand the request to `handler` as if it had not waited."""
        self._admitting = True
        try:
            await inflight.wait()
        finally:
            self._admitting = False
        stream = req.stream
        assert stream is not None
        self._count(req, inflight, stream.expected or stream.received, stream.expected is None)
        self._resume(_PAUSE_INFLIGHT)
        if stream.expected is None or stream.expected <= self._limits.stream_threshold:
            await _buffer_if_small(req, self._limits.stream_threshold)
        answer = handler(req)
        return await answer if isawaitable(answer) else answer

    def on_body(self, chunk: bytes) -> None:
        req = self._req
        if req is None:
            return
        if not self._parsing:
            raise _StopParsing  # answered and closing while this packet was being parsed
        self._continue_wanted = False  # the client did not wait for it
        size = self._body_size + len(chunk)
        self._body_size = size
        if size > self._max_body:  # only a chunked body can get here
            raise _ParseRejection(
                PayloadTooLarge(f"chunked request body exceeds the limit of {self._max_body} bytes")
            )
        inflight = self._body_inflight
        if inflight is not None:  # a chunked body counts what has arrived
            req._charge += len(chunk)
            inflight.add(len(chunk))
        stream = self._stream
        if stream is not None:
            stream.feed(chunk)
            return
        parts = self._body_parts
        if parts is None:
            self._body_parts = [chunk]
        else:
            parts.append(chunk)
        if size > self._limits.stream_threshold:  # a chunked body has outgrown buffering
            parts, self._body_parts = self._body_parts or [], None
            stream = self._start_stream(req, None)
            for part in parts:
                stream.feed(part)

    def on_message_complete(self) -> None:
        if not self._parsing:
            raise _StopParsing  # answered and closing while this packet was being parsed
        req = self._req
        self._phase = _IDLE
        if req is None:
            return  # answered already (rejected at the headers)
        self._req = None
        self._body_inflight = None
        stream = self._stream
        if stream is not None:
            self._stream = None
            stream.feed_eof()
        else:
            self._continue_wanted = False
            parts = self._body_parts
            if parts is not None:
                self._body_parts = None
                req.body = parts[0] if len(parts) == 1 else b"".join(parts)
            if self._active is None and not self._queue and not self._write_paused:
                self._run(req)
            else:
                self._enqueue(req)
        if self._closed or not req.keep_alive:
            # Whatever follows a request that ends the connection is not answered.
            self._parsing = False
            raise _StopParsing

    # -- running handlers in order ------------------------------------------------------------

    def _enqueue(self, req: Request) -> None:
        if self._active is None and not self._queue and not self._write_paused:
            self._run(req)
            return
        self._queue.append(req)
        if len(self._queue) >= self._limits.max_pipeline:
            self._pause(_PAUSE_PIPELINE)

    def _run(self, req: Request) -> None:
        self._active = req
        self._started = _perf_counter()
        error = req._error
        if error is not None:
            self._send(req, self._render_error(req, error))
            return
        route = req._route
        assert route is not None
        try:
            result: Any = route.handler(req)
        except Exception as exc:
            result = self._render_error(req, exc)
        if type(result) is Response and type(result.body) is bytes:
            # The hot path: a sync handler with a bytes body, answered with one write.
            self._write_response(req, result, result.body)
            if req._charge:
                self._release(req)
            if req.keep_alive and not self._queue and self._req is None:
                self._active = None
                self._last_activity = self._server.now
            else:
                self._finish(req)
        elif type(result) is Later:
            # Given by whoever resolves its batch, on this thread: no loop callback per answer.
            result.on_given(functools.partial(self._given, req))
        elif isinstance(result, asyncio.Future):
            # A bare future (an answer waiting for a group commit, say): a done callback costs
            # far less than a task awaiting it.
            self._task = result
            result.add_done_callback(functools.partial(self._future_done, req))
        elif isawaitable(result):
            self._task = self._server.spawn(self._finish_async(req, result))
        else:
            self._send(req, result)

    async def _finish_async(self, req: Request, awaitable: Awaitable[Any]) -> None:
        try:
            result = await awaitable
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if self._closed or (task is not None and task.cancelling()):
                raise  # we are being cancelled (server stop): not the handler's answer
            result = self._render_error(req, exc)
        except Exception as exc:
            result = self._render_error(req, exc)
        self._task = None
        if self._closed:
            self._release(req)
            self._active = None
            return
        self._send(req, result)

    def _future_done(self, req: Request, future: asyncio.Future[Any]) -> None:
        self._task = None
        if self._closed:
            self._release(req)
            self._active = None
            return
        if future.cancelled():
            result = self._render_error(req, asyncio.CancelledError())
        else:
            error = future.exception()
            result = future.result() if error is None else self._render_error(req, error)
        self._send(req, result)

    def _given(self, req: Request, answer: Response | None, error: BaseException | None) -> None:
        if self._closed:
            self._release(req)
            self._active = None
            return
        if error is None and type(answer) is Response and type(answer.body) is bytes:
            self._write_response(req, answer, answer.body)  # `_send`'s common case, inlined
            self._finish(req)
            return
        self._send(req, answer if error is None else self._render_error(req, error))

    def _send(self, req: Request, resp: object) -> None:
        if not isinstance(resp, Response):
            resp = self._render_error(
                req, TypeError(f"handler returned {type(resp).__name__}, not a Response")
            )
        body = resp.body
        if isinstance(body, bytes | bytearray | memoryview):
            self._write_response(req, resp, body)
            self._finish(req)
        else:
            self._task = self._server.spawn(self._send_stream(req, resp, body))

    def _finish(self, req: Request) -> None:
        """The response to `req` is fully handed to the transport: close, or go on."""
        self._release(req)
        self._active = None
        self._task = None
        self._last_activity = self._server.now
        if self._closed:
            return
        if not req.keep_alive:
            self._close(linger=self._linger_needed or self._req is req)
        elif self._queue or self._req is not None:
            self._pump()
        elif self._closing:
            self._close(linger=self._linger_needed)

    def _pump(self) -> None:
        if self._pumping:
            return  # a sync handler finished inside the loop below: it continues there
        self._pumping = True
        try:
            # While the client is not reading our answers, produce no more of them: a pipeline
            # of small requests for large blobs would otherwise pile up in memory.
            while (
                self._active is None and self._queue and not self._closed and not self._write_paused
            ):
                self._run(self._queue.popleft())
            if (
                self._pause_reasons & _PAUSE_PIPELINE
                and len(self._queue) < self._limits.max_pipeline
            ):
                self._resume(_PAUSE_PIPELINE)
            if self._continue_wanted and self._active is None and not self._queue:
                # A buffered request waiting for `100 Continue` became first in line.
                self._send_continue()
        finally:
            self._pumping = False

    def _start_stream(self, req: Request, length: int | None) -> RequestStream:
        on_first_read = None
        if self._continue_wanted:
            # Sent once the handler starts reading: by then its request is first in line.
            self._continue_wanted = False
            on_first_read = self._send_continue
        stream = RequestStream(
            length,
            high_water=self._limits.stream_high_water,
            pause=self._pause_for_stream,
            resume=self._resume_for_stream,
            on_first_read=on_first_read,
        )
        req.stream = stream
        self._stream = stream
        self._enqueue(req)
        return stream

    def _send_continue(self) -> None:
        self._continue_wanted = False
        if self._closed or self._body_size or self._req is None:
            return  # the body started arriving anyway, or the request is gone
        # The client was waiting for us; the body timeout runs from now.
        self._last_recv = self._server.now
        self._write(_CONTINUE)

    def _pause_for_stream(self) -> None:
        self._pause(_PAUSE_STREAM)

    def _resume_for_stream(self) -> None:
        self._resume(_PAUSE_STREAM)

    # -- writing ------------------------------------------------------------------------------

    def _write_response(
        self, req: Request, resp: Response, body: bytes | bytearray | memoryview
    ) -> None:
        """Encode a response with an in-memory body and hand it to the transport: one write
        of head and body joined, or for a large body head and body as two buffers of one
        write (so the body is not copied)."""
        status = resp.status
        length = resp.content_length
        if status == 200 or (status >= 200 and status not in _NO_BODY_STATUSES):
            if length is None:
                length = len(body)
            elif length != len(body) and (body or req.method != "HEAD"):
                error = ValueError(f"content_length {length} but a body of {len(body)} bytes")
                self._write_response(req, self._render_error(req, error), b"")
                return
            framing = b"Content-Length: %d\r\n" % length
            if req.method == "HEAD":
                body = b""
        else:
            body = b""
            framing = b"Content-Length: %d\r\n" % length if status == 304 and length else b""
        try:
            headers = encode_headers(resp.headers) if resp.headers else b""
        except ValueError as exc:
            self._write_response(req, self._render_error(req, exc), b"")
            return
        # `_connection_header`, inlined on this hot path.
        if not req.keep_alive or self._req is req or (self._closing and not self._queue):
            req.keep_alive = False
            connection = _CLOSE
        elif req.version == "1.0":
            connection = _KEEP_ALIVE
        else:
            connection = b""
        transport = self._transport
        if transport is None or self._closed:
            return
        try:
            if len(body) <= _COALESCE_LIMIT:
                data = b"".join(
                    (
                        _STATUS_LINE_TABLE[status] if 100 <= status < 1000 else status_line(status),
                        self._server.head_common,
                        resp.raw_headers,
                        headers,
                        framing,
                        connection,
                        b"\r\n",
                        body,
                    )
                )
                if not self._server.batch_writes:
                    transport.write(data)
                elif self._held is None:
                    self._held = data
                    self._server.hold_write(self)
                else:  # pipelined answers of one connection, bounded by `max_pipeline`
                    self._held += data
            else:
                self.flush()
                head = self._head(resp, headers + framing + connection)
                transport.writelines((head, body))
        except RuntimeError:  # the transport closed under us; connection_lost follows
            self._closed = True
        route = req._route
        if route is not None and route.observe is not None:
            route.observe(req, status, _perf_counter() - self._started, len(body))

    def _head(self, resp: Response, rest: bytes) -> bytes:
        """Status line and headers, with `rest` (encoded headers, framing and connection
        lines) decided by the caller."""
        return b"".join(
            (
                status_line(resp.status),
                self._server.head_common,
                resp.raw_headers,
                rest,
                b"\r\n",
            )
        )

    def _connection_header(self, req: Request) -> bytes:
        if not req.keep_alive or self._req is req or (self._closing and not self._queue):
            # The connection ends after this response; `self._req is req` means part of its
            # body was never read, so the stream is not reusable either.
            req.keep_alive = False
            return _CLOSE
        if req.version == "1.0":
            return _KEEP_ALIVE
        return b""

    async def _send_stream(self, req: Request, resp: Response, body: AsyncIterable[bytes]) -> None:
        status = resp.status
        length = resp.content_length
        bodiless = req.method == "HEAD" or status in _NO_BODY_STATUSES or status < 200
        chunked = False
        if status < 200 or status == 204:
            framing = b""
        elif length is not None:
            framing = b"Content-Length: %d\r\n" % length
        elif bodiless:
            framing = b""
        elif req.version == "1.0":
            req.keep_alive = False  # HTTP/1.0 has no chunks: the close ends the body
            framing = b""
        else:
            chunked = True
            framing = _CHUNKED
        try:
            headers = encode_headers(resp.headers) if resp.headers else b""
        except ValueError as exc:
            await _close_iterable(body)
            self._send(req, self._render_error(req, exc))
            return
        self._write(self._head(resp, headers + framing + self._connection_header(req)))
        if bodiless:
            await _close_iterable(body)
            self._observe(req, status, 0)
            self._finish(req)
            return
        sent = 0
        try:
            async for chunk in body:
                if self._closed:
                    break
                if not chunk:
                    continue
                sent += len(chunk)
                if length is not None and sent > length:
                    break  # never write past the announced length: reported below
                if not chunked:
                    self._write(chunk)
                elif len(chunk) <= _COALESCE_LIMIT:
                    self._write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                else:
                    self._write_parts((b"%x\r\n" % len(chunk), chunk, b"\r\n"))
                if self._write_paused:
                    await self._drain()
        except ConnectionError:
            self._abort()
            return
        except Exception:
            log.exception(
                "response body of %s %s failed after %d bytes", req.method, req.path, sent
            )
            self._abort()
            return
        finally:
            await _close_iterable(body)
        if self._closed:
            self._release(req)
            self._active = None
            return
        if length is not None and sent != length:
            log.error(
                "response body of %s %s was %s bytes, Content-Length said %d",
                req.method,
                req.path,
                sent if sent < length else f"more than {length}",
                length,
            )
            self._abort()
            return
        if chunked:
            self._write(_LAST_CHUNK)
        self._observe(req, status, sent)
        self._finish(req)

    def _observe(self, req: Request, status: int, sent: int) -> None:
        route = req._route
        if route is not None and route.observe is not None:
            route.observe(req, status, _perf_counter() - self._started, sent)

    def flush(self) -> None:
        """Write the answers held for `HttpServer.batch_writes`; every other write, and the
        close, goes after them."""
        data = self._held
        if data is not None:
            self._held = None
            self._put(data)

    def _write_parts(self, parts: tuple[bytes, ...]) -> None:
        """Several buffers in one write, none of them copied."""
        self.flush()
        transport = self._transport
        if transport is not None and not self._closed:
            try:
                transport.writelines(parts)
            except RuntimeError:  # the transport closed under us; connection_lost follows
                self._closed = True

    def _write(self, data: bytes) -> None:
        self.flush()
        self._put(data)

    def _put(self, data: bytes) -> None:
        """Hand `data` to the transport now (held answers must have gone first)."""
        transport = self._transport
        if transport is not None and not self._closed:
            try:
                transport.write(data)
            except RuntimeError:  # the transport closed under us; connection_lost follows
                self._closed = True

    async def _drain(self) -> None:
        if self._closed:
            raise ConnectionResetError("client went away")
        waiter = self._loop.create_future()
        self._drain_waiter = waiter
        await waiter
        if self._closed:
            raise ConnectionResetError("client went away")

    def _release_drain_waiter(self) -> None:
        waiter = self._drain_waiter
        if waiter is not None:
            self._drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- errors, limits, closing --------------------------------------------------------------

    def _render_error(self, req: Request, exc: BaseException) -> Response:
        if isinstance(exc, WeedError):
            try:
                return error_response(exc)
            except Exception as render_exc:
                exc = render_exc  # e.g. `extra` that is not JSON: a bug, reported below
        if isinstance(exc, asyncio.CancelledError):
            log.error("handler of %s %s was cancelled from within", req.method, req.path)
        elif self._closed and isinstance(exc, ConnectionError):
            log.debug("%s %s: client went away: %s", req.method, req.path, exc)
        else:
            log.error("unhandled error in %s %s", req.method, req.path, exc_info=exc)
        return Response(500, None, _INTERNAL_ERROR, raw_headers=JSON_HEADERS)

    def _headers_too_large(self) -> HeaderFieldsTooLarge:
        return HeaderFieldsTooLarge(
            f"request headers longer than {self._limits.max_header_bytes} bytes"
        )

    def _account_unfinished_headers(self, size: int, continued: bool) -> None:
        """A read ended inside a header block. llhttp keeps an unfinished header line to itself
        (no callback until it ends), so a client dripping one endless line would grow it
        unseen: count whole reads instead. `continued`: the block began in an earlier read, so
        all of this read is header bytes; else only its complete lines are known."""
        if continued:
            self._hdr_raw_bytes += size
        else:
            # At least 1: marks the block as spanning reads, so it is summed when it ends.
            self._hdr_raw_bytes = max(1, sum(len(n) + len(v) + 4 for n, v in self._headers))
        if self._hdr_raw_bytes > self._max_header_bytes:
            self._reject_input(self._headers_too_large())

    def _on_callback_error(self, exc: HttpParserCallbackError) -> None:
        cause = exc.__context__
        if isinstance(cause, _StopParsing):
            self._parsing = False
        elif isinstance(cause, _ParseRejection):
            self._reject_input(cause.error)
        elif cause is not None and not isinstance(cause, Exception):
            raise cause  # KeyboardInterrupt, SystemExit...
        else:
            log.error("httpkit parser callback failed", exc_info=cause or exc)
            self._reject_input(BadRequest("malformed request"))

    def _reject_input(self, error: WeedError) -> None:
        """The input can no longer be parsed: answer `error` in turn, then close."""
        self._stop_reading_requests(unread_input=True)
        stream = self._stream
        req = self._req
        self._req = None
        self._body_inflight = None
        self._stream = None
        self._continue_wanted = False
        if stream is not None:
            # Its handler is running and answers for it: it sees the error from the stream.
            stream.fail(error)
            return
        if req is None:
            req = Request("GET", "", remote=self._remote, keep_alive=False)
        req.keep_alive = False
        req._error = error
        self._enqueue(req)

    def _stop_reading_requests(self, unread_input: bool) -> None:
        self._parsing = False
        self._closing = True
        self._linger_needed = self._linger_needed or unread_input

    def _pause(self, reason: int) -> None:
        if not self._pause_reasons and self._transport is not None and not self._closed:
            self._transport.pause_reading()
        self._pause_reasons |= reason

    def _resume(self, reason: int) -> None:
        if self._pause_reasons & reason:
            self._pause_reasons &= ~reason
            if not self._pause_reasons and self._transport is not None and not self._closed:
                # Time spent paused was ours, not the client's: restart its clocks.
                self._last_recv = self._hdr_started = self._server.now
                self._transport.resume_reading()

    def _close(self, linger: bool) -> None:
        transport = self._transport
        if self._closed or transport is None:
            return
        self.flush()
        self._parsing = False
        self._closing = True
        for queued in self._queue:  # pipelined behind an answer that ended the connection
            if queued.stream is not None:
                queued.stream.fail(ConnectionResetError("connection closed before this request"))
            self._release(queued)
        self._queue.clear()
        if linger and not self._peer_eof and transport.can_write_eof():
            # Unread input is on its way: closing now would answer it with a reset that can
            # destroy our response in the client's receive buffer. Half-close and drain.
            transport.write_eof()
            self._phase = _LINGER
            self._linger_until = self._server.now + self._limits.linger
            if self._pause_reasons:
                self._pause_reasons = 0
                transport.resume_reading()
            return
        self._closed = True
        self._closing = True
        transport.close()

    def _abort(self) -> None:
        self._held = None
        self._closed = True
        self._parsing = False
        if self._active is not None:
            self._release(self._active)
        self._active = None
        if self._transport is not None:
            self._transport.abort()

    # -- called by the server -----------------------------------------------------------------

    def check_timeouts(self, now: float) -> None:
        if self._closed:
            return
        limits = self._limits
        phase = self._phase
        if phase == _LINGER:
            if now >= self._linger_until:
                self._closed = True
                if self._transport is not None:
                    self._transport.close()
        elif self._write_paused:
            if now - self._write_paused_since > limits.send_timeout:
                log.info("closing %s: it stopped reading our responses", self._remote)
                self._abort()
        elif self._pause_reasons:
            pass  # we are the ones not reading
        elif not self._parsing:
            if self._active is None and not self._queue:
                # Reading stopped for good and nothing is left to answer.
                self._close(linger=self._linger_needed)
        elif phase == _HEADERS:
            if now - self._hdr_started > limits.header_timeout:
                self._reject_input(RequestTimeout("request headers not received in time"))
        elif phase == _BODY:
            stream = self._stream
            if (
                now - self._last_recv > limits.body_timeout
                and not self._continue_wanted
                and (stream is None or not stream.continue_pending)
            ):
                # (A client waiting for its `100 Continue` is waiting for us, not stalling.)
                self._reject_input(RequestTimeout("request body not received in time"))
        elif (
            self._active is None
            and not self._queue
            and now - max(self._last_activity, self._last_recv) > limits.idle_timeout
        ):
            self._close(linger=False)

    def shutdown(self) -> None:
        """Server stopping: close now if nothing is in flight, else after the current answer."""
        self._closing = True
        if self._closed:
            return
        if self._active is None and not self._queue and self._phase != _BODY:
            self._close(linger=False)
        elif self._phase == _HEADERS:
            self._parsing = False

    def abort(self) -> None:
        """Server stop grace expired: drop the connection and cancel its handler."""
        task = self._task
        if task is not None and not task.done():
            task.cancel()
        self._abort()


def _split_target(target: bytes) -> tuple[str, str]:
    path, _, query = target.partition(b"?")
    if not path.startswith(b"/"):
        path = _origin_path(path)
    if b"%" in path:
        path = unquote_to_bytes(path)
    if b"#" in query:
        query = query.partition(b"#")[0]
    return path.decode("utf-8", "replace"), query.decode("latin-1")


def _origin_path(target: bytes) -> bytes:
    """Path of an absolute-form target (`http://host/path`), as proxies send; `*` stays."""
    if target == b"*":
        return target
    _scheme, sep, rest = target.partition(b"://")
    if not sep:
        return target
    slash = rest.find(b"/")
    return rest[slash:] if slash >= 0 else b"/"


async def _close_iterable(body: object) -> None:
    aclose = getattr(body, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:
            log.exception("closing a response body failed")


async def _buffer_if_small(req: Request, threshold: int) -> None:
    """Read a streamed body into `req.body` if it turns out no larger than `threshold`; else
    leave it a stream, the bytes read put back."""
    stream = req.stream
    assert stream is not None
    parts: list[bytes] = []
    size = 0
    async for chunk in stream:
        parts.append(chunk)
        size += len(chunk)
        if size > threshold:
            stream.unread(parts)
            return
    req.body = b"".join(parts)
    req.stream = None
