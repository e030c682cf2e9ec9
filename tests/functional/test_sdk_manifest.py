"""The SDK's pure pieces: chunk manifests (spec §13) and the location cache. No servers."""

from __future__ import annotations

import json

import pytest

from seaweed_py.client import ChunkInfo, ChunkManifest, Location, LocationCache
from seaweed_py.client.manifest import decode_manifest, encode_manifest, plan_chunks
from seaweed_py.errors import BadRequest, InvalidFileId

# What `weed upload -maxMB=1` stored for a 9 MiB file (trimmed to three chunks), including the
# trailing empty chunk of quirk A24.
REFERENCE = (
    b'{"name":"big.bin","mime":"application/octet-stream","size":9437184,"chunks":['
    b'{"fid":"6,08a82a836e","offset":0,"size":1048576},'
    b'{"fid":"1,109e6c053e","offset":8388608,"size":1048576},'
    b'{"fid":"1,112475d03e","offset":9437184,"size":0}]}'
)


def test_plan_chunks_splits_without_a_trailing_empty_chunk() -> None:
    assert plan_chunks(10, 4) == [(0, 4), (4, 4), (8, 2)]
    assert plan_chunks(8, 4) == [(0, 4), (4, 4)]
    assert plan_chunks(3, 4) == [(0, 3)]
    assert plan_chunks(0, 4) == []
    with pytest.raises(ValueError):
        plan_chunks(10, 0)


def test_reference_manifest_decodes_and_re_encodes_byte_identically() -> None:
    manifest = decode_manifest(REFERENCE)
    assert manifest.name == "big.bin"
    assert manifest.size == 9437184
    assert manifest.chunks[-1] == ChunkInfo("1,112475d03e", 9437184, 0)
    assert encode_manifest(manifest) == REFERENCE


def test_chunks_are_sorted_by_offset_and_empty_fields_omitted() -> None:
    manifest = ChunkManifest(
        "", "", 6, (ChunkInfo("3,0201020304", 4, 2), ChunkInfo("3,0101020304", 0, 4))
    )
    obj = json.loads(encode_manifest(manifest))
    assert list(obj) == ["size", "chunks"]
    assert [c["offset"] for c in obj["chunks"]] == [0, 4]
    assert [c.offset for c in decode_manifest(encode_manifest(manifest)).chunks] == [0, 4]


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"not json", BadRequest),
        (b"[1, 2]", BadRequest),
        (b'{"chunks":[{"offset":0}]}', BadRequest),
        (b'{"chunks":[{"fid":"3,01","offset":0,"size":1}]}', InvalidFileId),
        (b'{"chunks":[{"fid":"3,0101020304","offset":-1,"size":1}]}', BadRequest),
        (b'{"size":"big"}', BadRequest),
    ],
)
def test_malformed_manifests_are_rejected(raw: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        decode_manifest(raw)


def test_location_cache_expires_and_invalidates() -> None:
    now = [100.0]
    cache = LocationCache(ttl=5, clock=lambda: now[0])
    here = Location("127.0.0.1:8080", "example.org:8080", "dc1")
    cache.put(7, [here])
    cache.put(8, [])  # nothing to cache
    assert cache.get(7) == (here,)
    assert 8 not in cache
    now[0] = 104.9
    assert 7 in cache
    now[0] = 105.0
    assert cache.get(7) is None
    cache.put(7, [here])
    cache.invalidate(7)
    assert 7 not in cache
    assert len(cache) == 0


def test_location_parses_lookup_json() -> None:
    loc = Location.from_json({"url": "10.0.0.1:8080", "dataCenter": "dc2"})
    assert loc == Location("10.0.0.1:8080", "10.0.0.1:8080", "dc2")
