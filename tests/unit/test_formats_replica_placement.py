"""Replica placement codes (spec §5.1)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seaweed_py.errors import InvalidReplicaPlacement
from seaweed_py.formats.replica_placement import ReplicaPlacement


@pytest.mark.parametrize(
    ("text", "canonical", "byte", "copies"),
    [
        ("", "000", 0, 1),
        ("1", "001", 1, 2),
        ("11", "011", 11, 3),
        ("001", "001", 1, 2),
        ("010", "010", 10, 2),
        ("100", "100", 100, 2),
        ("110", "110", 110, 3),
        ("200", "200", 200, 3),
        ("255", "255", 255, 13),
        (" 002 ", "002", 2, 3),
    ],
)
def test_parse_pads_and_encodes(text: str, canonical: str, byte: int, copies: int) -> None:
    rp = ReplicaPlacement.parse(text)
    assert str(rp) == canonical
    assert rp.to_byte() == byte
    assert rp.copy_count == copies
    assert ReplicaPlacement.from_byte(byte) == rp


def test_fields_name_the_digits() -> None:
    rp = ReplicaPlacement.parse("123")
    assert (rp.diff_data_center, rp.diff_rack, rp.same_rack) == (1, 2, 3)


@pytest.mark.parametrize("text", ["256", "300", "999", "0001", "0:0", "-01", "abc", "1a"])
def test_invalid_codes_are_rejected(text: str) -> None:
    with pytest.raises(InvalidReplicaPlacement):
        ReplicaPlacement.parse(text)


def test_byte_out_of_range_is_rejected() -> None:
    with pytest.raises(InvalidReplicaPlacement):
        ReplicaPlacement.from_byte(256)
    with pytest.raises(InvalidReplicaPlacement):
        ReplicaPlacement(0, 0, 10)


@given(st.integers(0, 255))
def test_every_byte_round_trips_through_the_string(value: int) -> None:
    rp = ReplicaPlacement.from_byte(value)
    assert ReplicaPlacement.parse(str(rp)) == rp
    assert rp.to_byte() == value
