"""The replica, copy, scrub and lock messages of `formats/wire.py`: round trips, the names on
the wire, and junk refused with a 400 naming what is wrong."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from seaweed_py.errors import BadRequest, InvalidCollection, InvalidFileId
from seaweed_py.formats.replica_digest import BUCKETS, NeedleState
from seaweed_py.formats.wire import (
    CopyFileQuery,
    CopySnapshotQuery,
    CopySnapshotReport,
    CopyVolume,
    CorruptFinding,
    LeaseLock,
    NeedleRecordQuery,
    NeedleStatesQuery,
    ReleaseLock,
    ScrubOrder,
    ScrubReport,
    SyncOrder,
    SyncReport,
    VolumeDigest,
    VolumeDigestQuery,
    decode_states,
    encode_states,
)

u32 = st.integers(0, (1 << 32) - 1)
u64 = st.integers(0, (1 << 64) - 1)
servers = st.builds(
    lambda h, p: f"{h}:{p}",
    st.sampled_from(["127.0.0.1", "volume-3.dc1", "[::1]", "10.0.0.2"]),
    st.integers(1, 65535),
)

queries = st.one_of(
    st.builds(VolumeDigestQuery, u32),
    st.builds(
        NeedleStatesQuery,
        u32,
        st.one_of(
            st.none(),
            st.lists(st.integers(0, BUCKETS - 1), unique=True).map(lambda b: tuple(sorted(b))),
        ),
    ),
    st.builds(NeedleRecordQuery, u32, u64),
    st.builds(SyncOrder, u32, servers),
    st.builds(CopySnapshotQuery, u32),
    st.builds(
        CopyFileQuery,
        u32,
        st.sampled_from(["dat", "idx", "ats"]),
        u64,
        st.integers(0, 64 << 20),
        st.integers(0, 0xFFFF),
    ),
    st.builds(CopyVolume, u32, servers, st.sampled_from(["", "pics", "a.b-c_d"])),
    st.builds(ScrubOrder, st.one_of(st.none(), u32)),
    st.builds(
        LeaseLock,
        st.sampled_from(["shell@10.0.0.9", "master"]),
        u64,
        st.sampled_from(["", "fixing 7"]),
    ),
    st.builds(ReleaseLock, u64),
)


@given(queries)
def test_a_query_message_round_trips(message: Any) -> None:
    assert type(message).from_query(message.to_query()) == message
    assert message.PATH.startswith(("/admin/volume/", "/cluster/"))


@given(
    st.lists(st.builds(NeedleState, u64, u32, u64, st.integers(-1, 0x7FFFFFFF), u32), max_size=50)
)
def test_needle_states_round_trip(states: list[NeedleState]) -> None:
    body = encode_states(states)
    assert len(body) == 32 * len(states)
    assert decode_states(body) == states


def test_needle_states_refuse_a_partial_entry() -> None:
    with pytest.raises(BadRequest, match="whole number"):
        decode_states(bytes(33))


@given(u32, u64, st.lists(u64, min_size=BUCKETS, max_size=BUCKETS))
def test_a_digest_round_trips(vid: int, live: int, buckets: list[int]) -> None:
    digest = VolumeDigest(vid, live, tuple(buckets))
    assert VolumeDigest.from_json(digest.to_json()) == digest
    other = VolumeDigest(vid, live, (buckets[0] ^ 1, *buckets[1:]))
    assert digest.differing(other) == [0]


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'{"volume": 1, "live": 0, "buckets": []}',
        orjson.dumps({"volume": 1, "live": 0, "buckets": ["0" * 16] * (BUCKETS - 1)}),
        orjson.dumps({"volume": 1, "live": 0, "buckets": ["g" * 16] * BUCKETS}),
        orjson.dumps({"volume": 1, "live": -1, "buckets": ["0" * 16] * BUCKETS}),
    ],
)
def test_a_junk_digest_is_refused(body: bytes) -> None:
    with pytest.raises(BadRequest):
        VolumeDigest.from_json(body)


def test_reports_round_trip() -> None:
    sync = SyncReport(7, "127.0.0.1:8080", 3, 10, 2, 1)
    assert SyncReport.from_json(sync.to_json()) == sync
    assert sync.changed == 12
    snap = CopySnapshotReport(7, "pics", 1 << 33, 160, 64, 2, '{"version": 3}')
    assert CopySnapshotReport.from_json(snap.to_json()) == snap
    scrub = ScrubReport(2, 100, 1 << 20, (CorruptFinding(7, 1 << 63, 4096, 100, "crc", True),))
    assert ScrubReport.from_json(scrub.to_json()) == scrub
    assert orjson.loads(scrub.to_json())["bytes"] == 1 << 20


def test_every_parameter_has_its_name() -> None:
    assert CopyFileQuery(3, "idx", 16, 32, 1).to_query() == {
        "volume": "3",
        "file": "idx",
        "offset": "16",
        "size": "32",
        "revision": "1",
    }
    assert NeedleStatesQuery(3, (1, 9)).to_query() == {"volume": "3", "buckets": "1,9"}
    assert NeedleStatesQuery(3).to_query() == {"volume": "3", "buckets": "all"}
    assert NeedleStatesQuery.from_query({"volume": "3", "buckets": ""}).buckets == ()
    assert ScrubOrder().to_query() == {}
    assert LeaseLock("me").to_query() == {
        "name": "shell",
        "client": "me",
        "token": "0",
        "message": "",
    }


@pytest.mark.parametrize(
    ("kind", "query", "error", "match"),
    [
        (SyncOrder, {"volume": "1", "peer": "nowhere"}, BadRequest, "host:port"),
        (SyncOrder, {"volume": "1", "peer": "a:0"}, BadRequest, "host:port"),
        (SyncOrder, {"volume": "1", "peer": "a b:80"}, BadRequest, "host:port"),
        (SyncOrder, {"volume": "1", "peer": "a:99999"}, BadRequest, "host:port"),
        (SyncOrder, {"peer": "a:80"}, BadRequest, "missing volume"),
        (CopyVolume, {"volume": "x", "source": "a:80"}, InvalidFileId, "x"),
        (
            CopyVolume,
            {"volume": "1", "source": "a:80", "collection": "../x"},
            InvalidCollection,
            "collection",
        ),
        (
            CopyFileQuery,
            {"volume": "1", "file": "vif", "offset": "0", "size": "1"},
            BadRequest,
            "file",
        ),
        (
            CopyFileQuery,
            {"volume": "1", "file": "dat", "offset": "-1", "size": "1"},
            BadRequest,
            "offset",
        ),
        (
            CopyFileQuery,
            {"volume": "1", "file": "dat", "offset": "0", "size": str(65 << 20)},
            BadRequest,
            "at most",
        ),
        (
            CopyFileQuery,
            {"volume": "1", "file": "dat", "offset": "0", "size": "1", "revision": "70000"},
            BadRequest,
            "revision",
        ),
        (NeedleStatesQuery, {"volume": "1", "buckets": "1,256"}, BadRequest, "buckets"),
        (NeedleStatesQuery, {"volume": "1", "buckets": "a"}, BadRequest, "buckets"),
        (NeedleRecordQuery, {"volume": "1", "key": "1" * 30}, BadRequest, "key"),
        (NeedleRecordQuery, {"volume": "1"}, BadRequest, "key"),
        (LeaseLock, {"client": ""}, BadRequest, "client"),
        (LeaseLock, {"client": "x\n"}, BadRequest, "client"),
        (LeaseLock, {"client": "x", "token": "abc"}, BadRequest, "token"),
        (ReleaseLock, {}, BadRequest, "token"),
    ],
)
def test_bad_parameters_are_400(
    kind: Any, query: dict[str, str], error: type[BadRequest], match: str
) -> None:
    with pytest.raises(error, match=match):
        kind.from_query(query)
