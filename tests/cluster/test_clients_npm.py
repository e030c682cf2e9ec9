"""The npm SeaweedFS clients, unmodified, against a real cluster: weedpy and the reference `weed`.

`node-seaweedfs` 1.4.0 and `seaweedfs` 1.0.0 are pinned by `tests/clients/npm/package-lock.json`
and installed by `make install`/`make test` (`npm ci`). `tests/clients/npm/drive.js` calls each
client's public API against a master and two volume servers on loopback and prints what every
call produced (reads as length + sha256); the assertions are here. Every test runs against both
implementations, so a difference between them is a weedpy bug (or a gap named in the README).

Without node, or before `npm ci` ran, the tests skip with the reason; under CI (`CI` set) a
missing client fails instead, since `make test` installs it.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.parity.targets import skip_unless_runnable
from tests.servers import Cluster, Impl, VolumeSpec, call, get_json, start_cluster

NPM_DIR = Path(__file__).resolve().parents[1] / "clients" / "npm"
DRIVER = NPM_DIR / "drive.js"
NODE = shutil.which("node")
CLIENTS = ("node-seaweedfs", "seaweedfs")
DRIVE_TIMEOUT = 60.0


def _missing_client() -> str | None:
    """Why the pinned npm clients cannot run here, or None when they can."""
    if NODE is None:
        return "node is not installed"
    wanted = json.loads((NPM_DIR / "package.json").read_text())["dependencies"]
    for name, version in wanted.items():
        manifest = NPM_DIR / "node_modules" / name / "package.json"
        if not manifest.exists():
            return f"{name} is not installed in {NPM_DIR} (make install runs npm ci there)"
        installed = json.loads(manifest.read_text())["version"]
        if installed != version:
            return f"{NPM_DIR} holds {name} {installed}, not the pinned {version} (make install)"
    return None


@dataclass(frozen=True)
class Blob:
    path: Path
    data: bytes

    @property
    def digest(self) -> dict[str, Any]:
        return {"length": len(self.data), "sha256": hashlib.sha256(self.data).hexdigest()}


@dataclass(frozen=True)
class Run:
    """What one client's calls produced against one cluster."""

    client: str
    cluster: Cluster
    blobs: list[Blob]
    steps: dict[str, dict[str, Any]]

    def ok(self, step: str) -> Any:
        """The value of a step that must have succeeded."""
        result = self.steps[step]
        assert result["ok"], f"{step} failed on {self.cluster.impl}: {result['error']}"
        return result["value"]

    def error(self, step: str) -> str:
        """The message of a step that must have failed."""
        result = self.steps[step]
        assert not result["ok"], f"{step} succeeded on {self.cluster.impl}: {result['value']}"
        message: str = result["error"]
        return message


@pytest.fixture(scope="module", params=["weedpy", "weed"])
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """A master and two volume servers (replication 001 needs two), shared by the module."""
    reason = _missing_client()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the npm client tests: {reason}")
        pytest.skip(reason)
    impl: Impl = request.param
    skip_unless_runnable(impl)
    directory = tmp_path_factory.mktemp(f"npm-{impl}")
    with start_cluster(impl, directory, [VolumeSpec(max_volumes=30)] * 2) as running:
        yield running


@pytest.fixture(scope="module")
def drive(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Run]:
    """`drive(client)`: run drive.js for `client` once against this module's cluster."""
    runs: dict[str, Run] = {}

    def run(client: str) -> Run:
        if client not in runs:
            runs[client] = _drive(client, cluster, tmp_path_factory.mktemp(f"drive-{client}"))
        return runs[client]

    return run


def _drive(client: str, cluster: Cluster, scratch: Path) -> Run:
    # Three sizes (one multipart frame, a few, a body node streams in many chunks) and a text
    # volume servers store gzipped.
    contents = [
        ("a.bin", os.urandom(7000)),
        ("b.bin", os.urandom(3000)),
        ("c.bin", os.urandom(300_000)),
        ("notes.txt", b"the quick brown fox\n" * 1000),
    ]
    blobs = [Blob(scratch / name, data) for name, data in contents]
    for blob in blobs:
        blob.path.write_bytes(blob.data)
    spec = {
        "client": client,
        "master": cluster.master_url,
        "volume": cluster.volume_urls[0],
        "files": [str(b.path) for b in blobs],
        "scratch": str(scratch),
    }
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    assert NODE is not None
    done = subprocess.run(
        [NODE, str(DRIVER), json.dumps(spec)],
        cwd=NPM_DIR, env=env, capture_output=True, timeout=DRIVE_TIMEOUT, check=False,
    )  # fmt: skip
    assert done.returncode == 0, (done.returncode, done.stderr.decode(errors="replace"))
    last = done.stdout.decode().strip().splitlines()[-1]
    report = json.loads(last)
    assert report["client"] == client
    return Run(client, cluster, blobs, report["steps"])


@pytest.fixture(params=CLIENTS)
def run(request: pytest.FixtureRequest, drive: Callable[[str], Run]) -> Run:
    """Each npm client's run against the current cluster."""
    return drive(request.param)


def test_writes_read_back(run: Run) -> None:
    a, b, *_ = run.blobs
    written = run.ok("writePath")
    assert written["url"] in run.cluster.volume_urls
    assert written["publicUrl"] in run.cluster.volume_urls
    assert written["count"] == 1
    assert run.ok("readPath") == a.digest
    assert run.ok("readPathToStream") == a.digest
    run.ok("writeBuffer")
    assert run.ok("readBuffer") == b.digest


def test_gzipped_text_reads_back_plain(run: Run) -> None:
    """A .txt is stored gzipped; the clients send no Accept-Encoding and must get the text."""
    text = run.blobs[3]
    fid = run.ok("writeText")["fid"]
    assert run.ok("readText") == text.digest
    url = run.ok("writeText")["url"]
    assert _stored_encoding(url, fid) == "gzip"


def _stored_encoding(volume: str, fid: str) -> str | None:
    """The Content-Encoding a volume server answers to a client that accepts gzip."""
    host, port = volume.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("HEAD", f"/{fid}", headers={"Accept-Encoding": "gzip"})
        response = conn.getresponse()
        assert response.status == 200, (volume, fid, response.status)
        return response.getheader("Content-Encoding")
    finally:
        conn.close()


def test_node_seaweedfs_writes_a_stream(drive: Callable[[str], Run]) -> None:
    run = drive("node-seaweedfs")
    run.ok("writeStream")
    assert run.ok("readStream") == run.blobs[2].digest


def test_stream_of_unknown_length_stores_nothing(drive: Callable[[str], Run]) -> None:
    """A client bug, the same on both: for a stream form-data cannot measure, node-seaweedfs
    sends a Content-Length covering only the multipart framing, then the whole body, and resolves
    whatever the status. The server must see a truncated body (400) and store nothing, so the fid
    it was given reads as missing; or the write fails outright (the reference resets the
    connection when the rest of the body is still arriving)."""
    run = drive("node-seaweedfs")
    written = run.steps["writeUnknownLength"]
    if written["ok"]:
        fid = written["value"]["fid"]
        assert run.error("readUnknownLength") == f"file '{fid}' not found"
    else:
        assert re.search(r"ECONNRESET|EPIPE|socket hang up", written["error"]), written


def test_several_files_share_one_assign(run: Run) -> None:
    """write([...]) assigns count=2 and stores the second file at `<fid>_1`."""
    a, b, *_ = run.blobs
    assert run.ok("writeMany")["count"] == 2
    assert run.ok("readMany0") == a.digest
    assert run.ok("readMany1") == b.digest


def test_find_names_the_volume_server(run: Run) -> None:
    fid = run.ok("writePath")["fid"]
    # node-seaweedfs hands back the lookup's locations, seaweedfs ready URLs of the publicUrls.
    listed = {"node-seaweedfs": "{}", "seaweedfs": f"http://{{}}/{fid}"}[run.client]
    assert run.ok("find") in ([listed.format(v)] for v in run.cluster.volume_urls)


def test_remove_makes_the_file_missing(run: Run) -> None:
    fid = run.ok("writePath")["fid"]
    removed = run.ok("remove")
    if run.client == "node-seaweedfs":
        # The locations it deleted at; it rejects an answer without a size.
        assert removed == {"count": 1}
    else:
        # The volume server's answer: the size of the needle's data and name.
        assert removed["size"] > len(run.blobs[0].data)
    assert run.error("readAfterRemove") == f"file '{fid}' not found"
    assert run.error("removeAgain") == f"file '{fid}' not found"


def test_replicated_write_is_found_and_removed_everywhere(drive: Callable[[str], Run]) -> None:
    """node-seaweedfs passes write options (replication, collection) to /dir/assign, names the
    collection in its lookups and removes at every location.

    Its remove sends DELETE to both replicas at once, and each volume server also forwards the
    delete to the other replica; when a forwarded delete lands first, the client's own DELETE
    there finds nothing (404) and remove rejects with "not found". The reference does the same;
    either way the file must be gone from both servers.
    """
    run = drive("node-seaweedfs")
    fid = run.ok("writeReplicated")["fid"]
    vid = int(fid.split(",")[0])
    layouts = get_json(f"{run.cluster.master_url}/dir/status")["Topology"]["Layouts"]
    assert [
        (lay["collection"], lay["replication"]) for lay in layouts if vid in lay["writables"]
    ] == [("npm", "001")]
    assert run.ok("findReplicated") == sorted(run.cluster.volume_urls)
    assert run.ok("readReplicated") == run.blobs[1].digest
    removed = run.steps["removeReplicated"]
    assert removed == {"ok": True, "value": {"count": 2}} or removed == {
        "ok": False,
        "error": f"file '{fid}' not found",
    }, removed
    assert run.error("readReplicatedAfterRemove") == f"file '{fid}' not found"
    for volume in run.cluster.volume_urls:
        assert call("GET", f"{volume}/{fid}")[0] == 404, volume


def test_status_calls(drive: Callable[[str], Run]) -> None:
    run = drive("node-seaweedfs")
    system = run.ok("systemStatus")
    assert system["topology"] is True and isinstance(system["version"], str)
    master = run.ok("masterStatus")
    assert master["isLeader"] is True
    assert str(master["leader"]).startswith(run.cluster.master_url)
    volume = run.ok("volumeStatus")
    assert volume["volumes"] is True and isinstance(volume["version"], str)

    other = drive("seaweedfs")
    other.ok("connect")
    assert other.ok("clusterStatus")["isLeader"] is True


def test_find_of_an_unknown_volume_is_an_error(drive: Callable[[str], Run]) -> None:
    assert drive("node-seaweedfs").error("findMissingVolume") == "volume id 9999 not found"


def test_vacuum(drive: Callable[[str], Run]) -> None:
    run = drive("node-seaweedfs")
    assert run.ok("vacuum") == {"topology": True}
