"""GET and HEAD of blobs (spec §3.3, §3.9, §13.2, §15.2).

`BlobReader.get` is the hot path: a plain function (no coroutine) that parses the URL, reads
the needle through storage (one index lookup, one pread) and answers with pre-built header
bytes. Only the rarer cases return an awaitable: image transforms (run off the loop), chunk
manifests (chunks fetched from their volumes), large needles (streamed with chunked preads off
the loop) and volumes this server does not hold (proxy or redirect, per `-readMode`).

Plain GETs (no query, no Range or conditional header) of small needles keep their answer by
URL path with the record bytes it was built from (`Volume.read_checked`); a repeat still looks
the key up and preads the record, and reuses the answer only when the bytes are identical
(`Volume.is_current`), so overwrites, deletes and corruption are seen exactly as without it.

Read failures answer with the reference's statuses — 400 for a malformed id, 404 for an unknown,
deleted, expired or wrong-cookie needle, 500 for a corrupt one — and a JSON error body where the
reference sends none (docs/compat.md); a corrupt needle's says `... is corrupt: <reason>`.

A 2xx only ever carries bytes of a needle that passed its CRC. Small needles are read whole and
checked before any answer (ranges are cut from the checked data). A large needle is checked
whole off the loop before its headers go out (`Volume.verify`, remembered per record, so a hot
blob is read from disk twice only on its first read), then streamed; a whole-needle stream is
checked again as it goes, so bytes that rotted since cut the answer short rather than complete
it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import replace

import orjson

from seaweed_py.client.cluster import Outgoing, bearer
from seaweed_py.client.http import HttpClient, Timeout
from seaweed_py.client.master_link import MasterLink
from seaweed_py.errors import (
    CorruptNeedle,
    NeedleNotFound,
    NotFound,
    ServerUnreachable,
    ServiceUnavailable,
    VolumeNotFound,
    WeedError,
)
from seaweed_py.formats.chunk_manifest import ChunkManifest, load_chunk_manifest
from seaweed_py.formats.fid import FileId
from seaweed_py.formats.needle import FLAG_CHUNK_MANIFEST, FLAG_GZIP, FLAG_HAS_TTL, Needle
from seaweed_py.httpkit.request import Request
from seaweed_py.httpkit.response import JSON_HEADERS, Response
from seaweed_py.storage.store import Store
from seaweed_py.storage.volume import CheckedRecord, NeedleLocation, Volume
from seaweed_py.volume.conditional import is_not_modified
from seaweed_py.volume.images import ImageOps, transform_image
from seaweed_py.volume.mime import detect_content_type, extension
from seaweed_py.volume.ranges import ByteRange, multipart_byteranges, plan_ranges
from seaweed_py.volume.render import (
    content_disposition,
    content_type_for,
    last_modified_line,
    override_headers,
    pair_lines,
    parse_bool,
)
from seaweed_py.volume.repair import NeedleRepair
from seaweed_py.volume.stats import Stats
from seaweed_py.volume.tier_reads import TierReads
from seaweed_py.volume.upload import gunzip
from seaweed_py.volume.urls import BlobPath, parse_blob_path

__all__ = ["BlobReader", "not_found"]

log = logging.getLogger(__name__)

_SERVER_ERROR = Response(500, raw_headers=JSON_HEADERS, body=b'{"error":"internal error"}')
_GZIP_MAGIC = b"\x1f\x8b"
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "server",
        "date",
        "te",
        "trailer",
        "upgrade",
        "proxy-connection",
    }
)
_META_CACHE_SIZE = 4096
# Request headers that change a GET's answer (besides the needle): such reads are not cached.
_PLAIN = frozenset(("range", "if-modified-since", "if-none-match"))
# Needles whose answer depends on more than the request and the record: the clock (TTL) or
# Accept-Encoding (gzip).
_UNSTABLE_FLAGS = FLAG_HAS_TTL | FLAG_GZIP | FLAG_CHUNK_MANIFEST
_ANSWER_MAX_SIZE = 64 << 10  # largest needle body Size whose answer is kept
_ANSWER_BUDGET = 64 << 20  # bytes of kept answers (records and bodies) before they are dropped
_ANSWER_OVERHEAD = 400  # bytes of objects per kept answer, roughly
# Needles with a larger body are streamed from disk in chunks instead of read whole.
_STREAM_THRESHOLD = 1 << 20
_SNIFF_SIZE = 512  # bytes Go's http.DetectContentType looks at
_CHUNK_TIMEOUT = Timeout(total=300, connect=3)
_CHUNK_OK = frozenset({200, 206})
_CHUNK_NARROW: dict[int, type[WeedError]] = {404: NeedleNotFound}


# (volume id, the record it was built from, answer) of a kept answer
_Known = tuple[int, CheckedRecord, Response]


class BlobReader:
    """Answers blob reads for one volume server."""

    def __init__(
        self,
        store: Store,
        link: MasterLink | None,
        *,
        self_url: Callable[[], str],
        read_mode: str,
        stats: Stats,
        clock: Callable[[], float] = time.time,
        out: Outgoing | None = None,
        tier: TierReads | None = None,
        repair: NeedleRepair | None = None,
    ) -> None:
        self._store = store
        self._repair = repair
        self._repairs: set[asyncio.Task[bool]] = set()
        self._link = link
        self._out = out or Outgoing()
        self._tier = tier or TierReads()
        # Proxied reads and chunks of manifests, relayed as stored (never inflated).
        self._http = HttpClient(self._out, _CHUNK_TIMEOUT, decompress=False)
        self._self_url = self_url
        self._read_mode = read_mode
        self._stats = stats
        self._clock = clock
        self._meta: dict[tuple[str, bytes, bytes], tuple[str, str, bytes]] = {}
        # Answers to plain GETs of small needles by URL path, each with the record it was made
        # from: a repeated read compares the record's bytes (one pread, as always) instead of
        # decoding it and building the answer again. Any change to the record, including
        # corruption, misses and takes the checked path.
        self._answers: dict[str, _Known] = {}
        self._answer_bytes = 0

    async def start(self) -> None:
        await self._http.start()

    async def close(self) -> None:
        await self._http.close()

    # ------------------------------------------------------------------ entry point

    def get(self, req: Request) -> Response | Awaitable[Response]:
        plain = req.method == "GET" and not req.query_string and _PLAIN.isdisjoint(req.headers)
        if plain:
            known = self._answers.get(req.path)
            if known is not None:
                vid, kept, known_answer = known
                held = self._store.get(vid)
                # The answer is a function of the request (same path, plain) and of the
                # record's bytes: identical bytes where the index still points give it.
                # (Never for a volume tiered since: its bytes are behind the network.)
                if held is not None and held.remote is None and held.is_current(kept):
                    return known_answer
        path = parse_blob_path(req.path)
        volume = self._store.get(path.volume_id)
        if volume is None:
            return self._not_local(req, path)
        if volume.remote is not None:
            return self._remote_get(req, path, volume)
        hit = volume.lookup(path.key)
        if hit is not None and hit.size > _STREAM_THRESHOLD:
            return self._serve_large(req, path, volume)
        checked: CheckedRecord | None = None
        try:
            if hit is None:
                # Spec §3.3: `readDeleted=true` reads a deleted needle's last live version.
                needle = volume.read(
                    path.key,
                    path.cookie,
                    read_deleted=bool(req.query_string) and req.query.get("readDeleted") == "true",
                )
            elif plain and hit.size <= _ANSWER_MAX_SIZE:
                needle, checked = volume.read_checked(path.key, path.cookie, hit)
            else:
                needle = volume.read_at(path.key, path.cookie, hit)
        except NotFound:
            return not_found(req.path)
        except CorruptNeedle as exc:
            return self._corrupt(req, exc)
        if needle.flags & FLAG_HAS_TTL and needle.append_at_ns and self._expired(needle):
            return not_found(req.path)
        answer = self.serve(req, path, needle)
        if (
            checked is not None
            and type(answer) is Response
            and answer.status == 200
            and not needle.flags & _UNSTABLE_FLAGS
        ):
            self._remember(req.path, (path.volume_id, checked, answer))
        return answer

    async def _remote_get(self, req: Request, path: BlobPath, volume: Volume) -> Response:
        """A read of a tiered volume (storage/volume_tier.py): the index is local, the record
        one ranged GET (or a cache hit), coalesced with neighbouring concurrent reads
        (`TierReads`); a large needle streams in ranges. Nothing blocks the loop; an unreachable
        bucket answers 502."""
        hit = volume.lookup(path.key)
        if hit is not None and hit.size > _STREAM_THRESHOLD:
            return await self._serve_large(req, path, volume)
        try:
            if hit is None:
                read_deleted = bool(req.query_string) and req.query.get("readDeleted") == "true"
                needle = await asyncio.to_thread(
                    volume.read, path.key, path.cookie, read_deleted=read_deleted
                )
            else:
                record = await self._tier.read(volume, *volume.record_span(hit))
                needle = volume.read_at(path.key, path.cookie, hit, record)
        except NotFound:
            return not_found(req.path)
        except CorruptNeedle as exc:
            return await self._corrupt_later(req, exc)
        if needle.flags & FLAG_HAS_TTL and needle.append_at_ns and self._expired(needle):
            return not_found(req.path)
        answer = self.serve(req, path, needle)
        return answer if isinstance(answer, Response) else await answer

    async def whole_file(self, manifest: ChunkManifest) -> bytes:
        """Every byte of the file a chunk manifest lists, its chunks fetched in order."""
        size = manifest.size or sum(c.size for c in manifest.chunks)
        return b"".join([piece async for piece in self._chunks(manifest, 0, size)])

    def _remember(self, url_path: str, known: _Known) -> None:
        body = known[2].body
        size = len(url_path) + len(known[1].record) + (len(body) if isinstance(body, bytes) else 0)
        self._answer_bytes += size + _ANSWER_OVERHEAD
        if self._answer_bytes > _ANSWER_BUDGET:
            self._answers.clear()
            self._answer_bytes = size + _ANSWER_OVERHEAD
        self._answers[url_path] = known

    def _expired(self, needle: Needle) -> bool:
        """Spec §3.4: a TTL needle is gone once its TTL has passed since it was appended."""
        ttl = needle.ttl.seconds
        return bool(ttl) and self._clock() >= needle.append_at_ns / 1e9 + ttl

    # ------------------------------------------------------------------ one needle

    def serve(self, req: Request, path: BlobPath, needle: Needle) -> Response | Awaitable[Response]:
        query = req.query if req.query_string else _EMPTY_QUERY
        if needle.flags & FLAG_CHUNK_MANIFEST and query.get("cm") != "false":
            return self._serve_manifest(req, path, needle, query)
        prepared = self._prepare(req, path, needle, query)
        if isinstance(prepared, Response):
            return prepared
        head, filename, content_type = prepared
        data = needle.data
        ops = ImageOps.from_query(query, path.ext or extension(filename)) if query else None
        sniff = not query.get("response-content-encoding")  # see _sniffs
        if needle.flags & FLAG_GZIP:
            if (
                ops is None
                and "gzip" in req.headers.get("accept-encoding", "")
                and data[:2] == _GZIP_MAGIC
            ):
                if sniff:  # else the override already names the encoding, once
                    head += b"Content-Encoding: gzip\r\n"
                sniff = False
            else:
                data = gunzip(data)
        if ops is not None:
            return self._serve_image(req, head, data, content_type, ops)
        return _respond(req, head, data, content_type, sniff)

    def _prepare(
        self,
        req: Request,
        path: BlobPath,
        needle: Needle,
        query: Mapping[str, str],
        stored_name: bytes | None = None,
        stored_mime: bytes | None = None,
    ) -> Response | tuple[bytes, str, str]:
        """The 304, or (header lines, file name, Content-Type) every answer for `needle` shares.

        `stored_name` and `stored_mime` replace the needle's own (a chunk manifest's describe
        the file it lists)."""
        headers = req.headers
        etag = b'"%08x"' % needle.checksum
        head = b"Accept-Ranges: bytes\r\nEtag: " + etag + b"\r\n"
        if needle.last_modified:
            head += last_modified_line(needle.last_modified)
        if ("if-modified-since" in headers or "if-none-match" in headers) and is_not_modified(
            headers.get("if-modified-since"),
            headers.get("if-none-match"),
            needle.last_modified,
            etag.decode(),
        ):
            return Response(304, raw_headers=head)
        if needle.pairs:
            head += pair_lines(needle.pairs)
        name = needle.name if stored_name is None else stored_name
        mime = needle.mime if stored_mime is None else stored_mime
        meta = self._meta.get((path.filename, name, mime))
        if meta is None:
            meta = self._describe(path.filename, name, mime)
        filename, content_type, inline = meta
        if not query:
            return head + inline, filename, content_type
        if filename and "response-content-disposition" not in query:
            head += (
                _header("Content-Disposition", content_disposition(filename, True))
                if parse_bool(query.get("dl", ""))
                else inline
            )
        for header, value in override_headers(query).items():
            if header == "Content-Type":
                content_type = value
            else:
                head += _header(header, value)
        return head, filename, content_type

    # ------------------------------------------------------------------ large needles

    async def _serve_large(self, req: Request, path: BlobPath, volume: Volume) -> Response:
        """A needle above `_STREAM_THRESHOLD`: headers from its metadata, data streamed in
        chunks read off the loop. Compressed needles, manifests and image transforms need the
        whole data and take the in-memory path (read off the loop too)."""
        try:
            if volume.remote is None:
                loc = volume.read_meta(path.key, path.cookie)
            else:
                loc = await asyncio.to_thread(volume.read_meta, path.key, path.cookie)
        except NotFound:
            return not_found(req.path)
        except CorruptNeedle as exc:
            return await self._corrupt_later(req, exc)
        needle = loc.needle
        if needle.flags & FLAG_HAS_TTL and needle.append_at_ns and self._expired(needle):
            return not_found(req.path)
        query = req.query if req.query_string else _EMPTY_QUERY
        whole = needle.flags & (FLAG_GZIP | FLAG_CHUNK_MANIFEST) or (
            query
            and ImageOps.from_query(
                query, path.ext or extension(needle.name.decode("utf-8", "replace"))
            )
        )
        ranges = _ranges(req, loc.data_size)
        if whole or (ranges is not None and len(ranges) > 1):
            return await self._serve_read_off_loop(req, path, volume)
        if volume.verified(loc):
            self._stats.verify_memo_hits += 1
        else:
            try:
                await asyncio.to_thread(volume.verify, loc)
            except CorruptNeedle as exc:
                return await self._corrupt_later(req, exc)
            except NotFound:  # deleted, and vacuumed away, since read_meta
                return not_found(req.path)
            self._stats.verify_reads += 1
        prepared = self._prepare(req, path, needle, query)
        if isinstance(prepared, Response):
            return prepared
        head, _, content_type = prepared
        start, length, status = 0, loc.data_size, 200
        if ranges:
            start, length, status = ranges[0].start, ranges[0].length, 206
            head += _header("Content-Range", ranges[0].content_range(loc.data_size))
        if not content_type and length and _sniffs(req, query):
            # Go sniffs the first bytes sent: one small pread, not the needle.
            first = replace(
                loc, data_offset=loc.data_offset + start, data_size=min(length, _SNIFF_SIZE)
            )
            try:
                sniffed = volume.iter_data(first, _SNIFF_SIZE, verify=False)
                if volume.remote is None:
                    content_type = detect_content_type(next(sniffed, b""))
                else:
                    content_type = detect_content_type(await asyncio.to_thread(next, sniffed, b""))
            except CorruptNeedle as exc:
                return await self._corrupt_later(req, exc)
            except NotFound:
                return not_found(req.path)
        if content_type:
            head += _header("Content-Type", content_type)
        if req.method == "HEAD":
            return Response(status, raw_headers=head, content_length=length)
        partial = length != loc.data_size
        if partial:
            loc = replace(loc, data_offset=loc.data_offset + start, data_size=length)
        return Response(
            status, raw_headers=head, body=_stream(volume, loc, partial), content_length=length
        )

    async def _serve_read_off_loop(self, req: Request, path: BlobPath, volume: Volume) -> Response:
        try:
            needle = await asyncio.to_thread(volume.read, path.key, path.cookie)
        except NotFound:
            return not_found(req.path)
        except CorruptNeedle as exc:
            return await self._corrupt_later(req, exc)
        answer = self.serve(req, path, needle)
        return answer if isinstance(answer, Response) else await answer

    def _corrupt(self, req: Request, exc: CorruptNeedle) -> Response | Awaitable[Response]:
        """The answer for a needle whose stored bytes fail their checks: a replica's answer
        (read repair, below) when the volume has replicas, else 500 as the reference, with a
        JSON error that says so (the storage layer logged it the first time it was seen)."""
        if self._repair is not None and req.query.get("proxied") != "true":
            path = parse_blob_path(req.path)
            volume = self._store.get(path.volume_id)
            if volume is not None and volume.replica_placement.copy_count > 1:
                return self._read_repair(req, path, volume, exc)
        return self._corrupt_answer(req, exc)

    async def _corrupt_later(self, req: Request, exc: CorruptNeedle) -> Response:
        """`_corrupt`, in a coroutine."""
        answer = self._corrupt(req, exc)
        return answer if isinstance(answer, Response) else await answer

    def _corrupt_answer(self, req: Request, exc: CorruptNeedle) -> Response:
        self._stats.corrupt_reads += 1
        log.debug("read %s: %s", req.path, exc)
        body = orjson.dumps({"error": f"{req.path} is corrupt: {exc.message}"})
        return Response(500, raw_headers=JSON_HEADERS, body=body)

    async def _read_repair(
        self, req: Request, path: BlobPath, volume: Volume, exc: CorruptNeedle
    ) -> Response:
        """Read repair: the same request answered by a replica whose copy is sound (it checks
        its CRC before answering, `proxied=true` keeps it from asking further), and the
        needle repaired here in the background (volume/repair.py). Without such a replica,
        the corrupt 500."""
        assert self._repair is not None
        peers = await self._repair.peers(path.volume_id)
        random.shuffle(peers)
        query = f"{req.query_string}&proxied=true" if req.query_string else "proxied=true"
        for url in peers:
            answer = await self._proxy(req, url, f"{req.path}?{query}")
            if answer is not None and (answer.status < 400 or answer.status == 416):
                self._stats.read_repairs += 1
                task = asyncio.create_task(self._repair.repair(volume, path.key))
                self._repairs.add(task)
                task.add_done_callback(self._repair_done)
                return answer
        return self._corrupt_answer(req, exc)

    def _repair_done(self, task: asyncio.Task[bool]) -> None:
        self._repairs.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("read repair failed: %s", task.exception())

    def _describe(self, url_name: str, name: bytes, mime: bytes) -> tuple[str, str, bytes]:
        """(file name, Content-Type, inline Content-Disposition line) for a needle's metadata;
        cached, since most reads repeat a few combinations."""
        filename = url_name or name.decode("utf-8", "replace")
        content_type = content_type_for(mime.decode("utf-8", "replace"), filename)
        inline = (
            _header("Content-Disposition", content_disposition(filename, False))
            if filename
            else b""
        )
        if len(self._meta) >= _META_CACHE_SIZE:
            self._meta.clear()
        meta = (filename, content_type, inline)
        self._meta[(url_name, name, mime)] = meta
        return meta

    async def _serve_image(
        self, req: Request, head: bytes, data: bytes, content_type: str, ops: ImageOps
    ) -> Response:
        data = await asyncio.to_thread(transform_image, data, ops)
        return _respond(req, head, data, content_type, True)

    # ------------------------------------------------------------------ chunk manifests

    async def _serve_manifest(
        self, req: Request, path: BlobPath, needle: Needle, query: Mapping[str, str]
    ) -> Response:
        """The file a chunk manifest describes, its chunks fetched in order. Validators, pairs,
        `dl` and `response-*` overrides as for any needle; name and type are the manifest's."""
        try:
            manifest = load_chunk_manifest(needle.data, bool(needle.flags & FLAG_GZIP))
        except WeedError as exc:
            log.error("read %s: bad chunk manifest: %s", req.path, exc)
            return _SERVER_ERROR
        prepared = self._prepare(
            req, path, needle, query, manifest.name.encode(), manifest.mime.encode()
        )
        if isinstance(prepared, Response):
            return prepared
        head, _, content_type = prepared
        head += b"X-File-Store: chunked\r\n"
        size = manifest.size or sum(c.size for c in manifest.chunks)
        ranges = _ranges(req, size)
        if ranges is not None and len(ranges) > 1:
            return await self._manifest_byteranges(head, manifest, size, content_type, ranges)
        start, length, status = 0, size, 200
        if ranges is not None:
            start, length, status = ranges[0].start, ranges[0].length, 206
            head += _header("Content-Range", ranges[0].content_range(size))
        body = self._chunks(manifest, start, length)
        if not content_type and length and _sniffs(req, query):
            first, body = await _peek(body, _SNIFF_SIZE)
            content_type = detect_content_type(first)
        if content_type:
            head += _header("Content-Type", content_type)
        if req.method == "HEAD" or length == 0:
            return Response(status, raw_headers=head, content_length=length)
        return Response(status, raw_headers=head, body=body, content_length=length)

    async def _manifest_byteranges(
        self,
        head: bytes,
        manifest: ChunkManifest,
        size: int,
        content_type: str,
        ranges: tuple[ByteRange, ...],
    ) -> Response:
        """206 multipart/byteranges of a chunked file; the parts are fetched before answering,
        since Content-Length needs them."""
        parts: dict[tuple[int, int], bytes] = {}
        for r in ranges:
            parts[r.start, r.length] = b"".join(
                [piece async for piece in self._chunks(manifest, r.start, r.length)]
            )
        body, multipart_type = multipart_byteranges(
            ranges, size, content_type, lambda s, n: parts[s, n], secrets.token_hex(15)
        )
        head += _header("Content-Type", multipart_type)
        return Response(206, raw_headers=head, body=body)

    async def _chunks(
        self, manifest: ChunkManifest, start: int, length: int
    ) -> AsyncIterator[bytes]:
        end = start + length
        for chunk in manifest.chunks:
            lo, hi = max(start, chunk.offset), min(end, chunk.offset + chunk.size)
            if lo >= hi:
                continue
            data = await self.fetch_chunk(chunk.file_id, lo - chunk.offset, hi - lo)
            yield data

    async def fetch_chunk(self, fid: FileId, offset: int, length: int) -> bytes:
        """`length` bytes at `offset` of the blob `fid`, local or from its volume server."""
        volume = self._store.get(fid.volume_id)
        if volume is not None:
            needle = await asyncio.to_thread(volume.read, fid.key, fid.cookie)
            data = gunzip(needle.data) if needle.flags & FLAG_GZIP else needle.data
            return data[offset : offset + length]
        if self._link is None:
            raise NotFound(f"chunk {fid} is on no known server")
        locations = await self._link.lookup(fid.volume_id)
        headers = {"Range": f"bytes={offset}-{offset + length - 1}", "Accept-Encoding": "identity"}
        headers.update(bearer(self._out.read_token(str(fid))))
        reply = await self._http.call(
            "GET",
            random.choice(locations).url,
            f"/{fid}",
            headers=headers,
            what=f"chunk {fid}",
            ok=_CHUNK_OK,
            narrow=_CHUNK_NARROW,
        )
        body = reply.body
        if reply.headers.get("Content-Encoding") == "gzip":
            body = gunzip(body)
        return body if reply.status == 206 else body[offset : offset + length]

    # ------------------------------------------------------------------ volumes held elsewhere

    def _not_local(self, req: Request, path: BlobPath) -> Response | Awaitable[Response]:
        if self._read_mode == "local" or self._link is None or req.query.get("proxied") == "true":
            return not_found(req.path)
        return self._elsewhere(req, path)

    async def _elsewhere(self, req: Request, path: BlobPath) -> Response:
        """Redirect to, or proxy from, another holder. A volume the master does not know is
        404; holders that cannot be reached (or a master that cannot) are 503, so clients
        retry rather than conclude the blob is gone (reliability scenario 11)."""
        assert self._link is not None
        try:
            locations = await self._link.lookup(path.volume_id)
        except VolumeNotFound:
            return not_found(req.path)
        me = self._self_url()
        others = [loc.url for loc in locations if loc.url != me]
        if not others:
            return not_found(req.path)
        random.shuffle(others)
        query = f"{req.query_string}&proxied=true" if req.query_string else "proxied=true"
        target = f"{req.path}?{query}"
        if self._read_mode == "redirect":
            return Response(301, {"Location": self._out.url(others[0], target)})
        for url in others:
            answer = await self._proxy(req, url, target)
            if answer is not None:
                return answer
        self._link.forget(path.volume_id)
        raise ServiceUnavailable("no holder of the volume answered", volume_id=path.volume_id)

    async def _proxy(self, req: Request, server: str, target: str) -> Response | None:
        """The holder's answer relayed, whatever its status, or None when it could not be
        reached."""
        headers = {k: v for k, v in req.headers.items() if k not in _HOP_BY_HOP and k != "host"}
        try:
            reply = await self._http.request(req.method, server, target, headers=headers)
        except ServerUnreachable as exc:
            log.warning("proxy read failed: %s", exc.message)
            return None
        relayed = {k: v for k, v in reply.headers.items() if k.lower() not in _HOP_BY_HOP}
        if req.method == "HEAD":
            length = int(reply.headers.get("Content-Length", "0") or 0)
            return Response(reply.status, relayed, content_length=length)
        return Response(reply.status, relayed, reply.body)


_EMPTY_QUERY: Mapping[str, str] = {}


async def _stream(volume: Volume, loc: NeedleLocation, partial: bool) -> AsyncIterator[bytes]:
    """The data at `loc` (verified beforehand), one chunk per executor hop. A whole needle's
    CRC is checked again after the last chunk, which is withheld on a mismatch (bytes that
    rotted since the verification abort the response); a range is only as good as that
    verification. A needle deleted and vacuumed away while it streams ends the answer short
    (a vacuum's commit in between is followed: storage relocates the reading)."""
    chunks = volume.iter_data(loc, verify=not partial)
    while True:
        try:
            chunk = await asyncio.to_thread(next, chunks, None)
        except CorruptNeedle as exc:
            if partial:
                return
            log.error("streaming volume data: %s", exc)
            raise
        except NotFound as exc:
            log.warning("streaming volume data: %s", exc)
            return
        if chunk is None:
            return
        yield chunk


async def _peek(body: AsyncIterator[bytes], size: int) -> tuple[bytes, AsyncIterator[bytes]]:
    """The first `size` bytes of `body` (fewer if it is shorter), and all of `body` again."""
    pieces: list[bytes] = []
    got = 0
    async for piece in body:
        pieces.append(piece)
        got += len(piece)
        if got >= size:
            break

    async def replay() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece
        async for piece in body:
            yield piece

    return b"".join(pieces)[:size], replay()


def not_found(url_path: str) -> Response:
    body = orjson.dumps({"error": f"{url_path} not found"})
    return Response(404, raw_headers=JSON_HEADERS, body=body)


def _header(name: str, value: str) -> bytes:
    if "\r" in value or "\n" in value:
        return b""
    return f"{name}: {value}\r\n".encode("utf-8", "surrogateescape")


@functools.lru_cache(maxsize=1024)
def _content_type_line(content_type: str) -> bytes:
    return _header("Content-Type", content_type)


def _sniffs(req: Request, query: Mapping[str, str]) -> bool:
    """Whether an untyped answer gets a Content-Type sniffed from its bytes: only a GET's, and
    only when no Content-Encoding is sent, as Go's server decides."""
    return req.method == "GET" and not query.get("response-content-encoding")


def _ranges(req: Request, size: int) -> tuple[ByteRange, ...] | None:
    """The ranges to send of a body of `size` bytes (see ranges.py); None for the whole body.
    Only a GET has ranges: a HEAD describes the whole blob (200 with its full Content-Length,
    whatever its Range header says), as the reference answers and RFC 9110 §14.2 allows."""
    if req.method != "GET":
        return None
    return plan_ranges(req.headers.get("range"), size)


def _respond(req: Request, head: bytes, data: bytes, content_type: str, sniff: bool) -> Response:
    """200, 206 or multipart 206 for in-memory data. Without a `content_type`, a GET's type is
    sniffed from the bytes sent when `sniff` (no Content-Encoding), as Go's server does."""
    ranges = _ranges(req, len(data))
    if ranges is not None:
        return _ranged(head, data, content_type, ranges, sniff)
    if not content_type and sniff and data and req.method == "GET":
        content_type = detect_content_type(data)
    if content_type:
        head += _content_type_line(content_type)
    if req.method == "HEAD":
        return Response(200, raw_headers=head, content_length=len(data))
    return Response(200, raw_headers=head, body=data)


def _ranged(
    head: bytes,
    data: bytes,
    content_type: str,
    ranges: tuple[ByteRange, ...],
    sniff: bool,
) -> Response:
    size = len(data)
    if len(ranges) == 1:
        r = ranges[0]
        head += _header("Content-Range", r.content_range(size))
        if not content_type and sniff:
            # Sniffed from the part sent, as Go's server does: not from the start of the blob.
            content_type = detect_content_type(data[r.start : r.start + r.length])
        if content_type:
            head += _header("Content-Type", content_type)
        return Response(206, raw_headers=head, body=data[r.start : r.start + r.length])
    body, multipart_type = multipart_byteranges(
        ranges, size, content_type, lambda s, n: data[s : s + n], secrets.token_hex(15)
    )
    head += _header("Content-Type", multipart_type)
    return Response(206, raw_headers=head, body=body)
