"""CRC-32C and the legacy masked checksum (spec §4.7)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from seaweed_py.formats.crc import checksum_matches, crc32c, legacy_checksum


def test_known_crc32c_vectors() -> None:
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"hello") == 0x9A71BB4C
    assert crc32c(b"") == 0
    assert crc32c(memoryview(b"xhello")[1:]) == 0x9A71BB4C


def test_legacy_mask_is_rotate_17_plus_constant() -> None:
    crc = 0x9A71BB4C
    rotated = ((crc >> 15) | (crc << 17)) & 0xFFFFFFFF
    assert legacy_checksum(crc) == (rotated + 0xA282EAD8) % 2**32
    assert legacy_checksum(0) == 0xA282EAD8
    assert legacy_checksum(0xFFFFFFFF) == (0xFFFFFFFF + 0xA282EAD8) % 2**32


@given(st.binary(max_size=300), st.integers(1, 299))
def test_crc_continues_across_chunks(data: bytes, cut: int) -> None:
    assert crc32c(data[cut:], crc32c(data[:cut])) == crc32c(data)


@given(st.binary(max_size=64))
def test_either_stored_form_matches_and_nothing_else(data: bytes) -> None:
    crc = crc32c(data)
    assert checksum_matches(crc, crc)
    assert checksum_matches(legacy_checksum(crc), crc)
    assert not checksum_matches(crc ^ 1, crc) or legacy_checksum(crc) == crc ^ 1
