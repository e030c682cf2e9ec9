"""The SeaweedFS README's curl walkthrough, typed as a user would, with the real `curl`.

Assign a fid at the master, upload a photo with `curl -F`, look the volume up, read it through
the five URL forms the README lists, delete it. The commands are written exactly as the README
shows them, with the test's ports in place of 9333 and 8080. Run against `weedpy server` (what the
README starts with `make run`), against `weedpy master` + `weedpy volume`, and against the
reference `weed` (which proves the walkthrough itself is right).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.parity.targets import skip_unless_runnable
from tests.servers import Impl, free_port, start_cluster

CURL = shutil.which("curl")
# A user's shell has no proxy for loopback; make sure the environment's proxy is not used.
_ENV = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}


def curl(command: str) -> str:
    """Run one README line (`curl ...`) and return what it prints."""
    args = command.split()
    assert CURL is not None and args[0] == "curl"
    done = subprocess.run(
        [CURL, "-sS", *args[1:]], capture_output=True, env=_ENV, timeout=30, check=True
    )
    return done.stdout.decode()


def curl_bytes(url: str) -> tuple[int, bytes]:
    """`curl -o <file> <url>`: the status and the bytes a user would find in the file."""
    assert CURL is not None
    done = subprocess.run(
        [CURL, "-sS", "-o", "-", "-w", "\n%{http_code}", url],
        capture_output=True,
        env=_ENV,
        timeout=30,
        check=True,
    )
    body, _, status = done.stdout.rpartition(b"\n")
    return int(status), body


def photo(path: Path) -> bytes:
    """A real JPEG of noise, as `myphoto.jpg` would be: tens of KiB, so curl sends it with
    `Expect: 100-continue` like any real photo."""
    size = (160, 120)
    buffer = io.BytesIO()
    Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)).save(buffer, format="JPEG")
    assert buffer.tell() > 1024
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


@pytest.mark.parametrize("impl", ["weedpy", "weed"])
def test_readme_curl_walkthrough(impl: Impl, tmp_path: Path) -> None:
    if CURL is None:
        pytest.skip("the curl binary is not installed")
    skip_unless_runnable(impl)
    myphoto = tmp_path / "myphoto.jpg"
    data = photo(myphoto)
    cluster = start_cluster(impl, tmp_path)
    try:
        master = cluster.master_url.replace("127.0.0.1", "localhost")
        answers = walk_through(master, myphoto, data)
    finally:
        cluster.stop()
    if impl == "weedpy":
        assert_shaped_like_the_readme(answers)


def test_readme_curl_walkthrough_on_weedpy_server(tmp_path: Path) -> None:
    if CURL is None:
        pytest.skip("the curl binary is not installed")
    from seaweed_py.cli.main import COMMANDS

    if "server" not in COMMANDS:
        pytest.skip("`weedpy server` is not a registered command yet")
    myphoto = tmp_path / "myphoto.jpg"
    data = photo(myphoto)
    with weedpy_server(tmp_path) as master:
        answers = walk_through(master, myphoto, data)
    assert_shaped_like_the_readme(answers)


def readme_answers() -> list[dict[str, Any]]:
    """The sample answers the README's walkthrough section prints after its assign, upload and
    lookup commands (later sections, e.g. the HTTPS one, have samples of their own)."""
    readme = Path(__file__).resolve().parents[2] / "README.md"
    text = readme.read_text()
    start = text.index("## Using it: the SeaweedFS walkthrough")
    section = text[start : text.index("\n## ", start + 1)]
    return [json.loads(line[2:]) for line in section.splitlines() if line.startswith("# {")]


def _shape(value: Any) -> Any:
    """Field names in order, nested; what a sample answer promises beyond its values."""
    if isinstance(value, dict):
        return [(k, _shape(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [_shape(v) for v in value[:1]]
    return type(value).__name__


def assert_shaped_like_the_readme(answers: list[dict[str, Any]]) -> None:
    samples = readme_answers()
    assert len(samples) == len(answers) == 3
    for sample, answer in zip(samples, answers, strict=True):
        assert _shape(answer) == _shape(sample), (sample, answer)
    _, upload, lookup = samples
    assert (upload["name"], upload["mime"]) == (answers[1]["name"], answers[1]["mime"])
    assert lookup["locations"][0]["dataCenter"] == answers[2]["locations"][0]["dataCenter"]


@contextmanager
def weedpy_server(tmp_path: Path) -> Iterator[str]:
    """`weedpy server -dir=DIR` on free ports; yields the master's `localhost:port`."""
    master_port, volume_port = free_port(), free_port()
    data = tmp_path / "data"
    data.mkdir()
    argv = [
        sys.executable, "-m", "seaweed_py", "server", "-ip=127.0.0.1", f"-dir={data}",
        f"-master.port={master_port}", f"-volume.port={volume_port}",
        "-volume.preStopSeconds=0",
    ]  # fmt: skip
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        master = f"localhost:{master_port}"
        wait_writable(master, server, log_path)
        yield master
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def wait_writable(master: str, server: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"weedpy server exited:\n{log_path.read_text(errors='replace')}")
        try:
            if "fid" in json.loads(curl(f"curl http://{master}/dir/assign")):
                return
        except (subprocess.CalledProcessError, ValueError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"weedpy server never became writable:\n{log_path.read_text()}")


def walk_through(master: str, myphoto: Path, data: bytes) -> list[dict[str, Any]]:
    """The walkthrough; returns the answers to assign, upload and lookup."""
    # Write: assign a fid, then POST the file to the volume server the master named.
    assigned: dict[str, Any] = json.loads(curl(f"curl http://{master}/dir/assign"))
    assert {"fid", "url", "publicUrl", "count"} <= set(assigned), assigned
    fid, url = assigned["fid"], assigned["url"]
    uploaded = json.loads(curl(f"curl -F file=@{myphoto} http://{url}/{fid}"))
    assert uploaded["name"] == "myphoto.jpg"
    assert uploaded["size"] == len(data)
    assert isinstance(uploaded["eTag"], str) and len(uploaded["eTag"]) == 8

    # Read: look the volume up, then fetch from the publicUrl in any of the README's forms.
    vid, key_cookie = fid.split(",")
    found = json.loads(curl(f"curl http://{master}/dir/lookup?volumeId={vid}"))
    assert found["volumeOrFileId"] == vid
    public = found["locations"][0]["publicUrl"]
    for url_form in (
        f"http://{public}/{vid}/{key_cookie}/my_preferred_name.jpg",
        f"http://{public}/{vid}/{key_cookie}.jpg",
        f"http://{public}/{vid},{key_cookie}.jpg",
        f"http://{public}/{vid}/{key_cookie}",
        f"http://{public}/{vid},{key_cookie}",
    ):
        status, body = curl_bytes(url_form)
        assert status == 200, url_form
        assert body == data, url_form

    # Delete, after which the blob is gone.
    curl(f"curl -X DELETE http://{url}/{fid}")
    assert curl_bytes(f"http://{public}/{vid},{key_cookie}")[0] == 404
    return [assigned, uploaded, found]
