"""Decimal numbers from request text, as Go's `strconv` reads them.

`parse_uint(text, limit)` is `strconv.ParseUint(text, 10, bits)` with an explicit upper bound:
ASCII digits only (no sign, spaces, `_`, `0x` or other scripts' digits, all of which Python's
`int()` would take), leading zeros allowed. `parse_int(text, low, high)` also takes one leading
`+` or `-`, as `strconv.ParseInt`. Both answer None for anything else or out of range, and
look at the length before converting, so a parameter of thousands of digits is out of range,
never a `ValueError` from Python's 4300-digit limit on `int()`.
"""

from __future__ import annotations

__all__ = ["I64_MAX", "U32_MAX", "U64_MAX", "parse_int", "parse_uint"]

U32_MAX = (1 << 32) - 1
U64_MAX = (1 << 64) - 1
I64_MAX = (1 << 63) - 1


def parse_uint(text: str, limit: int) -> int | None:
    """`text` as a decimal in `0..limit`, else None."""
    if not text or not text.isascii() or not text.isdigit():
        return None
    if len(text.lstrip("0")) > len(str(limit)):
        return None
    value = int(text)
    return value if value <= limit else None


def parse_int(text: str, low: int, high: int) -> int | None:
    """`text` as a decimal in `low..high`, with an optional sign, else None."""
    sign = text[:1]
    magnitude = parse_uint(text[1:] if sign in ("+", "-") else text, max(abs(low), abs(high)))
    if magnitude is None:
        return None
    value = -magnitude if sign == "-" else magnitude
    return value if low <= value <= high else None
