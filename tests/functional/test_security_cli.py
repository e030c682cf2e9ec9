"""security.toml through the real CLI (issue 16): where it is found (working directory,
`-config_dir` before or after the command, `WEED_*` variables), fail closed at start (one line
on stderr, exit 1, never a server that starts open), SIGHUP reloads that keep the old settings
when the new file cannot be used, `weedpy scaffold -config=security` and `weedpy token`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from seaweed_py.security import jwt
from seaweed_py.security.scaffold import SECURITY_TOML
from seaweed_py.security.tokens import check_cluster_token, cluster_token
from tests.fault.server_harness import Node, wait_for
from tests.servers import WEED, call, free_port


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a command: no WEED_* of the caller's, HOME in the test's directory
    (so no ~/.seaweedfs of the machine is read)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEED_")}
    return {**env, "HOME": str(tmp_path), **extra}


def _weedpy(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "seaweed_py", *args],
        cwd=tmp_path,
        env=_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def _master_args(tmp_path: Path, port: int) -> list[str]:
    (tmp_path / "m").mkdir(exist_ok=True)
    return ["master", "-ip=127.0.0.1", f"-port={port}", f"-mdir={tmp_path / 'm'}"]


_UNUSABLE = [
    ("[jwt.signing\nkey = 'x'\n", "not valid TOML"),
    ("[jwt.signing]\nkye = 'typo'\n", "unknown key jwt.signing.kye"),
    ("[https.master]\ncert = 'missing.pem'\nkey = 'missing.key'\n", "missing.pem"),
    ("[https.volume]\ncert = 'missing.pem'\nkey = 'missing.key'\n", "missing.pem"),
    ("[guard]\nwhite_list = 'not-an-ip'\n", "'not-an-ip' is not an IP address"),
]


@pytest.mark.parametrize(
    ("command", "text", "says"),
    [
        *(("master", t, s) for t, s in _UNUSABLE if "https.volume" not in t),
        ("volume", *_UNUSABLE[3]),
        ("server", *_UNUSABLE[1]),
        ("server", *_UNUSABLE[3]),
    ],
)
def test_a_file_that_cannot_be_used_stops_the_start_with_one_line(
    tmp_path: Path, command: str, text: str, says: str
) -> None:
    (tmp_path / "security.toml").write_text(text)
    (tmp_path / "d").mkdir()
    args = {
        "master": _master_args(tmp_path, free_port()),
        "volume": ["volume", f"-dir={tmp_path / 'd'}", f"-port={free_port()}"],
        "server": ["server", f"-dir={tmp_path / 'd'}", f"-master.port={free_port()}"],
    }[command]
    done = _weedpy(tmp_path, *args)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"weedpy {command}: security: ") and says in lines[0]
    assert "Traceback" not in done.stderr


def test_a_bad_environment_variable_stops_the_start_too(tmp_path: Path) -> None:
    done = _weedpy(
        tmp_path,
        *_master_args(tmp_path, free_port()),
        WEED_JWT_SIGNING_EXPIRES_AFTER_SECONDS="ten",
    )
    assert done.returncode == 1
    assert "WEED_JWT_SIGNING_EXPIRES_AFTER_SECONDS" in done.stderr


def _master(tmp_path: Path, *args: str, **env: str) -> Node:
    """`weedpy master` in `tmp_path` (its working directory), with `args` after its flags."""
    port = free_port()
    node = Node(
        "master",
        [*_master_args(tmp_path, port)[1:], *args],
        tmp_path / "m",
        port,
        tmp_path / "master.log",
        env=_env(tmp_path, **env),
    )
    node.start()
    return node


def _hangup(master: Node) -> None:
    assert master.popen is not None
    master.popen.send_signal(signal.SIGHUP)


def _get(master: Node, path: str) -> int:
    return call("GET", f"{master.url}{path}")[0]


@pytest.fixture
def masters() -> Iterator[list[Node]]:
    started: list[Node] = []
    yield started
    for master in started:
        master.terminate()


def _key_in_force(master: Node, key: bytes) -> bool:
    """Whether a cluster token signed with `key` passes: a /vol/grow is refused for want of a
    valid token (401), else for want of space (406; this master has no volume server)."""
    return _get(master, f"/vol/grow?count=1&jwt={cluster_token(key, time.time())}") != 401


def test_security_toml_in_the_working_directory_or_config_dir(
    tmp_path: Path, masters: list[Node]
) -> None:
    (tmp_path / "security.toml").write_text('[jwt.signing]\nkey = "from cwd"\n')
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "security.toml").write_text('[jwt.signing]\nkey = "from config_dir"\n')
    masters.append(_master(tmp_path))
    assert _key_in_force(masters[-1], b"from cwd")
    assert not _key_in_force(masters[-1], b"from config_dir")
    masters[-1].terminate()
    masters.append(_master(tmp_path, f"-config_dir={conf}"))  # weed's global spelling
    assert _key_in_force(masters[-1], b"from config_dir")
    masters[-1].terminate()
    masters.append(_master(tmp_path, WEED_JWT_SIGNING_KEY="from env"))
    assert _key_in_force(masters[-1], b"from env")
    assert not _key_in_force(masters[-1], b"from cwd")


def test_sighup_reloads_keys_and_a_bad_reload_keeps_them(
    tmp_path: Path, masters: list[Node]
) -> None:
    path = tmp_path / "security.toml"
    path.write_text('[jwt.signing]\nkey = "first"\n')
    master = _master(tmp_path)
    masters.append(master)
    assert _key_in_force(master, b"first")

    path.write_text('[jwt.signing]\nkey = "second"\n')
    _hangup(master)
    wait_for("the second key", lambda: _key_in_force(master, b"second"))
    assert not _key_in_force(master, b"first")

    for broken, why in (
        ("[jwt.signing\n", "not valid TOML"),
        ('[jwt.signing]\nkey = ""\nexpires_after_seconds = "x"\n', "whole number"),
    ):
        path.write_text(broken)
        _hangup(master)
        wait_for(why, lambda why=why: why in master.log.read_text())  # type: ignore[misc]
        assert _key_in_force(master, b"second")
    path.unlink()  # gone for a moment (a config tool rewriting it): still not opened up
    _hangup(master)
    wait_for("the reload", lambda: "no longer there" in master.log.read_text())
    assert _key_in_force(master, b"second")
    assert _get(master, "/vol/grow?count=1") == 401
    failures = [line for line in master.log.read_text().splitlines() if "not reloaded" in line]
    assert len(failures) == 3  # one line per failed reload


def test_a_reload_can_turn_the_guard_on(tmp_path: Path, masters: list[Node]) -> None:
    """weed decides at start whether its white-list wrapper checks anything, so a reload cannot
    switch it on (spec §10.3); weedpy checks the list in force at each request."""
    path = tmp_path / "security.toml"
    path.write_text("")
    master = _master(tmp_path)
    masters.append(master)
    assert _get(master, "/dir/status") == 200
    path.write_text('[guard]\nwhite_list = "10.255.255.1"\n')
    _hangup(master)
    wait_for("the guard", lambda: _get(master, "/dir/status") == 401)


def test_scaffold_prints_what_weedpy_reads(tmp_path: Path) -> None:
    done = _weedpy(tmp_path, "scaffold", "-config=security")
    assert done.returncode == 0 and done.stdout == SECURITY_TOML
    ours = tomllib.loads(done.stdout)
    assert _weedpy(tmp_path, "scaffold", f"-output={tmp_path}").returncode == 0
    assert (tmp_path / "security.toml").read_text() == SECURITY_TOML
    refused = _weedpy(tmp_path, "scaffold", "-config=filer")
    assert refused.returncode == 2 and "only security.toml" in refused.stderr
    if WEED.exists():  # every key weedpy writes is one weed's own scaffold has
        theirs = tomllib.loads(
            subprocess.run(
                [str(WEED), "scaffold", "-config=security"],
                capture_output=True,
                text=True,
                check=True,
                cwd=tmp_path,
                env=_env(tmp_path),
            ).stdout
        )
        assert _keys(ours) <= _keys(theirs)


def _keys(table: dict[str, object], prefix: str = "") -> set[str]:
    out = set()
    for name, value in table.items():
        if isinstance(value, dict):
            out |= _keys(value, f"{prefix}{name}.")
        else:
            out.add(f"{prefix}{name}")
    return out


def test_token_prints_a_cluster_token_or_a_fid_token(tmp_path: Path) -> None:
    (tmp_path / "security.toml").write_text(
        '[jwt.signing]\nkey = "k"\n[jwt.signing.read]\nkey = "r"\n'
    )
    done = _weedpy(tmp_path, "token")
    assert done.returncode == 0, done.stderr
    check_cluster_token(done.stdout.strip(), b"k", time.time())
    done = _weedpy(tmp_path, "token", "-fid=3,01637037d6", "-read", "-expires=0")
    assert jwt.decode(done.stdout.strip(), b"r", time.time() + 10**6) == {"fid": "3,01637037d6"}
    (tmp_path / "security.toml").unlink()
    done = _weedpy(tmp_path, "token")
    assert done.returncode == 2 and "WEED_JWT_SIGNING_KEY" in done.stderr
