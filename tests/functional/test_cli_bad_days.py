"""The command line when things are not as they should be: a closed pipe, help asked the other
way round, a missing file, a volume server given as the master, a master that is not there."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from seaweed_py.cli.main import main
from seaweed_py.client import AsyncClient
from seaweed_py.errors import NotAMaster
from seaweed_py.volume import VolumeServer
from tests import volume_harness
from tests.servers import free_port
from tests.volume_harness import Starter

master = volume_harness.master
start_server = volume_harness.start_server

_ENV = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}


def weedpy(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "seaweed_py", *args],
        capture_output=True,
        text=True,
        env=_ENV,
        timeout=timeout,
        check=False,
    )


async def weedpy_async(*args: str) -> tuple[int, str, str]:
    """For commands run against a server of this process's event loop."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "seaweed_py",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_ENV,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("args", [["--help"], ["help", "upload"], ["master", "-h"]])
def test_help_into_a_closed_pipe_exits_quietly(args: list[str]) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader (`| head`) is already gone: every write breaks the pipe
    try:
        done = subprocess.run(
            [sys.executable, "-m", "seaweed_py", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            env=_ENV,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert done.stderr == b""  # no traceback, no "Exception ignored" at exit
    assert done.returncode == 141  # 128 + SIGPIPE, as for a command killed by it


def test_help_command_shows_that_commands_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["help", "upload"]) == 0
    via_help = capsys.readouterr().out
    assert main(["upload", "-h"]) == 0
    assert via_help == capsys.readouterr().out
    assert via_help.startswith("Usage: weedpy upload") and "-maxMB" in via_help
    assert main(["help", "nosuch"]) == 2
    assert "unknown command 'nosuch'" in capsys.readouterr().err
    assert main(["help"]) == 0
    assert "weedpy help <command>" in capsys.readouterr().out


def test_upload_of_a_missing_file_says_no_such_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jpg"
    done = weedpy("upload", f"-master=127.0.0.1:{free_port()}", str(missing))
    assert done.returncode == 2
    assert done.stderr.strip() == f"weedpy upload: {missing}: no such file"
    done = weedpy("upload", f"-master=127.0.0.1:{free_port()}", str(tmp_path))
    assert done.returncode == 2 and "is a directory" in done.stderr


@pytest.fixture
async def volume_server(start_server: Starter) -> AsyncIterator[VolumeServer]:
    yield await start_server()


async def test_a_volume_server_given_as_master_is_named_as_such(
    volume_server: VolumeServer, tmp_path: Path
) -> None:
    address = f"127.0.0.1:{volume_server.port}"
    expected = f"{address} is a volume server, not a master"
    async with AsyncClient(address) as client:
        with pytest.raises(NotAMaster, match=expected):
            await client.upload(b"x")
        with pytest.raises(NotAMaster, match=expected):
            await client.lookup(3)
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"jpeg")
    code, _, err = await weedpy_async("upload", f"-master={address}", str(photo))
    assert code == 1 and expected in err
    code, _, err = await weedpy_async("download", f"-master={address}", "3,01637037d6")
    assert code == 1 and expected in err
    code, out, err = await weedpy_async("benchmark", f"-master={address}", "-n=10")
    assert code == 1 and expected in err and err.count("\n") == 1 and out == ""


def test_benchmark_with_an_unreachable_master_fails_with_one_line(tmp_path: Path) -> None:
    port = free_port()
    listing = tmp_path / "fids.txt"
    done = weedpy("benchmark", f"-master=127.0.0.1:{port}", "-n=100", f"-list={listing}")
    assert done.returncode == 1
    assert done.stdout == ""  # no banner, no report of 100 failed requests
    [line] = done.stderr.splitlines()
    assert line.startswith(f"weedpy benchmark: master 127.0.0.1:{port}: ") and "Connect" in line
    assert not listing.exists()


def test_usage_errors_still_print_through_main() -> None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["upload"]) == 2
    assert "no files to upload" in err.getvalue()


def test_benchmark_replaying_a_missing_list_names_it(tmp_path: Path) -> None:
    listing = tmp_path / "missing.txt"
    done = weedpy("benchmark", "-readOnly", f"-list={listing}", f"-master=127.0.0.1:{free_port()}")
    assert done.returncode == 2
    assert done.stderr.strip() == f"weedpy benchmark: -list {listing}: No such file or directory"


async def test_a_volume_server_heartbeating_to_a_volume_server_logs_why(
    volume_server: VolumeServer, start_server: Starter, caplog: pytest.LogCaptureFixture
) -> None:
    address = f"127.0.0.1:{volume_server.port}"
    confused = await start_server("v1", masters=(address,))
    deadline = asyncio.get_running_loop().time() + 10
    expected = f"{address} is a volume server, not a master"
    while expected not in caplog.text:
        assert asyncio.get_running_loop().time() < deadline, caplog.text
        await asyncio.sleep(0.05)
    assert not confused.link.heartbeating
