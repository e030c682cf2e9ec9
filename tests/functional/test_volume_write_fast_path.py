"""The write path's shortcuts give exactly what the general code gives.

Each shortcut (the text sniff, the first-file-part upload parser, the upload URL parser, the
201 body) is compared with the general implementation it stands in for, over generated inputs
that hit both the shortcut and the cases it hands back.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import re
import zlib
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from seaweed_py.client.replicate import Replicator
from seaweed_py.errors import WeedError
from seaweed_py.formats.needle import FLAG_GZIP, Needle, upload_needle
from seaweed_py.httpkit.later import Later
from seaweed_py.httpkit.request import Request
from seaweed_py.httpkit.response import Response
from seaweed_py.storage.store import DiskLocation, Store
from seaweed_py.storage.volume import FsyncMode, Volume, WriteResult
from seaweed_py.types import Cookie, NeedleId
from seaweed_py.volume import upload as upload_mod
from seaweed_py.volume.mime import _sniff, detect_content_type
from seaweed_py.volume.stats import Stats
from seaweed_py.volume.upload import Upload, UploadOptions, parse_upload
from seaweed_py.volume.urls import BlobPath, _fast, parse_blob_path, parse_write_path
from seaweed_py.volume.write import BlobWriter, _described_response, _write_response

_NOW = 1700000000

# ------------------------------------------------------------------ sniffing

_SNIFF_PREFIXES = [
    b"",
    b"%PDF-",
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"GIF89a",
    b"BM",
    b"\x1f\x8b\x08",
    b"PK\x03\x04",
    b"RIFF\0\0\0\0WEBP",
    b"RIFF\0\0\0\0WAVE",
    b"  <html>",
    b"<p ",
    b"\t<?xml",
    b"\xfe\xff",
    b"\xff\xfe",
    b"\xef\xbb\xbf",
    b"OggS\x00",
    b"\x00asm",
    b"Rar!\x1a\x07",
    b"\x1aE\xdf\xa3",
    b"hello",
    b"\x01",
]


@given(
    st.sampled_from(_SNIFF_PREFIXES),
    st.binary(max_size=700) | st.text(max_size=600).map(str.encode),
)
@example(b"", b"")
@example(b"", b"x" * 511 + b"\x00")
@example(b"", b"x" * 512 + b"\x00")
def test_the_text_sniff_shortcut_agrees_with_every_rule(prefix: bytes, rest: bytes) -> None:
    data = prefix + rest
    assert detect_content_type(data) == _sniff(data[:512])


# ------------------------------------------------------------------ URLs

_HEX_DIGITS = "0123456789abcdefABCDEF"


@st.composite
def _write_urls(draw: st.DrawFn) -> str:
    vid = draw(st.text("0123456789", min_size=0, max_size=11))
    fid = draw(st.text(_HEX_DIGITS, min_size=0, max_size=26))
    if draw(st.booleans()):
        fid += "_" + draw(st.text("0123456789", min_size=0, max_size=20))
    if draw(st.integers(0, 4)) == 0:
        fid += draw(st.sampled_from([".jpg", "x", "/", ",", "\u0661"]))
    return draw(st.sampled_from(["/", "/x/", "", "//"])) + vid + "," + fid


def _parsed(parse: object, path: str) -> BlobPath | tuple[type, str]:
    try:
        result = parse(path)  # type: ignore[operator]
    except WeedError as exc:
        return type(exc), str(exc)
    assert isinstance(result, BlobPath)
    return result


@given(_write_urls())
@example("/3,0112345678")
@example("/4294967295,ffffffffffffffff12345678_0")
@example("/3,ffffffffffffffff12345678_1")
def test_the_url_shortcut_reads_what_the_general_parser_reads(path: str) -> None:
    fast = _fast(path)
    if fast is not None:
        assert type(fast) is BlobPath
        # The general parser, reached through a path the shortcut does not take.
        assert fast == parse_write_path("/x" + path)
        assert fast == parse_blob_path("/a/b/c" + path)
    elif re.fullmatch(r"/[0-9]{1,9},[0-9a-fA-F]{9,24}(_[0-9]{1,18})?", path):
        # Handed back only when the delta overflows the key, which the general parser refuses.
        assert isinstance(_parsed(parse_write_path, path), tuple)


# ------------------------------------------------------------------ uploads

_BOUNDARIES = ["XyZ", "weedbenchboundary7f3a", '"quoted-bnd"', "a'b(c)"]
_FILENAMES = [
    None,
    "",
    "bench.bin",
    "a.txt",
    "photo.JPG",
    "C:\\dir\\x.json",
    "dir/",
    'q\\"uote.html',
    "é.css",
    "x" * 255 + ".txt",
    "é" * 130,
    ".txt",
    "noext",
]
_TYPES = [
    None,
    "",
    "application/octet-stream",
    "text/plain",
    "image/png",
    "application/json",
    "application/x-zstd",
    "text/html; charset=utf-8",
    "x" * 300,
]
_ENCODINGS = [None, None, None, "gzip", "GZip", "deflate"]


def _part(
    field: str,
    filename: str | None,
    ctype: str | None,
    encoding: str | None,
    md5: str | None,
    data: bytes,
    *,
    unquoted: bool = False,
) -> bytes:
    disposition = f'form-data; name="{field}"'
    if filename is not None:
        disposition += f"; filename={filename}" if unquoted else f'; filename="{filename}"'
    head = f"Content-Disposition: {disposition}\r\n"
    if ctype is not None:
        head += f"Content-Type: {ctype}\r\n"
    if encoding is not None:
        head += f"Content-Encoding: {encoding}\r\n"
    if md5 is not None:
        head += f"Content-MD5: {md5}\r\n"
    return head.encode() + b"\r\n" + data


_PATHS = [
    "/3,01637037d6",
    "/3,01637037d6.txt",
    "/3,01637037d6.PNG",
    "/3,01637037d6.tar.gz",
    "/3,01637037d6.bin",
    "/3,01637037d6." + "t" * 600,
]


@st.composite
def _uploads(draw: st.DrawFn) -> tuple[str, str, dict[str, str], bytes, UploadOptions, int]:
    boundary = draw(st.sampled_from(_BOUNDARIES))
    delimiter = b"--" + boundary.strip('"').encode()
    data = draw(
        st.sampled_from([b"", b"a" * 2000, b"\x00\x01" * 40, b"<html>hi</html>" * 9])
        | st.binary(max_size=300)
        | st.text(max_size=300).map(str.encode)
    )
    encoding = draw(st.sampled_from(_ENCODINGS))
    if encoding is not None and encoding.lower() == "gzip" and draw(st.booleans()):
        data = gzip.compress(data)
    md5 = draw(
        st.sampled_from(
            [
                None,
                None,
                None,
                None,
                "",
                "bad",
                base64.b64encode(hashlib.md5(data).digest()).decode(),
            ]
        )
    )
    part = _part(
        draw(st.sampled_from(["file", "other"])),
        draw(st.sampled_from(_FILENAMES)),
        draw(st.sampled_from(_TYPES)),
        encoding,
        md5,
        data,
        unquoted=draw(st.booleans()),
    )
    parts = [part]
    if draw(st.integers(0, 4)) == 0:
        parts.insert(0, _part("field", None, None, None, None, b"text"))
    if draw(st.booleans()):
        parts.append(_part("second", "b.txt", "text/plain", None, None, b"second file" * 5))
    body = b"".join(delimiter + b"\r\n" + p + b"\r\n" for p in parts) + delimiter + b"--\r\n"
    if draw(st.integers(0, 4)) == 0:
        body = draw(st.sampled_from([b"preamble\r\n", b"\r\n"])) + body
    if draw(st.integers(0, 9)) == 0:
        body = body[: draw(st.integers(0, len(body)))]
    headers = {
        "content-type": draw(
            st.sampled_from(
                [f"multipart/form-data; boundary={boundary}"] * 4
                + [
                    f'form-data; charset=x; BOUNDARY="{boundary.strip(chr(34))}"',
                    "multipart/form-data",
                ]
            )
        )
    }
    method = draw(st.sampled_from(["POST", "POST", "POST", "PUT"]))
    if draw(st.integers(0, 2)) == 0:  # a raw body, POST or PUT
        raw_type = draw(st.sampled_from([*_TYPES, "image/JPEG", "text/plain; charset=utf-8"]))
        headers = {} if raw_type is None else {"content-type": raw_type}
        body = data
        dispositions = [
            'attachment; filename="r.txt"',
            "inline",
            'name="n.css"',
            "attachment",
            'attachment; filename="C:\\x\\y.json"',
            "filename=z.html; name=q",
            'INLINE; name=""; filename="é.js"',
            "x" * 600,
        ]
        for name, values in (
            ("content-disposition", dispositions),
            ("content-encoding", ["gzip", "identity", ""]),
            ("content-md5", ["", "bad"]),
        ):
            if draw(st.integers(0, 3)) == 0:
                headers[name] = draw(st.sampled_from(values))
    if draw(st.booleans()):
        headers["seaweed-tag"] = draw(st.sampled_from(["v", "é", 'a"b']))
    query = draw(
        st.sampled_from([{}, {"cm": "true"}, {"type": "replicate"}, {"ttl": "3m"}, {"ts": "123"}])
    )
    limit = draw(st.sampled_from([1 << 30, 1 << 30, 1 << 30, 100, 0]))
    return (
        method,
        draw(st.sampled_from(_PATHS)),
        headers,
        body,
        UploadOptions.from_query(query, _NOW),
        limit,
    )


def _outcome(parse: object, *args: object) -> Upload | tuple[type, str]:
    try:
        result = parse(*args)  # type: ignore[operator]
    except WeedError as exc:
        return type(exc), str(exc)
    assert isinstance(result, Upload)
    return result


@settings(max_examples=500)
@given(_uploads())
def test_the_upload_shortcuts_store_what_the_general_parser_stores(
    case: tuple[str, str, dict[str, str], bytes, UploadOptions, int],
) -> None:
    method, path, headers, body, options, limit = case
    args = (method, path, headers, body, options, limit)
    assert _outcome(parse_upload, *args) == _outcome(upload_mod._parse_upload, *args)


def test_the_bench_upload_takes_the_shortcut_and_is_gzipped() -> None:
    data = b"qwertyuiopasdfghjklzxcvbnm" * 40
    body = (
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="bench.bin"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n--B--\r\n"
    )
    headers = {"content-type": "multipart/form-data; boundary=B"}
    options = UploadOptions.from_query({}, _NOW)
    fast = upload_mod._first_file_part(body, headers["content-type"], headers, options, 1 << 20)
    assert fast is not None
    assert (fast.name, fast.mime, fast.gzipped, fast.original_size) == (
        "bench.bin",
        "",
        True,
        len(data),
    )
    assert zlib.decompress(fast.data, 47) == data
    assert fast == upload_mod._parse_upload("POST", "/3,01", headers, body, options, 1 << 20)


@pytest.mark.parametrize("size", [0, 1, 22, 23, 24, 100])
def test_data_too_short_to_shrink_by_a_tenth_is_stored_plain(size: int) -> None:
    data = b"a" * size
    packed = upload_mod._packed(data)
    gzipped = upload_mod._gzip(data)
    if len(gzipped) * 10 < size * 9:
        assert packed == gzipped
    else:
        assert packed is None
    assert zlib.decompress(gzipped, 47) == data


def test_isal_gzip_output_is_plain_gzip() -> None:
    data = re.sub(rb"\s+", b" ", b"lorem ipsum dolor sit amet " * 200)
    assert gzip.decompress(upload_mod._gzip(data)) == data
    assert orjson.loads(gzip.decompress(upload_mod._gzip(b'{"a":1}'))) == {"a": 1}


# ------------------------------------------------------------------ answers


@given(
    name=st.sampled_from(["", "bench.bin", 'q"uote\\.txt', "é%d%s.txt", "\u2028\x01"]),
    mime=st.sampled_from(["", "text/plain; charset=utf-8", "a%b"]),
    size=st.sampled_from([0, 1, 1024, 1 << 40]),
    md5=st.sampled_from(["", "1B2M2Y8AsgTpgAmY7PhCfg==", "x\r\ny"]),
    data=st.binary(min_size=1, max_size=20),
    unchanged=st.booleans(),
)
def test_the_templated_answer_is_the_described_one(
    name: str,
    mime: str,
    size: int,
    md5: str,
    data: bytes,
    unchanged: bool,
) -> None:
    upload = Upload(data, name, mime, False, size, b"", md5, UploadOptions.from_query({}, _NOW))
    needle = upload_needle(
        Cookie(1), NeedleId(2), data, name.encode(), mime.encode(), _NOW, None, b"", False, False
    )
    fast = _write_response(upload, needle, unchanged=unchanged)
    described = _described_response(upload, needle, unchanged=unchanged)
    assert (fast.status, fast.headers, fast.raw_headers, fast.body) == (
        described.status,
        described.headers,
        described.raw_headers,
        described.body,
    )


# ------------------------------------------------------------------ the inline write


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store([DiskLocation(tmp_path, 2)], fsync_mode=FsyncMode.NONE)
    store.load()
    store.allocate(3)
    yield store
    store.close()


def _writer(store: Store, tmp_path: Path) -> BlobWriter:
    return BlobWriter(
        store,
        None,
        Replicator(),
        self_url=lambda: "127.0.0.1:1",
        file_size_limit=1 << 20,
        spool_dir=str(tmp_path),
        stats=Stats(store, [str(tmp_path)], version="test", heartbeating=lambda: False),
        clock=lambda: float(_NOW),
    )


def _bench_request(key: int, data: bytes) -> Request:
    body = (
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="bench.bin"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n--B--\r\n"
    )
    return Request(
        "POST",
        f"/3,{key:x}12345678",
        headers={"Content-Type": "multipart/form-data; boundary=B"},
        body=body,
    )


def test_a_bench_upload_is_stored_gzipped_and_answered_inline(store: Store, tmp_path: Path) -> None:
    writer = _writer(store, tmp_path)
    data = b"qwertyuiopasdfghjklzxcvbnm" * 40
    for key in (1, 2):  # the second meets the durability future the first one settled
        answer = writer.write(_bench_request(key, data))
        assert isinstance(answer, Response) and answer.status == 201
        volume = store.get(3)
        assert volume is not None
        stored = volume.read(key, 0x12345678)
        assert stored.flags & FLAG_GZIP and zlib.decompress(stored.data, 47) == data
        assert (stored.name, stored.mime, stored.last_modified) == (b"bench.bin", b"", _NOW)
        assert isinstance(answer.body, bytes)
        assert orjson.loads(answer.body) == {
            "name": "bench.bin",
            "size": len(data),
            "eTag": stored.etag,
        }
        assert answer.raw_headers.endswith(f'ETag: "{stored.etag}"\r\nContent-MD5: \r\n'.encode())


async def test_a_failed_sync_fails_the_write_every_time(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = _writer(store, tmp_path)
    volume = store.get(3)
    assert volume is not None
    failed: Future[None] = Future()
    failed.set_exception(OSError("fsync failed"))
    real_write = Volume.write

    def write_then_fail(self: Volume, needle: Needle, origin_ns: int | None = None) -> WriteResult:
        return replace(real_write(self, needle, origin_ns=origin_ns), durable=failed)

    monkeypatch.setattr(Volume, "write", write_then_fail)
    for key in (1, 2):  # a failed future is never taken for a settled one
        answer = writer.write(_bench_request(key, b"x" * 100))
        assert isinstance(answer, Later)  # given at once: the future failed already
        with pytest.raises(OSError, match="fsync failed"):
            await answer
