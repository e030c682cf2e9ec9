"""Copying a whole volume from another volume server (maintenance spec §4, weedpy's protocol):
re-replication, `volume.copy`, `volume.move`. The target pulls; the source answers.

| route | side | answer |
|---|---|---|
| `GET /admin/volume/copy/status?volume=` | source | `CopySnapshotReport`: `.dat`, `.idx` and stamp-log sizes that agree, the compaction revision, the `.vif` |
| `GET /admin/volume/copy/file?volume=&file=&offset=&size=&revision=` | source | the bytes, their CRC-32C in `X-Weedpy-Crc32c`; 409 after a vacuum |
| `POST /admin/volume/copy?volume=&source=&collection=` | target | NDJSON: progress lines, then `{"volume", "size", "rounds", "pulled"}` or `{"error"}` |

The copy (`VolumeCopier.copy`):

1. refuses a volume this server holds (409) and one without a slot (406) or the room (507)
   here, before anything is written (`Store.begin_copy`);
2. copies the snapshot's `.dat`, `.idx` and stamp log in pieces of `_PIECE` bytes, each checked
   against the source's CRC, at most `-maintenanceMBps` on average, under a `.note`
   (storage/volume_copy.py: all or nothing);
3. takes a new snapshot: what the source appended meanwhile (a writable source keeps taking
   writes) is copied the same way, up to `_ROUNDS` rounds; a vacuum on the source (another
   revision) aborts the copy, which the caller may retry;
4. commits and serves the volume (the master hears at the next heartbeat, sent at once);
5. pulls from the source whatever it holds newer (anti-entropy, volume/anti_entropy.py): the
   writes and deletes after the last snapshot. Nothing the source held is missing once the
   answer says so.

A copy whose orderer goes away (the master or `weedpy shell` stopped, the connection cut)
is abandoned before its commit and leaves nothing; after the commit it stays.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Final

import orjson

from seaweed_py.errors import BadRequest, Conflict, WeedError
from seaweed_py.formats.crc import crc32c
from seaweed_py.formats.wire import (
    COPY_FILES,
    CRC_HEADER,
    AdminCall,
    CopyFileQuery,
    CopySnapshotQuery,
    CopySnapshotReport,
    CopyVolume,
)
from seaweed_py.httpkit.request import Request
from seaweed_py.httpkit.response import JSON_HEADERS, Response
from seaweed_py.httpkit.router import Handler
from seaweed_py.storage.volume_copy import IncomingCopy

if TYPE_CHECKING:
    from seaweed_py.volume.server import VolumeServer

__all__ = ["CopyHandlers"]

log = logging.getLogger(__name__)

_PIECE: Final = 4 << 20
_ROUNDS: Final = 8
_NDJSON: Final = b"Content-Type: application/x-ndjson\r\n"
_OCTETS: Final = b"Content-Type: application/octet-stream\r\n"
_PROGRESS_EVERY: Final = 1.0

Progress = Callable[[dict[str, Any]], None]


class CopyHandlers:
    def __init__(self, server: VolumeServer) -> None:
        self._server = server

    def routes(self) -> list[tuple[type[AdminCall], Handler]]:
        return [
            (CopySnapshotQuery, self.snapshot),
            (CopyFileQuery, self.file),
            (CopyVolume, self.copy),
        ]

    # ------------------------------------------------------------------ source

    async def snapshot(self, req: Request) -> Response:
        vid = CopySnapshotQuery.from_query(req.query).volume_id
        volume = self._server.store.require(vid)
        snap = await asyncio.to_thread(volume.copy_snapshot)
        report = CopySnapshotReport(
            vid,
            volume.collection,
            snap.dat_size,
            snap.idx_size,
            snap.stamps_size,
            snap.compact_revision,
            snap.vif.decode("utf-8", "replace"),
        )
        return Response(200, raw_headers=JSON_HEADERS, body=report.to_json())

    async def file(self, req: Request) -> Response:
        q = CopyFileQuery.from_query(req.query)
        volume = self._server.store.require(q.volume_id)
        data = await asyncio.to_thread(volume.read_for_copy, q.file, q.offset, q.size, q.revision)
        head = _OCTETS + f"{CRC_HEADER}: {crc32c(data):08x}\r\n".encode()
        return Response(200, raw_headers=head, body=data)

    # ------------------------------------------------------------------ target

    async def copy(self, req: Request) -> Response:
        """Refusals first, with their status (a volume held here 409, no slot 406, no room
        507, the source's own 404/409); then the copy answers in NDJSON while it runs."""
        order = CopyVolume.from_query(req.form())
        server = self._server
        vid, source = order.volume_id, order.source
        if source == server.url():
            raise BadRequest("a volume is not copied from its own server", volume_id=vid)
        existing = server.store.get(vid)
        if existing is not None and not existing.files_missing():
            raise Conflict("volume already exists on this server", volume_id=vid)
        snap = await server.peers.copy_snapshot(source, vid)
        if order.collection and snap.collection != order.collection:
            raise BadRequest(
                f"volume {vid} on {source} is in collection {snap.collection!r}, "
                f"not {order.collection!r}",
                volume_id=vid,
            )
        incoming = await asyncio.to_thread(
            server.store.begin_copy, vid, snap.collection, snap.dat_size, source
        )
        lines: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        task = asyncio.ensure_future(self._copy(order, snap, incoming, lines.put_nowait))
        return Response(200, raw_headers=_NDJSON, body=_relay(task, lines))

    async def _copy(
        self,
        order: CopyVolume,
        snap: CopySnapshotReport,
        incoming: IncomingCopy,
        progress: Progress,
    ) -> dict[str, Any]:
        server = self._server
        vid, source = order.volume_id, order.source
        admin = server.peers
        pace = _Pace(server.options.maintenance_mbps * (1 << 20), progress)
        rounds = 0
        try:
            done = dict.fromkeys(COPY_FILES, 0)
            while True:
                rounds += 1
                sizes = {"dat": snap.dat_size, "idx": snap.idx_size, "ats": snap.stamps_size}
                for file in COPY_FILES:
                    while done[file] < sizes[file]:
                        n = min(_PIECE, sizes[file] - done[file])
                        piece = CopyFileQuery(vid, file, done[file], n, snap.compact_revision)
                        data = await admin.copy_file(source, piece)
                        await asyncio.to_thread(incoming.write, file, done[file], data)
                        done[file] += n
                        server.stats.copy_bytes += n
                        await pace.took(n, snap.dat_size)
                latest = await admin.copy_snapshot(source, vid)
                if latest.compact_revision != snap.compact_revision:
                    raise Conflict(
                        f"volume {vid} was vacuumed on {source} during the copy", volume_id=vid
                    )
                caught_up = (latest.dat_size, latest.idx_size, latest.stamps_size) == (
                    snap.dat_size,
                    snap.idx_size,
                    snap.stamps_size,
                )
                if caught_up or rounds >= _ROUNDS:
                    break
                snap = latest  # what it appended meanwhile: another round
            volume = await asyncio.to_thread(incoming.commit, snap.vif.encode())
        except BaseException:
            await asyncio.shield(asyncio.to_thread(incoming.abort))
            raise
        server.stats.copies_received += 1
        server.link.poke()
        log.info("volume %d copied from %s (%d bytes, %d rounds)", vid, source, volume.size, rounds)
        report = await server.anti_entropy.pull(vid, source)
        return {"volume": vid, "size": volume.size, "rounds": rounds, "pulled": report.changed}


async def _relay(
    task: asyncio.Future[dict[str, Any]], lines: asyncio.Queue[dict[str, Any]]
) -> AsyncIterator[bytes]:
    """The copy's progress lines, then its result or `{"error"}`; the copy is abandoned if
    the orderer leaves first (module docstring)."""
    try:
        while not task.done():
            getter = asyncio.ensure_future(lines.get())
            await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                yield orjson.dumps(getter.result()) + b"\n"
            else:
                getter.cancel()
        try:
            result = task.result()
        except WeedError as exc:
            yield orjson.dumps({"error": exc.message}) + b"\n"
            return
        except OSError as exc:
            yield orjson.dumps({"error": f"{exc.strerror or exc}"}) + b"\n"
            return
        yield orjson.dumps(result) + b"\n"
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


class _Pace:
    """Sleeps to keep a copy at `rate` bytes per second on average (0: no limit), and sends a
    progress line at most once a second."""

    def __init__(self, rate: float, progress: Progress) -> None:
        self._rate = rate
        self._progress = progress
        self._start = self._last = time.monotonic()
        self._done = 0

    async def took(self, n: int, total: int) -> None:
        self._done += n
        now = time.monotonic()
        if self._rate:
            ahead = self._done / self._rate - (now - self._start)
            if ahead > 0:
                await asyncio.sleep(ahead)
        if now - self._last >= _PROGRESS_EVERY:
            self._last = now
            self._progress({"progress": True, "processed": self._done, "total": total})
