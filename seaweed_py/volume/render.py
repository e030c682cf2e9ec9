"""Response headers of blob reads, built as bytes (spec §3.3).

What a read sends besides the body, in the order the reference decides it:

* `Accept-Ranges: bytes`, `Etag: "<crc hex>"`, `Last-Modified` when the needle has one;
* each stored pair as a header under its own name (`Seaweed-Foo: bar` uploaded → `Foo: bar`);
* `Content-Type`: the stored MIME unless it is `application/octet-stream`, else from the
  extension of the file name (URL name, else stored name); GET bodies without either are sniffed
  like Go's server does, HEAD gets none;
* `Content-Disposition: inline|attachment; filename=<name>` (attachment when `dl` is true),
  formatted as Go `mime.FormatMediaType`;
* S3-style `response-*` query overrides.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote

import orjson

from seaweed_py.volume.conditional import http_date
from seaweed_py.volume.mime import extension, type_by_extension

__all__ = [
    "OVERRIDES",
    "content_disposition",
    "content_type_for",
    "etag_of",
    "last_modified_line",
    "pair_lines",
    "parse_bool",
]

_OCTET = "application/octet-stream"

OVERRIDES: tuple[tuple[str, str], ...] = (
    ("response-cache-control", "Cache-Control"),
    ("response-content-disposition", "Content-Disposition"),
    ("response-content-encoding", "Content-Encoding"),
    ("response-content-language", "Content-Language"),
    ("response-content-type", "Content-Type"),
    ("response-expires", "Expires"),
)
"""Query parameter → the response header it sets (S3 pass-through)."""


def parse_bool(text: str) -> bool:
    """Go `strconv.ParseBool` truth: `1 t T TRUE true True`."""
    return text in ("1", "t", "T", "TRUE", "true", "True")


def etag_of(checksum: int) -> str:
    """The quoted ETag of a stored checksum: `"9a71bb4c"`."""
    return f'"{checksum:08x}"'


class _LastModifiedCache:
    """`Last-Modified` lines for the last few seconds seen: most reads hit the same ones."""

    __slots__ = ("_lines",)

    def __init__(self) -> None:
        self._lines: dict[int, bytes] = {}

    def line(self, seconds: int) -> bytes:
        line = self._lines.get(seconds)
        if line is None:
            if len(self._lines) > 4096:
                self._lines.clear()
            line = f"Last-Modified: {http_date(seconds)}\r\n".encode()
            self._lines[seconds] = line
        return line


last_modified_line = _LastModifiedCache().line


def pair_lines(pairs: bytes) -> bytes:
    """Header lines of the stored `Seaweed-*` pairs (JSON object); unusable entries skipped."""
    try:
        obj = orjson.loads(pairs)
    except orjson.JSONDecodeError:
        return b""
    if not isinstance(obj, dict):
        return b""
    out = []
    for name, value in obj.items():
        text = str(value)
        if name and not any(c in name for c in ":\r\n ") and "\r" not in text and "\n" not in text:
            out.append(f"{name}: {text}\r\n")
    return "".join(out).encode("utf-8", "surrogateescape")


def content_type_for(stored_mime: str, filename: str) -> str:
    """Stored MIME unless octet-stream, else by the file name's extension; `""` if unknown."""
    if stored_mime and not stored_mime.startswith(_OCTET):
        return stored_mime
    return type_by_extension(extension(filename))


# Go `mime` token: printable ASCII except space and the tspecials ()<>@,;:\"/[]?=
_is_token = re.compile(r"[!#-\'*+\-.0-9A-Z^-~]+").fullmatch


def content_disposition(filename: str, attachment: bool) -> str:
    """Go `mime.FormatMediaType(kind, {"filename": name})`."""
    kind = "attachment" if attachment else "inline"
    if _is_token(filename):
        return f"{kind}; filename={filename}"
    if filename.isascii():
        escaped = filename.replace("\\", "\\\\").replace('"', '\\"')
        return f'{kind}; filename="{escaped}"'
    return f"{kind}; filename*=utf-8''{quote(filename, safe='')}"


def override_headers(query: Mapping[str, str]) -> dict[str, str]:
    """The `response-*` overrides present in `query`, as response headers."""
    return {header: query[param] for param, header in OVERRIDES if param in query}
