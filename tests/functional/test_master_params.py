"""Parsing of master request parameters and heartbeat bodies, and the status helpers (no sockets)."""

from __future__ import annotations

import orjson
import pytest

from seaweed_py.errors import BadRequest, InvalidCollection, NotAcceptable
from seaweed_py.formats.ttl import Ttl
from seaweed_py.master.params import parse_assign, parse_heartbeat, parse_lookup_vid
from seaweed_py.master.views import volume_id_runs


def test_assign_defaults_and_go_style_counts() -> None:
    opt = parse_assign({}, "001", 0)
    assert (opt.count, str(opt.key.replica_placement), opt.key.disk, opt.key.collection) == (
        1,
        "001",
        "hdd",
        "",
    )
    for text in ("0", "-3", "x", "", "18446744073709551616"):
        assert parse_assign({"count": text}, "", 0).count == 1
    assert parse_assign({"count": "2000000"}, "", 0).count == 2_000_000


def test_assign_options_are_parsed_into_values() -> None:
    opt = parse_assign(
        {
            "replication": "110",
            "ttl": "24h",
            "collection": "c",
            "disk": "SSD",
            "dataCenter": "d",
            "rack": "r",
            "dataNode": "n:1",
            "preallocate": "1024",
            "writableVolumeCount": "3",
            "dataSize": "10",
        },
        "",
        0,
    )
    assert opt.key.ttl == Ttl.parse("1d") and opt.key.disk == "ssd"
    assert (opt.data_center, opt.rack, opt.data_node, opt.preallocate) == ("d", "r", "n:1", 1024)
    assert (opt.writable_volume_count, opt.data_size, opt.constrained) == (3, 10, True)
    # Field names and order as `weed` 4.48 prints them (checked against the binary).
    assert opt.describe() == (
        '{"collection":"c","replication":{"rack":1,"dc":1},"ttl":{"Count":1,"Unit":3},'
        '"disk":"ssd","preallocate":1024,"dataCenter":"d","rack":"r","dataNode":"n:1","version":3}'
    )


@pytest.mark.parametrize("form", [{"replication": "abc"}, {"ttl": "x1"}, {"preallocate": "big"}])
def test_bad_assign_options_are_406(form: dict[str, str]) -> None:
    with pytest.raises(NotAcceptable):
        parse_assign(form, "", 0)


def test_lookup_vid_from_vid_or_fid() -> None:
    assert parse_lookup_vid("3") == ("3", 3)
    assert parse_lookup_vid("3,01637037d6") == ("3", 3)
    assert parse_lookup_vid("abc") == ("abc", None)
    assert parse_lookup_vid("") == ("", None)
    assert parse_lookup_vid("4294967296") == ("4294967296", None)


def test_heartbeat_body() -> None:
    hb = parse_heartbeat(
        orjson.dumps(
            {
                "ip": "10.0.0.1",
                "port": 8080,
                "dataCenter": "dc",
                "rack": "r",
                "maxVolumeCount": 8,
                "maxFileKey": 77,
                "volumes": [
                    {"id": 3, "size": 100, "replicaPlacement": "010", "ttl": "3d", "diskType": ""},
                    {"id": 4, "replicaPlacement": 1, "ttl": (3 << 8) | 3, "readOnly": True},
                ],
            }
        )
    )
    assert (hb.node_id, hb.max_file_key, dict(hb.max_volume_counts)) == (
        "10.0.0.1:8080",
        77,
        {"hdd": 8},
    )
    v3, v4 = hb.volumes
    assert (str(v3.replica_placement), str(v3.ttl), v3.disk_type, v3.size) == (
        "010",
        "3d",
        "hdd",
        100,
    )
    assert (str(v4.replica_placement), str(v4.ttl), v4.read_only) == ("001", "3d", True)
    assert hb.pulse_seconds == 0.0
    ssd = parse_heartbeat(b'{"ip":"h","port":1,"maxVolumeCounts":{"":2,"ssd":3},"pulseSeconds":2}')
    assert dict(ssd.max_volume_counts) == {"hdd": 2, "ssd": 3}
    assert ssd.pulse_seconds == 2.0


@pytest.mark.parametrize(
    "body",
    [
        b"nope",
        b"[]",
        b'{"port":1}',
        b'{"ip":"h","port":"x"}',
        b'{"ip":"h","port":1,"volumes":[1]}',
        b'{"ip":"h","port":1,"volumes":[{"id":1,"replicaPlacement":"xyz"}]}',
        b'{"ip":"h","port":1,"volumes":[{"id":1,"collection":"../../x"}]}',
        b'{"ip":"h","port":1,"volumes":[{"id":1,"collection":"/abs"}]}',
        b'{"ip":"h","port":1,"volumes":[{"id":1,"collection":".."}]}',
        b'{"ip":"h","port":1,"volumes":[{"id":1,"collection":7}]}',
        b'{"ip":"h","port":1,"volumes":[{"id":1,"collection":null}]}',
    ],
)
def test_malformed_heartbeats_are_400(body: bytes) -> None:
    with pytest.raises(BadRequest):
        parse_heartbeat(body)


def test_a_heartbeat_collection_is_parsed_and_a_bad_one_named() -> None:
    hb = parse_heartbeat(b'{"ip":"h","port":1,"volumes":[{"id":1,"collection":"my.bucket"}]}')
    assert hb.volumes[0].collection == "my.bucket"
    with pytest.raises(BadRequest, match=r"invalid heartbeat volume collection '\.\./x'"):
        parse_heartbeat(b'{"ip":"h","port":1,"volumes":[{"id":1,"collection":"../x"}]}')


@pytest.mark.parametrize("name", ["../../x", "/abs/x", "..", "a b", "x" * 121])
def test_a_bad_assign_collection_is_400_not_406(name: str) -> None:
    with pytest.raises(InvalidCollection, match=r"^invalid collection "):
        parse_assign({"collection": name}, "", 0)


def test_volume_id_runs_like_the_reference() -> None:
    assert volume_id_runs([]) == " "
    assert volume_id_runs([5, 1, 2, 3, 7, 8, 9, 10]) == " 1-3 5 7-10"
    assert volume_id_runs(range(1, 202, 2)).endswith(" 197 199 ...")
