"""Unit-style tests of the volume server's request parsing: URL forms, ranges, conditionals,
uploads and MIME types. No sockets."""

from __future__ import annotations

import base64
import gzip
import hashlib

import orjson
import pytest

from seaweed_py.errors import BadRequest, InvalidFileId, PayloadTooLarge, RangeNotSatisfiable
from seaweed_py.formats.ttl import Ttl
from seaweed_py.volume.conditional import http_date, is_not_modified, parse_http_date
from seaweed_py.volume.mime import detect_content_type, extension, type_by_extension
from seaweed_py.volume.ranges import ByteRange, multipart_byteranges, plan_ranges
from seaweed_py.volume.upload import (
    UploadOptions,
    canonical_header_name,
    is_compressible,
    parse_upload,
)
from seaweed_py.volume.urls import parse_blob_path, parse_write_path

# ------------------------------------------------------------------ URL forms


@pytest.mark.parametrize(
    ("path", "filename", "ext"),
    [
        ("/3,01637037d6", "", ""),
        ("/3,01637037d6.jpg", "", ".jpg"),
        ("/3/01637037d6", "", ""),
        ("/3/01637037d6.jpg", "", ".jpg"),
        ("/3/01637037d6/my.jpg", "my.jpg", ".jpg"),
        ("/a/b/c/3,01637037d6", "", ""),
    ],
)
def test_every_read_url_form_names_the_same_needle(path: str, filename: str, ext: str) -> None:
    p = parse_blob_path(path)
    assert (p.volume_id, p.key, p.cookie) == (3, 1, 0x637037D6)
    assert (p.filename, p.ext) == (filename, ext)


def test_batch_suffix_adds_to_the_key() -> None:
    p = parse_blob_path("/3,01637037d6_4")
    assert (p.key, p.cookie, p.fid_text) == (5, 0x637037D6, "01637037d6_4")


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/3",
        "/invalid,needle",
        "/not-a-vid/not-a-fid",
        "/1,ffffffffffffffff00000000_1",
        "/1,4ed4c811",
        "/x,01637037d6",
    ],
)
def test_malformed_read_paths_are_rejected(path: str) -> None:
    with pytest.raises(InvalidFileId):
        parse_blob_path(path)


def test_writes_accept_the_comma_form_only() -> None:
    p = parse_write_path("/3,01637037d6.jpg")
    assert (p.volume_id, p.key, p.cookie, p.ext) == (3, 1, 0x637037D6, ".jpg")
    with pytest.raises(InvalidFileId):
        parse_write_path("/3/01637037d6")


# ------------------------------------------------------------------ ranges


def test_no_range_header_means_whole_body() -> None:
    assert plan_ranges(None, 10) is None
    assert plan_ranges("", 10) is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-4", (ByteRange(0, 5),)),
        ("bytes=2-", (ByteRange(2, 8),)),
        ("bytes=-3", (ByteRange(7, 3),)),
        ("bytes=-30", (ByteRange(0, 10),)),
        ("bytes=5-100", (ByteRange(5, 5),)),
        ("bytes=0-1,4-5", (ByteRange(0, 2), ByteRange(4, 2))),
        # positions of any length are clamped like any other past the end (as by the
        # reference), never handed to int() (a 4300-digit limit: a 500)
        ("bytes=0-" + "9" * 5000, (ByteRange(0, 10),)),
        ("bytes=-" + "9" * 5000, (ByteRange(0, 10),)),
    ],
)
def test_single_suffix_and_multiple_ranges(header: str, expected: tuple[ByteRange, ...]) -> None:
    assert plan_ranges(header, 10) == expected


def test_ranges_adding_up_past_the_file_are_ignored_quirk_a7() -> None:
    # The whole body is sent (the reference sends an empty 200).
    assert plan_ranges("bytes=0-10,5-15", 16) is None
    assert plan_ranges("bytes=0-7,8-15", 16) == (ByteRange(0, 8), ByteRange(8, 8))


@pytest.mark.parametrize(
    "header",
    [
        "items=0-1",
        "bytes=9999-10000",
        "bytes=5-2",
        "bytes=a-b",
        "bytes=10-",
        "bytes=-0",
        "bytes=" + "9" * 5000 + "-",
        "bytes=\uff11-2",
    ],
)
def test_unsatisfiable_ranges_raise_416_with_the_size(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable) as info:
        plan_ranges(header, 10)
    assert info.value.headers["Content-Range"] == "bytes */10"


def test_content_range_and_multipart_body() -> None:
    data = b"0123456789abcdef"
    ranges = plan_ranges("bytes=0-1,4-5", len(data))
    assert ranges is not None
    assert ranges[0].content_range(16) == "bytes 0-1/16"
    body, ctype = multipart_byteranges(
        ranges, 16, "text/plain", lambda s, n: data[s : s + n], "BOUND"
    )
    assert ctype == "multipart/byteranges; boundary=BOUND"
    assert body == (
        b"--BOUND\r\nContent-Range: bytes 0-1/16\r\nContent-Type: text/plain\r\n\r\n01"
        b"\r\n--BOUND\r\nContent-Range: bytes 4-5/16\r\nContent-Type: text/plain\r\n\r\n45"
        b"\r\n--BOUND--\r\n"
    )


# ------------------------------------------------------------------ conditionals


def test_http_date_round_trip() -> None:
    assert http_date(1700000000) == "Tue, 14 Nov 2023 22:13:20 GMT"
    assert parse_http_date("Tue, 14 Nov 2023 22:13:20 GMT") == 1700000000
    assert parse_http_date("yesterday") is None


def test_if_modified_since_wins_over_a_non_matching_etag_quirk_a8() -> None:
    ims = http_date(1700000000)
    assert is_not_modified(ims, '"other"', 1700000000, '"9a71bb4c"')
    assert not is_not_modified(http_date(1699999999), None, 1700000000, '"9a71bb4c"')


def test_if_none_match_needs_the_exact_quoted_etag() -> None:
    assert is_not_modified(None, '"9a71bb4c"', 1700000000, '"9a71bb4c"')
    assert not is_not_modified(None, "9a71bb4c", 1700000000, '"9a71bb4c"')
    assert not is_not_modified(None, "*", 1700000000, '"9a71bb4c"')
    assert not is_not_modified("garbage", '"x"', 1700000000, '"9a71bb4c"')


# ------------------------------------------------------------------ MIME


def test_type_by_extension_prefers_go_builtins_then_the_system_database() -> None:
    assert type_by_extension(".jpg") == "image/jpeg"
    assert type_by_extension(".JPG") == "image/jpeg"
    assert type_by_extension(".html") == "text/html; charset=utf-8"
    assert type_by_extension(".nosuchext") == ""
    assert type_by_extension("") == ""


def test_extension_is_go_filepath_ext() -> None:
    assert extension("a/b.c/file") == ""
    assert extension("3,01637037d6") == ""
    assert extension("x.tar.gz") == ".gz"


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (b"hello", "text/plain; charset=utf-8"),
        (b"\x89PNG\r\n\x1a\nrest", "image/png"),
        (b"  <html><body>", "text/html; charset=utf-8"),
        (b"<?xml version='1.0'?>", "text/xml; charset=utf-8"),
        (b"\x00\x01\x02", "application/octet-stream"),
    ],
)
def test_detect_content_type(data: bytes, mime: str) -> None:
    assert detect_content_type(data) == mime


# ------------------------------------------------------------------ uploads

_NOW = 1700000000
_LIMIT = 1 << 30


def _opts(query: dict[str, str] | None = None) -> UploadOptions:
    return UploadOptions.from_query(query or {}, _NOW)


def _multipart(parts: list[tuple[str, str | None, str | None, bytes]]) -> tuple[bytes, str]:
    out = b""
    for field, filename, ctype, data in parts:
        disp = f'form-data; name="{field}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--XyZ\r\nContent-Disposition: {disp}\r\n".encode()
        if ctype:
            out += f"Content-Type: {ctype}\r\n".encode()
        out += b"\r\n" + data + b"\r\n"
    return out + b"--XyZ--\r\n", "multipart/form-data; boundary=XyZ"


def test_multipart_first_file_part_whatever_its_field_name() -> None:
    body, ctype = _multipart([("anything", "photo.jpg", None, b"\xff\xd8\xffjpeg")])
    up = parse_upload("POST", "/3,01637037d6", {"content-type": ctype}, body, _opts(), _LIMIT)
    assert (up.data, up.name, up.mime, up.original_size) == (
        b"\xff\xd8\xffjpeg",
        "photo.jpg",
        "image/jpeg",
        7,
    )
    assert not up.gzipped


def test_multipart_skips_a_leading_text_field_for_the_first_part_with_a_file_name() -> None:
    body, ctype = _multipart([("ts", None, None, b"123"), ("f", "a.bin", "x/custom", b"DATA")])
    up = parse_upload("POST", "/3,01637037d6", {"content-type": ctype}, body, _opts(), _LIMIT)
    assert (up.data, up.name, up.mime) == (b"DATA", "a.bin", "x/custom")
    assert up.options.last_modified == _NOW  # quirk A11: form fields are not options


def test_multipart_windows_path_is_stripped() -> None:
    body, ctype = _multipart([("file", "C:\\Users\\me\\report.pdf", None, b"%PDF-1.4")])
    up = parse_upload("POST", "/3,01637037d6", {"content-type": ctype}, body, _opts(), _LIMIT)
    assert up.name == "report.pdf"


def test_raw_upload_without_disposition_is_named_after_the_fid_quirk_a3() -> None:
    up = parse_upload(
        "PUT",
        "/3,01637037d6",
        {"content-type": "application/octet-stream"},
        b"\x00\x01",
        _opts(),
        _LIMIT,
    )
    assert (up.name, up.mime, up.data) == ("3,01637037d6", "application/octet-stream", b"\x00\x01")


def test_raw_upload_name_from_content_disposition() -> None:
    headers = {"content-disposition": 'attachment; filename="pic.png"', "content-type": ""}
    up = parse_upload("PUT", "/3,01637037d6", headers, b"\x89PNG\r\n\x1a\n", _opts(), _LIMIT)
    assert (up.name, up.mime) == ("pic.png", "image/png")
    up = parse_upload(
        "PUT", "/3,01637037d6", {"content-disposition": "name=x.gif"}, b"GIF89a", _opts(), _LIMIT
    )
    assert up.name == "x.gif"


def test_post_without_content_type_or_boundary_is_rejected() -> None:
    with pytest.raises(BadRequest, match="multipart"):
        parse_upload("POST", "/3,01637037d6", {}, b"x", _opts(), _LIMIT)
    with pytest.raises(BadRequest, match="boundary"):
        parse_upload(
            "POST", "/3,01637037d6", {"content-type": "multipart/form-data"}, b"x", _opts(), _LIMIT
        )


def test_gzip_uploads_are_kept_compressed_and_report_the_plain_size() -> None:
    packed = gzip.compress(b"hello " * 100)
    headers = {"content-type": "text/plain", "content-encoding": "gzip"}
    up = parse_upload("PUT", "/3,01637037d6", headers, packed, _opts(), _LIMIT)
    assert (up.data, up.gzipped, up.original_size) == (packed, True, 600)


def test_compressible_text_is_gzipped_when_it_saves_enough() -> None:
    text = b"".join(b"%d\n" % i for i in range(2000))
    up = parse_upload("PUT", "/3,01637037d6", {"content-type": "text/plain"}, text, _opts(), _LIMIT)
    assert up.gzipped and gzip.decompress(up.data) == text and up.original_size == len(text)
    tiny = parse_upload(
        "PUT", "/3,01637037d6", {"content-type": "text/plain"}, b"hi", _opts(), _LIMIT
    )
    assert not tiny.gzipped
    replica = parse_upload(
        "PUT",
        "/3,01637037d6",
        {"content-type": "text/plain"},
        text,
        _opts({"type": "replicate"}),
        _LIMIT,
    )
    assert not replica.gzipped


def test_compression_rules_use_the_extension_not_the_base_name_quirk_a4() -> None:
    assert is_compressible(".json", "") == (True, True)
    assert is_compressible(".png", "") == (False, True)
    assert is_compressible("", "image/svg+xml") == (False, True)
    assert is_compressible(".svg", "image/svg+xml") == (True, True)
    assert is_compressible("", "application/atom+xml") == (True, True)
    assert is_compressible("", "application/x-zstd") == (False, True)
    assert is_compressible("", "audio/wav") == (True, True)
    assert is_compressible(".bin", "application/octet-stream") == (False, False)


def test_gzip_bombs_are_refused_without_unpacking_them_in_memory() -> None:
    bomb = gzip.compress(bytes(64 << 20))  # 64 MiB of zeros in ~64 KiB
    headers = {"content-type": "text/plain", "content-encoding": "gzip"}
    with pytest.raises(PayloadTooLarge):
        parse_upload("PUT", "/3,01637037d6", headers, bomb, _opts(), 1 << 20)
    with pytest.raises(BadRequest, match="gzip"):
        parse_upload("PUT", "/3,01637037d6", headers, bomb[: len(bomb) // 2], _opts(), _LIMIT)


def test_content_md5_mismatch_is_rejected_and_a_match_is_kept() -> None:
    with pytest.raises(BadRequest, match="Content-MD5"):
        parse_upload(
            "PUT",
            "/3,01637037d6",
            {"content-md5": "AAAAAAAAAAAAAAAAAAAAAA=="},
            b"x",
            _opts(),
            _LIMIT,
        )
    good = base64.b64encode(hashlib.md5(b"x").digest()).decode()
    up = parse_upload("PUT", "/3,01637037d6", {"content-md5": good}, b"x", _opts(), _LIMIT)
    assert up.content_md5 == good


def test_seaweed_headers_become_canonical_pairs() -> None:
    headers = {"seaweed-foo": "bar", "seaweed-x-trace-id": "7", "x-other": "no"}
    up = parse_upload("PUT", "/3,01637037d6", headers, b"x", _opts(), _LIMIT)
    assert orjson.loads(up.pairs) == {"Foo": "bar", "X-Trace-Id": "7"}
    assert canonical_header_name("content-md5") == "Content-Md5"


def test_names_of_256_bytes_or_more_are_dropped_quirk_a12() -> None:
    long = "n" * 252 + ".txt"
    up = parse_upload(
        "PUT", "/3,01637037d6", {"content-disposition": f"filename={long}"}, b"x", _opts(), _LIMIT
    )
    assert up.name == ""


def test_query_options() -> None:
    opts = UploadOptions.from_query({"ts": "1600000000", "ttl": "3d", "cm": "true"}, _NOW)
    assert (opts.last_modified, opts.ttl, opts.chunk_manifest) == (
        1600000000,
        Ttl.parse("3d"),
        True,
    )
    assert not opts.replicate
