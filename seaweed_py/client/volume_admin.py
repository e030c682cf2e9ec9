"""Admin calls to a volume server: the master's, the shell's and the tiering sequences'
(docs/internals.md "Master ↔ volume protocol").

Each call is one message of `formats/wire.py` sent to the volume server's own port through an
`HttpClient` (`client/http.py`), with a cluster token when a signing key is set. Failures raise
as that layer says: `ServerUnreachable` when the server may or may not have acted, else the
error of the status it answered, 404 narrowed to `VolumeNotFound`, 406 to `NoFreeSlots` and 502
to `RemoteStorageError` (the bucket behind a tiered volume failed).

The tiering calls and a volume copy answer in NDJSON while they work: progress lines, then the
result (or `{"error": ...}` when they failed after the answer began). They have no overall
deadline (a large volume takes as long as it takes); a silence of `silence` seconds (by default
`_TIER_SILENCE`) fails them, as it bounds a mount's whole answer: a frozen server fails the call
instead of hanging it.

The replica calls (anti-entropy, copies, scrubs; docs/internals.md "Replica anti-entropy") read
whole volumes on the other side: digests and needle lists wait up to `_SCAN` seconds, a pull
(`sync`) and a scrub up to `_LONG` seconds of silence. A piece of a copied file is checked
against the CRC-32C its server sent (`CRC_HEADER`): a mismatch is `ServerUnreachable`, as any
transfer that did not arrive whole.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from seaweed_py import errors
from seaweed_py.client.http import HttpClient, Timeout, json_object
from seaweed_py.formats.crc import crc32c
from seaweed_py.formats.replica_digest import NeedleState
from seaweed_py.formats.wire import (
    CRC_HEADER,
    STAMP_HEADER,
    AdminCall,
    CopyFileQuery,
    CopySnapshotQuery,
    CopySnapshotReport,
    CopyVolume,
    NeedleRecordQuery,
    NeedleStatesQuery,
    ScrubOrder,
    ScrubReport,
    SyncOrder,
    SyncReport,
    TierDownload,
    TierForget,
    TierMount,
    TierUpload,
    TierUploads,
    VacuumCheck,
    VacuumCheckAnswer,
    VacuumCleanup,
    VacuumCommit,
    VacuumCommitAnswer,
    VacuumCompact,
    VacuumCompactAnswer,
    VolumeDigest,
    VolumeDigestQuery,
    VolumeReport,
    VolumeStatusQuery,
    decode_states,
)

__all__ = ["VolumeAdmin"]

_NARROW: Final[dict[int, type[errors.WeedError]]] = {
    404: errors.VolumeNotFound,
    406: errors.NoFreeSlots,
    502: errors.RemoteStorageError,
}
_TIER_SILENCE: Final = 120.0
_SCAN: Final = Timeout(total=600, connect=5)
_LONG: Final = Timeout(total=None, connect=5, read=3600)
_NEEDLE_NARROW: Final[dict[int, type[errors.WeedError]]] = {
    **_NARROW,
    404: errors.NeedleNotFound,
}

Progress = Callable[[dict[str, Any]], None]


class VolumeAdmin:
    """Admin calls over one `HttpClient` (the caller starts and closes it)."""

    def __init__(self, http: HttpClient) -> None:
        self._http = http

    async def send(
        self, server: str, message: AdminCall, *, timeout: Timeout | None = None
    ) -> bytes:
        """Send `message` to `server` (`host:port`); the answer's body."""
        reply = await self._http.call(
            message.METHOD,
            server,
            message.PATH,
            params=message.to_query(),
            cluster=True,
            narrow=_NARROW,
            timeout=timeout,
        )
        return reply.body

    async def volume_status(
        self, server: str, vid: int, *, timeout: Timeout | None = None
    ) -> VolumeReport:
        return VolumeReport.from_json(
            await self.send(server, VolumeStatusQuery(vid), timeout=timeout)
        )

    # ------------------------------------------------------------------ replicas

    async def digest(self, server: str, vid: int) -> VolumeDigest:
        return VolumeDigest.from_json(
            await self.send(server, VolumeDigestQuery(vid), timeout=_SCAN)
        )

    async def needle_states(
        self, server: str, vid: int, buckets: tuple[int, ...] | None
    ) -> list[NeedleState]:
        body = await self.send(server, NeedleStatesQuery(vid, buckets), timeout=_SCAN)
        return decode_states(body)

    async def needle_record(self, server: str, vid: int, key: int) -> tuple[bytes, int]:
        """The live needle's raw record on `server` and the time it stands for;
        `NeedleNotFound` when it is not live there (any more)."""
        order = NeedleRecordQuery(vid, key)
        reply = await self._http.call(
            order.METHOD,
            server,
            order.PATH,
            params=order.to_query(),
            cluster=True,
            narrow=_NEEDLE_NARROW,
            timeout=_SCAN,
        )
        try:
            stamp = int(reply.headers.get(STAMP_HEADER, ""))
        except ValueError:
            raise errors.ServerUnreachable(
                f"{server} sent a record without its {STAMP_HEADER}", server=server
            ) from None
        return reply.body, stamp

    async def sync(self, server: str, vid: int, peer: str) -> SyncReport:
        """Have `server` pull from `peer` what `peer` holds newer of volume `vid`."""
        return SyncReport.from_json(await self.send(server, SyncOrder(vid, peer), timeout=_LONG))

    async def scrub(self, server: str, vid: int | None = None) -> ScrubReport:
        return ScrubReport.from_json(await self.send(server, ScrubOrder(vid), timeout=_LONG))

    # ------------------------------------------------------------------ copies

    async def copy_snapshot(self, server: str, vid: int) -> CopySnapshotReport:
        return CopySnapshotReport.from_json(await self.send(server, CopySnapshotQuery(vid)))

    async def copy_file(self, server: str, piece: CopyFileQuery) -> bytes:
        """One piece of a volume's file, checked against the CRC its server sent."""
        reply = await self._http.call(
            piece.METHOD,
            server,
            piece.PATH,
            params=piece.to_query(),
            cluster=True,
            narrow=_NARROW,
            timeout=_SCAN,
        )
        body = reply.body
        sent = reply.headers.get(CRC_HEADER, "")
        if len(body) != piece.size or sent != f"{crc32c(body):08x}":
            raise errors.ServerUnreachable(
                f"{piece.file} of volume {piece.volume_id} at {piece.offset} from {server} "
                f"arrived damaged ({len(body)} of {piece.size} bytes, crc {sent or 'missing'})",
                server=server,
            )
        return body

    async def copy_volume(
        self, server: str, order: CopyVolume, progress: Progress | None = None
    ) -> dict[str, Any]:
        """Have `server` copy a volume from `order.source`; its final line once done."""
        return await self._stream(server, order, progress)

    async def tier_upload(
        self,
        server: str,
        vid: int,
        *,
        dest: str,
        collection: str = "",
        keep_local: bool = False,
        progress: Progress | None = None,
        silence: float = _TIER_SILENCE,
    ) -> dict[str, Any]:
        """Move volume `vid`'s `.dat` on `server` to the bucket `dest` names; the answer
        (`backend`, `key`, `size`, `already`) once done, `progress` called with each progress
        line."""
        order = TierUpload(vid, dest, collection, keep_local)
        return await self._stream(server, order, progress, silence)

    async def tier_download(
        self,
        server: str,
        vid: int,
        *,
        collection: str = "",
        keep_remote: bool = False,
        progress: Progress | None = None,
        silence: float = _TIER_SILENCE,
    ) -> dict[str, Any]:
        """Bring volume `vid`'s `.dat` back to `server`'s disk (deleting the object unless
        `keep_remote`)."""
        order = TierDownload(vid, collection, keep_remote)
        return await self._stream(server, order, progress, silence)

    async def tier_mount(
        self,
        server: str,
        vid: int,
        *,
        source: str,
        collection: str = "",
        key: str = "",
        replace: bool = False,
        silence: float = _TIER_SILENCE,
    ) -> dict[str, Any]:
        """Mount volume `vid` on `server` from the bucket `source` names (see `TierMount`)."""
        order = TierMount(vid, source, collection, key, replace)
        timeout = Timeout(total=silence, connect=5)
        return json_object(await self.send(server, order, timeout=timeout))

    async def tier_forget(
        self, server: str, vid: int, *, source: str, key: str, timeout: Timeout | None = None
    ) -> list[str]:
        """Have `server` delete the earlier upload `key` of volume `vid` from the bucket
        `source` names (see `TierForget`); the keys deleted."""
        answer = json_object(await self.send(server, TierForget(vid, source, key), timeout=timeout))
        return [str(k) for k in answer.get("deleted") or []]

    async def tier_uploads(
        self, server: str, vid: int, *, source: str, timeout: Timeout | None = None
    ) -> list[str]:
        """The data keys of every upload of volume `vid` in the bucket `source` names, as
        `server` lists them (see `TierUploads`)."""
        answer = json_object(await self.send(server, TierUploads(vid, source), timeout=timeout))
        return [str(k) for k in answer.get("keys") or []]

    async def vacuum_check(self, server: str, vid: int, *, timeout: float) -> float:
        """The garbage ratio of `vid` on `server` (spec §9.1)."""
        answer = await self.send(
            server, VacuumCheck(vid), timeout=Timeout(total=timeout, connect=5.0)
        )
        return VacuumCheckAnswer.from_json(answer).garbage_ratio

    async def vacuum_compact(
        self, server: str, vid: int, *, preallocate: int = 0, timeout: float
    ) -> VacuumCompactAnswer:
        """Copy the live needles of `vid` into its `.cpd`/`.cpx` on `server` (reads and writes
        go on); answered once done, with what was copied and left behind."""
        order = VacuumCompact(vid, preallocate)
        return VacuumCompactAnswer.from_json(
            await self.send(server, order, timeout=Timeout(total=timeout, connect=5.0))
        )

    async def vacuum_commit(self, server: str, vid: int, *, timeout: float) -> VacuumCommitAnswer:
        """Swap the compacted files of `vid` in on `server`."""
        answer = await self.send(
            server, VacuumCommit(vid), timeout=Timeout(total=timeout, connect=5.0)
        )
        return VacuumCommitAnswer.from_json(answer)

    async def vacuum_cleanup(self, server: str, vid: int) -> None:
        """Drop an uncommitted compaction of `vid` on `server`."""
        await self.send(server, VacuumCleanup(vid))

    async def _stream(
        self,
        server: str,
        message: TierUpload | TierDownload | CopyVolume,
        progress: Progress | None,
        silence: float = _TIER_SILENCE,
    ) -> dict[str, Any]:
        what = f"{message.METHOD} {message.PATH}"
        last: dict[str, Any] = {}
        async for line in self._http.lines(
            message.METHOD,
            server,
            message.PATH,
            what=what,
            narrow=_NARROW,
            params=message.to_query(),
            cluster=True,
            timeout=Timeout(total=None, connect=5, read=silence),
        ):
            if not line.strip():
                continue
            last = json_object(line)
            if "error" in last:
                raise errors.WeedError(f"{what}: {last['error']}", server=server)
            if last.get("progress") and progress is not None:
                progress(last)
        if last.get("progress") or not last:
            raise errors.ServerUnreachable(f"{what}: the answer broke off", server=server)
        return last
