"""The volume server's link to the masters: heartbeats, volume lookups (cached) and reports.

Protocol (the messages are `formats/wire.py`'s): every pulse the volume server POSTs its
**full** state (`Heartbeat`) to the current master; the `HeartbeatAnswer` carries the volume
size limit and the leader. A failed heartbeat moves on to the next master of `-master`; an
answer naming another leader moves to it. Because each heartbeat is complete, a restarted master
relearns the node from the next one. On shutdown one last heartbeat with `hasNoVolumes` makes
the master drop the node at once. A master that refuses the heartbeat with 409 (a data
directory of this server is served by another live server) is logged as an error and asked
again every pulse: it accepts the server once the other one has left.

Lookups (`/dir/lookup?volumeId=`) are cached for `lookup_ttl` seconds (10 minutes, like Go
clients); callers `forget(vid)` an entry that proved stale. The whole cache is dropped when a
heartbeat answer carries a new `locationsVersion` (some volume gained or lost a holder), so a
server that left is not asked for longer than about one pulse; the reference's volume servers
hear of such changes by a push from the master instead. `dropped(vid, urls)` waits for such a
change that takes some of `urls` off the volume: a forward in flight to a server the master
dropped stops waiting for it.

`on_return` is called when heartbeats are answered again after a time without: the first
answer, one after failed heartbeats, or one more than 2.5 pulses after the last (the process
was frozen, or its heartbeats were stuck): the volume server then reconciles its replicas
(volume/anti_entropy.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import orjson

from seaweed_py.client.cluster import Outgoing
from seaweed_py.client.http import HttpClient, Reply, Timeout
from seaweed_py.client.roles import check_master
from seaweed_py.errors import Conflict, ServerUnreachable, VolumeNotFound, WeedError
from seaweed_py.formats.wire import Heartbeat, HeartbeatAnswer, UnwritableReport

__all__ = ["Location", "MasterLink"]

log = logging.getLogger(__name__)

_REQUEST_TIMEOUT = Timeout(total=10, connect=3)
_JSON: Final[Mapping[str, str]] = {"Content-Type": "application/json"}
_NO_HEADERS: Final[Mapping[str, str]] = {}
_LOOKUP_NARROW: Final[dict[int, type[WeedError]]] = {404: VolumeNotFound}
# Answered heartbeats further apart than this many pulses: the server was away (frozen, cut
# off), and the master may have dropped it meanwhile.
_AWAY_PULSES: Final = 2.5


@dataclass(frozen=True, slots=True)
class Location:
    """One server holding a volume, as `/dir/lookup` names it."""

    url: str
    public_url: str


class MasterLink:
    """Heartbeats to, and lookups at, the masters of one volume server."""

    def __init__(
        self,
        masters: Sequence[str],
        heartbeat: Callable[[], Heartbeat],
        *,
        pulse_seconds: float = 5.0,
        on_answer: Callable[[HeartbeatAnswer], None] | None = None,
        on_return: Callable[[], None] | None = None,
        lookup_ttl: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        out: Outgoing | None = None,
    ) -> None:
        if not masters:
            raise ValueError("MasterLink needs at least one master address")
        self._masters = list(masters)
        self._http = HttpClient(out, _REQUEST_TIMEOUT)
        self._index = 0
        self._leader: str | None = None
        self._heartbeat = heartbeat
        self._pulse = pulse_seconds
        self._on_answer = on_answer
        self._on_return = on_return
        self._answered_at: float | None = None  # clock() of the last answered heartbeat
        self._lookup_ttl = lookup_ttl
        self._clock = clock
        self._cache: dict[int, tuple[float, tuple[Location, ...]]] = {}
        self._started = False
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._last_ok = False
        self._warned = False
        self._refused = ""  # the master's last refusal of this server, logged once
        self._locations_version: object = None  # the master's, from its last answer
        self._locations_changed = asyncio.Event()  # set (and replaced) at each new version

    # ------------------------------------------------------------------ lifecycle

    async def start(self, *, heartbeat: bool = True) -> None:
        """Start heartbeating (without `heartbeat`: only lookups and reports, as a volume
        server's worker other than the leader does)."""
        await self._http.start()
        self._started = True
        if heartbeat:
            self._task = asyncio.create_task(self._run(), name="heartbeat")

    async def stop(self, *, goodbye: bool = True) -> None:
        """Stop heartbeating; with `goodbye`, first tell the master this node is leaving."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if goodbye and self._started:
            await self._send_heartbeat(self._heartbeat().goodbye())
        self._started = False
        await self._http.close()

    @property
    def heartbeating(self) -> bool:
        """True while the heartbeat loop runs and the last heartbeat was answered."""
        return self._task is not None and self._last_ok

    @property
    def master(self) -> str:
        """The master heartbeats currently go to."""
        return self._leader or self._masters[self._index]

    def poke(self) -> None:
        """Send a heartbeat now (after a volume was created or deleted)."""
        self._wake.set()

    # ------------------------------------------------------------------ heartbeats

    async def _run(self) -> None:
        while True:
            await self._send_heartbeat(self._heartbeat())
            # asyncio.timeout, not wait_for: under Python 3.11 wait_for swallows a cancel that
            # lands as a poke() wakes it, and this loop would outlive stop() (which waits on it).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._pulse):
                    await self._wake.wait()
            self._wake.clear()

    async def _send_heartbeat(self, heartbeat: Heartbeat) -> None:
        master = self.master
        try:
            reply = await self._reply(
                "POST", master, Heartbeat.PATH, data=heartbeat.to_json(), headers=_JSON
            )
            answer = HeartbeatAnswer.from_json(reply.expect(f"heartbeat to master {master}").body)
        except Conflict as exc:
            # This master is fine; it refuses this server (a directory served twice), and will
            # accept it once the other server has left.
            if exc.message != self._refused:
                log.error("master %s refuses this volume server: %s", master, exc.message)
                self._refused = exc.message
            self._last_ok = False
            return
        except WeedError as exc:
            if self._last_ok or not self._warned:
                log.warning("heartbeat to master %s failed: %s", master, exc)
                self._warned = True
            self._last_ok = False
            self._leader = None
            self._index = (self._index + 1) % len(self._masters)
            return
        if not self._last_ok:
            log.info("heartbeating to master %s", master)
        now = self._clock()
        away = self._answered_at is None or now - self._answered_at > _AWAY_PULSES * self._pulse
        self._answered_at = now
        was_ok, self._last_ok = self._last_ok, True
        self._refused = ""
        version = answer.locations_version
        if version != self._locations_version:
            # Some volume gained or lost a holder (or this is another master): cached lookups
            # may name a server that is gone, and a replicated write or delete must not trust
            # them.
            self._locations_version = version
            self._cache.clear()
            self._locations_changed.set()
            self._locations_changed = asyncio.Event()
        leader = answer.leader
        if leader and leader != master:
            self._leader = leader
        if self._on_answer is not None:
            self._on_answer(answer)
        if (away or not was_ok) and self._on_return is not None and not heartbeat.has_no_volumes:
            self._on_return()

    # ------------------------------------------------------------------ HTTP

    async def _reply(
        self,
        method: str,
        master: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        data: bytes | None = None,
        headers: Mapping[str, str] = _NO_HEADERS,
        cluster: bool = True,
    ) -> Reply:
        """One call to `master` (the volume-server protocol, `/internal/*`, carries a cluster
        token); `NotAMaster` if a volume server answered."""
        if not self._started:
            raise RuntimeError("MasterLink used before start()")
        reply = await self._http.request(
            method, master, path, params=params, data=data, headers=headers, cluster=cluster
        )
        check_master(reply.headers.get("Server", ""), master)
        return reply

    # ------------------------------------------------------------------ lookups and reports

    def forget(self, volume_id: int) -> None:
        self._cache.pop(volume_id, None)

    async def lookup(self, volume_id: int, *, fresh: bool = False) -> tuple[Location, ...]:
        """Servers holding `volume_id` (cached; asked anew with `fresh`); `VolumeNotFound` if
        the master knows none, `ServiceUnavailable` if it answers 503 (warming up, or every
        holder is down); other failures as `client/http.py` maps them."""
        cached = self._cache.get(volume_id)
        now = self._clock()
        if cached is not None and cached[0] > now and not fresh:
            return cached[1]
        master = self.master
        reply = await self._reply("GET", master, f"/dir/lookup?volumeId={volume_id}", cluster=False)
        reply.expect(f"lookup of volume {volume_id} at master {master}", narrow=_LOOKUP_NARROW)
        try:
            answer = orjson.loads(reply.body)
        except orjson.JSONDecodeError as exc:
            raise ServerUnreachable(f"master {master} answered a lookup with {exc}") from None
        locations = tuple(
            Location(str(loc.get("url", "")), str(loc.get("publicUrl") or loc.get("url", "")))
            for loc in (answer.get("locations") or [] if isinstance(answer, dict) else [])
        )
        if not locations:
            raise VolumeNotFound(f"master {master} has no location for volume", volume_id=volume_id)
        self._cache[volume_id] = (now + self._lookup_ttl, locations)
        return locations

    async def dropped(self, volume_id: int, urls: Sequence[str]) -> set[str]:
        """Return once the master stops listing some of `urls` as holders of `volume_id`
        (looked up afresh after each new `locationsVersion`): those URLs. A lookup that fails
        tells nothing (the master may be away or warming up), except that it knows no holder
        at all."""
        want = set(urls)
        while True:
            await self._locations_changed.wait()
            try:
                held = {loc.url for loc in await self.lookup(volume_id, fresh=True)}
            except VolumeNotFound:
                return want
            except WeedError:
                continue
            if gone := want - held:
                return gone

    async def report_unwritable(self, volume_id: int) -> None:
        """Tell the master to stop assigning `volume_id` (a replica failed a write)."""
        master = self.master
        report = UnwritableReport(volume_id)
        reply = await self._reply("POST", master, report.PATH, params=report.to_query())
        reply.expect(f"unwritable report to master {master}", narrow=_LOOKUP_NARROW)
