"""The volume server's status page (`/ui/index.html`) and the stylesheet it uses: the server at
a glance, the space of each `-dir`, request rates of the last minute, and every volume."""

from __future__ import annotations

import html
import time
from typing import TYPE_CHECKING

from seaweed_py.httpkit.pages import (
    STYLESHEET_PATH,
    Cell,
    facts,
    fill_bar,
    human_bytes,
    human_duration,
    human_rate,
    page,
    stylesheet,
    table,
)
from seaweed_py.httpkit.request import Request
from seaweed_py.httpkit.response import Response
from seaweed_py.httpkit.router import Router
from seaweed_py.volume.disks import DiskUsage
from seaweed_py.volume.stats import is_full, volume_counts

if TYPE_CHECKING:
    from seaweed_py.volume.server import VolumeServer

__all__ = ["StatusPage"]


class StatusPage:
    """`/ui/index.html` and the stylesheet of one `VolumeServer` (open to everyone, as the
    reference's UI: nothing on it is secret)."""

    def __init__(self, server: VolumeServer) -> None:
        self._server = server

    def register(self, r: Router) -> None:
        # Not served while a signing key is set, unless `access.ui` (VolumeServer.ui_served).
        if self._server.ui_served():
            r.add("/ui/index.html", self.render, ["GET"])
        r.add(STYLESHEET_PATH, stylesheet, ["GET"])

    async def render(self, req: Request) -> Response:
        s = self._server
        disks = await s.stats.refresh_disks()
        return page(
            "weedpy volume server",
            s.url(),
            [
                ("Server", self._facts()),
                ("Disks", _disks(disks)),
                ("Requests, last minute", self._rates()),
                ("Volumes", self._volumes()),
            ],
        )

    def _facts(self) -> str:
        s = self._server
        e = html.escape
        store = s.store
        counts = volume_counts(store)
        link = s.link
        master_state = (
            "<span class='ok'>connected</span>"
            if link.heartbeating
            else "<span class='bad'>not answering</span>"
        )
        placement = f"{s.options.data_center or '-'} / {s.options.rack or '-'}"
        return facts(
            [
                ("Version", e(s.stats.version)),
                ("Uptime", human_duration(s.stats.uptime())),
                ("Master", f"{e(link.master)} <small>{master_state}</small>"),
                ("Data center / rack", e(placement)),
                (
                    "Volumes",
                    f"{counts.writable + counts.full + counts.read_only} <small class='muted'>"
                    f"{counts.full} full, {counts.read_only} read-only</small>",
                ),
                (
                    "Free slots",
                    f"{store.free_slots} <small class='muted'>of {store.max_volume_count}</small>",
                ),
                ("Stored", human_bytes(counts.size)),
                ("Live needles", f"{counts.needles:,}"),
                ("Garbage", human_bytes(counts.deleted_bytes)),
            ]
        )

    def _rates(self) -> str:
        stats = self._server.stats
        rows = [
            [
                rate.name,
                Cell(human_rate(rate.requests), numeric=True),
                Cell(human_rate(rate.errors), numeric=True),
                Cell(f"{human_bytes(rate.received)}/s", numeric=True),
                Cell(f"{human_bytes(rate.sent)}/s", numeric=True),
                Cell(f"{rate.total:,}", numeric=True),
            ]
            for rate in stats.recent.rates(time.monotonic())
        ]
        return table(
            ["Operation", "Requests", "Errors (5xx)", "Received", "Sent", "Since start"], rows
        )

    def _volumes(self) -> str:
        store = self._server.store
        limit = store.volume_size_limit
        rows = []
        for v in sorted(store.volume_infos(), key=lambda v: v.id):
            if v.read_only:
                state = "<span class='warn'>read-only</span>"
            elif is_full(v.size, limit):
                state = "<span class='warn'>full</span>"
            else:
                state = "<span class='ok'>writable</span>"
            rows.append(
                [
                    v.id,
                    v.collection or "-",
                    Cell(fill_bar(v.size / limit if limit else 0.0, human_bytes(v.size))),
                    max(0, v.file_count - v.delete_count),
                    v.delete_count,
                    Cell(human_bytes(v.deleted_byte_count), numeric=True),
                    Cell(f"{v.garbage_ratio:.1%}", numeric=True),
                    str(v.replica_placement),
                    str(v.ttl) or "-",
                    Cell(state),
                ]
            )
        return table(
            [
                "Id",
                "Collection",
                "Size",
                "Files",
                "Deleted",
                "Garbage",
                "Garbage ratio",
                "Replication",
                "TTL",
                "State",
            ],
            rows,
            empty="no volumes yet: the master creates them on demand",
        )


def _disks(disks: list[DiskUsage]) -> str:
    rows = []
    for d in disks:
        if d.error:
            rows.append([d.directory, Cell(f"<span class='bad'>{html.escape(d.error)}</span>")])
            continue
        rows.append(
            [
                d.directory,
                Cell(human_bytes(d.total), numeric=True),
                Cell(human_bytes(d.used), numeric=True),
                Cell(human_bytes(d.free), numeric=True),
                Cell(fill_bar(d.used_fraction)),
            ]
        )
    return table(["Directory", "Size", "Used", "Free", "Usage"], rows)
