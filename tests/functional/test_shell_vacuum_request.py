"""`volume.vacuum` asks the master's `/vol/vacuum` (issue 13) once per volume named, with the
threshold and collection, signed with the cluster token, after checking the volumes exist.
Against a stand-in master that records the calls: the live-cluster test in
tests/cluster/test_shell_commands.py runs once the master has the route."""

from __future__ import annotations

import io
import json
import time
from typing import Any

from aiohttp import web

from seaweed_py.cli import shell as shell_cli
from seaweed_py.client.cluster import Outgoing
from seaweed_py.security.tokens import JwtKeys, check_cluster_token

KEY = b"vacuum-request-key"


async def _stand_in(calls: list[dict[str, Any]]) -> tuple[web.AppRunner, str]:
    async def status(req: web.Request) -> web.Response:
        return web.json_response({"IsLeader": True})

    async def lock(req: web.Request) -> web.Response:
        return web.json_response({"token": 7, "name": "shell"})

    async def lookup(req: web.Request) -> web.Response:
        if req.query["volumeId"] == "9":
            return web.json_response({"volumeOrFileId": "9", "error": "not found"}, status=404)
        return web.json_response({"locations": [{"url": "127.0.0.1:1", "publicUrl": ""}]})

    async def vacuum(req: web.Request) -> web.Response:
        calls.append({**req.query, "auth": req.headers.get("Authorization", "")})
        return web.json_response({"Topology": {}})

    app = web.Application()
    app.router.add_get("/cluster/status", status)
    app.router.add_post("/cluster/lock", lock)
    app.router.add_post("/cluster/unlock", status)
    app.router.add_get("/dir/lookup", lookup)
    app.router.add_post("/vol/vacuum", vacuum)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"127.0.0.1:{port}"


async def _run(master: str, lines: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    status = await shell_cli._session(master, Outgoing(keys=JwtKeys(KEY)), lines, out)
    return status, out.getvalue()


async def test_one_signed_call_per_volume_and_unknown_volumes_refused() -> None:
    calls: list[dict[str, Any]] = []
    runner, master = await _stand_in(calls)
    try:
        status, out = await _run(
            master,
            [
                "lock",
                "volume.vacuum -volumeId 3,4 -garbageThreshold 0.25 -collection pics",
                "volume.vacuum",
                "volume.vacuum -volumeId 3,9",
            ],
        )
    finally:
        await runner.cleanup()
    assert status == 1
    assert [(c.get("volumeId"), c["garbageThreshold"], c.get("collection")) for c in calls] == [
        ("3", "0.25", "pics"),
        ("4", "0.25", "pics"),
        (None, "0.3", None),
    ]
    for c in calls:
        assert c["auth"].startswith("Bearer ")
        check_cluster_token(c["auth"].removeprefix("Bearer "), KEY, time.time())
    assert "vacuumed volume(s) 3,4 above 0.25 garbage in collection 'pics'" in out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert errors == ["error: volume.vacuum: volume 9 not found (volume_id=9)"], out
    assert json.dumps(calls)  # plain values only
