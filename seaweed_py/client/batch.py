"""Many blobs in few requests: the SDK side of `POST /batch/read` (`AsyncClient.download_many`).

    blobs = await client.download_many(["3,01637037d6", "3,02a1b2c3d4", "7,0b5e"])
    blobs["3,01637037d6"]          # bytes, or None when that blob does not exist

The fids are grouped by the volume server that holds their volume (one replica per volume,
chosen as single reads choose), and each server gets one `POST /batch/read` per 1,000 fids; the
servers are asked concurrently. The answer is `multipart/mixed`, one part per fid in request
order (`formats/multipart_mixed.py`), parsed as it streams in.

What each fid maps to:

| server's part | result |
|---|---|
| 200 | the blob's bytes (a gzip-stored blob uncompressed, a chunked file whole) and its name |
| 404, or the volume is unknown to the master | None, unless the volume has other replicas: then a plain `download` tries them |
| 401 (a read key is set) | a plain `download`, which fetches the read token |
| any other status, or a server that does not answer | a plain `download` from the replicas; its error (`CorruptNeedle`, `ServerUnreachable`...) is raised |

A server without `/batch/read` (the reference `weed`) answers with something other than
multipart/mixed: its fids are then read one GET each (16 at a time), so `download_many` works
against any SeaweedFS cluster.
"""

from __future__ import annotations

import asyncio
import email.message
import json
import os
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

import aiohttp

from seaweed_py.errors import BadRequest, NotFound, ServerUnreachable, VolumeNotFound
from seaweed_py.formats.multipart_mixed import MultipartMixedReader, Part, boundary_of

__all__ = [
    "MAX_BATCH",
    "BatchPlan",
    "Blob",
    "NoBatchEndpoint",
    "download_many",
    "one_by_one",
    "part_status",
    "plan_batches",
    "read_batch",
    "served_name",
]

MAX_BATCH: Final = 1000
"""Fids per `POST /batch/read` (the server refuses more)."""
FALLBACK_PARALLEL: Final = 16
_PIECE: Final = 256 << 10


class Blob(NamedTuple):
    """One blob read: its bytes and the file name its server sent (`""` when none)."""

    data: bytes
    name: str


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """One request: the server's address and the fids it is asked for (request order)."""

    address: str
    fids: tuple[str, ...]


def plan_batches(where: dict[str, str], order: Sequence[str]) -> list[BatchPlan]:
    """Group `order` (fids) by the address `where` maps each to, `MAX_BATCH` per request."""
    by_server: dict[str, list[str]] = {}
    for fid in order:
        address = where.get(fid)
        if address is not None:
            by_server.setdefault(address, []).append(fid)
    plans: list[BatchPlan] = []
    for address, fids in by_server.items():
        for i in range(0, len(fids), MAX_BATCH):
            plans.append(BatchPlan(address, tuple(fids[i : i + MAX_BATCH])))
    return plans


class NoBatchEndpoint(Exception):
    """The server answered the batch request with something that is not a batch answer."""


async def read_batch(
    session: aiohttp.ClientSession, url: str, fids: Sequence[str]
) -> dict[str, Part]:
    """The parts of one `POST /batch/read` by fid. `NoBatchEndpoint` when the server does not
    speak it; `ServerUnreachable` when it cannot be reached or the answer breaks off."""
    body = json.dumps({"fids": list(fids)}).encode()
    headers = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
    parts: dict[str, Part] = {}
    try:
        async with session.post(url, data=body, headers=headers) as resp:
            content_type = resp.headers.get("Content-Type", "")
            if resp.status != 200 or not content_type.lower().startswith("multipart/mixed"):
                await resp.read()
                raise NoBatchEndpoint(f"{url} answered {resp.status} {content_type}")
            reader = MultipartMixedReader(boundary_of(content_type))
            async for piece in resp.content.iter_chunked(_PIECE):
                for part in reader.feed(piece):
                    parts[part.content_id] = part
            reader.close()
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as exc:
        raise ServerUnreachable(f"batch read: {type(exc).__name__}: {exc}", url=url) from exc
    except BadRequest as exc:  # a broken multipart answer: the server's fault, not ours
        raise ServerUnreachable(f"batch read: {exc.message}", url=url) from exc
    return parts


def part_status(part: Part) -> int:
    text = part.headers.get("x-weedpy-status", "")
    return int(text) if text.isascii() and text.isdigit() else 0


async def one_by_one(
    fids: Sequence[str], download: Callable[[str], Awaitable[Blob]]
) -> dict[str, Blob | None]:
    """Each fid with a plain download, `FALLBACK_PARALLEL` at a time; not found → None."""
    gate = asyncio.Semaphore(FALLBACK_PARALLEL)
    results: dict[str, Blob | None] = {}

    async def one(fid: str) -> None:
        async with gate:
            try:
                results[fid] = await download(fid)
            except NotFound:
                results[fid] = None

    await _all(one(fid) for fid in fids)
    return results


async def _all(coros: Iterable[Coroutine[Any, Any, None]]) -> None:
    """Run every coroutine; the first error is raised once all have ended."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        done = await asyncio.gather(*tasks, return_exceptions=True)
    except BaseException:
        for t in tasks:
            t.cancel()
        raise
    for outcome in done:
        if isinstance(outcome, BaseException):
            raise outcome


async def download_many(
    order: Sequence[str],
    *,
    locate: Callable[[int], Awaitable[list[str]]],
    session: aiohttp.ClientSession,
    url: Callable[[str], str],
    download: Callable[[str], Awaitable[Blob]],
) -> dict[str, Blob | None]:
    """The engine of `AsyncClient.download_many` (module docstring). `locate(vid)` gives the
    addresses holding a volume in read order (VolumeNotFound when none); `url(address)` the
    batch URL; `download(fid)` a plain read of one blob."""
    vids = sorted({int(fid.partition(",")[0]) for fid in order})
    replicas: dict[int, list[str]] = {}

    async def find(vid: int) -> None:
        try:
            replicas[vid] = await locate(vid)
        except VolumeNotFound:
            replicas[vid] = []

    await _all(find(vid) for vid in vids)
    results: dict[str, Blob | None] = {}
    where: dict[str, str] = {}
    for fid in order:
        holders = replicas[int(fid.partition(",")[0])]
        if holders:
            where[fid] = holders[0]
        else:
            results[fid] = None
    again: list[str] = []  # read one by one afterwards

    async def batch(plan: BatchPlan) -> None:
        try:
            parts = await read_batch(session, url(plan.address), plan.fids)
        except (NoBatchEndpoint, ServerUnreachable):
            again.extend(plan.fids)
            return
        for fid in plan.fids:
            part = parts.get(fid)
            status = part_status(part) if part is not None else 0
            if part is not None and status == 200:
                results[fid] = Blob(part.body, served_name(part.headers))
            elif status == 404 and len(replicas[int(fid.partition(",")[0])]) <= 1:
                results[fid] = None
            else:
                again.append(fid)

    await _all(batch(plan) for plan in plan_batches(where, order))
    if again:
        results.update(await one_by_one(again, download))
    return {fid: results.get(fid) for fid in order}


def served_name(headers: Mapping[str, str]) -> str:
    """The file name in a Content-Disposition header, reduced to a safe base name."""
    disposition = headers.get("Content-Disposition") or headers.get("content-disposition", "")
    if not disposition:
        return ""
    message = email.message.Message()
    message["Content-Disposition"] = disposition
    name = os.path.basename((message.get_filename() or "").replace("\\", "/"))
    return "" if name in ("", ".", "..") else name
