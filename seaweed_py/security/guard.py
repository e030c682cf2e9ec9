"""Entries of a white list (`-whiteList`, `guard.white_list`): IP addresses or CIDRs, IPv4 or
IPv6, matched against the TCP peer address only (spec §10.3)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

__all__ = ["Network", "network", "split_entries"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def network(entry: str) -> Network:
    """The network an entry names; `ValueError` if it is neither an IP address nor a CIDR.
    strict=False: "10.1.2.3/8" means 10.0.0.0/8, as Go's net.ParseCIDR takes it."""
    return ipaddress.ip_network(entry.strip(), strict=False)


def split_entries(entries: str | Iterable[str]) -> tuple[str, ...]:
    """The entries of a comma-separated list (or of an iterable), trimmed, blanks dropped; not
    validated (see `network`)."""
    parts = entries.split(",") if isinstance(entries, str) else entries
    return tuple(part.strip() for part in parts if part.strip())
