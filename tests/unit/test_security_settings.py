"""security.toml found where weed looks, `WEED_*` overrides, and fail-closed parsing
(`seaweed_py.security.settings`); the scaffold is a file both weed and weedpy read."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from seaweed_py.security import SecurityConfigError, SecuritySettings, SecuritySource
from seaweed_py.security.scaffold import SECURITY_TOML
from seaweed_py.security.tokens import JwtKeys
from tests.servers import WEED


def _source(tmp_path: Path, env: dict[str, str] | None = None, **kw: object) -> SecuritySource:
    dirs = kw.pop("dirs", (str(tmp_path / "cwd"), str(tmp_path / "home")))
    return SecuritySource(env=env or {}, search_dirs=dirs, **kw)  # type: ignore[arg-type]


def _write(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "security.toml"
    path.write_text(text)
    return path


def test_no_file_is_security_off(tmp_path: Path) -> None:
    assert _source(tmp_path).load() == SecuritySettings()


def test_first_file_in_search_order_wins_and_config_dir_comes_first(tmp_path: Path) -> None:
    _write(tmp_path / "home", '[jwt.signing]\nkey = "home"\n')
    assert _source(tmp_path).load().keys.signing_key == b"home"
    cwd = _write(tmp_path / "cwd", '[jwt.signing]\nkey = "cwd"\n')
    assert _source(tmp_path).load().source == str(cwd)
    _write(tmp_path / "conf", '[jwt.signing]\nkey = "conf"\n')
    given = _source(tmp_path, config_dir=str(tmp_path / "conf")).load()
    assert given.keys.signing_key == b"conf"
    # A -config_dir without the file falls back to the usual places, as weed's viper does.
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _source(tmp_path, config_dir=str(empty)).load().keys.signing_key == b"cwd"


def test_default_search_dirs_are_weeds() -> None:
    assert SecuritySource().search_dirs == (
        ".",
        "~/.seaweedfs",
        "/usr/local/etc/seaweedfs",
        "/etc/seaweedfs",
    )


def test_every_key_and_its_defaults(tmp_path: Path) -> None:
    _write(
        tmp_path / "cwd",
        """
[jwt.signing]
key = "w"
expires_after_seconds = 7
[jwt.signing.read]
key = "r"
[guard]
white_list = "10.0.0.0/8, 127.0.0.1"
[access]
ui = true
[https.volume]
cert = "v.pem"
key = "v.key"
[https.client]
enabled = true
ca = "ca.pem"
""",
    )
    s = _source(tmp_path).load()
    assert s.keys == JwtKeys(b"w", 7, b"r", 60)
    assert s.white_list == ("10.0.0.0/8", "127.0.0.1")
    assert s.access_ui
    assert s.https_master is None
    assert s.https_volume is not None
    assert (s.https_volume.cert, s.https_volume.key, s.https_volume.ca) == ("v.pem", "v.key", "")
    assert s.https_client.enabled and s.https_client.ca == "ca.pem"
    assert s.https_client.scheme == "https"


def test_environment_wins_over_the_file_unless_empty(tmp_path: Path) -> None:
    _write(tmp_path / "cwd", '[jwt.signing]\nkey = "file"\nexpires_after_seconds = 5\n')
    env = {
        "WEED_JWT_SIGNING_KEY": "env",
        "WEED_JWT_SIGNING_EXPIRES_AFTER_SECONDS": "30",
        "WEED_JWT_SIGNING_READ_KEY": "",  # set but empty: ignored, as viper ignores it
        "WEED_ACCESS_UI": "T",
        "WEED_GUARD_WHITE_LIST": "192.168.0.0/16",
        "WEED_HTTPS_CLIENT_ENABLED": "true",
    }
    s = _source(tmp_path, env).load()
    assert s.keys == JwtKeys(b"env", 30, b"", 60)
    assert s.access_ui and s.https_client.enabled
    assert s.white_list == ("192.168.0.0/16",)
    # No file at all: the environment alone.
    assert _source(tmp_path, env, dirs=()).load().keys.signing_key == b"env"


def test_names_match_without_regard_to_case(tmp_path: Path) -> None:
    _write(tmp_path / "cwd", '[JWT.Signing]\nKey = "k"\n')
    assert _source(tmp_path).load().keys.signing_key == b"k"


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("[jwt.signing\nkey = 1", {}, "not valid TOML"),
        ('[jwt.signing]\nkye = "typo"\n', {}, "unknown key jwt.signing.kye"),
        ("[https.client]\nenable = true\n", {}, "unknown key https.client.enable"),
        ("[jwt.signing]\nkey = 12345\n", {}, "jwt.signing.key must be a string"),
        ('[jwt.signing]\nexpires_after_seconds = "ten"\n', {}, "whole number"),
        ("[jwt.signing]\nexpires_after_seconds = 1.5\n", {}, "whole number"),
        ('[access]\nui = "yes"\n', {}, "true or false"),
        ('[guard]\nwhite_list = "10.0.0.1, example.com"\n', {}, "'example.com' is not an IP"),
        ("[guard]\nwhite_list = 5\n", {}, "string of IPs"),
        ('[https.master]\ncert = "c.pem"\n', {}, "needs both cert and key"),
        ('[https.client]\nkey = "k.pem"\n', {}, "needs both cert and key"),
        ('jwt = "flat"\n', {}, "jwt must be a table"),
        ('[jwt.signing]\nkey = "a"\nKEY = "b"\n', {}, "given twice"),
        ("", {"WEED_JWT_SIGNING_EXPIRES_AFTER_SECONDS": "abc"}, "WEED_JWT_SIGNING_EXPIRES"),
        ("", {"WEED_HTTPS_CLIENT_ENABLED": "on"}, "WEED_HTTPS_CLIENT_ENABLED must be true"),
    ],
)
def test_what_cannot_be_used_stops_the_load(
    tmp_path: Path, text: str, env: dict[str, str], message: str
) -> None:
    _write(tmp_path / "cwd", text)
    with pytest.raises(SecurityConfigError, match=message):
        _source(tmp_path, env).load()


def test_white_list_may_be_a_toml_array(tmp_path: Path) -> None:
    _write(tmp_path / "cwd", '[guard]\nwhite_list = ["10.0.0.1", "::1"]\n')
    assert _source(tmp_path).load().white_list == ("10.0.0.1", "::1")


def test_unreadable_file_stops_the_load(tmp_path: Path) -> None:
    (tmp_path / "cwd" / "security.toml").mkdir(parents=True)  # a directory: cannot be read
    with pytest.raises(SecurityConfigError, match=r"security\.toml"):
        _source(tmp_path).load()


def test_reload_refuses_a_file_that_went_away(tmp_path: Path) -> None:
    path = _write(tmp_path / "cwd", '[jwt.signing]\nkey = "k"\n')
    source = _source(tmp_path)
    current = source.load()
    path.unlink()
    with pytest.raises(SecurityConfigError, match="no longer there"):
        source.reload(current)
    # Nothing found at start and nothing now is fine (the environment may carry the keys).
    assert source.reload(SecuritySettings()) == SecuritySettings()


def test_the_scaffold_is_every_default(tmp_path: Path) -> None:
    _write(tmp_path / "cwd", SECURITY_TOML)
    loaded = _source(tmp_path).load()
    assert loaded == SecuritySettings(source=loaded.source)


def test_weeds_own_scaffold_loads(tmp_path: Path) -> None:
    if not WEED.exists():
        pytest.skip(f"reference binary not installed at {WEED}")
    text = subprocess.run(
        [str(WEED), "scaffold", "-config=security"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env={**os.environ, "HOME": str(tmp_path)},
    ).stdout
    _write(tmp_path / "cwd", text)
    loaded = _source(tmp_path).load()
    # weed's file shows 10 s for read tokens where its code defaults to 60 (quirk A26).
    assert loaded.keys == JwtKeys(b"", 10, b"", 10)
