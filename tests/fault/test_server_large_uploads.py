"""Large uploads against real `weedpy volume` processes (reliability scenario 26, issue 12):
memory stays bounded whatever the size of an upload.

The peak resident memory of a server (VmHWM, reset before each measurement through
`/proc/<pid>/clear_refs`) is measured during uploads far larger than any buffer: a multipart
upload, the same on a replicated volume (both servers), a gzip-encoded one; blobs read back
byte-identical (compared by hash, streaming), and no spool file is left open.

The default run uploads 256 MiB (growth bound: a quarter of that); the `slow` ones 1 GiB
(bound: 300 MiB of peak RSS, issue 12).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import random
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from isal import isal_zlib

from tests.fault.server_harness import Fleet, Node, call, fleet
from tests.servers import skip_reason

pytestmark = pytest.mark.skipif(
    skip_reason("weedpy") is not None, reason=str(skip_reason("weedpy"))
)

MIB = 1 << 20
SIZES = [
    pytest.param(256 * MIB, id="256MiB"),
    pytest.param(1024 * MIB, id="1GiB", marks=pytest.mark.slow),
]
LIMIT_FLAGS = ("-fileSizeLimitMB=1100",)
PEAK_BOUND = 300 * MIB  # issue 12, for a 1 GiB upload


# ------------------------------------------------------------------ fleets


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("large-uploads")
    yield path
    shutil.rmtree(path, ignore_errors=True)  # gigabytes of volumes and logs


@contextmanager
def _started(root: Path, name: str, *volumes: tuple[str, ...]) -> Iterator[Fleet]:
    """A master and one volume server per entry of `volumes` (its extra flags)."""
    with fleet(root / name, name) as f:
        f.root.mkdir()
        f.add_master()
        for flags in volumes:
            f.add_volume(*flags)
        f.wait_registered()
        yield f


@pytest.fixture(scope="module")
def single(root: Path) -> Iterator[Fleet]:
    with _started(root, "single", LIMIT_FLAGS) as f:
        yield f


@pytest.fixture(scope="module")
def pair(root: Path) -> Iterator[Fleet]:
    with _started(root, "pair", LIMIT_FLAGS, LIMIT_FLAGS) as f:
        yield f


# ------------------------------------------------------------------ measuring


def _reset_peak(node: Node) -> int:
    """Restart the node's peak-RSS count from now; its RSS now, in bytes."""
    Path(f"/proc/{node.pid}/clear_refs").write_text("5")
    return node.rss_kib() * 1024


def _peak(node: Node) -> int:
    return node.rss_kib("VmHWM") * 1024


def _bound(baseline: int, size: int) -> int:
    """What a server's peak may reach while it takes an upload of `size` bytes: a quarter of
    the body above where it stood, and never 300 MiB (the old code mapped, and for replicas
    loaded, the whole body: at least `size` more)."""
    return min(PEAK_BOUND, baseline + size // 4)


def _report(label: str, node: Node, baseline: int, peak: int) -> None:
    print(f"{label} on {node.url}: RSS {baseline / MIB:.0f} MiB before, peak {peak / MIB:.0f} MiB")


# ------------------------------------------------------------------ clients


def _blocks(size: int, digest: hashlib._Hash, seed: int) -> Iterator[bytes]:
    """`size` bytes of incompressible data, 1 MiB at a time, fed to `digest` as they go."""
    base = random.Random(seed).randbytes(MIB)
    for i in range(size // MIB):
        block = i.to_bytes(8, "little") + base[8:]
        digest.update(block)
        yield block


def _connection(url: str, timeout: float = 300.0) -> http.client.HTTPConnection:
    host, port = url.rsplit(":", 1)
    return http.client.HTTPConnection(host, int(port), timeout=timeout)


def _post_multipart(url: str, fid: str, size: int, seed: int) -> tuple[int, bytes, str]:
    """A streamed multipart upload of `size` bytes: (status, answer, sha1 of the data)."""
    digest = hashlib.sha1()
    head = (
        b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n"
    )
    tail = b"\r\n--b0undary--\r\n"

    def body() -> Iterator[bytes]:
        yield head
        yield from _blocks(size, digest, seed)
        yield tail

    conn = _connection(url)
    try:
        conn.request(
            "POST",
            f"/{fid}",
            body=body(),
            headers={
                "Content-Type": "multipart/form-data; boundary=b0undary",
                "Content-Length": str(len(head) + size + len(tail)),
            },
        )
        resp = conn.getresponse()
        return resp.status, resp.read(), digest.hexdigest()
    finally:
        conn.close()


def _read_back(url: str, fid: str, headers: dict[str, str] | None = None) -> tuple[int, str, int]:
    """GET streamed through a hash: (status, sha1, length)."""
    digest = hashlib.sha1()
    length = 0
    conn = _connection(url)
    try:
        conn.request("GET", f"/{fid}", headers=headers or {})
        resp = conn.getresponse()
        while piece := resp.read(MIB):
            digest.update(piece)
            length += len(piece)
        return resp.status, digest.hexdigest(), length
    finally:
        conn.close()


def _spool_files(node: Node) -> list[str]:
    """Files the server holds open in its data directory other than its volumes' own: a
    spool file shows as `<dir>/#<inode> (deleted)`."""
    return [
        path
        for path in node.open_files()
        if path.startswith(f"{node.directory}/")
        and not path.endswith((".dat", ".idx", ".weedpy.lock"))
    ]


# ------------------------------------------------------------------ size


@pytest.mark.parametrize("size", SIZES)
def test_26_a_large_upload_streams_to_the_volume_in_bounded_memory(
    single: Fleet, size: int
) -> None:
    node = single.volumes[0]
    fid = single.assign()["fid"]
    baseline = _reset_peak(node)
    status, answer, digest = _post_multipart(node.url, fid, size, seed=size)
    peak = _peak(node)
    _report(f"{size // MIB} MiB upload", node, baseline, peak)
    assert status == 201, answer
    assert json.loads(answer)["size"] == size
    assert peak < _bound(baseline, size)
    assert _read_back(node.url, fid) == (200, digest, size)
    assert _spool_files(node) == []


@pytest.mark.parametrize("size", SIZES)
def test_26_a_replicated_large_upload_streams_to_the_replica(pair: Fleet, size: int) -> None:
    answer = pair.assign(replication="001")
    fid = answer["fid"]
    primary = next(n for n in pair.volumes if n.url == answer["url"])
    baselines = {node.url: _reset_peak(node) for node in pair.volumes}
    status, body, digest = _post_multipart(primary.url, fid, size, seed=size + 1)
    peaks = {node.url: _peak(node) for node in pair.volumes}
    for node in pair.volumes:
        _report(f"{size // MIB} MiB upload, 001", node, baselines[node.url], peaks[node.url])
    assert status == 201, body
    assert pair.holders(fid) == sorted(node.url for node in pair.volumes)
    for node in pair.volumes:
        assert peaks[node.url] < _bound(baselines[node.url], size), node.url
        assert _read_back(node.url, fid) == (200, digest, size)
        assert _spool_files(node) == []


def _compressible(size: int) -> tuple[bytes, str]:
    """`size` bytes of text gzipped (about 100:1, so even 256 MiB packs above the 1 MiB that
    is streamed): (the gzip stream, sha1 of the text)."""
    rng = random.Random(size)
    words = [rng.randbytes(rng.randint(1, 5)).hex().encode() for _ in range(512)]
    text = b" ".join(rng.choice(words) for _ in range(4000))[: 16 * 1024] * 70
    digest = hashlib.sha1()
    packer = isal_zlib.compressobj(1, isal_zlib.DEFLATED, 31)
    packed = []
    for i in range(size // MIB):
        block = b"%08d\n" % i + text[: MIB - 9]
        digest.update(block)
        packed.append(packer.compress(block))
    packed.append(packer.flush())
    return b"".join(packed), digest.hexdigest()


@pytest.mark.parametrize("size", SIZES)
def test_26_a_large_gzip_upload_is_measured_in_bounded_memory(single: Fleet, size: int) -> None:
    node = single.volumes[0]
    packed, digest = _compressible(size)
    assert len(packed) > MIB  # streamed, not buffered
    fid = single.assign()["fid"]
    baseline = _reset_peak(node)
    status, answer = call(
        "PUT",
        f"{node.url}/{fid}",
        packed,
        {"Content-Encoding": "gzip", "Content-Type": "text/plain"},
        timeout=300,
    )
    peak = _peak(node)
    _report(
        f"{size // MIB} MiB gzip upload ({len(packed) / MIB:.1f} MiB sent)", node, baseline, peak
    )
    assert status == 201, answer
    assert json.loads(answer)["size"] == size  # the plain size, measured by inflating
    assert peak < _bound(baseline, size)
    # Served as stored (gzip) to a client that takes gzip; unpacked here.
    conn = _connection(node.url)
    try:
        conn.request("GET", f"/{fid}", headers={"Accept-Encoding": "gzip"})
        resp = conn.getresponse()
        assert (resp.status, resp.getheader("Content-Encoding")) == (200, "gzip")
        unpacker = isal_zlib.decompressobj(47)
        check = hashlib.sha1()
        while piece := resp.read(MIB):
            check.update(unpacker.decompress(piece))
        assert check.hexdigest() == digest
    finally:
        conn.close()
