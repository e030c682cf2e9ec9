"""How a weedpy server reaches the other servers of its cluster: the scheme and TLS context of
`[https.client]`, and the tokens its own calls carry (docs/internals.md "Security").

    out = Outgoing(settings.https_client, settings.keys)
    session = aiohttp.ClientSession(connector=out.connector())
    async with session.post(out.url(server, "/admin/volume/delete"),
                            headers=out.cluster_headers(), params=...) as resp: ...

`keys` is replaced when the server reloads security.toml (SIGHUP); every call reads the current
ones. With no signing key no header is added: the cluster is open, as weed's is.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable

import aiohttp

from seaweed_py.security.settings import ClientTls
from seaweed_py.security.tls import client_context
from seaweed_py.security.tokens import JwtKeys, cluster_token, fid_token

__all__ = ["Outgoing", "bearer"]


def bearer(token: str) -> dict[str, str]:
    """The `Authorization` header carrying `token` ({} for no token)."""
    return {"Authorization": f"Bearer {token}"} if token else {}


class Outgoing:
    """Scheme, TLS and tokens of one server's calls to its peers (or of a CLI's)."""

    def __init__(
        self,
        tls: ClientTls | None = None,
        keys: JwtKeys | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tls = tls or ClientTls()
        self.keys = keys or JwtKeys()
        self.scheme = self.tls.scheme
        self.ssl: ssl.SSLContext | None = client_context(self.tls)
        self._clock = clock

    def url(self, server: str, path: str) -> str:
        """`<scheme>://<server><path>` for a `host:port` server."""
        return f"{self.scheme}://{server}{path}"

    def connector(self, **kwargs: object) -> aiohttp.TCPConnector:
        """A connector speaking `[https.client]`'s TLS (plain TCP when it is off)."""
        if self.ssl is None:
            return aiohttp.TCPConnector(**kwargs)  # type: ignore[arg-type]
        return aiohttp.TCPConnector(ssl=self.ssl, **kwargs)  # type: ignore[arg-type]

    def cluster_headers(self) -> dict[str, str]:
        """A fresh cluster token for one call (none without a signing key)."""
        key = self.keys.signing_key
        return bearer(cluster_token(key, self._clock())) if key else {}

    def write_token(self, fid: str) -> str:
        """A write token for the blob `fid` signed by this process ("" without a key): a
        server's own deletes of manifest chunks and rollbacks, the master's `/submit`."""
        keys = self.keys
        if not keys.signing_key:
            return ""
        return fid_token(keys.signing_key, keys.expires_after_seconds, fid, self._clock())

    def read_token(self, fid: str) -> str:
        """A read token for the blob `fid` ("" without a read key): chunks of a manifest."""
        keys = self.keys
        if not keys.read_key:
            return ""
        return fid_token(keys.read_key, keys.read_expires_after_seconds, fid, self._clock())
