"""Superblock codec (spec §4.2)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seaweed_py.errors import CorruptVolume
from seaweed_py.formats.replica_placement import ReplicaPlacement
from seaweed_py.formats.superblock import SUPERBLOCK_SIZE, SuperBlock, superblock_length
from seaweed_py.formats.ttl import Ttl


def test_reference_empty_volume_superblock() -> None:
    sb = SuperBlock.decode(bytes.fromhex("0302000000000000"))
    assert sb == SuperBlock(3, ReplicaPlacement.parse("002"), Ttl.EMPTY, 0, b"")
    assert sb.block_size == SUPERBLOCK_SIZE == 8
    assert sb.encode() == bytes.fromhex("0302000000000000")


def test_fields_are_placed_as_documented() -> None:
    sb = SuperBlock(3, ReplicaPlacement.parse("110"), Ttl.parse("3d"), 0x0102)
    assert sb.encode() == bytes([3, 110, 3, 3, 1, 2, 0, 0])


def test_extra_bytes_are_kept_opaque_and_move_the_first_needle() -> None:
    raw = bytes([2, 0, 0, 0, 0, 0, 0, 3]) + b"abc" + b"needle..."
    assert superblock_length(raw[:8]) == 11
    sb = SuperBlock.decode(raw)
    assert sb.extra == b"abc" and sb.block_size == 11
    assert sb.encode() == raw[:11]
    with pytest.raises(CorruptVolume, match="extra"):
        SuperBlock.decode(raw[:9])


def test_version_1_has_no_extra() -> None:
    raw = bytes([1, 0, 0, 0, 0, 0, 0, 3])
    assert superblock_length(raw) == 8
    assert SuperBlock.decode(raw).block_size == 8


@pytest.mark.parametrize("raw", [b"", b"\x03\x00", bytes(8), bytes([4, 0, 0, 0, 0, 0, 0, 0])])
def test_short_or_unknown_superblocks_are_corrupt(raw: bytes) -> None:
    with pytest.raises(CorruptVolume):
        SuperBlock.decode(raw, volume_id=5)


def test_unencodable_values_are_rejected() -> None:
    with pytest.raises(ValueError):
        SuperBlock(version=9).encode()
    with pytest.raises(ValueError):
        SuperBlock(compaction_revision=1 << 16).encode()


@given(
    st.sampled_from([2, 3]),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 6),
    st.integers(0, 0xFFFF),
    st.binary(max_size=40),
)
def test_decode_of_encode_is_identity(
    version: int, placement: int, count: int, unit: int, revision: int, extra: bytes
) -> None:
    sb = SuperBlock(
        version, ReplicaPlacement.from_byte(placement), Ttl(count, unit), revision, extra
    )
    assert SuperBlock.decode(sb.encode()) == sb
