"""`multipart/mixed` bodies of batch reads (`POST /batch/read`): one part per requested fid.

Layout (RFC 2046 §5.1.1), every part carrying its Content-Length so a reader never scans a
body for the boundary:

| bytes | meaning |
|---|---|
| `--<boundary>\\r\\n` | start of a part |
| `Name: value\\r\\n` ... | the part's headers (ASCII; Content-Length required) |
| `\\r\\n` | end of the headers |
| body, Content-Length bytes, then `\\r\\n` | the part's content |
| `--<boundary>--\\r\\n` | end of the body (after the last part) |

Batch-read parts carry `Content-ID: <fid>` (RFC 2392's angle brackets), `X-Weedpy-Status`
(the status a GET of that fid would answer), and for found needles `Content-Type`, `ETag` and
`Last-Modified`; a part that is not found or failed has a JSON body `{"error": "..."}`.

`MultipartMixedReader(boundary)` parses incrementally: `feed(chunk)` returns the parts completed
so far; `close()` checks the body ended with the closing delimiter. Malformed framing raises
`BadRequest` naming the byte offset.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from seaweed_py.errors import BadRequest

__all__ = [
    "MultipartMixedReader",
    "Part",
    "boundary_of",
    "closing_delimiter",
    "encode_part",
    "part_head",
]

MAX_HEADER_BYTES: Final = 16 << 10
_BOUNDARY = re.compile(r"""boundary=(?:"([^"]{1,70})"|([^;,\s"]{1,70}))""", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Part:
    headers: dict[str, str]
    """Header names in lower case."""
    body: bytes

    @property
    def content_id(self) -> str:
        """The Content-ID without its angle brackets."""
        value = self.headers.get("content-id", "")
        return value[1:-1] if value.startswith("<") and value.endswith(">") else value


def boundary_of(content_type: str) -> str:
    """The boundary parameter of a `multipart/mixed` Content-Type; BadRequest if none."""
    if not content_type.lower().startswith("multipart/mixed"):
        raise BadRequest(f"not a multipart/mixed body: {content_type[:80]!r}")
    match = _BOUNDARY.search(content_type)
    if match is None:
        raise BadRequest("multipart/mixed without a boundary")
    return match.group(1) or match.group(2)


def part_head(boundary: str, headers: list[tuple[str, str]], length: int) -> bytes:
    """Everything of a part before its body (Content-Length added last)."""
    lines = [f"--{boundary}\r\n"]
    for name, value in headers:
        if "\r" in value or "\n" in value:
            continue
        lines.append(f"{name}: {value}\r\n")
    lines.append(f"Content-Length: {length}\r\n\r\n")
    return "".join(lines).encode("utf-8", "surrogateescape")


def encode_part(boundary: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    return part_head(boundary, headers, len(body)) + body + b"\r\n"


def closing_delimiter(boundary: str) -> bytes:
    return f"--{boundary}--\r\n".encode()


class MultipartMixedReader:
    """Incremental parser of bodies `encode_part` and `closing_delimiter` write."""

    def __init__(self, boundary: str) -> None:
        self._start = f"--{boundary}\r\n".encode()
        self._end = f"--{boundary}--".encode()
        self._buf = bytearray()
        self._consumed = 0  # bytes of the body before _buf, for messages
        self._done = False
        self._pending: tuple[dict[str, str], int] | None = None  # headers read, body awaited

    def feed(self, chunk: bytes) -> list[Part]:
        if self._done and chunk.strip():
            raise BadRequest("multipart/mixed: data after the closing delimiter")
        self._buf += chunk
        parts: list[Part] = []
        while True:
            part = self._next()
            if part is None:
                return parts
            parts.append(part)

    def close(self) -> None:
        if not self._done:
            raise BadRequest(
                f"multipart/mixed body ended without its closing delimiter at byte "
                f"{self._consumed + len(self._buf)}"
            )

    def _take(self, n: int) -> bytes:
        data = bytes(self._buf[:n])
        del self._buf[:n]
        self._consumed += n
        return data

    def _next(self) -> Part | None:
        buf = self._buf
        if self._pending is None:
            if self._done:
                return None
            if len(buf) < len(self._end):
                return None
            if buf.startswith(self._end):
                self._take(len(self._end))
                self._done = True
                return None
            if len(buf) < len(self._start):
                return None
            if not buf.startswith(self._start):
                raise BadRequest(f"multipart/mixed: no part delimiter at byte {self._consumed}")
            head_end = buf.find(b"\r\n\r\n", len(self._start))
            if head_end < 0:
                if len(buf) > MAX_HEADER_BYTES:
                    raise BadRequest(
                        f"multipart/mixed: part headers over {MAX_HEADER_BYTES} bytes "
                        f"at byte {self._consumed}"
                    )
                return None
            head = self._take(head_end + 4)[len(self._start) : -4]
            headers = _headers(head, self._consumed)
            length_text = headers.get("content-length", "")
            if not (length_text.isascii() and length_text.isdigit()):
                raise BadRequest(
                    f"multipart/mixed: part without a Content-Length at byte {self._consumed}"
                )
            self._pending = (headers, int(length_text))
        headers, length = self._pending
        if len(self._buf) < length + 2:
            return None
        body = self._take(length)
        if self._take(2) != b"\r\n":
            raise BadRequest(f"multipart/mixed: part body overruns at byte {self._consumed - 2}")
        self._pending = None
        return Part(headers, body)


def _headers(head: bytes, at: int) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in head.split(b"\r\n"):
        name, colon, value = line.partition(b":")
        if not colon or not name.strip():
            raise BadRequest(f"multipart/mixed: bad part header {line[:60]!r} before byte {at}")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode(
            "utf-8", "surrogateescape"
        )
    return headers
