"""`weedpy master` settings: the flags as `weed master` spells them, parsed into `MasterOptions`.

`weedpy server` reuses the same flags with a `master.` prefix (`-master.port`), so both the flag
declarations and their conversion take a prefix.
"""

from __future__ import annotations

import socket
import tempfile
from dataclasses import dataclass, field
from typing import Any

from seaweed_py.config.flags import Duration, FlagSet, UsageError
from seaweed_py.errors import InvalidReplicaPlacement
from seaweed_py.formats.replica_placement import ReplicaPlacement
from seaweed_py.httpkit.allow_list import white_list_entries
from seaweed_py.security.settings import SecuritySettings
from seaweed_py.topology.tiering import TierPolicy

__all__ = [
    "MAX_VOLUME_SIZE_LIMIT_MB",
    "MasterOptions",
    "add_master_flags",
    "detect_ip",
    "master_options",
]

MAX_VOLUME_SIZE_LIMIT_MB = 30 * 1024
DEFAULT_VACUUM_INTERVAL = 840
"""Volumes use 4-byte offsets (32 GiB addressable); the limit leaves room below that ceiling."""


def detect_ip() -> str:
    """This host's address as its name resolves (no packet is sent), else loopback."""
    try:
        ip = socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"
    return ip


@dataclass(frozen=True)
class MasterOptions:
    ip: str = "127.0.0.1"
    bind_ip: str = ""
    port: int = 9333
    mdir: str = field(default_factory=tempfile.gettempdir)
    peers: str = ""
    default_replication: str = ""
    volume_size_limit_mb: int = MAX_VOLUME_SIZE_LIMIT_MB
    volume_preallocate: bool = False
    garbage_threshold: float = 0.3
    """The garbage ratio at or above which the automatic sweep vacuums a replica (spec §9.1),
    and `/vol/vacuum`'s default."""
    max_parallel_vacuum_per_server: int = 1
    vacuum_interval_seconds: float = DEFAULT_VACUUM_INTERVAL
    """Seconds between automatic sweeps (plus jitter, `topology.vacuum.sweep_delay`)."""
    disable_vacuum: bool = False
    """No automatic sweep (`/vol/vacuum` still vacuums on request)."""
    pulse_seconds: float = 5.0
    white_list: tuple[str, ...] = ()
    cluster_white_list: tuple[str, ...] = ()
    """Addresses allowed on the volume-server protocol (`/internal/*`) besides `white_list`,
    when that is set: `weedpy server` lists the ones its own volume server heartbeats from."""
    file_size_limit_mb: int = 256
    create_mdir: bool = True
    """Create a missing `-mdir` (one level), as `weed master` does; `weed server` refuses a
    missing one, and so does `weedpy server`."""
    disable_http: bool = False
    """Serve no client API (assign, lookup, status, grow, submit, redirects): only the UI, the
    health and cluster probes, metrics and the volume-server protocol, as `-disableHttp`."""
    assign_wait_seconds: float = 10.0
    """How long an assign that found nothing writable waits for growth (the reference: 10 s)."""
    repair_delay_seconds: float = 900.0
    """How long a volume must be short of copies before the master has one made (a server
    that restarts within it causes none); negative: the master never repairs by itself."""
    tier: TierPolicy = field(default_factory=TierPolicy)
    """The automatic tiering policy (`-tier.*`; off unless `-tier.dest` names a backend)."""
    security: SecuritySettings = field(default_factory=SecuritySettings)
    """security.toml as read at start (keys, `guard.white_list`, `[https.master]`,
    `[https.client]`); SIGHUP hands the server a fresh one (`MasterServer.reload_security`)."""

    def __post_init__(self) -> None:
        if not 0 < self.volume_size_limit_mb <= MAX_VOLUME_SIZE_LIMIT_MB:
            raise UsageError(
                f"-volumeSizeLimitMB={self.volume_size_limit_mb}: must be 1..{MAX_VOLUME_SIZE_LIMIT_MB}"
            )
        if self.pulse_seconds <= 0:
            raise UsageError(f"-pulseSeconds={self.pulse_seconds}: must be positive")
        if self.max_parallel_vacuum_per_server < 1:
            raise UsageError(
                f"-maxParallelVacuumPerServer={self.max_parallel_vacuum_per_server}: "
                "must be at least 1"
            )
        if not 0 < self.vacuum_interval_seconds < float("inf"):
            raise UsageError(
                f"-vacuumIntervalSeconds={self.vacuum_interval_seconds:g}: must be positive "
                "(-disableVacuum turns the sweep off)"
            )
        if not 0 <= self.port <= 65535:
            raise UsageError(f"-port={self.port}: not a TCP port")
        try:  # refuse a bad default at start, not at the first assign
            ReplicaPlacement.parse(self.default_replication)
        except InvalidReplicaPlacement as exc:
            raise UsageError(f"-defaultReplication: {exc.message}") from None
        peers = [p for p in self.peers.split(",") if p and p != "none"]
        if any(p not in (self.address, f"localhost:{self.port}") for p in peers):
            raise UsageError(
                f"-peers={self.peers}: only a single master is supported (use -peers=none)"
            )
        white_list_entries(self.white_list)
        white_list_entries(self.cluster_white_list)

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"

    @property
    def listen_ip(self) -> str:
        return self.bind_ip or self.ip

    @property
    def volume_size_limit(self) -> int:
        return self.volume_size_limit_mb * 1024 * 1024


def add_master_flags(fs: FlagSet, prefix: str = "") -> None:
    """Declare the master's flags on `fs` (each name prefixed, e.g. `master.`)."""
    p = prefix
    if not p:
        fs.add(
            "ip", "", "master <ip>|<server> address, also used as identifier (default: this host)"
        )
        fs.add("ip.bind", "", "ip address to bind to; empty means the same as -ip")
    fs.add(f"{p}port", 9333, "http listen port")
    fs.add(f"{p}port.grpc", 0, "accepted for compatibility; weedpy speaks no gRPC")
    fs.add(
        f"{p}mdir" if not p else f"{p}dir",
        "",
        "data directory to store meta data (default: the OS temp dir)",
    )
    fs.add(
        f"{p}peers", "", "master nodes; weedpy runs a single master: '', 'none' or its own address"
    )
    fs.add(f"{p}defaultReplication", "", "default replication type if not specified")
    fs.add(
        f"{p}volumeSizeLimitMB",
        MAX_VOLUME_SIZE_LIMIT_MB,
        f"master stops directing writes to oversized volumes (at most {MAX_VOLUME_SIZE_LIMIT_MB})",
    )
    fs.add(f"{p}volumePreallocate", False, "preallocate disk space for volumes")
    fs.add(f"{p}garbageThreshold", 0.3, "threshold to vacuum and reclaim spaces")
    fs.add(
        f"{p}maxParallelVacuumPerServer",
        1,
        "maximum number of volumes to vacuum in parallel per volume server",
    )
    fs.add(
        f"{p}vacuumIntervalSeconds",
        DEFAULT_VACUUM_INTERVAL,
        "seconds between automatic vacuum sweeps (plus up to a seventh of it, at most 120)",
    )
    fs.add(
        f"{p}disableVacuum",
        False,
        "no automatic vacuum sweep; /vol/vacuum still vacuums (weedpy addition)",
    )
    fs.add(
        f"{p}pulseSeconds",
        5.0,
        "heartbeat period told to volume servers; a server silent for 3 pulses is dropped",
    )
    fs.add(f"{p}fileSizeLimitMB", 256, "limit the file size accepted by /submit")
    fs.add(
        f"{p}repairDelaySeconds",
        900.0,
        "copy a volume short of copies to another server after this long (a server that "
        "restarts sooner causes no copy), and trim a copy too many; negative: never "
        "(weedpy addition)",
    )
    if not p:
        fs.add(
            "whiteList",
            "",
            "comma separated IP addresses or CIDRs allowed to use the API; empty: all",
        )
        fs.add(
            "disableHttp",
            False,
            "serve no client API over HTTP (volume servers still heartbeat); UI and probes stay",
        )
    fs.add(
        f"{p}tier.dest",
        "",
        "tier volumes to this S3 backend by themselves (s3, s3.<id>; the volume servers hold "
        "its settings): full or read-only ones quiet for -tier.quietFor; empty: off",
    )
    fs.add(f"{p}tier.quietFor", Duration(24 * 3600), "how long a volume must be unmodified")
    fs.add(f"{p}tier.fullPercent", 95.0, "how full (percent of the size limit) counts as full")
    fs.add(f"{p}tier.collectionPattern", "", "only collections matching this wildcard; empty: all")
    fs.add(f"{p}tier.interval", Duration(600), "how often the volumes are looked over")
    fs.add(
        f"{p}telemetry", False, "accepted for compatibility and ignored: weedpy never phones home"
    )
    fs.add(f"{p}telemetry.url", "", "accepted for compatibility and ignored")


def master_options(values: dict[str, Any], prefix: str = "") -> MasterOptions:
    """Build `MasterOptions` from parsed flag values (see `add_master_flags`)."""
    p = prefix
    ip = values.get("ip") or detect_ip()
    mdir = values[f"{p}mdir" if not p else f"{p}dir"] or tempfile.gettempdir()
    white = values.get("whiteList", "")
    return MasterOptions(
        ip=ip,
        bind_ip=values.get("ip.bind", ""),
        port=values[f"{p}port"],
        mdir=mdir,
        peers=values[f"{p}peers"],
        default_replication=values[f"{p}defaultReplication"],
        volume_size_limit_mb=values[f"{p}volumeSizeLimitMB"],
        volume_preallocate=values[f"{p}volumePreallocate"],
        garbage_threshold=values[f"{p}garbageThreshold"],
        max_parallel_vacuum_per_server=values[f"{p}maxParallelVacuumPerServer"],
        vacuum_interval_seconds=values[f"{p}vacuumIntervalSeconds"],
        disable_vacuum=values[f"{p}disableVacuum"],
        pulse_seconds=values[f"{p}pulseSeconds"],
        white_list=white_list_entries(white),
        file_size_limit_mb=values[f"{p}fileSizeLimitMB"],
        disable_http=bool(values.get("disableHttp", False)),
        repair_delay_seconds=float(values.get(f"{p}repairDelaySeconds", 900.0)),
        tier=_tier_policy(values, p),
    )


def _tier_policy(values: dict[str, Any], p: str) -> TierPolicy:
    dest = str(values.get(f"{p}tier.dest", "")).strip()
    if dest:
        kind, dot, ident = dest.partition(".")
        if kind != "s3" or (dot and (not ident or "." in ident)):
            raise UsageError(f"-{p}tier.dest={dest}: not a backend name (s3, s3.<id>)")
    full = float(values.get(f"{p}tier.fullPercent", 95.0))
    if not 0 < full <= 100:
        raise UsageError(f"-{p}tier.fullPercent={full}: must be in (0, 100]")
    interval = float(values.get(f"{p}tier.interval", 600))
    if interval <= 0:
        raise UsageError(f"-{p}tier.interval: must be positive")
    quiet = float(values.get(f"{p}tier.quietFor", 24 * 3600))
    if quiet < 0:
        raise UsageError(f"-{p}tier.quietFor: must not be negative")
    return TierPolicy(
        dest=dest,
        quiet_for=quiet,
        full_percent=full,
        collection_pattern=str(values.get(f"{p}tier.collectionPattern", "")),
        interval=interval,
    )
