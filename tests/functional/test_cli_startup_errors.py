"""Start-up mistakes of `weedpy master`, `volume` and `server` (issue 12): each one ends the
real CLI with ONE line on stderr naming the flag and what is wrong, a non-zero exit and no
traceback. A missing `-dir` is refused as `weed volume` refuses it (`weed` 4.48: `Check Data
Folder(-dir) Writable /x : stat /x: no such file or directory`); `weed master` creates a
missing `-mdir` whose parent exists, and so does `weedpy master`; `weed server` refuses a
missing `-dir` or `-master.dir`, and so does `weedpy server`.

Tests run as root, to whom a mode-0500 directory is writable: an unwritable directory is a
read-only bind mount in a private mount namespace (`unshare -m`), or mode 0500 for other users.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.servers import free_port

_WEEDPY = [sys.executable, "-m", "seaweed_py"]
_NO_MASTER = "-master=127.0.0.1:1"  # the mistakes are found before any heartbeat


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another process (this one) listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def _fails_with_one_line(args: Sequence[str], *fragments: str, prefix: Sequence[str] = ()) -> str:
    """Run the CLI; assert it exits 1 with one stderr line holding every fragment."""
    done = subprocess.run(
        [*prefix, *_WEEDPY, *args], capture_output=True, text=True, timeout=60, check=False
    )
    lines = done.stderr.splitlines()
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    (line,) = lines
    assert line.startswith(f"weedpy {args[0]}: "), line
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    return line


def _volume(*flags: str, port: int = 0) -> list[str]:
    return ["volume", "-ip=127.0.0.1", f"-port={port}", _NO_MASTER, "-preStopSeconds=0", *flags]


def _server(tmp_path: Path, *flags: str) -> list[str]:
    # Distinct free ports: the two are refused when equal.
    ports = [f"-master.port={free_port()}", f"-volume.port={free_port()}"]
    return ["server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", *ports, *flags]


# ------------------------------------------------------------------ ports in use


def test_master_port_in_use(tmp_path: Path, taken_port: int) -> None:
    _fails_with_one_line(
        ["master", "-ip=127.0.0.1", f"-port={taken_port}", f"-mdir={tmp_path}"],
        f"-port {taken_port}: cannot listen on 127.0.0.1:{taken_port}",
        "in use",
    )


def test_volume_port_in_use(tmp_path: Path, taken_port: int) -> None:
    args = _volume(f"-dir={tmp_path}", port=taken_port)
    _fails_with_one_line(args, f"-port {taken_port}: ", "in use")


def test_volume_public_port_in_use(tmp_path: Path, taken_port: int) -> None:
    line = _fails_with_one_line(
        _volume(f"-dir={tmp_path}", f"-port.public={taken_port}"),
        f"-port.public {taken_port}: ",
        "in use",
    )
    # the lock and the listener of the half-started server were released on the way out
    assert "-port " not in line
    _volume_starts(tmp_path)


def test_volume_address_not_of_this_host(tmp_path: Path) -> None:
    # 192.0.2.1 is TEST-NET-1: never an address of this machine.
    _fails_with_one_line(
        _volume(f"-dir={tmp_path}", "-ip.bind=192.0.2.1"), "-port 0: ", "not one of this host's"
    )


@pytest.mark.parametrize("which", ["master", "volume"])
def test_server_port_in_use(tmp_path: Path, taken_port: int, which: str) -> None:
    args = _server(tmp_path, f"-dir={tmp_path}", f"-{which}.port={taken_port}")
    _fails_with_one_line(args, f"-{which}.port {taken_port}: ", "in use")


# ------------------------------------------------------------------ -dir


def test_volume_refuses_a_missing_dir_and_does_not_create_it(tmp_path: Path) -> None:
    missing = tmp_path / "typo"
    _fails_with_one_line(_volume(f"-dir={missing}"), f"-dir {missing}: no such directory")
    assert not missing.exists()


def test_volume_refuses_a_dir_that_is_a_file(tmp_path: Path) -> None:
    regular = tmp_path / "file"
    regular.write_bytes(b"not a directory")
    _fails_with_one_line(_volume(f"-dir={regular}"), f"-dir {regular}: not a directory")
    assert regular.read_bytes() == b"not a directory"


def test_volume_names_the_bad_one_of_several_dirs(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    below = tmp_path / "file" / "sub"
    good = tmp_path / "good"
    good.mkdir()
    _fails_with_one_line(
        _volume(f"-dir={good},{below}", "-max=1,1"),
        f"-dir {below}: not a directory ({tmp_path / 'file'} is a file)",
    )


def test_volume_refuses_an_unwritable_dir(tmp_path: Path) -> None:
    directory = tmp_path / "ro"
    directory.mkdir()
    with _unwritable(directory) as prefix:
        _fails_with_one_line(
            _volume(f"-dir={directory}"), f"-dir {directory}: not writable", prefix=prefix
        )
    assert list(directory.iterdir()) == []


def test_volume_refuses_a_dir_another_process_serves(tmp_path: Path) -> None:
    fd = os.open(tmp_path / ".weedpy.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        _fails_with_one_line(_volume(f"-dir={tmp_path}"), f"-dir {tmp_path}: in use")
    finally:
        os.close(fd)


# ------------------------------------------------------------------ -mdir


def _master(mdir: Path | str) -> list[str]:
    return ["master", "-ip=127.0.0.1", f"-port={free_port()}", f"-mdir={mdir}"]


def test_master_creates_a_missing_mdir_as_weed_does(tmp_path: Path) -> None:
    mdir = tmp_path / "meta"
    args = _master(mdir)
    port = args[2].partition("=")[2]
    proc = subprocess.Popen(
        [*_WEEDPY, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while not _answers(f"http://127.0.0.1:{port}/cluster/healthz"):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the master did not start"
            time.sleep(0.05)
        assert (mdir / "weedpy_master.json").is_file()
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


@pytest.mark.parametrize(
    ("below", "expected"),
    [
        ("no/deeper", "no such directory"),
        ("file", "not a directory"),
        ("file/sub", "not a directory ({file} is a file)"),
    ],
)
def test_master_refuses_an_mdir_it_cannot_create(tmp_path: Path, below: str, expected: str) -> None:
    """`weed master` makes one missing level only (checked: `-mdir=/x/missing/deeper` is
    `stat /x/missing/deeper: no such file or directory`)."""
    (tmp_path / "file").write_bytes(b"")
    mdir = tmp_path / below
    why = expected.format(file=tmp_path / "file")
    _fails_with_one_line(_master(mdir), f"-mdir {mdir}: {why}")
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("sub", ["", "new"], ids=["existing", "to-create"])
def test_master_refuses_an_unwritable_mdir(tmp_path: Path, sub: str) -> None:
    directory = tmp_path / "ro"
    directory.mkdir()
    mdir = directory / sub if sub else directory
    with _unwritable(directory) as prefix:
        line = _fails_with_one_line(_master(mdir), f"-mdir {mdir}: ", prefix=prefix)
    assert ("cannot create it" if sub else "not writable") in line
    assert list(directory.iterdir()) == []


def test_master_refuses_a_corrupt_counters_file(tmp_path: Path) -> None:
    (tmp_path / "weedpy_master.json").write_bytes(b'{"maxFileKey": "lots"')
    _fails_with_one_line(
        _master(tmp_path), f"-mdir {tmp_path}: weedpy_master.json", "refusing to reuse ids"
    )


# ------------------------------------------------------------------ weedpy server


@pytest.mark.parametrize(
    ("given", "named"),
    [
        (["-dir={missing}"], "-dir"),
        (["-dir={tmp}", "-master.dir={missing}"], "-master.dir"),
        (["-master.dir={tmp}", "-volume.dir={missing}"], "-volume.dir"),
    ],
)
def test_server_refuses_a_missing_directory_naming_the_flag_given(
    tmp_path: Path, given: list[str], named: str
) -> None:
    """As `weed server`, which refuses a missing `-dir` or `-master.dir` (checked against
    4.48: `Check Meta Folder (-mdir="/x") Writable: stat /x: no such file or directory`)."""
    missing = tmp_path / "typo"
    flags = [g.format(missing=missing, tmp=tmp_path) for g in given]
    _fails_with_one_line(_server(tmp_path, *flags), f"{named} {missing}: no such directory")
    assert not missing.exists()


# ------------------------------------------------------------------ helpers


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _volume_starts(directory: Path) -> None:
    """A volume server starts on `directory` and is stopped again (SIGTERM)."""
    port = free_port()
    args = _volume(f"-dir={directory}", port=port)
    proc = subprocess.Popen([*_WEEDPY, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not _answers(f"http://127.0.0.1:{port}/healthz"):
            assert proc.poll() is None, "the volume server exited"
            assert time.monotonic() < deadline, "the volume server did not start"
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextlib.contextmanager
def _unwritable(directory: Path) -> Iterator[list[str]]:
    """Yield a command prefix under which `directory` cannot be written: a read-only bind mount
    in a private mount namespace for root, mode 0500 for other users. Skips when neither can
    be arranged."""
    if os.geteuid() != 0:
        directory.chmod(0o500)
        try:
            yield []
        finally:
            directory.chmod(0o755)
        return
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("root, and no unshare(1) for a read-only bind mount")
    mount = f'mount --bind -o ro "{directory}" "{directory}" && exec "$@"'
    prefix = [unshare, "--mount", "--propagation", "private", "sh", "-c", mount, "sh"]
    probe = subprocess.run(
        [*prefix, "sh", "-c", f'! touch "{directory}/probe"'],
        capture_output=True,
        timeout=30,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot make a read-only bind mount here: {probe.stderr!r}")
    yield prefix
