"""Volume → volume forwarding of writes and deletes to the other replicas (spec §6.2-6.3).

A write is forwarded as the reference forwards it: a multipart POST of the stored bytes to
`http://<replica><path>?type=replicate&ts=..&ttl=..[&cm=true]`, the part carrying the file name
and the stored MIME type, `Content-Encoding: gzip` when the stored data is gzipped, and the pairs
as `Seaweed-<name>` headers. The receiver stores exactly these fields (no MIME guessing, no
compression). Deletes are `DELETE <path>?type=replicate`; 200, 202, 204 and 404 count as done.

Every replica is contacted in parallel, once; the result maps each failed replica URL to why.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

import aiohttp

__all__ = ["ReplicaCopy", "Replicator"]

_TIMEOUT = aiohttp.ClientTimeout(total=60, connect=3)
_WRITE_OK = frozenset({201, 204})
_DELETE_OK = frozenset({200, 202, 204, 404})


@dataclass(frozen=True, slots=True)
class ReplicaCopy:
    """One needle as it is sent to a replica."""

    path: str
    data: bytes
    name: str
    mime: str
    gzipped: bool
    last_modified: int
    ttl: str
    chunk_manifest: bool
    pairs: Mapping[str, str] = field(default_factory=dict)
    content_md5: str = ""
    fsync: bool = False
    """Forwarded `fsync=true`: the replica, too, acknowledges only what is on its disk."""

    def query(self) -> str:
        parts = [f"type=replicate&ts={self.last_modified}"]
        if self.ttl:
            parts.append(f"ttl={self.ttl}")
        if self.chunk_manifest:
            parts.append("cm=true")
        if self.fsync:
            parts.append("fsync=true")
        return "&".join(parts)

    def multipart(self, boundary: str) -> bytes:
        name = self.name.replace("\\", "\\\\").replace('"', '\\"')
        head = [f"--{boundary}", f'Content-Disposition: form-data; name="file"; filename="{name}"']
        if self.mime:
            head.append(f"Content-Type: {self.mime}")
        if self.gzipped:
            head.append("Content-Encoding: gzip")
        if self.content_md5:
            head.append(f"Content-MD5: {self.content_md5}")
        preamble = ("\r\n".join(head) + "\r\n\r\n").encode()
        return preamble + self.data + f"\r\n--{boundary}--\r\n".encode()


class Replicator:
    """Forwards writes and deletes to peer volume servers over one pooled HTTP session."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=_TIMEOUT)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("Replicator used before start()")
        return self._session

    async def write(self, urls: Sequence[str], copy: ReplicaCopy) -> dict[str, str]:
        """Send `copy` to every URL; returns {url: error} for the ones that did not store it."""
        boundary = secrets.token_hex(16)
        body = copy.multipart(boundary)
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        headers.update({f"Seaweed-{k}": v for k, v in copy.pairs.items()})
        target = f"{quote(copy.path, safe='/,._-')}?{copy.query()}"
        results = await asyncio.gather(
            *(self._send("POST", f"http://{url}{target}", body, headers, _WRITE_OK) for url in urls)
        )
        return {url: err for url, err in zip(urls, results, strict=True) if err}

    async def delete(
        self, urls: Sequence[str], path: str, *, as_replica: bool = True
    ) -> dict[str, str]:
        """Delete `path` on every URL; returns {url: error} for the ones that failed.

        `as_replica=False` sends a plain client delete, which the receiver itself replicates.
        """
        target = quote(path, safe="/,._-") + ("?type=replicate" if as_replica else "")
        results = await asyncio.gather(
            *(self._send("DELETE", f"http://{url}{target}", b"", {}, _DELETE_OK) for url in urls)
        )
        return {url: err for url, err in zip(urls, results, strict=True) if err}

    async def _send(
        self, method: str, url: str, body: bytes, headers: Mapping[str, str], ok: frozenset[int]
    ) -> str:
        try:
            async with self._http().request(method, url, data=body, headers=headers) as resp:
                text = await resp.text(errors="replace")
                return "" if resp.status in ok else f"{resp.status} {text.strip()}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            return str(exc) or type(exc).__name__
