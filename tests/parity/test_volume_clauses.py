"""Volume server clauses of spec §3.1, §3.5, §3.6 and §3.9 that one server can show, asserted
against both implementations: Content-MD5 echoes, deletes of volumes held nowhere and of
manifests whose chunks cannot be deleted, the public port, and `proxied=true` reads.

The cluster here has a public listener (`-port.public`), which the session-wide `cluster` of
conftest.py lacks, so this module starts its own, one per implementation.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests import servers
from tests.parity.blobs import assign_at, etag_of, put_raw, upload
from tests.parity.client import get, head, multipart
from tests.parity.client import request as send
from tests.parity.targets import skip_unless_runnable
from tests.servers import IMPLS, WEED, Cluster, Impl, free_port, start_cluster

pytestmark = pytest.mark.parity

impl = servers.impl
cluster_factory = servers.cluster_factory

# A volume id no server of the cluster holds, nor the master knows.
NOWHERE = 999


@dataclass(frozen=True)
class Site:
    impl: Impl
    master: str
    volume: str  # the admin listener
    public: str  # the public listener

    def new_fid(self) -> str:
        return assign_at(self.master).fid


@pytest.fixture(scope="module", params=IMPLS)
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    impl: Impl = request.param
    skip_unless_runnable(impl)
    public_port = free_port()
    running = start_cluster(
        impl,
        tmp_path_factory.mktemp(f"clauses-{impl}"),
        volume_args=[f"-port.public={public_port}"],
    )
    try:
        yield Site(impl, running.master_url, running.volume_urls[0], f"127.0.0.1:{public_port}")
    finally:
        running.stop()


def md5_of(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


# ------------------------------------------------------------------ §3.5 Content-MD5


def test_raw_upload_with_content_md5_reports_and_echoes_it(site: Site) -> None:
    data = b"checked by md5, raw body"
    fid = site.new_fid()
    reply = put_raw(
        site.volume, fid, data, "application/octet-stream", headers={"Content-MD5": md5_of(data)}
    )
    assert reply.status == 201, reply.describe()
    assert reply.json() == {
        "name": fid,
        "size": len(data),
        "eTag": etag_of(data),
        "mime": "application/octet-stream",
        "contentMd5": md5_of(data),
    }
    assert reply.header("Content-MD5") == md5_of(data)
    assert reply.header("ETag") == f'"{etag_of(data)}"'


def test_multipart_part_content_md5_is_reported_and_echoed(site: Site) -> None:
    data = b"checked by md5, in the part"
    boundary = "clausesboundaryQ1w2E3r4"
    body = (
        (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="p.bin"\r\n'
            f"Content-MD5: {md5_of(data)}\r\n\r\n"
        ).encode()
        + data
        + (f"\r\n--{boundary}--\r\n").encode()
    )
    fid = site.new_fid()
    reply = send(
        "POST",
        f"{site.volume}/{fid}",
        body=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert reply.status == 201, reply.describe()
    assert reply.json() == {
        "name": "p.bin",
        "size": len(data),
        "eTag": etag_of(data),
        "contentMd5": md5_of(data),
    }
    assert reply.header("Content-MD5") == md5_of(data)


def test_multipart_upload_with_request_content_md5_reports_and_checks_it(site: Site) -> None:
    data = b"checked by md5, request header"
    fid = site.new_fid()
    reply = upload(site.volume, fid, data, "m.bin", headers={"Content-MD5": md5_of(data)})
    assert reply.status == 201, reply.describe()
    assert reply.json() == {
        "name": "m.bin",
        "size": len(data),
        "eTag": etag_of(data),
        "contentMd5": md5_of(data),
    }
    assert reply.header("Content-MD5") == md5_of(data)
    again = upload(site.volume, fid, data, "m.bin", headers={"Content-MD5": md5_of(data)})
    assert (again.status, again.body) == (204, b""), again.describe()
    assert again.header("Content-MD5") == md5_of(data)

    wrong_fid = site.new_fid()
    wrong = upload(
        site.volume, wrong_fid, data, "m.bin", headers={"Content-MD5": md5_of(b"other bytes")}
    )
    assert wrong.status == 400, wrong.describe()
    assert "Content-MD5 did not match" in wrong.json()["error"]
    assert get(f"{site.volume}/{wrong_fid}").status == 404


# ------------------------------------------------------------------ §3.6 deletes


def test_delete_on_a_volume_held_nowhere_is_404_size_0(site: Site) -> None:
    reply = send("DELETE", f"{site.volume}/{NOWHERE},01637037d6")
    assert reply.status == 404, reply.describe()
    assert reply.media_type() == "application/json"
    assert reply.body == b'{"size":0}'


def test_manifest_whose_chunk_cannot_be_deleted_stays(site: Site) -> None:
    manifest = {
        "name": "whole.bin",
        "size": 5,
        "chunks": [{"fid": f"{NOWHERE},0a00000001", "offset": 0, "size": 5}],
    }
    raw = json.dumps(manifest).encode()
    fid = site.new_fid()
    stored = put_raw(site.volume, fid, raw, "application/json", query="cm=true")
    assert stored.status == 201, stored.describe()

    reply = send("DELETE", f"{site.volume}/{fid}")
    assert reply.status == 500, reply.describe()
    error = reply.json()["error"]
    assert error.startswith("Delete chunks error: ") and str(NOWHERE) in error, error
    kept = get(f"{site.volume}/{fid}?cm=false")
    assert (kept.status, kept.body) == (200, raw), kept.describe()
    assert kept.header("ETag") == f'"{etag_of(raw)}"'


# ------------------------------------------------------------------ §3.1 public port


def test_public_port_head_answers_length_without_body(site: Site) -> None:
    data = b"read through the public port"
    fid = site.new_fid()
    assert upload(site.volume, fid, data, "pub.bin").status == 201
    reply = head(f"{site.public}/{fid}")
    assert (reply.status, reply.body) == (200, b""), reply.describe()
    assert reply.header("Content-Length") == str(len(data))
    assert reply.header("ETag") == f'"{etag_of(data)}"'
    assert reply.header("Content-Disposition") == "inline; filename=pub.bin"
    assert reply.header("Access-Control-Allow-Origin") is None


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_public_port_adds_cors_headers_for_an_origin(site: Site, method: str) -> None:
    data = b"cors on the public port"
    fid = site.new_fid()
    assert upload(site.volume, fid, data, "cors.bin").status == 201
    reply = send(method, f"{site.public}/{fid}", headers={"Origin": "http://app.example"})
    assert reply.status == 200, reply.describe()
    assert reply.header("Access-Control-Allow-Origin") == "*"
    assert reply.header("Access-Control-Allow-Credentials") == "true"
    assert reply.header("Content-Length") == str(len(data))
    assert reply.body == (data if method == "GET" else b"")


def test_public_port_refuses_writes(site: Site) -> None:
    fid = site.new_fid()
    assert upload(site.volume, fid, b"the original", "o.bin").status == 201
    body, form_type = multipart(b"overwrite attempt", "x.bin")
    reply = send("POST", f"{site.public}/{fid}", body=body, headers={"Content-Type": form_type})
    if site.impl == "weed":
        assert (reply.status, reply.body) == (200, b""), reply.describe()  # quirk A9
    else:
        assert reply.status == 405, reply.describe()  # docs/compat.md A9: fixed
        assert reply.header("Allow") == "GET, HEAD, OPTIONS"
        assert reply.json() == {"error": "POST is not served on the public port"}
    assert get(f"{site.volume}/{fid}").body == b"the original"


# ------------------------------------------------------------------ §3.9 proxied reads


def test_proxied_read_of_a_volume_not_held_here_is_404(site: Site) -> None:
    fid = site.new_fid()
    assert upload(site.volume, fid, b"held here", "h.bin").status == 201
    # proxied=true does not change a local read...
    assert get(f"{site.volume}/{fid}?proxied=true").body == b"held here"
    # ...and a volume held elsewhere (here: nowhere) is not looked up and proxied again.
    reply = get(f"{site.volume}/{NOWHERE},01637037d6?proxied=true")
    assert reply.status == 404, reply.describe()


# ------------------------------------------------------------------ §6.2-§6.3 two servers


@dataclass(frozen=True)
class Pair:
    impl: Impl
    master: str
    volumes: tuple[str, str]

    def assign(self) -> tuple[str, str, str]:
        """(fid, the server the master named, the other server) of a 001 assign."""
        assigned = assign_at(self.master, "replication=001")
        [other] = [v for v in self.volumes if v != assigned.url]
        return assigned.fid, assigned.url, other


@pytest.fixture(scope="module", params=IMPLS)
def pair(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pair]:
    impl: Impl = request.param
    skip_unless_runnable(impl)
    running = start_cluster(
        impl, tmp_path_factory.mktemp(f"clauses-pair-{impl}"), volumes=2, replication="001"
    )
    try:
        first, second = running.volume_urls
        yield Pair(impl, running.master_url, (first, second))
    finally:
        running.stop()


def test_replicated_write_keeps_every_field_on_the_replica(pair: Pair) -> None:
    fid, primary, replica = pair.assign()
    text = b"replicated text, stored gzipped as sent\n" * 40
    packed = gzip.compress(text)
    headers = {
        "Content-Encoding": "gzip",
        "Content-MD5": md5_of(text),
        "Content-Disposition": 'attachment; filename="notes.txt"',
        "Seaweed-Owner": "alice",
        "Seaweed-Camel-Case": "Xy",
    }
    stored = put_raw(
        primary, fid, packed, "text/plain", headers=headers, query="ts=1700000000&ttl=3m"
    )
    assert stored.status == 201, stored.describe()
    assert stored.json() == {
        "name": "notes.txt",
        "size": len(text),
        "eTag": etag_of(packed),
        "mime": "text/plain",
        "contentMd5": md5_of(text),
    }
    compared = (
        "Content-Type",
        "Content-Disposition",
        "Last-Modified",
        "Owner",
        "Camel-Case",
        "ETag",
        "Content-Encoding",
        "Content-Length",
    )
    expected = {
        "Content-Type": "text/plain",
        "Content-Disposition": "inline; filename=notes.txt",
        "Last-Modified": "Tue, 14 Nov 2023 22:13:20 GMT",
        "Owner": "alice",
        "Camel-Case": "Xy",
        "ETag": f'"{etag_of(packed)}"',
        "Content-Encoding": "gzip",
        "Content-Length": str(len(packed)),
    }
    for server in (primary, replica):
        # proxied=true: each server answers from its own copy.
        reply = get(f"{server}/{fid}?proxied=true", accept_encoding="gzip")
        assert (reply.status, reply.body) == (200, packed), reply.describe()
        assert {name: reply.header(name) for name in compared} == expected, server
    plain = get(f"{replica}/{fid}?proxied=true", accept_encoding="identity")
    assert (plain.status, plain.body) == (200, text), plain.describe()


def test_replicated_delete_succeeds_when_the_replica_never_had_the_blob(pair: Pair) -> None:
    fid, primary, replica = pair.assign()
    # type=replicate stores on the receiver alone, as if the forward to the replica was lost.
    assert upload(primary, fid, b"only on one", "one.bin", query="type=replicate").status == 201
    assert get(f"{replica}/{fid}?proxied=true").status == 404
    reply = send("DELETE", f"{primary}/{fid}")
    assert reply.status == 202, reply.describe()
    assert set(reply.json()) == {"size"} and reply.json()["size"] > 0
    assert get(f"{primary}/{fid}?proxied=true").status == 404


# ------------------------------------------------------------------ a server leaving
# A cluster per test: these stop one of its volume servers.


def test_health_probes_answer_503_while_the_server_stops(
    cluster_factory: Callable[..., Cluster],
) -> None:
    running = cluster_factory(volume_args=["-preStopSeconds=1"], wait_writable=False)
    volume = running.volume_urls[0]
    for probe in ("/healthz", "/readyz"):
        assert get(f"{volume}{probe}").status == 200, probe
    stopping = threading.Thread(target=running.stop_volume, args=(0,))
    stopping.start()
    try:
        # Until SIGTERM lands the probe says 200; then -preStopSeconds keeps the listener open
        # while it says 503.
        deadline = time.monotonic() + 0.8
        while (reply := get(f"{volume}/healthz")).status == 200:
            assert time.monotonic() < deadline, "still healthy after SIGTERM"
            time.sleep(0.02)
        assert (reply.status, reply.body) == (503, b""), reply.describe()
        ready = get(f"{volume}/readyz")
        assert (ready.status, ready.body) == (503, b""), ready.describe()
        assert stopping.is_alive()
    finally:
        stopping.join()


def _lose_a_replica(running: Cluster, fid: str, holder: str) -> None:
    """Stop the volume server other than `holder` and wait until the master lists `holder`
    alone for `fid`'s volume."""
    running.stop_volume(1 - running.volume_urls.index(holder))
    vid = fid.split(",", 1)[0]
    deadline = time.monotonic() + 10
    while len(get(f"{running.master_url}/dir/lookup?volumeId={vid}").json()["locations"]) > 1:
        assert time.monotonic() < deadline, "the master still lists the stopped server"
        time.sleep(0.1)


def test_write_short_of_copies_is_500_and_stores_nothing(
    cluster_factory: Callable[..., Cluster],
) -> None:
    running = cluster_factory(volumes=2, replication="001")
    assigned = assign_at(running.master_url, "replication=001")
    _lose_a_replica(running, assigned.fid, assigned.url)
    reply = upload(assigned.url, assigned.fid, b"refused", "r.bin")
    assert reply.status == 500, reply.describe()
    error = reply.json()["error"]
    assert "is less than volume" in error and "replication copy count [2]" in error, error
    assert get(f"{assigned.url}/{assigned.fid}?proxied=true").status == 404


def test_delete_short_of_copies_after_a_replica_left_keeps_the_blob(
    cluster_factory: Callable[..., Cluster],
) -> None:
    running = cluster_factory(volumes=2, replication="001")
    assigned = assign_at(running.master_url, "replication=001")
    assert upload(assigned.url, assigned.fid, b"kept", "k.bin").status == 201
    _lose_a_replica(running, assigned.fid, assigned.url)
    reply = send("DELETE", f"{assigned.url}/{assigned.fid}")
    assert reply.status == 500, reply.describe()
    error = reply.json()["error"]
    assert "is less than volume" in error and "replication copy count [2]" in error, error
    kept = get(f"{assigned.url}/{assigned.fid}?proxied=true")
    assert (kept.status, kept.body) == (200, b"kept"), kept.describe()


# ------------------------------------------------------------------ §3.6 read-only volumes
# Last in the module: it marks a volume of the shared cluster read-only (and back).


def _mark(site: Site, vid: str, read_only: bool) -> None:
    if site.impl == "weed":
        flag = "-readonly" if read_only else "-writable"
        script = f"lock\nvolume.mark -node {site.volume} -volumeId {vid} {flag}\nunlock\n"
        done = subprocess.run(
            [str(WEED), "shell", f"-master={site.master}"],
            input=script.encode(),
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        return
    route = "readonly" if read_only else "writable"
    reply = send("POST", f"{site.volume}/admin/volume/{route}?volume={vid}")
    assert reply.status == 200, reply.describe()


def test_delete_on_a_read_only_volume_is_500_and_keeps_the_blob(site: Site) -> None:
    fid = site.new_fid()
    vid = fid.split(",", 1)[0]
    assert upload(site.volume, fid, b"read-only now", "ro.bin").status == 201
    _mark(site, vid, True)
    try:
        reply = send("DELETE", f"{site.volume}/{fid}")
        assert reply.status == 500, reply.describe()
        error = reply.json()["error"]
        if site.impl == "weed":
            assert error == f"Deletion Failed: volume {vid} is read only"
        else:
            assert "read-only" in error and f"volume_id={vid}" in error, error
        kept = get(f"{site.volume}/{fid}")
        assert (kept.status, kept.body) == (200, b"read-only now"), kept.describe()
    finally:
        _mark(site, vid, False)
    assert send("DELETE", f"{site.volume}/{fid}").status == 202
