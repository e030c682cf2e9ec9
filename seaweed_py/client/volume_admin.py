"""Master → volume server admin calls (docs/internals.md "Master → volume admin").

Each call is one HTTP request to the volume server's own port, over `[https.client]`'s scheme and
carrying a cluster token when a signing key is set (`client.cluster.Outgoing`). Failures raise:

| what happened | raised |
|---|---|
| connection refused/reset, timeout | `ServerUnreachable` (the server may or may not have acted) |
| the server answered a non-2xx status | `WeedError` subclass for that status, with the server's message |
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from seaweed_py import errors
from seaweed_py.client.cluster import Outgoing

__all__ = ["VolumeAdmin", "json_object"]

_BY_STATUS: dict[int, type[errors.WeedError]] = {
    400: errors.BadRequest,
    404: errors.VolumeNotFound,
    406: errors.NoFreeSlots,
    409: errors.Conflict,
}


class VolumeAdmin:
    """Admin calls over one shared aiohttp session (the caller owns the session)."""

    def __init__(
        self, session: aiohttp.ClientSession, out: Outgoing, timeout: float = 60.0
    ) -> None:
        self._session = session
        self._out = out
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=min(5.0, timeout))

    async def allocate(
        self,
        server: str,
        vid: int,
        *,
        collection: str = "",
        replication: str = "",
        ttl: str = "",
        preallocate: int = 0,
        disk: str = "",
    ) -> None:
        """Create volume `vid` on `server` (`host:port`)."""
        await self._post(
            server,
            "/admin/volume/allocate",
            {
                "volume": str(vid),
                "collection": collection,
                "replication": replication,
                "ttl": ttl,
                "preallocate": str(preallocate),
                "disk": disk,
            },
        )

    async def delete_volume(self, server: str, vid: int, *, only_empty: bool = False) -> None:
        params = {"volume": str(vid)}
        if only_empty:
            params["onlyEmpty"] = "true"
        await self._post(server, "/admin/volume/delete", params)

    async def delete_collection(self, server: str, collection: str) -> None:
        await self._post(server, "/admin/collection/delete", {"collection": collection})

    async def mark_readonly(self, server: str, vid: int, *, persist: bool = False) -> None:
        params = {"volume": str(vid)}
        if persist:
            params["persist"] = "true"
        await self._post(server, "/admin/volume/readonly", params)

    async def mark_writable(self, server: str, vid: int) -> None:
        await self._post(server, "/admin/volume/writable", {"volume": str(vid)})

    async def volume_status(self, server: str, vid: int) -> dict[str, Any]:
        return await self._call("GET", server, "/admin/volume/status", {"volume": str(vid)})

    async def _post(self, server: str, path: str, params: dict[str, str]) -> None:
        await self._call("POST", server, path, params)

    async def _call(
        self, method: str, server: str, path: str, params: dict[str, str]
    ) -> dict[str, Any]:
        url = self._out.url(server, path)
        headers = self._out.cluster_headers()
        try:
            async with self._session.request(
                method, url, params=params, headers=headers, timeout=self._timeout
            ) as resp:
                body = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise errors.ServerUnreachable(
                f"{method} {path} failed: {exc.__class__.__name__} {exc}".rstrip(),
                server=server,
            ) from exc
        answer = json_object(body)
        if 200 <= status < 300:
            return answer
        message = str(answer.get("error") or body[:200].decode(errors="replace") or status)
        cls = _BY_STATUS.get(status, errors.WeedError)
        raise cls(f"{method} {path} answered {status}: {message}", server=server)


def json_object(body: bytes) -> dict[str, Any]:
    """A server's JSON answer as a dict; {} when empty, not JSON, or not an object."""
    if not body:
        return {}
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
