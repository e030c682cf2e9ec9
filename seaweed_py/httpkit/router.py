"""Maps a request path to its handler: exact paths in a dict, one fallback for the rest."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from seaweed_py.httpkit.inflight import InflightLimit
from seaweed_py.httpkit.request import Request
from seaweed_py.httpkit.response import Response

if TYPE_CHECKING:
    from seaweed_py.httpkit.metrics import Observer

__all__ = ["Handler", "Route", "Router"]

Handler = Callable[[Request], Response | Awaitable[Response]]
"""A plain function returning a Response (the hot path: no coroutine is created) or an async
function / any callable returning an awaitable of one."""


class Route:
    """A handler and what it accepts. `methods` None accepts every method (the handler sorts
    them out itself, as the volume server's blob handler does); a route that accepts GET also
    accepts HEAD. `max_body` None means the server's `Limits.max_body`. `inflight` caps the
    body bytes in flight on the route (`inflight.py`); None: no cap. `observe`, if set, is
    told of every answer the route gives, errors included (`httpkit.metrics`)."""

    __slots__ = ("allow", "handler", "inflight", "max_body", "methods", "observe")

    def __init__(
        self,
        handler: Handler,
        methods: Iterable[str] | None = None,
        max_body: int | None = None,
        inflight: InflightLimit | None = None,
        observe: Observer | None = None,
    ) -> None:
        self.handler = handler
        self.inflight = inflight
        self.observe = observe
        if methods is None:
            self.methods: frozenset[str] | None = None
            self.allow = ""
        else:
            accepted = {m.upper() for m in methods}
            if "GET" in accepted:
                accepted.add("HEAD")
            if not accepted:
                raise ValueError("a route must accept at least one method")
            self.methods = frozenset(accepted)
            self.allow = ", ".join(sorted(accepted))
        if max_body is not None and max_body < 0:
            raise ValueError(f"max_body must not be negative, got {max_body}")
        self.max_body = max_body


class Router:
    """`add("/dir/assign", handler, ["GET", "POST"])` for exact paths; `fallback(handler)` for
    every other path (fid-shaped paths such as `/3,01637037d6`). A path with neither is 404."""

    __slots__ = ("exact", "fallback_route")

    def __init__(self) -> None:
        # Read directly by connections on the hot path; change them through add/fallback.
        self.exact: dict[str, Route] = {}
        self.fallback_route: Route | None = None

    def add(
        self,
        path: str,
        handler: Handler,
        methods: Iterable[str] | None = None,
        *,
        max_body: int | None = None,
        inflight: InflightLimit | None = None,
        observe: Observer | None = None,
    ) -> None:
        if not path.startswith("/"):
            raise ValueError(f"route path must start with '/': {path!r}")
        if path in self.exact:
            raise ValueError(f"route {path!r} is already registered")
        self.exact[path] = Route(handler, methods, max_body, inflight, observe)

    def fallback(
        self,
        handler: Handler,
        methods: Iterable[str] | None = None,
        *,
        max_body: int | None = None,
        inflight: InflightLimit | None = None,
        observe: Observer | None = None,
    ) -> None:
        if self.fallback_route is not None:
            raise ValueError("the router already has a fallback")
        self.fallback_route = Route(handler, methods, max_body, inflight, observe)

    def match(self, path: str) -> Route | None:
        return self.exact.get(path, self.fallback_route)

    @property
    def paths(self) -> list[str]:
        return sorted(self.exact)
