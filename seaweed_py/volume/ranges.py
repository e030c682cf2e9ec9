"""HTTP `Range` requests on blobs: parsed into `ByteRange`s, rendered as 206 or multipart.

`plan_ranges(header, size)` answers what to send:

| result | response |
|---|---|
| `None` | the whole body, 200; also for several ranges whose lengths add up to more than the file |
| one range | 206 with `Content-Range: bytes a-b/size` |
| several | 206 `multipart/byteranges`, each part with its own `Content-Range` and `Content-Type` |

A malformed header, a start beyond the end or an inverted range raises `RangeNotSatisfiable`
(416 with `Content-Range: bytes */size`). One deliberate difference: a range that starts exactly
at the end of the file (or a suffix of 0 bytes) is unsatisfiable (416, RFC 9110) where the
reference answers a 206 whose `Content-Range` reads `bytes 5-4/5`. Another: ranges adding up to
more than the file are ignored, as RFC 9110 allows (and Go's `http.ServeContent` does), where the
reference answers 200 with an empty body, which a client cannot tell from an empty blob (quirk A7).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from seaweed_py.errors import RangeNotSatisfiable
from seaweed_py.formats.numbers import I64_MAX, parse_uint

__all__ = ["ByteRange", "multipart_byteranges", "plan_ranges"]


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    length: int

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.start + self.length - 1}/{size}"


def _unsatisfiable(header: str, size: int) -> RangeNotSatisfiable:
    return RangeNotSatisfiable(
        f"invalid range {header!r} for {size} bytes",
        headers={"Content-Range": f"bytes */{size}"},
    )


def _parse_int(text: str) -> int | None:
    value = parse_uint(text, I64_MAX)
    if value is None and text.isascii() and text.isdigit():
        # Past any blob, however many digits: clamped like any other position beyond the end
        # (as the reference does), never handed to int().
        return I64_MAX
    return value


def _parse_one(spec: str, size: int) -> ByteRange | None:
    dash = spec.find("-")
    if dash < 0:
        return None
    first, last = spec[:dash].strip(), spec[dash + 1 :].strip()
    if not first:
        suffix = _parse_int(last)
        if suffix is None or suffix == 0 or size == 0:
            return None
        suffix = min(suffix, size)
        return ByteRange(size - suffix, suffix)
    start = _parse_int(first)
    if start is None or start >= size:
        return None
    if not last:
        return ByteRange(start, size - start)
    end = _parse_int(last)
    if end is None or end < start:
        return None
    return ByteRange(start, min(end, size - 1) - start + 1)


def plan_ranges(header: str | None, size: int) -> tuple[ByteRange, ...] | None:
    """What to send for `Range: header` on a body of `size` bytes (see the module table)."""
    if not header:
        return None
    if not header.startswith("bytes="):
        raise _unsatisfiable(header, size)
    ranges: list[ByteRange] = []
    for spec in header[6:].split(","):
        spec = spec.strip()
        if not spec:
            continue
        parsed = _parse_one(spec, size)
        if parsed is None:
            raise _unsatisfiable(header, size)
        ranges.append(parsed)
    if not ranges:
        return None
    if sum(r.length for r in ranges) > size:
        return None
    return tuple(ranges)


def multipart_byteranges(
    ranges: Sequence[ByteRange],
    size: int,
    content_type: str,
    read: Callable[[int, int], bytes],
    boundary: str,
) -> tuple[bytes, str]:
    """The `multipart/byteranges` body for `ranges` and its Content-Type header value.

    `read(start, length)` returns the bytes of one range.
    """
    chunks: list[bytes] = []
    for i, r in enumerate(ranges):
        head = f"--{boundary}\r\nContent-Range: {r.content_range(size)}\r\n"
        if content_type:
            head += f"Content-Type: {content_type}\r\n"
        chunks.append(("\r\n" if i else "").encode() + head.encode("latin-1") + b"\r\n")
        chunks.append(read(r.start, r.length))
    chunks.append(f"\r\n--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/byteranges; boundary={boundary}"
