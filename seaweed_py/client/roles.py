"""Which kind of server answered: a master address that turns out to be a volume server is a
configuration mistake worth naming, not a string of 400s about a volume id `dir`."""

from __future__ import annotations

from seaweed_py.errors import NotAMaster

__all__ = ["VOLUME_SERVER_PREFIX", "check_master"]

VOLUME_SERVER_PREFIX = "SeaweedFS Volume"
"""How the `Server` header of every volume server begins, the reference's and weedpy's."""


def check_master(server_header: str, address: str) -> None:
    """Raise `NotAMaster` if the answer from `address` came from a volume server."""
    if server_header.startswith(VOLUME_SERVER_PREFIX):
        raise NotAMaster(
            f"{address} is a volume server, not a master: give the master's address "
            "(its -port, 9333 by default)"
        )
