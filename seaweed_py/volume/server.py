"""The volume server: storage behind the blob REST API, heartbeats and admin endpoints.

    server = VolumeServer(options)
    await server.start()      # loads the volumes, listens, heartbeats; rechecks full disks
    ...                       # server.port is the bound port (options.port may be 0)
    await server.stop()       # goodbye heartbeat, -preStopSeconds, drain requests, close volumes

Routes: `/status`, `/healthz`, `/readyz`, `/metrics`, `/ui/index.html`, `/admin/...` (the
master's and the shell's calls, docs/internals.md), `POST /batch/read` (many needles in one
answer, volume/batch.py) and, for every other path, the blob handler: GET/HEAD read,
POST/PUT write, DELETE, OPTIONS (CORS preflight); other methods get 400 as in the reference.

`-whiteList` (spec §10.3): when set, writes, deletes (replica forwards included) and every
`/admin/` route answer 401 to other peers; reads, status, health, metrics and the UI stay open.

`-concurrentUploadLimitMB` (spec §3.8): the blob route's `InflightLimit` (httpkit), so an
upload past the limit waits with its body unread and then gets 429; replica copies
(`type=replicate`) and other methods never wait.

security.toml (spec §10): with `jwt.signing.key`, writes and deletes need a file-id token
(`access.py`) and `/admin/` routes a cluster token, and the UI is not served unless
`access.ui`; with `jwt.signing.read.key`, reads need a read token; `[https.volume]` makes the
port HTTPS. SIGHUP swaps keys and white list (`reload_security`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from seaweed_py import __version__
from seaweed_py.client.cluster import Outgoing
from seaweed_py.client.http import HttpClient, Timeout
from seaweed_py.client.master_link import MasterLink
from seaweed_py.client.replicate import Replicator
from seaweed_py.client.roles import VOLUME_SERVER_PREFIX
from seaweed_py.client.volume_admin import VolumeAdmin
from seaweed_py.errors import BadRequest, MethodNotAllowed, TooManyRequests
from seaweed_py.formats.wire import Heartbeat, HeartbeatAnswer
from seaweed_py.httpkit.allow_list import AllowList
from seaweed_py.httpkit.inflight import InflightLimit
from seaweed_py.httpkit.limits import Limits
from seaweed_py.httpkit.request import Request
from seaweed_py.httpkit.response import Response
from seaweed_py.httpkit.router import Router
from seaweed_py.httpkit.server import HttpServer
from seaweed_py.security.settings import SecuritySettings
from seaweed_py.security.tls import server_context
from seaweed_py.storage.backend import Backends
from seaweed_py.storage.shared import WorkerShare
from seaweed_py.storage.store import DiskLocation, Store
from seaweed_py.storage.volume import FsyncMode
from seaweed_py.volume.access import check_delete, check_read, check_write
from seaweed_py.volume.admin import VERSION, AdminHandlers
from seaweed_py.volume.anti_entropy import AntiEntropy
from seaweed_py.volume.batch import MAX_BODY as BATCH_MAX_BODY
from seaweed_py.volume.batch import BatchReader
from seaweed_py.volume.options import VolumeOptions
from seaweed_py.volume.read import BlobReader
from seaweed_py.volume.repair import NeedleRepair
from seaweed_py.volume.scrubber import Scrubber
from seaweed_py.volume.stats import Stats
from seaweed_py.volume.tier_reads import TierReads
from seaweed_py.volume.ui import StatusPage
from seaweed_py.volume.vacuum import VolumeVacuum
from seaweed_py.volume.workers import Workers
from seaweed_py.volume.write import BlobWriter

__all__ = ["SERVER_HEADER", "VolumeServer"]

log = logging.getLogger(__name__)

SERVER_HEADER = f"{VOLUME_SERVER_PREFIX} weedpy {__version__}"
_CORS = b"Access-Control-Allow-Origin: *\r\nAccess-Control-Allow-Credentials: true\r\n"
_PREFLIGHT = (
    b"Access-Control-Allow-Methods: PUT, POST, GET, DELETE, OPTIONS\r\n"
    b"Access-Control-Allow-Headers: *\r\n"
)
_PUBLIC_PREFLIGHT = (
    b"Access-Control-Allow-Methods: GET, OPTIONS\r\nAccess-Control-Allow-Headers: *\r\n"
)
_RATE_SAMPLE_SECONDS = 5.0
_PEER_TIMEOUT = Timeout(total=600, connect=5)
# Multipart framing around the largest accepted file.
_MULTIPART_SLACK = 64 * 1024


class VolumeServer:
    """One volume server; several can run in one process (tests, `weedpy server`)."""

    def __init__(
        self,
        options: VolumeOptions,
        *,
        clock: Callable[[], float] = time.time,
        workers: Workers | None = None,
    ) -> None:
        """`workers`: the leader's other workers (volume/workers.py), started once it
        listens."""
        self.options = options
        self.workers = workers
        self._clock = clock
        security = options.security
        # Built first, so that a certificate that cannot be used stops the start (fail closed).
        self._ssl = server_context(security.https_volume) if security.https_volume else None
        self.out = Outgoing(security.https_client, security.keys)
        self._write_key = security.keys.signing_key
        self._read_key = security.keys.read_key
        self.store = Store(
            [DiskLocation(d, m) for d, m in zip(options.dirs, options.max_volumes, strict=True)],
            index_kind=options.index_kind,
            fsync_mode=FsyncMode(options.fsync_mode),
            large_disk=options.large_disk,
            clock_ns=lambda: int(clock() * 1e9),
            backends=Backends(
                options.backends, cache_bytes=options.tier_cache, user_agent=SERVER_HEADER
            ),
            compaction_bytes_per_second=options.compaction_mbps * 1024 * 1024,
        )
        self.tier_reads = TierReads()
        self._disk_check: asyncio.Task[None] | None = None
        self.link = MasterLink(
            options.masters,
            self._heartbeat,
            pulse_seconds=options.pulse_seconds,
            on_answer=self._on_master_answer,
            on_return=self._came_back,
            out=self.out,
        )
        self.stats = Stats(
            self.store,
            options.dirs,
            version=VERSION,
            heartbeating=lambda: self.link.heartbeating,
            inflight_uploads=lambda: self.uploads.in_flight if self.uploads is not None else 0,
            clock=clock,
        )
        self._sampler: asyncio.Task[None] | None = None
        # Calls to other volume servers for replicas (anti-entropy, copies, repairs): their
        # own pool, so a long copy never queues behind replica forwards or proxied reads.
        self._peer_http = HttpClient(self.out, _PEER_TIMEOUT)
        self.peers = VolumeAdmin(self._peer_http)
        self.repair = NeedleRepair(self.peers, self.link, self_url=self.url, stats=self.stats)
        self.anti_entropy = AntiEntropy(
            self.store,
            self.peers,
            self.link,
            self_url=self.url,
            stats=self.stats,
            interval=options.replica_check_seconds,
        )
        self.scrubber = Scrubber(
            self.store,
            self.repair,
            self.stats,
            rate=options.scrub_mbps * (1 << 20),
            min_pass=options.scrub_pass_seconds,
        )
        self.replicator = Replicator(options.replication_timeout, self.out)
        self.reader = BlobReader(
            self.store,
            self.link,
            self_url=self.url,
            read_mode=options.read_mode,
            stats=self.stats,
            clock=clock,
            out=self.out,
            tier=self.tier_reads,
            repair=self.repair,
        )
        self.writer = BlobWriter(
            self.store,
            self.link,
            self.replicator,
            self_url=self.url,
            file_size_limit=options.file_size_limit,
            spool_dir=options.dirs[0],
            stats=self.stats,
            clock=clock,
            out=self.out,
        )
        self.vacuum = VolumeVacuum(self.store, self.stats)
        self.admin = AdminHandlers(self)
        self.batch = BatchReader(self)
        self.allow = AllowList()
        self._set_white_list(security.white_list)
        self.uploads: InflightLimit | None = None
        if options.concurrent_upload_limit:
            self.uploads = InflightLimit(
                options.concurrent_upload_limit,
                options.inflight_upload_timeout,
                _upload_rejection,
                exempt=_never_waits,
            )
        self.stopping = False
        # Small reads answered in bursts: fewer wake-ups of clients and of this loop.
        self.http = HttpServer(
            self._router(), self._limits(), SERVER_HEADER, batch_writes=True, ssl=self._ssl
        )
        self.public_http: HttpServer | None = None
        if options.public_port and options.public_port != options.port:
            public = Router()
            self._add_batch_route(public)
            public.fallback(self._public_blob, observe=self.stats.observe_blob)
            self.public_http = HttpServer(
                public, self._limits(), SERVER_HEADER, batch_writes=True, ssl=self._ssl
            )

    # ------------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        return self.http.port or self.options.port

    def url(self) -> str:
        """`ip:port` as the master and the other volume servers know this server."""
        return self.options.address(self.port)

    def public_url(self) -> str:
        if self.options.public_url:
            return self.options.public_url
        if self.public_http is not None:
            return self.options.address(self.public_http.port or self.options.public_port)
        return self.url()

    async def start(self) -> None:
        options = self.options
        if options.worker:  # started by the leader: follow the store it loaded and shares
            share = WorkerShare(options.dirs[0], create=False)
            await asyncio.to_thread(self.store.attach, share)
            self.stats.share(share, options.worker)
        else:
            await asyncio.to_thread(self.store.load)
            if options.workers > 1:
                share = WorkerShare(options.dirs[0], create=True)
                self.store.share_workers(share)
                self.stats.share(share, 0)
        self._sync_journals_in_background()
        await self.replicator.start()
        await self._peer_http.start()
        await self.reader.start()
        several = options.workers > 1
        await self.http.start(options.listen_host, options.port, reuse_port=several)
        if self.public_http is not None:
            await self.public_http.start(
                options.listen_host,
                options.public_port,
                setting="port.public",
                reuse_port=several,
            )
        if self.workers is not None:
            public = self.public_http.port if self.public_http is not None else 0
            self.workers.on_exit = self._worker_exited
            await self.workers.start(self.port, public)
        await self.link.start(heartbeat=not options.worker)
        if not options.worker:  # the leader alone scrubs and compares with the replicas
            self.anti_entropy.start()
            self.scrubber.start()
        self._disk_check = asyncio.create_task(self._reopen_full_volumes(), name="disk check")
        self._sampler = asyncio.create_task(self._sample_rates(), name="rate sampler")
        log.info("volume server %s serving %s", self.url(), ", ".join(self.options.dirs))
        for settings in self.options.backends.values():
            log.info("tiering backend %s, from %s", settings.describe(), settings.source)
        security = self.options.security
        log.info("security: %s; serving %s", security.describe(), "https" if self._ssl else "http")
        if not self._write_key:
            log.warning(
                "no jwt.signing.key (security.toml or WEED_JWT_SIGNING_KEY): anyone who can "
                "reach this server may write, delete and call /admin/"
            )

    def reload_security(self, settings: SecuritySettings) -> None:
        """New keys and `guard.white_list` (SIGHUP). TLS and `access.ui` stay as started."""
        self.out.keys = settings.keys
        self._write_key = settings.keys.signing_key
        self._read_key = settings.keys.read_key
        self._set_white_list(settings.white_list)
        log.info("security reloaded from %s", settings.describe())
        if settings.https_volume != self.options.security.https_volume:
            log.warning("[https.volume] changed: the listener keeps its TLS until a restart")

    def _set_white_list(self, from_file: tuple[str, ...]) -> None:
        own = self.options.white_list
        self.allow = AllowList(own + tuple(e for e in from_file if e not in own))

    def now(self) -> float:
        """This server's wall clock (Unix seconds): TTLs and token expiry."""
        return self._clock()

    def ui_served(self) -> bool:
        """weed does not serve its status page while a signing key is set, unless
        `access.ui`: it lists the volumes to anyone."""
        security = self.options.security
        return not security.keys.signing_key or security.access_ui

    async def stop(self) -> None:
        """Leave the cluster, wait `-preStopSeconds`, finish in-flight requests, close."""
        self.stopping = True
        if self._disk_check is not None:
            self._disk_check.cancel()
            await asyncio.gather(self._disk_check, return_exceptions=True)
            self._disk_check = None
        if self._sampler is not None:
            self._sampler.cancel()
            await asyncio.gather(self._sampler, return_exceptions=True)
            self._sampler = None
        await self.scrubber.stop()
        await self.anti_entropy.stop()
        serving = self.http.port != 0
        leader = not self.options.worker
        await self.link.stop(goodbye=serving and leader)
        if serving and leader and self.options.pre_stop_seconds > 0:
            await asyncio.sleep(self.options.pre_stop_seconds)
        if self.workers is not None:
            await self.workers.stop()
        await self.http.stop()
        if self.public_http is not None:
            await self.public_http.stop()
        await self.reader.close()
        await self.replicator.close()
        await self._peer_http.close()
        self._sync_journals_inline()
        await asyncio.to_thread(self.store.close)

    async def _worker_exited(self, pid: int) -> None:
        """A worker died: what it left unpublished in the volumes whose lock it held is cut
        now (storage/store.py `recover_from`), not at their next append."""
        try:
            held = await asyncio.to_thread(self.store.recover_from, pid)
        except Exception:  # the leader keeps watching its workers whatever happened here
            log.exception("recovering the volumes of worker %d failed", pid)
            return
        if held:
            log.warning("worker %d died holding volume(s) %s: recovered", pid, held)

    def _sync_journals_in_background(self) -> None:
        """Each journal's rounds sync in the kernel while the loop serves the next writes
        (storage/uring.py; inline where the kernel cannot)."""
        loop = asyncio.get_running_loop()
        for journal in self.store.journals:
            if journal is not None:
                fd = journal.sync_in_background(loop.call_soon)
                if fd is not None:
                    loop.add_reader(fd, journal.synced)

    def _sync_journals_inline(self) -> None:
        loop = asyncio.get_running_loop()
        for journal in self.store.journals:
            if journal is not None:
                fd = journal.background_fd
                if fd is not None:
                    loop.remove_reader(fd)
                journal.stop_background()

    def _limits(self) -> Limits:
        # `weed volume -idleTimeout` bounds every read of a connection, a body's too.
        idle = self.options.idle_timeout
        return Limits(idle_timeout=idle, body_timeout=idle)

    def _router(self) -> Router:
        r = Router()
        self.admin.register(r)
        StatusPage(self).register(r)
        self._add_batch_route(r)
        r.fallback(
            self._blob,
            max_body=self.options.file_size_limit + _MULTIPART_SLACK,
            inflight=self.uploads,
            observe=self.stats.observe_blob,
        )
        return r

    def _add_batch_route(self, r: Router) -> None:
        """`POST /batch/read` (volume/batch.py): reads, open like GETs (each fid's read token
        is checked when a read key is set)."""
        r.add(
            "/batch/read",
            self.batch.handle,
            ["POST"],
            max_body=BATCH_MAX_BODY,
            observe=self.stats.read,
        )

    async def _sample_rates(self) -> None:
        """Snapshots of the request counts, for the recent rates on the status page."""
        while True:
            self.stats.recent.sample(time.monotonic())
            await asyncio.sleep(_RATE_SAMPLE_SECONDS)

    # ------------------------------------------------------------------ blob dispatch

    def _blob(self, req: Request) -> Response | Awaitable[Response]:
        # The dispatch by method, inline: this runs for every blob request.
        method = req.method
        answer: Response | Awaitable[Response]
        if method == "GET" or method == "HEAD":
            if self._read_key:
                check_read(req, self._read_key, self.now())
            answer = self.reader.get(req)
        elif method == "POST" or method == "PUT":
            if self.allow:
                self.allow.check(req)
            if self._write_key:
                check_write(req, self._write_key, self.now())
            answer = self.writer.write(req)
        elif method == "DELETE":
            if self.allow:
                self.allow.check(req)
            if self._write_key:
                check_delete(req, self._write_key, self.now())
            answer = self.writer.delete(req)
        elif method == "OPTIONS":
            answer = Response(200, raw_headers=_PREFLIGHT)
        else:
            raise BadRequest(f"unsupported method {method}")
        if "origin" not in req.headers:
            return answer
        if isinstance(answer, Response):
            return _with_cors(answer)
        return self._cors_later(answer)

    def _public_blob(self, req: Request) -> Response | Awaitable[Response]:
        """The public listener: reads only. Other methods get 405 where the reference answers
        a silent 200 (quirk A9, fixed: a client must not believe a write succeeded)."""
        method = req.method
        if method == "GET" or method == "HEAD":
            if self._read_key:
                check_read(req, self._read_key, self.now())
            answer = self.reader.get(req)
        elif method == "OPTIONS":
            answer = Response(200, raw_headers=_PUBLIC_PREFLIGHT)
        else:
            raise MethodNotAllowed(
                f"{method} is not served on the public port",
                headers={"Allow": "GET, HEAD, OPTIONS"},
            )
        if "origin" not in req.headers:
            return answer
        if isinstance(answer, Response):
            return _with_cors(answer)
        return self._cors_later(answer)

    async def _cors_later(self, answer: Awaitable[Response]) -> Response:
        return _with_cors(await answer)

    # ------------------------------------------------------------------ master link

    def _heartbeat(self) -> Heartbeat:
        return self.admin.heartbeat()

    def _came_back(self) -> None:
        """Heartbeats are answered again after none were (a start, a freeze, a partition):
        this server's copies may have missed writes and deletes, and hold some the others
        missed (volume/anti_entropy.py)."""
        if not self.stopping:
            self.anti_entropy.came_back()

    def _on_master_answer(self, answer: HeartbeatAnswer) -> None:
        limit = answer.volume_size_limit
        if limit > 0 and limit != self.store.volume_size_limit:
            self.store.volume_size_limit = limit

    async def _reopen_full_volumes(self) -> None:
        """Every pulse: volumes read-only because their disk filled take writes again once it
        has room (the probe is a statvfs: off the loop), and the master hears it at once; the
        `.idx` of tiered volumes that deletes changed goes to their bucket; TTL volumes expired
        long enough are deleted (spec §9.5)."""
        while True:
            await asyncio.sleep(self.options.pulse_seconds)
            steps: list[tuple[str, Callable[[], object]]] = [
                ("checking full disks", self.store.reopen_full_volumes),
                ("sending the .idx of tiered volumes", self.store.upload_dirty_indexes),
            ]
            if not self.options.worker:  # the leader alone; the others let go (`Store.get`)
                steps.append(("removing expired TTL volumes", self.vacuum.remove_expired))
            for what, step in steps:
                try:
                    changed = await asyncio.to_thread(step)
                except Exception:  # keep checking; the next pulse may succeed
                    log.exception("%s failed", what)
                    continue
                if changed and step != self.store.upload_dirty_indexes:
                    self.link.poke()


def _upload_rejection(in_flight: int, limit: int) -> TooManyRequests:
    return TooManyRequests(
        f"reject because inflight upload data {in_flight} > {limit}, and wait timeout"
    )


def _never_waits(req: Request) -> bool:
    """Replica copies (as the reference) and anything but an upload are never held back."""
    if req.method != "POST" and req.method != "PUT":
        return True
    return "type=replicate" in req.query_string and req.query.get("type") == "replicate"


def _with_cors(response: Response) -> Response:
    """A copy of `response` with the CORS headers (responses may be shared constants)."""
    return Response(
        response.status,
        response.headers,
        response.body,
        raw_headers=_CORS + response.raw_headers,
        content_length=response.content_length,
    )
