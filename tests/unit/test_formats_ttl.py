"""TTL strings, normalisation and the byte/uint32 forms (spec §4.6, §9.4)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seaweed_py.errors import InvalidTtl
from seaweed_py.formats.ttl import Ttl


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("60m", "1h"),
        ("24h", "1d"),
        ("7d", "1w"),
        ("30d", "1M"),
        ("365d", "1y"),
        ("90m", "90m"),
        ("300m", "5h"),
        ("1000d", "142w"),
        ("3d", "3d"),
        ("90", "90m"),
        ("+5m", "5m"),
        ("255y", "255y"),
        ("256M", "21y"),
        ("0m", ""),
        ("0", ""),
        ("", ""),
        ("14d", "2w"),
        ("2M", "2M"),
        ("12M", "12M"),
        ("61m", "61m"),
        ("1440", "1d"),
    ],
)
def test_parse_normalises_like_the_reference(text: str, normalised: str) -> None:
    assert str(Ttl.parse(text)) == normalised


@pytest.mark.parametrize(
    "text",
    [
        "3s",
        "3x",
        "d",
        "abc",
        "-1d",
        "1.5h",
        " 3d",
        "256y",
        "3 d",
        "9" * 5000 + "d",
        "-" + "9" * 5000,
    ],
)
def test_unknown_units_bad_counts_and_overflow_are_rejected(text: str) -> None:
    with pytest.raises(InvalidTtl):
        Ttl.parse(text)


def test_byte_and_uint32_forms() -> None:
    ttl = Ttl.parse("3d")
    assert ttl.to_bytes() == b"\x03\x03"
    assert ttl.to_uint32() == 0x0303
    assert Ttl.from_bytes(b"\x03\x03") == ttl
    assert Ttl.from_uint32(0x0303) == ttl
    assert ttl.seconds == 3 * 86400
    assert ttl.minutes == 3 * 1440
    assert Ttl.EMPTY.to_bytes() == b"\x00\x00"
    assert Ttl.EMPTY.to_uint32() == 0
    assert Ttl.from_bytes(b"\x00\x00") is Ttl.EMPTY
    assert Ttl(0, 3).to_uint32() == 0


def test_empty_and_unknown_unit_codes_are_falsy() -> None:
    assert not Ttl.EMPTY
    assert str(Ttl.EMPTY) == ""
    assert not Ttl(0, 3)
    odd = Ttl.from_bytes(b"\x05\x09")
    assert (odd.count, odd.unit) == (5, 9)
    assert not odd
    assert str(odd) == ""
    assert odd.to_bytes() == b"\x05\x09"
    assert Ttl.parse("1m")


def test_out_of_byte_range_is_rejected() -> None:
    with pytest.raises(InvalidTtl):
        Ttl(256, 1)


@given(st.integers(0, 255), st.integers(0, 255))
def test_bytes_round_trip(count: int, unit: int) -> None:
    ttl = Ttl(count, unit)
    assert Ttl.from_bytes(ttl.to_bytes()) == ttl


@given(st.integers(1, 255), st.integers(1, 6))
def test_parse_of_str_is_a_fixed_point_with_the_same_duration(count: int, unit: int) -> None:
    ttl = Ttl(count, unit)
    parsed = Ttl.parse(str(ttl))
    assert parsed.seconds == ttl.seconds
    assert Ttl.parse(str(parsed)) == parsed
    assert Ttl.from_uint32(parsed.to_uint32()) == parsed
