"""What the parity suite runs against: an implementation and the addresses of its servers."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from tests.servers import Impl, skip_reason


@dataclass(frozen=True)
class Endpoints:
    """What a parity test knows of a running cluster: which implementation, and its addresses."""

    impl: Impl
    master: str  # host:port
    volume: str  # host:port


def skip_unless_runnable(impl: Impl) -> None:
    """Skip the test when `impl` cannot run here, with the reason.

    Under CI (`CI` set in the environment, as CI services do) a missing reference binary fails
    instead: the dev extra installs it, so its absence there is a broken setup, not a reason to
    pass without comparing.
    """
    reason = skip_reason(impl)
    if reason is None:
        return
    if impl == "weed" and os.environ.get("CI"):
        pytest.fail(f"CI must run the parity suite against the reference: {reason}")
    pytest.skip(reason)
