"""`upload_needle` and the one-join encoding of upload records agree with the general code."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from seaweed_py.formats.needle import (
    VERSION_2,
    VERSION_3,
    Needle,
    decode_needle,
    encode_needle,
    encode_needle_head,
    encode_needle_tail,
    upload_needle,
)
from seaweed_py.formats.ttl import Ttl
from seaweed_py.types import Cookie, NeedleId

_TTLS = st.sampled_from([None, Ttl.EMPTY, Ttl.parse("3m"), Ttl.parse("1d")])


@given(
    cookie=st.integers(0, 0xFFFFFFFF),
    key=st.integers(1, (1 << 64) - 1),
    data=st.binary(max_size=300),
    name=st.binary(max_size=260),
    mime=st.binary(max_size=40),
    last_modified=st.integers(0, (1 << 40) - 1),
    ttl=_TTLS,
    pairs=st.sampled_from([b"", b'{"A":"b"}']),
    gzipped=st.booleans(),
    chunk_manifest=st.booleans(),
)
def test_upload_needle_is_build_with_the_upload_fields(
    cookie: int,
    key: int,
    data: bytes,
    name: bytes,
    mime: bytes,
    last_modified: int,
    ttl: Ttl | None,
    pairs: bytes,
    gzipped: bool,
    chunk_manifest: bool,
) -> None:
    fast = upload_needle(
        Cookie(cookie),
        NeedleId(key),
        data,
        name,
        mime,
        last_modified,
        ttl,
        pairs,
        gzipped,
        chunk_manifest,
    )
    built = Needle.build(
        Cookie(cookie),
        NeedleId(key),
        data,
        name=name,
        mime=mime,
        last_modified=last_modified,
        ttl=ttl,
        pairs=pairs or None,
        gzipped=gzipped,
        chunk_manifest=chunk_manifest,
    )
    assert fast == built


def _outcome(needle: Needle, version: int, streamed: bool) -> bytes | tuple[type, str]:
    try:
        if streamed:
            return (
                encode_needle_head(needle, version=version)
                + needle.data
                + encode_needle_tail(needle, version=version, append_at_ns=77)
            )
        return encode_needle(needle, version, append_at_ns=77)
    except Exception as exc:  # the same refusal either way
        return type(exc), str(exc)


@given(
    data=st.binary(min_size=1, max_size=100),
    name=st.binary(max_size=260),
    mime=st.binary(max_size=260),
    last_modified=st.sampled_from([0, 1700000000, (1 << 40) - 1, 1 << 40, -1]),
    flags=st.sampled_from([0x0E, 0x0F, 0x8E, 0x8F, 0x4E, 0x1E, 0x2E, 0x0C, 0x10E, -2]),
    ttl=st.sampled_from([Ttl.EMPTY, Ttl.parse("3m")]),
    pairs=st.sampled_from([b"", b'{"A":"b"}']),
    version=st.sampled_from([VERSION_2, VERSION_3]),
)
def test_upload_records_encode_as_head_data_and_tail(
    data: bytes,
    name: bytes,
    mime: bytes,
    last_modified: int,
    flags: int,
    ttl: Ttl,
    pairs: bytes,
    version: int,
) -> None:
    needle = Needle(
        Cookie(0x12345678),
        NeedleId(0xABC),
        data,
        flags,
        name,
        mime,
        last_modified,
        ttl,
        pairs,
        checksum=0xDEADBEEF,
    )
    whole = _outcome(needle, version, streamed=False)
    assert whole == _outcome(needle, version, streamed=True)
    if isinstance(whole, bytes):
        assert len(whole) % 8 == 0
        back = decode_needle(whole, version, verify=False)
        assert (back.name, back.mime, back.data, back.append_at_ns) == (
            name,
            mime,
            data,
            77 if version == VERSION_3 else 0,
        )
