"""Chunk manifest JSON (spec §13.1)."""

from __future__ import annotations

import gzip
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seaweed_py.errors import InvalidChunkFileId, InvalidChunkManifest, InvalidFileId
from seaweed_py.formats.chunk_manifest import ChunkInfo, ChunkManifest, load_chunk_manifest
from seaweed_py.formats.fid import FileId, parse_file_id
from seaweed_py.types import Cookie, NeedleId, VolumeId

SPEC = (
    b'{"name":"big.iso","mime":"application/octet-stream","size":10485760,'
    b'"chunks":[{"fid":"3,02a1b2c3d4","offset":0,"size":4194304},'
    b'{"fid":"5,03e5f60718","offset":4194304,"size":4194304},'
    b'{"fid":"3,0498badcfe","offset":8388608,"size":2097152}]}'
)


def test_spec_example_parses_and_reencodes_identically() -> None:
    m = ChunkManifest.from_json(SPEC)
    assert (m.name, m.mime, m.size) == ("big.iso", "application/octet-stream", 10485760)
    assert m.chunks[1] == ChunkInfo(parse_file_id("5,03e5f60718"), 4194304, 4194304)
    assert m.total_chunk_size == 10485760
    assert m.to_json() == SPEC


def test_chunks_are_sorted_by_offset_and_keys_match_case_insensitively() -> None:
    m = ChunkManifest.from_json(
        '{"Name":"x","CHUNKS":[{"fid":"1,0200000001","offset":10,"size":5},'
        '{"Fid":"1,0100000001","Offset":0,"Size":10}],"extra":1}'
    )
    assert m.name == "x"
    assert [c.offset for c in m.chunks] == [0, 10]


def test_empty_fields_are_omitted() -> None:
    assert ChunkManifest().to_json() == b"{}"
    assert ChunkManifest.from_json(b"{}") == ChunkManifest()


def test_gzipped_manifest_is_inflated() -> None:
    assert load_chunk_manifest(gzip.compress(SPEC), gzipped=True) == ChunkManifest.from_json(SPEC)
    with pytest.raises(InvalidChunkManifest, match="inflate"):
        load_chunk_manifest(SPEC, gzipped=True)


@pytest.mark.parametrize(
    "text",
    [
        "nope",
        "[]",
        '{"chunks": {}}',
        '{"chunks": [1]}',
        '{"chunks": [{"fid": "bad"}]}',
        '{"chunks": [{"fid": "1,0100000001", "size": -1}]}',
        '{"size": 1.5}',
        '{"name": 3}',
        '{"chunks": [{"fid": "1,0100000001", "offset": true}]}',
    ],
)
def test_malformed_manifests_are_rejected(text: str) -> None:
    with pytest.raises(InvalidChunkManifest):
        ChunkManifest.from_json(text)


def test_chunk_fid_is_kept_as_written_and_parsed_on_demand() -> None:
    m = ChunkManifest.from_json(b'{"chunks":[{"fid":"3,01637037D6","offset":0,"size":1}]}')
    assert m.chunks[0].fid == "3,01637037D6"
    assert m.chunks[0].file_id == parse_file_id("3,01637037d6")
    assert b'"fid":"3,01637037D6"' in m.to_json()
    assert ChunkInfo(parse_file_id("3,01637037d6"), 0, 1) == ChunkInfo("3,01637037d6", 0, 1)


def test_unsorted_chunks_are_encoded_by_offset() -> None:
    m = ChunkManifest(chunks=(ChunkInfo("1,0200000001", 10, 5), ChunkInfo("1,0100000001", 0, 10)))
    assert [c["offset"] for c in json.loads(m.to_json())["chunks"]] == [0, 10]


def test_a_bad_chunk_fid_is_both_a_manifest_error_and_a_fid_error() -> None:
    with pytest.raises(InvalidChunkFileId, match="chunk 1") as info:
        ChunkManifest.from_json('{"chunks":[{"fid":"1,0100000001"},{"fid":"3,01"}]}')
    assert isinstance(info.value, InvalidChunkManifest)
    assert isinstance(info.value, InvalidFileId)


chunk = st.builds(
    ChunkInfo,
    st.builds(
        FileId,
        st.integers(0, 2**32 - 1).map(VolumeId),
        st.integers(1, 2**64 - 1).map(NeedleId),
        st.integers(0, 2**32 - 1).map(Cookie),
    ),
    st.integers(0, 2**40),
    st.integers(0, 2**30),
)


@given(st.text(), st.text(), st.integers(0, 2**62), st.lists(chunk, max_size=8))
def test_decode_of_encode_is_identity(
    name: str, mime: str, size: int, chunks: list[ChunkInfo]
) -> None:
    m = ChunkManifest(name, mime, size, tuple(sorted(chunks, key=lambda c: c.offset)))
    assert ChunkManifest.from_json(m.to_json()) == m
    assert json.loads(m.to_json()).get("size", 0) == size
