"""README "Securing a cluster", run as written: `weedpy server` with the README's security.toml
(a signing key, HTTPS on both ports, `[https.client]`), the curl commands with the real `curl`
(the test's ports in place of 9333 and 8080, its certificates in place of the README's), and
the README's SDK block. The CA and the certificates are made for this test by `trustme`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.cluster.test_readme_examples import README, readme_python_blocks
from tests.cluster.test_readme_walkthrough import photo
from tests.secure_cluster import make_pki
from tests.servers import free_port

CURL = shutil.which("curl")
_ENV = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
_TOML = re.compile(r"^```toml\n(.*?)^```", re.M | re.S)
_SECTION = README.read_text().split("### Securing a cluster", 1)[-1].split("\n### ", 1)[0]


def curl(cwd: Path, *args: str) -> tuple[str, dict[str, str], bytes]:
    """curl with `-si`: (status line, headers, body) as a user would read them."""
    assert CURL is not None
    done = subprocess.run(
        [CURL, "-sS", "-i", *args], capture_output=True, cwd=cwd, env=_ENV, timeout=30, check=True
    )
    head, _, body = done.stdout.partition(b"\r\n\r\n")
    while head.startswith(b"HTTP/1.1 100"):  # curl shows the 100 Continue of a large upload
        head, _, body = body.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return status, headers, body


@contextmanager
def secure_server(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """`weedpy server` in `tmp_path`, which holds the README's security.toml and the PEM files
    it names; yields (master port, volume port) once a fid can be assigned over HTTPS."""
    pki = make_pki(tmp_path)
    for name, made in (("server.pem", pki.server_cert), ("server.key", pki.server_key)):
        assert made == tmp_path / name
    (tmp_path / "security.toml").write_text(_TOML.findall(_SECTION)[0])
    master_port, volume_port = free_port(), free_port()
    (tmp_path / "data").mkdir()
    argv = [
        sys.executable, "-m", "seaweed_py", "server", "-ip=127.0.0.1", "-dir=data",
        f"-master.port={master_port}", f"-volume.port={volume_port}",
    ]  # fmt: skip
    log_path = tmp_path / "server.log"
    env = {**_ENV, "HOME": str(tmp_path)}
    with log_path.open("wb") as log:
        server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            try:
                status, _, body = curl(
                    tmp_path, "--cacert", "ca.pem", f"https://localhost:{master_port}/dir/assign"
                )
                if " 200 " in status + " " and b"fid" in body:
                    break
            except subprocess.CalledProcessError:
                pass
            time.sleep(0.1)
        yield master_port, volume_port
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Path, int, int]]:
    if CURL is None:
        pytest.skip("the curl binary is not installed")
    with secure_server(tmp_path) as (master_port, volume_port):
        yield tmp_path, master_port, volume_port


def test_the_readme_curl_commands_over_https(server: tuple[Path, int, int]) -> None:
    pytest.importorskip("PIL")
    cwd, master_port, volume_port = server
    data = photo(cwd / "myphoto.jpg")
    master = f"https://localhost:{master_port}"
    ca = ("--cacert", "ca.pem")

    status, headers, body = curl(cwd, *ca, f"{master}/dir/assign")
    assert status.startswith("HTTP/1.1 200")
    fid, url = json.loads(body)["fid"], json.loads(body)["url"]
    assert url == f"127.0.0.1:{volume_port}"
    token = headers["authorization"]
    assert token.startswith("Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.")

    # Without the token the upload is refused; with it, stored.
    status, _, body = curl(cwd, *ca, "-F", "file=@myphoto.jpg", f"https://{url}/{fid}")
    assert status.startswith("HTTP/1.1 401") and json.loads(body) == {"error": "wrong jwt"}
    status, _, body = curl(
        cwd, *ca, "-H", f"Authorization: {token}", "-F", "file=@myphoto.jpg", f"https://{url}/{fid}"
    )
    assert status.startswith("HTTP/1.1 201"), body
    assert json.loads(body)["size"] == len(data)

    status, _, body = curl(cwd, *ca, f"https://{url}/{fid}")
    assert status.startswith("HTTP/1.1 200") and body == data

    status, headers, _ = curl(cwd, *ca, f"{master}/dir/lookup?fileId={fid}")
    fresh = headers["authorization"]
    status, _, _ = curl(cwd, *ca, "-X", "DELETE", f"https://{url}/{fid}")
    assert status.startswith("HTTP/1.1 401")
    status, _, body = curl(
        cwd, *ca, "-X", "DELETE", "-H", f"Authorization: {fresh}", f"https://{url}/{fid}"
    )
    assert status.startswith("HTTP/1.1 202"), body
    assert curl(cwd, *ca, f"https://{url}/{fid}")[0].startswith("HTTP/1.1 404")

    # Plain HTTP is refused on both ports, and so is a client that does not trust the CA.
    for port in (master_port, volume_port):
        with pytest.raises(subprocess.CalledProcessError):
            curl(cwd, f"http://127.0.0.1:{port}/dir/assign")
    with pytest.raises(subprocess.CalledProcessError):
        curl(cwd, f"{master}/dir/assign")

    # The operator's cluster calls, with `weedpy token`.
    operator = subprocess.run(
        [sys.executable, "-m", "seaweed_py", "token"],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**_ENV, "HOME": str(cwd)},
        check=True,
    ).stdout.strip()
    grow = f"{master}/vol/grow?count=1&collection=tmp"
    assert curl(cwd, *ca, grow)[0].startswith("HTTP/1.1 401")
    status, _, body = curl(cwd, *ca, "-H", f"Authorization: Bearer {operator}", grow)
    assert status.startswith("HTTP/1.1 200"), body
    delete = f"{master}/col/delete?collection=tmp"
    status, _, body = curl(cwd, *ca, "-H", f"Authorization: Bearer {operator}", delete)
    assert status.startswith("HTTP/1.1 204"), body


def test_the_readme_sdk_block_over_https(server: tuple[Path, int, int]) -> None:
    cwd, master_port, _ = server
    blocks = readme_python_blocks(https=True)
    assert len(blocks) == 1
    code = blocks[0].replace("localhost:9333", f"localhost:{master_port}")
    code = code.replace('cafile="ca.pem"', f'cafile="{cwd / "ca.pem"}"')
    exec(compile(code, str(README), "exec"), {"__name__": "readme_example"})
