"""A one-line transfer progress bar for terminals, fed by the SDK's progress callbacks.

    bar = ProgressBar("big.iso", sys.stderr)
    await client.upload(path, progress=bar.update)
    bar.close()

It draws only when the stream is a terminal (so logs and pipes stay clean), redraws at most
`interval` times a second, and works when the total is unknown (then it shows bytes and rate).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["ProgressBar", "format_bytes"]

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def format_bytes(n: float) -> str:
    """`1536` -> `1.5 KiB`."""
    for unit in _UNITS:
        if abs(n) < 1024 or unit == _UNITS[-1]:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


class ProgressBar:
    """`update(done_delta, total)` as bytes move; `close()` ends the line."""

    def __init__(
        self,
        label: str,
        stream: TextIO,
        *,
        enabled: bool | None = None,
        width: int = 30,
        interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self._stream = stream
        self.enabled = stream.isatty() if enabled is None else enabled
        self._width = width
        self._interval = interval
        self._clock = clock
        self._start = clock()
        self._last_draw = float("-inf")
        self.done = 0
        self.total: int | None = None
        self._drawn = False

    def update(self, delta: int, total: int | None = None) -> None:
        self.done += delta
        if total is not None:
            self.total = total
        now = self._clock()
        if self.enabled and now - self._last_draw >= self._interval:
            self._last_draw = now
            self._draw(now)

    def render(self, now: float | None = None) -> str:
        """The bar's text at time `now` (defaults to the clock)."""
        elapsed = max((self._clock() if now is None else now) - self._start, 1e-9)
        rate = f"{format_bytes(self.done / elapsed)}/s"
        if self.total:
            fraction = min(self.done / self.total, 1.0)
            filled = int(fraction * self._width)
            bar = "#" * filled + "." * (self._width - filled)
            return (
                f"{self.label} [{bar}] {fraction * 100:5.1f}% "
                f"{format_bytes(self.done)}/{format_bytes(self.total)} {rate}"
            )
        return f"{self.label} {format_bytes(self.done)} {rate}"

    def _draw(self, now: float) -> None:
        self._stream.write("\r" + self.render(now) + "\x1b[K")
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        """Draw the final state and end the line (only if anything was drawn)."""
        if self.enabled and self._drawn:
            self._draw(self._clock())
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = False
