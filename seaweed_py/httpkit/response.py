"""Response values, JSON rendering and the byte strings a response head is built from.

A response head is assembled by concatenating pre-built byte strings:

    HTTP/1.1 200 OK\\r\\n                     status line (pre-built for every known status)
    Server: weedpy\\r\\n                      server header + Date, rebuilt once a second
    Date: Sat, 21 Nov 2026 06:17:16 GMT\\r\\n
    Content-Type: application/json\\r\\n      `raw_headers` (pre-encoded, e.g. JSON's pair)
    X-Content-Type-Options: nosniff\\r\\n
    ETag: "1a2b"\\r\\n                        `headers` (encoded per response)
    Content-Length: 17\\r\\n                  or Transfer-Encoding: chunked for a stream
    Connection: close\\r\\n                   only when the connection ends (or HTTP/1.0 keep-alive)
    \\r\\n
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Mapping
from http import HTTPStatus
from typing import Any

import orjson

from seaweed_py.errors import WeedError

__all__ = [
    "JSON_HEADERS",
    "Body",
    "Response",
    "encode_headers",
    "error_response",
    "json_response",
    "status_line",
]

Body = bytes | bytearray | memoryview | AsyncIterable[bytes]

JSON_HEADERS = b"Content-Type: application/json\r\nX-Content-Type-Options: nosniff\r\n"
"""Headers of every JSON response (spec §2.1), pre-encoded."""

_STATUS_LINES: dict[int, bytes] = {
    s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode("ascii") for s in HTTPStatus
}


def status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        if not 100 <= status <= 999:
            raise ValueError(f"HTTP status {status} is out of range")
        line = b"HTTP/1.1 %d \r\n" % status
    return line


class Response:
    """What a handler returns.

    `body` is bytes (sent with a Content-Length) or an async iterable of bytes (streamed:
    with `content_length` set, exactly that many bytes must follow; without it, chunked).
    `content_length` may also be set with an empty body to answer HEAD without producing the
    body. `raw_headers` are pre-encoded header lines (`b"Name: value\\r\\n"...`) for hot paths;
    `headers` are encoded per response. Do not set Content-Length, Transfer-Encoding, Date,
    Server or Connection yourself: the connection owns those.
    """

    __slots__ = ("body", "content_length", "headers", "raw_headers", "status")

    def __init__(
        self,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        body: Body = b"",
        *,
        raw_headers: bytes = b"",
        content_length: int | None = None,
    ) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.raw_headers = raw_headers
        self.content_length = content_length

    def __repr__(self) -> str:
        size = len(self.body) if isinstance(self.body, bytes | bytearray | memoryview) else "stream"
        return f"<Response {self.status} body={size}>"


def json_response(
    obj: Any,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    pretty: bool = False,
) -> Response:
    """`obj` as compact JSON (Go `json.Marshal` style, no trailing newline), or indented by two
    spaces with `pretty` (the `?pretty=y` form), with `Content-Type: application/json` and
    `X-Content-Type-Options: nosniff`."""
    body = orjson.dumps(obj, option=orjson.OPT_INDENT_2) if pretty else orjson.dumps(obj)
    if headers and any(k.lower() == "content-type" for k in headers):
        return Response(status, headers, body, raw_headers=b"X-Content-Type-Options: nosniff\r\n")
    return Response(status, headers, body, raw_headers=JSON_HEADERS)


def error_response(exc: WeedError) -> Response:
    """The one rendering of a `WeedError`: `{"error": ...}` with the class's status."""
    return json_response(exc.body(), exc.status, exc.headers or None)


def encode_headers(headers: Mapping[str, str]) -> bytes:
    """`Name: value\\r\\n` lines; a CR or LF in a name or value would split the response, so it
    is refused (a handler bug surfaces as a 500, never as an injected header)."""
    lines = []
    for name, value in headers.items():
        if "\n" in value or "\r" in value or "\n" in name or "\r" in name or ":" in name:
            raise ValueError(f"invalid response header {name!r}: {value!r}")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("utf-8", "surrogateescape")
