"""The README's Python SDK examples, run verbatim against `weedpy server`.

Every ```python block of README.md is executed as written, with only the master address
`localhost:9333` pointed at the test's server, so the README cannot drift from the SDK. The
blocks of "Securing a cluster" (an `https://` master) run in test_readme_https.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.cluster.test_readme_walkthrough import weedpy_server

README = Path(__file__).resolve().parents[2] / "README.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.M | re.S)


def readme_python_blocks(*, https: bool = False) -> list[str]:
    return [b for b in _BLOCK.findall(README.read_text()) if ("https://" in b) == https]


def test_readme_has_sdk_examples() -> None:
    blocks = readme_python_blocks()
    assert len(blocks) >= 2
    assert all("localhost:9333" in block for block in blocks)


def test_readme_sdk_examples_run_against_weedpy_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from seaweed_py.cli.main import COMMANDS

    if "server" not in COMMANDS:
        pytest.skip("`weedpy server` is not a registered command yet")
    with weedpy_server(tmp_path) as master:
        for block in readme_python_blocks():
            code = block.replace("localhost:9333", master)
            exec(compile(code, str(README), "exec"), {"__name__": "readme_example"})
    printed = capsys.readouterr().out
    # The first block prints the fid, size and ETag of its upload, then the chunk count.
    first = printed.splitlines()[0].split()
    assert re.fullmatch(r"\d+,[0-9a-f]{10,}", first[0]) and first[1] == "13"
    assert "3" in printed.splitlines()
