"""`weedpy shell` against a stand-in master that records what it is asked: `volume.vacuum`
sends one signed `/vol/vacuum` per volume named (after checking they exist), and the lock is
renewed while the prompt waits, given back on `unlock`, and noticed when lost. The live-cluster
tests are tests/cluster/test_shell_commands.py."""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from seaweed_py.cli import shell as shell_cli
from seaweed_py.client.cluster import Outgoing
from seaweed_py.security.tokens import JwtKeys, check_cluster_token

KEY = b"stand-in-key"
TOKEN = 7


@dataclass
class StandIn:
    address: str = ""
    lease_seconds: float = 30.0
    renewals_refused: bool = False
    calls: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def of(self, path: str) -> list[dict[str, str]]:
        return [q for p, q in self.calls if p == path]


@pytest.fixture
async def master() -> AsyncIterator[StandIn]:
    stand_in = StandIn()

    def record(req: web.Request) -> None:
        auth = req.headers.get("Authorization", "")
        if req.method == "POST":  # every change is signed with the cluster token
            check_cluster_token(auth.removeprefix("Bearer "), KEY, time.time())
        stand_in.calls.append((req.path, dict(req.query)))

    async def status(req: web.Request) -> web.Response:
        return web.json_response({"IsLeader": True})

    async def lock(req: web.Request) -> web.Response:
        record(req)
        if req.query["token"] != "0" and stand_in.renewals_refused:
            return web.json_response({"error": "lost", "holder": ""}, status=409)
        grant = {"token": TOKEN, "name": "shell", "leaseSeconds": stand_in.lease_seconds}
        return web.json_response(grant)

    async def unlock(req: web.Request) -> web.Response:
        record(req)
        return web.json_response({})

    async def lookup(req: web.Request) -> web.Response:
        if req.query["volumeId"] == "9":
            return web.json_response({"volumeOrFileId": "9", "error": "not found"}, status=404)
        return web.json_response({"locations": [{"url": "127.0.0.1:1", "publicUrl": ""}]})

    async def vacuum(req: web.Request) -> web.Response:
        record(req)
        return web.json_response({"Topology": {}})

    app = web.Application()
    app.router.add_get("/cluster/status", status)
    app.router.add_post("/cluster/lock", lock)
    app.router.add_post("/cluster/unlock", unlock)
    app.router.add_get("/dir/lookup", lookup)
    app.router.add_post("/vol/vacuum", vacuum)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    stand_in.address = f"127.0.0.1:{port}"
    yield stand_in
    await runner.cleanup()


async def run(master: StandIn, lines: Any) -> tuple[int, str]:
    out = io.StringIO()
    status = await shell_cli._session(master.address, Outgoing(keys=JwtKeys(KEY)), lines, out)
    return status, out.getvalue()


def errors_of(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


async def test_vacuum_sends_one_signed_call_per_volume(master: StandIn) -> None:
    status, out = await run(
        master,
        [
            "lock",
            "volume.vacuum -volumeId 3,4 -garbageThreshold 0.25 -collection pics",
            "volume.vacuum",
            "volume.vacuum -volumeId 3,9",
        ],
    )
    assert status == 1
    sent = [
        (q.get("volumeId"), q["garbageThreshold"], q.get("collection"))
        for q in master.of("/vol/vacuum")
    ]
    assert sent == [("3", "0.25", "pics"), ("4", "0.25", "pics"), (None, "0.3", None)]
    assert "vacuumed volume(s) 3,4 above 0.25 garbage in collection 'pics'" in out
    assert errors_of(out) == ["error: volume.vacuum: volume 9 not found (volume_id=9)"], out


def _prompt(first: str, wait: float, then: list[str]) -> Iterator[str]:
    """Lines typed at a prompt: `first`, then nothing for `wait` seconds, then `then`."""
    yield first
    time.sleep(wait)
    yield from then


async def test_the_lock_is_renewed_while_the_prompt_waits_and_given_back(
    master: StandIn,
) -> None:
    master.lease_seconds = 1.5  # renewals every 0.5 s
    status, out = await run(master, _prompt("lock", 1.8, ["unlock", "volume.balance"]))
    assert status == 1  # the balance after unlock
    leases = master.of("/cluster/lock")
    assert leases[0]["token"] == "0" and leases[0]["client"].startswith("weedpy shell ")
    assert len(leases) >= 3 and all(q["token"] == str(TOKEN) for q in leases[1:]), leases
    assert master.of("/cluster/unlock") == [{"name": "shell", "token": str(TOKEN)}]
    assert errors_of(out) == ['error: volume.balance: need to run "lock" first to continue'], out


async def test_a_lost_lock_is_said_and_changes_then_refuse(master: StandIn) -> None:
    master.lease_seconds = 0.6
    master.renewals_refused = True
    status, out = await run(master, _prompt("lock", 1.0, ["volume.vacuum"]))
    assert status == 1
    assert errors_of(out) == [
        "error: the admin lock is lost; run lock again",
        'error: volume.vacuum: need to run "lock" first to continue',
    ], out
    assert master.of("/vol/vacuum") == []
    assert master.of("/cluster/unlock") == []  # nothing held, nothing given back
