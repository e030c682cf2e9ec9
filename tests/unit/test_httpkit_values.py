"""httpkit's values without sockets: router, request, response rendering, limits, streams."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from seaweed_py import httpkit
from seaweed_py.errors import NoWritableVolume, PayloadTooLarge, VolumeNotFound
from seaweed_py.httpkit import (
    Limits,
    Request,
    RequestStream,
    Response,
    Router,
    error_response,
    json_response,
)
from seaweed_py.httpkit.response import encode_headers, status_line


def _ok(req: Request) -> Response:
    return Response(200)


def test_exports_are_complete() -> None:
    for name in httpkit.__all__:
        assert hasattr(httpkit, name), name


def test_router_exact_paths_then_fallback() -> None:
    router = Router()
    router.add("/dir/assign", _ok, ["get", "POST"])
    assert router.match("/dir/assign") is router.exact["/dir/assign"]
    assert router.match("/3,01637037d6") is None  # no fallback yet: 404
    router.fallback(_ok)
    fallback = router.match("/3,01637037d6")
    assert fallback is not None and fallback.methods is None  # handles methods itself
    assert router.paths == ["/dir/assign"]


def test_route_accepting_get_accepts_head_and_names_allow() -> None:
    router = Router()
    router.add("/healthz", _ok, ["GET"])
    route = router.exact["/healthz"]
    assert route.methods == frozenset({"GET", "HEAD"})
    assert route.allow == "GET, HEAD"


@pytest.mark.parametrize(
    ("path", "methods", "max_body"),
    [("no-slash", None, None), ("/x", [], None), ("/x", None, -1)],
)
def test_router_rejects_bad_routes(
    path: str, methods: list[str] | None, max_body: int | None
) -> None:
    with pytest.raises(ValueError):
        Router().add(path, _ok, methods, max_body=max_body)


def test_router_refuses_duplicates() -> None:
    router = Router()
    router.add("/a", _ok)
    with pytest.raises(ValueError):
        router.add("/a", _ok)
    router.fallback(_ok)
    with pytest.raises(ValueError):
        router.fallback(_ok)


def test_request_headers_are_lower_case_first_value_wins() -> None:
    raw = [(b"Content-Type", b"text/plain"), (b"X-Dup", b"one"), (b"x-dup", b"two")]
    req = Request("GET", "/", raw_headers=raw)
    assert req.headers == {"content-type": "text/plain", "x-dup": "one"}
    built = Request("GET", "/", headers={"Range": "bytes=0-1"})
    assert built.headers == {"range": "bytes=0-1"}


def test_request_query_first_value_wins_and_keeps_blanks() -> None:
    req = Request("GET", "/dir/lookup", "volumeId=3&volumeId=4&collection=&x=a%20b+c")
    assert req.query == {"volumeId": "3", "collection": "", "x": "a b c"}
    assert Request("GET", "/").query == {}


def test_form_merges_query_with_urlencoded_body_body_wins() -> None:
    req = Request(
        "POST",
        "/dir/assign",
        "count=1&dataCenter=dc1",
        {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        b"count=7&replication=001",
    )
    assert req.form() == {"count": "7", "dataCenter": "dc1", "replication": "001"}


def test_form_takes_the_text_fields_of_a_multipart_body() -> None:
    body = (
        b'--b0\r\nContent-Disposition: form-data; name="volumeId"\r\n\r\n3\r\n'
        b'--b0\r\nContent-Disposition: form-data; name="volumeId"\r\n\r\n4\r\n'
        b'--b0\r\nContent-Disposition: form-data; name="f"; filename="x.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\nfile bytes\r\n"
        b'--b0\r\nContent-Disposition: form-data; name="collection"\r\n\r\npics\r\n'
        b"--b0--\r\n"
    )
    req = Request(
        "POST",
        "/dir/lookup",
        "volumeId=9&pretty=y",
        {"Content-Type": "multipart/form-data; boundary=b0"},
        body,
    )
    assert req.form() == {"volumeId": "3", "collection": "pics", "pretty": "y"}
    broken = Request(
        "POST",
        "/",
        "a=1",
        {"Content-Type": "multipart/form-data; boundary=b0"},
        b"not multipart at all",
    )
    assert broken.form() == {"a": "1"}


def test_form_ignores_bodies_of_other_types_and_methods() -> None:
    json_body = Request("POST", "/", "a=1", {"Content-Type": "application/json"}, b"a=2")
    assert json_body.form() == {"a": "1"}
    get_body = Request(
        "GET", "/", "a=1", {"Content-Type": "application/x-www-form-urlencoded"}, b"a=2"
    )
    assert get_body.form() == {"a": "1"}


def test_json_response_is_compact_and_marks_json() -> None:
    resp = json_response({"fid": "3,01637037d6", "count": 1}, 201, {"X-Extra": "1"})
    assert resp.status == 201
    assert resp.body == b'{"fid":"3,01637037d6","count":1}'
    assert b"Content-Type: application/json\r\n" in resp.raw_headers
    assert b"X-Content-Type-Options: nosniff\r\n" in resp.raw_headers
    assert resp.headers == {"X-Extra": "1"}


def test_json_response_pretty_is_two_space_indent_without_newline() -> None:
    body = json_response({"a": [1], "b": {}}, pretty=True).body
    assert isinstance(body, bytes)
    assert body == b'{\n  "a": [\n    1\n  ],\n  "b": {}\n}'


def test_json_response_keeps_an_explicit_content_type_once() -> None:
    resp = json_response({}, headers={"Content-Type": "text/plain"})
    assert resp.raw_headers == b"X-Content-Type-Options: nosniff\r\n"


def test_error_response_carries_status_extra_and_headers() -> None:
    resp = error_response(VolumeNotFound("volume not found", extra={"volumeOrFileId": "9"}))
    assert resp.status == 404
    assert isinstance(resp.body, bytes)
    assert orjson.loads(resp.body) == {"volumeOrFileId": "9", "error": "volume not found"}
    busy = error_response(NoWritableVolume("no writable volumes", headers={"Retry-After": "2"}))
    assert (busy.status, busy.headers) == (503, {"Retry-After": "2"})


def test_encode_headers_refuses_header_injection() -> None:
    assert encode_headers({"ETag": '"ab"', "X-Name": "naïve"}) == (
        b'ETag: "ab"\r\nX-Name: na\xc3\xafve\r\n'
    )
    for bad in ({"X": "a\r\nSet-Cookie: x"}, {"X\n": "a"}, {"A:B": "c"}):
        with pytest.raises(ValueError):
            encode_headers(bad)


def test_status_lines() -> None:
    assert status_line(200) == b"HTTP/1.1 200 OK\r\n"
    assert status_line(308) == b"HTTP/1.1 308 Permanent Redirect\r\n"
    assert status_line(599) == b"HTTP/1.1 599 \r\n"
    with pytest.raises(ValueError):
        status_line(1000)


def test_limits_validate_and_derive_the_sweep_tick() -> None:
    assert Limits().tick == 0.25
    assert Limits(idle_timeout=0.2, header_timeout=0.2, body_timeout=0.2, linger=0.2).tick == 0.05
    with pytest.raises(ValueError):
        Limits(max_url=0)
    with pytest.raises(ValueError):
        Limits(idle_timeout=0)
    with pytest.raises(ValueError):
        Limits(max_body=-1)


async def test_request_stream_pauses_above_high_water_and_resumes_below_a_quarter() -> None:
    events: list[str] = []
    stream = RequestStream(
        None,
        high_water=100,
        pause=lambda: events.append("pause"),
        resume=lambda: events.append("resume"),
    )
    for _ in range(3):
        stream.feed(b"x" * 40)
    assert events == ["pause"]  # 120 > 100
    assert await stream.__anext__() == b"x" * 40
    assert events == ["pause"]  # 80 buffered, still above 25
    await stream.__anext__()
    await stream.__anext__()
    assert events == ["pause", "resume"]
    stream.feed_eof()
    assert stream.complete and stream.at_eof
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()


async def test_request_stream_delivers_then_raises_the_failure() -> None:
    stream = RequestStream(10)
    stream.feed(b"abc")
    stream.fail(ConnectionResetError("gone"))
    assert await stream.__anext__() == b"abc"
    with pytest.raises(ConnectionResetError):
        await stream.__anext__()


async def test_request_stream_read_waits_for_data_and_enforces_a_limit() -> None:
    stream = RequestStream(6)
    reader = asyncio.ensure_future(stream.read())
    await asyncio.sleep(0)
    stream.feed(b"abc")
    await asyncio.sleep(0)
    stream.feed(b"def")
    stream.feed_eof()
    assert await reader == b"abcdef"

    limited = RequestStream(None)
    limited.feed(b"x" * 10)
    limited.feed_eof()
    with pytest.raises(PayloadTooLarge):
        await limited.read(limit=5)


async def test_request_stream_first_read_sends_the_continue() -> None:
    sent: list[int] = []
    stream = RequestStream(3, on_first_read=lambda: sent.append(1))
    assert stream.continue_pending
    stream.feed(b"abc")
    stream.feed_eof()
    assert await stream.read() == b"abc"
    assert sent == [1] and not stream.continue_pending


async def test_request_read_returns_buffered_or_streamed_body() -> None:
    buffered = Request("POST", "/", body=b"small")
    assert await buffered.read() == b"small"
    streamed = Request("POST", "/")
    streamed.stream = RequestStream(5)
    streamed.stream.feed(b"large")
    streamed.stream.feed_eof()
    assert await streamed.read() == b"large"
    assert streamed.body == b"large" and streamed.stream is None


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        (b"/3,01637037d6.jpg?width=10", "/3,01637037d6.jpg", "width=10"),
        (b"/3/01637037d6/my%20file.jpg?a=%41", "/3/01637037d6/my file.jpg", "a=%41"),
        (b"/caf%C3%A9", "/café", ""),
        (b"/x?q#frag", "/x", "q"),
        (b"http://volume:8080/3,01?x=1", "/3,01", "x=1"),
        (b"http://volume:8080", "/", ""),
        (b"*", "*", ""),
    ],
)
def test_request_target_is_split_and_percent_decoded(target: bytes, path: str, query: str) -> None:
    from seaweed_py.httpkit.connection import _split_target

    assert _split_target(target) == (path, query)
