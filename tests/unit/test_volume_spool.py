"""Spooled request bodies (`volume/spool.py`): read back in bounded pieces, parsed exactly like
bodies held in memory, and freed whatever happens while they arrive."""

from __future__ import annotations

import asyncio
import base64
import errno
import gzip
import hashlib
import os
import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from seaweed_py.errors import BadRequest, DiskFull, PayloadTooLarge
from seaweed_py.formats.ttl import Ttl
from seaweed_py.volume import spool as spool_module
from seaweed_py.volume.spool import SpooledBody, spool
from seaweed_py.volume.upload import UploadOptions, parse_spooled_upload, parse_upload

_OPTIONS = UploadOptions(last_modified=1, ttl=Ttl.EMPTY, chunk_manifest=False, replicate=False)
_FID_PATH = "/3,01637037d6"


async def _pieces(data: bytes, size: int = 4096) -> AsyncIterator[bytes]:
    for pos in range(0, len(data), size):
        yield data[pos : pos + size]


def _spooled(tmp_path: Path, data: bytes) -> SpooledBody:
    return asyncio.run(spool(_pieces(data), str(tmp_path)))


@pytest.fixture
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pieces of 64 bytes, so every pass crosses many piece boundaries."""
    monkeypatch.setattr(spool_module, "CHUNK", 64)


def _open_spool_files(directory: Path) -> list[str]:
    """This process's open files in `directory` (a spool file shows as `#<n> (deleted)`)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(directory)):
            found.append(target)
    return found


@pytest.mark.usefixtures("small_pieces")
def test_find_matches_bytes_find_across_piece_boundaries(tmp_path: Path) -> None:
    rng = random.Random(12)
    data = bytes(rng.choice(b"ab\r\n-") for _ in range(3000))
    body = _spooled(tmp_path, data)
    try:
        for _ in range(400):
            sub = bytes(rng.choice(b"ab\r\n-") for _ in range(rng.randint(1, 12)))
            start = rng.randint(-5, len(data) + 5)
            end = rng.choice([None, rng.randint(0, len(data) + 5)])
            assert body.find(sub, start, end) == data.find(sub, max(start, 0), end), (
                sub,
                start,
                end,
            )
        assert body.find(b"", 7) == 7 and body.find(b"\0") == -1
    finally:
        body.close()


@pytest.mark.usefixtures("small_pieces")
def test_chunks_and_reads_cover_exactly_the_range_asked(tmp_path: Path) -> None:
    data = os.urandom(1000)
    body = _spooled(tmp_path, data)
    try:
        assert len(body) == 1000
        for start, end in ((0, 1000), (5, 6), (63, 129), (999, 1000), (10, 10)):
            pieces = [bytes(p) for p in body.chunks(start, end)]
            assert b"".join(pieces) == data[start:end]
            assert all(0 < len(p) <= 64 for p in pieces)
            assert body.part(start, end).read_at(0, end - start) == data[start:end]
        assert body[10:20] == data[10:20] and body[995:2000] == data[995:]
        with pytest.raises(OSError):
            body.read_at(990, 20)  # past the end
    finally:
        body.close()


def test_a_slice_of_more_than_a_mebibyte_is_refused(tmp_path: Path) -> None:
    body = _spooled(tmp_path, b"x" * ((1 << 20) + 10))
    try:
        assert len(body[0 : 1 << 20]) == 1 << 20
        with pytest.raises(BadRequest, match="multipart framing"):
            body[0 : (1 << 20) + 1]
    finally:
        body.close()


def _multipart(*parts: tuple[str, str | None, bytes, dict[str, str]]) -> bytes:
    out = b""
    for field, filename, data, headers in parts:
        disposition = f'form-data; name="{field}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        head = f"--XyZ\r\nContent-Disposition: {disposition}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        out += head.encode() + b"\r\n" + data + b"\r\n"
    return out + b"--XyZ--\r\n"


def _cases() -> Iterator[tuple[str, str, dict[str, str], bytes]]:
    data = bytes(range(256)) * 40
    md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
    packed = gzip.compress(data)
    form = {"Content-Type": "multipart/form-data; boundary=XyZ"}
    yield "PUT", "raw", {"Content-Type": "application/x-custom"}, data
    yield "PUT", "raw md5", {"Content-MD5": md5}, data
    yield "PUT", "raw gzip", {"Content-Encoding": "gzip", "Content-Type": "text/plain"}, packed
    yield "POST", "first part", form, _multipart(("file", "a.bin", data, {}))
    yield (
        "POST",
        "later part, md5, gzip",
        form,
        _multipart(
            ("note", None, b"text first", {}),
            ("file", "C:\\dir\\b.txt", packed, {"Content-Encoding": "gzip", "Content-MD5": md5}),
        ),
    )


@pytest.mark.usefixtures("small_pieces")
@pytest.mark.parametrize(("method", "label", "headers", "body"), list(_cases()))
def test_a_spooled_body_parses_like_the_same_body_in_memory(
    tmp_path: Path, method: str, label: str, headers: dict[str, str], body: bytes
) -> None:
    lower = {k.lower(): v for k, v in headers.items()}
    spooled = _spooled(tmp_path, body)
    try:
        upload, start, end = parse_spooled_upload(
            method, _FID_PATH, lower, spooled, _OPTIONS, 1 << 20
        )
        data = b"".join(bytes(p) for p in spooled.chunks(start, end))
    finally:
        spooled.close()
    # (None of these is compressible: a spooled body is stored as sent, one in memory may
    # be compressed.)
    expected = parse_upload(method, _FID_PATH, lower, body, _OPTIONS, 1 << 20)
    assert upload._replace(data=data) == expected, label


@pytest.mark.usefixtures("small_pieces")
def test_spooled_checks_fail_as_in_memory_ones(tmp_path: Path) -> None:
    data = b"payload " * 500
    cases: list[tuple[dict[str, str], bytes, type[Exception], str]] = [
        ({"content-md5": "AAAAAAAAAAAAAAAAAAAAAA=="}, data, BadRequest, "Content-MD5"),
        ({"content-encoding": "gzip"}, gzip.compress(data)[:-9], BadRequest, "gzip"),
        ({"content-encoding": "gzip"}, gzip.compress(b"\0" * 50_000), PayloadTooLarge, "limited"),
        (
            {"content-type": "multipart/form-data; boundary=XyZ"},
            b"--XyZ\r\nContent-Disposition: form-data; name=f\r\n\r\nno end",
            BadRequest,
            "truncated",
        ),
    ]
    for headers, body, error, text in cases:
        spooled = _spooled(tmp_path, body)
        try:
            with pytest.raises(error, match=text):
                method = "POST" if "content-type" in headers else "PUT"
                parse_spooled_upload(method, _FID_PATH, headers, spooled, _OPTIONS, 20_000)
        finally:
            spooled.close()


def test_a_part_header_block_past_a_mebibyte_is_refused(tmp_path: Path) -> None:
    body = b"--XyZ\r\nX-Long: " + b"h" * (1 << 20) + b"\r\n\r\ndata\r\n--XyZ--\r\n"
    spooled = _spooled(tmp_path, body)
    try:
        with pytest.raises(BadRequest, match="part headers longer"):
            parse_spooled_upload(
                "POST",
                _FID_PATH,
                {"content-type": "multipart/form-data; boundary=XyZ"},
                spooled,
                _OPTIONS,
                1 << 30,
            )
    finally:
        spooled.close()


def test_a_body_that_fails_while_arriving_leaves_no_file(tmp_path: Path) -> None:
    async def cut_off() -> AsyncIterator[bytes]:
        yield b"x" * (3 << 20)
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        asyncio.run(spool(cut_off(), str(tmp_path)))
    assert _open_spool_files(tmp_path) == []
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_while_spooling_is_507(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class FullDisk:
        def __init__(self, real: BinaryIO) -> None:
            self.real = real

        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self) -> None:
            self.real.close()

    real_open = spool_module._temporary_file
    monkeypatch.setattr(spool_module, "_temporary_file", lambda d: FullDisk(real_open(d)))
    with pytest.raises(DiskFull):
        asyncio.run(spool(_pieces(b"y" * (2 << 20)), str(tmp_path)))
    assert _open_spool_files(tmp_path) == []
