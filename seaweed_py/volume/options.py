"""`weedpy volume` settings: the flags (spelled as `weed volume` spells them) and the typed
`VolumeOptions` built from them. `weedpy server` reuses both with a `volume.` prefix."""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from seaweed_py.client.replicate import DEFAULT_TIMEOUT as DEFAULT_REPLICATION_TIMEOUT
from seaweed_py.config.flags import Duration, FlagSet, UsageError
from seaweed_py.httpkit.allow_list import white_list_entries
from seaweed_py.security.settings import SecuritySettings
from seaweed_py.storage.backend.settings import S3Settings
from seaweed_py.storage.shared import MAX_WORKERS
from seaweed_py.volume.scrubber import DEFAULT_SCRUB_PASS_SECONDS

__all__ = ["ReadMode", "VolumeOptions", "add_volume_flags", "detect_ip", "volume_options"]

ReadMode = Literal["local", "proxy", "redirect"]
_READ_MODES: tuple[ReadMode, ...] = ("local", "proxy", "redirect")
_INDEX_KINDS = ("memory", "mmap")
_FSYNC_MODES = ("none", "group", "always")
_MIB = 1024 * 1024
_TIER_CACHE_MB = 256
_MAX_WORKERS = MAX_WORKERS  # each has its row of counters in the share
_MAX_REPLICATION_TIMEOUT = 3600
# Buffered bodies (up to 1 MiB each) are the only ones held whole; this bounds them (and the
# number of streamed ones) while staying far above any small-write load. docs/compat.md.
_UPLOAD_LIMIT_MB = 64
_REPLICA_CHECK_SECONDS = 3600
_SCRUB_MBPS = 8
_MAINTENANCE_MBPS = 64
_WHITE_LIST_HELP = (
    "comma separated IP addresses or CIDRs allowed to write, delete and call /admin/*; "
    "empty: everyone. Reads stay open. List the masters (-master) and the volume servers "
    "that forward replicas here: host names are not resolved"
)


@dataclass(frozen=True)
class VolumeOptions:
    """Everything a `VolumeServer` needs to know, already validated."""

    dirs: tuple[str, ...]
    max_volumes: tuple[int, ...]
    """Per directory, same length as `dirs`."""
    masters: tuple[str, ...] = ("localhost:9333",)
    ip: str = "127.0.0.1"
    bind_ip: str = ""
    port: int = 8080
    public_url: str = ""
    public_port: int = 0
    """A second, read-only listener (0: none)."""
    data_center: str = ""
    rack: str = ""
    read_mode: ReadMode = "proxy"
    file_size_limit: int = 256 * _MIB
    compaction_mbps: int = 0
    """MiB per second a vacuum's compaction may copy (0: no limit)."""
    index_kind: str = "memory"
    fsync_mode: str = "group"
    large_disk: bool = False
    pulse_seconds: float = 5.0
    pre_stop_seconds: float = 10.0
    idle_timeout: float = 30.0
    replication_timeout: float = DEFAULT_REPLICATION_TIMEOUT
    """Seconds a forward to a replica may go without progress before it counts as failed."""
    white_list: tuple[str, ...] = ()
    """IPs/CIDRs allowed to write, delete and call `/admin/*` (empty: everyone)."""
    concurrent_upload_limit: int = _UPLOAD_LIMIT_MB * _MIB
    """Upload body bytes in flight past which new uploads wait (0: no limit)."""
    inflight_upload_timeout: float = 60.0
    """How long an upload waits for room under `concurrent_upload_limit` before a 429."""
    workers: int = 1
    """Processes serving this volume server (`-workers`; volume/workers.py)."""
    worker: int = 0
    """This process's index among them: 0 the leader (or the only one)."""
    security: SecuritySettings = field(default_factory=SecuritySettings)
    """security.toml as read at start (keys, `guard.white_list`, `access.ui`,
    `[https.volume]`, `[https.client]`); SIGHUP hands the server a fresh one."""
    tier_cache: int = _TIER_CACHE_MB * _MIB
    """Bytes of hot ranges of tiered volumes kept in memory (`-tierCacheMB`)."""
    replica_check_seconds: float = _REPLICA_CHECK_SECONDS
    """How often each replicated volume is compared with its peers (0: only when this server
    comes back)."""
    scrub_mbps: float = _SCRUB_MBPS
    """MiB per second the background scrubber reads (0: off)."""
    scrub_pass_seconds: float = DEFAULT_SCRUB_PASS_SECONDS
    """The least time from the start of one background scrub pass to the next (a server with
    little data does not spin)."""
    maintenance_mbps: int = _MAINTENANCE_MBPS
    """MiB per second a volume copied here is received at, on average (0: no limit)."""
    backends: Mapping[str, S3Settings] = field(default_factory=dict)
    """Where volumes may be tiered: the S3 settings by backend name (WEEDPY_S3_*, AWS_*,
    master.toml; `storage.backend.BackendSource`), read at start. Empty: no tiering."""

    def __post_init__(self) -> None:
        white_list_entries(self.white_list)
        if self.compaction_mbps < 0:
            raise UsageError(f"-compactionMBps cannot be negative, got {self.compaction_mbps}")
        if not 1 <= self.workers <= _MAX_WORKERS:
            raise UsageError(f"-workers must be 1..{_MAX_WORKERS}, got {self.workers}")
        if self.workers > 1 and self.index_kind == "mmap":
            raise UsageError("-index=mmap serves from one process: use it with -workers=1")
        if self.concurrent_upload_limit < 0:
            raise UsageError(
                "-concurrentUploadLimitMB cannot be negative, got "
                f"{self.concurrent_upload_limit / _MIB:g}"
            )
        if self.tier_cache < 0:
            raise UsageError(f"-tierCacheMB cannot be negative, got {self.tier_cache // _MIB}")
        for flag, value in (
            ("-replicaCheckSeconds", self.replica_check_seconds),
            ("-scrubMBps", self.scrub_mbps),
            ("-maintenanceMBps", self.maintenance_mbps),
        ):
            if not 0 <= value < float("inf"):
                raise UsageError(f"{flag} must be 0 or more, got {value:g}")
        if not 0 < self.scrub_pass_seconds < float("inf"):
            raise UsageError(
                f"-scrubPassSeconds must be more than 0, got {self.scrub_pass_seconds:g}"
            )
        if not 0 <= self.inflight_upload_timeout < float("inf"):
            raise UsageError(
                "-inflightUploadDataTimeout must be a duration of 0 or more, got "
                f"{Duration(self.inflight_upload_timeout)}"
            )

    @property
    def listen_host(self) -> str:
        return self.bind_ip or self.ip

    def address(self, port: int) -> str:
        """`ip:port`, how the master and peers name this server."""
        return f"{self.ip}:{port}"


def detect_ip() -> str:
    """The address other machines most likely reach us on (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
            return str(probe.getsockname()[0])
        except OSError:
            return "127.0.0.1"


def add_volume_flags(fs: FlagSet, prefix: str = "") -> None:
    """Define the volume server's flags on `fs` (names prefixed by `prefix`, e.g. `volume.`)."""
    p = prefix
    fs.add(f"{p}port", 8080, "http listen port")
    fs.add(f"{p}ip", "", "ip or server name, also used as identifier (default: detected)")
    fs.add(f"{p}ip.bind", "", "ip address to bind to; empty means the same as -ip")
    fs.add(f"{p}publicUrl", "", "publicly accessible address")
    fs.add(f"{p}port.public", 0, "port opened to public (read-only: GET, HEAD, OPTIONS)")
    fs.add(f"{p}dir", tempfile.gettempdir(), "directories to store data files: dir[,dir]...")
    fs.add(f"{p}max", "8", "maximum numbers of volumes, count[,count]... (one per -dir)")
    fs.add(f"{p}master", "localhost:9333", "comma-separated master servers")
    fs.add(f"{p}mserver", "", "comma-separated master servers (deprecated, use -master)")
    fs.add(f"{p}dataCenter", "", "current volume server's data center name")
    fs.add(f"{p}rack", "", "current volume server's rack name")
    fs.add(f"{p}readMode", "proxy", "[local|proxy|redirect] how to serve non-local volumes")
    fs.add(f"{p}fileSizeLimitMB", 256, "limit file size to avoid out of memory")
    fs.add(
        f"{p}concurrentUploadLimitMB",
        _UPLOAD_LIMIT_MB,
        "limit total concurrent upload size (Content-Length, or bytes received so far of a "
        "chunked body); past it new uploads wait, then get 429. 0 means unlimited (weed's "
        "default)",
    )
    fs.add(
        f"{p}inflightUploadDataTimeout",
        Duration("1m0s"),
        "inflight upload data wait timeout of volume servers",
    )
    fs.add(
        f"{p}compactionMBps",
        0,
        "limit vacuum's compaction speed in mega bytes per second (0: unlimited)",
    )
    fs.add(f"{p}index", "memory", "[memory|mmap] needle map kind")
    fs.add(f"{p}fsync", "group", "[none|group|always] when a write is acknowledged")
    fs.add(f"{p}largeDisk", False, "create volumes with 5-byte offsets (8 TiB volumes)")
    fs.add(f"{p}pulseSeconds", 5, "number of seconds between heartbeats")
    fs.add(f"{p}preStopSeconds", 10, "seconds between the last heartbeat and stopping")
    fs.add(
        f"{p}idleTimeout",
        30,
        "connection idle seconds; also the longest silence in the middle of a request body",
    )
    fs.add(
        f"{p}replicationTimeout",
        int(DEFAULT_REPLICATION_TIMEOUT),
        "seconds a write or delete forwarded to a replica may wait without progress (to "
        f"connect, to send the next piece, for the answer), 1..{_MAX_REPLICATION_TIMEOUT}; "
        "past it the replica counts as failed (weedpy addition)",
    )
    fs.add(
        f"{p}tierCacheMB",
        _TIER_CACHE_MB,
        "memory for hot byte ranges of volumes tiered to S3 (weedpy addition; 0: none)",
    )
    fs.add(
        f"{p}replicaCheckSeconds",
        _REPLICA_CHECK_SECONDS,
        "seconds between comparisons of each replicated volume with its other holders, which "
        "repair every difference (newest record wins); 0: only when this server comes back "
        "(weedpy addition)",
    )
    fs.add(
        f"{p}scrubMBps",
        float(_SCRUB_MBPS),
        "MiB/s the background scrubber reads to check every needle's CRC, repairing what fails "
        "from a replica; 0: off (weedpy addition)",
    )
    fs.add(
        f"{p}scrubPassSeconds",
        float(DEFAULT_SCRUB_PASS_SECONDS),
        "least seconds from the start of one background scrub pass to the start of the next: "
        "a pass that ends sooner waits out the rest (weedpy addition)",
    )
    fs.add(
        f"{p}maintenanceMBps",
        _MAINTENANCE_MBPS,
        "limit maintenance (volumes copied here: re-replication, moves) IO rate in MB/s; "
        "0: no limit (weed's default is 0)",
    )
    if not p:  # `weedpy server` has one -whiteList for both of its servers
        fs.add("whiteList", "", _WHITE_LIST_HELP)
        # `weedpy server` runs its volume server in its own process, so one worker there.
        # One by default: on the 2-core machine two workers cost more CPU per request than
        # the second core gives back (docs/internals.md, "Several workers").
        fs.add(
            "workers",
            1,
            "processes serving this volume server on one port, each serving every volume "
            "(the leader alone heartbeats, scrubs and runs the periodic replica check); "
            "above 1, -index=mmap is refused; tiered volumes (volume.tier.*, the master's "
            "tiered vacuum) are not yet served right by several: keep 1 where volumes are "
            "tiered (weedpy addition, docs/compat.md)",
        )


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _max_counts(text: str, dirs: int) -> tuple[int, ...]:
    try:
        counts = [int(part) for part in _split(text)]
    except ValueError:
        raise UsageError(f"-max must be count[,count]..., got {text!r}") from None
    if len(counts) == 1:
        counts *= dirs
    if len(counts) != dirs or any(c < 0 for c in counts):
        raise UsageError(f"-max {text!r} needs one non-negative count per -dir ({dirs})")
    return tuple(counts)


def _replication_timeout(seconds: int) -> float:
    if not 1 <= seconds <= _MAX_REPLICATION_TIMEOUT:
        raise UsageError(
            f"-replicationTimeout must be 1..{_MAX_REPLICATION_TIMEOUT} seconds, got {seconds}"
        )
    return float(seconds)


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise UsageError(f"-{name} must be one of {'|'.join(allowed)}, got {value!r}")
    return value


def volume_options(values: Mapping[str, Any], prefix: str = "") -> VolumeOptions:
    """Validate parsed flag values into `VolumeOptions`; bad values raise `UsageError`."""
    v = {name[len(prefix) :]: value for name, value in values.items() if name.startswith(prefix)}
    dirs = tuple(_split(v["dir"]))
    if not dirs:
        raise UsageError("-dir needs at least one directory")
    masters = tuple(_split(v["mserver"] or v["master"]))
    if not masters:
        raise UsageError("-master needs at least one master address")
    read_mode = _choice("readMode", v["readMode"], _READ_MODES)
    return VolumeOptions(
        dirs=dirs,
        max_volumes=_max_counts(v["max"], len(dirs)),
        masters=masters,
        ip=v["ip"] or detect_ip(),
        bind_ip=v["ip.bind"],
        port=v["port"],
        public_url=v["publicUrl"],
        public_port=v["port.public"],
        data_center=v["dataCenter"],
        rack=v["rack"],
        read_mode=read_mode,  # type: ignore[arg-type]
        file_size_limit=v["fileSizeLimitMB"] * _MIB,
        compaction_mbps=v["compactionMBps"],
        index_kind=_choice("index", v["index"], _INDEX_KINDS),
        fsync_mode=_choice("fsync", v["fsync"], _FSYNC_MODES),
        large_disk=v["largeDisk"],
        pulse_seconds=float(v["pulseSeconds"]),
        pre_stop_seconds=float(v["preStopSeconds"]),
        idle_timeout=float(v["idleTimeout"]),
        replication_timeout=_replication_timeout(v["replicationTimeout"]),
        white_list=white_list_entries(v.get("whiteList", "")),
        workers=v.get("workers", 1),
        concurrent_upload_limit=v["concurrentUploadLimitMB"] * _MIB,
        inflight_upload_timeout=float(v["inflightUploadDataTimeout"]),
        tier_cache=v["tierCacheMB"] * _MIB,
        replica_check_seconds=float(v["replicaCheckSeconds"]),
        scrub_mbps=float(v["scrubMBps"]),
        scrub_pass_seconds=float(v["scrubPassSeconds"]),
        maintenance_mbps=v["maintenanceMBps"],
    )
