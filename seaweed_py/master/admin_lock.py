"""The cluster's admin lock (`POST /cluster/lock`, `/cluster/unlock`; wire: `LeaseLock`,
`ReleaseLock`): `weedpy shell`'s `lock` takes it before it changes the cluster, as `weed shell`
takes the master's exclusive lock, and the master's repair loop (`master/repair.py`) starts no
copy or trim while someone holds it, so an operator's moves and the master's repairs never race.

A lease: it lasts `LEASE_SECONDS` from its last renewal (a holder renews with its token well
before that; a shell that died loses it by itself). The token is random and stays the same for
the life of the lease.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from seaweed_py.errors import Conflict
from seaweed_py.formats.wire import LeaseLock, ReleaseLock

__all__ = ["LEASE_SECONDS", "AdminLocks", "Lease"]

LEASE_SECONDS: Final = 30.0


@dataclass(frozen=True, slots=True)
class Lease:
    name: str
    client: str
    token: int
    message: str
    expires: float


class AdminLocks:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._held: dict[str, Lease] = {}

    def holder(self, name: str) -> Lease | None:
        lease = self._held.get(name)
        if lease is not None and lease.expires <= self._clock():
            del self._held[name]
            return None
        return lease

    def lease(self, ask: LeaseLock) -> Lease:
        """Take the lock (token 0) or renew it (the token held); `Conflict` naming the holder
        while another holds it."""
        held = self.holder(ask.name)
        if held is not None and (ask.token == 0 or ask.token != held.token):
            raise Conflict(
                f"lock {ask.name} is held by {held.client}"
                + (f": {held.message}" if held.message else ""),
                extra={"holder": held.client, "message": held.message},
            )
        if held is None and ask.token != 0:
            # A renewal after the lease ran out: whatever the holder thought it held may have
            # been changed by someone else since; it must take the lock again.
            raise Conflict(
                f"lock {ask.name} was lost (its lease ran out); take it again",
                extra={"holder": "", "message": ""},
            )
        token = held.token if held is not None else secrets.randbits(63) | 1
        lease = Lease(ask.name, ask.client, token, ask.message, self._clock() + LEASE_SECONDS)
        self._held[ask.name] = lease
        return lease

    def release(self, ask: ReleaseLock) -> None:
        held = self.holder(ask.name)
        if held is None:
            return
        if held.token != ask.token:
            raise Conflict(
                f"lock {ask.name} is held by {held.client}, not with this token",
                extra={"holder": held.client, "message": held.message},
            )
        del self._held[ask.name]
