"""Volumes cross between the implementations: same files, same answers.

- weedpy's storage engine writes a 5-byte-offset volume (the reference's "8000GB" layout, 17-byte
  index entries) with needles of every kind; the reference `weed` serves that directory and a
  GET of every needle gives the bodies and headers the needles call for.
- `weed` writes needles of every kind over HTTP; weedpy's `Volume.open` reads each one back with
  the bytes and metadata the reference stored.
- End to end, both ways: one implementation's volume server stores needles over HTTP (weedpy with
  `-largeDisk`), the other's serves a copy of that directory, and every GET gives the body, the
  stored (gzip) bytes and the headers the writer itself served.

Offsets beyond 32 GiB (where the fifth offset byte is used) are reached without writing 32 GiB:
a needle is placed past a sparse hole with weedpy's codecs, and both `weed` and weedpy's engine
must find it through the 17-byte index entry.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from seaweed_py.errors import NeedleNotFound
from seaweed_py.formats.idx import IDX5, encode_entry
from seaweed_py.formats.needle import Needle, body_size, encode_needle
from seaweed_py.storage.volume import Volume
from seaweed_py.types import Cookie, NeedleId
from tests.parity.blobs import assign, etag_of, key_of, put_raw, split_fid, upload
from tests.parity.client import get, request
from tests.parity.targets import Endpoints, skip_unless_runnable
from tests.servers import Impl, start_cluster

pytestmark = pytest.mark.parity

TEXT = b"the quick brown fox jumps over the lazy dog\n" * 50
TS = 1700000000
TS_HTTP = "Tue, 14 Nov 2023 22:13:20 GMT"
VOLUME_ID = 7
COLLECTION = "interop"
COOKIE = 0x1234ABCD


@dataclass(frozen=True)
class Blob:
    """One needle and what reading it must give."""

    key: int
    data: bytes  # the stored bytes (gzip bytes for a compressed needle)
    name: str = ""
    mime: str = ""
    last_modified: int = 0
    pairs: dict[str, str] = field(default_factory=dict)
    gzipped: bool = False

    @property
    def plain(self) -> bytes:
        """What a client that does not accept gzip receives."""
        return gzip.decompress(self.data) if self.gzipped else self.data

    @property
    def fid(self) -> str:
        key_hex = self.key.to_bytes(8, "big").lstrip(b"\0").hex()
        return f"{VOLUME_ID},{key_hex}{COOKIE:08x}"


def weedpy_blobs() -> tuple[list[Blob], list[Blob], Blob]:
    """(needles that stay, needles deleted afterwards, an old version of a live needle)."""
    live = [
        Blob(1, os.urandom(1000), name="a.bin", last_modified=TS),
        Blob(2, gzip.compress(TEXT), name="t.txt", mime="text/plain", gzipped=True),
        Blob(3, b"with pairs", name="p.bin", pairs={"Foo": "bar", "Camel-Case": "Xy"}),
        Blob(4, b"\x89PNG\r\n\x1a\nnot really", name="pic.png", mime="image/png"),
        Blob(5, b"unicode name", name="n\u00e4me.txt", mime="text/plain"),
        Blob(6, os.urandom(3 * 1024 * 1024 + 5), name="big.bin", last_modified=TS),
        Blob(7, b"no metadata at all"),
        Blob(0x1234567890ABCDEF, b"an eight-byte key", name="k.bin"),
        Blob(10, b"second version", name="v.bin"),
    ]
    deleted = [Blob(9, b"deleted soon", name="gone.bin")]
    return live, deleted, Blob(10, b"first version", name="v.bin")


def write_weedpy_volume(directory: Path, live: list[Blob], deleted: list[Blob], old: Blob) -> None:

    def needle(b: Blob) -> Needle:
        return Needle.build(
            Cookie(COOKIE),
            NeedleId(b.key),
            b.data,
            name=b.name.encode() if b.name else None,
            mime=b.mime.encode() if b.mime else None,
            last_modified=b.last_modified or None,
            pairs=json.dumps(b.pairs).encode() if b.pairs else None,
            gzipped=b.gzipped,
        )

    volume = Volume.create(directory, VOLUME_ID, collection=COLLECTION, large_disk=True)
    try:
        volume.write(needle(old))
        for b in [*live, *deleted]:
            volume.write(needle(b))
        for b in deleted:
            volume.delete(b.key, COOKIE)
    finally:
        volume.close()


def wait_for_volume(master: str, vid: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if get(f"{master}/dir/lookup?volumeId={vid}").status == 200:
            return
        time.sleep(0.1)
    raise AssertionError(f"volume {vid} never appeared at the master")


def assert_served(volume: str, b: Blob) -> None:
    url = f"{volume}/{b.fid}"
    plain = get(url)
    assert plain.status == 200, (b.key, plain.describe())
    assert hashlib.sha256(plain.body).digest() == hashlib.sha256(b.plain).digest(), b.key
    assert plain.header("Content-Length") == str(len(b.plain))
    assert plain.header("ETag") == f'"{etag_of(b.data)}"'
    assert plain.header("Content-Encoding") is None
    if not b.name.isascii():
        assert plain.header("Content-Disposition") == "inline; filename*=utf-8''n%C3%A4me.txt"
    elif b.name:
        assert plain.header("Content-Disposition") == f"inline; filename={b.name}"
    else:
        assert plain.header("Content-Disposition") is None
    if b.mime:
        assert plain.header("Content-Type") == b.mime
    if b.last_modified:
        assert plain.header("Last-Modified") == TS_HTTP
    for name, value in b.pairs.items():
        assert plain.header(name) == value
    if b.gzipped:
        zipped = get(url, accept_encoding="gzip")
        assert zipped.header("Content-Encoding") == "gzip"
        assert zipped.body == b.data


def place_beyond_32_gib(directory: Path, b: Blob) -> None:
    """Append `b` to the closed volume at a byte offset above 2**35, after a sparse hole."""
    base = f"{COLLECTION}_{VOLUME_ID}"
    offset = (32 << 30) + 4096  # unit offset 2**32 + 512: the fifth byte is 1
    needle = Needle.build(Cookie(COOKIE), NeedleId(b.key), b.data, name=b.name.encode())
    with (directory / f"{base}.dat").open("r+b") as dat:
        dat.seek(offset)
        dat.write(encode_needle(needle))
    with (directory / f"{base}.idx").open("ab") as idx:
        idx.write(encode_entry(b.key, offset, body_size(needle), IDX5))


def keeps_files_sparse(directory: Path) -> bool:
    probe = directory / "sparse-probe"
    with probe.open("wb") as f:
        f.truncate(1 << 30)
    try:
        return probe.stat().st_blocks * 512 < 1 << 20
    finally:
        probe.unlink()


def test_needles_beyond_32_gib_are_found_by_both(tmp_path: Path) -> None:
    skip_unless_runnable("weed")
    if not keeps_files_sparse(tmp_path):
        pytest.skip(f"{tmp_path} does not keep files sparse; the test would write 32 GiB")
    live, _, old = weedpy_blobs()
    write_weedpy_volume(tmp_path, live[:2], [], old)
    far = Blob(0xFA5, b"thirty-two gibibytes in", name="far.bin")
    place_beyond_32_gib(tmp_path, far)

    cluster = start_cluster("weed", tmp_path, volume_args=[f"-dir={tmp_path}"], wait_writable=False)
    try:
        wait_for_volume(cluster.master_url, VOLUME_ID)
        for b in (*live[:2], far):
            assert_served(cluster.volume_urls[0], b)
    finally:
        cluster.stop()
    volume = Volume.open(tmp_path, VOLUME_ID, collection=COLLECTION)
    try:
        assert volume.read(far.key, COOKIE).data == far.data
    finally:
        volume.close()


def test_weed_serves_a_volume_written_by_weedpy(tmp_path: Path) -> None:
    skip_unless_runnable("weed")
    written = tmp_path / "written"
    written.mkdir()
    live, deleted, old = weedpy_blobs()
    write_weedpy_volume(written, live, deleted, old)
    idx = written / f"{COLLECTION}_{VOLUME_ID}.idx"
    assert idx.stat().st_size % 17 == 0  # 5-byte offsets: 17-byte entries
    served = tmp_path / "served"
    shutil.copytree(written, served)

    # A second -dir overrides the empty one tests.servers gives each volume server.
    cluster = start_cluster("weed", tmp_path, volume_args=[f"-dir={served}"], wait_writable=False)
    try:
        volume = cluster.volume_urls[0]
        wait_for_volume(cluster.master_url, VOLUME_ID)
        for b in live:
            assert_served(volume, b)
        for b in deleted:
            assert get(f"{volume}/{b.fid}").status == 404
    finally:
        cluster.stop()


@dataclass(frozen=True)
class Uploaded:
    """A needle `weed` stored over HTTP, with what it answered about it."""

    fid: str
    plain: bytes
    stored: bytes  # the bytes weed keeps: what it sends to a client that accepts gzip
    etag: str
    name: str
    mime: str = ""
    last_modified: int = 0
    pairs: dict[str, str] = field(default_factory=dict)
    gzipped: bool = False
    headers: dict[str, str] = field(default_factory=dict)  # as the writer served them


SERVED_HEADERS = ("Content-Type", "Content-Disposition", "Last-Modified", "ETag", "Content-Length")


def store_variety(target: Endpoints) -> tuple[list[Uploaded], list[str]]:
    """Store needles of every kind over HTTP; (live needles, fids deleted afterwards)."""
    volume = target.volume
    live: list[Uploaded] = []

    def record(
        fid: str,
        plain: bytes,
        name: str,
        mime: str = "",
        last_modified: int = 0,
        pairs: dict[str, str] | None = None,
    ) -> None:
        zipped = get(f"{volume}/{fid}", accept_encoding="gzip")
        assert zipped.status == 200, zipped.describe()
        etag = (zipped.header("ETag") or "").strip('"')
        gzipped = zipped.header("Content-Encoding") == "gzip"
        served = get(f"{volume}/{fid}")
        names = (*SERVED_HEADERS, *(pairs or {}))
        headers = {h: v for h in names if (v := served.header(h)) is not None}
        uploaded = Uploaded(fid, plain, zipped.body, etag, name, mime, last_modified)
        live.append(replace(uploaded, pairs=pairs or {}, gzipped=gzipped, headers=headers))

    binary = os.urandom(2000)
    fid = assign(target).fid
    assert upload(volume, fid, binary, "a.bin", query=f"ts={TS}").status == 201
    record(fid, binary, "a.bin", last_modified=TS)

    fid = assign(target).fid  # text/plain: compressed on upload
    assert upload(volume, fid, TEXT, "t.txt", content_type="text/plain").status == 201
    record(fid, TEXT, "t.txt", mime="text/plain")

    fid = assign(target).fid
    pairs = {"Seaweed-Foo": "bar", "Seaweed-Camel-Case": "Xy"}
    assert upload(volume, fid, b"with pairs", "p.bin", headers=pairs).status == 201
    record(fid, b"with pairs", "p.bin", pairs={"Foo": "bar", "Camel-Case": "Xy"})

    fid = assign(target).fid  # raw body without a name: named after the fid (A3)
    assert put_raw(volume, fid, b'{"raw":true}', "application/json").status == 201
    record(fid, b'{"raw":true}', fid, mime="application/json")

    fid = assign(target).fid
    packed = gzip.compress(b"gzipped by the client " * 30)
    headers = {"Content-Encoding": "gzip"}
    assert put_raw(volume, fid, packed, "text/plain", headers=headers).status == 201
    record(fid, b"gzipped by the client " * 30, fid, mime="text/plain")

    fid = assign(target).fid
    big = os.urandom(3 * 1024 * 1024 + 3)
    assert upload(volume, fid, big, "big.bin").status == 201
    record(fid, big, "big.bin")

    fid = assign(target).fid
    assert upload(volume, fid, b"first version", "v.bin").status == 201
    assert upload(volume, fid, b"second version", "v.bin").status == 201
    record(fid, b"second version", "v.bin")

    gone = assign(target).fid
    assert upload(volume, gone, b"deleted soon", "gone.bin").status == 201
    assert request("DELETE", f"{volume}/{gone}").status == 202
    return live, [gone]


def test_weedpy_reads_a_volume_written_by_weed(tmp_path: Path) -> None:
    skip_unless_runnable("weed")

    cluster = start_cluster("weed", tmp_path)
    try:
        live, gone = store_variety(Endpoints("weed", cluster.master_url, cluster.volume_urls[0]))
    finally:
        cluster.stop()  # SIGTERM: weed closes its volumes cleanly
    directory = volume_directory(cluster.directory)
    vids = {int(split_fid(u.fid)[0]) for u in live} | {int(split_fid(f)[0]) for f in gone}
    for vid in vids:
        assert (directory / f"{vid}.idx").stat().st_size % 17 == 0  # the 8000GB build

    volumes = {vid: Volume.open(directory, vid) for vid in vids}
    try:
        for u in live:
            vid_text, key_cookie = split_fid(u.fid)
            n = volumes[int(vid_text)].read(key_of(u.fid), int(key_cookie[-8:], 16))
            assert n.data == u.stored, u.fid
            assert n.is_gzipped == u.gzipped, u.fid
            assert (gzip.decompress(n.data) if n.is_gzipped else n.data) == u.plain
            assert n.etag == u.etag, u.fid
            assert n.name.decode() == u.name, u.fid
            assert n.mime.decode() == u.mime, u.fid
            if u.last_modified:
                assert n.last_modified == u.last_modified
            assert (json.loads(n.pairs) if n.pairs else {}) == u.pairs, u.fid
        for fid in gone:
            vid_text, key_cookie = split_fid(fid)
            with pytest.raises(NeedleNotFound):
                volumes[int(vid_text)].read(key_of(fid), int(key_cookie[-8:], 16))
    finally:
        for v in volumes.values():
            v.close()


def volume_directory(cluster_directory: Path) -> Path:
    return next(p for p in cluster_directory.iterdir() if p.name.startswith("volume"))


@pytest.mark.parametrize(("writer", "reader"), [("weedpy", "weed"), ("weed", "weedpy")])
def test_a_volume_server_serves_what_the_other_implementation_stored(
    writer: Impl, reader: Impl, tmp_path: Path
) -> None:
    skip_unless_runnable(writer)
    skip_unless_runnable(reader)
    large_disk = ["-largeDisk"] if writer == "weedpy" else []  # weed's build always is
    cluster = start_cluster(writer, tmp_path, volume_args=large_disk)
    try:
        live, gone = store_variety(Endpoints(writer, cluster.master_url, cluster.volume_urls[0]))
    finally:
        cluster.stop()
    served = tmp_path / "served"
    shutil.copytree(volume_directory(cluster.directory), served)
    for idx in served.glob("*.idx"):
        assert idx.stat().st_size % 17 == 0, idx  # 5-byte offsets

    other = start_cluster(reader, tmp_path, volume_args=[f"-dir={served}"], wait_writable=False)
    try:
        volume = other.volume_urls[0]
        for vid in {split_fid(fid)[0] for fid in [*(u.fid for u in live), *gone]}:
            wait_for_volume(other.master_url, int(vid))
        for u in live:
            plain = get(f"{volume}/{u.fid}")
            assert plain.status == 200, (u.fid, plain.describe())
            assert plain.body == u.plain, u.fid
            for name, value in u.headers.items():
                assert plain.header(name) == value, (u.fid, name, plain.describe())
            zipped = get(f"{volume}/{u.fid}", accept_encoding="gzip")
            assert zipped.body == u.stored, u.fid
            assert (zipped.header("Content-Encoding") == "gzip") == u.gzipped, u.fid
        for fid in gone:
            assert get(f"{volume}/{fid}").status == 404
    finally:
        other.stop()
