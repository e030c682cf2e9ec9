"""The master ↔ volume-server messages of `formats/wire.py`: every field through a round trip,
what older senders send, and junk refused with a 400 that says what is wrong."""

from __future__ import annotations

import json
import string
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seaweed_py.errors import (
    BadRequest,
    InvalidCollection,
    InvalidFileId,
    InvalidReplicaPlacement,
    InvalidTtl,
)
from seaweed_py.formats.replica_placement import ReplicaPlacement
from seaweed_py.formats.ttl import Ttl
from seaweed_py.formats.wire import (
    AllocateVolume,
    DeleteCollection,
    DeleteVolume,
    Heartbeat,
    HeartbeatAnswer,
    MarkReadonly,
    MarkWritable,
    TierDownload,
    TierForget,
    TierMount,
    TierUpload,
    TierUploads,
    UnwritableReport,
    VolumeReport,
    VolumeStatusQuery,
    normalize_disk,
)

# ---------------------------------------------------------------------------- values

_NAME = string.ascii_letters + string.digits + "-_"
collections = st.text(_NAME, max_size=12)
placements = st.integers(0, 255).map(ReplicaPlacement.from_byte)
ttls = st.sampled_from(["", "1m", "90", "3h", "5d", "2w", "3M", "4y", "1000d"]).map(Ttl.parse)
disks = st.sampled_from(["hdd", "ssd", "nvme"])
u32 = st.integers(0, (1 << 32) - 1)
u64 = st.integers(0, (1 << 63) - 1)
texts = st.text(string.printable.strip(), max_size=20)
hosts = st.text(string.ascii_letters + string.digits + "._:-", min_size=1, max_size=20)

volume_reports = st.builds(
    VolumeReport,
    id=u32,
    collection=collections,
    size=u64,
    file_count=u64,
    delete_count=u64,
    deleted_byte_count=u64,
    read_only=st.booleans(),
    replica_placement=placements,
    ttl=ttls,
    version=st.sampled_from([1, 2, 3]),
    compact_revision=st.integers(0, 65535),
    modified_at_second=st.integers(0, (1 << 63) - 1),
    disk_type=disks,
    remote_storage_name=st.sampled_from(["", "s3.default"]),
    remote_storage_key=texts,
)
heartbeats = st.builds(
    Heartbeat,
    ip=hosts,
    port=st.integers(1, 65535),
    public_url=texts,
    data_center=texts,
    rack=texts,
    max_volume_counts=st.dictionaries(disks, st.integers(0, 10_000), max_size=3),
    max_file_key=u64,
    volumes=st.lists(volume_reports, max_size=4).map(tuple),
    has_no_volumes=st.booleans(),
    pulse_seconds=st.floats(0, 86_400),
    location_uuids=st.lists(texts, max_size=3).map(tuple),
)
answers = st.builds(
    HeartbeatAnswer,
    volume_size_limit=u64,
    leader=texts,
    preallocate=st.booleans(),
    pulse_seconds=st.one_of(st.integers(0, 3600).map(float), st.floats(0.01, 3600)),
    locations_version=st.one_of(st.none(), u64),
)


@settings(max_examples=200, deadline=None)
@given(heartbeats)
def test_a_heartbeat_round_trips(hb: Heartbeat) -> None:
    assert Heartbeat.from_json(hb.to_json()) == hb


@settings(max_examples=200, deadline=None)
@given(volume_reports)
def test_a_volume_report_round_trips(report: VolumeReport) -> None:
    assert VolumeReport.from_json(report.to_json()) == report


@settings(max_examples=200, deadline=None)
@given(answers)
def test_a_heartbeat_answer_round_trips(answer: HeartbeatAnswer) -> None:
    assert HeartbeatAnswer.from_json(answer.to_json()) == answer


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.builds(UnwritableReport, u32),
        st.builds(AllocateVolume, u32, collections, placements, ttls, u64, disks),
        st.builds(DeleteVolume, u32, st.booleans()),
        st.builds(MarkReadonly, u32, st.booleans()),
        st.builds(MarkWritable, u32),
        st.builds(DeleteCollection, collections),
        st.builds(VolumeStatusQuery, u32),
        st.builds(TierUpload, u32, texts, st.none() | collections, st.booleans()),
        st.builds(TierDownload, u32, st.none() | collections, st.booleans()),
        st.builds(TierMount, u32, texts, st.none() | collections, texts, st.booleans()),
        st.builds(TierForget, u32, texts, st.text(string.printable.strip(), min_size=1)),
        st.builds(TierUploads, u32, texts),
    )
)
def test_a_query_message_round_trips(message: Any) -> None:
    query = message.to_query()
    assert all(isinstance(v, str) for v in query.values())
    assert type(message).from_query(query) == message


# ---------------------------------------------------------------------------- every field

FULL = Heartbeat(
    ip="10.0.0.1",
    port=8080,
    public_url="pub.example:80",
    data_center="dc1",
    rack="r1",
    max_volume_counts={"hdd": 8, "ssd": 2},
    max_file_key=77,
    volumes=(
        VolumeReport(
            id=3,
            collection="pics",
            size=100,
            file_count=4,
            delete_count=1,
            deleted_byte_count=20,
            read_only=True,
            replica_placement=ReplicaPlacement.parse("010"),
            ttl=Ttl.parse("3d"),
            version=2,
            compact_revision=5,
            modified_at_second=1_700_000_000,
            disk_type="ssd",
            remote_storage_name="s3.default",
            remote_storage_key="b/3.dat",
        ),
    ),
    has_no_volumes=False,
    pulse_seconds=7.0,
    location_uuids=("u-1", "u-2"),
)


def test_every_heartbeat_field_has_its_name_on_the_wire() -> None:
    assert orjson.loads(FULL.to_json()) == {
        "ip": "10.0.0.1",
        "port": 8080,
        "publicUrl": "pub.example:80",
        "dataCenter": "dc1",
        "rack": "r1",
        "maxVolumeCount": 8,
        "maxVolumeCounts": {"hdd": 8, "ssd": 2},
        "maxFileKey": 77,
        "locationUuids": ["u-1", "u-2"],
        "hasNoVolumes": False,
        "pulseSeconds": 7.0,
        "volumes": [
            {
                "id": 3,
                "collection": "pics",
                "size": 100,
                "fileCount": 4,
                "deleteCount": 1,
                "deletedByteCount": 20,
                "readOnly": True,
                "replicaPlacement": "010",
                "ttl": "3d",
                "version": 2,
                "compactRevision": 5,
                "modifiedAtSecond": 1_700_000_000,
                "diskType": "ssd",
                "remoteStorageName": "s3.default",
                "remoteStorageKey": "b/3.dat",
            }
        ],
    }


def test_a_goodbye_keeps_the_address_and_drops_the_volumes() -> None:
    bye = FULL.goodbye()
    assert (bye.has_no_volumes, bye.volumes, bye.node_id) == (True, (), "10.0.0.1:8080")
    assert orjson.loads(bye.to_json())["volumes"] == []


def test_the_heartbeat_answer_on_the_wire() -> None:
    answer = HeartbeatAnswer(1 << 30, "m:9333", True, 5.0, 12)
    assert orjson.loads(answer.to_json()) == {
        "volumeSizeLimit": 1 << 30,
        "leader": "m:9333",
        "preallocate": True,
        "pulseSeconds": 5,
        "locationsVersion": 12,
    }
    # whole seconds are written as an int, as masters always did; tests pulse faster
    assert b'"pulseSeconds":5,' in answer.to_json()
    assert b'"pulseSeconds":0.25' in HeartbeatAnswer(pulse_seconds=0.25).to_json()


def test_every_query_parameter_has_its_name() -> None:
    order = AllocateVolume(7, "pics", ReplicaPlacement.parse("001"), Ttl.parse("3d"), 1024, "ssd")
    assert order.to_query() == {
        "volume": "7",
        "collection": "pics",
        "replication": "001",
        "ttl": "3d",
        "preallocate": "1024",
        "disk": "ssd",
    }
    assert DeleteVolume(7, only_empty=True).to_query() == {"volume": "7", "onlyEmpty": "true"}
    assert DeleteVolume(7).to_query() == {"volume": "7"}
    assert MarkReadonly(7, persist=True).to_query() == {"volume": "7", "persist": "true"}
    assert MarkWritable(7).to_query() == {"volume": "7"}
    assert DeleteCollection("pics").to_query() == {"collection": "pics"}
    assert VolumeStatusQuery(7).to_query() == UnwritableReport(7).to_query() == {"volume": "7"}
    assert TierUpload(7, "s3", "pics", keep_local=True).to_query() == {
        "volume": "7",
        "dest": "s3",
        "collection": "pics",
        "keepLocalDatFile": "true",
    }
    assert TierUpload(7, "s3").to_query() == {"volume": "7", "dest": "s3"}  # no collection check
    assert TierDownload(7, "", keep_remote=True).to_query() == {
        "volume": "7",
        "collection": "",
        "keepRemoteDatFile": "true",
    }
    assert TierMount(7, "s3", None, "k", replace=True).to_query() == {
        "volume": "7",
        "source": "s3",
        "key": "k",
        "replace": "true",
    }
    routes = {
        (m.METHOD, m.PATH)
        for m in (
            UnwritableReport,
            AllocateVolume,
            DeleteVolume,
            MarkReadonly,
            MarkWritable,
            DeleteCollection,
            VolumeStatusQuery,
            TierUpload,
            TierDownload,
            TierMount,
            TierForget,
            TierUploads,
        )
    }
    assert routes == {
        ("POST", "/internal/volume/unwritable"),
        ("POST", "/admin/volume/allocate"),
        ("POST", "/admin/volume/delete"),
        ("POST", "/admin/volume/readonly"),
        ("POST", "/admin/volume/writable"),
        ("POST", "/admin/collection/delete"),
        ("GET", "/admin/volume/status"),
        ("POST", "/admin/volume/tier/upload"),
        ("POST", "/admin/volume/tier/download"),
        ("POST", "/admin/volume/tier/mount"),
        ("POST", "/admin/volume/tier/forget"),
        ("GET", "/admin/volume/tier/uploads"),
    }


@pytest.mark.parametrize("key", ["", "a\x00b", "k" * 1025, "\n"])
def test_a_forget_order_names_one_printable_key(key: str) -> None:
    with pytest.raises(BadRequest, match="key"):
        TierForget.from_query({"volume": "7", "source": "s3", "key": key})


# ---------------------------------------------------------------------------- older senders


def test_a_minimal_heartbeat_takes_every_default() -> None:
    hb = Heartbeat.from_json(b'{"ip":"h","port":1}')
    assert hb == Heartbeat("h", 1, max_volume_counts={"hdd": 0})


def test_a_sender_without_the_newer_fields_is_understood() -> None:
    # a volume server of before maxVolumeCounts, pulseSeconds and the codec: what it sent
    old = {
        "ip": "127.0.0.1",
        "port": 8080,
        "publicUrl": "127.0.0.1:8080",
        "dataCenter": "",
        "rack": "",
        "maxVolumeCount": 8,
        "maxFileKey": 3,
        "locationUuids": ["u"],
        "hasNoVolumes": False,
        "volumes": [{"id": 1, "replicaPlacement": "001", "ttl": "", "diskType": "hdd"}],
    }
    hb = Heartbeat.from_json(orjson.dumps(old))
    assert (dict(hb.max_volume_counts), hb.pulse_seconds, hb.location_uuids) == (
        {"hdd": 8},
        0.0,
        ("u",),
    )
    assert hb.volumes == (VolumeReport(1, replica_placement=ReplicaPlacement.parse("001")),)


def test_disk_types_are_normalised() -> None:
    assert normalize_disk("") == normalize_disk("HDD") == "hdd"
    assert normalize_disk("SSD") == "ssd"
    hb = Heartbeat.from_json(b'{"ip":"h","port":1,"maxVolumeCounts":{"":1,"SSD":2}}')
    assert dict(hb.max_volume_counts) == {"hdd": 1, "ssd": 2}


def test_an_answer_without_the_optional_fields_says_nothing() -> None:
    assert HeartbeatAnswer.from_json(b"{}") == HeartbeatAnswer()
    assert HeartbeatAnswer.from_json(b'{"volumeSizeLimit":5,"leader":""}') == HeartbeatAnswer(5)


# ---------------------------------------------------------------------------- junk


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xff\xfe",
        b'{"ip":"h","port":1,"pulseSeconds":-1}',
        b'{"ip":"h","port":1,"pulseSeconds":"inf"}',
        b'{"ip":"h","port":1,"pulseSeconds":"nan"}',
        b'{"ip":"h","port":1,"pulseSeconds":[5]}',
        b'{"ip":"h","port":1e400}',
        b'{"ip":"h","port":1.5e300}',
        b'{"ip":"h","port":70000}',
        b'{"ip":"h","port":-1}',
        b'{"ip":"h","port":1,"maxFileKey":-1}',
        b'{"ip":"h","port":1,"maxVolumeCount":-3}',
        b'{"ip":"h","port":1,"volumes":[{"id":4294967296}]}',
        b'{"ip":"h","port":1,"volumes":[{"id":1,"size":-1}]}',
        b'{"ip":"h","port":1,"volumes":[{"id":1,"fileCount":"9999999999999999999999"}]}',
        b'{"ip":"h","port":1,"volumes":5}',
        b'{"ip":"h","port":1,"volumes":[{"id":1e300}]}',
        b'{"ip":"h","port":1,"volumes":[{"id":1,"ttl":"3s"}]}',
        b'{"ip":"h","port":1,"volumes":[{"id":1,"ttl":-1}]}',
        b'{"ip":"h","port":1,"volumes":[{"id":1,"replicaPlacement":300}]}',
        b'{"ip":"h","port":1,"volumes":[{"id":1,"replicaPlacement":[1]}]}',
        b'{"ip":"h","port":1,"maxVolumeCounts":{"hdd":"x"}}',
        b'{"ip":"h","port":1,"maxVolumeCount":{}}',
        b'{"ip":"h","port":1,"locationUuids":"u"}',
        b'{"ip":"h","port":1,"locationUuids":[1]}',
    ],
)
def test_a_junk_heartbeat_is_400(body: bytes) -> None:
    with pytest.raises(BadRequest, match="heartbeat"):
        Heartbeat.from_json(body)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(1 << 63), (1 << 64) - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
_FIELDS = ["ip", "port", "pulseSeconds", "maxVolumeCount", "maxVolumeCounts", "volumes"]
heartbeat_like = st.fixed_dictionaries(
    {"ip": json_values, "port": json_values},
    optional={name: json_values for name in _FIELDS[2:]}
    | {"locationUuids": json_values, "hasNoVolumes": json_values, "maxFileKey": json_values},
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values, heartbeat_like))
def test_any_json_is_a_heartbeat_or_a_400(raw: Any) -> None:
    """Whatever a sender puts where: a value, or `BadRequest`; never another exception (which
    would be a 500)."""
    try:
        hb = Heartbeat.from_json(orjson.dumps(raw))
    except BadRequest as exc:
        assert "heartbeat" in exc.message
    else:
        assert 0 <= hb.port <= 65535 and hb.pulse_seconds >= 0


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["id", "size", "ttl", "replicaPlacement"]), json_values))
def test_any_volume_entry_is_a_report_or_a_400(volume: dict[str, Any]) -> None:
    try:
        hb = Heartbeat.from_json(orjson.dumps({"ip": "h", "port": 1, "volumes": [volume]}))
    except BadRequest as exc:
        assert "heartbeat" in exc.message
    else:
        assert 0 <= hb.volumes[0].id < 1 << 32 and hb.volumes[0].size >= 0


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'{"volumeSizeLimit":"5"}',
        b'{"volumeSizeLimit":true}',
        b'{"leader":1}',
        b'{"preallocate":"yes"}',
        b'{"pulseSeconds":false}',
        b'{"locationsVersion":1.5}',
    ],
)
def test_a_junk_heartbeat_answer_is_refused(body: bytes) -> None:
    with pytest.raises(BadRequest, match="heartbeat answer"):
        HeartbeatAnswer.from_json(body)


@pytest.mark.parametrize(
    ("query", "error", "match"),
    [
        ({}, BadRequest, "missing volume parameter"),
        ({"volume": "x"}, InvalidFileId, "invalid volume id"),
        ({"volume": "4294967296"}, InvalidFileId, "out of range"),
        ({"volume": "1", "collection": "../x"}, InvalidCollection, "invalid collection"),
        ({"volume": "1", "replication": "3x"}, InvalidReplicaPlacement, "replication"),
        ({"volume": "1", "ttl": "3s"}, InvalidTtl, "ttl unit"),
        ({"volume": "1", "preallocate": "big"}, BadRequest, "invalid preallocate 'big'"),
        ({"volume": "1", "preallocate": "1_000"}, BadRequest, "invalid preallocate"),
        ({"volume": "1", "preallocate": "٣"}, BadRequest, "invalid preallocate"),
        ({"volume": "1", "preallocate": "-5"}, BadRequest, "invalid preallocate"),
        ({"volume": "1", "preallocate": "9" * 5000}, BadRequest, "invalid preallocate"),
    ],
)
def test_a_bad_allocate_is_400(query: dict[str, str], error: type[BadRequest], match: str) -> None:
    with pytest.raises(error, match=match):
        AllocateVolume.from_query(query)


def test_allocate_takes_up_to_what_a_volume_of_the_receiver_holds() -> None:
    order = AllocateVolume.from_query({"volume": "1", "preallocate": "1024"}, max_preallocate=1024)
    assert order.preallocate == 1024
    with pytest.raises(BadRequest, match=r"want a number of bytes in 0\.\.1024"):
        AllocateVolume.from_query({"volume": "1", "preallocate": "1025"}, max_preallocate=1024)
    assert AllocateVolume.from_query({"volume": "1", "disk": "SSD"}).disk == "ssd"


@pytest.mark.parametrize(
    "kind", [DeleteVolume, MarkReadonly, MarkWritable, VolumeStatusQuery, UnwritableReport]
)
@pytest.mark.parametrize(
    ("volume", "error"), [("", BadRequest), ("-1", InvalidFileId), ("1 ", InvalidFileId)]
)
def test_a_bad_volume_parameter_is_400(kind: Any, volume: str, error: type[BadRequest]) -> None:
    with pytest.raises(error):
        kind.from_query({"volume": volume} if volume else {})


def test_flags_are_on_only_as_true() -> None:
    for text, on in (("true", True), ("1", False), ("TRUE", False), ("", False)):
        assert DeleteVolume.from_query({"volume": "1", "onlyEmpty": text}).only_empty is on
        assert MarkReadonly.from_query({"volume": "1", "persist": text}).persist is on


def test_a_bad_collection_to_delete_is_400() -> None:
    with pytest.raises(InvalidCollection):
        DeleteCollection.from_query({"collection": "a/b"})
    assert DeleteCollection.from_query({}) == DeleteCollection("")


def test_an_unwritable_report_needs_its_volume() -> None:
    with pytest.raises(BadRequest, match="missing volume parameter"):
        UnwritableReport.from_query({})
    with pytest.raises(InvalidFileId):
        UnwritableReport.from_query({"volume": "x"})
    assert UnwritableReport.from_query({"volume": "12"}) == UnwritableReport(12)


def test_a_junk_volume_status_is_refused() -> None:
    for body in (b"nope", b"[]", b'{"size":1}', b'{"id":1,"collection":"/x"}'):
        with pytest.raises(BadRequest, match="volume status"):
            VolumeReport.from_json(body)


# ---------------------------------------------------------------------------- the master's
# heartbeat tests of before the codec, unchanged but for the parser's name


def test_heartbeat_body() -> None:
    hb = Heartbeat.from_json(
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
    ssd = Heartbeat.from_json(
        b'{"ip":"h","port":1,"maxVolumeCounts":{"":2,"ssd":3},"pulseSeconds":2}'
    )
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
        Heartbeat.from_json(body)


def test_a_heartbeat_collection_is_parsed_and_a_bad_one_named() -> None:
    hb = Heartbeat.from_json(b'{"ip":"h","port":1,"volumes":[{"id":1,"collection":"my.bucket"}]}')
    assert hb.volumes[0].collection == "my.bucket"
    with pytest.raises(BadRequest, match=r"invalid heartbeat volume collection '\.\./x'"):
        Heartbeat.from_json(b'{"ip":"h","port":1,"volumes":[{"id":1,"collection":"../x"}]}')


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
        Heartbeat.from_json(body)
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
        Heartbeat.from_json(json.dumps({**_GOOD, "volumes": volumes}).encode())
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
    hb = Heartbeat.from_json(orjson.dumps(limits))
    assert (hb.port, hb.max_file_key, hb.volumes[0].id) == (65535, (1 << 64) - 1, (1 << 32) - 1)
