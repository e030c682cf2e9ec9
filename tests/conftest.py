"""Fixtures and settings shared by the whole test session."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import pytest

from tests.s3_server import s3_store

__all__ = ["pytest_configure", "pytest_unconfigure", "s3_store"]

_PYC_KEY = pytest.StashKey[tuple[str, dict[str, str | None]]]()
_PYC_VARIABLES = ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")


def pytest_configure(config: pytest.Config) -> None:
    """Let the Python processes the tests start keep their bytecode, in a directory of the
    session's own, when the environment turns bytecode writing off (PYTHONDONTWRITEBYTECODE).

    Without it every server, shell and CLI process compiles each module of seaweed_py it imports
    from source (some 0.2 s of CPU per volume server start, hundreds of starts per run). The
    cache lives outside the tree and goes with the session, so nothing is written beside the
    sources, as the setting wants; the test process itself is left as it was started.
    """
    if not sys.flags.dont_write_bytecode:
        return
    saved = {name: os.environ.get(name) for name in _PYC_VARIABLES}
    prefix = tempfile.mkdtemp(prefix="weedpy-tests-pyc-")
    config.stash[_PYC_KEY] = (prefix, saved)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = prefix


def pytest_unconfigure(config: pytest.Config) -> None:
    taken = config.stash.get(_PYC_KEY, None)
    if taken is None:
        return
    prefix, saved = taken
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    shutil.rmtree(prefix, ignore_errors=True)
