"""The `-whiteList` IP guard (spec §10.3), shared by the master and the volume server.

    allow = AllowList(white_list_entries("127.0.0.1, 10.0.0.0/8"))
    if allow:                   # an empty list allows everyone and is falsy: skip the check
        allow.check(req)        # raises Unauthorized (401) for any other peer

Entries are exact IP addresses or CIDRs, IPv4 or IPv6. Only the TCP peer (`Request.remote`) is
matched: a header such as `X-Forwarded-For` is chosen by the client and proves nothing. An
IPv4-mapped IPv6 peer (`::ffff:10.1.2.3`, what a dual-stack listener reports for an IPv4
client) is matched as the IPv4 address it carries, as the reference's Go `net.IP` does.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from seaweed_py.config.flags import UsageError
from seaweed_py.errors import Unauthorized
from seaweed_py.httpkit.request import Request
from seaweed_py.security.guard import network as _network
from seaweed_py.security.guard import split_entries

__all__ = ["MEMO_LIMIT", "AllowList", "white_list_entries"]

MEMO_LIMIT = 4096
"""Most decisions remembered; a peer address is parsed and matched once, not per request."""


def white_list_entries(entries: str | Iterable[str], flag: str = "-whiteList") -> tuple[str, ...]:
    """The entries of a comma-separated `-whiteList` (or an iterable of entries), blanks
    dropped, each checked to be an IP address or CIDR; a bad one is a `UsageError` naming it."""
    kept = split_entries(entries)
    for entry in kept:
        try:
            _network(entry)
        except ValueError:
            raise UsageError(f"{flag}: {entry!r} is not an IP address or CIDR") from None
    return kept


class AllowList:
    """Which peers may call guarded endpoints. Empty (falsy) allows everyone.

    Raises `ValueError` naming the entry if one is not an IP address or CIDR. Decisions are
    memoized per peer address; the memo is emptied when it reaches `memo_limit`, so a flood of
    distinct (spoofable IPv6) addresses costs re-matching, never unbounded memory.
    """

    __slots__ = ("_memo", "_memo_limit", "_networks", "entries")

    def __init__(self, entries: Iterable[str] = (), *, memo_limit: int = MEMO_LIMIT) -> None:
        self.entries = split_entries(entries)
        networks = []
        for entry in self.entries:
            try:
                networks.append(_network(entry))
            except ValueError:
                raise ValueError(
                    f"white list entry {entry!r} is not an IP address or CIDR"
                ) from None
        self._networks = tuple(networks)
        if memo_limit < 1:
            raise ValueError(f"memo_limit must be positive, got {memo_limit}")
        self._memo_limit = memo_limit
        self._memo: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self._networks)

    def __repr__(self) -> str:
        return f"AllowList({list(self.entries)!r})"

    @property
    def remembered(self) -> int:
        """How many peer decisions the memo holds (at most `memo_limit`)."""
        return len(self._memo)

    def allows(self, remote: str) -> bool:
        """Whether the peer address `remote` may pass; anything unparsable (an empty or a
        Unix-socket peer) may not, unless the list is empty."""
        if not self._networks:
            return True
        allowed = self._memo.get(remote)
        if allowed is None:
            allowed = self._match(remote)
            if len(self._memo) >= self._memo_limit:
                self._memo.clear()
            self._memo[remote] = allowed
        return allowed

    def check(self, req: Request) -> None:
        """Raise `Unauthorized` (401) unless the request's TCP peer is allowed."""
        if not self.allows(req.remote):
            raise Unauthorized(f"{req.remote or 'an unknown address'} is not in the white list")

    def _match(self, remote: str) -> bool:
        try:
            ip = ipaddress.ip_address(remote)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            mapped = ip.ipv4_mapped
            return any(mapped in net or ip in net for net in self._networks)
        return any(ip in net for net in self._networks)
