"""Volume server writes and deletes (spec §3.5, §3.6), the same assertions against both.

Where weedpy deliberately differs from a reference quirk, the test asserts the shared part and
names the docs/compat.md row for the rest.
"""

from __future__ import annotations

import hashlib
import os

import pytest

from tests.parity.blobs import (
    QUOTED_ETAG,
    assign,
    etag_of,
    key_of,
    other_cookie,
    put_raw,
    store,
    upload,
    with_key,
)
from tests.parity.client import get, multipart, request
from tests.parity.targets import Endpoints

pytestmark = pytest.mark.parity


def test_multipart_upload_answers_201_with_name_size_and_etag(cluster: Endpoints) -> None:
    data = os.urandom(3000)
    fid = assign(cluster).fid
    reply = upload(cluster.volume, fid, data, "blob.bin")
    assert reply.status == 201, reply.describe()
    assert reply.media_type() == "application/json"
    # No "mime": a part declared application/octet-stream stores no MIME type.
    assert reply.json() == {"name": "blob.bin", "size": 3000, "eTag": etag_of(data)}
    assert reply.header("ETag") == f'"{etag_of(data)}"'
    assert get(f"{cluster.volume}/{fid}").body == data


def test_multipart_upload_reports_the_declared_mime(cluster: Endpoints) -> None:
    fid = assign(cluster).fid
    data = b"\x89PNG\r\n\x1a\nnot really an image"
    reply = upload(cluster.volume, fid, data, "pic.png", content_type="image/png")
    assert reply.status == 201, reply.describe()
    assert reply.json() == {
        "name": "pic.png",
        "size": len(data),
        "eTag": etag_of(data),
        "mime": "image/png",
    }
    read = get(f"{cluster.volume}/{fid}")
    assert read.header("Content-Type") == "image/png"


def test_multipart_field_name_does_not_matter(cluster: Endpoints) -> None:
    fid = assign(cluster).fid
    body, form_type = multipart(b"any field name", "f.bin", field="upload")
    reply = request(
        "POST", f"{cluster.volume}/{fid}", headers={"Content-Type": form_type}, body=body
    )
    assert reply.status == 201, reply.describe()
    assert get(f"{cluster.volume}/{fid}").body == b"any field name"


def test_identical_reupload_answers_204_and_keeps_the_blob(cluster: Endpoints) -> None:
    data = b"written twice, stored once"
    fid = store(cluster, data, "twice.bin")
    again = upload(cluster.volume, fid, data, "twice.bin")
    assert again.status == 204, again.describe()
    assert again.body == b""
    assert again.header("ETag") == f'"{etag_of(data)}"'
    assert get(f"{cluster.volume}/{fid}").body == data


def test_changed_reupload_overwrites(cluster: Endpoints) -> None:
    fid = store(cluster, b"version one", "v.bin")
    reply = upload(cluster.volume, fid, b"version two", "v.bin")
    assert reply.status == 201, reply.describe()
    assert get(f"{cluster.volume}/{fid}").body == b"version two"


def test_raw_post_without_file_name_is_named_after_the_fid(cluster: Endpoints) -> None:
    # Quirk A3 (docs/compat.md): with no Content-Disposition the stored name is the fid.
    fid = assign(cluster).fid
    reply = put_raw(cluster.volume, fid, b'{"a":1}', "application/json", method="POST")
    assert reply.status == 201, reply.describe()
    assert reply.json() == {
        "name": fid,
        "size": 7,
        "eTag": etag_of(b'{"a":1}'),
        "mime": "application/json",
    }
    read = get(f"{cluster.volume}/{fid}")
    assert read.body == b'{"a":1}'
    assert read.header("Content-Type") == "application/json"
    assert read.header("Content-Disposition") == f'inline; filename="{fid}"'


def test_raw_put_takes_name_from_content_disposition(cluster: Endpoints) -> None:
    fid = assign(cluster).fid
    data = b"raw body with a name"
    headers = {"Content-Disposition": 'attachment; filename="pic.png"'}
    reply = put_raw(cluster.volume, fid, data, "image/png", headers=headers)
    assert reply.status == 201, reply.describe()
    assert reply.json() == {
        "name": "pic.png",
        "size": len(data),
        "eTag": etag_of(data),
        "mime": "image/png",
    }
    read = get(f"{cluster.volume}/{fid}")
    assert read.body == data
    assert read.header("Content-Type") == "image/png"
    assert read.header("Content-Disposition") == "inline; filename=pic.png"


TEXT_BODY = b"".join(b"hello text line number %d\n" % i for i in range(100))


@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_raw_octet_stream_text_is_stored_as_sent(cluster: Endpoints, method: str) -> None:
    # A declared octet-stream type is not sniffed on a raw body, so text is not compressed;
    # without a type the same text is sniffed and stored gzipped (spec §15.1).
    for content_type, stored_gzipped in (("application/octet-stream", False), ("", True)):
        if method == "POST" and not content_type:
            continue  # a POST without a type is not an upload (400)
        fid = assign(cluster).fid
        reply = put_raw(cluster.volume, fid, TEXT_BODY, content_type, method=method)
        assert reply.status == 201, reply.describe()
        read = get(f"{cluster.volume}/{fid}", accept_encoding="gzip")
        assert (read.header("Content-Encoding") == "gzip") is stored_gzipped, content_type
        plain = get(f"{cluster.volume}/{fid}")
        assert plain.body == TEXT_BODY
        assert plain.header("Content-Type") == "text/plain; charset=utf-8"


def test_upload_with_ts_sets_last_modified(cluster: Endpoints) -> None:
    fid = assign(cluster).fid
    assert upload(cluster.volume, fid, b"dated", "d.bin", query="ts=1700000000").status == 201
    read = get(f"{cluster.volume}/{fid}")
    assert read.header("Last-Modified") == "Tue, 14 Nov 2023 22:13:20 GMT"


def test_large_upload_reads_back_byte_exact(cluster: Endpoints) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    fid = store(cluster, data, "large.bin")
    read = get(f"{cluster.volume}/{fid}")
    assert read.status == 200
    assert read.header("Content-Length") == str(len(data))
    assert hashlib.sha256(read.body).digest() == hashlib.sha256(data).digest()
    middle = get(f"{cluster.volume}/{fid}", range="bytes=2000000-2000099")
    assert middle.status == 206
    assert middle.body == data[2000000:2000100]


@pytest.mark.parametrize(
    ("content_type", "needle"),
    [
        ("", "multipart"),  # POST with no Content-Type is taken as a form without one
        ("multipart/form-data", "boundary"),
    ],
)
def test_malformed_upload_is_400(cluster: Endpoints, content_type: str, needle: str) -> None:
    fid = assign(cluster).fid
    reply = put_raw(cluster.volume, fid, b"x", content_type, method="POST")
    assert reply.status == 400, reply.describe()
    assert reply.media_type() == "application/json"
    assert needle in reply.json()["error"]
    assert get(f"{cluster.volume}/{fid}").status == 404


def test_content_md5_mismatch_is_400(cluster: Endpoints) -> None:
    fid = assign(cluster).fid
    headers = {"Content-MD5": "AAAAAAAAAAAAAAAAAAAAAA=="}
    reply = put_raw(cluster.volume, fid, b"x", "application/octet-stream", headers=headers)
    assert reply.status == 400, reply.describe()
    assert "Content-MD5" in reply.json()["error"]
    assert get(f"{cluster.volume}/{fid}").status == 404


def test_write_with_wrong_cookie_is_rejected_and_changes_nothing(cluster: Endpoints) -> None:
    fid = store(cluster, b"the original", "orig.bin")
    forged = other_cookie(fid)
    for reply in (
        upload(cluster.volume, forged, b"an impostor", "orig.bin"),
        put_raw(cluster.volume, forged, b"an impostor", "application/octet-stream"),
    ):
        # The reference answers 500 "mismatching cookie"; what a client relies on is that the
        # write fails with a JSON error and the stored blob is untouched.
        assert reply.status >= 400, reply.describe()
        assert isinstance(reply.json()["error"], str)
        if cluster.impl == "weed":
            assert reply.status == 500
    assert get(f"{cluster.volume}/{fid}").body == b"the original"
    assert get(f"{cluster.volume}/{forged}").status == 404


def test_delete_answers_202_with_size_then_reads_404(cluster: Endpoints) -> None:
    data = os.urandom(100)
    fid = store(cluster, data, "d.bin", content_type="application/x-parity")
    reply = request("DELETE", f"{cluster.volume}/{fid}")
    assert reply.status == 202, reply.describe()
    assert reply.media_type() == "application/json"
    # Quirk A5 (docs/compat.md): `size` is the needle body size, not the file length:
    # 4 (data size) + 100 + 1 (flags) + 1+5 (name) + 1+20 (mime) + 5 (last modified).
    assert reply.json() == {"size": 137}
    assert get(f"{cluster.volume}/{fid}").status == 404
    again = request("DELETE", f"{cluster.volume}/{fid}")
    assert again.status == 404, again.describe()
    assert again.json() == {"size": 0}


def test_delete_of_a_key_never_written_is_404(cluster: Endpoints) -> None:
    fid = store(cluster, b"neighbour")
    never = with_key(fid, key_of(fid) + 1_000_000)
    reply = request("DELETE", f"{cluster.volume}/{never}")
    assert reply.status == 404, reply.describe()
    assert reply.json() == {"size": 0}


def test_delete_with_wrong_cookie_is_400_and_keeps_the_blob(cluster: Endpoints) -> None:
    fid = store(cluster, b"keep me")
    reply = request("DELETE", f"{cluster.volume}/{other_cookie(fid)}")
    assert reply.status == 400, reply.describe()
    assert isinstance(reply.json()["error"], str)
    assert get(f"{cluster.volume}/{fid}").body == b"keep me"


@pytest.mark.parametrize("path", ["/1,bad", "/1,ffffffffffffffff00000000_1"])
def test_delete_of_a_malformed_fid_is_400(cluster: Endpoints, path: str) -> None:
    reply = request("DELETE", f"{cluster.volume}{path}")
    assert reply.status == 400, reply.describe()
    assert isinstance(reply.json()["error"], str)


def test_etag_header_is_the_quoted_crc(cluster: Endpoints) -> None:
    fid = assign(cluster).fid
    reply = upload(cluster.volume, fid, b"hello", "h.bin")
    assert reply.header("ETag") == '"9a71bb4c"'  # the spec's worked example
    assert QUOTED_ETAG.match(get(f"{cluster.volume}/{fid}").header("ETag") or "")


@pytest.mark.parametrize("path", ["/invalid,12345678", "/1,bad"])
def test_upload_to_a_malformed_fid_is_400(cluster: Endpoints, path: str) -> None:
    body, form_type = multipart(b"x", "x.bin")
    reply = request(
        "POST", f"{cluster.volume}{path}", headers={"Content-Type": form_type}, body=body
    )
    assert reply.status == 400, reply.describe()
    assert isinstance(reply.json()["error"], str)


def test_upload_must_use_the_comma_form(cluster: Endpoints) -> None:
    # Quirk A10 (docs/compat.md, kept): `/vid/key` is a read URL only.
    fid = assign(cluster).fid
    vid, key_cookie = fid.split(",")
    reply = upload(cluster.volume, f"{vid}/{key_cookie}", b"slash form", "s.bin")
    assert reply.status == 400, reply.describe()
    assert get(f"{cluster.volume}/{fid}").status == 404


def test_multipart_form_fields_do_not_set_options(cluster: Endpoints) -> None:
    # Quirk A11 (docs/compat.md, kept): only the query string sets `ts`.
    fid = assign(cluster).fid
    boundary = "parityfields"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="ts"\r\n\r\n1700000000\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="f.bin"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\nfield test\r\n--{boundary}--\r\n"
    ).encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    reply = request("POST", f"{cluster.volume}/{fid}", headers=headers, body=body)
    assert reply.status == 201, reply.describe()
    read = get(f"{cluster.volume}/{fid}")
    assert read.body == b"field test"
    assert read.header("Last-Modified") != "Tue, 14 Nov 2023 22:13:20 GMT"


def test_read_deleted_returns_the_last_live_version(cluster: Endpoints) -> None:
    fid = store(cluster, b"deleted but kept until vacuum", "rd.bin")
    assert request("DELETE", f"{cluster.volume}/{fid}").status == 202
    assert get(f"{cluster.volume}/{fid}").status == 404
    kept = get(f"{cluster.volume}/{fid}?readDeleted=true")
    assert kept.status == 200, kept.describe()
    assert kept.body == b"deleted but kept until vacuum"
