"""Fixtures of the parity suite: one cluster per implementation, shared by the whole session.

Every test that takes `cluster` runs once against the reference `weed` and once against weedpy;
an implementation that cannot run here is skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.parity.blobs import Endpoints
from tests.servers import IMPLS, skip_reason, start_cluster


@pytest.fixture(scope="session", params=IMPLS)
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Endpoints]:
    impl = request.param
    reason = skip_reason(impl)
    if reason is not None:
        pytest.skip(reason)
    running = start_cluster(impl, tmp_path_factory.mktemp(f"parity-{impl}"))
    try:
        yield Endpoints(impl, running.master_url, running.volume_urls[0])
    finally:
        running.stop()
