"""The vacuum messages of formats/wire.py: each round-trips, and a broken one is a 400 naming
its field."""

from __future__ import annotations

import pytest

from seaweed_py.errors import BadRequest, InvalidFileId
from seaweed_py.formats.wire import (
    VacuumCheck,
    VacuumCheckAnswer,
    VacuumCleanup,
    VacuumCommit,
    VacuumCommitAnswer,
    VacuumCompact,
    VacuumCompactAnswer,
)


@pytest.mark.parametrize(
    "message",
    [
        VacuumCheck(7),
        VacuumCompact(7, 1 << 20),
        VacuumCompact(4294967295),
        VacuumCommit(7),
        VacuumCleanup(7),
    ],
)
def test_queries_round_trip(
    message: VacuumCheck | VacuumCompact | VacuumCommit | VacuumCleanup,
) -> None:
    assert type(message).from_query(message.to_query()) == message
    assert message.PATH.startswith("/admin/vacuum/")


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({}, BadRequest),
        ({"volume": "x"}, InvalidFileId),
        ({"volume": "4294967296"}, InvalidFileId),
        ({"volume": "1", "preallocate": "-1"}, BadRequest),
        ({"volume": "1", "preallocate": "1e9"}, BadRequest),
    ],
)
def test_bad_queries_are_400(query: dict[str, str], error: type[Exception]) -> None:
    with pytest.raises(error):
        VacuumCompact.from_query(query, max_preallocate=1 << 35)


def test_preallocate_is_bounded_by_what_a_volume_holds() -> None:
    with pytest.raises(BadRequest, match="preallocate"):
        VacuumCompact.from_query(
            {"volume": "1", "preallocate": str(1 << 36)}, max_preallocate=1 << 35
        )


@pytest.mark.parametrize(
    "answer",
    [
        VacuumCheckAnswer(0.0),
        VacuumCheckAnswer(0.375),
        VacuumCompactAnswer(100, 2, 3, 4, 5000, 108),
        VacuumCommitAnswer(True, 108, 4892, 9),
    ],
)
def test_answers_round_trip(
    answer: VacuumCheckAnswer | VacuumCompactAnswer | VacuumCommitAnswer,
) -> None:
    assert type(answer).from_json(answer.to_json()) == answer


@pytest.mark.parametrize(
    ("kind", "body", "names"),
    [
        (VacuumCheckAnswer, b'{"garbageRatio": "0.5"}', "garbageRatio"),
        (VacuumCheckAnswer, b'{"garbageRatio": -1}', "garbageRatio"),
        (VacuumCompactAnswer, b'{"needles": -1}', "needles"),
        (VacuumCompactAnswer, b'{"processedBytes": 1.5}', "processedBytes"),
        (VacuumCommitAnswer, b'{"isReadOnly": 1}', "isReadOnly"),
        (VacuumCommitAnswer, b"[]", "JSON object"),
        (VacuumCommitAnswer, b"not json", "not JSON"),
    ],
)
def test_broken_answers_are_400_naming_the_field(kind: type, body: bytes, names: str) -> None:
    with pytest.raises(BadRequest, match=names):
        kind.from_json(body)
