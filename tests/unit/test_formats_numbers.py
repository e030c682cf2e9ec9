"""Decimal request text as Go's strconv reads it (formats/numbers.py)."""

from __future__ import annotations

import pytest

from seaweed_py.formats.numbers import I64_MAX, U32_MAX, U64_MAX, parse_int, parse_uint


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("0", U32_MAX, 0),
        ("007", U32_MAX, 7),
        ("4294967295", U32_MAX, U32_MAX),
        ("4294967296", U32_MAX, None),
        ("18446744073709551615", U64_MAX, U64_MAX),
        ("18446744073709551616", U64_MAX, None),
        ("0" * 40 + "5", U32_MAX, 5),  # leading zeros do not count, as for ParseUint
        ("", U64_MAX, None),
        ("-1", U64_MAX, None),
        ("+1", U64_MAX, None),
        (" 1", U64_MAX, None),
        ("1_000", U64_MAX, None),
        ("0x10", U64_MAX, None),
        ("1e3", U64_MAX, None),
        ("\uff11\uff12", U64_MAX, None),  # int() reads fullwidth digits; Go does not
        ("\u0663", U64_MAX, None),  # Arabic-Indic three
        ("9" * 5000, U64_MAX, None),  # past int()'s 4300-digit limit: no ValueError
    ],
)
def test_parse_uint(text: str, limit: int, expected: int | None) -> None:
    assert parse_uint(text, limit) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-9223372036854775808", -I64_MAX - 1),
        ("9223372036854775807", I64_MAX),
        ("9223372036854775808", None),
        ("-9223372036854775809", None),
        ("+5", 5),
        ("-0", 0),
        ("-", None),
        ("+-5", None),
        ("--5", None),
        ("-" + "9" * 5000, None),
    ],
)
def test_parse_int(text: str, expected: int | None) -> None:
    assert parse_int(text, -I64_MAX - 1, I64_MAX) == expected
    assert parse_int("5", 6, 10) is None and parse_int("-5", -4, 10) is None
