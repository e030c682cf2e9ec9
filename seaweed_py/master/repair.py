"""The master's repair loop: volumes short of copies get one, volumes with a copy too many lose
the one placement likes least (docs/internals.md "Re-replication").

Every pass (each `-pulseSeconds`), from the topology as the heartbeats describe it:

1. `topology/repair.py` classifies the volumes (short, misplaced, surplus) and `RepairClock`
   notes since when; a short or misplaced volume is due after `-repairDelaySeconds` (a server
   that restarts within it causes no copy), a surplus one after the settle time;
2. nothing starts while the master warms up after a restart (its topology is partial), nor
   while someone holds the admin lock (`weedpy shell`'s `lock`: an operator is at work);
3. `plan` picks the actions: a copy to a node the placement accepts, from a live holder, at
   most one copy in flight per target and `_MAX_COPIES` in all; a trim of the surplus copy
   placement likes least, never below the copy count;
4. each action runs in its own task (`client/repair.py`): a copy is the target pulling the
   volume; a trim first has every survivor take what the doomed copy holds newer, then
   deletes it. A volume with an action in flight, or one that ended less than the settle time
   ago (its servers' heartbeats have yet to show the result), or one a vacuum pass holds, is
   left alone.

A negative `-repairDelaySeconds` turns the actions off; the counts are still kept and shown.

A failure is logged and counted; the volume is planned again after twice the settle time,
then four times, and so on up to 10 minutes while its repairs keep failing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from seaweed_py.client.repair import Repairs
from seaweed_py.errors import WeedError
from seaweed_py.formats.wire import LOCK_NAME
from seaweed_py.master.admin_lock import AdminLocks
from seaweed_py.master.metrics import MasterStats
from seaweed_py.topology import Topology
from seaweed_py.topology.repair import (
    ClusterView,
    CopyOrder,
    Health,
    RepairClock,
    TrimOrder,
    Unplaceable,
    classify,
    plan,
)

__all__ = ["DEFAULT_REPAIR_DELAY", "RepairLoop"]

log = logging.getLogger(__name__)

DEFAULT_REPAIR_DELAY: Final = 900.0
_MAX_COPIES: Final = 4
_RECENT: Final = 32
_MAX_BACKOFF: Final = 600.0


@dataclass
class _Flight:
    order: CopyOrder | TrimOrder
    started: float
    """Unix time."""
    task: asyncio.Task[None] | None = None


@dataclass
class _Outcome:
    order: CopyOrder | TrimOrder
    ok: bool
    at: float
    seconds: float
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            **_order_json(self.order),
            "ok": self.ok,
            "at": self.at,
            "seconds": round(self.seconds, 3),
            "error": self.error,
        }


@dataclass
class _Seen:
    health: Health = field(default_factory=Health)
    unplaceable: tuple[Unplaceable, ...] = ()
    paused_by: str = ""


class RepairLoop:
    def __init__(
        self,
        topology: Topology,
        repairs: Repairs,
        locks: AdminLocks,
        stats: MasterStats,
        *,
        delay: float,
        pulse: float,
        clock: Callable[[], float] = time.monotonic,
        warm_until: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self._topology = topology
        self._repairs = repairs
        self._locks = locks
        self._stats = stats
        self.pulse = pulse
        self.timing = RepairClock(delay, settle=3 * pulse)
        self._clock = clock
        self._warm_until = warm_until
        self._flying: dict[int, _Flight] = {}
        self._cooling: dict[int, float] = {}
        self._recent: deque[_Outcome] = deque(maxlen=_RECENT)
        self._seen = _Seen()
        self._told: set[str] = set()
        self._failures: dict[int, int] = {}
        """Volumes whose last repairs failed: how many in a row."""

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.pulse)
            try:
                self.step()
            except Exception:  # keep repairing; the next pass may succeed
                log.exception("repair pass failed")

    async def stop(self) -> None:
        tasks = [f.task for f in self._flying.values() if f.task is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def step(self) -> list[CopyOrder | TrimOrder]:
        """One pass (module docstring): the actions started."""
        now = self._clock()
        view = ClusterView.of(self._topology)
        health = classify(view)
        due_short, due_surplus = self.timing.observe(health, now)
        self._seen.health = health
        self._stats.under_replicated = len(health.short) + len(health.misplaced)
        self._stats.over_replicated = len(health.surplus)
        holder = self._locks.holder(LOCK_NAME)
        self._seen.paused_by = holder.client if holder is not None else ""
        if self.timing.delay < 0 or now < self._warm_until() or holder is not None:
            return []
        for vid, until in list(self._cooling.items()):
            if until <= now:
                del self._cooling[vid]
        copies = [f.order for f in self._flying.values() if isinstance(f.order, CopyOrder)]
        found = plan(
            view,
            due_short=due_short,
            due_surplus=due_surplus,
            busy={*self._flying, *self._cooling, *self._vacuuming()},
            in_flight=Counter(c.target for c in copies),
            per_node=1,
            max_copies=max(0, _MAX_COPIES - len(copies)),
        )
        self._seen.unplaceable = tuple(found.unplaceable)
        self._stats.unplaceable = len(found.unplaceable)
        for u in found.unplaceable:
            if u.describe() not in self._told:  # once per volume and reason, not every pass
                self._told.add(u.describe())
                log.error("cannot repair %s", u.describe())
        started = found.actions()
        for order in started:
            self._start(order)
        return started

    def _vacuuming(self) -> list[int]:
        """Volumes a vacuum pass holds: a copy would fail on its new revision, a trim would
        pull the files from under its compaction. Repaired after it."""
        return [
            vid
            for layout in self._topology.layouts.values()
            for vid, vol in layout.volumes.items()
            if vol.vacuuming
        ]

    def _start(self, order: CopyOrder | TrimOrder) -> None:
        log.info("repair: %s", order.describe())
        flight = _Flight(order, time.time())
        self._flying[order.volume] = flight
        self._stats.repairs_in_flight = len(self._flying)
        flight.task = asyncio.get_running_loop().create_task(
            self._carry_out(flight), name=f"repair volume {order.volume}"
        )

    async def _carry_out(self, flight: _Flight) -> None:
        order = flight.order
        began = self._clock()
        error = ""
        try:
            if isinstance(order, CopyOrder):
                copied = await self._repairs.copy(order)
                log.info(
                    "volume %d copied to %s (%d bytes, %d rounds)",
                    order.volume,
                    order.target,
                    copied.size,
                    copied.rounds,
                )
            else:
                trimmed = await self._repairs.trim(order)
                self._topology.forget_copy(order.volume, order.doomed, self._clock())
                log.info(
                    "volume %d: the surplus copy on %s removed (%d states taken from it first)",
                    order.volume,
                    order.doomed,
                    trimmed.pulled,
                )
        except WeedError as exc:
            error = exc.message
        except Exception as exc:  # a bug in one repair must not stop the others
            log.exception("repair of volume %d failed", order.volume)
            error = repr(exc)
        finally:
            now = self._clock()
            del self._flying[order.volume]
            self._stats.repairs_in_flight = len(self._flying)
        # A volume whose repairs keep failing (a target without room, a source that cannot be
        # read) is tried again later and later, not every settle time.
        failed_before = self._failures.pop(order.volume, 0)
        failures = failed_before + 1 if error else 0
        if failures:
            self._failures[order.volume] = failures
        wait = min(
            self.timing.settle * 2 ** min(failures, 16), max(_MAX_BACKOFF, self.timing.settle)
        )
        self._cooling[order.volume] = now + wait
        if error:
            log.error("repair failed: %s: %s", order.describe(), error)
        kind = "copies" if isinstance(order, CopyOrder) else "trims"
        self._stats.repairs[kind, "done" if not error else "failed"] += 1
        self._recent.append(_Outcome(order, not error, time.time(), now - began, error))

    # ------------------------------------------------------------------ what it shows

    def status(self) -> dict[str, Any]:
        """`GET /cluster/repair` (docs/internals.md "Re-replication")."""
        now, wall = self._clock(), time.time()
        health = self._seen.health

        def waiting(vids: tuple[int, ...], wait: float) -> list[dict[str, Any]]:
            out = []
            for vid in vids:
                since = self.timing.short_since(vid)
                age = now - since if since is not None else 0.0
                out.append(
                    {
                        "volume": vid,
                        "seconds": round(age, 3),
                        "dueIn": round(max(0.0, wait - age), 3),
                    }
                )
            return out

        return {
            "delaySeconds": self.timing.delay,
            "settleSeconds": self.timing.settle,
            "pausedBy": self._seen.paused_by,
            "underReplicated": waiting(health.short, self.timing.delay),
            "misplaced": waiting(health.misplaced, self.timing.delay),
            "surplus": list(health.surplus),
            "unplaceable": [
                {"volume": u.volume, "reason": u.reason} for u in self._seen.unplaceable
            ],
            "inFlight": [
                {**_order_json(f.order), "seconds": round(wall - f.started, 3)}
                for f in self._flying.values()
            ],
            "done": {k: self._stats.repairs[k, "done"] for k in ("copies", "trims")},
            "failed": {k: self._stats.repairs[k, "failed"] for k in ("copies", "trims")},
            "recent": [o.to_json() for o in reversed(self._recent)],
        }


def _order_json(order: CopyOrder | TrimOrder) -> dict[str, Any]:
    if isinstance(order, CopyOrder):
        return {
            "kind": "copy",
            "volume": order.volume,
            "source": order.source,
            "target": order.target,
            "collection": order.collection,
            "reason": order.reason,
        }
    return {
        "kind": "trim",
        "volume": order.volume,
        "doomed": order.doomed,
        "keep": list(order.keep),
        "reason": order.reason,
    }
