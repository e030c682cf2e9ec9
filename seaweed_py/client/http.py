"""The one outgoing-HTTP layer: how weedpy's servers call other servers, and the one rule that
turns an HTTP status into an `errors` class (the SDK's too).

    http = HttpClient(out, Timeout(total=10, connect=3))   # out: client.cluster.Outgoing
    await http.start()
    reply = await http.call("POST", "10.0.0.2:8080", "/admin/volume/delete",
                            params={"volume": "7"}, cluster=True)
    await http.close()

Every server keeps one `HttpClient` per kind of traffic (heartbeats, admin calls, replica
forwards, proxied reads), each with its own connection pool, so a burst of one never queues
behind another. `out` gives the scheme and TLS context of `[https.client]` and, with
`cluster=True`, a fresh cluster token.

| what happened | `request` | `call` |
|---|---|---|
| no connection, reset, TLS failure, or no answer within the timeout | `ServerUnreachable` (503): the server may or may not have acted | the same |
| the server answered | a `Reply(status, headers, body)`, whatever the status | the `Reply` if its status is expected (`ok`, by default 2xx), else `error_for(status)` raised (`Reply.expect`) |

`error_for(status, message)`: the class of `seaweed_py.errors` whose status it is
(`errors.error_for_status`: 400 `BadRequest`, 401 `Unauthorized`, 404 `NotFound`, 405
`MethodNotAllowed`, 406 `NotAcceptable`, 408 `RequestTimeout`, 409 `Conflict`, 413
`PayloadTooLarge`, 414 `UriTooLong`, 416 `RangeNotSatisfiable`, 417 `ExpectationFailed`, 429
`TooManyRequests`, 431 `HeaderFieldsTooLarge`, 503 `ServiceUnavailable`, 507 `DiskFull`), any
other status `WeedError` (500). A caller that knows more narrows a status to a subclass of its class (`narrow={404:
VolumeNotFound}` for a volume call): never to another status. The message is the caller's
`what`, the status and the server's own message (`error_message`: the `error` field of a JSON
answer, else its text).

Timeouts are per client (`Timeout`) or per call; `None` waits for ever, for callers that keep
their own deadlines (replica forwards measure progress, not the whole transfer). `lines` reads a
streamed answer (the volume server's NDJSON progress) line by line.

Importable without the server packages (no orjson): the SDK uses `error_for`.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import AsyncIterable, AsyncIterator, Container, Mapping
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

from seaweed_py.client.cluster import Outgoing
from seaweed_py.errors import ServerUnreachable, WeedError, error_for_status

__all__ = ["HttpClient", "Reply", "Timeout", "error_for", "error_message", "json_object"]

Body = bytes | AsyncIterable[bytes | memoryview]
# aiohttp warns of bytes bodies larger than this, which it would send whole; a BytesIO goes out
# in pieces with the same Content-Length.
_LARGE_BODY = 1 << 20


def error_for(
    status: int,
    message: str,
    *,
    narrow: Mapping[int, type[WeedError]] | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, object] | None = None,
    **context: object,
) -> WeedError:
    """The error a server's `status` answer means (see the module docstring); `headers`,
    `extra` and `context` as `WeedError` takes them."""
    cls = error_for_status(status)
    if narrow is not None:
        special = narrow.get(status)
        if special is not None:
            if not issubclass(special, cls):
                raise TypeError(f"{special.__name__} does not narrow {cls.__name__} ({status})")
            cls = special
    return cls(message, headers=headers, extra=extra, **context)


def json_object(body: bytes) -> dict[str, Any]:
    """A server's JSON answer as a dict; {} when empty, not JSON, or not an object."""
    try:
        value = json.loads(body)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def error_message(body: bytes) -> str:
    """A failed answer's own message: the `error` field of a JSON object, else its text."""
    message = body.decode("utf-8", "replace").strip()
    with contextlib.suppress(ValueError, AttributeError):
        message = str(json.loads(body).get("error") or message)
    return message


@dataclass(frozen=True, slots=True)
class Timeout:
    """Seconds for a whole call, for its connection, and of silence while its answer arrives
    (None: no limit)."""

    total: float | None
    connect: float | None = None
    read: float | None = None

    def _aiohttp(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=self.total, connect=self.connect, sock_read=self.read)


@dataclass(frozen=True, slots=True)
class Reply:
    """A server's whole answer. `headers` match names case-insensitively."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def expect(
        self,
        what: str,
        *,
        ok: Container[int] | None = None,
        narrow: Mapping[int, type[WeedError]] | None = None,
    ) -> Reply:
        """This reply if its status is in `ok` (default: any 2xx), else raise `error_for` it,
        `what` naming the call."""
        status = self.status
        if (200 <= status < 300) if ok is None else status in ok:
            return self
        message = error_message(self.body) or str(status)
        raise error_for(status, f"{what} answered {status}: {message}", narrow=narrow)


_NO_HEADERS: Final[Mapping[str, str]] = {}


class HttpClient:
    """Calls to other servers over one connection pool; `start()` before, `close()` after.

    With `session`, the calls go over that aiohttp session instead (a CLI's or a test's, which
    its owner closes; `start()` and `close()` leave it alone); `out` still gives the scheme and
    the tokens."""

    def __init__(
        self,
        out: Outgoing | None,
        timeout: Timeout,
        *,
        decompress: bool = True,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.out = out or Outgoing()
        self._timeout = timeout._aiohttp()
        self._decompress = decompress
        self._session = session
        self._owned = session is None

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                connector=self.out.connector(),
                auto_decompress=self._decompress,
            )

    async def close(self) -> None:
        if self._session is not None and self._owned:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        server: str,
        target: str,
        *,
        params: Mapping[str, str] | None = None,
        data: Body | None = None,
        headers: Mapping[str, str] = _NO_HEADERS,
        cluster: bool = False,
        timeout: Timeout | None = None,
    ) -> Reply:
        """`method` on `target` (a path, with or without a query) of `server` (`host:port`),
        with `data` as the body if any; every answer is returned, failures to get one raise
        `ServerUnreachable`."""
        return await self.request_url(
            method,
            self.out.url(server, target),
            params=params,
            data=data,
            headers=headers,
            cluster=cluster,
            timeout=timeout,
        )

    async def request_url(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        data: Body | None = None,
        headers: Mapping[str, str] = _NO_HEADERS,
        cluster: bool = False,
        timeout: Timeout | None = None,
    ) -> Reply:
        """`request` for a whole URL already built with `out.url`."""
        session = self._session
        if session is None:
            raise RuntimeError("HttpClient used before start() or after close()")
        if cluster:
            headers = {**headers, **self.out.cluster_headers()}
        if isinstance(data, bytes) and len(data) > _LARGE_BODY:
            data = io.BytesIO(data)  # type: ignore[assignment]
        try:
            async with session.request(
                method,
                url,
                params=params,
                data=data,
                headers=headers,
                timeout=self._timeout if timeout is None else timeout._aiohttp(),
            ) as resp:
                return Reply(resp.status, resp.headers, await resp.read())
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ServerUnreachable(
                f"{method} {url} failed: {type(exc).__name__} {exc}".rstrip()
            ) from exc

    async def lines(
        self,
        method: str,
        server: str,
        target: str,
        *,
        what: str = "",
        narrow: Mapping[int, type[WeedError]] | None = None,
        params: Mapping[str, str] | None = None,
        cluster: bool = False,
        timeout: Timeout | None = None,
    ) -> AsyncIterator[bytes]:
        """The lines of a streamed answer (NDJSON) as they arrive. A status outside 2xx raises
        its error (as `call`) before any line; a connection that fails, or stays silent longer
        than the timeout's `read`, raises `ServerUnreachable`."""
        session = self._session
        if session is None:
            raise RuntimeError("HttpClient used before start() or after close()")
        url = self.out.url(server, target)
        headers = self.out.cluster_headers() if cluster else _NO_HEADERS
        try:
            async with session.request(
                method,
                url,
                params=params,
                headers=headers,
                timeout=self._timeout if timeout is None else timeout._aiohttp(),
            ) as resp:
                if not 200 <= resp.status < 300:
                    reply = Reply(resp.status, resp.headers, await resp.read())
                    reply.expect(what or f"{method} {server}{target}", narrow=narrow)
                async for line in resp.content:
                    yield line
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ServerUnreachable(
                f"{method} {url} failed: {type(exc).__name__} {exc}".rstrip()
            ) from exc

    async def call(
        self,
        method: str,
        server: str,
        target: str,
        *,
        what: str = "",
        ok: Container[int] | None = None,
        narrow: Mapping[int, type[WeedError]] | None = None,
        params: Mapping[str, str] | None = None,
        data: Body | None = None,
        headers: Mapping[str, str] = _NO_HEADERS,
        cluster: bool = False,
        timeout: Timeout | None = None,
    ) -> Reply:
        """`request`, raising `error_for` unless the status is in `ok` (default: any 2xx);
        `what` names the call in that error (default: method, server and path)."""
        reply = await self.request(
            method,
            server,
            target,
            params=params,
            data=data,
            headers=headers,
            cluster=cluster,
            timeout=timeout,
        )
        return reply.expect(what or f"{method} {server}{target}", ok=ok, narrow=narrow)
