"""The file-key sequencer: hands out needle keys and never the same one twice, restarts included.

The reference keeps the counter in memory only and relies on heartbeats after a restart (quirk
A22), which reissues keys. Here every key handed out lies below a *reserved mark* that was made
durable first: when a request needs keys beyond the mark, `reserve(new_mark)` is called and must
return only once the new mark is on stable storage (the master writes it to `-mdir` with fsync).
After a restart the sequencer starts at the persisted mark, so at most the unused rest of one
reservation is skipped — never reissued.

Reservations grow with demand so the durable write stays off the common path: the step doubles
whenever the previous reservation was used up within `fast_seconds` (up to `max_step`), and
falls back to `min_step` when demand is slow. A batch (`count` up to millions) is covered by one
reservation of `count + step`.

Keys are issued below `KEY_LIMIT` (2^63), so a reservation mark always fits the uint64 the
master persists. A volume server may hold a needle with any uint64 key (clients choose the fid
of a write). Heartbeats push the counter up only for keys below `ADOPT_LIMIT` (2^62): a
client's fid just below 2^63 would otherwise leave no key to issue (every assign a 500), and
a key at or above 2^62 is one the counter reaches only after 2^62 issued keys (146,000 years at
a million a second), so ignoring it cannot make a collision.
"""

from __future__ import annotations

from collections.abc import Callable

from seaweed_py.errors import WeedError

__all__ = ["ADOPT_LIMIT", "KEY_LIMIT", "Sequencer"]

KEY_LIMIT = 1 << 63
"""Keys issued stay below this."""

ADOPT_LIMIT = 1 << 62
"""`set_max` ignores reported keys at or above this (module docstring)."""


class Sequencer:
    """Consecutive uint64 keys starting at 1; `next_keys(n)` returns the first of n."""

    __slots__ = (
        "_clock",
        "_fast",
        "_last_reserve_at",
        "_max_step",
        "_min_step",
        "_next",
        "_reserve",
        "_reserved",
        "_step",
    )

    def __init__(
        self,
        reserved: int,
        reserve: Callable[[int], None],
        clock: Callable[[], float],
        min_step: int = 10_000,
        max_step: int = 10_000_000,
        fast_seconds: float = 1.0,
    ) -> None:
        """`reserved` is the persisted mark (0 on a new master): every key below it may have
        been handed out already, so the first key issued is `max(1, reserved)`."""
        self._next = max(1, reserved)
        self._reserved = reserved
        self._reserve = reserve
        self._clock = clock
        self._min_step = min_step
        self._max_step = max_step
        self._step = min_step
        self._fast = fast_seconds
        self._last_reserve_at: float | None = None

    @property
    def peek(self) -> int:
        """The next key `next_keys` would return."""
        return self._next

    @property
    def reserved(self) -> int:
        """Keys below this mark are durably reserved."""
        return self._reserved

    def next_keys(self, count: int) -> int:
        """Reserve `count` (≥ 1) consecutive keys and return the first."""
        first = self._next
        end = first + count
        if end > KEY_LIMIT:  # 2^63 keys: not reached by counting, only by a bug
            raise WeedError(f"file key space exhausted: {count} keys from {first}")
        if end > self._reserved:
            self._extend(end)
        self._next = end
        return first

    def set_max(self, seen: int) -> None:
        """A volume server holds key `seen`: never issue it or anything below it."""
        if self._next <= seen < ADOPT_LIMIT:
            if seen + 1 > self._reserved:
                self._extend(seen + 1)
            self._next = seen + 1

    def _extend(self, needed: int) -> None:
        now = self._clock()
        if self._last_reserve_at is not None and now - self._last_reserve_at < self._fast:
            self._step = min(self._max_step, self._step * 2)
        else:
            self._step = self._min_step
        mark = needed + self._step
        self._reserve(mark)  # raises if the mark could not be made durable: issue nothing
        self._reserved = mark
        self._last_reserve_at = now
