"""`POST /batch/read`: many needles in one request, for the volumes this server holds.

Request: `{"fids": ["3,01637037d6", ...]}` (1 to 1,000 fids, any volumes; with a read key
set, `"jwt": [...]`, one read token per fid, in the same order). Anything else is `400`.

Answer: `200 multipart/mixed` (`formats/multipart_mixed.py`), one part per fid in request
order, each with `Content-ID: <fid>` and `X-Weedpy-Status`, the status a GET of that fid alone
would have:

| status | part |
|---|---|
| 200 | the blob as a GET that does not accept gzip answers it (a gzip-stored needle uncompressed, a chunk manifest's file assembled), with `Content-Type`, `ETag`, `Last-Modified` when stored, `Content-Disposition` when named |
| 400 | the fid does not parse |
| 401 | a read key is set and the fid's token is missing or wrong |
| 404 | volume not held here, unknown or deleted needle, wrong cookie, TTL expired |
| 413 | the needle is over `MAX_NEEDLE` bytes: read it with a GET, which streams |
| 500 | the stored record fails its checks (never its bytes) |
| 502 | the volume is tiered and its bucket failed the read |

Non-200 parts carry `{"error": "..."}`. How: the fids of each volume are looked up in its
needle map, sorted by offset, and neighbours (gaps up to 1 MiB, `storage/backend`'s
`coalesce`) read with one pread, or one ranged GET for a tiered volume, off the event loop;
every needle is decoded and its CRC checked as for a GET. Volumes are read concurrently, and
the parts are streamed in request order as soon as they and those before them are ready.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import orjson

from seaweed_py.errors import (
    BadRequest,
    CorruptNeedle,
    NotFound,
    RemoteStorageError,
    WeedError,
)
from seaweed_py.formats.chunk_manifest import load_chunk_manifest
from seaweed_py.formats.fid import FileId, parse_file_id
from seaweed_py.formats.multipart_mixed import closing_delimiter, encode_part
from seaweed_py.formats.needle import FLAG_CHUNK_MANIFEST, FLAG_GZIP, FLAG_HAS_TTL, Needle
from seaweed_py.httpkit.request import Request
from seaweed_py.httpkit.response import Response
from seaweed_py.security.jwt import TokenError
from seaweed_py.security.tokens import check_fid_token, fid_claim
from seaweed_py.storage.volume import Volume
from seaweed_py.volume.mime import detect_content_type
from seaweed_py.volume.render import content_disposition, content_type_for
from seaweed_py.volume.upload import gunzip

if TYPE_CHECKING:
    from seaweed_py.volume.server import VolumeServer

__all__ = ["MAX_FIDS", "MAX_NEEDLE", "BatchReader"]

log = logging.getLogger(__name__)

MAX_FIDS: Final = 1000
MAX_NEEDLE: Final = 64 << 20
"""Largest needle a batch carries: a batch holds its needles in memory, a GET streams."""
MAX_BODY: Final = 1 << 20
"""A request body of 1,000 fids and their tokens fits well within this."""


@dataclass(frozen=True, slots=True)
class _Wanted:
    index: int
    text: str
    fid: FileId


class BatchReader:
    """The batch-read route of one `VolumeServer`."""

    def __init__(self, server: VolumeServer) -> None:
        self._server = server

    def handle(self, req: Request) -> Response:
        texts, tokens = _parse(req.body)
        boundary = secrets.token_hex(16)
        head = f"Content-Type: multipart/mixed; boundary={boundary}\r\n".encode()
        return Response(200, raw_headers=head, body=self._parts(texts, tokens, boundary))

    async def _parts(
        self, texts: list[str], tokens: list[str] | None, boundary: str
    ) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        ready: list[asyncio.Future[bytes]] = [loop.create_future() for _ in texts]
        groups: dict[int, list[_Wanted]] = {}
        read_key = self._server.out.keys.read_key
        now = self._server.now()
        for i, text in enumerate(texts):
            try:
                fid = parse_file_id(text)
            except WeedError as exc:
                ready[i].set_result(_error_part(boundary, text, 400, exc.message))
                continue
            if read_key and not _token_ok(read_key, text, tokens[i] if tokens else "", now):
                ready[i].set_result(_error_part(boundary, text, 401, "wrong jwt"))
                continue
            groups.setdefault(fid.volume_id, []).append(_Wanted(i, text, fid))
        tasks = [
            asyncio.create_task(self._read_volume(vid, wanted, ready, boundary))
            for vid, wanted in groups.items()
        ]
        try:
            for future in ready:
                yield await future
            yield closing_delimiter(boundary)
        finally:
            for task in tasks:
                task.cancel()

    async def _read_volume(
        self,
        vid: int,
        wanted: list[_Wanted],
        ready: list[asyncio.Future[bytes]],
        boundary: str,
    ) -> None:
        """Fill the parts of one volume's fids (every one, whatever fails)."""
        try:
            volume = self._server.store.get(vid)
            if volume is None:
                for w in wanted:
                    _answer(ready, w, _error_part(boundary, w.text, 404, f"volume {vid} not here"))
                return
            found: list[tuple[_Wanted, Any]] = []
            for w in wanted:
                hit = volume.lookup(w.fid.key)
                if hit is None:
                    _answer(ready, w, _error_part(boundary, w.text, 404, f"{w.text} not found"))
                elif hit[1] > MAX_NEEDLE:
                    _answer(ready, w, _too_large(boundary, w.text, hit[1]))
                else:
                    found.append((w, hit))
            if not found:
                return
            found.sort(key=lambda f: f[1][0])
            spans = [volume.record_span(hit) for _, hit in found]
            try:
                records = await asyncio.to_thread(volume.data.read_spans, spans)
            except RemoteStorageError as exc:
                for w, _ in found:
                    _answer(ready, w, _error_part(boundary, w.text, 502, exc.message))
                return
            for (w, hit), record in zip(found, records, strict=True):
                _answer(ready, w, await self._part(volume, w, hit, record, boundary))
        except Exception as exc:  # every part must be answered, or the stream would hang
            log.exception("batch read of volume %d failed", vid)
            for w in wanted:
                _answer(ready, w, _error_part(boundary, w.text, 500, f"read failed: {exc}"))

    async def _part(
        self, volume: Volume, w: _Wanted, hit: Any, record: bytes, boundary: str
    ) -> bytes:
        try:
            needle = volume.read_at(w.fid.key, w.fid.cookie, hit, record)
        except NotFound:
            return _error_part(boundary, w.text, 404, f"{w.text} not found")
        except CorruptNeedle as exc:
            self._server.stats.corrupt_reads += 1
            return _error_part(boundary, w.text, 500, f"{w.text} is corrupt: {exc.message}")
        if needle.flags & FLAG_HAS_TTL and needle.append_at_ns and self._expired(needle):
            return _error_part(boundary, w.text, 404, f"{w.text} not found")
        data = needle.data
        name = needle.name.decode("utf-8", "replace")
        mime = needle.mime.decode("utf-8", "replace")
        if needle.flags & FLAG_CHUNK_MANIFEST:
            try:
                manifest = load_chunk_manifest(data, bool(needle.flags & FLAG_GZIP))
                if manifest.size > MAX_NEEDLE:
                    return _too_large(boundary, w.text, manifest.size)
                data = await self._server.reader.whole_file(manifest)
            except WeedError as exc:
                return _error_part(boundary, w.text, 500, f"chunked file: {exc.message}")
            name, mime = manifest.name or name, manifest.mime or mime
        elif needle.flags & FLAG_GZIP:
            data = gunzip(data)
        content_type = content_type_for(mime, name) or (detect_content_type(data) if data else "")
        headers = [
            ("Content-ID", f"<{w.text}>"),
            ("X-Weedpy-Status", "200"),
            ("Content-Type", content_type or "application/octet-stream"),
            ("ETag", f'"{needle.checksum:08x}"'),
        ]
        if needle.last_modified:
            headers.append(("Last-Modified", _http_date(needle.last_modified)))
        if name:
            headers.append(("Content-Disposition", content_disposition(name, False)))
        return encode_part(boundary, headers, data)

    def _expired(self, needle: Needle) -> bool:
        ttl = needle.ttl.seconds
        return bool(ttl) and self._server.now() >= needle.append_at_ns / 1e9 + ttl


def _parse(body: bytes) -> tuple[list[str], list[str] | None]:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequest('batch read wants a JSON body {"fids": [...]}') from None
    fids = obj.get("fids") if isinstance(obj, dict) else None
    if not isinstance(fids, list) or not all(isinstance(f, str) for f in fids):
        raise BadRequest('batch read wants {"fids": [...]}, a list of file id strings')
    if not 1 <= len(fids) <= MAX_FIDS:
        raise BadRequest(f"batch read takes 1 to {MAX_FIDS} fids, got {len(fids)}")
    tokens = obj.get("jwt")
    if tokens is not None and (
        not isinstance(tokens, list)
        or len(tokens) != len(fids)
        or not all(isinstance(t, str) for t in tokens)
    ):
        raise BadRequest("jwt must be a list of tokens, one per fid")
    return fids, tokens


def _token_ok(key: bytes, text: str, token: str, now: float) -> bool:
    vid_text, _, rest = text.partition(",")
    if not token:
        return False
    try:
        check_fid_token(token, key, fid_claim(vid_text, rest), now)
    except TokenError:
        return False
    return True


def _answer(ready: list[asyncio.Future[bytes]], w: _Wanted, part: bytes) -> None:
    future = ready[w.index]
    if not future.done():
        future.set_result(part)


def _error_part(boundary: str, text: str, status: int, message: str) -> bytes:
    headers = [
        ("Content-ID", f"<{text}>"),
        ("X-Weedpy-Status", str(status)),
        ("Content-Type", "application/json"),
    ]
    return encode_part(boundary, headers, orjson.dumps({"error": message}))


def _too_large(boundary: str, text: str, size: int) -> bytes:
    return _error_part(
        boundary, text, 413, f"{text} has {size} bytes, over {MAX_NEEDLE} for a batch: GET it"
    )


def _http_date(seconds: int) -> str:
    from email.utils import formatdate

    return formatdate(seconds, usegmt=True)
