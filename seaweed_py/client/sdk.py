"""The Python SDK: assign, upload, download and delete blobs on weedpy or SeaweedFS.

It speaks only the documented REST surface (`/dir/assign`, `/dir/lookup`, and POST/GET/DELETE on
volume servers), so it works unchanged against the reference SeaweedFS.

    async with AsyncClient("127.0.0.1:9333") as client:
        result = await client.upload(b"hello", name="hello.txt")
        assert await client.download(result.fid) == b"hello"
        await client.delete(result.fid)

    with Client("127.0.0.1:9333") as client:          # the same, blocking
        fid = client.upload(Path("photo.jpg")).fid

Behaviour worth knowing:

- Locations from `/dir/lookup` are cached per volume for `cache_ttl` seconds; an entry is dropped
  as soon as a read through it fails (404, connection error), and the read is retried once with
  fresh locations.
- Reads try every replica (same data center first when `data_center` is set, otherwise in random
  order); a read that breaks mid-stream continues on the next replica, which sends the blob
  again from its start: the prefix already delivered is checked against it (CRC-32), so bytes
  of a corrupt replica that cut its answer short are never completed with a healthy tail.
- Sources larger than `chunk_size` (default 4 MiB, `None` disables) are split into chunks that are
  assigned and uploaded in parallel (`max_parallel_chunks` at a time, so memory stays bounded),
  then a chunk manifest (spec §13, `seaweed_py.client.manifest`) is written at the file's own fid.
  Volume servers expand manifests on read and delete their chunks on delete. If a chunk fails, the
  chunks already written are deleted.
- Clusters with security.toml keys (spec §10.2): an upload carries the write token its assign
  came with; a delete, a write to a given fid or a read answered 401 asks the master for that
  fid's token (`/dir/lookup?fileId=`, with `read=yes` for reads) and tries again, and from then
  on fetches tokens before asking (`token()` fetches one). HTTPS: give the master as
  `https://host:port` (volume servers are then reached over HTTPS too) and pass `ssl=` an
  `ssl.SSLContext` trusting the cluster's CA.
- Uploads survive a volume server that just died: when the server an assign named cannot be
  reached (`ServerUnreachable`), `upload` asks the master for a fresh fid and sends the blob
  once more (a chunk of a large file likewise). For `unreachable_ttl` seconds the client then
  remembers that server and re-assigns (up to 16 times) when the master names it again, as the
  master keeps naming a dead server until it has missed three heartbeats. A source that cannot
  be read twice (a stream that is not seekable) is not retried. If the first attempt timed
  out rather than being refused, the server may have stored it under the first fid, which
  nobody references then. `write` to an explicit fid cannot be re-assigned: it raises
  `ServerUnreachable` after dropping the volume's cached locations and remembering the server,
  and the caller decides (e.g. `upload` instead, or a new `assign`).
- A master address that answers as a volume server raises `NotAMaster`.
- Failures raise `seaweed_py.errors` classes: HTTP statuses map to the class with that status
  (404 on a read → `NeedleNotFound`, on a lookup → `VolumeNotFound`; 503 on assign →
  `NoWritableVolume` after retrying for `assign_timeout` seconds); a refused, reset or timed-out
  connection → `ServerUnreachable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import os
import random
import secrets
import ssl as _ssl
import threading
import time
import zlib
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from pathlib import Path
from types import EllipsisType
from typing import IO, Any, Final, Protocol, TypeVar

import aiohttp

from seaweed_py.client import batch
from seaweed_py.client.http import error_for, error_message
from seaweed_py.client.locations import Location, LocationCache
from seaweed_py.client.manifest import ChunkInfo, ChunkManifest, encode_manifest
from seaweed_py.client.roles import check_master
from seaweed_py.errors import (
    BadRequest,
    CorruptNeedle,
    NeedleNotFound,
    NotFound,
    NoWritableVolume,
    ServerUnreachable,
    ServiceUnavailable,
    Unauthorized,
    VolumeNotFound,
    WeedError,
)
from seaweed_py.formats.fid import parse_file_id, parse_volume_id

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "Assignment",
    "AsyncClient",
    "Client",
    "Progress",
    "ReadableBinary",
    "UploadResult",
    "UploadSource",
]

DEFAULT_CHUNK_SIZE: Final = 4 * 1024 * 1024
"""Like `weed upload -maxMB=4`."""


class ReadableBinary(Protocol):
    """Anything with a binary `read(size)`: open files, `io.BytesIO`, pipes, sockets' files."""

    def read(self, size: int = -1, /) -> bytes | None: ...


UploadSource = bytes | bytearray | memoryview | os.PathLike[str] | ReadableBinary
"""Bytes in memory, a file path (`pathlib.Path`; plain `str` is refused as ambiguous), or a
binary stream opened for reading (read from its current position to EOF; its length is known up
front only when it is seekable)."""

Progress = Callable[[int, int | None], None]
"""Called as `progress(bytes_just_transferred, total_or_None)` on the client's event loop thread
(`seaweed_py.client.progress.ProgressBar.update` fits)."""

_READ_PIECE = 256 * 1024
_STEERING_ASSIGNS = 16  # assigns tried to get past servers known to be unreachable
_CONNECTION_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError)


@dataclass(frozen=True, slots=True)
class Assignment:
    """What `/dir/assign` handed out: `count` consecutive keys on the volume server `url`.

    `fids` lists them: the base fid, then `<fid>_1` ... `<fid>_<count-1>` (spec §1.3).
    `auth` is the `Authorization` header the master sent (a write JWT), if any.
    """

    fid: str
    url: str
    public_url: str
    count: int = 1
    auth: str = ""

    @property
    def fids(self) -> list[str]:
        return [self.fid, *(f"{self.fid}_{i}" for i in range(1, self.count))]


@dataclass(frozen=True, slots=True)
class UploadResult:
    """A stored blob. `url` is `<publicUrl>/<fid>` without a scheme, like `weed upload` prints;
    `size` is the file's length; `chunks` is how many chunks a manifest points at (0 when the
    blob is a single needle)."""

    fid: str
    url: str
    name: str = ""
    size: int = 0
    etag: str = ""
    mime: str = ""
    chunks: int = 0


@dataclass
class _AssignOptions:
    collection: str = ""
    replication: str = ""
    ttl: str = ""
    data_center: str = ""
    rack: str = ""
    disk: str = ""

    def params(self) -> dict[str, str]:
        pairs = {
            "collection": self.collection,
            "replication": self.replication,
            "ttl": self.ttl,
            "dataCenter": self.data_center,
            "rack": self.rack,
            "disk": self.disk,
        }
        return {k: v for k, v in pairs.items() if v}


@dataclass
class _NeedleMeta:
    name: str = ""
    mime: str = ""
    pairs: Mapping[str, str] = field(default_factory=dict)
    ttl: str = ""
    ts: int | None = None
    manifest: bool = False
    auth: str = ""


class _Source:
    """Sequential reads from bytes, a file or a stream, off the event loop where they block."""

    def __init__(self, source: UploadSource) -> None:
        self.name = ""
        self._view: memoryview | None = None
        self._stream: ReadableBinary | None = None
        self._owned: IO[bytes] | None = None
        self._pos = 0
        self.size: int | None
        if isinstance(source, bytes | bytearray | memoryview):
            self._view = memoryview(source).cast("B")
            self.size = len(self._view)
        elif isinstance(source, os.PathLike):
            path = Path(source)
            self.name = path.name
            self._owned = path.open("rb")
            self._stream = self._owned
            self.size = os.fstat(self._owned.fileno()).st_size
        elif isinstance(source, str):
            raise TypeError("pass a pathlib.Path for a file or bytes for data, not str")
        elif hasattr(source, "read"):
            self._stream = source
            stream_name = getattr(source, "name", "")
            self.name = os.path.basename(stream_name) if isinstance(stream_name, str) else ""
            self.size = _remaining(source)
        else:
            raise TypeError(f"cannot upload a {type(source).__name__}")

    async def read(self, n: int) -> bytes:
        """Up to `n` bytes; fewer only at the end."""
        if self._view is not None:
            piece = bytes(self._view[self._pos : self._pos + n])
            self._pos += len(piece)
            return piece
        assert self._stream is not None
        return await asyncio.to_thread(_read_full, self._stream, n)

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()


def _rewinder(source: UploadSource) -> Callable[[], None] | None:
    """How to read `source` again from where an upload started; None if it cannot be."""
    if isinstance(source, bytes | bytearray | memoryview | os.PathLike):
        return lambda: None  # read afresh by each attempt
    if not isinstance(source, io.IOBase):
        return None
    stream = source
    try:
        if not stream.seekable():
            return None
        start = stream.tell()
    except (OSError, ValueError):
        return None

    def rewind() -> None:
        stream.seek(start)

    return rewind


def _remaining(stream: ReadableBinary) -> int | None:
    if not isinstance(stream, io.IOBase):
        return None
    try:
        if not stream.seekable():
            return None
        here = stream.tell()
        end = stream.seek(0, os.SEEK_END)
        stream.seek(here)
    except (OSError, ValueError):
        return None
    return end - here


def _read_full(stream: ReadableBinary, n: int) -> bytes:
    parts: list[bytes] = []
    want = n
    while want > 0:
        piece = stream.read(want)
        if not piece:
            break
        parts.append(piece)
        want -= len(piece)
    return b"".join(parts)


class _Sink:
    """Where a download goes; counts bytes so an interrupted read can resume."""

    def __init__(
        self,
        write: Callable[[bytes], Awaitable[None]],
        progress: Progress | None,
        rewind: Callable[[], Awaitable[None]] | None = None,
    ):
        self._write = write
        self._progress = progress
        self._rewind = rewind
        self.written = 0
        self.crc = 0  # of every byte written, to check a resumed read's prefix
        self.total: int | None = None
        self.headers: Mapping[str, str] = {}

    async def restart(self) -> bool:
        """Drop what was written, if the destination allows it (True)."""
        if self._rewind is None:
            return False
        await self._rewind()
        self.written = self.crc = 0
        return True

    async def write(self, piece: bytes) -> None:
        await self._write(piece)
        self.crc = zlib.crc32(piece, self.crc)
        self.written += len(piece)
        if self._progress is not None:
            self._progress(len(piece), self.total)


def _file_rewinder(out: IO[bytes]) -> Callable[[], Awaitable[None]]:
    """Empties a temporary file this client opened itself, so a read can start over."""

    def truncate() -> None:
        out.seek(0)
        out.truncate()

    async def rewind() -> None:
        await asyncio.to_thread(truncate)

    return rewind


def _http(address: str, scheme: str = "http") -> str:
    return address.rstrip("/") if "://" in address else f"{scheme}://{address.rstrip('/')}"


def _base_fid(fid: str) -> str:
    """The fid a master signs a token for: a batch suffix `_N` opens with its base's token."""
    vid, _, rest = fid.partition(",")
    cut = rest.rfind("_")
    return f"{vid},{rest[:cut]}" if cut > 0 else fid


def _volume_id(fid: str) -> int:
    return int(parse_file_id(fid).volume_id)


def _quote(name: str) -> str:
    cleaned = name.replace("\r", "").replace("\n", "")
    return cleaned.replace("\\", "\\\\").replace('"', '\\"')


def _multipart(name: str, mime: str) -> tuple[bytes, bytes, str]:
    """(head, tail, content type) framing one file part named `file`."""
    boundary = secrets.token_hex(16)
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{_quote(name)}"\r\n'
        f"Content-Type: {mime or 'application/octet-stream'}\r\n\r\n"
    ).encode()
    return head, f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


async def _error_from(
    resp: aiohttp.ClientResponse, what: str, not_found: type[NotFound] = NotFound
) -> WeedError:
    """The `errors` class for a failed response (`client/http.py`'s one mapping), with the
    server's message."""
    message = error_message(await resp.read())
    headers = {"Retry-After": resp.headers["Retry-After"]} if "Retry-After" in resp.headers else {}
    return error_for(
        resp.status,
        f"{what}: HTTP {resp.status} {message or resp.reason}".rstrip(),
        narrow={404: not_found},
        headers=headers,
        url=str(resp.url),
    )


def _unreachable(what: str, url: str, exc: BaseException) -> ServerUnreachable:
    return ServerUnreachable(f"{what}: {type(exc).__name__}: {exc}".rstrip(": "), url=url)


class AsyncClient:
    """An asyncio client for one cluster. Create it inside a running event loop (or use
    `async with`); close it with `await close()`.

    `master` is `host:port` (a scheme is optional); several masters may be given comma-separated
    and are tried in turn when one is unreachable. `data_center` makes reads prefer replicas in
    that data center. `rng` and `clock` are injectable for deterministic tests. With an
    `https://` master, volume servers are reached over HTTPS too, verified with `ssl` (an
    `ssl.SSLContext`; default: the system's CAs).
    """

    def __init__(
        self,
        master: str,
        *,
        cache_ttl: float = 60.0,
        chunk_size: int | None = DEFAULT_CHUNK_SIZE,
        max_parallel_chunks: int = 4,
        connections: int = 64,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        assign_timeout: float = 10.0,
        use_public_url: bool = False,
        data_center: str = "",
        unreachable_ttl: float = 30.0,
        session: aiohttp.ClientSession | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] | None = None,
        ssl: _ssl.SSLContext | None = None,
    ) -> None:
        self._masters = [_http(m) for m in master.split(",") if m.strip()]
        if not self._masters:
            raise ValueError("no master address given")
        self._scheme = "https" if self._masters[0].startswith("https://") else "http"
        self._ssl = ssl
        # Which kinds of token this cluster asked for (a 401 seen): fetched before asking then.
        self._needs_token = {"write": False, "read": False}
        self._clock = clock or time.monotonic
        self.cache = LocationCache(cache_ttl, self._clock)
        self.unreachable_ttl = unreachable_ttl
        self._unreachable: dict[str, float] = {}  # volume server -> until when it is avoided
        self.chunk_size = chunk_size
        self.max_parallel_chunks = max(1, max_parallel_chunks)
        self.use_public_url = use_public_url
        self.data_center = data_center
        self.assign_timeout = assign_timeout
        self._rng = rng or random.Random()
        self._connections = connections
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self._session = session
        self._owns_session = session is None

    async def __aenter__(self) -> AsyncClient:
        self._http()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections, ssl=self._ssl or True),
                timeout=self._timeout,
            )
            self._owns_session = True
        return self._session

    # ---- master ---------------------------------------------------------------------------

    async def _master_get(
        self,
        path: str,
        params: Mapping[str, str],
        what: str,
        not_found: type[NotFound] = NotFound,
    ) -> tuple[dict[str, Any], Mapping[str, str]]:
        """JSON from the first reachable master; rotates the list so it sticks to that one."""
        last: WeedError | None = None
        for _ in range(len(self._masters)):
            url = self._masters[0] + path
            try:
                async with self._http().get(url, params=params) as resp:
                    check_master(resp.headers.get("Server", ""), self._masters[0].split("//")[-1])
                    if resp.status != 200:
                        raise await _error_from(resp, what, not_found)
                    obj = await resp.json(content_type=None)
                    return (obj if isinstance(obj, dict) else {}), dict(resp.headers)
            except _CONNECTION_ERRORS as exc:
                last = _unreachable(what, url, exc)
                self._masters.append(self._masters.pop(0))
        assert last is not None
        raise last

    async def cluster_status(self) -> dict[str, Any]:
        """The master's `/cluster/status` (`{"IsLeader": true, "Leader": ...}`): a cheap check
        that `master` is reachable and is a master (`ServerUnreachable`, `NotAMaster`)."""
        obj, _ = await self._master_get("/cluster/status", {}, "cluster status")
        return obj

    async def assign(
        self,
        count: int = 1,
        *,
        collection: str = "",
        replication: str = "",
        ttl: str = "",
        data_center: str = "",
        rack: str = "",
        disk: str = "",
    ) -> Assignment:
        """Reserve `count` consecutive file ids on one volume (`Assignment.fids`).

        While the master answers 503 (volumes being grown) this retries, honouring
        `Retry-After`, for up to `assign_timeout` seconds, then raises `NoWritableVolume`.
        """
        options = _AssignOptions(collection, replication, ttl, data_center, rack, disk)
        return await self._assign(count, options)

    async def _assign(self, count: int, options: _AssignOptions) -> Assignment:
        params = options.params()
        if count != 1:
            params["count"] = str(count)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.assign_timeout
        while True:
            try:
                obj, headers = await self._master_get("/dir/assign", params, "assign")
            except ServerUnreachable:
                raise
            except ServiceUnavailable as exc:
                delay = _retry_after(exc.headers.get("Retry-After"))
                if loop.time() + delay > deadline:
                    raise NoWritableVolume(exc.message, headers=exc.headers) from None
                await asyncio.sleep(delay)
                continue
            if not obj.get("fid"):
                raise WeedError(f"assign: {obj.get('error') or 'no fid in the answer'}")
            return Assignment(
                fid=str(obj["fid"]),
                url=str(obj.get("url") or ""),
                public_url=str(obj.get("publicUrl") or obj.get("url") or ""),
                count=int(obj.get("count") or count),
                auth=headers.get("Authorization", ""),
            )

    async def lookup(self, volume_id: int | str, *, refresh: bool = False) -> list[Location]:
        """Servers holding a volume (a vid or any fid of it), from the cache unless `refresh`."""
        if isinstance(volume_id, int):
            vid = volume_id
        else:
            vid = _volume_id(volume_id) if "," in volume_id else parse_volume_id(volume_id)
        cached = None if refresh else self.cache.get(vid)
        if cached is not None:
            return list(cached)
        obj, _ = await self._master_get(
            "/dir/lookup", {"volumeId": str(vid)}, f"lookup volume {vid}", VolumeNotFound
        )
        locations = [
            Location.from_json(o)
            for o in obj.get("locations") or []
            if isinstance(o, dict) and o.get("url")
        ]
        if not locations:
            raise VolumeNotFound(f"lookup volume {vid}: no locations", volume_id=vid)
        self.cache.put(vid, locations)
        return locations

    async def token(self, fid: str, *, read: bool = False) -> str:
        """The `Authorization` value the master issues for `fid` (a write token, or a read token
        with `read`), or "" when the cluster has no such key (`/dir/lookup?fileId=`)."""
        params = {"fileId": _base_fid(fid)}
        if read:
            params["read"] = "yes"
        _, headers = await self._master_get("/dir/lookup", params, f"token for {fid}", NotFound)
        return headers.get("Authorization", "")

    async def _token_if_needed(self, fid: str, kind: str) -> str:
        return await self.token(fid, read=kind == "read") if self._needs_token[kind] else ""

    async def _retry_with_token(self, fid: str, kind: str, used: str) -> str:
        """After a 401: the token to try again with ("" when there is nothing new to try)."""
        self._needs_token[kind] = True
        token = await self.token(fid, read=kind == "read")
        return token if token and token != used else ""

    def _address(self, location: Location) -> str:
        return location.public_url if self.use_public_url else location.url

    def _url(self, address: str, path: str) -> str:
        return f"{_http(address, self._scheme)}{path}"

    def _read_order(self, locations: Sequence[Location]) -> list[Location]:
        order = list(locations)
        self._rng.shuffle(order)
        if self.data_center:
            order.sort(key=lambda loc: loc.data_center != self.data_center)
        return order

    # ---- upload ---------------------------------------------------------------------------

    async def upload(
        self,
        source: UploadSource,
        *,
        name: str | None = None,
        mime: str = "",
        pairs: Mapping[str, str] | None = None,
        ttl: str = "",
        collection: str = "",
        replication: str = "",
        data_center: str = "",
        rack: str = "",
        disk: str = "",
        ts: int | None = None,
        chunk_size: int | EllipsisType | None = ...,
        progress: Progress | None = None,
    ) -> UploadResult:
        """Assign a fid and store `source` under it; chunked above `chunk_size` bytes.

        `name` defaults to the file's base name; `mime` to what the server derives from the name;
        `pairs` become `Seaweed-<key>` headers, served back as `<key>` headers; `ts` sets the
        last-modified time (Unix seconds); `ttl` (`3m`, `1d`...) expires the blob.
        """
        options = _AssignOptions(collection, replication, ttl, data_center, rack, disk)
        rewind = _rewinder(source)
        for attempt in (1, 2):
            assignment = await self._fresh_assign(options)
            url = self._assigned_url(assignment)
            try:
                result = await self._write(
                    assignment.fid,
                    source,
                    url,
                    options,
                    name,
                    mime,
                    pairs,
                    ts,
                    chunk_size,
                    progress,
                    assignment.auth,
                )
            except ServerUnreachable as exc:
                if attempt == 2 or rewind is None or not self._failed_at(exc, url):
                    raise
                rewind()
                continue
            return dataclasses.replace(result, url=f"{assignment.public_url}/{result.fid}")
        raise AssertionError("unreachable")

    async def write(
        self,
        fid: str,
        source: UploadSource,
        *,
        url: str | None = None,
        name: str | None = None,
        mime: str = "",
        pairs: Mapping[str, str] | None = None,
        ttl: str = "",
        collection: str = "",
        replication: str = "",
        data_center: str = "",
        ts: int | None = None,
        chunk_size: int | EllipsisType | None = ...,
        progress: Progress | None = None,
        auth: str = "",
    ) -> UploadResult:
        """Store `source` under an already assigned `fid` (e.g. `<fid>_2` of a batch assign).

        `url` is the volume server (`host:port`) to send to; by default the first location of
        the fid's volume. Chunks of a large source get their own assigns with the given
        collection, replication, ttl and data center.
        """
        parse_file_id(fid)
        if url is None:
            url = self._address((await self.lookup(fid))[0])
        options = _AssignOptions(collection, replication, ttl, data_center)
        try:
            return await self._write(
                fid, source, url, options, name, mime, pairs, ts, chunk_size, progress, auth
            )
        except ServerUnreachable as exc:
            if self._failed_at(exc, url):
                self.cache.invalidate(_volume_id(fid))
            raise

    async def _fresh_assign(self, options: _AssignOptions) -> Assignment:
        """One fid, steered past volume servers found unreachable lately: the master keeps
        naming a dead server until it has missed three heartbeats."""
        now = self._clock()
        self._unreachable = {u: t for u, t in self._unreachable.items() if t > now}
        assignment = await self._assign(1, options)
        for _ in range(_STEERING_ASSIGNS):
            if self._assigned_url(assignment) not in self._unreachable:
                break
            assignment = await self._assign(1, options)
        return assignment

    def _failed_at(self, exc: ServerUnreachable, url: str) -> bool:
        """Whether `exc` is `url` not answering; if so, it is avoided for a while."""
        if not str(exc.context.get("url", "")).startswith(f"{_http(url, self._scheme)}/"):
            return False
        self._unreachable[url] = self._clock() + self.unreachable_ttl
        return True

    def _assigned_url(self, assignment: Assignment) -> str:
        return assignment.public_url if self.use_public_url else assignment.url

    async def _write(
        self,
        fid: str,
        source: UploadSource,
        url: str,
        options: _AssignOptions,
        name: str | None,
        mime: str,
        pairs: Mapping[str, str] | None,
        ts: int | None,
        chunk_size: int | EllipsisType | None,
        progress: Progress | None,
        auth: str,
    ) -> UploadResult:
        limit = self.chunk_size if chunk_size is ... else chunk_size
        src = _Source(source)
        try:
            meta = _NeedleMeta(
                name if name is not None else src.name,
                mime,
                pairs or {},
                options.ttl,
                ts,
                auth=auth,
            )
            if limit is None or (src.size is not None and src.size <= limit):
                return await self._write_whole(fid, url, src, meta, progress)
            if src.size is not None:
                return await self._write_chunked(fid, url, src, [], limit, meta, options, progress)
            first = await src.read(limit)
            second = await src.read(limit)
            if not second:
                result = await self._post(fid, url, first, meta)
                if progress is not None:
                    progress(len(first), len(first))
                return result
            return await self._write_chunked(
                fid, url, src, [first, second], limit, meta, options, progress
            )
        finally:
            src.close()

    async def _write_whole(
        self, fid: str, url: str, src: _Source, meta: _NeedleMeta, progress: Progress | None
    ) -> UploadResult:
        if src.size is not None and src.size <= DEFAULT_CHUNK_SIZE:
            data = await src.read(src.size)
            result = await self._post(fid, url, data, meta)
            if progress is not None:
                progress(len(data), len(data))
            return result
        return await self._post(fid, url, src, meta, progress)

    async def _write_chunked(
        self,
        fid: str,
        url: str,
        src: _Source,
        pending: list[bytes],
        limit: int,
        meta: _NeedleMeta,
        options: _AssignOptions,
        progress: Progress | None,
    ) -> UploadResult:
        """Upload chunks in parallel (bounded), then the manifest; undo the chunks on failure."""
        slots = asyncio.Semaphore(self.max_parallel_chunks)
        done: list[ChunkInfo] = []
        tasks: list[asyncio.Task[None]] = []
        chunk_meta = _NeedleMeta(ttl=meta.ttl, ts=meta.ts)

        async def one(index: int, offset: int, data: bytes) -> None:
            try:
                for attempt in (1, 2):
                    assignment = await self._fresh_assign(options)
                    chunk = _NeedleMeta(
                        f"{meta.name}-{index + 1}" if meta.name else "",
                        ttl=chunk_meta.ttl,
                        ts=chunk_meta.ts,
                        auth=assignment.auth,
                    )
                    url = self._assigned_url(assignment)
                    try:
                        await self._post(assignment.fid, url, data, chunk)
                        break
                    except ServerUnreachable as exc:
                        if attempt == 2 or not self._failed_at(exc, url):
                            raise
                done.append(ChunkInfo(assignment.fid, offset, len(data)))
                if progress is not None:
                    progress(len(data), src.size)
            finally:
                slots.release()

        offset = 0
        try:
            index = 0
            while True:
                data = pending.pop(0) if pending else await src.read(limit)
                if not data:
                    break
                await slots.acquire()
                if any(t.done() and t.exception() for t in tasks):
                    slots.release()
                    break
                tasks.append(asyncio.create_task(one(index, offset, data)))
                index += 1
                offset += len(data)
            await asyncio.gather(*tasks)
            manifest = ChunkManifest(
                meta.name,
                meta.mime or "application/octet-stream",
                offset,
                tuple(sorted(done, key=lambda c: c.offset)),
            )
            manifest_meta = _NeedleMeta(
                meta.name,
                "application/json",
                meta.pairs,
                meta.ttl,
                meta.ts,
                manifest=True,
                auth=meta.auth,
            )
            result = await self._post(fid, url, encode_manifest(manifest), manifest_meta)
        except BaseException as exc:
            # Chunks still in flight finish (unless we are being cancelled) so that every
            # chunk that reached a server is known and deleted, not orphaned.
            if isinstance(exc, asyncio.CancelledError):
                for task in tasks:
                    task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.gather(*(self._delete_quietly(c.fid) for c in done))
            raise
        return UploadResult(
            fid, result.url, meta.name, offset, result.etag, manifest.mime, len(done)
        )

    async def _delete_quietly(self, fid: str) -> None:
        with contextlib.suppress(WeedError):
            await self.delete(fid)

    async def _post(
        self,
        fid: str,
        url: str,
        body: bytes | _Source,
        meta: _NeedleMeta,
        progress: Progress | None = None,
    ) -> UploadResult:
        """One multipart POST of a needle to `url`."""
        head, tail, content_type = _multipart(meta.name, meta.mime)
        headers = {"Content-Type": content_type}
        headers.update({f"Seaweed-{k}": v for k, v in meta.pairs.items()})
        if meta.auth:
            headers["Authorization"] = meta.auth
        params: dict[str, str] = {}
        if meta.ttl:
            params["ttl"] = meta.ttl
        if meta.ts is not None:
            params["ts"] = str(meta.ts)
        if meta.manifest:
            params["cm"] = "true"
        size = len(body) if isinstance(body, bytes) else body.size or 0
        if isinstance(body, bytes):
            if size > _READ_PIECE:
                headers["Content-Length"] = str(len(head) + size + len(tail))
        elif body.size is not None:
            headers["Content-Length"] = str(len(head) + body.size + len(tail))
        target = self._url(url, f"/{fid}")
        if not meta.auth and (not isinstance(body, bytes) or self._needs_token["write"]):
            # A stream cannot be sent twice: ask for its token first (no header without a key).
            auth = await self.token(fid)
            if auth:
                headers["Authorization"] = auth
        for retried in (False, True):
            try:
                async with self._http().post(
                    target,
                    data=_post_data(head, body, tail, progress),
                    headers=headers,
                    params=params,
                ) as resp:
                    if resp.status == 401 and not retried and isinstance(body, bytes):
                        used = headers.get("Authorization", "")
                        retry = await self._retry_with_token(fid, "write", used)
                        if retry:
                            headers["Authorization"] = retry
                            continue
                    if resp.status == 204:
                        etag = resp.headers.get("ETag", "").strip('"')
                        return UploadResult(fid, f"{url}/{fid}", meta.name, size, etag, meta.mime)
                    if resp.status not in (200, 201):
                        raise await _error_from(resp, f"upload {fid}")
                    obj = await resp.json(content_type=None)
                    break
            except _CONNECTION_ERRORS as exc:
                raise _unreachable(f"upload {fid}", target, exc) from exc
        return UploadResult(
            fid,
            f"{url}/{fid}",
            str(obj.get("name") or ""),
            int(obj.get("size") or size),
            str(obj.get("eTag") or ""),
            str(obj.get("mime") or ""),
        )

    # ---- download -------------------------------------------------------------------------

    async def download(self, fid: str, *, progress: Progress | None = None) -> bytes:
        """The blob's bytes (a chunked file is reassembled by the volume server)."""
        buffer = bytearray()

        async def append(piece: bytes) -> None:
            buffer.extend(piece)

        async def clear() -> None:
            buffer.clear()

        await self._read(fid, _Sink(append, progress, clear))
        return bytes(buffer)

    async def download_to(
        self,
        fid: str,
        destination: os.PathLike[str] | IO[bytes],
        *,
        progress: Progress | None = None,
    ) -> int:
        """Stream the blob into a file path or a writable binary stream; returns its length.

        A path is written to a temporary sibling and renamed into place when complete, so a
        failed download never leaves a partial file under the final name.
        """
        if isinstance(destination, os.PathLike):
            final = Path(destination)
            partial = final.with_name(f".{final.name}.{secrets.token_hex(4)}.part")
            try:
                with partial.open("wb") as out:

                    async def write_part(piece: bytes) -> None:
                        await asyncio.to_thread(out.write, piece)

                    part_sink = _Sink(write_part, progress, _file_rewinder(out))
                    await self._read(fid, part_sink)
                    written = part_sink.written
                partial.replace(final)
            finally:
                partial.unlink(missing_ok=True)
            return written
        stream = destination

        async def write(piece: bytes) -> None:
            await asyncio.to_thread(stream.write, piece)

        sink = _Sink(write, progress)
        await self._read(fid, sink)
        return sink.written

    async def save(
        self,
        fid: str,
        directory: os.PathLike[str] | str = ".",
        *,
        name: str | None = None,
        progress: Progress | None = None,
    ) -> Path:
        """Download into `directory` like `weed download`: the file is named `name`, else the
        name the server sends (`Content-Disposition`), else the fid. Written to a temporary
        file first and renamed when complete; returns the final path."""
        folder = Path(directory)
        partial = folder / f".{fid.replace(',', '_')}.{secrets.token_hex(4)}.part"
        try:
            with partial.open("wb") as out:

                async def write(piece: bytes) -> None:
                    await asyncio.to_thread(out.write, piece)

                sink = _Sink(write, progress, _file_rewinder(out))
                await self._read(fid, sink)
            final = folder / (name or _served_name(sink.headers) or fid)
            partial.replace(final)
        finally:
            partial.unlink(missing_ok=True)
        return final

    async def download_many(self, fids: Iterable[str]) -> dict[str, bytes | None]:
        """Many blobs at once: {fid: bytes}, None for a blob that does not exist (other
        failures raise, as `download` does). The fids are sent to the servers holding them
        in `POST /batch/read` requests of up to 1,000 (weedpy; `client/batch.py`), the
        servers concurrently; a server without that endpoint (weed) is read one GET per fid.
        A fid given twice is fetched once. Malformed fids raise `InvalidFileId` first."""
        blobs = await self.download_many_named(fids)
        return {fid: None if blob is None else blob.data for fid, blob in blobs.items()}

    async def download_many_named(self, fids: Iterable[str]) -> dict[str, batch.Blob | None]:
        """`download_many`, each blob with the file name its server sent (`Blob(data, name)`;
        `weedpy download` saves files under those names)."""
        order = list(dict.fromkeys(fids))
        for fid in order:
            parse_file_id(fid)

        async def locate(vid: int) -> list[str]:
            return [self._address(loc) for loc in self._read_order(await self.lookup(vid))]

        async def one(fid: str) -> batch.Blob:
            buffer = bytearray()

            async def append(piece: bytes) -> None:
                buffer.extend(piece)

            async def clear() -> None:
                buffer.clear()

            sink = _Sink(append, None, clear)
            await self._read(fid, sink)
            return batch.Blob(bytes(buffer), _served_name(sink.headers))

        return await batch.download_many(
            order,
            locate=locate,
            session=self._http(),
            url=lambda address: self._url(address, "/batch/read"),
            download=one,
        )

    async def _read(self, fid: str, sink: _Sink) -> None:
        """GET the fid from its replicas in turn until one delivers every byte.

        A failed replica drops the volume from the location cache; locations not yet tried
        are then fetched from the master once more. A read that broke mid-stream resumes with
        a Range request.
        """
        vid = _volume_id(fid)
        tried: set[Location] = set()
        failures: list[WeedError] = []
        auth = await self._token_if_needed(fid, "read")
        for refresh in (False, True):
            locations = await self.lookup(vid, refresh=refresh)
            fresh = [loc for loc in self._read_order(locations) if loc not in tried]
            for location in fresh:
                tried.add(location)
                try:
                    try:
                        await self._read_from(self._address(location), fid, sink, auth)
                    except Unauthorized:
                        auth = await self._retry_with_token(fid, "read", auth)
                        if not auth:
                            raise
                        await self._read_from(self._address(location), fid, sink, auth)
                    return
                except BadRequest:
                    raise
                except WeedError as exc:
                    failures.append(exc)
            self.cache.invalidate(vid)
            if refresh or not failures:
                break
        missing = [e for e in failures if isinstance(e, NotFound)]
        if missing:
            raise NeedleNotFound("; ".join(e.message for e in failures), volume_id=vid, fid=fid)
        raise failures[-1] if failures else NeedleNotFound(f"read {fid}: no replica", fid=fid)

    async def _read_from(self, address: str, fid: str, sink: _Sink, auth: str = "") -> None:
        url = self._url(address, f"/{fid}")
        # identity: lengths must match what we count; the server gunzips stored gzip data.
        headers = {"Accept-Encoding": "identity"}
        if auth:
            headers["Authorization"] = auth
        # No Range on a resume: the bytes already delivered came from a replica that broke
        # off, possibly because they failed its CRC; they must match this replica's start.
        if sink.written:
            await sink.restart()
        resume = sink.written
        prefix_crc = 0
        try:
            async with self._http().get(url, headers=headers) as resp:
                if resp.status not in (200, 206):
                    raise await _error_from(resp, f"read {fid}", NeedleNotFound)
                skip = resume if resp.status == 200 else 0
                expected = resp.content_length
                total = (expected + resume - skip) if expected is not None else None
                sink.total = total
                sink.headers = resp.headers
                async for piece in resp.content.iter_chunked(_READ_PIECE):
                    if skip:
                        cut = min(skip, len(piece))
                        prefix_crc = zlib.crc32(piece[:cut], prefix_crc)
                        piece, skip = piece[cut:], skip - cut
                        if not skip and prefix_crc != sink.crc:
                            raise CorruptNeedle(
                                f"read {fid}: the first {resume} bytes, "
                                "delivered by another replica, differ here",
                                url=url,
                            )
                        if not piece:
                            continue
                    await sink.write(piece)
        except _CONNECTION_ERRORS as exc:
            raise _unreachable(f"read {fid}", url, exc) from exc
        if total is not None and sink.written != total:
            raise ServerUnreachable(f"read {fid}: got {sink.written} of {total} bytes", url=url)

    # ---- delete ---------------------------------------------------------------------------

    async def delete(self, fid: str) -> int:
        """Delete a blob (a chunk manifest's chunks too); returns the size the server reports.

        The first reachable replica deletes it and replicates the delete to the others.
        """
        vid = _volume_id(fid)
        failures: list[WeedError] = []
        auth = await self._token_if_needed(fid, "write")
        for location in await self.lookup(vid):
            url = self._url(self._address(location), f"/{fid}")
            try:
                try:
                    return await self._delete_at(url, fid, auth)
                except Unauthorized:
                    auth = await self._retry_with_token(fid, "write", auth)
                    if not auth:
                        raise
                    return await self._delete_at(url, fid, auth)
            except _CONNECTION_ERRORS as exc:
                failures.append(_unreachable(f"delete {fid}", url, exc))
        self.cache.invalidate(vid)
        raise failures[-1]

    async def _delete_at(self, url: str, fid: str, auth: str) -> int:
        headers = {"Authorization": auth} if auth else None
        async with self._http().delete(url, headers=headers) as resp:
            if resp.status in (200, 202):
                obj = await resp.json(content_type=None)
                return int((obj or {}).get("size") or 0)
            raise await _error_from(resp, f"delete {fid}", NeedleNotFound)


def _post_data(
    head: bytes, body: bytes | _Source, tail: bytes, progress: Progress | None
) -> bytes | AsyncIterator[bytes]:
    """A multipart upload's body: one bytes object when small, else pieces (aiohttp warns that
    one large bytes body blocks the loop), or the source streamed."""
    if isinstance(body, bytes):
        if len(body) <= _READ_PIECE:
            return head + body + tail
        return _pieces(head, body, tail)
    return _stream_body(head, body, tail, progress)


async def _pieces(head: bytes, body: bytes, tail: bytes) -> AsyncIterator[bytes]:
    yield head
    view = memoryview(body)
    for start in range(0, len(view), _READ_PIECE):
        yield view[start : start + _READ_PIECE]  # type: ignore[misc]
    yield tail


async def _stream_body(
    head: bytes, src: _Source, tail: bytes, progress: Progress | None
) -> AsyncIterator[bytes]:
    yield head
    while True:
        piece = await src.read(_READ_PIECE)
        if not piece:
            break
        yield piece
        if progress is not None:
            progress(len(piece), src.size)
    yield tail


_served_name = batch.served_name


def _retry_after(value: str | None) -> float:
    try:
        seconds = float(value) if value else 0.2
    except ValueError:
        seconds = 0.2
    return min(max(seconds, 0.05), 2.0)


_T = TypeVar("_T")


class Client:
    """A blocking facade over `AsyncClient`, for scripts and threads without asyncio.

    It runs a private event loop on a daemon thread and submits each call to it, so it works
    from any thread and even where an event loop is already running (e.g. Jupyter), which
    `asyncio.run` per call would not, and it keeps one connection pool across calls. Calls from
    several threads are safe and run concurrently on that loop. Progress callbacks run on the
    loop's thread. Always `close()` it (or use `with`). Keyword arguments are those of
    `AsyncClient`, but for `session` (an aiohttp session belongs to the loop it was made on).
    """

    def __init__(
        self,
        master: str,
        *,
        cache_ttl: float = 60.0,
        chunk_size: int | None = DEFAULT_CHUNK_SIZE,
        max_parallel_chunks: int = 4,
        connections: int = 64,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        assign_timeout: float = 10.0,
        use_public_url: bool = False,
        data_center: str = "",
        unreachable_ttl: float = 30.0,
        rng: random.Random | None = None,
        clock: Callable[[], float] | None = None,
        ssl: _ssl.SSLContext | None = None,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="weedpy-client", daemon=True
        )
        self._thread.start()
        self._closed = False

        async def make() -> AsyncClient:
            return AsyncClient(
                master,
                cache_ttl=cache_ttl,
                chunk_size=chunk_size,
                max_parallel_chunks=max_parallel_chunks,
                connections=connections,
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                assign_timeout=assign_timeout,
                use_public_url=use_public_url,
                data_center=data_center,
                unreachable_ttl=unreachable_ttl,
                rng=rng,
                clock=clock,
                ssl=ssl,
            )

        try:
            self._client = self._run(make())
        except BaseException:
            self._stop_loop()
            raise

    def _run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        if self._closed:
            coro.close()
            raise RuntimeError("the client is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    @property
    def cache(self) -> LocationCache:
        return self._client.cache

    def assign(
        self,
        count: int = 1,
        *,
        collection: str = "",
        replication: str = "",
        ttl: str = "",
        data_center: str = "",
        rack: str = "",
        disk: str = "",
    ) -> Assignment:
        """See `AsyncClient.assign`."""
        return self._run(
            self._client.assign(
                count,
                collection=collection,
                replication=replication,
                ttl=ttl,
                data_center=data_center,
                rack=rack,
                disk=disk,
            )
        )

    def cluster_status(self) -> dict[str, Any]:
        """See `AsyncClient.cluster_status`."""
        return self._run(self._client.cluster_status())

    def lookup(self, volume_id: int | str, *, refresh: bool = False) -> list[Location]:
        """See `AsyncClient.lookup`."""
        return self._run(self._client.lookup(volume_id, refresh=refresh))

    def upload(
        self,
        source: UploadSource,
        *,
        name: str | None = None,
        mime: str = "",
        pairs: Mapping[str, str] | None = None,
        ttl: str = "",
        collection: str = "",
        replication: str = "",
        data_center: str = "",
        rack: str = "",
        disk: str = "",
        ts: int | None = None,
        chunk_size: int | EllipsisType | None = ...,
        progress: Progress | None = None,
    ) -> UploadResult:
        """See `AsyncClient.upload`."""
        return self._run(
            self._client.upload(
                source,
                name=name,
                mime=mime,
                pairs=pairs,
                ttl=ttl,
                collection=collection,
                replication=replication,
                data_center=data_center,
                rack=rack,
                disk=disk,
                ts=ts,
                chunk_size=chunk_size,
                progress=progress,
            )
        )

    def write(
        self,
        fid: str,
        source: UploadSource,
        *,
        url: str | None = None,
        name: str | None = None,
        mime: str = "",
        pairs: Mapping[str, str] | None = None,
        ttl: str = "",
        collection: str = "",
        replication: str = "",
        data_center: str = "",
        ts: int | None = None,
        chunk_size: int | EllipsisType | None = ...,
        progress: Progress | None = None,
        auth: str = "",
    ) -> UploadResult:
        """See `AsyncClient.write`."""
        return self._run(
            self._client.write(
                fid,
                source,
                url=url,
                name=name,
                mime=mime,
                pairs=pairs,
                ttl=ttl,
                collection=collection,
                replication=replication,
                data_center=data_center,
                ts=ts,
                chunk_size=chunk_size,
                progress=progress,
                auth=auth,
            )
        )

    def token(self, fid: str, *, read: bool = False) -> str:
        """See `AsyncClient.token`."""
        return self._run(self._client.token(fid, read=read))

    def download(self, fid: str, *, progress: Progress | None = None) -> bytes:
        """See `AsyncClient.download`."""
        return self._run(self._client.download(fid, progress=progress))

    def download_many(self, fids: Iterable[str]) -> dict[str, bytes | None]:
        """See `AsyncClient.download_many`."""
        return self._run(self._client.download_many(list(fids)))

    def download_many_named(self, fids: Iterable[str]) -> dict[str, batch.Blob | None]:
        """See `AsyncClient.download_many_named`."""
        return self._run(self._client.download_many_named(list(fids)))

    def download_to(
        self,
        fid: str,
        destination: os.PathLike[str] | IO[bytes],
        *,
        progress: Progress | None = None,
    ) -> int:
        """See `AsyncClient.download_to`."""
        return self._run(self._client.download_to(fid, destination, progress=progress))

    def save(
        self,
        fid: str,
        directory: os.PathLike[str] | str = ".",
        *,
        name: str | None = None,
        progress: Progress | None = None,
    ) -> Path:
        """See `AsyncClient.save`."""
        return self._run(self._client.save(fid, directory, name=name, progress=progress))

    def delete(self, fid: str) -> int:
        """See `AsyncClient.delete`."""
        return self._run(self._client.delete(fid))

    def close(self) -> None:
        if self._closed:
            return
        try:
            self._run(self._client.close())
        finally:
            self._closed = True
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
