"""The SDK on a bad day: the volume server an assign names is dead.

A scripted master hands out fids on a dead address or on a live volume server, in the order a
test asks, so each retry path is exercised deterministically; then a real cluster loses a
volume server to SIGKILL under the SDK's feet. Also: `Client` offers the keyword arguments of
`AsyncClient` to type checkers.
"""

from __future__ import annotations

import inspect
import io
import itertools
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from seaweed_py.client import AsyncClient, Client
from seaweed_py.errors import ServerUnreachable
from seaweed_py.volume import VolumeServer
from tests import servers, volume_harness
from tests.servers import count_data_nodes, free_port, get_json
from tests.volume_harness import Starter

master = volume_harness.master
start_server = volume_harness.start_server
http = volume_harness.http


@dataclass
class ScriptedMaster:
    """`/dir/assign` answers with the next address of `script` (then always `live`), each with
    a fresh key on volume 1; `/dir/lookup` names `live`."""

    live: str
    dead: str
    script: list[str] = field(default_factory=list)
    assigned: list[str] = field(default_factory=list)
    address: str = ""
    _keys: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    async def assign(self, request: web.Request) -> web.Response:
        url = self.script.pop(0) if self.script else self.live
        self.assigned.append(url)
        fid = f"1,{next(self._keys):x}0a0b0c0d"
        return web.json_response({"fid": fid, "url": url, "publicUrl": url, "count": 1})

    async def lookup(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"volumeOrFileId": "1", "locations": [{"url": self.live, "publicUrl": self.live}]}
        )


@pytest.fixture
async def scripted(
    start_server: Starter, http: volume_harness.Session
) -> AsyncIterator[ScriptedMaster]:
    server: VolumeServer = await start_server()
    await volume_harness.allocate(http, server, 1)
    scripted = ScriptedMaster(live=f"127.0.0.1:{server.port}", dead=f"127.0.0.1:{free_port()}")
    app = web.Application()
    app.router.add_get("/dir/assign", scripted.assign)
    app.router.add_get("/dir/lookup", scripted.lookup)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    scripted.address = f"127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    yield scripted
    await runner.cleanup()


async def test_an_upload_to_a_dead_server_is_sent_once_more_with_a_fresh_fid(
    scripted: ScriptedMaster,
) -> None:
    scripted.script = [scripted.dead]
    async with AsyncClient(scripted.address) as client:
        data = os.urandom(5000)
        result = await client.upload(data, name="a.bin")
        assert scripted.assigned == [scripted.dead, scripted.live]
        assert result.url.startswith(scripted.live)
        assert await client.download(result.fid) == data

        # The master names the dead server again: the client asks for another fid instead of
        # trying it (it was unreachable moments ago).
        scripted.assigned.clear()
        scripted.script = [scripted.dead, scripted.dead]
        again = await client.upload(b"second", name="b.txt")
        assert scripted.assigned == [scripted.dead, scripted.dead, scripted.live]
        assert await client.download(again.fid) == b"second"


async def test_the_retry_happens_once(scripted: ScriptedMaster) -> None:
    scripted.script = [scripted.dead] * 40
    async with AsyncClient(scripted.address, unreachable_ttl=0) as client:
        with pytest.raises(ServerUnreachable, match=scripted.dead):
            await client.upload(b"x")
    assert scripted.assigned == [scripted.dead, scripted.dead]


async def test_sources_read_again_only_if_they_can_be(
    scripted: ScriptedMaster, tmp_path: Path
) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(3000))
    seekable = io.BytesIO(b"head" + os.urandom(2000))
    seekable.seek(4)  # an upload reads from the current position, a retry from there too
    async with AsyncClient(scripted.address) as client:
        for source, expected in ((path, path.read_bytes()), (seekable, seekable.getvalue()[4:])):
            scripted.script = [scripted.dead]
            result = await client.upload(source)
            assert await client.download(result.fid) == expected

    async with AsyncClient(scripted.address) as client:
        read_end, write_end = os.pipe()
        os.write(write_end, b"piped")
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:  # cannot be read twice
            scripted.assigned.clear()
            scripted.script = [scripted.dead]
            with pytest.raises(ServerUnreachable):
                await client.upload(pipe)
        assert scripted.assigned == [scripted.dead]


async def test_chunks_of_a_large_upload_are_retried_too(scripted: ScriptedMaster) -> None:
    data = os.urandom(5 * 1024)
    # manifest fid on the live server; the first chunk's assign names the dead one
    scripted.script = [scripted.live, scripted.dead]
    async with AsyncClient(scripted.address, chunk_size=2048, max_parallel_chunks=1) as client:
        result = await client.upload(data, name="big.bin")
        assert result.chunks == 3
        assert await client.download(result.fid) == data
    assert scripted.assigned.count(scripted.dead) == 1


async def test_a_write_to_an_explicit_fid_is_not_reassigned(scripted: ScriptedMaster) -> None:
    async with AsyncClient(scripted.address) as client:
        await client.lookup(1)
        with pytest.raises(ServerUnreachable, match=scripted.dead):
            await client.write("1,010a0b0c0d", b"x", url=scripted.dead)
        assert scripted.assigned == []
        # The dead server is remembered: the next upload steers around it.
        scripted.script = [scripted.dead]
        await client.upload(b"y")
        assert scripted.assigned == [scripted.dead, scripted.live]


def test_client_takes_the_keyword_arguments_of_async_client() -> None:
    blocking = inspect.signature(Client.__init__).parameters
    asynchronous = inspect.signature(AsyncClient.__init__).parameters
    assert all(p.kind is not p.VAR_KEYWORD for p in blocking.values())
    # `session` belongs to the loop it was made on; Client runs its own.
    assert set(asynchronous) - set(blocking) == {"session"}
    for name, param in blocking.items():
        other = asynchronous[name]
        assert (param.kind, param.default, param.annotation) == (
            other.kind,
            other.default,
            other.annotation,
        ), name


# ---- a real cluster loses a volume server ---------------------------------------------------


@pytest.mark.parametrize("impl", ["weedpy", "weed"])
def test_uploads_survive_a_volume_server_killed_under_them(
    impl: servers.Impl, tmp_path: Path
) -> None:
    reason = servers.skip_reason(impl)
    if reason:
        pytest.skip(reason)
    cluster = servers.start_cluster(impl, tmp_path, volumes=2)
    try:
        status_url = f"{cluster.master_url}/dir/status"
        for url in cluster.volume_urls:  # a writable volume on each, whatever growth chose
            get_json(f"{cluster.master_url}/vol/grow?count=1&dataNode={url}")

        def nodes() -> list[dict[str, Any]]:
            status = get_json(status_url)
            assert count_data_nodes(status) == 2
            found: list[dict[str, Any]] = status["Topology"]["DataCenters"][0]["Racks"][0][
                "DataNodes"
            ]
            return found

        deadline = time.monotonic() + 30
        while not all(n["Volumes"] for n in nodes()):
            assert time.monotonic() < deadline, nodes()
            time.sleep(0.1)
        cluster.kill_volume(0)  # SIGKILL: no goodbye, the master still names it for a while
        blobs = [os.urandom(1000 + i) for i in range(20)]
        with Client(cluster.master_url) as client:
            stored = [client.upload(blob, name=f"{i}.bin") for i, blob in enumerate(blobs)]
            assert all(r.url.startswith(cluster.volume_urls[1]) for r in stored)
            assert [client.download(r.fid) for r in stored] == blobs
    finally:
        cluster.stop()
