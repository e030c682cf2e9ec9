"""`.vif` protojson (spec §4.11)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seaweed_py.errors import CorruptVolume
from seaweed_py.formats.vif import RemoteFile, VolumeInfo

REFERENCE_48 = """{
  "files":  [],
  "version":  3,
  "replication":  "",
  "bytesOffset":  5,
  "datFileSize":  "0",
  "expireAtSec":  "1795499936",
  "readOnly":  false,
  "ecShardConfig":  null,
  "readOnlyCanDelete":  false
}"""


def test_reads_what_weed_4_48_wrote() -> None:
    info = VolumeInfo.from_json(REFERENCE_48)
    assert info == VolumeInfo(version=3, bytes_offset=5, expire_at_sec=1795499936)


def test_writes_protojson_field_names_with_64_bit_ints_as_strings() -> None:
    info = VolumeInfo(
        version=3,
        replication="001",
        bytes_offset=4,
        dat_file_size=123,
        read_only=True,
        files=(RemoteFile("s3", "default", "k", 0, 99, 1700000000, ".dat"),),
    )
    text = info.to_json()
    assert text.startswith('{\n  "files": [')
    obj = json.loads(text)
    assert list(obj) == [
        "files",
        "version",
        "replication",
        "bytesOffset",
        "datFileSize",
        "expireAtSec",
        "readOnly",
        "ecShardConfig",
        "readOnlyCanDelete",
    ]
    assert obj["datFileSize"] == "123" and obj["expireAtSec"] == "0"
    assert obj["files"][0] == {
        "backendType": "s3",
        "backendId": "default",
        "key": "k",
        "offset": "0",
        "fileSize": "99",
        "modifiedTime": "1700000000",
        "extension": ".dat",
    }
    assert VolumeInfo.from_json(text) == info


def test_tolerant_parse() -> None:
    assert VolumeInfo.from_json("") == VolumeInfo()
    assert VolumeInfo.from_json(b" \n") == VolumeInfo()
    info = VolumeInfo.from_json(
        '{"version": 3, "bytes_offset": 4, "datFileSize": 77, "destroyTime": "5",'
        ' "ecShardConfig": {"dataShards": 10, "parityShards": 4}, "read_only": true}'
    )
    assert (info.version, info.bytes_offset, info.dat_file_size, info.read_only) == (3, 4, 77, True)
    assert info.ec_shard_config == {"dataShards": 10, "parityShards": 4}
    assert json.loads(info.to_json())["ecShardConfig"] == {"dataShards": 10, "parityShards": 4}


@pytest.mark.parametrize(
    "text",
    [
        "{",
        "[]",
        '{"version": "x"}',
        '{"readOnly": "yes"}',
        '{"replication": 1}',
        '{"files": {}}',
        '{"files": [1]}',
        '{"version": true}',
        '{"ecShardConfig": 3}',
        '{"datFileSize": "١٢"}',
    ],
)
def test_malformed_volume_info_is_corrupt(text: str) -> None:
    with pytest.raises(CorruptVolume):
        VolumeInfo.from_json(text)


@given(
    st.integers(0, 2**32 - 1),
    st.text(max_size=5),
    st.sampled_from([0, 4, 5]),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(0, 2**64 - 1),
    st.booleans(),
    st.booleans(),
)
def test_decode_of_encode_is_identity(
    version: int, replication: str, offset: int, size: int, expire: int, ro: bool, rocd: bool
) -> None:
    info = VolumeInfo(version, replication, offset, size, expire, ro, rocd)
    assert VolumeInfo.from_json(info.to_json()) == info
