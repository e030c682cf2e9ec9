"""The one status → error rule of the outgoing-HTTP layer (`client/http.py`), without sockets."""

from __future__ import annotations

import pytest

from seaweed_py import errors
from seaweed_py.client.http import Reply, error_for, error_message

MAPPED = {
    400: errors.BadRequest,
    401: errors.Unauthorized,
    404: errors.NotFound,
    405: errors.MethodNotAllowed,
    406: errors.NotAcceptable,
    408: errors.RequestTimeout,
    409: errors.Conflict,
    413: errors.PayloadTooLarge,
    414: errors.UriTooLong,
    416: errors.RangeNotSatisfiable,
    417: errors.ExpectationFailed,
    429: errors.TooManyRequests,
    431: errors.HeaderFieldsTooLarge,
    503: errors.ServiceUnavailable,
    507: errors.DiskFull,
}


@pytest.mark.parametrize(("status", "cls"), sorted(MAPPED.items()))
def test_a_status_is_the_error_class_that_has_it(status: int, cls: type[errors.WeedError]) -> None:
    exc = error_for(status, "said no")
    assert type(exc) is cls and exc.status == status and exc.message == "said no"


@pytest.mark.parametrize("status", [402, 410, 418, 500, 501, 502, 504, 599, 302, 999])
def test_any_other_status_is_a_weed_error(status: int) -> None:
    exc = error_for(status, "odd")
    assert type(exc) is errors.WeedError and exc.status == 500


def test_every_status_a_weedpy_server_renders_comes_back_as_its_class() -> None:
    """What httpkit sends for an error is understood as that error's family on the way back."""
    for name in errors.__all__:
        cls = getattr(errors, name)
        if not isinstance(cls, type):
            continue  # errors.error_for_status, the mapping itself
        back = type(error_for(cls.status, "x"))
        assert issubclass(cls, back), (name, cls.status, back)


def test_a_caller_narrows_a_status_to_a_subclass_only() -> None:
    narrow = {404: errors.VolumeNotFound, 406: errors.NoFreeSlots}
    assert type(error_for(404, "x", narrow=narrow)) is errors.VolumeNotFound
    assert type(error_for(406, "x", narrow=narrow)) is errors.NoFreeSlots
    assert type(error_for(400, "x", narrow=narrow)) is errors.BadRequest
    with pytest.raises(TypeError, match="does not narrow"):
        error_for(404, "x", narrow={404: errors.Conflict})


def test_headers_and_context_travel_with_the_error() -> None:
    exc = error_for(503, "busy", headers={"Retry-After": "2"}, url="http://h/x")
    assert exc.headers == {"Retry-After": "2"} and exc.message == "busy (url=http://h/x)"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"error":"volume 3 not found"}', "volume 3 not found"),
        (b'{"error":""}', '{"error":""}'),
        (b"[1]", "[1]"),
        (b"  plain text\n", "plain text"),
        (b"\xff\xfe", "\ufffd\ufffd"),
        (b"", ""),
    ],
)
def test_the_servers_own_message_is_kept(body: bytes, message: str) -> None:
    assert error_message(body) == message


def test_a_reply_outside_the_expected_statuses_raises_its_error() -> None:
    ok = Reply(206, {}, b"part")
    assert ok.expect("read") is ok
    assert Reply(404, {}, b"").expect("read", ok=(404,)).status == 404
    with pytest.raises(errors.NeedleNotFound, match=r"^read answered 404: gone$"):
        Reply(404, {}, b'{"error":"gone"}').expect("read", narrow={404: errors.NeedleNotFound})
    with pytest.raises(errors.WeedError, match=r"answered 200: 200$"):
        Reply(200, {}, b"").expect("read", ok=(206,))
