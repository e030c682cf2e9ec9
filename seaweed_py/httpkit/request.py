"""The request value handed to handlers, and the stream a large request body arrives through."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Mapping
from email.parser import BytesParser
from email.policy import HTTP
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from seaweed_py.errors import PayloadTooLarge

if TYPE_CHECKING:
    from seaweed_py.httpkit.router import Route

__all__ = ["Request", "RequestStream"]

_FORM_TYPE = "application/x-www-form-urlencoded"
_MULTIPART_TYPE = "multipart/form-data"
_FORM_METHODS = frozenset(("POST", "PUT", "PATCH"))


class RequestStream:
    """A request body delivered in chunks as it arrives: `async for chunk in request.stream`.

    The connection feeds it; when more than `high_water` bytes wait unconsumed, the connection
    stops reading from the socket until the handler has consumed down to a quarter of that. A
    client that disconnects or stalls mid-body, or a chunked body that grows past the route's
    limit, surfaces as an exception from the iteration (`ConnectionResetError`,
    `RequestTimeout`, `PayloadTooLarge`).
    """

    __slots__ = (
        "_buffered",
        "_chunks",
        "_eof",
        "_error",
        "_high_water",
        "_on_first_read",
        "_pause",
        "_paused",
        "_resume",
        "_waiter",
        "expected",
        "received",
    )

    def __init__(
        self,
        expected: int | None,
        *,
        high_water: int = 1 << 20,
        pause: Callable[[], None] | None = None,
        resume: Callable[[], None] | None = None,
        on_first_read: Callable[[], None] | None = None,
    ) -> None:
        self.expected = expected
        """The announced Content-Length, or None for a chunked body."""
        self.received = 0
        """Body bytes received from the client so far (consumed or not)."""
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._eof = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._high_water = high_water
        self._pause = pause
        self._resume = resume
        self._paused = False
        self._on_first_read = on_first_read

    @property
    def at_eof(self) -> bool:
        """True once the whole body has arrived and been consumed."""
        return self._eof and not self._chunks

    @property
    def continue_pending(self) -> bool:
        """True while the client waits for `100 Continue`, which the first read sends."""
        return self._on_first_read is not None

    @property
    def complete(self) -> bool:
        """True once the whole body has arrived (it may still be buffered here)."""
        return self._eof

    def __aiter__(self) -> RequestStream:
        return self

    async def __anext__(self) -> bytes:
        if self._on_first_read is not None:
            # `Expect: 100-continue`: the client sends the body only once we start reading it.
            callback, self._on_first_read = self._on_first_read, None
            callback()
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._eof:
                raise StopAsyncIteration
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            try:
                await waiter
            finally:
                self._waiter = None
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        if self._paused and self._buffered <= self._high_water // 4:
            self._paused = False
            if self._resume is not None:
                self._resume()
        return chunk

    async def read(self, limit: int | None = None) -> bytes:
        """The rest of the body as one bytes object; `PayloadTooLarge` past `limit` bytes."""
        parts: list[bytes] = []
        total = 0
        async for chunk in self:
            total += len(chunk)
            if limit is not None and total > limit:
                raise PayloadTooLarge(f"request body exceeds {limit} bytes")
            parts.append(chunk)
        return b"".join(parts)

    def unread(self, chunks: list[bytes]) -> None:
        """Put back `chunks`, just read from this stream, for the next reader to get first."""
        self._chunks.extendleft(reversed(chunks))
        self._buffered += sum(len(chunk) for chunk in chunks)

    # -- fed by the connection ------------------------------------------------------------------

    def feed(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self.received += len(chunk)
        self._buffered += len(chunk)
        if not self._paused and self._buffered > self._high_water:
            self._paused = True
            if self._pause is not None:
                self._pause()
        self._wake()

    def feed_eof(self) -> None:
        self._eof = True
        self._wake()

    def fail(self, error: BaseException) -> None:
        """End the stream with `error` (after whatever is already buffered)."""
        if self._error is None and not self._eof:
            self._error = error
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class Request:
    """One HTTP request as a handler sees it.

    `headers` has lower-case names; when a header repeats, the first value wins (as Go's
    `Header.Get`). `query` is parsed on first use; first value wins (as Go's `FormValue`).
    `remote` is the client's IP address. Exactly one of `body` and `stream` carries the body:
    bodies up to `Limits.stream_threshold` arrive whole in `body` (with `stream` None), larger
    ones through `stream` (with `body` empty); `await request.read()` works for both.
    """

    __slots__ = (
        "_charge",
        "_error",
        "_form",
        "_headers",
        "_query",
        "_raw_headers",
        "_route",
        "body",
        "keep_alive",
        "method",
        "path",
        "query_string",
        "remote",
        "stream",
        "version",
    )

    def __init__(
        self,
        method: str,
        path: str,
        query_string: str = "",
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        remote: str = "",
        version: str = "1.1",
        keep_alive: bool = True,
        raw_headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.query_string = query_string
        self.body = body
        self.remote = remote
        self.version = version
        self.keep_alive = keep_alive
        self.stream: RequestStream | None = None
        self._raw_headers = raw_headers
        self._headers: dict[str, str] | None = (
            None if headers is None else {k.lower(): v for k, v in headers.items()}
        )
        self._query: dict[str, str] | None = None
        self._form: dict[str, str] | None = None
        self._route: Route | None = None
        self._error: BaseException | None = None
        self._charge = 0  # body bytes counted by its route's `InflightLimit`

    def __repr__(self) -> str:
        target = self.path + ("?" + self.query_string if self.query_string else "")
        return f"<Request {self.method} {target} from {self.remote or '?'}>"

    @property
    def headers(self) -> dict[str, str]:
        headers = self._headers
        if headers is None:
            headers = {}
            for name, value in self._raw_headers or ():
                key = name.decode("latin-1").lower()
                if key not in headers:
                    headers[key] = value.decode("utf-8", "surrogateescape")
            self._headers = headers
        return headers

    @property
    def query(self) -> dict[str, str]:
        query = self._query
        if query is None:
            query = _first_values(self.query_string)
            self._query = query
        return query

    def form(self) -> dict[str, str]:
        """Query parameters merged with the fields of an `application/x-www-form-urlencoded` or
        `multipart/form-data` body of a POST, PUT or PATCH, the body's values winning (Go's
        `FormValue`: `curl -F volumeId=3` works like `?volumeId=3`). File parts are not form
        values. A streamed body (above the streaming threshold) is not read here."""
        form = self._form
        if form is None:
            form = dict(self.query)
            if self.body and self.method in _FORM_METHODS:
                content_type = self.headers.get("content-type", "")
                kind = content_type.split(";", 1)[0].strip().lower()
                if kind == _FORM_TYPE:
                    form.update(_first_values(self.body.decode("utf-8", "replace")))
                elif kind == _MULTIPART_TYPE:
                    form.update(_multipart_values(content_type, self.body))
            self._form = form
        return form

    async def read(self) -> bytes:
        """The whole body, whether it was buffered or streamed (then bounded by the route's
        body limit, which the connection already enforces while receiving)."""
        if self.stream is not None:
            self.body = await self.stream.read()
            self.stream = None
        return self.body


def _multipart_values(content_type: str, body: bytes) -> dict[str, str]:
    """The text fields of a `multipart/form-data` body, the first value of each name; parts
    with a file name are skipped, and a body that does not parse yields no fields."""
    head = b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n"
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    values: dict[str, str] = {}
    if not message.is_multipart():
        return values
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or name in values or part.get_filename() is not None:
            continue
        payload = part.get_payload(decode=True)
        values[name] = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    return values


def _first_values(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    if text:
        for key, value in parse_qsl(text, keep_blank_values=True):
            values.setdefault(key, value)
    return values
