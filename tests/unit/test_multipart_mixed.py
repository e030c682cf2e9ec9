"""The multipart/mixed codec of batch reads: round trips however the body is cut, and junk."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seaweed_py.errors import BadRequest
from seaweed_py.formats.multipart_mixed import (
    MultipartMixedReader,
    boundary_of,
    closing_delimiter,
    encode_part,
)

B = "b0undary"


def body_of(parts: list[tuple[str, bytes]]) -> bytes:
    out = b"".join(
        encode_part(B, [("Content-ID", f"<{cid}>"), ("X-Weedpy-Status", "200")], data)
        for cid, data in parts
    )
    return out + closing_delimiter(B)


@given(
    st.lists(
        st.tuples(
            st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=12),
            st.binary(max_size=300),
        ),
        max_size=8,
    ),
    st.lists(st.integers(1, 97), min_size=1, max_size=20),
)
def test_round_trip_in_any_chunking(parts: list[tuple[str, bytes]], cuts: list[int]) -> None:
    body = body_of(parts)
    reader = MultipartMixedReader(B)
    got = []
    pos, i = 0, 0
    while pos < len(body):
        n = cuts[i % len(cuts)]
        got += reader.feed(body[pos : pos + n])
        pos += n
        i += 1
    reader.close()
    assert [(p.content_id, p.body) for p in got] == parts
    assert all(p.headers["x-weedpy-status"] == "200" for p in got)


def test_a_body_containing_the_boundary_is_fine() -> None:
    data = f"--{B}\r\n--{B}--\r\n".encode()
    reader = MultipartMixedReader(B)
    (part,) = reader.feed(body_of([("1,01", data)]))
    reader.close()
    assert part.body == data


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"junk" * 10, "no part delimiter"),
        (f"--{B}\r\nContent-ID: <x>\r\n\r\nabc\r\n".encode(), "without a Content-Length"),
        (f"--{B}\r\nContent-Length: 2\r\n\r\nabcd\r\n".encode(), "overruns"),
        (f"--{B}\r\nno colon\r\nContent-Length: 0\r\n\r\n\r\n".encode(), "bad part header"),
        (f"--{B}\r\nContent-Length: -1\r\n\r\n".encode(), "without a Content-Length"),
    ],
)
def test_malformed_bodies_are_refused(body: bytes, says: str) -> None:
    with pytest.raises(BadRequest, match=says):
        MultipartMixedReader(B).feed(body)


def test_truncated_body_and_trailing_data() -> None:
    reader = MultipartMixedReader(B)
    reader.feed(body_of([("a", b"x")])[:-5])
    with pytest.raises(BadRequest, match="without its closing delimiter"):
        reader.close()
    reader = MultipartMixedReader(B)
    reader.feed(body_of([]))
    with pytest.raises(BadRequest, match="after the closing"):
        reader.feed(b"more")


def test_boundary_of() -> None:
    assert boundary_of('multipart/mixed; boundary="a b"') == "a b"
    assert boundary_of("Multipart/Mixed;boundary=xyz; charset=x") == "xyz"
    for bad in ("text/plain", "multipart/mixed", "multipart/mixed; boundary="):
        with pytest.raises(BadRequest):
            boundary_of(bad)
