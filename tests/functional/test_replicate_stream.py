"""Forwards of a spooled upload to replicas (`client/replicate.py`): streamed from their
source a piece at a time, and on the wire byte for byte what an in-memory copy sends."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from seaweed_py.client import replicate
from seaweed_py.client.replicate import ReplicaCopy, Replicator


class _Source:
    """A `BodySource` over bytes, recording the reads asked of it."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.reads: list[int] = []

    @property
    def size(self) -> int:
        return len(self._data)

    def read_at(self, pos: int, size: int) -> bytes:
        self.reads.append(size)
        return self._data[pos : pos + size]


@pytest.fixture
async def replica() -> AsyncIterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """A stand-in replica recording each request's headers and raw body."""
    seen: list[tuple[dict[str, str], bytes]] = []

    async def store(request: web.Request) -> web.Response:
        seen.append((dict(request.headers), await request.read()))
        return web.Response(status=201)

    app = web.Application(client_max_size=64 << 20)
    app.router.add_post("/{fid}", store)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"127.0.0.1:{port}", seen
    await runner.cleanup()


async def test_a_streamed_copy_is_sent_as_the_in_memory_one_is(
    replica: tuple[str, list[tuple[dict[str, str], bytes]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, seen = replica
    monkeypatch.setattr(replicate.secrets, "token_hex", lambda n: "f1xed")
    data = os.urandom((5 << 20) + 123)
    copy = ReplicaCopy(
        path="/3,01637037d6",
        data=data,
        name='a "b".bin',
        mime="application/x-thing",
        gzipped=True,
        last_modified=1_700_000_000,
        ttl="3d",
        chunk_manifest=False,
        pairs={"Color": "blue"},
        content_md5="c29tZQ==",
        fsync=True,
    )
    source = _Source(data)
    streamed = dataclasses.replace(copy, data=source)
    replicator = Replicator()
    await replicator.start()
    try:
        assert await replicator.write([url, url], streamed) == {}
    finally:
        await replicator.close()
    assert len(seen) == 2
    for headers, body in seen:
        assert body == copy.multipart("f1xed")
        assert headers["Content-Length"] == str(len(body))
        assert "Transfer-Encoding" not in headers
        assert headers["Content-Type"] == "multipart/form-data; boundary=f1xed"
        assert headers["Seaweed-Color"] == "blue"
    # Each replica read the source on its own, never more than a mebibyte at a time.
    assert sum(source.reads) == 2 * len(data) and max(source.reads) <= 1 << 20
