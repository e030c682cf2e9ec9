"""Master → volume server admin calls (docs/internals.md "Master → volume admin").

Each call is one HTTP request to the volume server's own port, over `[https.client]`'s scheme and
carrying a cluster token when a signing key is set (`client.cluster.Outgoing`). Failures raise:

| what happened | raised |
|---|---|
| connection refused/reset, timeout | `ServerUnreachable` (the server may or may not have acted) |
| the server answered a non-2xx status | `WeedError` subclass for that status, with the server's message |
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import orjson

from seaweed_py import errors
from seaweed_py.client.cluster import Outgoing

__all__ = ["VolumeAdmin", "json_object"]

_BY_STATUS: dict[int, type[errors.WeedError]] = {
    400: errors.BadRequest,
    401: errors.Unauthorized,
    404: errors.VolumeNotFound,
    406: errors.NoFreeSlots,
    409: errors.Conflict,
    502: errors.RemoteStorageError,
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

    async def tier_upload(
        self,
        server: str,
        vid: int,
        *,
        dest: str,
        collection: str = "",
        keep_local: bool = False,
        progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Move volume `vid`'s `.dat` on `server` to the bucket `dest` names; the answer
        (`backend`, `key`, `size`) once done, `progress` called with each progress line."""
        params = {"volume": str(vid), "collection": collection, "dest": dest}
        if keep_local:
            params["keepLocalDatFile"] = "true"
        return await self._stream(server, "/admin/volume/tier/upload", params, progress)

    async def tier_download(
        self,
        server: str,
        vid: int,
        *,
        collection: str = "",
        keep_remote: bool = False,
        progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Bring volume `vid`'s `.dat` back to `server`'s disk (deleting the object unless
        `keep_remote`)."""
        params = {"volume": str(vid), "collection": collection}
        if keep_remote:
            params["keepRemoteDatFile"] = "true"
        return await self._stream(server, "/admin/volume/tier/download", params, progress)

    async def tier_mount(
        self,
        server: str,
        vid: int,
        *,
        source: str,
        collection: str = "",
        key: str = "",
        replace: bool = False,
    ) -> dict[str, Any]:
        """Mount volume `vid` on `server` from the bucket `source` names (its `.idx` and `.vif`
        fetched from beside the data object `key`, or from the newest upload of that volume);
        `replace` gives up the server's own copy first."""
        params = {"volume": str(vid), "collection": collection, "source": source, "key": key}
        if replace:
            params["replace"] = "true"
        return await self._call("POST", server, "/admin/volume/tier/mount", params)

    async def _stream(
        self,
        server: str,
        path: str,
        params: dict[str, str],
        progress: Callable[[dict[str, Any]], None] | None,
    ) -> dict[str, Any]:
        """A long admin call answering newline-delimited JSON: progress lines, then the result
        (or `{"error": ...}` when it failed after the answer began). No overall timeout: a
        large volume takes as long as it takes; a silence of `timeout` seconds fails it."""
        url = self._out.url(server, path)
        timeout = aiohttp.ClientTimeout(
            total=None, connect=self._timeout.connect, sock_read=self._timeout.total
        )
        last: dict[str, Any] = {}
        try:
            async with self._session.post(
                url, params=params, headers=self._out.cluster_headers(), timeout=timeout
            ) as resp:
                if resp.status >= 300:
                    body = await resp.read()
                    answer = json_object(body)
                    message = str(answer.get("error") or body[:200].decode(errors="replace"))
                    cls = _BY_STATUS.get(resp.status, errors.WeedError)
                    raise cls(f"POST {path} answered {resp.status}: {message}", server=server)
                async for line in resp.content:
                    if not line.strip():
                        continue
                    last = json_object(line)
                    if "error" in last:
                        raise errors.WeedError(f"POST {path}: {last['error']}", server=server)
                    if last.get("progress") and progress is not None:
                        progress(last)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise errors.ServerUnreachable(
                f"POST {path} failed: {exc.__class__.__name__} {exc}".rstrip(), server=server
            ) from exc
        if last.get("progress") or not last:
            raise errors.ServerUnreachable(f"POST {path}: the answer broke off", server=server)
        return last

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
