"""A raw HTTP client for black-box assertions.

`http.client` rather than aiohttp: it adds no headers of its own (no default Accept-Encoding),
never decompresses, and shows every response header as sent, which is what a parity test
compares. One connection per request keeps tests independent of keep-alive behaviour.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

TIMEOUT = 15.0


@dataclass(frozen=True)
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def header(self, name: str) -> str | None:
        """The value of header `name` (case-insensitive), or None."""
        return self.headers.get(name)

    def json(self) -> Any:
        return json.loads(self.body)

    def media_type(self) -> str:
        """Content-Type without parameters, lower case ('' when absent)."""
        value = self.header("Content-Type") or ""
        return value.split(";", 1)[0].strip().lower()

    def describe(self) -> str:
        """For assertion messages: status, headers and the start of the body."""
        headers = "".join(f"\n  {k}: {v}" for k, v in self.headers.items())
        return f"{self.status}{headers}\n  body: {self.body[:300]!r}"


def request(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = TIMEOUT,
) -> Reply:
    """Send one request to `url` (`host:port/path?query`, scheme optional) and read the reply."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    target = parts.path or "/"
    if parts.query:
        target += f"?{parts.query}"
    assert parts.hostname is not None and parts.port is not None, url
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        conn.close()


def get(url: str, **headers: str) -> Reply:
    return request("GET", url, headers=_header_names(headers))


def head(url: str, **headers: str) -> Reply:
    return request("HEAD", url, headers=_header_names(headers))


def _header_names(headers: Mapping[str, str]) -> dict[str, str]:
    # Keyword arguments spell headers in snake case: if_none_match -> If-None-Match.
    return {"-".join(p.capitalize() for p in k.split("_")): v for k, v in headers.items()}


def multipart(
    data: bytes,
    filename: str | None,
    *,
    field: str = "file",
    content_type: str | None = "application/octet-stream",
    boundary: str = "parityboundary7MA4YWxkTrZu0gW",
) -> tuple[bytes, str]:
    """A multipart/form-data body with one part, as `curl -F field=@file` sends it."""
    disposition = f'form-data; name="{field}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    lines = [f"--{boundary}", f"Content-Disposition: {disposition}"]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    head_bytes = ("\r\n".join(lines) + "\r\n\r\n").encode()
    body = head_bytes + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"
