"""The shell's side of the admin lock (maintenance spec §1.4; the master's table is
`master/admin_lock.py`): `lock` takes it, a background task renews it every `RENEW_SECONDS`
(or a third of the lease the master grants, if shorter),
`unlock` (or leaving the shell) gives it back.

A renewal that the master refuses (the lease expired while the shell was stopped, or the master
restarted) or that cannot reach it for longer than the lease marks the lock lost: commands that
need it then refuse, as weed's do (`need to run "lock" first to continue`), and long ones stop
between steps (`check`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable

from seaweed_py import errors
from seaweed_py.client.http import HttpClient, Reply, json_object
from seaweed_py.formats.wire import LeaseLock, ReleaseLock

__all__ = ["NEED_LOCK", "RENEW_SECONDS", "ShellLock"]

NEED_LOCK = 'need to run "lock" first to continue'
RENEW_SECONDS = 4.0
_RETRY_SECONDS = 1.0
_LEASE_SECONDS = 10.0
"""The lease assumed when the master's grant does not say (`leaseSeconds`)."""


def client_name() -> str:
    """Who holds the lock, as another operator's `lock` shows it."""
    return f"weedpy shell {socket.gethostname()} pid {os.getpid()}"


class ShellLock:
    """The admin lock of one shell session."""

    def __init__(self, http: HttpClient, master: str, say: Callable[[str], None]) -> None:
        self._http = http
        self._master = master
        self._say = say
        self.token = 0
        self._renewer: asyncio.Task[None] | None = None
        self._renewed_at = 0.0
        self._lease_seconds = _LEASE_SECONDS

    @property
    def held(self) -> bool:
        return self.token != 0

    def check(self) -> None:
        """Raise unless the lock is held (a command that needs it calls this before acting,
        and between steps)."""
        if not self.held:
            raise errors.Conflict(NEED_LOCK)

    async def acquire(self) -> None:
        """Take the lock, waiting (a line said once) while another client holds it."""
        if self.held:
            return
        waiting_for = None
        while True:
            reply = await self._lease(0)
            if reply.status == 200:
                break
            holder = _holder(reply)
            if holder != waiting_for:
                self._say(f"waiting for lock held by {holder}")
                waiting_for = holder
            await asyncio.sleep(_RETRY_SECONDS)
        grant = json_object(reply.body)
        self.token = int(grant.get("token") or 0)
        lease = grant.get("leaseSeconds")
        if isinstance(lease, int | float) and lease > 0:
            self._lease_seconds = float(lease)
        if not self.token:
            raise errors.ServerUnreachable(f"the master {self._master} granted no lock token")
        self._renewed_at = time.monotonic()
        if waiting_for is not None:
            self._say("lock acquired")
        self._renewer = asyncio.create_task(self._renew())

    async def release(self) -> None:
        """Give the lock back (nothing when not held)."""
        await self._stop_renewing()
        token, self.token = self.token, 0
        if token:
            order = ReleaseLock(token)
            await self._http.call(
                order.METHOD, self._master, order.PATH, params=order.to_query(), cluster=True
            )

    async def close(self) -> None:
        """At the end of the session: release, quietly if the master is gone."""
        with contextlib.suppress(errors.WeedError):
            await self.release()

    async def _lease(self, token: int) -> Reply:
        order = LeaseLock(client_name(), token, "")
        reply = await self._http.request(
            order.METHOD, self._master, order.PATH, params=order.to_query(), cluster=True
        )
        if reply.status not in (200, 409):
            reply.expect(f"lock on the master {self._master}")
        return reply

    async def _renew(self) -> None:
        while self.token:
            await asyncio.sleep(min(RENEW_SECONDS, self._lease_seconds / 3))
            try:
                reply = await self._lease(self.token)
            except errors.WeedError:
                if time.monotonic() - self._renewed_at < self._lease_seconds:
                    continue  # the master may answer the next one in time
                reply = None
            if reply is not None and reply.status == 200:
                self._renewed_at = time.monotonic()
                continue
            self.token = 0
            self._say("error: the admin lock is lost; run lock again")
            return

    async def _stop_renewing(self) -> None:
        task, self._renewer = self._renewer, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _holder(reply: Reply) -> str:
    body = json_object(reply.body)
    holder = str(body.get("holder") or "another client")
    message = str(body.get("message") or "")
    return f"{holder}: {message}" if message else holder
