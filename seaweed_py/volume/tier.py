"""The volume server's tiering calls (registered by `admin.py` behind the white list and the
cluster token, like every `/admin/` route).

The calls are `formats/wire.py`'s `TierUpload`, `TierDownload`, `TierMount`, `TierForget` and
`TierUploads`:

| call | does | answer |
|---|---|---|
| `POST /admin/volume/tier/upload?volume=&dest=&collection=[&keepLocalDatFile=true]` | `Store.tier_upload` | NDJSON: progress lines `{"progress": true, "processed": N, "percentage": P}` (at most one a second), then `{"backend", "key", "size", "already"}` |
| `POST /admin/volume/tier/download?volume=&collection=[&keepRemoteDatFile=true]` | `Store.tier_download` | NDJSON, then `{"backend", "key", "size"}` |
| `POST /admin/volume/tier/mount?volume=&source=&collection=[&key=][&replace=true]` | `Store.mount_remote` | `{"backend", "key", "size"}` |
| `POST /admin/volume/tier/forget?volume=&source=&key=` | `Store.forget_upload` | `{"deleted": [keys]}` |
| `GET /admin/volume/tier/uploads?volume=&source=` | `Store.list_uploads` | `{"keys": [data keys]}` |

What can be checked before the work starts is, and fails with its status (404 no such volume,
400 a collection that does not match or an unknown destination, 409 already local): the long
answers start only once the work has. A failure after that is the last line,
`{"error": "..."}` (one line, no secret), as weed's streamed RPCs end with an error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Final

import orjson

from seaweed_py.errors import BadRequest, WeedError
from seaweed_py.formats.wire import (
    AdminCall,
    TierDownload,
    TierForget,
    TierMount,
    TierUpload,
    TierUploads,
)
from seaweed_py.httpkit.request import Request
from seaweed_py.httpkit.response import Response, json_response
from seaweed_py.httpkit.router import Handler
from seaweed_py.storage.backend import backend_name

if TYPE_CHECKING:
    from seaweed_py.volume.server import VolumeServer

__all__ = ["TierHandlers"]

_NDJSON: Final = b"Content-Type: application/x-ndjson\r\n"
_PROGRESS_EVERY: Final = 1.0


class TierHandlers:
    def __init__(self, server: VolumeServer) -> None:
        self._server = server

    def routes(self) -> list[tuple[type[AdminCall], Handler]]:
        """(message, handler) of each route, for `admin.py` to register."""
        return [
            (TierUpload, self.upload),
            (TierDownload, self.download),
            (TierMount, self.mount),
            (TierForget, self.forget),
            (TierUploads, self.uploads),
        ]

    def upload(self, req: Request) -> Response:
        order = TierUpload.from_query(req.form())
        vid = order.volume_id
        store = self._server.store
        dest = _backend(order.dest)
        store.check_tierable(vid, dest, order.collection)
        keep = order.keep_local

        def work(progress: Callable[[int], None]) -> dict[str, Any]:
            remote, already = store.tier_upload(vid, dest, keep_local=keep, progress=progress)
            return {
                "backend": f"{remote.backend_type}.{remote.backend_id}",
                "key": remote.key,
                "size": remote.file_size,
                "already": already,
            }

        total = store.dat_size(vid)
        return self._streamed(work, total)

    def download(self, req: Request) -> Response:
        order = TierDownload.from_query(req.form())
        vid = order.volume_id
        store = self._server.store
        remote = store.check_downloadable(vid, order.collection)
        keep = order.keep_remote

        def work(progress: Callable[[int], None]) -> dict[str, Any]:
            done = store.tier_download(vid, keep_remote=keep, progress=progress)
            return {
                "backend": f"{done.backend_type}.{done.backend_id}",
                "key": done.key,
                "size": done.file_size,
            }

        return self._streamed(work, remote.file_size)

    async def mount(self, req: Request) -> Response:
        order = TierMount.from_query(req.form())
        vid = order.volume_id
        source = _backend(order.source or "s3")
        volume = await asyncio.to_thread(
            self._server.store.mount_remote,
            vid,
            order.collection or "",
            source,
            key=order.key,
            replace=order.replace,
        )
        self._server.link.poke()
        remote = volume.remote
        assert remote is not None
        return json_response(
            {"backend": source, "key": remote.key, "size": remote.file_size, "volume": vid}
        )

    async def forget(self, req: Request) -> Response:
        order = TierForget.from_query(req.form())
        source = _backend(order.source or "s3")
        deleted = await asyncio.to_thread(
            self._server.store.forget_upload, order.volume_id, source, order.key
        )
        return json_response({"deleted": deleted})

    async def uploads(self, req: Request) -> Response:
        order = TierUploads.from_query(req.form())
        source = _backend(order.source or "s3")
        keys = await asyncio.to_thread(self._server.store.list_uploads, order.volume_id, source)
        return json_response({"keys": keys})

    def _streamed(
        self, work: Callable[[Callable[[int], None]], dict[str, Any]], total: int
    ) -> Response:
        return Response(200, raw_headers=_NDJSON, body=self._lines(work, total))

    async def _lines(
        self, work: Callable[[Callable[[int], None]], dict[str, Any]], total: int
    ) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        done = [0]
        last = [time.monotonic()]

        def progress(n: int) -> None:  # a worker thread
            done[0] += n
            now = time.monotonic()
            if now - last[0] >= _PROGRESS_EVERY:
                last[0] = now
                line = {
                    "progress": True,
                    "processed": done[0],
                    "percentage": round(100.0 * done[0] / total, 2) if total else 100.0,
                }
                loop.call_soon_threadsafe(lines.put_nowait, line)

        task = asyncio.ensure_future(asyncio.to_thread(work, progress))
        try:
            while not task.done():
                getter = asyncio.ensure_future(lines.get())
                await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield orjson.dumps(getter.result()) + b"\n"
                else:
                    getter.cancel()
            while not lines.empty():
                lines.get_nowait()
            try:
                result = task.result()
            except WeedError as exc:
                yield orjson.dumps({"error": exc.message}) + b"\n"
                return
            except OSError as exc:
                yield orjson.dumps({"error": f"{exc.strerror or exc}"}) + b"\n"
                return
            self._server.link.poke()
            yield orjson.dumps(result) + b"\n"
        finally:
            if not task.done():
                # The client left: the work goes on to a consistent end, unobserved.
                task.add_done_callback(lambda t: t.cancelled() or t.exception())


def _backend(text: str) -> str:
    try:
        return backend_name(text)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
