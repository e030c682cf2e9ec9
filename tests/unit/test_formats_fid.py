"""File id parsing and formatting against the reference's test vectors (spec §1)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seaweed_py.errors import InvalidFileId
from seaweed_py.formats.fid import (
    FileId,
    format_key_cookie,
    parse_file_id,
    parse_key_cookie,
    parse_volume_id,
)
from seaweed_py.types import Cookie, NeedleId, VolumeId


def fid(vid: int, key: int, cookie: int) -> FileId:
    return FileId(VolumeId(vid), NeedleId(key), Cookie(cookie))


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (fid(3, 1, 0x637037D6), "3,01637037d6"),
        (fid(100, 0x1234567890123456, 0x78901234), "100,123456789012345678901234"),
        (fid(7, 0x1234, 0), "7,123400000000"),
        (fid(7, 0x123, 1), "7,012300000001"),
        (fid(4294967295, 2**64 - 1, 2**32 - 1), "4294967295,ffffffffffffffffffffffff"),
    ],
)
def test_canonical_form_drops_leading_zero_bytes_of_the_key(value: FileId, text: str) -> None:
    assert str(value) == text
    assert value.key_cookie() == text.split(",", 1)[1]
    assert parse_file_id(text) == value


@pytest.mark.parametrize(
    ("text", "key", "cookie"),
    [
        ("4ed4c8116e41", 0x4ED4, 0xC8116E41),
        ("4ed401116e41", 0x4ED4, 0x01116E41),
        ("ed400116e41", 0xED4, 0x00116E41),
        ("fed4c8114ed4c811f0116e41", 0xFED4C8114ED4C811, 0xF0116E41),
        ("4ED4C8116E41", 0x4ED4, 0xC8116E41),
        ("01637037d6_1", 2, 0x637037D6),
        ("01637037d6_0", 1, 0x637037D6),
        ("ffffffffffffff00000000_255", 0xFFFFFFFFFFFFFF + 255, 0),
    ],
)
def test_reference_parse_vectors(text: str, key: int, cookie: int) -> None:
    assert parse_key_cookie(text) == (key, cookie)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("4ed4c811", "too short"),
        ("", "too short"),
        ("4ed4c8114ed4c8114ed4c8111", "too long"),
        ("helloworld", "not hex"),
        ("0x1637037d6", "not hex"),
        ("01_637037d6", "delta"),
        (" 01637037d6", "not hex"),
        ("ffffffffffffffff00000000_1", "overflows"),
        ("01637037d6_", "delta"),
        ("01637037d6_-1", "delta"),
        ("01637037d6_x", "delta"),
        ("01637037d6_" + "9" * 5000, "overflows"),  # no ValueError from int()'s digit limit
    ],
)
def test_malformed_key_cookie_is_rejected_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidFileId, match=reason):
        parse_key_cookie(text)


@pytest.mark.parametrize(
    "text",
    [
        ",01637037d6",
        "3",
        "3;01637037d6",
        "-3,01637037d6",
        "+3,01637037d6",
        "3 ,01637037d6",
        "100, 12345678",
        "4294967296,01637037d6",
        "٣,01637037d6",
        "3,01637037d6,",
        "9" * 5000 + ",01637037d6",
    ],
)
def test_malformed_file_ids_are_rejected(text: str) -> None:
    with pytest.raises(InvalidFileId):
        parse_file_id(text)


def test_first_comma_splits_and_vid_is_decimal() -> None:
    assert parse_file_id("100,abcd0000abcd") == fid(100, 0xABCD, 0x0000ABCD)
    assert parse_volume_id("0042") == 42
    assert parse_volume_id("4294967295") == 2**32 - 1
    with pytest.raises(InvalidFileId):
        parse_volume_id("")


def test_key_zero_formats_like_the_reference_and_does_not_parse_back() -> None:
    assert format_key_cookie(0, 0x12) == "00000012"
    with pytest.raises(InvalidFileId, match="too short"):
        parse_file_id(str(fid(1, 0, 0x12)))


@pytest.mark.parametrize("bad", [(-1, 1, 1), (2**32, 1, 1), (1, 2**64, 1), (1, 1, 2**32)])
def test_out_of_range_components_are_rejected(bad: tuple[int, int, int]) -> None:
    with pytest.raises(InvalidFileId):
        fid(*bad)


@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 2**64 - 1),
    st.integers(0, 2**32 - 1),
)
def test_format_then_parse_round_trips(vid: int, key: int, cookie: int) -> None:
    value = fid(vid, key, cookie)
    text = str(value)
    assert parse_file_id(text) == value
    assert parse_file_id(text.upper()) == value
    assert len(text.split(",")[1]) % 2 == 0


@given(st.integers(1, 2**63), st.integers(0, 2**32 - 1), st.integers(0, 2**63 - 1))
def test_batch_suffix_adds_to_the_key(key: int, cookie: int, delta: int) -> None:
    assert parse_key_cookie(f"{format_key_cookie(key, cookie)}_{delta}") == (key + delta, cookie)


def test_the_fast_and_the_step_by_step_paths_agree() -> None:
    assert parse_file_id("00000000000003,01637037d6") == fid(3, 1, 0x637037D6)
    assert parse_file_id("3,01637037d6_00000000000000000001") == fid(3, 2, 0x637037D6)
    with pytest.raises(InvalidFileId, match="overflows"):
        parse_file_id("3,01637037d6_18446744073709551615")
    with pytest.raises(InvalidFileId, match="out of range"):
        parse_file_id("9999999999,01637037d6")
