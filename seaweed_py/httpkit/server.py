"""`HttpServer`: listens, tracks its connections, sweeps their timeouts, stops gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import os
import socket
import ssl
import time
from collections.abc import Coroutine
from email.utils import formatdate
from typing import Any

from seaweed_py.errors import CannotListen
from seaweed_py.httpkit.connection import HttpConnection
from seaweed_py.httpkit.limits import Limits
from seaweed_py.httpkit.router import Router

__all__ = ["HttpServer"]


class HttpServer:
    """One listening socket serving `router`.

    Several servers can run in one process (each keeps its own clock, `Date` cache and
    connections). `now` is the loop time as of the last sweep: connections stamp activity with
    it instead of asking the clock per request.

    With `batch_writes`, small answers of sync handlers are held until the loop has handled
    every connection that was ready, then written back to back (`flush_writes`). Each write to
    a socket whose reader sleeps wakes that reader, which on a virtual machine is an
    inter-processor interrupt costing more than the write itself; writes issued in a burst find
    the client already awake, and its next requests come back in a burst too. Answers leave a
    few handler-runs later (a loop iteration), for fewer wake-ups on both sides.

    With `ssl`, the listener speaks only HTTPS (a plain-HTTP client fails the handshake) and
    the connections run over the loop's TLS transport; the protocol code is the same. A client
    has `Limits.header_timeout` to complete its handshake.
    """

    def __init__(
        self,
        router: Router,
        limits: Limits | None = None,
        server_header: str | None = "weedpy",
        *,
        batch_writes: bool = False,
        ssl: ssl.SSLContext | None = None,
    ) -> None:
        self.router = router
        self.ssl = ssl
        self.batch_writes = batch_writes
        self._held: list[HttpConnection] = []  # connections with a held answer (batch_writes)
        # asyncio.get_running_loop() costs a getpid() system call (fork check): looked up once.
        self._loop: asyncio.AbstractEventLoop | None = None
        self.limits = limits or Limits()
        if server_header is not None and ("\r" in server_header or "\n" in server_header):
            raise ValueError(f"invalid Server header {server_header!r}")
        self._server_line = f"Server: {server_header}\r\n".encode() if server_header else b""
        self.head_common = self._server_line
        """`Server` and `Date` header lines, rebuilt when the second changes."""
        self.now = 0.0
        self.port = 0
        self.host = ""
        self._date_second = -1
        self._listener: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._connections: set[HttpConnection] = set()
        # The loop keeps only weak references to tasks: a handler still running after its
        # client left must not be collected mid-flight.
        self._tasks: set[asyncio.Task[None]] = set()
        self._all_closed = asyncio.Event()
        self._all_closed.set()
        self._stopping = False

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    async def start(
        self,
        host: str,
        port: int,
        *,
        backlog: int = 1024,
        setting: str = "port",
        reuse_port: bool = False,
    ) -> None:
        """Listen on `host:port` (port 0 picks a free one; `.port` tells which). A port another
        process holds, or an address that is not this host's, raises `CannotListen` naming
        `setting` (the flag that chose the port). With `reuse_port` (SO_REUSEPORT) other
        processes may listen on the same port, and the kernel spreads new connections over
        them."""
        if self._listener is not None:
            raise RuntimeError("server already started")
        loop = self._loop = asyncio.get_running_loop()
        self._refresh_clock(loop)
        try:
            self._listener = await loop.create_server(
                functools.partial(HttpConnection, self),
                host or None,
                port,
                reuse_address=True,
                reuse_port=reuse_port or None,
                backlog=backlog,
                ssl=self.ssl,
                ssl_handshake_timeout=self.limits.header_timeout if self.ssl is not None else None,
            )
        except OSError as exc:
            raise CannotListen(setting, port, _listen_error(host, port, exc)) from None
        sockets = self._listener.sockets
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.host = host
        self.port = sockets[0].getsockname()[1] if sockets else port
        self._sweeper = loop.create_task(self._sweep(loop), name=f"httpkit-sweep-{self.port}")

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, close idle connections, give in-flight requests up to `grace` seconds
        to be answered (handlers whose client already left, to finish), then drop whatever is
        left and cancel its handlers."""
        if self._listener is None or self._stopping:
            return
        self._stopping = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        self._listener.close()
        for conn in list(self._connections):
            conn.shutdown()
        if self._connections:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_closed.wait(), timeout=grace)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=max(0.0, deadline - loop.time()))
        for conn in list(self._connections):
            conn.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=1.0)
        if self._connections:
            # Aborted transports report `connection_lost` on the next loop iterations.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_closed.wait(), timeout=1.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listener.wait_closed(), timeout=1.0)
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    # -- called by connections ----------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run a connection's handler or response stream as a task held until it ends."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def hold_write(self, conn: HttpConnection) -> None:
        """`conn` holds an answer: flush it once this loop iteration's input is handled."""
        if not self._held:
            loop = self._loop
            if loop is None:
                loop = self._loop = asyncio.get_running_loop()
            loop.call_soon(self.flush_writes)
        self._held.append(conn)

    def flush_writes(self) -> None:
        """Hand every held answer to its transport."""
        held = self._held
        self._held = []
        for conn in held:
            conn.flush()

    def connection_opened(self, conn: HttpConnection) -> None:
        self._connections.add(conn)
        self._all_closed.clear()
        if self._stopping:
            conn.shutdown()

    def connection_closed(self, conn: HttpConnection) -> None:
        self._connections.discard(conn)
        if not self._connections:
            self._all_closed.set()

    # -- the sweep ----------------------------------------------------------------------------

    async def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        tick = self.limits.tick
        while True:
            await asyncio.sleep(tick)
            self._refresh_clock(loop)
            now = self.now
            for conn in list(self._connections):
                conn.check_timeouts(now)

    def _refresh_clock(self, loop: asyncio.AbstractEventLoop) -> None:
        self.now = loop.time()
        wall = time.time()
        second = int(wall)
        if second != self._date_second:
            self._date_second = second
            date = formatdate(wall, usegmt=True)
            self.head_common = self._server_line + f"Date: {date}\r\n".encode("ascii")


_LISTEN_ERRORS = {
    errno.EADDRINUSE: "the port is in use by another process",
    errno.EADDRNOTAVAIL: "the address is not one of this host's",
    errno.EACCES: "permission denied (ports below 1024 need privileges)",
}


def _listen_error(host: str, port: int, exc: OSError) -> str:
    """Why `host:port` cannot be listened on, in words (uvloop's own text repeats the address
    as a Python tuple)."""
    if isinstance(exc, socket.gaierror):  # a host name that does not resolve
        why = exc.strerror or str(exc)
    elif exc.errno is not None:
        why = _LISTEN_ERRORS.get(exc.errno) or os.strerror(exc.errno)
    else:
        why = str(exc)
    return f"cannot listen on {host or '*'}:{port}: {why}"
