"""The S3 backend against a real S3-compatible server (weed's gateway, tests/s3_server.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from seaweed_py.errors import NotFound, RemoteStorageError
from seaweed_py.storage.backend import Backends, RangeCache, RemoteDatFile, S3Backend, S3Settings
from seaweed_py.storage.backend.settings import BackendSource
from tests import s3_server

s3 = s3_server.s3


def backend(s3: s3_server.S3Server, bucket: str, **over: str) -> S3Backend:
    settings = BackendSource(env=s3.env(bucket, **over), search_dirs=()).load()
    return Backends(settings).get("s3")


def test_upload_read_ranges_download_delete(s3: s3_server.S3Server, tmp_path: Path) -> None:
    store = backend(s3, s3.new_bucket(), WEEDPY_S3_PREFIX="p/q")
    blob = os.urandom(3 << 20)
    src = tmp_path / "v.dat"
    src.write_bytes(blob)
    seen: list[int] = []
    assert store.upload_file("p/q/7-x", src, seen.append) == len(blob)
    assert sum(seen) == len(blob)
    assert store.head("p/q/7-x").size == len(blob)
    assert store.read_range("p/q/7-x", 1000, 10) == blob[1000:1010]
    assert store.read_ranges("p/q/7-x", [(5, 3), (0, 0), (len(blob) - 4, 4)]) == [
        blob[5:8],
        b"",
        blob[-4:],
    ]
    out = tmp_path / "back.dat"
    store.download_file("p/q/7-x", out, len(blob))
    assert out.read_bytes() == blob
    assert [o.key for o in store.list("p/q/")] == ["p/q/7-x"]
    store.delete("p/q/7-x")
    store.delete("p/q/7-x")  # already gone: fine
    with pytest.raises(NotFound):
        store.read_range("p/q/7-x", 0, 1)


def test_remote_dat_file_merges_spans_and_caches(s3: s3_server.S3Server) -> None:
    store = backend(s3, s3.new_bucket())
    blob = os.urandom(1 << 20)
    store.put_bytes("obj", blob)
    remote = RemoteDatFile(store, "obj", len(blob), RangeCache(1 << 20))
    spans = [(i * 4096, 100) for i in range(0, 200, 3)]
    before = store.requests
    assert remote.read_spans(spans) == [blob[o : o + n] for o, n in spans]
    assert store.requests - before == 1  # neighbours in one GET
    before = store.requests
    assert remote.read_spans(spans[:5]) == [blob[o : o + n] for o, n in spans[:5]]
    assert remote.pread(50, spans[7][0]) == blob[spans[7][0] : spans[7][0] + 50]
    assert store.requests == before  # all from the cache
    assert remote.pread(100, len(blob) - 10) == blob[-10:]  # clipped at the recorded size
    assert remote.pread(5, len(blob)) == b""


def test_recorded_size_longer_than_the_object_is_an_error(s3: s3_server.S3Server) -> None:
    store = backend(s3, s3.new_bucket())
    store.put_bytes("short", b"0123456789")
    remote = RemoteDatFile(store, "short", 100)
    with pytest.raises(RemoteStorageError, match="answered 2 of 50 bytes"):
        remote.pread(50, 8)


def test_failures_are_one_line_without_the_secret(s3: s3_server.S3Server) -> None:
    bucket = s3.new_bucket()
    wrong = S3Backend(
        S3Settings(
            bucket=bucket, endpoint=s3.endpoint, access_key=s3.access_key, secret_key="WRONGsecret"
        )
    )
    with pytest.raises(RemoteStorageError) as caught:
        wrong.read_range("x", 0, 1)
    text = str(caught.value)
    assert "\n" not in text and "WRONGsecret" not in text and s3.secret_key not in text
    assert "SignatureDoesNotMatch" in text or "403" in text
    closed = S3Backend(
        S3Settings(bucket=bucket, endpoint="http://127.0.0.1:9", access_key="a", secret_key="b")
    )
    with pytest.raises(RemoteStorageError) as caught:
        closed.head("x")
    assert "\n" not in str(caught.value)
    with pytest.raises(NotFound) as missing:
        backend(s3, bucket).read_object("nothing/here")
    assert "\n" not in str(missing.value) and "nothing/here" in str(missing.value)
