"""The metrics of one volume server and their Prometheus exposition (names: docs/metrics.md).

Handlers bump plain integer attributes (no lock, no label lookup on the hot path: one event
loop owns them) and the blob route reports each answer to `observe_blob`; a custom collector
turns the counts, the store's state and the disks' space into metric families only when
`/metrics` is scraped. Each server has its own `CollectorRegistry` (with the process and
Python runtime collectors of prometheus-client), so several servers can live in one process.

With several workers (`-workers=N`) a scrape reaches one of them. The healing counters
(`HEALING`: anti-entropy, scrubber, repairs and copies, which run in the leader or in whichever
worker was asked) count in the workers' share, one row per worker, and every worker reports
their sum (`share`); the other counters are the answering worker's own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)

from seaweed_py.httpkit.metrics import RecentRates, RequestMetrics
from seaweed_py.httpkit.request import Request
from seaweed_py.storage.shared import COUNTERS, WorkerShare
from seaweed_py.storage.store import Store
from seaweed_py.storage.volume_vacuum import CommitResult, CompactResult
from seaweed_py.volume.disks import DiskUsage, disk_usages

__all__ = [
    "FULL_FRACTION",
    "HEALING",
    "OPERATIONS",
    "Stats",
    "VacuumStats",
    "VolumeCounts",
    "is_full",
    "volume_counts",
]

OPERATIONS = ("read", "write", "delete", "replicate", "admin")
"""What the request metrics are labelled with: blob reads (GET/HEAD), writes (POST/PUT) and
deletes from clients, `type=replicate` writes and deletes from other volume servers, and the
master's `/admin/...` calls."""


HEALING = (
    "replica_checks",  # digest comparisons with a peer
    "replica_repairs",  # needles and deletes pulled from a peer
    "scrubbed_needles",
    "scrubbed_bytes",
    "scrub_passes",  # complete passes over every volume
    "scrub_corrupt",  # rotted needles the scrubber found
    "needle_repairs",  # rotted needles replaced by a replica's sound copy
    "read_repairs",  # reads of a rotted needle answered with a replica's bytes
    "copies_received",  # volumes copied here from another server
    "copy_bytes",  # bytes of volume files copied here
)
"""The counters of volume/anti_entropy.py, scrubber.py, repair.py and copy.py, summed over the
workers (module docstring)."""
assert len(HEALING) <= COUNTERS


class _Healing:
    """A healing counter: this worker's own count (`+=` adds to it; `Stats.total` sums)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._index = HEALING.index(name)

    def __get__(self, stats: Stats, owner: type | None = None) -> int:
        return int(stats._healing[self._index])

    def __set__(self, stats: Stats, value: int) -> None:
        stats._healing[self._index] = value


class VacuumStats:
    """What vacuum did on this server since start (docs/metrics.md)."""

    STEPS = ("compact", "commit")

    def __init__(self) -> None:
        self.done = dict.fromkeys(self.STEPS, 0)
        self.failures = dict.fromkeys(self.STEPS, 0)
        self.seconds = dict.fromkeys(self.STEPS, 0.0)
        self.copied_bytes = 0
        self.reclaimed_bytes = 0
        self.dropped_expired = 0
        self.dropped_corrupt = 0
        self.expired_volumes_removed = 0

    def failed(self, step: str) -> None:
        self.failures[step] += 1

    def compacted(self, result: CompactResult) -> None:
        self.done["compact"] += 1
        self.seconds["compact"] += result.seconds
        self.copied_bytes += result.copied_bytes
        self.dropped_expired += result.expired
        self.dropped_corrupt += result.corrupt

    def committed(self, result: CommitResult) -> None:
        self.done["commit"] += 1
        self.seconds["commit"] += result.seconds
        self.reclaimed_bytes += result.reclaimed

    def families(self) -> Iterator[Metric]:
        steps = CounterMetricFamily(
            "weedpy_volume_vacuum_steps",
            "Vacuum compactions and commits on this server, by result.",
            labels=["step", "result"],
        )
        durations = SummaryMetricFamily(
            "weedpy_volume_vacuum_duration_seconds",
            "Time spent in finished vacuum compactions and commits.",
            labels=["step"],
        )
        for step in self.STEPS:
            steps.add_metric([step, "done"], self.done[step])
            steps.add_metric([step, "failed"], self.failures[step])
            durations.add_metric([step], self.done[step], self.seconds[step])
        yield steps
        yield durations
        dropped = CounterMetricFamily(
            "weedpy_volume_vacuum_dropped_needles",
            "Live needles a compaction did not copy: their TTL had passed, or they were corrupt.",
            labels=["reason"],
        )
        dropped.add_metric(["expired"], self.dropped_expired)
        dropped.add_metric(["corrupt"], self.dropped_corrupt)
        yield dropped
        for name, help_text, value in (
            (
                "weedpy_volume_vacuum_copied_bytes",
                "Bytes of live needles copied by compactions.",
                self.copied_bytes,
            ),
            (
                "weedpy_volume_vacuum_reclaimed_bytes",
                "Bytes of .dat freed by committed vacuums.",
                self.reclaimed_bytes,
            ),
            (
                "weedpy_volume_expired_volumes_removed",
                "TTL volumes deleted after they expired.",
                self.expired_volumes_removed,
            ),
        ):
            yield CounterMetricFamily(name, help_text, value=value)


class Stats:
    """Counters since start, plus what is read from the store and the disks at scrape time."""

    def __init__(
        self,
        store: Store,
        directories: Sequence[str],
        *,
        version: str,
        heartbeating: Callable[[], bool],
        inflight_uploads: Callable[[], int] = lambda: 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.write_errors = 0
        self.replica_failures = 0
        self.bytes_written = 0
        self.corrupt_reads = 0  # reads answered "corrupt"
        self.verify_reads = 0  # large needles whose data was read to check its CRC
        self.verify_memo_hits = 0  # large needles a remembered verification vouched for
        self.vacuum = VacuumStats()
        self._healing: list[int] | memoryview = [0] * COUNTERS
        self._share: WorkerShare | None = None
        self._clock = clock
        self.started = clock()
        self.version = version
        self.requests = RequestMetrics("weedpy_volume")
        self.read, self.write, self.delete, self.replicate, self.admin = (
            self.requests.operation(name) for name in OPERATIONS
        )
        self.recent = RecentRates(self.requests)
        self.disks: list[DiskUsage] = []
        """As of the last `refresh_disks`."""
        self._store = store
        self._directories = tuple(directories)
        self._heartbeating = heartbeating
        self._inflight_uploads = inflight_uploads
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))
        self.registry.register(self.requests)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    replica_checks = _Healing()
    replica_repairs = _Healing()
    scrubbed_needles = _Healing()
    scrubbed_bytes = _Healing()
    scrub_passes = _Healing()
    scrub_corrupt = _Healing()
    needle_repairs = _Healing()
    read_repairs = _Healing()
    copies_received = _Healing()
    copy_bytes = _Healing()

    def share(self, share: WorkerShare, worker: int) -> None:
        """Count healing in the share's row of worker `worker` (module docstring); what was
        counted before goes there too (a restarted worker's row goes on from its last)."""
        row = share.counters(worker)
        for i, count in enumerate(self._healing):
            row[i] += count
        self._healing, self._share = row, share

    def total(self, name: str) -> int:
        """Healing counter `name`, summed over every worker."""
        share = self._share
        index = HEALING.index(name)
        return int(self._healing[index]) if share is None else share.counter_total(index)

    def observe_blob(self, req: Request, status: int, seconds: float, sent: int) -> None:
        """The blob route's observer: the operation follows from the method and `type`."""
        method = req.method
        if method == "GET" or method == "HEAD":  # the hot path: a read has no body to count
            self.read.observe(status, seconds, 0, sent)
            return
        stream = req.stream
        received = len(req.body) if stream is None else stream.received
        if req.query_string and req.query.get("type") == "replicate":
            operation = self.replicate
        elif method == "DELETE":
            operation = self.delete
        else:  # POST, PUT, and the odd methods the blob handler refuses
            operation = self.write
        operation.observe(status, seconds, received, sent)

    def uptime(self) -> float:
        return self._clock() - self.started

    async def refresh_disks(self) -> list[DiskUsage]:
        self.disks = await asyncio.to_thread(disk_usages, self._directories)
        return self.disks

    async def exposition(self) -> bytes:
        await self.refresh_disks()
        return bytes(generate_latest(self.registry))


class VolumeCounts:
    """The store's volumes summed up: by state, needles, bytes."""

    __slots__ = ("deleted_bytes", "full", "needles", "read_only", "size", "writable")

    def __init__(self) -> None:
        self.writable = self.full = self.read_only = 0
        self.needles = self.size = self.deleted_bytes = 0


FULL_FRACTION = 0.9
"""A volume whose `.dat` reached this fraction of the size limit counts as full: the master's
crowded line, where it grows other volumes beside it (an append past the limit is refused)."""


def is_full(size: int, limit: int) -> bool:
    return bool(limit) and size >= FULL_FRACTION * limit


def volume_counts(store: Store) -> VolumeCounts:
    """A volume is read-only if marked so (or turned so by an error), else full (`is_full`),
    else writable."""
    counts = VolumeCounts()
    limit = store.volume_size_limit
    for v in store.volume_infos():
        if v.read_only:
            counts.read_only += 1
        elif is_full(v.size, limit):
            counts.full += 1
        else:
            counts.writable += 1
        counts.needles += max(0, v.file_count - v.delete_count)
        counts.size += v.size
        counts.deleted_bytes += v.deleted_byte_count
    return counts


class _Collector:
    def __init__(self, stats: Stats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        s = self._stats
        store = s._store
        info = GaugeMetricFamily(
            "weedpy_volume_info", "Always 1; labelled with the version.", labels=["version"]
        )
        info.add_metric([s.version], 1)
        yield info
        yield GaugeMetricFamily(
            "weedpy_volume_start_time_seconds",
            "When the volume server started (Unix time).",
            value=s.started,
        )
        yield GaugeMetricFamily(
            "weedpy_volume_master_connected",
            "1 while the master answers heartbeats, else 0.",
            value=1 if s._heartbeating() else 0,
        )
        counts = volume_counts(store)
        volumes = GaugeMetricFamily(
            "weedpy_volume_volumes",
            "Volumes on this server by state: writable, full (reached the size limit) or "
            "read_only.",
            labels=["state"],
        )
        volumes.add_metric(["writable"], counts.writable)
        volumes.add_metric(["full"], counts.full)
        volumes.add_metric(["read_only"], counts.read_only)
        yield volumes
        yield CounterMetricFamily(
            "weedpy_volume_corrupt_reads",
            "Reads answered 500 because the needle's stored bytes fail their checks.",
            value=s.corrupt_reads,
        )
        verifications = CounterMetricFamily(
            "weedpy_volume_needle_verifications",
            "Large needles checked before streaming: data read, or a remembered verdict.",
            labels=["how"],
        )
        verifications.add_metric(["read"], s.verify_reads)
        verifications.add_metric(["memo"], s.verify_memo_hits)
        yield verifications
        for name, help_text, value in (
            ("weedpy_volume_needles", "Live needles on this server.", counts.needles),
            ("weedpy_volume_size_bytes", "Bytes of the .dat files on this server.", counts.size),
            (
                "weedpy_volume_garbage_bytes",
                "Bytes of deleted needles still in .dat files (reclaimed by vacuum).",
                counts.deleted_bytes,
            ),
            ("weedpy_volume_max_volumes", "Volume slots in total.", store.max_volume_count),
            ("weedpy_volume_free_slots", "Volumes that can still be created.", store.free_slots),
            (
                "weedpy_volume_inflight_upload_bytes",
                "Upload body bytes in flight, as -concurrentUploadLimitMB counts them.",
                s._inflight_uploads(),
            ),
            (
                "weedpy_volume_corrupt_needles",
                "Live needles found corrupt (on load or by a read) and not yet repaired.",
                sum(len(v.corrupt_needles()) for v in store.volumes()),
            ),
        ):
            yield GaugeMetricFamily(name, help_text, value=value)
        yield from _disk_families(s.disks)
        yield from _tier_families(store)
        yield from _journal_families(store)
        yield from s.vacuum.families()
        ratios = GaugeMetricFamily(
            "weedpy_volume_garbage_ratio",
            "Deleted over content bytes of each volume (spec 9.1); vacuum at -garbageThreshold.",
            labels=["volume", "collection"],
        )
        for v in store.volume_infos():
            ratios.add_metric([str(v.id), v.collection], v.garbage_ratio)
        yield ratios
        for name, help_text, count in (
            ("weedpy_volume_write_errors", "Writes that failed.", s.write_errors),
            (
                "weedpy_volume_replica_failures",
                "Writes or deletes a replica did not store.",
                s.replica_failures,
            ),
            ("weedpy_volume_written_bytes", "Bytes of blob data written.", s.bytes_written),
            (
                "weedpy_volume_replica_checks",
                "Comparisons of a volume's digests with a peer's (anti-entropy).",
                s.total("replica_checks"),
            ),
            (
                "weedpy_volume_replica_repairs",
                "Needles and deletes pulled from a peer that held them newer.",
                s.total("replica_repairs"),
            ),
            (
                "weedpy_volume_scrubbed_needles",
                "Needles the scrubber checked.",
                s.total("scrubbed_needles"),
            ),
            ("weedpy_volume_scrubbed_bytes", "Bytes the scrubber read.", s.total("scrubbed_bytes")),
            (
                "weedpy_volume_scrub_passes",
                "Complete scrubber passes over every volume.",
                s.total("scrub_passes"),
            ),
            (
                "weedpy_volume_scrub_corrupt",
                "Corrupt needles the scrubber found (each counted once per pass).",
                s.total("scrub_corrupt"),
            ),
            (
                "weedpy_volume_needle_repairs",
                "Corrupt needles replaced by a replica's sound copy.",
                s.total("needle_repairs"),
            ),
            (
                "weedpy_volume_read_repairs",
                "Reads of a corrupt needle answered with a replica's bytes instead of a 500.",
                s.total("read_repairs"),
            ),
            (
                "weedpy_volume_copies_received",
                "Volumes copied here from another server (re-replication, moves).",
                s.total("copies_received"),
            ),
            (
                "weedpy_volume_copy_bytes",
                "Bytes of volume files copied here.",
                s.total("copy_bytes"),
            ),
        ):
            yield CounterMetricFamily(name, help_text, value=count)


def _journal_families(store: Store) -> Iterator[Metric]:
    """Group commit at work (storage/journal.py): appends / syncs is the writes per round."""
    appends = CounterMetricFamily(
        "weedpy_volume_journal_appends", "Records written to the disk's journal.", labels=["dir"]
    )
    syncs = CounterMetricFamily(
        "weedpy_volume_journal_syncs",
        "Group-commit rounds of this process: fdatasyncs of the journal.",
        labels=["dir"],
    )
    checkpoints = CounterMetricFamily(
        "weedpy_volume_journal_checkpoints",
        "Journal checkpoints: every volume of the disk synced, older entries let go.",
        labels=["dir"],
    )
    background = GaugeMetricFamily(
        "weedpy_volume_journal_background",
        "1 while the rounds sync in the background (io_uring), 0 when they block the loop.",
        labels=["dir"],
    )
    failed = GaugeMetricFamily(
        "weedpy_volume_journal_failed",
        "1 once an fdatasync of the journal failed: every later write on the disk fails "
        "until a restart.",
        labels=["dir"],
    )
    for location, journal in zip(store.locations, store.journals, strict=True):
        if journal is None:
            continue
        labels = [str(location.directory)]
        appends.add_metric(labels, journal.appends)
        syncs.add_metric(labels, journal.syncs)
        checkpoints.add_metric(labels, journal.checkpoints)
        background.add_metric(labels, 1 if journal.syncs_in_background else 0)
        failed.add_metric(labels, 0 if journal.failed is None else 1)
    yield from (appends, syncs, checkpoints, background, failed)


def _tier_families(store: Store) -> Iterator[Metric]:
    """Tiered volumes, the requests made to each S3 backend and the range cache."""
    yield GaugeMetricFamily(
        "weedpy_volume_tiered_volumes",
        "Volumes whose .dat is in an S3 bucket.",
        value=sum(1 for v in store.volumes() if v.remote is not None),
    )
    requests = CounterMetricFamily(
        "weedpy_volume_tier_requests",
        "HTTP requests made to each S3 backend (reads, uploads, lists, deletes).",
        labels=["backend"],
    )
    for name, count in store.backends.requests().items():
        requests.add_metric([name], count)
    yield requests
    cache = store.backends.cache
    lookups = CounterMetricFamily(
        "weedpy_volume_tier_cache_lookups",
        "Reads of tiered data the range cache answered (hit) or not (miss).",
        labels=["result"],
    )
    lookups.add_metric(["hit"], cache.hits)
    lookups.add_metric(["miss"], cache.misses)
    yield lookups
    yield GaugeMetricFamily(
        "weedpy_volume_tier_cache_bytes", "Bytes the range cache holds.", value=cache.size
    )


def _disk_families(disks: Sequence[DiskUsage]) -> Iterator[Metric]:
    families = [
        GaugeMetricFamily(
            f"weedpy_volume_disk_{what}_bytes",
            f"{what.capitalize()} bytes of the file system holding a -dir.",
            labels=["dir"],
        )
        for what in ("total", "used", "free")
    ]
    for disk in disks:
        if disk.error:
            continue
        for family, value in zip(families, (disk.total, disk.used, disk.free), strict=True):
            family.add_metric([disk.directory], value)
    yield from families
