"""httpkit driven by curl, as operators will: uploads with `Expect: 100-continue`, HEAD,
keep-alive across URLs."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from pathlib import Path

import pytest

from seaweed_py.httpkit import Limits
from tests.functional.test_httpkit_helpers import on_uvloop, serving

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")

LIMITS = Limits(max_body=8 * 1024 * 1024, stream_threshold=1024 * 1024)


async def _curl(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sS", "--max-time", "10", *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode("latin-1"), err.decode("latin-1")


@on_uvloop
async def test_curl_upload_with_expect_continue(tmp_path: Path) -> None:
    blob = tmp_path / "blob"
    data = bytes(range(256)) * 8192  # 2 MiB: curl asks for 100-continue, the body streams
    blob.write_bytes(data)
    out = tmp_path / "out"
    async with serving(LIMITS) as (server, calls):
        code, _, err = await _curl(
            "-v", "-H", "Expect: 100-continue", "--data-binary", f"@{blob}",
            "-o", str(out), f"http://127.0.0.1:{server.port}/echo",
        )  # fmt: skip
    assert code == 0, err
    assert "< HTTP/1.1 100 Continue" in err
    assert "< HTTP/1.1 200 OK" in err
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert calls.streamed == [len(data)]


@on_uvloop
async def test_curl_upload_over_the_limit_gets_413_without_sending_it(tmp_path: Path) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(b"x" * (LIMITS.max_body + 1))
    async with serving(LIMITS) as (server, calls):
        code, out, err = await _curl(
            "-v", "-H", "Expect: 100-continue", "--data-binary", f"@{blob}",
            f"http://127.0.0.1:{server.port}/echo",
        )  # fmt: skip
    assert code == 0, err
    assert "100 Continue" not in err
    assert "< HTTP/1.1 413 Request Entity Too Large" in err
    assert '"error"' in out
    assert calls.bodies == []


@on_uvloop
async def test_curl_head_and_keep_alive() -> None:
    async with serving(LIMITS) as (server, _):
        base = f"http://127.0.0.1:{server.port}"
        code, out, err = await _curl("-I", base + "/hello")
        assert code == 0, err
        assert out.startswith("HTTP/1.1 200 OK")
        assert "Content-Length: 5" in out
        code, out, err = await _curl("-v", base + "/hello", base + "/info?a=1")
        assert code == 0, err
        assert "Re-using existing connection" in err or "Reusing existing" in err
        assert out.startswith("hello{")
