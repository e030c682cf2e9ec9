"""Volume → volume forwarding of writes and deletes to the other replicas (spec §6.2-6.3).

A write is forwarded as the reference forwards it: a multipart POST of the stored bytes to
`http://<replica><path>?type=replicate&ts=..&ttl=..[&cm=true]`, the part carrying the file name
and the stored MIME type, `Content-Encoding: gzip` when the stored data is gzipped, and the pairs
as `Seaweed-<name>` headers. The receiver stores exactly these fields (no MIME guessing, no
compression). Deletes are `DELETE <path>?type=replicate`; 200, 202, 204 and 404 count as done.
weedpy adds `appendAtNs=<ns>` to both: the time the sending server stamped the write or delete,
which the replica keeps as the time its copy stands for (storage/stamps.py), so that replicas
agree on which of two records of a key is newer.

Every replica is contacted in parallel, once; the result maps each failed replica URL to why.

Waits are bounded by `timeout` (`-replicationTimeout`), measured as a wait without progress
rather than for the whole transfer, so a large body on a slow link is not failed: connecting,
each piece of a body above `_PIECE` being taken by the connection, and the answer once the body
is sent each get `timeout` seconds; the answer to a large body gets one more second per
`_ANSWER_RATE` bytes, since the replica appends, checks and syncs the whole body before it
answers (a 1 GiB copy takes seconds of disk time there). A frozen replica (SIGSTOP, a hung
disk) therefore fails the forward within `timeout` of its last progress, plus that allowance. Callers may also pass `gone`, which names
replicas the master has stopped listing: forwards to those stop waiting at once.

Stored bytes too large to hold (a spooled upload) come as a `BodySource` and are streamed to
each replica from it, a piece at a time read off the loop, with the same bytes on the wire as
an in-memory copy: the same multipart framing and a Content-Length (never chunked).

With a signing key, each call carries a write token in `Authorization: Bearer` (spec §10.2):
the client's own, forwarded unchanged, or one the sending server signed for its own deletes.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

from seaweed_py.client.cluster import Outgoing, bearer
from seaweed_py.client.http import HttpClient, Timeout
from seaweed_py.errors import ServerUnreachable

__all__ = ["DEFAULT_TIMEOUT", "BodySource", "Gone", "ReplicaCopy", "Replicator"]

DEFAULT_TIMEOUT = 5.0
# Bodies above this go out in pieces of this size, each one renewing the deadline.
_PIECE = 256 * 1024
# The slowest rate at which a replica is expected to store a body it has received; what a body
# of N bytes may take to be answered beyond `timeout`.
_ANSWER_RATE = 32 * 1024 * 1024
_WRITE_OK = frozenset({201, 204})
_DELETE_OK = frozenset({200, 202, 204, 404})
# The deadlines are ours (`_send`); the HTTP layer's own would bound the whole transfer.
_NO_TIMEOUT = Timeout(total=None)


class BodySource(Protocol):
    """`size` bytes kept outside memory; `read_at` is blocking and thread-safe (it is called
    from worker threads, for several replicas at once)."""

    @property
    def size(self) -> int: ...

    def read_at(self, pos: int, size: int) -> bytes: ...


@dataclass(frozen=True, slots=True)
class ReplicaCopy:
    """One needle as it is sent to a replica."""

    path: str
    data: bytes | BodySource
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
    token: str = ""
    """The client's write token, forwarded so the replica checks it too (empty: none)."""
    append_at_ns: int = 0
    """The time the write stands for (its first server's stamp), which replicas keep
    (`appendAtNs`; 0: not sent)."""

    def query(self) -> str:
        parts = [f"type=replicate&ts={self.last_modified}"]
        if self.append_at_ns:
            parts.append(f"appendAtNs={self.append_at_ns}")
        if self.ttl:
            parts.append(f"ttl={self.ttl}")
        if self.chunk_manifest:
            parts.append("cm=true")
        if self.fsync:
            parts.append("fsync=true")
        return "&".join(parts)

    def framing(self, boundary: str) -> tuple[bytes, bytes]:
        """(what goes before the data, what goes after it) in the multipart body."""
        name = self.name.replace("\\", "\\\\").replace('"', '\\"')
        head = [f"--{boundary}", f'Content-Disposition: form-data; name="file"; filename="{name}"']
        if self.mime:
            head.append(f"Content-Type: {self.mime}")
        if self.gzipped:
            head.append("Content-Encoding: gzip")
        if self.content_md5:
            head.append(f"Content-MD5: {self.content_md5}")
        preamble = ("\r\n".join(head) + "\r\n\r\n").encode()
        return preamble, f"\r\n--{boundary}--\r\n".encode()

    def multipart(self, boundary: str) -> bytes:
        """The whole multipart body of an in-memory copy."""
        if not isinstance(self.data, bytes):
            raise TypeError("a streamed copy has no in-memory multipart body")
        head, tail = self.framing(boundary)
        return head + self.data + tail


Gone = Callable[[Sequence[str]], Awaitable[Collection[str]]]
"""`gone(urls)` returns once the master no longer lists some of `urls`: those."""


class Replicator:
    """Forwards writes and deletes to peer volume servers over one pooled HTTP session."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, out: Outgoing | None = None) -> None:
        if not timeout > 0:
            raise ValueError(f"replication timeout must be positive, got {timeout}")
        self.timeout = timeout
        self._http = HttpClient(out, _NO_TIMEOUT)

    async def start(self) -> None:
        await self._http.start()

    async def close(self) -> None:
        await self._http.close()

    async def write(
        self, urls: Sequence[str], copy: ReplicaCopy, *, gone: Gone | None = None
    ) -> dict[str, str]:
        """Send `copy` to every URL; returns {url: error} for the ones that did not store it."""
        boundary = secrets.token_hex(16)
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        headers.update({f"Seaweed-{k}": v for k, v in copy.pairs.items()})
        headers.update(bearer(copy.token))
        target = f"{quote(copy.path, safe='/,._-')}?{copy.query()}"
        body: bytes | _Streamed
        if isinstance(copy.data, bytes):
            body = copy.multipart(boundary)
        else:  # read anew for each replica, as it is sent
            head, tail = copy.framing(boundary)
            body = _Streamed(head, copy.data, tail)
        url_of = self._http.out.url
        return await self._fan_out(
            urls,
            lambda url: self._send("POST", url_of(url, target), body, headers, _WRITE_OK),
            gone,
        )

    async def delete(
        self,
        urls: Sequence[str],
        path: str,
        *,
        as_replica: bool = True,
        gone: Gone | None = None,
        token: str = "",
        stamp: int = 0,
    ) -> dict[str, str]:
        """Delete `path` on every URL, with the write `token` if any; returns {url: error} for
        the ones that failed. `stamp`: the time the delete stands for, which replicas keep.

        `as_replica=False` sends a plain client delete, which the receiver itself replicates.
        """
        target = quote(path, safe="/,._-")
        if as_replica:
            target += f"?type=replicate&appendAtNs={stamp}" if stamp else "?type=replicate"
        headers = bearer(token)
        url_of = self._http.out.url
        return await self._fan_out(
            urls,
            lambda url: self._send("DELETE", url_of(url, target), b"", headers, _DELETE_OK),
            gone,
        )

    async def _fan_out(
        self, urls: Sequence[str], send: Callable[[str], Awaitable[str]], gone: Gone | None
    ) -> dict[str, str]:
        """`send` to every URL at once; with `gone`, a URL the master drops is failed without
        waiting for its answer."""
        if gone is None:
            results = await asyncio.gather(*(send(url) for url in urls))
            return {url: err for url, err in zip(urls, results, strict=True) if err}
        tasks: dict[asyncio.Future[str], str] = {asyncio.ensure_future(send(u)): u for u in urls}
        errors: dict[str, str] = {}
        pending = set(tasks)
        watch: asyncio.Future[Collection[str]] | None = None
        abandoned: list[asyncio.Future[str]] = []
        try:
            while pending:
                if watch is None:
                    watch = asyncio.ensure_future(gone([tasks[t] for t in pending]))
                waiting: set[asyncio.Future[Any]] = {*pending, watch}
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                for task in pending & done:
                    if err := task.result():
                        errors[tasks[task]] = err
                pending -= done
                if watch.done():
                    dropped = [t for t in pending if tasks[t] in watch.result()]
                    watch = None
                    for task in dropped:
                        errors[tasks[task]] = "dropped by the master while we waited for it"
                    pending.difference_update(dropped)
                    _cancel(dropped)
                    abandoned += dropped  # awaited below, once their cancellation has run
        finally:
            leftovers: list[asyncio.Future[Any]] = [
                *pending,
                *abandoned,
                *([watch] if watch else []),
            ]
            _cancel(leftovers)
            await asyncio.gather(*leftovers, return_exceptions=True)
        return {url: errors[url] for url in urls if url in errors}

    async def _send(
        self,
        method: str,
        url: str,
        body: bytes | _Streamed,
        headers: Mapping[str, str],
        ok: frozenset[int],
    ) -> str:
        timeout = self.timeout
        try:
            async with asyncio.timeout(timeout) as deadline:
                data: bytes | AsyncIterator[bytes | memoryview]
                if isinstance(body, _Streamed) or len(body) > _PIECE:
                    data = self._pieces(body, deadline)
                    headers = {**headers, "Content-Length": str(len(body))}
                else:
                    data = body
                reply = await self._http.request_url(method, url, data=data, headers=headers)
        except TimeoutError:
            return f"replica did not answer within {timeout:g} s"
        except ServerUnreachable as exc:
            return exc.message
        except OSError as exc:  # the spooled body could not be read back: this copy failed
            return f"could not read the body to send: {exc}"
        if reply.status in ok:
            return ""
        return f"{reply.status} {reply.body.decode('utf-8', 'replace').strip()}"

    async def _pieces(
        self, body: bytes | _Streamed, deadline: asyncio.Timeout
    ) -> AsyncIterator[bytes | memoryview]:
        """`body` in pieces (a streamed one's data read in a worker thread); each piece the
        connection asks for renews `deadline` (progress), and so does the end of the body (the
        answer gets `timeout` from then, plus the time to store the body at `_ANSWER_RATE`)."""
        loop = asyncio.get_running_loop()
        if isinstance(body, _Streamed):
            deadline.reschedule(loop.time() + self.timeout)
            yield body.head
            source, pos = body.source, 0
            while pos < source.size:
                piece = await asyncio.to_thread(source.read_at, pos, min(_PIECE, source.size - pos))
                if not piece:
                    raise OSError(f"replica body source ended at {pos} of {source.size} bytes")
                pos += len(piece)
                deadline.reschedule(loop.time() + self.timeout)
                yield piece
            yield body.tail
        else:
            view = memoryview(body)
            for start in range(0, len(view), _PIECE):
                deadline.reschedule(loop.time() + self.timeout)
                yield view[start : start + _PIECE]
        deadline.reschedule(loop.time() + self.timeout + len(body) / _ANSWER_RATE)


def _cancel(futures: Iterable[asyncio.Future[Any]]) -> None:
    for future in futures:
        future.cancel()


@dataclass(frozen=True, slots=True)
class _Streamed:
    """A multipart body whose data part is read from a `BodySource` as it is sent."""

    head: bytes
    source: BodySource
    tail: bytes

    def __len__(self) -> int:
        return len(self.head) + self.source.size + len(self.tail)
