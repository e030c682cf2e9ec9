"""Fixtures of the parity suite: one cluster per implementation, shared by the whole session.

Every test that takes `cluster` runs once against the reference `weed` and once against weedpy;
an implementation that cannot run here is skipped with the reason (`targets.skip_unless_runnable`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.parity.targets import Endpoints, skip_unless_runnable
from tests.servers import IMPLS, Impl, start_cluster


@pytest.fixture(scope="session", params=IMPLS)
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Endpoints]:
    impl: Impl = request.param
    skip_unless_runnable(impl)
    running = start_cluster(impl, tmp_path_factory.mktemp(f"parity-{impl}"))
    try:
        yield Endpoints(impl, running.master_url, running.volume_urls[0])
    finally:
        running.stop()
