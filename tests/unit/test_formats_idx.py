"""`.idx` entries with 4- and 5-byte offsets (spec §4.9, §4.10)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from seaweed_py.errors import CorruptVolume
from seaweed_py.formats.idx import (
    IDX4,
    IDX5,
    IdxLayout,
    count_entries,
    decode_entries,
    decode_entry,
    encode_entries,
    encode_entry,
    iter_entries,
    layout_for,
)


def test_spec_examples() -> None:
    assert encode_entry(1, 8, 36, IDX4).hex() == "00000000000000010000000100000024"
    assert encode_entry(1, 80, -1, IDX4).hex() == "00000000000000010000000affffffff"


def test_five_byte_offset_puts_the_high_byte_after_the_low_four() -> None:
    byte_offset = ((0xAB << 32) | 0x01020304) * 8
    entry = encode_entry(0x1122, byte_offset, 7, IDX5)
    assert entry.hex() == "000000000000112201020304ab00000007"
    assert decode_entry(entry, 0, IDX5) == (0x1122, byte_offset, 7)


def test_layouts() -> None:
    assert (IDX4.entry_size, IDX5.entry_size) == (16, 17)
    assert IDX4.max_dat_size == 32 * 2**30
    assert IDX5.max_dat_size == 8 * 2**40
    assert IdxLayout(5) is IDX5 and IDX4.offset_bytes == 4


@pytest.mark.parametrize(
    ("offset", "layout"), [(12, IDX4), (-8, IDX4), (32 * 2**30, IDX4), (8 * 2**40, IDX5)]
)
def test_unencodable_offsets_are_rejected(offset: int, layout: IdxLayout) -> None:
    with pytest.raises(ValueError):
        encode_entry(1, offset, 1, layout)


entries = st.lists(
    st.tuples(
        st.integers(0, 2**64 - 1), st.integers(0, 2**40 - 1), st.integers(-(2**31), 2**31 - 1)
    ),
    max_size=50,
)


@given(entries, st.sampled_from([IDX4, IDX5]))
def test_vectorised_and_iterative_decoders_agree_with_the_encoder(
    rows: list[tuple[int, int, int]], layout: IdxLayout
) -> None:
    limit = layout.max_dat_size // 8
    expected = [(k, (units % limit) * 8, s) for k, units, s in rows]
    buf = b"".join(encode_entry(k, o, s, layout) for k, o, s in expected)
    keys, offsets, sizes = decode_entries(buf, layout)
    assert (keys.dtype.type, offsets.dtype.type, sizes.dtype.type) == (
        np.uint64,
        np.uint64,
        np.int32,
    )
    assert list(zip(keys.tolist(), offsets.tolist(), sizes.tolist(), strict=True)) == expected
    assert list(iter_entries(buf, layout)) == expected
    assert encode_entries(keys, offsets, sizes, layout) == buf


@pytest.mark.parametrize(("offset", "layout"), [(12, IDX4), (32 * 2**30, IDX4), (8 * 2**40, IDX5)])
def test_unencodable_offsets_are_rejected_in_bulk_too(offset: int, layout: IdxLayout) -> None:
    keys = np.array([1, 2], np.uint64)
    offsets = np.array([8, offset], np.uint64)
    with pytest.raises(ValueError, match="not encodable"):
        encode_entries(keys, offsets, np.array([1, 1], np.int32), layout)
    with pytest.raises(ValueError, match="differ in length"):
        encode_entries(keys, offsets[:1], np.array([1, 1], np.int32), layout)


def test_partial_last_entry_is_detected_or_ignored_on_request() -> None:
    buf = encode_entry(1, 8, 5) + encode_entry(2, 16, 6)[:9]
    assert count_entries(len(buf)) == (1, 9)
    with pytest.raises(CorruptVolume, match="partial"):
        decode_entries(buf, IDX4)
    with pytest.raises(CorruptVolume, match="partial"):
        list(iter_entries(buf, IDX4))
    keys, offsets, sizes = decode_entries(buf, IDX4, allow_partial=True)
    assert (keys.tolist(), offsets.tolist(), sizes.tolist()) == ([1], [8], [5])
    assert list(iter_entries(buf, IDX4, allow_partial=True)) == [(1, 8, 5)]


def test_empty_index_decodes_to_empty_columns() -> None:
    keys, offsets, sizes = decode_entries(b"", IDX5)
    assert len(keys) == len(offsets) == len(sizes) == 0


@pytest.mark.parametrize(
    ("key", "size"), [(-1, 0), (1 << 64, 0), (1, 1 << 31), (1, -(1 << 31) - 1)]
)
def test_out_of_range_keys_and_sizes_are_rejected(key: int, size: int) -> None:
    with pytest.raises(ValueError):
        encode_entry(key, 8, size)


def test_layout_for_names_the_layout_of_a_bytes_offset_and_refuses_others() -> None:
    assert layout_for(0) is IDX4  # volumes from before the field existed
    assert layout_for(4) is IDX4
    assert layout_for(5) is IDX5
    with pytest.raises(CorruptVolume, match="bytesOffset 7"):
        layout_for(7)
