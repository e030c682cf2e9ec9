"""`-fileSizeLimitMB`: the largest accepted upload and the first refused one, against both."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.parity.blobs import assign, put_raw, upload
from tests.parity.client import Reply, get
from tests.parity.targets import Endpoints, skip_unless_runnable
from tests.servers import IMPLS, Impl, start_cluster

pytestmark = pytest.mark.parity

LIMIT = 1024 * 1024  # -fileSizeLimitMB=1


@pytest.fixture(scope="module", params=IMPLS)
def limited(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Endpoints]:
    impl: Impl = request.param
    skip_unless_runnable(impl)
    base = tmp_path_factory.mktemp(f"limit-{impl}")
    running = start_cluster(impl, base, volume_args=["-fileSizeLimitMB=1"])
    try:
        yield Endpoints(impl, running.master_url, running.volume_urls[0])
    finally:
        running.stop()


def send(cluster: Endpoints, size: int, form: str) -> tuple[str, Reply]:
    fid = assign(cluster).fid
    data = os.urandom(size)
    if form == "multipart":
        return fid, upload(cluster.volume, fid, data, "big.bin")
    return fid, put_raw(cluster.volume, fid, data, "application/octet-stream")


@pytest.mark.parametrize("form", ["multipart", "raw"])
def test_upload_at_the_limit_is_stored(limited: Endpoints, form: str) -> None:
    fid, reply = send(limited, LIMIT, form)
    assert reply.status == 201, reply.describe()
    assert reply.json()["size"] == LIMIT
    assert len(get(f"{limited.volume}/{fid}").body) == LIMIT


@pytest.mark.parametrize("size", [LIMIT + 1, 3 * LIMIT])
@pytest.mark.parametrize("form", ["multipart", "raw"])
def test_upload_over_the_limit_is_refused(limited: Endpoints, form: str, size: int) -> None:
    fid, reply = send(limited, size, form)
    # The reference answers 400; weedpy 413 Payload Too Large (issue 4), refusing a body it can
    # see is too large before reading it.
    assert reply.status == (400 if limited.impl == "weed" else 413), reply.describe()
    assert isinstance(reply.json()["error"], str)
    assert get(f"{limited.volume}/{fid}").status == 404
