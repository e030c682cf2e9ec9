"""Replication waits are bounded (issue 12): a replica that hangs fails the write or delete
within `-replicationTimeout` and the write is rolled back (A20); a replica the master drops is
not waited for at all; a replica that is slow but keeps taking the body is not failed.

The peers are in-process stand-ins: a black hole (accepts connections, reads a little, never
answers: a SIGSTOPped server as the network sees it) and a fake volume server whose answer to
each method the test chooses. The fake master's lookup table and `locationsVersion` play the
master dropping a server.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import pytest
from aiohttp import web

from seaweed_py.volume import VolumeServer
from tests import volume_harness
from tests.fake_master import FakeMaster

Session = volume_harness.Session
Starter = volume_harness.Starter
master = volume_harness.master
start_server = volume_harness.start_server
http = volume_harness.http
_url = volume_harness.url
_allocate = volume_harness.allocate
_get = volume_harness.get
until = volume_harness.until

VID = 4
FID = f"{VID},01637037d6"
# What the tests allow for an answer that must not wait for a hung peer (the code under test
# would otherwise wait 60 s); generous, so a loaded machine does not fail them.
BOUND = 20.0


class BlackHole:
    """Accepts TCP connections and never answers; reads at most 64 KiB of each (then the
    kernel's buffers fill and the sender's writes stall), like a frozen process."""

    def __init__(self) -> None:
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._release = asyncio.Event()
        self.url = ""

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._hold, "127.0.0.1", 0)
        self.url = f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self.url

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        await self._release.wait()
        writer.close()

    async def stop(self) -> None:
        self._release.set()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


class FakePeer:
    """A volume server stand-in: `answers[method]` is "ok" (201/202), "fail" (500) or "hang"
    (never answers). Records the requests it answered."""

    def __init__(self, **answers: str) -> None:
        self.answers = {"POST": "ok", "DELETE": "ok", **answers}
        self.seen: list[tuple[str, str]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._release = asyncio.Event()

    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        return self.url

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()
        answer = self.answers.get(request.method, "ok")
        if answer == "hang":
            await self._release.wait()
        self.seen.append((request.method, request.path_qs))
        if answer == "fail":
            return web.json_response({"error": "refused by the test"}, status=500)
        return web.json_response({}, status=201 if request.method == "POST" else 202)

    async def stop(self) -> None:
        self._release.set()
        assert self._runner is not None
        await self._runner.cleanup()


@pytest.fixture
async def hole() -> AsyncIterator[BlackHole]:
    h = BlackHole()
    await h.start()
    yield h
    await h.stop()


async def _primary(
    start_server: Starter, http: Session, master: FakeMaster, peers: list[str], **options: Any
) -> VolumeServer:
    """A volume server holding VID with one more copy per peer, which the master lists."""
    server = await start_server(**options)
    placement = {1: "000", 2: "001", 3: "002"}[len(peers) + 1]
    await _allocate(http, server, VID, replication=placement)
    master.locations[VID] = [server.url(), *peers]
    return server


async def _call(
    http: Session, method: str, url: str, data: bytes = b""
) -> tuple[int, dict[str, Any]]:
    # (A stream: aiohttp warns of large bodies given as bytes.)
    async with http.request(method, url, data=io.BytesIO(data) if data else None) as resp:
        body = await resp.read()
        return resp.status, json.loads(body) if body else {}


async def _bounded(call: Awaitable[tuple[int, dict[str, Any]]]) -> tuple[int, dict[str, Any]]:
    return await asyncio.wait_for(call, BOUND)


# ---------------------------------------------------------------------- the timeout


@pytest.mark.parametrize("size", [100, 16 * 1024 * 1024], ids=["small", "body-stalls"])
async def test_a_hung_replica_fails_the_write_within_the_timeout_and_it_is_rolled_back(
    start_server: Starter, http: Session, master: FakeMaster, hole: BlackHole, size: int
) -> None:
    primary = await _primary(start_server, http, master, [hole.url], replication_timeout=0.5)
    status, body = await _bounded(_call(http, "POST", _url(primary, f"/{FID}"), b"x" * size))
    assert status == 500, body
    assert hole.url in body["error"] and "replica did not answer within 0.5 s" in body["error"]
    assert hole.accepted >= 1  # the forward did reach it
    assert (await _get(http, _url(primary, f"/{FID}")))[0] == 404  # rolled back
    assert master.unwritable == [str(VID)]


async def test_the_rollback_of_a_failed_write_is_bounded_too(
    start_server: Starter, http: Session, master: FakeMaster
) -> None:
    """Copy 3: one peer stores the write and then hangs on the rollback's delete, the other
    refuses the write. The client still hears of the failure within the bound."""
    stores = FakePeer(DELETE="hang")
    refuses = FakePeer(POST="fail")
    for peer in (stores, refuses):
        await peer.start()
    try:
        primary = await _primary(
            start_server, http, master, [stores.url, refuses.url], replication_timeout=0.5
        )
        status, body = await _bounded(_call(http, "POST", _url(primary, f"/{FID}"), b"data"))
        assert status == 500 and refuses.url in body["error"], body
        assert [method for method, _ in stores.seen] == ["POST"]  # stored; the DELETE hangs
        assert (await _get(http, _url(primary, f"/{FID}")))[0] == 404
        assert master.unwritable == [str(VID)]
    finally:
        for peer in (stores, refuses):
            await peer.stop()


async def test_a_delete_to_a_hung_replica_fails_within_the_timeout(
    start_server: Starter, http: Session, master: FakeMaster, hole: BlackHole
) -> None:
    peer = FakePeer()
    await peer.start()
    try:
        primary = await _primary(start_server, http, master, [peer.url], replication_timeout=0.5)
        assert (await _call(http, "POST", _url(primary, f"/{FID}"), b"data"))[0] == 201
        master.locations[VID] = [primary.url(), hole.url]  # ...then its peer hangs
        status, body = await _bounded(_call(http, "DELETE", _url(primary, f"/{FID}")))
        assert status == 500 and "Deletion Failed" in body["error"], body
        assert hole.url in body["error"]
        assert master.unwritable == [str(VID)]
    finally:
        await peer.stop()


async def test_a_replica_that_keeps_taking_the_body_is_not_failed(
    start_server: Starter, http: Session, master: FakeMaster
) -> None:
    """The timeout bounds a wait without progress, not the whole transfer: a peer that reads
    a large body slowly, each piece well within the timeout, stores the write."""

    async def slow(request: web.Request) -> web.Response:
        got = 0
        async for piece in request.content.iter_chunked(1 << 20):
            got += len(piece)
            await asyncio.sleep(0.1)
        return web.json_response({"got": got}, status=201)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/{tail:.*}", slow)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    # A small receive buffer: what the peer has not read yet is mostly in the sender's buffer,
    # so the body's last piece leaves the sender not long before the peer answers.
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    listener.bind(("127.0.0.1", 0))
    site = web.SockSite(runner, listener)
    await site.start()
    peer = f"127.0.0.1:{listener.getsockname()[1]}"
    try:
        master.volume_size_limit = 64 * 1024 * 1024
        primary = await _primary(start_server, http, master, [peer], replication_timeout=2)
        data = bytes(range(256)) * (128 * 1024)  # 32 MiB: over 3 s at the peer's pace
        status, body = await _bounded(_call(http, "POST", _url(primary, f"/{FID}"), data))
        assert status == 201, body
        assert (await _get(http, _url(primary, f"/{FID}")))[2] == data
    finally:
        await runner.cleanup()


# ---------------------------------------------------------------------- dropped by the master


async def test_a_write_in_flight_to_a_replica_the_master_drops_fails_at_once(
    start_server: Starter, http: Session, master: FakeMaster, hole: BlackHole
) -> None:
    master.locations_version = 1
    primary = await _primary(start_server, http, master, [hole.url], replication_timeout=3600)
    write = asyncio.ensure_future(_call(http, "POST", _url(primary, f"/{FID}"), b"data"))
    await until(lambda: hole.accepted >= 1)  # the forward is in flight, and hangs
    assert not write.done()
    master.locations[VID] = [primary.url()]  # the master drops the hung server
    master.locations_version = 2
    status, body = await _bounded(write)
    assert status == 500, body
    assert hole.url in body["error"] and "dropped by the master" in body["error"]
    assert (await _get(http, _url(primary, f"/{FID}")))[0] == 404  # rolled back
    # Later writes fail fast, before any forward, until the copy is back.
    status, body = await _bounded(_call(http, "POST", _url(primary, f"/{FID}"), b"again"))
    assert status == 500 and "is less than volume replication copy count [2]" in body["error"]
    assert hole.accepted == 1


async def test_a_delete_in_flight_to_a_replica_the_master_drops_fails_at_once(
    start_server: Starter, http: Session, master: FakeMaster, hole: BlackHole
) -> None:
    master.locations_version = 1
    peer = FakePeer()
    await peer.start()
    try:
        primary = await _primary(start_server, http, master, [peer.url], replication_timeout=3600)
        assert (await _call(http, "POST", _url(primary, f"/{FID}"), b"data"))[0] == 201
        master.locations[VID] = [primary.url(), hole.url]
        delete = asyncio.ensure_future(_call(http, "DELETE", _url(primary, f"/{FID}")))
        await until(lambda: hole.accepted >= 1)
        master.locations[VID] = [primary.url()]
        master.locations_version = 2
        status, body = await _bounded(delete)
        assert status == 500 and "dropped by the master" in body["error"], body
    finally:
        await peer.stop()


async def test_a_locations_change_that_keeps_the_replica_does_not_abandon_it(
    start_server: Starter, http: Session, master: FakeMaster
) -> None:
    """Another volume's change bumps `locationsVersion` too: the write looks again, finds its
    replica still listed, and waits for it as before."""
    master.locations_version = 1
    peer = FakePeer(POST="hang")
    await peer.start()
    try:
        primary = await _primary(start_server, http, master, [peer.url], replication_timeout=3600)
        write = asyncio.ensure_future(_call(http, "POST", _url(primary, f"/{FID}"), b"data"))
        lookups = master.lookups
        master.locations[VID + 1] = [primary.url()]
        master.locations_version = 2
        await until(lambda: master.lookups > lookups)  # it looked again...
        await asyncio.sleep(0.5)  # (several pulses)
        assert not write.done()  # ...and still waits
        peer.answers["POST"] = "ok"
        peer._release.set()
        status, body = await _bounded(write)
        assert status == 201, body
    finally:
        await peer.stop()
