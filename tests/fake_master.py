"""A fake master for volume-server tests: an in-process aiohttp app on loopback that records
heartbeats and unwritable reports and answers lookups from a table the tests fill in."""

from __future__ import annotations

from typing import Any

from aiohttp import web

Location = str | tuple[str, str | None]
"""A lookup answer entry: `url` (its own public URL), or (url, publicUrl or None to omit it)."""


class FakeMaster:
    def __init__(self, *, volume_size_limit: int = 30 * 1024 * 1024) -> None:
        self.volume_size_limit = volume_size_limit
        self.leader = ""
        self.heartbeats: list[dict[str, Any]] = []
        self.unwritable: list[str] = []  # volume ids as the request sent them
        self.locations: dict[int, list[Location]] = {}
        self.lookups = 0
        self.locations_version: int | None = None  # sent in heartbeat answers when set
        self.port = 0
        self.address = ""
        self.runner: web.AppRunner | None = None

    async def start(self, port: int = 0) -> str:
        """Listen on `port` (0: any free one; a given one may be a restarted master's)."""
        app = web.Application()
        app.router.add_post("/internal/heartbeat", self._heartbeat)
        app.router.add_get("/dir/lookup", self._lookup)
        app.router.add_post("/internal/volume/unwritable", self._unwritable)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port, reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.address = f"127.0.0.1:{self.port}"
        return self.address

    async def stop(self) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    async def _heartbeat(self, request: web.Request) -> web.Response:
        self.heartbeats.append(await request.json())
        answer: dict[str, Any] = {"volumeSizeLimit": self.volume_size_limit, "leader": self.leader}
        if self.locations_version is not None:
            answer["locationsVersion"] = self.locations_version
        return web.json_response(answer)

    async def _lookup(self, request: web.Request) -> web.Response:
        self.lookups += 1
        vid = int(request.query["volumeId"])
        entries = self.locations.get(vid, [])
        if not entries:
            return web.json_response({"volumeOrFileId": str(vid), "error": "not found"}, status=404)
        return web.json_response(
            {"volumeOrFileId": str(vid), "locations": [_location(e) for e in entries]}
        )

    async def _unwritable(self, request: web.Request) -> web.Response:
        self.unwritable.append(request.query["volume"])
        return web.json_response({})


def _location(entry: Location) -> dict[str, str]:
    url, public = (entry, entry) if isinstance(entry, str) else entry
    return {"url": url} if public is None else {"url": url, "publicUrl": public}
