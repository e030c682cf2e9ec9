"""Parsing of master request parameters and heartbeat bodies, and the status helpers (no sockets)."""

from __future__ import annotations

import json

import orjson
import pytest

from seaweed_py.errors import BadRequest, InvalidCollection, NotAcceptable
from seaweed_py.formats.ttl import Ttl
from seaweed_py.master.params import parse_assign, parse_heartbeat, parse_lookup_vid
from seaweed_py.master.views import volume_id_runs


def test_assign_defaults_and_counts() -> None:
    opt = parse_assign({}, "001", 0)
    assert (opt.count, str(opt.key.replica_placement), opt.key.disk, opt.key.collection) == (
        1,
        "001",
        "hdd",
        "",
    )
    assert parse_assign({"count": ""}, "", 0).count == 1
    assert parse_assign({"count": "2000000"}, "", 0).count == 2_000_000
    assert parse_assign({"count": "4294967295"}, "", 0).count == 4294967295


@pytest.mark.parametrize(
    ("name", "text"),
    [
        *[
            ("count", t)
            for t in ("0", "-3", "x", "0x10", "1e3", " 2", "\uff12", "4294967296", "9" * 5000)
        ],
        *[("writableVolumeCount", t) for t in ("-1", "abc", "4294967296", "1.5")],
        *[("dataSize", t) for t in ("-1", "abc", "18446744073709551616", "9" * 5000)],
    ],
)
def test_assign_numbers_out_of_range_are_400_naming_the_parameter(name: str, text: str) -> None:
    """The reference reads these as 1 (count) or 0: a client asking `count=0x10` got one key
    and did not know. Issue 12: the client's mistake is a 400 saying which parameter."""
    with pytest.raises(BadRequest) as raised:
        parse_assign({name: text}, "", 0)
    assert type(raised.value) is BadRequest and raised.value.status == 400
    assert raised.value.message.startswith(f"invalid {name} ")


def test_vol_grow_reads_no_assign_count() -> None:
    assert parse_assign({"count": "0"}, "", 0, with_count=False).count == 1


@pytest.mark.parametrize("text", ["-1", "abc", "0x10", "9223372036854775808", "9" * 5000, "1025"])
def test_preallocate_outside_the_volume_size_is_406(text: str) -> None:
    """406, as the reference answers an unparsable preallocate; it also takes negative or huge
    values, which its volume servers then fail to reserve."""
    with pytest.raises(NotAcceptable) as raised:
        parse_assign({"preallocate": text}, "", 0, max_preallocate=1024)
    assert raised.value.message.startswith(f"invalid preallocate {text!r}")
    assert parse_assign({"preallocate": "1024"}, "", 0, max_preallocate=1024).preallocate == 1024
    assert parse_assign({"preallocate": "+0"}, "", 7, max_preallocate=1024).preallocate == 0


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
        b"[" * 5000 + b"]" * 5000,
        b"\xff\xfe\x00binary",
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


_GOOD_VOLUME: dict[str, object] = {"id": 3, "size": 10, "fileCount": 1, "version": 3}
_GOOD: dict[str, object] = {
    "ip": "10.0.0.1",
    "port": 8080,
    "publicUrl": "10.0.0.1:8080",
    "maxVolumeCount": 8,
    "maxFileKey": 9,
    "volumes": [_GOOD_VOLUME],
}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ip", ""),
        ("ip", 7),
        ("ip", "h/evil"),
        ("ip", "h" * 256),
        ("port", 0),
        ("port", 65536),
        ("port", -1),
        ("port", "8080"),
        ("port", 8080.0),
        ("port", True),
        ("port", None),
        ("publicUrl", "h:1\r\nSet-Cookie: x"),
        ("publicUrl", ["h:1"]),
        ("dataCenter", {"a": 1}),
        ("rack", "r\x00"),
        ("maxVolumeCount", -1),
        ("maxVolumeCount", 1 << 32),
        ("maxVolumeCount", 1.5),
        ("maxVolumeCounts", {"ssd": -2}),
        ("maxVolumeCounts", {"ssd": "2"}),
        ("maxVolumeCounts", [2]),
        ("maxVolumeCounts", {f"d{i}": 1 for i in range(65)}),
        ("maxFileKey", -1),
        ("maxFileKey", 1 << 64),
        ("maxFileKey", 1e30),
        ("hasNoVolumes", "yes"),
        ("hasNoVolumes", 1),
        ("pulseSeconds", -1),
        ("pulseSeconds", 86401),
        ("pulseSeconds", "5"),
        ("pulseSeconds", True),
        ("volumes", {"id": 1}),
        ("volumes", [{"id": 1}] * 65537),
    ],
)
def test_heartbeat_fields_out_of_range_are_400_naming_the_field(field: str, value: object) -> None:
    body = json.dumps({**_GOOD, field: value}).encode()  # orjson stops at 64-bit integers
    with pytest.raises(BadRequest) as raised:
        parse_heartbeat(body)
    assert f"{field}" in raised.value.message, raised.value.message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", -1),
        ("id", 1 << 32),
        ("id", "3"),
        ("id", 3.0),
        ("id", None),
        ("size", -1),
        ("size", 1 << 64),
        ("fileCount", -5),
        ("deleteCount", 2.5),
        ("deletedByteCount", "0"),
        ("readOnly", "false"),
        ("replicaPlacement", 256),
        ("replicaPlacement", -1),
        ("replicaPlacement", [0]),
        ("ttl", -1),
        ("ttl", 1 << 32),
        ("ttl", "9999999999y"),
        ("version", 0),
        ("version", 4),
        ("compactRevision", 1 << 16),
        ("modifiedAtSecond", -1),
        ("diskType", 5),
    ],
)
def test_heartbeat_volume_fields_out_of_range_are_400_naming_the_field(
    field: str, value: object
) -> None:
    volumes = [_GOOD_VOLUME, {**_GOOD_VOLUME, "id": 4, field: value}]
    with pytest.raises(BadRequest) as raised:
        parse_heartbeat(json.dumps({**_GOOD, "volumes": volumes}).encode())
    message = raised.value.message
    assert message.startswith("bad heartbeat from str '10.0.0.1'"), message
    assert "volumes[1]" in message and field.lower() in message.lower(), message


def test_heartbeat_fields_at_their_limits_are_accepted() -> None:
    limits = {
        **_GOOD,
        "port": 65535,
        "maxFileKey": (1 << 64) - 1,
        "maxVolumeCounts": {"hdd": (1 << 32) - 1},
        "pulseSeconds": 0.5,
        "volumes": [
            {
                "id": (1 << 32) - 1,
                "size": (1 << 64) - 1,
                "replicaPlacement": 255,
                "ttl": (1 << 32) - 1 & ~0xFF,
                "compactRevision": 0xFFFF,
                "modifiedAtSecond": (1 << 63) - 1,
                "unknownFieldsAreIgnored": [1, 2],
            }
        ],
    }
    hb = parse_heartbeat(orjson.dumps(limits))
    assert (hb.port, hb.max_file_key, hb.volumes[0].id) == (65535, (1 << 64) - 1, (1 << 32) - 1)


def test_volume_id_runs_like_the_reference() -> None:
    assert volume_id_runs([]) == " "
    assert volume_id_runs([5, 1, 2, 3, 7, 8, 9, 10]) == " 1-3 5 7-10"
    assert volume_id_runs(range(1, 202, 2)).endswith(" 197 199 ...")
