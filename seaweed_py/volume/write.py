"""POST/PUT and DELETE of blobs, with replication (spec §3.5, §3.6, §6).

A write is parsed into an `Upload`, stored locally, acknowledged by storage according to
`-fsync` (the `durable` future is awaited, never blocking the loop: `durability.py`), then forwarded to every
other replica of the volume in parallel. The client hears success only when every replica
stored it. When one did not, the write is undone where it landed — the local copy and the
copies of the replicas that succeeded are tombstoned — the master is told to stop assigning the
volume, and the client gets a 500. (The reference leaves the diverged copies in place, quirk
A20; a write the client was told failed should not be readable afterwards.) Every forward,
rollback deletes included, waits at most `-replicationTimeout` without progress, and not at all
for a replica the master stops listing (`MasterLink.dropped`), so a frozen replica costs a
write seconds, not minutes.

Bodies up to httpkit's streaming threshold (1 MiB) arrive whole; larger ones are spooled to a
temporary file, then appended to the volume and forwarded to the replicas from it in pieces
(`spool.py`), so memory stays flat whatever their size. Either way the size is bounded by
`-fileSizeLimitMB`, checked against Content-Length before a byte is read, and records above
1 MiB are appended from a worker thread so the loop keeps serving. How many upload bytes may be
in flight at once is `-concurrentUploadLimitMB`, enforced by httpkit before a body is read
(`server.py`).

Deletes tombstone locally first, then on the replicas; a replica failure is reported to the
client and the master, and the local tombstone stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import replace

import orjson

from seaweed_py.client.cluster import Outgoing
from seaweed_py.client.master_link import MasterLink
from seaweed_py.client.replicate import Gone, ReplicaCopy, Replicator
from seaweed_py.errors import (
    BadRequest,
    CookieMismatch,
    NotFound,
    PayloadTooLarge,
    ReplicationFailed,
    VolumeNotFound,
    WeedError,
)
from seaweed_py.formats.chunk_manifest import load_chunk_manifest
from seaweed_py.formats.crc import crc32c
from seaweed_py.formats.fid import FileId
from seaweed_py.formats.needle import FLAG_CHUNK_MANIFEST, FLAG_GZIP, Needle, upload_needle
from seaweed_py.httpkit.auth import token_of
from seaweed_py.httpkit.request import Request
from seaweed_py.httpkit.response import Response
from seaweed_py.storage.group_commit import SETTLED
from seaweed_py.storage.store import Store
from seaweed_py.storage.volume import FsyncMode, Volume, WriteResult
from seaweed_py.volume.access import url_claim
from seaweed_py.volume.durability import DurableWaits
from seaweed_py.volume.spool import SpooledPart, spool
from seaweed_py.volume.stats import Stats
from seaweed_py.volume.upload import (
    Upload,
    UploadOptions,
    append_at_ns,
    parse_spooled_upload,
    parse_upload,
)
from seaweed_py.volume.urls import BlobPath, parse_blob_path, parse_write_path

__all__ = ["BlobWriter"]

log = logging.getLogger(__name__)

_NOT_FOUND_SIZE = b'{"size":0}'
# Records above this are written from a worker thread: a page-cache copy of many MiB would
# otherwise hold up every other request on the loop.
_OFF_LOOP_WRITE = 1 << 20


class BlobWriter:
    """Answers uploads and deletes for one volume server."""

    def __init__(
        self,
        store: Store,
        link: MasterLink | None,
        replicator: Replicator,
        *,
        self_url: Callable[[], str],
        file_size_limit: int,
        spool_dir: str,
        stats: Stats,
        clock: Callable[[], float] = time.time,
        out: Outgoing | None = None,
    ) -> None:
        self._store = store
        self._out = out or Outgoing()
        self._spool_dir = spool_dir
        self._durable = DurableWaits()
        self._link = link
        self._replicator = replicator
        self._self_url = self_url
        self._limit = file_size_limit
        self._stats = stats
        self._clock = clock

    # ------------------------------------------------------------------ writes

    def write(self, req: Request) -> Response | Awaitable[Response]:
        """POST/PUT. A small write to a local single-copy volume whose durability needs no
        wait (`-fsync=none|always`) is answered inline, without a coroutine."""
        url_path = req.path
        path = parse_write_path(url_path)
        options = UploadOptions.from_query(
            req.query if req.query_string else _NO_QUERY, int(self._clock())
        )
        if self._out.keys.signing_key:  # replicas check the client's token too (spec §10.2)
            options = replace(options, token=token_of(req))
        if req.stream is not None:
            return self._write_spooled(req, path, options)
        # parse_upload refuses data above the limit itself, so no _check_limit here.
        upload = parse_upload(req.method, url_path, req.headers, req.body, options, self._limit)
        volume = self._store.get(path.volume_id)
        data = upload.data
        if (
            volume is None
            or len(data) > _OFF_LOOP_WRITE
            or volume.compacting
            or options.fsync
            or not (options.replicate or volume.replica_placement.copy_count <= 1)
        ):
            return self._store_upload(url_path, path, upload)
        needle = _needle(path, upload, volume)
        result = volume.write(needle, origin_ns=options.append_at_ns)
        self._stats.bytes_written += len(data)
        answer = _write_response(upload, needle, unchanged=result.unchanged)
        durable = result.durable
        if durable is SETTLED:  # -fsync=none|always: nothing to wait for, no lock to take
            return answer
        # Rarely done already (another worker's sync covered it): the answer is then given
        # at once. (Not asked first: a concurrent future's `done()` takes its condition.)
        return self._durable.answer(durable, answer)

    async def _store_upload(
        self, url_path: str, path: BlobPath, upload: Upload, spooled: SpooledPart | None = None
    ) -> Response:
        """Store `upload` here and on the other replicas. Its data is `upload.data`, or for
        a spooled body `spooled`, which is appended and forwarded in pieces from the file."""
        self._check_limit(path, upload)
        volume = self._store.get(path.volume_id)
        if volume is None:
            return await self._forward_only(path, url_path, upload, spooled)
        needle = _needle(path, upload, volume)
        replicate = upload.options.replicate
        origin = upload.options.append_at_ns
        remote = () if replicate else await self._replica_urls(path.volume_id, volume)
        size = len(needle.data) if spooled is None else spooled.size
        if spooled is not None:
            result, checksum = await asyncio.to_thread(
                _append_spooled, volume, needle, spooled, origin
            )
            needle = replace(needle, checksum=checksum)
        elif size > _OFF_LOOP_WRITE:
            # Streamed append: head, data and tail are written separately, so the record is
            # never assembled as one more copy of the data.
            result = await asyncio.to_thread(
                functools.partial(volume.write_streamed, origin_ns=origin),
                needle,
                size,
                (needle.data,),
            )
        elif volume.compacting:
            # A vacuum's commit holds the volume's lock a while: wait for it off the loop.
            result = await asyncio.to_thread(
                functools.partial(volume.write, origin_ns=origin), needle
            )
        else:
            result = volume.write(needle, origin_ns=origin)
        await self._durable.wait(result.durable)
        await _sync_if_asked(volume, upload.options)
        if remote:
            copy = replace(_copy(url_path, needle, upload, spooled), append_at_ns=result.stamp)
            failures = await self._replicator.write(remote, copy, gone=self._gone(path.volume_id))
            if failures:
                await self._undo_write(
                    volume, needle, url_path, remote, failures, appended=not result.unchanged
                )
        self._stats.bytes_written += size
        return _write_response(upload, needle, unchanged=result.unchanged)

    async def _write_spooled(
        self, req: Request, path: BlobPath, options: UploadOptions
    ) -> Response:
        """A body that arrived as a stream (above httpkit's streaming threshold): spooled to
        a file, then parsed, appended and forwarded from it in pieces, never held whole."""
        assert req.stream is not None
        early = self._store.get(path.volume_id)
        if early is not None:
            early.check_writable()  # a read-only (e.g. full) volume refuses before the body
        spooled = await spool(req.stream, self._spool_dir)
        try:
            upload, start, end = await asyncio.to_thread(
                parse_spooled_upload,
                req.method,
                req.path,
                req.headers,
                spooled,
                options,
                self._limit,
            )
            return await self._store_upload(req.path, path, upload, spooled.part(start, end))
        finally:
            await asyncio.to_thread(spooled.close)

    def _check_limit(self, path: BlobPath, upload: Upload) -> None:
        if upload.original_size > self._limit:
            raise PayloadTooLarge(
                f"file over the limited {self._limit} bytes", volume_id=path.volume_id
            )

    async def _forward_only(
        self, path: BlobPath, url_path: str, upload: Upload, spooled: SpooledPart | None
    ) -> Response:
        """The volume is not here: store it on every holder (quirk A28, kept), unless this is
        itself a replica copy, which must not be acknowledged unstored (quirk A17, fixed)."""
        if upload.options.replicate or self._link is None:
            raise VolumeNotFound("volume is not on this server", volume_id=path.volume_id)
        me = self._self_url()
        urls = [loc.url for loc in await self._link.lookup(path.volume_id) if loc.url != me]
        if not urls:
            # The master still lists this server: the volume was deleted here and the master
            # has not heard yet. Gone is gone (404), not a failed replication (500).
            self._link.forget(path.volume_id)
            raise VolumeNotFound("volume is not on this server", volume_id=path.volume_id)
        needle = Needle.build(path.cookie, path.key, upload.data, gzipped=upload.gzipped)
        if spooled is not None:
            needle = replace(needle, checksum=await asyncio.to_thread(_checksum, spooled))
        failures = await self._replicator.write(
            urls, _copy(url_path, needle, upload, spooled), gone=self._gone(path.volume_id)
        )
        if failures:
            self._link.forget(path.volume_id)
            raise ReplicationFailed(_failure_text(failures), volume_id=path.volume_id)
        return _write_response(upload, needle, unchanged=False)

    async def _replica_urls(
        self, volume_id: int, volume: Volume, *, fresh: bool = False
    ) -> Sequence[str]:
        """The other servers holding `volume_id`; none for single-copy volumes. `fresh` asks
        the master instead of trusting a cached answer."""
        copies = volume.replica_placement.copy_count
        if copies <= 1 or self._link is None:
            return ()
        locations = await self._link.lookup(volume_id, fresh=fresh)
        if len(locations) < copies:
            self._link.forget(volume_id)
            raise ReplicationFailed(
                f"replicating operations [{len(locations)}] is less than volume "
                f"replication copy count [{copies}]",
                volume_id=volume_id,
            )
        me = self._self_url()
        return [loc.url for loc in locations if loc.url != me]

    async def _undo_write(
        self,
        volume: Volume,
        needle: Needle,
        url_path: str,
        remote: Sequence[str],
        failures: Mapping[str, str],
        *,
        appended: bool,
    ) -> None:
        """Tombstone the copies a failed replicated write left behind, then raise."""
        self._stats.replica_failures += 1
        self._stats.write_errors += 1
        vid = parse_write_path(url_path).volume_id
        if appended:
            stamp = 0
            try:
                stamp = volume.delete(needle.key, needle.cookie).stamp
            except WeedError as exc:
                log.error("rollback of %s on volume %d failed: %s", url_path, vid, exc)
            stored = [url for url in remote if url not in failures]
            if stored:
                # Our own token: the client's may expire before the rollback is sent.
                token = self._out.write_token(url_claim(url_path))
                leftovers = await self._replicator.delete(
                    stored, url_path, gone=self._gone(vid), token=token, stamp=stamp
                )
                for url, err in leftovers.items():
                    log.error("rollback of %s on replica %s failed: %s", url_path, url, err)
        await self._tell_master(vid)
        raise ReplicationFailed(_failure_text(failures), volume_id=vid)

    def _gone(self, volume_id: int) -> Gone | None:
        """Which forwards to stop waiting for: those to servers the master drops."""
        link = self._link
        if link is None:
            return None
        return lambda urls: link.dropped(volume_id, urls)

    async def _tell_master(self, volume_id: int) -> None:
        if self._link is None:
            return
        self._link.forget(volume_id)
        try:
            await self._link.report_unwritable(volume_id)
        except WeedError as exc:
            log.warning("could not mark volume %d unwritable at the master: %s", volume_id, exc)

    # ------------------------------------------------------------------ deletes

    async def delete(self, req: Request) -> Response:
        path = parse_blob_path(req.path)
        volume = self._store.get(path.volume_id)
        if volume is None:
            return _size_response(404, None)
        # Where the copies are is settled before anything is deleted, from the master itself (a
        # delete cannot be rolled back like a write): a volume short of copies, or a failed
        # lookup, refuses the delete and leaves the blob as it was.
        replicate = req.query.get("type") == "replicate"
        origin = append_at_ns(req.query) if req.query_string else None
        remote = () if replicate else await self._replica_urls(path.volume_id, volume, fresh=True)
        reported: int | None = None
        if self._is_manifest(volume, path):
            manifest = await asyncio.to_thread(volume.read, path.key, path.cookie)
            reported = await self._delete_chunks(manifest)
        try:
            if volume.compacting:  # (as for writes: a commit may hold the lock a while)
                result = await asyncio.to_thread(
                    functools.partial(volume.delete, origin_ns=origin), path.key, path.cookie
                )
            else:
                result = volume.delete(path.key, path.cookie, origin_ns=origin)
        except CookieMismatch:
            raise BadRequest(
                "File Random Cookie does not match.", volume_id=path.volume_id, key=f"{path.key:x}"
            ) from None
        except NotFound:
            return _size_response(404, None)
        await self._durable.wait(result.durable)
        if remote:
            failures = await self._replicator.delete(
                remote,
                req.path,
                gone=self._gone(path.volume_id),
                token=token_of(req),
                stamp=result.stamp,
            )
            if failures:
                self._stats.replica_failures += 1
                await self._tell_master(path.volume_id)
                raise ReplicationFailed(
                    "Deletion Failed: " + _failure_text(failures), volume_id=path.volume_id
                )
        return _size_response(202, result.size if reported is None else reported)

    @staticmethod
    def _is_manifest(volume: Volume, path: BlobPath) -> bool:
        """Whether the live needle is a chunk manifest (its metadata only: two small preads)."""
        try:
            return bool(volume.read_meta(path.key, path.cookie).needle.flags & FLAG_CHUNK_MANIFEST)
        except NotFound:
            return False

    async def _delete_chunks(self, manifest_needle: Needle) -> int:
        """Delete every chunk of a manifest before the manifest itself (spec §13.3); returns
        the file size the manifest records, which is what the DELETE reports."""
        try:
            manifest = load_chunk_manifest(
                manifest_needle.data, bool(manifest_needle.flags & FLAG_GZIP)
            )
            for chunk in manifest.chunks:
                await self._delete_one(chunk.file_id)
        except WeedError as exc:
            raise WeedError(f"Delete chunks error: {exc.message}") from None
        return manifest.size or manifest.total_chunk_size

    async def _delete_one(self, fid: FileId) -> None:
        volume = self._store.get(fid.volume_id)
        if volume is not None:
            with contextlib.suppress(NotFound):
                volume.delete(fid.key, fid.cookie)
            return
        if self._link is None:
            raise VolumeNotFound("chunk volume is not on this server", volume_id=fid.volume_id)
        locations = await self._link.lookup(fid.volume_id)
        failures = await self._replicator.delete(
            [locations[0].url],
            f"/{fid}",
            as_replica=False,
            gone=self._gone(fid.volume_id),
            token=self._out.write_token(str(fid)),
        )
        if failures:
            raise ReplicationFailed(_failure_text(failures), volume_id=fid.volume_id)


def _needle(path: BlobPath, upload: Upload, volume: Volume) -> Needle:
    options = upload.options
    ttl = options.ttl or volume.ttl or None  # the upload's, else the volume's
    return upload_needle(
        path.cookie,
        path.key,
        upload.data,
        upload.name.encode(),
        upload.mime.encode(),
        options.last_modified,
        ttl,
        upload.pairs,
        upload.gzipped,
        options.chunk_manifest,
    )


def _append_spooled(
    volume: Volume, needle: Needle, spooled: SpooledPart, origin: int | None
) -> tuple[WriteResult, int]:
    """Append a spooled body's data as `needle`'s (in a worker thread): (the result, the
    data's CRC32-C)."""
    crc = 0

    def checksummed() -> Iterator[memoryview]:
        nonlocal crc
        for piece in spooled.chunks():
            crc = crc32c(piece, crc)
            yield piece

    result = volume.write_streamed(needle, spooled.size, checksummed(), origin_ns=origin)
    return result, crc


def _checksum(spooled: SpooledPart) -> int:
    crc = 0
    for piece in spooled.chunks():
        crc = crc32c(piece, crc)
    return crc


def _copy(
    url_path: str, needle: Needle, upload: Upload, spooled: SpooledPart | None = None
) -> ReplicaCopy:
    pairs = orjson.loads(upload.pairs) if upload.pairs else {}
    return ReplicaCopy(
        path=url_path,
        data=needle.data if spooled is None else spooled,
        name=upload.name,
        mime=upload.mime,
        gzipped=upload.gzipped,
        last_modified=upload.options.last_modified,
        ttl=str(needle.ttl),
        chunk_manifest=upload.options.chunk_manifest,
        pairs=pairs,
        content_md5=upload.content_md5,
        fsync=upload.options.fsync,
        token=upload.options.token,
    )


async def _sync_if_asked(volume: Volume, options: UploadOptions) -> None:
    """`fsync=true` on a server that acknowledges from the page cache (`-fsync=none`): sync
    before answering. The other modes have synced the record already."""
    if options.fsync and volume.fsync_mode is FsyncMode.NONE:
        await asyncio.to_thread(volume.sync)


def _failure_text(failures: Mapping[str, str]) -> str:
    return "; ".join(f"[{url}]: {err}" for url, err in failures.items())


def _write_response(upload: Upload, needle: Needle, *, unchanged: bool) -> Response:
    md5 = upload.content_md5
    name = upload.name
    if not md5 and name and not unchanged and upload.original_size:
        # The usual answer, without building a dict for orjson (same bytes).
        checksum = needle.checksum
        mime = upload.mime
        if mime:
            body = _CREATED_MIME % (
                orjson.dumps(name),
                upload.original_size,
                checksum,
                orjson.dumps(mime),
            )
        else:
            body = _CREATED % (orjson.dumps(name), upload.original_size, checksum)
        return Response(201, None, body, raw_headers=_CREATED_HEAD % checksum)
    return _described_response(upload, needle, unchanged=unchanged)


def _described_response(upload: Upload, needle: Needle, *, unchanged: bool) -> Response:
    """`_write_response` for every upload: the result object built field by field."""
    md5 = upload.content_md5
    etag = f"{needle.checksum:08x}"
    if "\r" in md5 or "\n" in md5:
        md5 = ""
    head = f'ETag: "{etag}"\r\nContent-MD5: {md5}\r\n'.encode()
    if unchanged:
        return Response(204, raw_headers=head)
    result: dict[str, object] = {}
    if upload.name:
        result["name"] = upload.name
    if upload.original_size:
        result["size"] = upload.original_size
    result["eTag"] = etag
    if upload.mime:
        result["mime"] = upload.mime
    if md5:
        result["contentMd5"] = md5
    return Response(201, raw_headers=_JSON_HEAD + head, body=orjson.dumps(result))


def _size_response(status: int, size: int | None) -> Response:
    if size is None:
        return Response(status, raw_headers=_JSON_HEAD, body=_NOT_FOUND_SIZE)
    return Response(status, raw_headers=_JSON_HEAD, body=b'{"size":%d}' % size)


_JSON_HEAD = b"Content-Type: application/json\r\nX-Content-Type-Options: nosniff\r\n"
_CREATED_HEAD = _JSON_HEAD + b'ETag: "%08x"\r\nContent-MD5: \r\n'
_CREATED = b'{"name":%b,"size":%d,"eTag":"%08x"}'
_CREATED_MIME = b'{"name":%b,"size":%d,"eTag":"%08x","mime":%b}'
_NO_QUERY: Mapping[str, str] = {}
