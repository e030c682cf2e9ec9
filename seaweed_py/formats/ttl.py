"""Time-to-live values: strings like `3d`, the 2-byte on-disk form and the uint32 wire form.

| form | layout |
|---|---|
| bytes (superblock offset 2, needle TTL field) | `[count u8, unit u8]` |
| uint32 (heartbeats) | `count << 8 \\| unit`, 0 when count is 0 |
| string | `<count><unit>`, `""` for no TTL |

Unit codes: 0 none, 1 `m` minute, 2 `h` hour, 3 `d` day, 4 `w` week, 5 `M` month (30 days),
6 `y` year (365 days). Count 0 or unit 0 means "no TTL".

Parsing follows the reference (spec §9.4): the last character is the unit, a trailing digit
means the whole string is minutes, and the value is normalised to the largest unit that
represents it exactly with a count below 256, else minutes, else the smallest unit whose
truncated count fits (lossy: `1000d` → `142w`).

Where the reference silently stores "no TTL" — an unknown unit such as `3s` (quirk A13), a
negative count, or more than 255 years — we raise `InvalidTtl`: a TTL the caller asked for and
did not get means data that never expires, which the caller should hear about.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import ClassVar

from seaweed_py.errors import InvalidTtl

__all__ = ["TTL_STRUCT", "Ttl"]

TTL_STRUCT = struct.Struct(">BB")
assert TTL_STRUCT.size == 2

EMPTY, MINUTE, HOUR, DAY, WEEK, MONTH, YEAR = range(7)

_MINUTE_S = 60
_HOUR_S = 3600
_DAY_S = 24 * _HOUR_S
_WEEK_S = 7 * _DAY_S
_MONTH_S = 30 * _DAY_S
_YEAR_S = 365 * _DAY_S

_UNIT_SECONDS = (0, _MINUTE_S, _HOUR_S, _DAY_S, _WEEK_S, _MONTH_S, _YEAR_S)
_UNIT_CHARS = ("", "m", "h", "d", "w", "M", "y")
_UNIT_BY_CHAR = {c: i for i, c in enumerate(_UNIT_CHARS) if c}

# Exact fits, largest unit first; then lossy fits, smallest unit first (after minutes).
_EXACT_ORDER = (YEAR, MONTH, WEEK, DAY, HOUR)
_LOSSY_ORDER = (HOUR, DAY, WEEK, MONTH, YEAR)

# strconv.Atoi syntax: optional sign, ASCII digits.
_COUNT_RE = re.compile(r"[+-]?[0-9]+")
_MAX_COUNT_DIGITS = 18


@dataclass(frozen=True, slots=True)
class Ttl:
    count: int = 0
    unit: int = EMPTY

    EMPTY: ClassVar[Ttl]

    def __post_init__(self) -> None:
        if not (0 <= self.count <= 255 and 0 <= self.unit <= 255):
            raise InvalidTtl(f"ttl count and unit must be bytes: ({self.count}, {self.unit})")

    @classmethod
    def parse(cls, text: str) -> Ttl:
        """Parse a TTL string such as `3d`, `90` (minutes) or `""` (none), normalised."""
        cached = _PARSE_CACHE.get(text)
        if cached is not None:
            return cached
        if text == "":
            return _EMPTY
        unit_char = text[-1]
        if "0" <= unit_char <= "9":
            count_text, unit = text, MINUTE
        else:
            count_text = text[:-1]
            found = _UNIT_BY_CHAR.get(unit_char)
            if found is None:
                raise InvalidTtl(f"unknown ttl unit {unit_char!r} in {text!r} (use m h d w M y)")
            unit = found
        if not _COUNT_RE.fullmatch(count_text):
            raise InvalidTtl(f"ttl count is not a number: {text!r}")
        # A count this long is past 255 years whatever its unit; refused before int(), which
        # takes at most 4300 digits.
        if len(count_text.lstrip("+-0")) > _MAX_COUNT_DIGITS:
            count = -1 if count_text.startswith("-") else 1 << 64
        else:
            count = int(count_text)
        if count < 0:
            raise InvalidTtl(f"ttl must not be negative: {text!r}")
        return cls.from_seconds(count * _UNIT_SECONDS[unit], source=text)

    @classmethod
    def from_seconds(cls, seconds: int, *, source: str | None = None) -> Ttl:
        """The normalised TTL for a duration in seconds (0 → no TTL)."""
        if seconds == 0:
            return _EMPTY
        for unit in _EXACT_ORDER:
            q, r = divmod(seconds, _UNIT_SECONDS[unit])
            if r == 0 and q < 256:
                return cls(q, unit)
        if seconds // _MINUTE_S < 256:
            return cls(seconds // _MINUTE_S, MINUTE)
        for unit in _LOSSY_ORDER:
            q = seconds // _UNIT_SECONDS[unit]
            if q < 256:
                return cls(q, unit)
        raise InvalidTtl(f"ttl too long (at most 255 years): {source or f'{seconds}s'!r}")

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> Ttl:
        """Decode the 2-byte form; unknown unit codes are kept (they behave as no TTL)."""
        count, unit = TTL_STRUCT.unpack(data)
        return _pair(count, unit)

    def to_bytes(self) -> bytes:
        return TTL_STRUCT.pack(self.count, self.unit)

    @classmethod
    def from_uint32(cls, value: int) -> Ttl:
        """Decode the heartbeat form `count << 8 | unit` (only the low 16 bits count)."""
        return _pair((value >> 8) & 0xFF, value & 0xFF)

    def to_uint32(self) -> int:
        if self.count == 0:
            return 0
        return (self.count << 8) | self.unit

    @property
    def seconds(self) -> int:
        """Duration in seconds; 0 for no TTL and for unknown unit codes."""
        if self.unit >= len(_UNIT_SECONDS):
            return 0
        return self.count * _UNIT_SECONDS[self.unit]

    @property
    def minutes(self) -> int:
        return self.seconds // _MINUTE_S

    def __bool__(self) -> bool:
        return self.seconds > 0

    def __str__(self) -> str:
        if self.count == 0 or not 0 < self.unit < len(_UNIT_CHARS):
            return ""
        return f"{self.count}{_UNIT_CHARS[self.unit]}"


_EMPTY = Ttl()
Ttl.EMPTY = _EMPTY
_KNOWN_UNITS = len(_UNIT_SECONDS)
# Every (count, known unit) pair, so decoding a needle's TTL allocates nothing.
_BY_PAIR: tuple[Ttl, ...] = tuple(
    _EMPTY if c == u == 0 else Ttl(c, u) for c in range(256) for u in range(_KNOWN_UNITS)
)


def _pair(count: int, unit: int) -> Ttl:
    if unit < _KNOWN_UNITS:
        return _BY_PAIR[count * _KNOWN_UNITS + unit]
    return Ttl(count, unit)


# Canonical strings, so parsing the TTLs that heartbeats and assigns repeat is a lookup.
_PARSE_CACHE: dict[str, Ttl] = {"": _EMPTY}
for _t in _BY_PAIR:
    if _t and Ttl.from_seconds(_t.seconds) == _t:
        _PARSE_CACHE[str(_t)] = _t
del _t
