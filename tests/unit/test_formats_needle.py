"""Needle records: the spec's worked example, padding, tombstones, both CRC forms, malformed
records, streaming halves, and decode(encode(x)) == x over every field combination."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seaweed_py.errors import BadRequest, CorruptNeedle, CorruptVolume
from seaweed_py.formats.crc import crc32c, legacy_checksum
from seaweed_py.formats.needle import (
    FLAG_CHUNK_MANIFEST,
    FLAG_GZIP,
    FLAG_HAS_LAST_MODIFIED,
    FLAG_HAS_MIME,
    FLAG_HAS_NAME,
    FLAG_HAS_PAIRS,
    FLAG_HAS_TTL,
    NEEDLE_HEAD_SIZE,
    Needle,
    body_size,
    decode_footer,
    decode_header,
    decode_needle,
    decode_needle_meta,
    encode_needle,
    encode_needle_head,
    encode_needle_tail,
    encode_tombstone,
    padding_length,
    record_length,
)
from seaweed_py.formats.ttl import Ttl
from seaweed_py.types import Cookie, NeedleId

SPEC_EXAMPLE = bytes.fromhex(
    "637037d6000000000000000100000024"
    "0000000568656c6c6f0e0968656c6c6f"
    "2e7478740a746578742f706c61696e00"
    "6553f1009a71bb4c17979cfe3d85cd15"
    "0000000000000000"
)


def hello() -> Needle:
    return Needle.build(
        Cookie(0x637037D6),
        NeedleId(1),
        b"hello",
        name=b"hello.txt",
        mime=b"text/plain",
        last_modified=1700000000,
        append_at_ns=1700000000123456789,
    )


def test_spec_worked_example_encodes_byte_exactly() -> None:
    n = hello()
    assert n.flags == 0x0E
    assert n.checksum == 0x9A71BB4C
    assert n.etag == "9a71bb4c"
    assert body_size(n) == 36
    assert encode_needle(n) == SPEC_EXAMPLE
    assert len(SPEC_EXAMPLE) == 72


def test_spec_worked_example_decodes() -> None:
    assert decode_needle(SPEC_EXAMPLE) == hello()
    assert decode_header(SPEC_EXAMPLE) == (0x637037D6, 1, 36)
    assert decode_needle(memoryview(SPEC_EXAMPLE)) == hello()
    assert decode_needle(bytearray(SPEC_EXAMPLE[:64])) == hello()  # padding may be absent


@pytest.mark.parametrize(
    ("size", "v2_pad", "v2_len", "v3_pad", "v3_len"),
    # The spec's table prints 4 for (36, v2); its own rule and its record length say 8.
    [(0, 4, 24, 4, 32), (3, 1, 24, 1, 32), (4, 8, 32, 8, 40), (36, 8, 64, 8, 72)],
)
def test_padding_is_one_to_eight_bytes_never_zero(
    size: int, v2_pad: int, v2_len: int, v3_pad: int, v3_len: int
) -> None:
    assert (padding_length(size, 2), record_length(size, 2)) == (v2_pad, v2_len)
    assert (padding_length(size, 3), record_length(size, 3)) == (v3_pad, v3_len)


@given(st.integers(0, 10_000), st.sampled_from([2, 3]))
def test_record_length_is_aligned_and_padding_in_range(size: int, version: int) -> None:
    assert record_length(size, version) % 8 == 0
    assert 1 <= padding_length(size, version) <= 8


def test_negative_sizes_have_no_record_length() -> None:
    with pytest.raises(ValueError):
        record_length(-1)
    with pytest.raises(ValueError):
        padding_length(-1)


def test_tombstone_is_32_bytes_in_v3_and_carries_the_deleted_checksum() -> None:
    record = encode_tombstone(0x11223344, 0x2A, checksum=0xDEADBEEF, append_at_ns=5)
    assert len(record) == 32
    assert record[12:16] == b"\x00\x00\x00\x00"
    assert record[28:] == bytes(4)
    n = decode_needle(record)
    assert (n.cookie, n.key, n.data, n.checksum, n.append_at_ns) == (
        0x11223344,
        0x2A,
        b"",
        0xDEADBEEF,
        5,
    )
    assert len(encode_tombstone(1, 2, 3, version=2)) == 24


def test_empty_data_omits_the_whole_body_and_loses_metadata() -> None:
    n = Needle.build(Cookie(7), NeedleId(9), b"", name=b"empty.txt", mime=b"text/plain")
    record = encode_needle(n, append_at_ns=99)
    assert len(record) == 32
    assert decode_header(record) == (7, 9, 0)
    decoded = decode_needle(record)
    assert decoded.name == b"" and decoded.flags == 0 and decoded.append_at_ns == 99
    assert body_size(n) == 0


def test_legacy_masked_checksum_is_accepted_and_reported_raw() -> None:
    record = bytearray(SPEC_EXAMPLE)
    struct.pack_into(">I", record, 52, legacy_checksum(0x9A71BB4C))
    assert decode_needle(bytes(record)).checksum == 0x9A71BB4C
    assert decode_needle(bytes(record), verify=False).checksum == legacy_checksum(0x9A71BB4C)


def test_flipped_data_byte_is_a_crc_error_naming_volume_offset_and_key() -> None:
    record = bytearray(SPEC_EXAMPLE)
    record[21] ^= 0x01
    with pytest.raises(CorruptNeedle, match=r"crc mismatch.*volume_id=7, offset=81920, key=1"):
        decode_needle(bytes(record), volume_id=7, offset=81920)
    assert decode_needle(bytes(record), verify=False).data == b"hdllo"


def test_version_2_has_no_timestamp() -> None:
    n = Needle.build(Cookie(1), NeedleId(2), b"abc", name=b"a")
    record = encode_needle(n, version=2)
    assert len(record) == record_length(body_size(n), 2)
    assert decode_needle(record, 2) == n


def test_version_1_body_is_only_data() -> None:
    data = b"v1 data"
    record = struct.pack(">IQi", 5, 6, len(data)) + data + struct.pack(">I", crc32c(data))
    n = decode_needle(record + bytes(padding_length(len(data), 1)), 1)
    assert (n.cookie, n.key, n.data, n.flags) == (5, 6, data, 0)


@pytest.mark.parametrize("version", [0, 4])
def test_unknown_versions_are_rejected(version: int) -> None:
    with pytest.raises(CorruptVolume):
        decode_needle(SPEC_EXAMPLE, version)
    with pytest.raises(CorruptVolume):
        encode_needle(hello(), version)


def _with_body(body: bytes, checksum: int = 0) -> bytes:
    head = struct.pack(">IQi", 1, 2, len(body))
    return head + body + struct.pack(">IQ", checksum, 0) + bytes(8)


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (SPEC_EXAMPLE[:15], "shorter than the needle header"),
        (SPEC_EXAMPLE[:60], "cannot hold body size"),
        (struct.pack(">IQi", 1, 2, -5) + bytes(16), "cannot hold body size"),
        (_with_body(b"\x00\x01"), "cannot hold DataSize"),
        (_with_body(struct.pack(">I", 99) + b"abc"), "DataSize runs past the body"),
        (_with_body(struct.pack(">I", 1) + b"x" + bytes([FLAG_HAS_NAME, 9]) + b"ab"), "name"),
        (_with_body(struct.pack(">I", 1) + b"x" + bytes([FLAG_HAS_MIME, 9]) + b"ab"), "mime"),
        (_with_body(struct.pack(">I", 1) + b"x" + bytes([FLAG_HAS_LAST_MODIFIED, 1])), "last"),
        (_with_body(struct.pack(">I", 1) + b"x" + bytes([FLAG_HAS_TTL, 1])), "ttl"),
        (_with_body(struct.pack(">I", 1) + b"x" + bytes([FLAG_HAS_PAIRS, 1])), "pairs size"),
        (_with_body(struct.pack(">I", 1) + b"x" + bytes([FLAG_HAS_PAIRS, 0, 9, 1])), "pairs"),
        (
            _with_body(struct.pack(">I", 1) + b"x" + bytes([0x0E, 1]) + b"n" + bytes([30])),
            "mime",
        ),
    ],
)
def test_malformed_records_raise_corrupt_needle(record: bytes, reason: str) -> None:
    with pytest.raises(CorruptNeedle, match=reason):
        decode_needle(record, verify=False)


def test_fields_announced_but_absent_read_as_empty_like_the_reference() -> None:
    body = struct.pack(">I", 1) + b"x" + bytes([FLAG_HAS_NAME | FLAG_HAS_MIME])
    n = decode_needle(_with_body(body, crc32c(b"x")))
    assert (n.data, n.flags, n.name, n.mime) == (b"x", 0x06, b"", b"")
    trailing = struct.pack(">I", 1) + b"x" + bytes([FLAG_HAS_NAME, 1]) + b"n" + b"junk"
    assert decode_needle(_with_body(trailing, crc32c(b"x"))).name == b"n"


def test_upload_shaped_needle_with_trailing_bytes_takes_the_general_path() -> None:
    body = struct.pack(">I", 1) + b"x" + bytes([0x0E, 1]) + b"n" + bytes([1]) + b"m"
    n = decode_needle(_with_body(body + bytes(5) + b"zz", crc32c(b"x")))
    assert (n.name, n.mime, n.last_modified) == (b"n", b"m", 0)


def test_streaming_head_and_tail_surround_the_data() -> None:
    n = Needle.build(
        Cookie(3), NeedleId(4), b"x" * 1000, name=b"big.bin", ttl=Ttl.parse("3d"), pairs=b"{}"
    )
    whole = encode_needle(n, append_at_ns=77)
    head = encode_needle_head(
        Needle(n.cookie, n.key, b"", n.flags, n.name, ttl=n.ttl, pairs=n.pairs), 1000
    )
    stream_meta = Needle(n.cookie, n.key, b"", n.flags, n.name, ttl=n.ttl, pairs=n.pairs)
    tail = encode_needle_tail(stream_meta, 1000, checksum=n.checksum, append_at_ns=77)
    assert head + n.data + tail == whole
    assert len(head) == NEEDLE_HEAD_SIZE
    meta, data_size = decode_needle_meta(whole[:NEEDLE_HEAD_SIZE], whole[NEEDLE_HEAD_SIZE + 1000 :])
    assert data_size == 1000
    assert meta == Needle(
        n.cookie,
        n.key,
        b"",
        n.flags,
        n.name,
        ttl=n.ttl,
        pairs=n.pairs,
        checksum=n.checksum,
        append_at_ns=77,
    )


def test_streaming_an_empty_body_matches_the_empty_record() -> None:
    n = Needle(Cookie(3), NeedleId(4), checksum=5, append_at_ns=6)
    assert encode_needle_head(n) + encode_needle_tail(n) == encode_needle(n)
    meta, data_size = decode_needle_meta(encode_needle(n)[:16], encode_needle(n)[16:])
    assert (data_size, meta) == (0, n)


def test_decode_needle_meta_rejects_inconsistent_parts() -> None:
    with pytest.raises(CorruptNeedle, match="tail truncated"):
        decode_needle_meta(SPEC_EXAMPLE[:20], SPEC_EXAMPLE[25:40])
    bad_head = SPEC_EXAMPLE[:16] + struct.pack(">I", 1000)
    with pytest.raises(CorruptNeedle, match="DataSize"):
        decode_needle_meta(bad_head, SPEC_EXAMPLE[25:])


def test_build_sets_flags_for_the_fields_given() -> None:
    n = Needle.build(
        Cookie(1),
        NeedleId(1),
        b"d",
        name=b"",
        mime=b"",
        last_modified=0,
        ttl=Ttl.EMPTY,
        pairs=b"",
        gzipped=True,
        chunk_manifest=True,
    )
    assert n.flags == 0xFF & ~0x40
    assert n.is_gzipped and n.is_chunk_manifest
    assert Needle.build(Cookie(1), NeedleId(1), b"d").flags == 0


def test_encoding_rejects_fields_the_format_cannot_hold() -> None:
    base = dict(cookie=Cookie(1), key=NeedleId(1), data=b"d")
    with pytest.raises(BadRequest, match="file name"):
        encode_needle(Needle.build(**base, name=b"n" * 256))  # type: ignore[arg-type]
    with pytest.raises(BadRequest, match="mime"):
        encode_needle(Needle.build(**base, mime=b"m" * 256))  # type: ignore[arg-type]
    with pytest.raises(BadRequest, match="pairs"):
        encode_needle(Needle.build(**base, pairs=b"p" * 65536))  # type: ignore[arg-type]
    with pytest.raises(BadRequest, match="last-modified"):
        encode_needle(Needle.build(**base, last_modified=1 << 40))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="do not announce"):
        encode_needle(Needle(Cookie(1), NeedleId(1), b"d", 0, name=b"x"))
    with pytest.raises(ValueError, match="do not announce"):
        encode_needle(Needle(Cookie(1), NeedleId(1), b"d", 0, ttl=Ttl.parse("1d")))
    with pytest.raises(ValueError, match="one byte"):
        encode_needle(Needle(Cookie(1), NeedleId(1), b"d", 0x100))


@st.composite
def needles(draw: st.DrawFn, version: int = 3) -> Needle:
    flags = draw(st.integers(0, 255))
    data = draw(st.binary(min_size=1, max_size=200))
    return Needle(
        cookie=Cookie(draw(st.integers(0, 2**32 - 1))),
        key=NeedleId(draw(st.integers(0, 2**64 - 1))),
        data=data,
        flags=flags,
        name=draw(st.binary(max_size=255)) if flags & FLAG_HAS_NAME else b"",
        mime=draw(st.binary(max_size=255)) if flags & FLAG_HAS_MIME else b"",
        last_modified=draw(st.integers(0, 2**40 - 1)) if flags & FLAG_HAS_LAST_MODIFIED else 0,
        ttl=Ttl(draw(st.integers(0, 255)), draw(st.integers(0, 255)))
        if flags & FLAG_HAS_TTL
        else Ttl.EMPTY,
        pairs=draw(st.binary(max_size=300)) if flags & FLAG_HAS_PAIRS else b"",
        checksum=crc32c(data),
        append_at_ns=draw(st.integers(0, 2**64 - 1)) if version == 3 else 0,
    )


@given(needles())
def test_v3_decode_of_encode_is_identity(n: Needle) -> None:
    record = encode_needle(n)
    assert len(record) == record_length(body_size(n))
    assert decode_needle(record) == n
    assert encode_needle_head(n) + n.data + encode_needle_tail(n) == record


@given(needles(version=2))
def test_v2_decode_of_encode_is_identity(n: Needle) -> None:
    assert decode_needle(encode_needle(n, 2), 2) == n


@given(needles(), st.data())
def test_any_flipped_data_bit_is_detected(n: Needle, data: st.DataObject) -> None:
    record = bytearray(encode_needle(n))
    i = data.draw(st.integers(NEEDLE_HEAD_SIZE, NEEDLE_HEAD_SIZE + len(n.data) - 1))
    record[i] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises(CorruptNeedle):
        decode_needle(bytes(record))


@given(st.binary(max_size=120), st.sampled_from([2, 3]))
def test_arbitrary_bytes_decode_or_raise_corrupt_needle(blob: bytes, version: int) -> None:
    with contextlib.suppress(CorruptNeedle):
        decode_needle(blob, version)


def test_flag_constants_match_the_reference() -> None:
    assert (FLAG_GZIP, FLAG_HAS_NAME, FLAG_HAS_MIME, FLAG_HAS_LAST_MODIFIED) == (1, 2, 4, 8)
    assert (FLAG_HAS_TTL, FLAG_HAS_PAIRS, FLAG_CHUNK_MANIFEST) == (0x10, 0x20, 0x80)


@given(needles())
def test_decoding_without_data_agrees_with_the_whole_record(n: Needle) -> None:
    record = encode_needle(n)
    data_end = NEEDLE_HEAD_SIZE + len(n.data)
    meta, data_size = decode_needle_meta(record[:NEEDLE_HEAD_SIZE], record[data_end:])
    assert data_size == len(n.data)
    assert meta == Needle(
        n.cookie,
        n.key,
        b"",
        n.flags,
        n.name,
        n.mime,
        n.last_modified,
        n.ttl,
        n.pairs,
        n.checksum,
        n.append_at_ns,
    )


def test_short_header_is_corrupt() -> None:
    with pytest.raises(CorruptNeedle, match="header truncated"):
        decode_header(SPEC_EXAMPLE[:15])
    with pytest.raises(CorruptNeedle, match="header truncated"):
        decode_header(SPEC_EXAMPLE, 60)


def test_decode_footer_reads_checksum_and_append_at_ns_where_the_size_puts_them() -> None:
    assert decode_footer(SPEC_EXAMPLE) == (0x9A71BB4C, 1700000000123456789)
    assert decode_footer(SPEC_EXAMPLE[:56], 2) == (0x9A71BB4C, 0)
    with pytest.raises(CorruptNeedle, match="footer"):
        decode_footer(SPEC_EXAMPLE[:60])
    with pytest.raises(CorruptNeedle, match="header"):
        decode_footer(SPEC_EXAMPLE[:10])


def test_a_body_without_data_is_corrupt_not_an_empty_needle() -> None:
    """Writers store empty data as Size 0; a Size > 0 body whose DataSize is 0 is zeros where
    a record was never written whole (its zero checksum would match the empty data)."""
    record = bytearray(SPEC_EXAMPLE)
    record[16:] = bytes(len(record) - 16)
    with pytest.raises(CorruptNeedle, match="holds no data"):
        decode_needle(bytes(record))
    with pytest.raises(CorruptNeedle, match="holds no data"):
        decode_needle_meta(bytes(record[:NEEDLE_HEAD_SIZE]), bytes(record[NEEDLE_HEAD_SIZE:]))
