"""The master daemon: HTTP endpoints (spec §2) over the pure topology, on httpkit.

Handlers parse their parameters into typed values, ask the topology, and render the reference's
JSON. The hot paths (`/dir/assign` with a writable volume, `/dir/lookup`) are plain functions:
no coroutine, parameters parsed once per distinct query string, one orjson call per answer.
"""

from __future__ import annotations

import asyncio
import html
import logging
import math
import os
import random
import re
import time
from array import array
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from seaweed_py import __version__
from seaweed_py.client.cluster import Outgoing, bearer
from seaweed_py.client.http import HttpClient, Timeout
from seaweed_py.client.repair import Repairs
from seaweed_py.client.tiering import Tiering
from seaweed_py.client.volume_admin import VolumeAdmin
from seaweed_py.errors import (
    BadRequest,
    MethodNotAllowed,
    NoFreeSlots,
    NotAcceptable,
    NotFound,
    NoWritableVolume,
    RequestTimeout,
    ServiceUnavailable,
    VolumeNotFound,
    WeedError,
)
from seaweed_py.formats.collection import parse_collection
from seaweed_py.formats.fid import format_key_cookie
from seaweed_py.formats.wire import (
    DeleteCollection,
    Heartbeat,
    HeartbeatAnswer,
    LeaseLock,
    ReleaseLock,
    UnwritableReport,
)
from seaweed_py.httpkit.allow_list import AllowList
from seaweed_py.httpkit.auth import check_cluster
from seaweed_py.httpkit.limits import Limits
from seaweed_py.httpkit.metrics import RequestMetrics
from seaweed_py.httpkit.pages import STYLESHEET_PATH, stylesheet
from seaweed_py.httpkit.request import Request
from seaweed_py.httpkit.response import JSON_HEADERS, Response, json_response
from seaweed_py.httpkit.router import Handler, Router
from seaweed_py.httpkit.server import HttpServer
from seaweed_py.master.admin_lock import LEASE_SECONDS, AdminLocks
from seaweed_py.master.growth import VolumeGrower
from seaweed_py.master.meta import MetaStore
from seaweed_py.master.metrics import MasterStats, master_registry
from seaweed_py.master.options import MasterOptions
from seaweed_py.master.params import (
    AssignOption,
    parse_assign,
    parse_count,
    parse_lookup_vid,
    parse_vacuum,
)
from seaweed_py.master.repair import RepairLoop
from seaweed_py.master.tiering import AutoTier
from seaweed_py.master.ui import ClusterFacts, status_page
from seaweed_py.master.vacuum import Vacuumer
from seaweed_py.master.views import (
    cluster_status,
    collection_info,
    dir_status,
    vol_status,
)
from seaweed_py.security.settings import SecuritySettings
from seaweed_py.security.tls import server_context
from seaweed_py.security.tokens import fid_token
from seaweed_py.topology import LayoutVolume, Sequencer, Topology, VolumeLayout

__all__ = ["MasterServer"]

log = logging.getLogger(__name__)

_ASSIGN_CACHE_SIZE = 1024
_COOKIE_BATCH = 1024
assert array("I").itemsize == 4, "cookies are drawn as 4-byte array items"
_HTML_HEADERS = {"Content-Type": "text/html; charset=utf-8"}
_NOT_FOUND_TEXT = b"404 page not found\n"
_NOT_FOUND_HEADERS = {
    "Content-Type": "text/plain; charset=utf-8",
    "X-Content-Type-Options": "nosniff",
}
_FILENAME_RE = re.compile(rb'filename="((?:[^"\\]|\\.)*)"')

_Assign = tuple[AssignOption, VolumeLayout, bool]
_POST = ["POST"]
# Calls to volume servers: admin orders and /submit's upload.
_VOLUME_TIMEOUT = Timeout(total=60, connect=5)
_UPLOAD_TIMEOUT = Timeout(total=60)


class MasterServer:
    """One master: `await start()`, then serve until `await stop()`. Several may run in one
    process (tests, `weedpy server`); nothing is global."""

    def __init__(self, options: MasterOptions, *, rng: random.Random | None = None) -> None:
        self.options = options
        self.version = f"30GB {__version__} weedpy"
        self._rng = rng or random.Random(int.from_bytes(os.urandom(8), "big"))
        self._clock: Callable[[], float] = time.monotonic
        self._meta = MetaStore(options.mdir, create=options.create_mdir)
        self.topology = Topology(options.volume_size_limit, options.pulse_seconds)
        # Replaced in start() by one resuming from -mdir; this one refuses to issue keys.
        self._sequencer = Sequencer(0, _not_started, self._clock)
        self.stats = MasterStats()
        self.requests = RequestMetrics("weedpy_master")
        self._started, self._started_at = time.time(), self._clock()
        self._registry = self._new_registry()
        self._assign_cache: dict[str, _Assign] = {}
        self._assign_tails: dict[str, tuple[str, bytes]] = {}
        self._cookies = array("I")
        self._cookie_at = 0
        self._preallocate = options.volume_size_limit if options.volume_preallocate else 0
        security = options.security
        # Built now, so that a certificate that cannot be used stops the start (fail closed).
        self._ssl = server_context(security.https_master) if security.https_master else None
        self._out = Outgoing(security.https_client, security.keys)
        self._white = self._cluster_white = AllowList()
        self._set_white_lists(security.white_list)
        self._http: HttpServer | None = None
        self._volumes = HttpClient(self._out, _VOLUME_TIMEOUT)
        self._admin = VolumeAdmin(self._volumes)
        self._grower: VolumeGrower | None = None
        self._vacuumer: Vacuumer | None = None
        self._maintenance: asyncio.Task[None] | None = None
        self.auto_tier: AutoTier | None = None
        self._auto_tiering: asyncio.Task[None] | None = None
        self._sweep: asyncio.Task[None] | None = None
        self._heartbeat_answer = b""
        self._answered_version = -1  # topology.locations_version the answer carries
        self._warm_until = 0.0
        self.locks = AdminLocks(self._clock)
        self.repair = RepairLoop(
            self.topology,
            Repairs(self._admin),
            self.locks,
            self.stats,
            delay=options.repair_delay_seconds,
            pulse=options.pulse_seconds,
            clock=self._clock,
            warm_until=lambda: self._warm_until,
        )
        self._repairing: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ lifetime

    @property
    def port(self) -> int:
        if self._http is None:
            raise RuntimeError("master not started")
        return self._http.port

    @property
    def address(self) -> str:
        """`ip:port` as volume servers and clients should reach this master."""
        return f"{self.options.ip}:{self.port}"

    async def start(self) -> None:
        meta = self._meta.load()
        self.topology.max_volume_id = meta.max_volume_id
        if meta.max_volume_id:  # a restart of a cluster that has volumes
            self._warm_until = self._clock() + 3 * self.options.pulse_seconds
        self._sequencer = Sequencer(meta.max_file_key, self._meta.save_file_key, self._clock)
        self._started, self._started_at = time.time(), self._clock()
        self._registry = self._new_registry()
        await self._volumes.start()
        self._grower = VolumeGrower(
            self.topology,
            self._admin,
            self._meta,
            self._rng,
            self._clock,
            self.stats,
        )
        limits = Limits(max_body=self.options.file_size_limit_mb << 20)
        self._http = HttpServer(self._router(), limits, server_header="", ssl=self._ssl)
        try:
            await self._http.start(self.options.listen_ip, self.options.port)
        except BaseException:
            await self._volumes.close()
            raise
        self._heartbeat_answer = self._render_heartbeat_answer()
        loop = asyncio.get_running_loop()
        self._maintenance = loop.create_task(self._maintenance_loop())
        tiering = Tiering(self._volumes, self.address)  # the address needs the bound port
        self._vacuumer = Vacuumer(
            self.topology,
            self._admin,
            tiering,
            self.locks,
            self.stats,
            per_server=self.options.max_parallel_vacuum_per_server,
            preallocate=self._preallocate,
            clock=self._clock,
        )
        self._repairing = loop.create_task(self.repair.run(), name="repair")
        if self.options.tier.enabled:
            self.auto_tier = AutoTier(self.topology, tiering, self.options.tier)
            self._auto_tiering = loop.create_task(self.auto_tier.run())
            log.info("automatic tiering to %s is on", self.options.tier.dest)
        if not self.options.disable_vacuum:
            self._sweep = loop.create_task(
                self._vacuumer.sweep_forever(
                    self.options.vacuum_interval_seconds, self.options.garbage_threshold, self._rng
                ),
                name="vacuum sweep",
            )
        log.info("master %s listening on %s:%d", self.address, self.options.listen_ip, self.port)
        _log_security(self.options.security, "https" if self._ssl else "http")

    def reload_security(self, settings: SecuritySettings) -> None:
        """New keys and `guard.white_list` (SIGHUP). TLS stays as started."""
        self._out.keys = settings.keys
        self._set_white_lists(settings.white_list)
        log.info("security reloaded from %s", settings.describe())
        if settings.https_master != self.options.security.https_master:
            log.warning("[https.master] changed: the listener keeps its TLS until a restart")

    def _set_white_lists(self, from_file: tuple[str, ...]) -> None:
        """`-whiteList` merged with `guard.white_list` for the client API; the volume-server
        protocol also admits `cluster_white_list`. Empty (everyone) when neither is set: the
        extra entries only widen a list."""
        white = self.options.white_list + tuple(
            e for e in from_file if e not in self.options.white_list
        )
        self._white = AllowList(white)
        self._cluster_white = AllowList(white + self.options.cluster_white_list if white else ())

    def _new_registry(self) -> CollectorRegistry:
        return master_registry(
            self.stats,
            self.topology,
            self._sequencer,
            self.requests,
            version=self.version,
            started=self._started,
        )

    async def stop(self, grace: float = 5.0) -> None:
        for task in (self._auto_tiering, self._maintenance, self._sweep, self._repairing):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._auto_tiering = self._maintenance = self._sweep = self._repairing = None
        await self.repair.stop()
        if self._http is not None:
            await self._http.stop(grace)
        if self._grower is not None:
            await self._grower.cancel_all()
        await self._volumes.close()

    async def _maintenance_loop(self) -> None:
        """Every pulse: drop volume servers that went silent, then grow layouts that are about
        to run out of writable volumes (so assigns rarely wait for growth)."""
        period = self.options.pulse_seconds
        while True:
            await asyncio.sleep(period)
            try:
                dead = self.topology.expire_dead(self._clock())
                if dead:
                    self.stats.expired_nodes += len(dead)
                    log.warning("volume servers missed 3 pulses, dropped: %s", ", ".join(dead))
                self._grow_in_background()
            except Exception:  # keep maintaining; the next pulse may succeed
                log.exception("master maintenance failed")

    def _grow_in_background(self) -> None:
        assert self._grower is not None
        for key, count in self.topology.background_growth():
            if self._grower.pending(key) is not None:
                continue
            try:
                self.topology.find_slots(key.replica_placement, key.disk, self._rng)
            except NoFreeSlots:
                continue  # nowhere to grow; assigns will say so
            option = AssignOption(count=1, key=key, preallocate=self._preallocate)
            self._grower.start(option, count)

    def _router(self) -> Router:
        r = Router()
        any_method = None
        observe = self.requests.observer
        if self.options.disable_http:
            # -disableHttp: every client API path, /<fid> included, is Go's text 404.
            r.fallback(_not_found)
        else:
            for path, handler, operation in (
                ("/dir/assign", self._handle_assign, "assign"),
                ("/dir/lookup", self._handle_lookup, "lookup"),
                ("/dir/status", self._handle_dir_status, "status"),
                ("/vol/status", self._handle_vol_status, "status"),
                ("/collection/info", self._handle_collection_info, "status"),
            ):
                r.add(path, handler, any_method, max_body=1 << 20, observe=observe(operation))
            # Growing volumes and deleting collections change the cluster: with a signing key,
            # only holders of the key may (weed leaves them to its white list alone).
            self._cluster(r, "/vol/grow", self._handle_vol_grow, any_method, operation="admin")
            self._cluster(r, "/col/delete", self._handle_col_delete, any_method, operation="admin")
            self._cluster(r, "/vol/vacuum", self._handle_vacuum, any_method, operation="admin")
            r.add("/submit", self._handle_submit, any_method, observe=observe("submit"))
            r.fallback(self._handle_redirect, observe=observe("redirect"))
        # A single master is always its own leader and the topology takes no lock a request
        # could find held, so readiness and raft health are the liveness answer (spec §2.13).
        for path in ("/healthz", "/readyz", "/cluster/healthz"):
            r.add(path, _ok, ["GET"])
        r.add("/cluster/status", self._handle_cluster_status, ["GET"], observe=observe("status"))
        r.add("/cluster/repair", self._handle_repair, ["GET"], observe=observe("status"))
        r.add("/metrics", self._handle_metrics, ["GET"])
        # Like the reference's UI routes, the read-only page answers any method.
        r.add("/", self._handle_page, any_method)
        r.add("/ui/index.html", self._handle_page, any_method)
        r.add(STYLESHEET_PATH, stylesheet, ["GET"])
        # The volume-server protocol changes the topology (locations, dead servers, writable
        # volumes): an outsider must not reach it, so every /internal/ route is behind the
        # white list and the cluster token, registered through `_cluster` so that a new one
        # cannot be forgotten.
        self._cluster(
            r,
            Heartbeat.PATH,
            self._handle_heartbeat,
            max_body=64 << 20,
            operation="heartbeat",
        )
        self._cluster(r, UnwritableReport.PATH, self._handle_unwritable, operation="admin")
        # The admin lock gates changes to the cluster: taking it is a change.
        self._cluster(r, LeaseLock.PATH, self._handle_lock, operation="admin")
        self._cluster(r, ReleaseLock.PATH, self._handle_unlock, operation="admin")
        return r

    def _cluster(
        self,
        r: Router,
        path: str,
        handler: Handler,
        methods: list[str] | None = _POST,
        *,
        operation: str,
        max_body: int = 1 << 20,
    ) -> None:
        """Register a route that changes the cluster: behind the white list of the
        volume-server protocol and, with a signing key, a cluster token (docs/internals.md)."""

        def guarded(req: Request) -> Response | Awaitable[Response]:
            if self._cluster_white:
                self._cluster_white.check(req)
            key = self._out.keys.signing_key
            if key:
                check_cluster(req, key, time.time())
            return handler(req)

        r.add(path, guarded, methods, max_body=max_body, observe=self.requests.observer(operation))

    # ------------------------------------------------------------ guard and helpers

    def _guard(self, req: Request) -> None:
        """The whitelist (spec §10.3): refuse API calls from other addresses with 401."""
        if self._white:
            self._white.check(req)

    def _cookie(self) -> int:
        # Cookies guard fids against guessing, so they come from the OS CSPRNG, in batches.
        at = self._cookie_at
        if at >= len(self._cookies):
            self._cookies = array("I", os.urandom(4 * _COOKIE_BATCH))
            at = 0
        self._cookie_at = at + 1
        return self._cookies[at]

    # ------------------------------------------------------------ /dir/assign

    def _parse_assign(self, req: Request) -> _Assign:
        cacheable = not req.body
        if cacheable:
            hit = self._assign_cache.get(req.query_string)
            if hit is not None:
                return hit
        form = req.form()
        opt = self._assign_option(form)
        entry = (opt, self.topology.layout(opt.key), self._pretty(req))
        if cacheable and len(self._assign_cache) < _ASSIGN_CACHE_SIZE:
            self._assign_cache[req.query_string] = entry
        return entry

    def _assign_option(self, form: Mapping[str, str], *, with_count: bool = True) -> AssignOption:
        return parse_assign(
            form,
            self.options.default_replication,
            self._preallocate,
            max_preallocate=self.options.volume_size_limit,
            with_count=with_count,
        )

    def _handle_assign(self, req: Request) -> Response | Awaitable[Response]:
        if self._white:
            self._guard(req)
        try:
            opt, layout, pretty = self._parse_assign(req)
        except WeedError:
            self.stats.assign_errors += 1
            raise
        if opt.writable_volume_count:
            layout.wanted_writable = opt.writable_volume_count
        vol = self._pick(opt, layout)
        if vol is None:
            return self._assign_waiting(opt, layout, pretty)
        return self._assigned(vol, opt.count, pretty)

    def _pick(self, opt: AssignOption, layout: VolumeLayout) -> LayoutVolume | None:
        return layout.pick_for_write(
            opt.count,
            self._rng,
            self._clock(),
            opt.data_center,
            opt.rack,
            opt.data_node,
            opt.data_size,
        )

    def _assigned(self, vol: LayoutVolume, count: int, pretty: bool) -> Response:
        key = self._sequencer.next_keys(count)
        node = vol.locations[0]
        stats = self.stats
        stats.assigns += 1
        stats.assigned_keys += count
        key_cookie = b"%x%08x" % (key, self._cookie())
        if len(key_cookie) & 1:  # the key's hex keeps whole bytes
            key_cookie = b"0" + key_cookie
        keys = self._out.keys
        # The write token of this fid (spec §10.2), when a signing key is set.
        token = (
            fid_token(
                keys.signing_key,
                keys.expires_after_seconds,
                f"{vol.id},{key_cookie.decode()}",
                time.time(),
            )
            if keys.signing_key
            else ""
        )
        if pretty:
            answer = {
                "fid": f"{vol.id},{key_cookie.decode()}",
                "url": node.url,
                "publicUrl": node.public_url,
                "count": count,
            }
            return json_response(answer, pretty=True, headers=bearer(token))
        tail = self._assign_tails.get(node.id)
        if tail is None or tail[0] != node.public_url:
            # `","url":...,"count":` for this node, JSON-escaped once
            url_part = _dumps({"url": node.url, "publicUrl": node.public_url})[1:-1]
            tail = self._assign_tails[node.id] = (node.public_url, b'",' + url_part + b',"count":')
        body = b'{"fid":"%d,%s%s%d}' % (vol.id, key_cookie, tail[1], count)
        return Response(200, None, body, raw_headers=_with_token(JSON_HEADERS, token))

    async def _assign_waiting(
        self, opt: AssignOption, layout: VolumeLayout, pretty: bool
    ) -> Response:
        try:
            self._check_warm()
            vol = await self._wait_for_writable(opt, layout)
        except WeedError:
            self.stats.assign_errors += 1
            raise
        return self._assigned(vol, opt.count, pretty)

    def _check_warm(
        self,
        message: str = "master is warming up, topology is still loading",
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Right after a restart the topology is still arriving by heartbeat: a miss then is
        "retry shortly" (503), not "no such volume" or "no space" (spec §2.2 warm-up)."""
        remaining = self._warm_until - self._clock()
        if remaining > 0:
            raise ServiceUnavailable(
                message,
                headers={"Retry-After": str(max(1, math.ceil(remaining)))},
                extra=extra,
            )

    def _check_lost(self, vid: int) -> None:
        """A volume whose every holder left is unavailable (503, retry), not unknown (404):
        the blob is most likely intact on a server that is down (reliability scenario 11)."""
        if vid in self.topology.lost_volumes:
            raise ServiceUnavailable(
                f"volume id {vid} has no live holder", extra={"volumeOrFileId": str(vid)}
            )

    async def _wait_for_writable(self, opt: AssignOption, layout: VolumeLayout) -> LayoutVolume:
        """Nothing is writable: grow (or learn that another request is growing) and re-pick
        until a volume appears, growth ends, or `assign_wait_seconds` pass (spec §2.3)."""
        assert self._grower is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.assign_wait_seconds
        growth: asyncio.Task[int] | None = None
        while True:
            vol = self._pick(opt, layout)
            if vol is not None:
                return vol
            if growth is None:
                if self._grower.pending(opt.key) is not None:
                    raise _growth_in_progress(opt)
                self._check_growable(opt)
                copies = opt.key.replica_placement.copy_count
                growth = self._grower.start(
                    opt, self.topology.growth_count(copies, opt.writable_volume_count)
                )
            elif growth.done():
                error = None if growth.cancelled() else growth.exception()
                if isinstance(error, NoFreeSlots):
                    raise _no_free_volumes(opt, error)
                raise _growth_in_progress(opt)
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise RequestTimeout("request timeout")
            await asyncio.wait([growth], timeout=min(0.2, remaining))

    def _check_growable(self, opt: AssignOption) -> None:
        assert self._grower is not None
        try:
            self._grower.find_slots(opt)
        except NoFreeSlots as exc:
            raise _no_free_volumes(opt, exc) from None

    # ------------------------------------------------------------ /dir/lookup and redirects

    def _handle_lookup(self, req: Request) -> Response:
        self._guard(req)
        self.stats.lookups += 1
        form = req.form()
        file_id = form.get("fileId", "")
        # As the reference: `fileId` wins only when it has a vid before a comma; otherwise
        # `volumeId` is looked up as if no fileId had been sent.
        text = file_id if file_id.find(",") > 0 else form.get("volumeId", "")
        vid_text, vid = parse_lookup_vid(text)
        collection = parse_collection(form.get("collection", ""))
        pretty = self._pretty(req)
        if vid is None:
            self.stats.lookup_misses += 1
            body: dict[str, Any] = {"volumeOrFileId": vid_text} if vid_text else {}
            body["error"] = f"unknown volume id {vid_text}"
            return json_response(body, 404, pretty=pretty)
        nodes = self.topology.lookup(vid, collection)
        if not nodes:
            self.stats.lookup_misses += 1
            self._check_warm("service warming up, please retry", {"volumeOrFileId": vid_text})
            self._check_lost(vid)
            return json_response(
                {"volumeOrFileId": vid_text, "error": f"volume id {vid} not found"},
                404,
                pretty=pretty,
            )
        locations = [
            {"url": n.url, "publicUrl": n.public_url, "dataCenter": n.data_center.id} for n in nodes
        ]
        answer = {"volumeOrFileId": vid_text, "locations": locations}
        auth = self._lookup_token(file_id, form.get("read") == "yes")
        if pretty:
            return json_response(answer, pretty=True, headers=bearer(auth))
        return Response(200, None, _dumps(answer), raw_headers=_with_token(JSON_HEADERS, auth))

    def _lookup_token(self, file_id: str, read: bool) -> str:
        """As weed's lookup: a `fileId` gets a write token, or a read token with `read=yes`
        (none when that kind of key is not set), signed over the `fileId` text as sent."""
        if not file_id:
            return ""
        keys = self._out.keys
        key, lifetime = (
            (keys.read_key, keys.read_expires_after_seconds)
            if read
            else (keys.signing_key, keys.expires_after_seconds)
        )
        return fid_token(key, lifetime, file_id, time.time()) if key else ""

    def _handle_redirect(self, req: Request) -> Response:
        """`/<fid>` → 308 to a random replica, so a POST stays a POST (spec §2.12)."""
        segment = req.path[1:]
        if not segment or "/" in segment:
            return _not_found(req)
        vid_text, vid = parse_lookup_vid(segment)
        collection = parse_collection(req.query.get("collection", ""))
        nodes = self.topology.lookup(vid, collection) if vid is not None else []
        if not nodes:
            self._check_warm()
            if vid is not None:
                self._check_lost(vid)
            # the reference repeats the lookup's own error after its summary
            cause = (
                f"volume id {vid_text} not found"
                if vid is not None
                else f"unknown volume id {vid_text}"
            )
            raise VolumeNotFound(f"volume id {vid_text} not found: {cause}")
        node = nodes[0] if len(nodes) == 1 else self._rng.choice(nodes)
        query = f"?{req.query_string}" if req.query_string else ""
        location = self._out.url(node.public_url, f"{req.path}{query}")
        if req.method not in ("GET", "HEAD"):
            return Response(308, {"Location": location})
        # Go's http.Redirect adds a tiny HTML body for GET and HEAD
        body = f'<a href="{html.escape(location)}">Permanent Redirect</a>.\n\n'.encode()
        return Response(308, {"Location": location, **_HTML_HEADERS}, body)

    # ------------------------------------------------------------ status pages

    def _pretty(self, req: Request) -> bool:
        # The reference's JSON writer reads `pretty` from the URL only, never from a form body.
        return bool(req.query.get("pretty"))

    def _handle_dir_status(self, req: Request) -> Response:
        self._guard(req)
        status = dir_status(self.topology, self._meta.current.topology_id, self.version)
        return json_response(status, pretty=self._pretty(req))

    def _handle_vol_status(self, req: Request) -> Response:
        self._guard(req)
        return json_response(vol_status(self.topology, self.version), pretty=self._pretty(req))

    def _handle_collection_info(self, req: Request) -> Response:
        self._guard(req)
        form = req.form()
        name = parse_collection(form.get("collection", ""))
        if not name:
            raise BadRequest("collection is required")
        if name not in self.topology.collections():
            raise BadRequest(f"collection {name} does not exist")
        info = collection_info(self.topology, name, self.version, form.get("detail") == "true")
        return json_response(info, pretty=self._pretty(req))

    def _handle_cluster_status(self, req: Request) -> Response:
        status = cluster_status(self.address, self._max_volume_id())
        return json_response(status, pretty=self._pretty(req))

    def _handle_repair(self, req: Request) -> Response:
        self._guard(req)
        return json_response(self.repair.status(), pretty=self._pretty(req))

    def _handle_lock(self, req: Request) -> Response:
        lease = self.locks.lease(LeaseLock.from_query(req.form()))
        return json_response(
            {"token": lease.token, "name": lease.name, "leaseSeconds": LEASE_SECONDS}
        )

    def _handle_unlock(self, req: Request) -> Response:
        self.locks.release(ReleaseLock.from_query(req.form()))
        return json_response({})

    def _handle_page(self, req: Request) -> Response:
        now = self._clock()
        facts = ClusterFacts(self.address, self.version, now - self._started_at, now)
        return status_page(self.topology, facts, self.repair.status())

    def _handle_metrics(self, req: Request) -> Response:
        return Response(200, {"Content-Type": CONTENT_TYPE_LATEST}, generate_latest(self._registry))

    def _max_volume_id(self) -> int:
        return max(self.topology.max_volume_id, self._meta.current.max_volume_id)

    # ------------------------------------------------------------ /vol/grow, /col/delete

    async def _handle_vol_grow(self, req: Request) -> Response:
        self._guard(req)
        assert self._grower is not None
        form = req.form()
        count = parse_count(form.get("count", ""))
        if count is None:
            raise NotAcceptable(f"can not parse parameter count {form.get('count', '')}")
        opt = self._assign_option(form, with_count=False)
        copies = opt.key.replica_placement.copy_count
        free = self.topology.free_slots(opt.key.disk)
        if free < count * copies:
            raise NotAcceptable(f"only {free} volumes left, not enough for {count * copies}")
        created = await self._grower.grow(opt, count) if count else 0
        # Quirk A6, kept: the count is of replica locations, not logical volumes.
        return json_response({"count": created * copies}, pretty=self._pretty(req))

    async def _handle_col_delete(self, req: Request) -> Response:
        self._guard(req)
        form = req.form()
        if "collection" not in form:
            raise BadRequest("collection is required")
        name = parse_collection(form["collection"])
        if name not in self.topology.collections():
            raise BadRequest(f"collection {name} does not exist")
        for node in self.topology.nodes_of_collection(name):
            try:
                await self._admin.send(node.url, DeleteCollection(name))
            except WeedError as exc:
                raise WeedError(f"delete collection {name} on {node.url}: {exc.message}") from exc
        self.topology.drop_collection(name, self._clock())
        self._assign_cache.clear()
        return Response(204)

    async def _handle_vacuum(self, req: Request) -> Response:
        """Run a vacuum pass (spec §2.8, §9.2) and answer `/dir/status` once it is done; while
        another pass runs, answer at once, as the reference does."""
        self._guard(req)
        assert self._vacuumer is not None
        request = parse_vacuum(req.form(), self.options.garbage_threshold, self.topology)
        await self._vacuumer.run(request)
        return self._handle_dir_status(req)

    # ------------------------------------------------------------ /submit

    async def _handle_submit(self, req: Request) -> Response:
        self._guard(req)
        if req.method != "POST":
            raise MethodNotAllowed("Only submit via POST!", headers={"Allow": "POST"})
        query = req.query
        opt = self._assign_option(query)
        content_type = req.headers.get("content-type", "")
        if not content_type:
            # What the volume server answers an untyped POST; refused before any key is used.
            raise BadRequest("request Content-Type isn't multipart/form-data")
        body = await req.read()
        layout = self.topology.layout(opt.key)
        try:
            vol = self._pick(opt, layout) or await self._wait_for_writable(opt, layout)
        except WeedError as exc:
            # The status /dir/assign gives it (406 nowhere to grow, 503 growth in progress),
            # not the reference's 500: a 5xx would call the client's request a server fault.
            raise type(exc)(f"assign: {exc.message}", headers=exc.headers, extra=exc.extra) from exc
        key = self._sequencer.next_keys(opt.count)
        fid = f"{vol.id},{format_key_cookie(key, self._cookie())}"
        node = vol.locations[0]
        upload = await self._upload(node.url, fid, body, content_type, query)
        return json_response(
            {
                "eTag": upload.get("eTag", ""),
                "fid": fid,
                "fileName": _file_name(body, content_type, req.path),
                "fileUrl": f"{node.public_url}/{fid}",
                "size": upload.get("size", len(body)),
            },
            201,
            pretty=self._pretty(req),
        )

    async def _upload(
        self, server: str, fid: str, body: bytes, content_type: str, query: dict[str, str]
    ) -> dict[str, Any]:
        """Store `/submit`'s body at `fid` on `server`: the volume server's answer. A 4xx it
        answers (a body it cannot parse or store) is passed on, a 404 (the volume is not there)
        is 503 with `Retry-After`, and its failure or silence is the master's 500."""
        params = {k: query[k] for k in ("ts", "ttl") if query.get(k)}
        headers = {"Content-Type": content_type, **bearer(self._out.write_token(fid))}
        try:
            reply = await self._volumes.call(
                "POST",
                server,
                f"/{fid}",
                what=f"upload to {server}/{fid}",
                params=params,
                data=body,
                headers=headers,
                timeout=_UPLOAD_TIMEOUT,
            )
        except NotFound as exc:
            # The volume left that server before this master heard of it: a retry is assigned
            # a volume that is there.
            raise ServiceUnavailable(exc.message, headers={"Retry-After": "1"}) from exc
        except WeedError as exc:
            if exc.status >= 500:  # the volume server failed, or could not be reached
                raise WeedError(exc.message) from exc
            raise  # it refused the body (unparsable, too large): the same 4xx
        try:
            answer = orjson.loads(reply.body)
        except orjson.JSONDecodeError:  # stored all the same; the answer's fields are optional
            return {}
        return answer if isinstance(answer, dict) else {}

    # ------------------------------------------------------------ volume server protocol

    def _render_heartbeat_answer(self) -> bytes:
        self._answered_version = self.topology.locations_version
        return HeartbeatAnswer(
            volume_size_limit=self.options.volume_size_limit,
            leader=self.address,
            preallocate=self.options.volume_preallocate,
            pulse_seconds=self.options.pulse_seconds,
            locations_version=self._answered_version,
        ).to_json()

    def _handle_heartbeat(self, req: Request) -> Response | Awaitable[Response]:
        if req.stream is not None:
            return self._heartbeat_streamed(req)
        return self._apply_heartbeat(req.body)

    async def _heartbeat_streamed(self, req: Request) -> Response:
        return self._apply_heartbeat(await req.read())

    def _apply_heartbeat(self, body: bytes) -> Response:
        hb = Heartbeat.from_json(body)
        self.stats.heartbeats += 1
        self._sequencer.set_max(hb.max_file_key)
        self.topology.apply_heartbeat(hb, self._clock())
        if self.topology.max_volume_id > self._meta.current.max_volume_id:
            self._meta.save_volume_id(self.topology.max_volume_id)
        if self.topology.locations_version != self._answered_version:
            self._heartbeat_answer = self._render_heartbeat_answer()
        return Response(200, None, self._heartbeat_answer, raw_headers=JSON_HEADERS)

    def _handle_unwritable(self, req: Request) -> Response:
        vid = UnwritableReport.from_query(req.form()).volume_id
        if not self.topology.mark_unwritable(vid, self._clock()):
            raise VolumeNotFound(f"volume id {vid} not found")
        log.warning("volume %d marked unwritable after a failed replicated write", vid)
        return json_response({})


def _not_started(mark: int) -> None:
    raise RuntimeError("master not started: no file key may be issued")


def _ok(req: Request) -> Response:
    return Response(200)


def _not_found(req: Request) -> Response:
    """Go's mux answer for a path no route serves."""
    return Response(404, _NOT_FOUND_HEADERS, _NOT_FOUND_TEXT)


_dumps = orjson.dumps


def _with_token(head: bytes, token: str) -> bytes:
    """`head` with an `Authorization: Bearer` line when there is a token (weed's header)."""
    return head + b"Authorization: Bearer %s\r\n" % token.encode() if token else head


def _log_security(security: SecuritySettings, scheme: str) -> None:
    log.info("security: %s; serving %s", security.describe(), scheme)
    if not security.keys.signing_key:
        log.warning(
            "no jwt.signing.key (security.toml or WEED_JWT_SIGNING_KEY): anyone who can "
            "reach this master may grow volumes, delete collections and heartbeat to it"
        )


def _file_name(body: bytes, content_type: str, path: str) -> str:
    """The uploaded file's name: the multipart part's filename, else the path's last segment."""
    if content_type.lower().startswith("multipart/"):
        m = _FILENAME_RE.search(body, 0, 8192)
        if m:
            return m.group(1).decode("utf-8", "replace").replace('\\"', '"')
    return path.rstrip("/").rsplit("/", 1)[-1]


def _growth_in_progress(opt: AssignOption) -> NoWritableVolume:
    return NoWritableVolume(
        f"no writable volumes for {opt.describe()}, volume growth in progress",
        headers={"Retry-After": "1"},
    )


def _no_free_volumes(opt: AssignOption, cause: WeedError) -> NotAcceptable:
    key = opt.key
    # The reference's message (the option JSON names any dataCenter/rack/dataNode), then why.
    return NotAcceptable(
        f"failed to find writable volumes for collection:{key.collection} "
        f"replication:{key.replica_placement} ttl:{key.ttl} error: No writable volumes "
        f"and no free volumes left for {opt.describe()} ({cause.message})"
    )
