"""What installing weedpy pulls: the wheel's metadata, built from pyproject.toml without
warnings, and a client-only environment (the server packages made unimportable) in which the
SDK and the client commands work while the server commands say what to install.
"""

from __future__ import annotations

import email.parser
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from seaweed_py.cli.main import SERVER_PACKAGES

ROOT = Path(__file__).resolve().parents[2]
# Distribution names of the server extra, by the import name they provide.
_SERVER_DISTRIBUTIONS = {
    "uvloop": "uvloop",
    "httptools": "httptools",
    "orjson": "orjson",
    "numpy": "numpy",
    "crc32c": "crc32c",
    "prometheus_client": "prometheus-client",
    "isal": "isal",
    "PIL": "pillow",  # image transforms on read: a server dependency, not an extra of its own
    "obstore": "obstore",
}


def _requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match, requirement
    return match.group(0).lower().replace("_", "-")


@pytest.fixture(scope="module")
def metadata(tmp_path_factory: pytest.TempPathFactory) -> email.message.Message:
    """METADATA of the wheel, built the way pip's build backend call does, in a copy of the
    project (the build writes an egg-info next to the sources)."""
    work = tmp_path_factory.mktemp("build")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, work / name)
    shutil.copytree(
        ROOT / "seaweed_py", work / "seaweed_py", ignore=shutil.ignore_patterns("__pycache__")
    )
    out = work / "out"
    out.mkdir()
    script = (
        "from setuptools import build_meta as b; print(b.prepare_metadata_for_build_wheel('out'))"
    )
    done = subprocess.run(
        # Every warning is an error: the license table's deprecation, unknown keys...
        [sys.executable, "-W", "error", "-c", script],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Warning" not in done.stderr, done.stderr[-3000:]
    dist_info = out / done.stdout.strip().splitlines()[-1]
    return email.parser.Parser().parsestr((dist_info / "METADATA").read_text())


def _requires(metadata: email.message.Message, extra: str | None) -> set[str]:
    names = set()
    for requirement in metadata.get_all("Requires-Dist") or []:
        marker = re.search(r"""extra\s*==\s*["']([^"']+)["']""", requirement)
        if (marker.group(1) if marker else None) == extra:
            names.add(_requirement_name(requirement))
    return names


def test_license_is_an_spdx_expression(metadata: email.message.Message) -> None:
    assert metadata["License-Expression"] == "Apache-2.0"


def test_a_client_install_pulls_no_server_dependency(metadata: email.message.Message) -> None:
    server = _requires(metadata, "server")
    assert server == set(_SERVER_DISTRIBUTIONS.values())
    assert set(_SERVER_DISTRIBUTIONS) == SERVER_PACKAGES
    assert "client" in (metadata.get_all("Provides-Extra") or [])
    client = _requires(metadata, None) | _requires(metadata, "client")
    assert client == {"aiohttp"}
    assert not client & server
    assert "weedpy" in _requires(metadata, "dev")  # dev = weedpy[server] + tools


_CLIENT_ONLY = textwrap.dedent(
    """
    import importlib.abc, sys

    class _NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.partition(".")[0] in {blocked!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, _NotInstalled())
    """
)


def _client_only(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    prelude = _CLIENT_ONLY.format(blocked=sorted(SERVER_PACKAGES))
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_the_sdk_and_client_commands_import_without_server_packages() -> None:
    done = _client_only(
        """
        import sys
        from seaweed_py.client import AsyncClient, Client
        from seaweed_py.cli.main import main
        for command in ("upload", "download"):
            assert main([command, "-h"]) == 0
        loaded = sorted({n.partition(".")[0] for n in sys.modules} & set(sys.argv[1:]))
        print("loaded:", loaded)
        """,
        *SERVER_PACKAGES,
    )
    assert done.returncode == 0, done.stderr
    assert "loaded: []" in done.stdout


@pytest.mark.parametrize(
    "command", ["server", "master", "volume", "benchmark", "fix", "export", "compact"]
)
def test_server_commands_name_the_extra_they_need(command: str) -> None:
    done = _client_only(
        """
        import sys
        from seaweed_py.cli.main import main
        sys.exit(main([sys.argv[1], "-h"]))
        """,
        command,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"weedpy {command}: needs the server dependencies (missing ")
    assert "pip install 'weedpy[server]'" in done.stderr
