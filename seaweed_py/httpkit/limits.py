"""Size limits and timeouts of one `HttpServer`."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Limits"]

_MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """What a server accepts from a client, and how long it waits for it.

    Sizes are bytes, times are seconds. Timeouts are checked by a per-server sweep, so they fire
    up to `tick` late; `tick` is derived from the smallest timeout.
    """

    max_url: int = 64 * 1024
    """Longest request target (path and query); longer → 414."""
    max_header_bytes: int = _MIB
    """Sum of the header lines of one request; more → 431 (Go's `DefaultMaxHeaderBytes`)."""
    max_body: int = 64 * _MIB
    """Largest request body; a route may set its own. Decided from Content-Length before the
    body is read (413); for chunked bodies, as soon as the running total passes it."""
    stream_threshold: int = _MIB
    """Bodies above this are handed to the handler as `request.stream` instead of `body`."""
    stream_high_water: int = _MIB
    """Buffered, not yet consumed bytes of a streamed body above which reading pauses; it
    resumes below a quarter of this."""
    max_pipeline: int = 32
    """Complete requests queued behind the one being handled before reading pauses."""
    idle_timeout: float = 60.0
    """A keep-alive connection with no request in progress is closed after this."""
    header_timeout: float = 10.0
    """From the first byte of a request to the end of its headers (defeats slowloris)."""
    body_timeout: float = 30.0
    """Longest silence while a request body is being received (while we are not the ones
    holding back reading)."""
    send_timeout: float = 30.0
    """Longest time a client may leave our write buffer full before the connection is cut."""
    linger: float = 1.0
    """After answering a request whose body was not read, keep draining input this long
    before closing, so the client sees the answer instead of a reset."""

    def __post_init__(self) -> None:
        for name in ("max_url", "max_header_bytes", "stream_high_water", "max_pipeline"):
            if getattr(self, name) < 1:
                raise ValueError(f"Limits.{name} must be positive, got {getattr(self, name)}")
        for name in ("max_body", "stream_threshold"):
            if getattr(self, name) < 0:
                raise ValueError(f"Limits.{name} must not be negative, got {getattr(self, name)}")
        for name in ("idle_timeout", "header_timeout", "body_timeout", "send_timeout", "linger"):
            if not getattr(self, name) > 0:
                raise ValueError(f"Limits.{name} must be positive, got {getattr(self, name)}")

    @property
    def tick(self) -> float:
        """How often the server sweeps its connections for expired timeouts and refreshes the
        cached `Date` header (never slower than twice a second)."""
        shortest = min(
            self.idle_timeout,
            self.header_timeout,
            self.body_timeout,
            self.send_timeout,
            self.linger,
        )
        return max(0.01, min(0.5, shortest / 4))
