"""The master ↔ volume-server messages: frozen values, and their one codec for both sides.

Each message is built by its sender and parsed by its receiver from this module, so the two
cannot drift. Bodies are JSON objects (orjson, compact); the admin calls and the unwritable
report carry their few scalars as URL query parameters (the form `curl` and the volume server's
`/admin/` routes have always used), through `to_query`/`from_query`.

JSON fields are read with their JSON type (no `"8080"`, `8080.0` or `true` where an integer is
meant) and within their range; absent optional fields take their default and unknown fields are
ignored. Anything else is a `BadRequest` (400) naming the field (`volumes[3].size: want an
integer in 0..18446744073709551615, got int -1`), so a forged or broken message cannot put ids
the cluster cannot address, negative sizes or an immortal server into the topology.

### `Heartbeat`: volume → master, `POST /internal/heartbeat`, JSON body

| field | JSON | meaning |
|---|---|---|
| `ip` (required) | a host: ≤ 255 of `A-Za-z0-9._:%[]-` | with `port`, the node id `ip:port` |
| `port` (required) | int 1..65535 | |
| `publicUrl` | visible ASCII, ≤ 1024 | where clients read (`""`: the node id) |
| `dataCenter`, `rack` | printable, ≤ 255 | placement labels (`""`: the defaults) |
| `maxVolumeCounts` | object disk type → int 0..2^32-1, ≤ 64 types | volume slots per disk type (`""` and `hdd` are one type) |
| `maxVolumeCount` | int 0..2^32-1 | `hdd` slots; read only without `maxVolumeCounts` (older senders); the volume server sends both |
| `maxFileKey` | int 0..2^64-1 | the largest needle key stored: the master issues none at or below it |
| `locationUuids` | ≤ 1024 printable strings of ≤ 255 | the `vol_dir.uuid` of each data directory (one directory served twice is refused) |
| `hasNoVolumes` | bool | a goodbye: the master drops the node at once |
| `pulseSeconds` | number 0..86400 | the sender's heartbeat period (0: the master's); silent for 3 of them = dead |
| `volumes` | ≤ 65536 `VolumeReport`s | the **full** state: what the node no longer lists, it no longer holds |

### `VolumeReport`: one volume, in a heartbeat and as the `/admin/volume/status` answer

| field | JSON | meaning |
|---|---|---|
| `id` (required) | int 0..2^32-1 | volume id |
| `collection` | a name `parse_collection` accepts | `""`: the default collection |
| `size` | int 0..2^64-1 | `.dat` length in bytes (compared with the size limit) |
| `fileCount`, `deleteCount`, `deletedByteCount` | int 0..2^64-1 | needle counters |
| `readOnly` | bool | takes no writes |
| `replicaPlacement` | string `xyz`, or its superblock byte 0..255 | copies wanted |
| `ttl` | string (`3d`), or its uint32 form `count << 8 \\| unit` | volume TTL |
| `version` | int 1..3 | needle version (default 3) |
| `compactRevision` | int 0..65535 | vacuum count |
| `modifiedAtSecond` | int 0..2^63-1 | last write, Unix seconds |
| `diskType` | printable, ≤ 255 | `""` and `hdd` are one type |
| `remoteStorageName` | printable, ≤ 255 | `s3.default`...: the `.dat` is tiered to that bucket (the volume then takes no slot) |
| `remoteStorageKey` | printable, ≤ 1024 | the object holding the `.dat` |

### `HeartbeatAnswer`: the master's `200` to a heartbeat, JSON body

`{"volumeSizeLimit": <bytes>, "leader": "host:port", "preallocate": <bool>, "pulseSeconds":
<number>, "locationsVersion": <int>}`. Every field is optional to the reader (an absent one is
"not said": a size limit of 0 is not adopted); a field of the wrong type makes the answer
invalid. `pulseSeconds` is written as an int when whole. `locationsVersion` changes whenever
some volume gains or loses a holder.

### Query-string messages

| message | route | parameters |
|---|---|---|
| `UnwritableReport` | `POST /internal/volume/unwritable` (master) | `volume` |
| `AllocateVolume` | `POST /admin/volume/allocate` | `volume`, `collection`, `replication`, `ttl`, `preallocate` (bytes to reserve, 0..what a volume of the receiver holds), `disk` |
| `DeleteVolume` | `POST /admin/volume/delete` | `volume`, `onlyEmpty=true` |
| `MarkReadonly` | `POST /admin/volume/readonly` | `volume`, `persist=true` |
| `MarkWritable` | `POST /admin/volume/writable` | `volume` |
| `DeleteCollection` | `POST /admin/collection/delete` | `collection` |
| `VolumeStatusQuery` | `GET /admin/volume/status` | `volume`; answered with a `VolumeReport` |
| `TierUpload` | `POST /admin/volume/tier/upload` | `volume`, `dest`, `collection` (when given, the volume's must match), `keepLocalDatFile=true`; answered in NDJSON |
| `TierDownload` | `POST /admin/volume/tier/download` | `volume`, `collection`, `keepRemoteDatFile=true`; answered in NDJSON |
| `TierMount` | `POST /admin/volume/tier/mount` | `volume`, `source`, `collection`, `key`, `replace=true` |
| `TierForget` | `POST /admin/volume/tier/forget` | `volume`, `source`, `key` (an earlier upload of the volume, printable, ≤ 1024); answered `{"deleted": [keys]}` |
| `VacuumCheck` | `GET /admin/vacuum/check` | `volume`; answered with a `VacuumCheckAnswer` |
| `VacuumCompact` | `POST /admin/vacuum/compact` | `volume`, `preallocate` (bytes to reserve for the copy); answered with a `VacuumCompactAnswer` once done |
| `VacuumCommit` | `POST /admin/vacuum/commit` | `volume`; answered with a `VacuumCommitAnswer` |
| `VacuumCleanup` | `POST /admin/vacuum/cleanup` | `volume`; answered `{}` |

### Vacuum answers (spec §9.3), JSON bodies

| message | fields |
|---|---|
| `VacuumCheckAnswer` | `garbageRatio` (number ≥ 0: deleted over content bytes, spec §9.1) |
| `VacuumCompactAnswer` | `processedBytes` (live bytes copied), `needles`, `expired`, `corrupt` (needles left behind), `sizeBefore`, `compactedSize` (ints ≥ 0) |
| `VacuumCommitAnswer` | `isReadOnly` (bool), `volumeSize`, `reclaimedBytes`, `replayed` (ints ≥ 0) |
| `VolumeDigestQuery` | `GET /admin/volume/digest` | `volume`; answered with a `VolumeDigest` (JSON) |
| `NeedleStatesQuery` | `GET /admin/volume/needles` | `volume`, `buckets` (`0,7,255`, or `all`); answered with `encode_states` bytes |
| `NeedleRecordQuery` | `GET /admin/volume/needle` | `volume`, `key` (decimal); answered with the raw record, its stamp in `X-Weedpy-Stamp` |
| `SyncOrder` | `POST /admin/volume/sync` | `volume`, `peer` (`host:port`); answered with a `SyncReport` (JSON) |
| `CopySnapshotQuery` | `GET /admin/volume/copy/status` | `volume`; answered with a `CopySnapshotReport` (JSON) |
| `CopyFileQuery` | `GET /admin/volume/copy/file` | `volume`, `file` (`dat`, `idx`, `ats`), `offset`, `size` (≤ 64 MiB), `revision`; answered with the bytes, their CRC-32C in `X-Weedpy-Crc32c` |
| `CopyVolume` | `POST /admin/volume/copy` | `volume`, `source` (`host:port`), `collection`; answered in NDJSON |
| `ScrubOrder` | `POST /admin/volume/scrub` | `volume` (absent: every volume); answered with a `ScrubReport` (JSON) |
| `LeaseLock` | `POST /cluster/lock` (master) | `name` (`shell`), `client`, `token` (0: take; else renew), `message`; answered `{"token", "name"}`, `409` while held by another |
| `ReleaseLock` | `POST /cluster/unlock` (master) | `name`, `token` |

Each class names its route (`PATH`, `METHOD`). `volume` is a decimal uint32 (missing: 400
`missing volume parameter`; malformed: `InvalidFileId`, 400); a bad collection, replication or
TTL is the 400 of its parser; flags are on only as `true`.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Final, Protocol, Self, TypeVar

import orjson

from seaweed_py.errors import BadRequest, WeedError
from seaweed_py.formats.collection import parse_collection
from seaweed_py.formats.fid import parse_volume_id
from seaweed_py.formats.numbers import I64_MAX, U32_MAX, U64_MAX, parse_uint
from seaweed_py.formats.replica_digest import BUCKETS, NeedleState
from seaweed_py.formats.replica_placement import ReplicaPlacement
from seaweed_py.formats.ttl import Ttl
from seaweed_py.types import VolumeId

__all__ = [
    "COPY_FILES",
    "CRC_HEADER",
    "HDD",
    "LOCK_NAME",
    "STAMP_HEADER",
    "AdminCall",
    "AllocateVolume",
    "CopyFileQuery",
    "CopySnapshotQuery",
    "CopySnapshotReport",
    "CopyVolume",
    "CorruptFinding",
    "DeleteCollection",
    "DeleteVolume",
    "Heartbeat",
    "HeartbeatAnswer",
    "LeaseLock",
    "MarkReadonly",
    "MarkWritable",
    "NeedleRecordQuery",
    "NeedleStatesQuery",
    "ReleaseLock",
    "ScrubOrder",
    "ScrubReport",
    "SyncOrder",
    "SyncReport",
    "TierDownload",
    "TierForget",
    "TierMount",
    "TierUpload",
    "UnwritableReport",
    "VacuumCheck",
    "VacuumCheckAnswer",
    "VacuumCleanup",
    "VacuumCommit",
    "VacuumCommitAnswer",
    "VacuumCompact",
    "VacuumCompactAnswer",
    "VolumeDigest",
    "VolumeDigestQuery",
    "VolumeReport",
    "VolumeStatusQuery",
    "decode_states",
    "encode_states",
    "normalize_disk",
]

HDD: Final = "hdd"
_NO_REPLICATION: Final = ReplicaPlacement()
# Bounds of heartbeat fields. Anything outside is a 400 that names the field: a forged or broken
# heartbeat must not put ids the cluster cannot address, negative sizes or an immortal server
# into the topology.
_MAX_HEARTBEAT_VOLUMES: Final = 1 << 16  # 64 Ki volumes of 30 GiB: about 2 PiB on one server
_MAX_PULSE_SECONDS: Final = 86400  # a server is dead after 3 of its pulses: 3 days at the most
_MAX_DISK_TYPES: Final = 64
_MAX_DIRECTORIES: Final = 1024
_MAX_NAME: Final = 255
_MAX_URL: Final = 1024
_HOST_RE: Final = re.compile(r"[A-Za-z0-9._:%\[\]-]+")
_PRINTABLE_RE: Final = re.compile(r"[!-~]*")  # visible ASCII: echoed into Location headers
_HEX16: Final = re.compile(r"[0-9a-f]{16}")
_T = TypeVar("_T")


def normalize_disk(disk: str) -> str:
    """`""` and `"hdd"` are one disk type; other tags (`ssd`, `nvme`, ...) keep their name."""
    return disk.lower() if disk else HDD


def _object(body: bytes, what: str) -> dict[str, Any]:
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"{what} is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise BadRequest(f"{what} must be a JSON object")
    return raw


class _Fields:
    """Typed reads of one JSON object of a message. Every field is checked for its JSON type
    (no `"8080"`, `8080.0` or `true` where an integer is meant) and its range; a mistake is a
    `BadRequest` naming the field (`volumes[3].size: ...`)."""

    __slots__ = ("_raw", "_where")

    def __init__(self, raw: object, where: str, what: str = "heartbeat") -> None:
        if not isinstance(raw, dict):
            raise BadRequest(f"{where or what}: want a JSON object, got {_show(raw)}")
        self._raw: dict[str, Any] = raw
        self._where = where

    def get(self, name: str, default: Any = None) -> Any:
        return self._raw.get(name, default)

    def _bad(self, name: str, want: str, value: Any) -> BadRequest:
        return BadRequest(f"{self._where}{name}: want {want}, got {_show(value)}")

    def integer(self, name: str, low: int, high: int, default: int | None = None) -> int:
        value = self._raw.get(name, default)
        if type(value) is not int or not low <= value <= high:
            raise self._bad(name, f"an integer in {low}..{high}", value)
        return value

    def number(self, name: str, low: float, high: float) -> float:
        value = self._raw.get(name, 0)
        if type(value) not in (int, float) or not low <= value <= high:
            raise self._bad(name, f"a number in {low}..{high}", value)
        return float(value)

    def flag(self, name: str) -> bool:
        value = self._raw.get(name, False)
        if type(value) is not bool:
            raise self._bad(name, "true or false", value)
        return value

    def text(self, name: str, limit: int = _MAX_NAME, shape: re.Pattern[str] | None = None) -> str:
        value = self._raw.get(name, "")
        if not isinstance(value, str) or len(value) > limit:
            raise self._bad(name, f"a string of at most {limit} characters", value)
        if shape is not None and not shape.fullmatch(value):
            raise self._bad(name, f"a string matching {shape.pattern}", value)
        if not value.isprintable():
            raise self._bad(name, "printable characters", value)
        return value

    def parsed(self, name: str, parse: Callable[[str], _T], limit: int) -> _T:
        """A string field read by one of the `formats` parsers."""
        text = self.text(name, limit)
        try:
            return parse(text)
        except WeedError as exc:
            raise BadRequest(f"{self._where}{name}: {exc.message}") from None

    def array(self, name: str, limit: int) -> list[Any]:
        value = self._raw.get(name) or []
        if not isinstance(value, list) or len(value) > limit:
            raise self._bad(name, f"a list of at most {limit} entries", value)
        return value

    def names(self, name: str, limit: int) -> tuple[str, ...]:
        """A list of at most `limit` printable strings of at most `_MAX_NAME` characters."""
        values = self.array(name, limit)
        for value in values:
            if not isinstance(value, str) or len(value) > _MAX_NAME or not value.isprintable():
                raise self._bad(name, f"printable strings of at most {_MAX_NAME} characters", value)
        return tuple(values)


def _show(value: Any) -> str:
    """A value for an error message: its JSON type and the start of its text."""
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}{'…' if len(text) > 40 else ''}"


def _placement(f: _Fields) -> ReplicaPlacement:
    if type(f.get("replicaPlacement")) is int:
        return ReplicaPlacement.from_byte(f.integer("replicaPlacement", 0, 255))
    return f.parsed("replicaPlacement", ReplicaPlacement.parse, 3)


def _ttl(f: _Fields) -> Ttl:
    if type(f.get("ttl")) is int:
        return Ttl.from_uint32(f.integer("ttl", 0, U32_MAX))
    return f.parsed("ttl", Ttl.parse, 32)


def _heartbeat_collection(text: str) -> str:
    return parse_collection(text, "heartbeat volume collection")


def _max_counts(f: _Fields) -> dict[str, int]:
    counts = f.get("maxVolumeCounts")
    if counts is None:
        return {HDD: f.integer("maxVolumeCount", 0, U32_MAX, 0)}
    per_disk = _Fields(counts, "maxVolumeCounts.")
    if len(counts) > _MAX_DISK_TYPES:
        raise BadRequest(f"maxVolumeCounts: want at most {_MAX_DISK_TYPES} disk types")
    out: dict[str, int] = {}
    for disk in counts:
        if len(disk) > _MAX_NAME or not disk.isprintable():
            raise BadRequest(f"maxVolumeCounts: disk type {_show(disk)} is not a name")
        out[normalize_disk(disk)] = per_disk.integer(disk, 0, U32_MAX)
    return out


# ---------------------------------------------------------------------------- heartbeats


@dataclass(frozen=True, slots=True)
class VolumeReport:
    """One volume as its volume server reports it."""

    id: int
    collection: str = ""
    size: int = 0
    file_count: int = 0
    delete_count: int = 0
    deleted_byte_count: int = 0
    read_only: bool = False
    replica_placement: ReplicaPlacement = _NO_REPLICATION
    ttl: Ttl = Ttl.EMPTY
    version: int = 3
    compact_revision: int = 0
    modified_at_second: int = 0
    disk_type: str = HDD
    remote_storage_name: str = ""
    """`s3.default`... when the volume's `.dat` is tiered to a bucket (it then takes no slot)."""
    remote_storage_key: str = ""

    def to_obj(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "collection": self.collection,
            "size": self.size,
            "fileCount": self.file_count,
            "deleteCount": self.delete_count,
            "deletedByteCount": self.deleted_byte_count,
            "readOnly": self.read_only,
            "replicaPlacement": str(self.replica_placement),
            "ttl": str(self.ttl),
            "version": self.version,
            "compactRevision": self.compact_revision,
            "modifiedAtSecond": self.modified_at_second,
            "diskType": self.disk_type or HDD,
            "remoteStorageName": self.remote_storage_name,
            "remoteStorageKey": self.remote_storage_key,
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_obj())

    @classmethod
    def from_obj(cls, raw: object, where: str = "") -> VolumeReport:
        """Raises `BadRequest` naming the field, prefixed with `where` (`volumes[3].`)."""
        f = _Fields(raw, where, "volume")
        return cls(
            id=f.integer("id", 0, U32_MAX),
            collection=f.parsed("collection", _heartbeat_collection, _MAX_NAME),
            size=f.integer("size", 0, U64_MAX, 0),
            file_count=f.integer("fileCount", 0, U64_MAX, 0),
            delete_count=f.integer("deleteCount", 0, U64_MAX, 0),
            deleted_byte_count=f.integer("deletedByteCount", 0, U64_MAX, 0),
            read_only=f.flag("readOnly"),
            replica_placement=_placement(f),
            ttl=_ttl(f),
            version=f.integer("version", 1, 3, 3),
            compact_revision=f.integer("compactRevision", 0, 0xFFFF, 0),
            modified_at_second=f.integer("modifiedAtSecond", 0, I64_MAX, 0),
            disk_type=normalize_disk(f.text("diskType", _MAX_NAME)),
            remote_storage_name=f.text("remoteStorageName", _MAX_NAME),
            remote_storage_key=f.text("remoteStorageKey", _MAX_URL),
        )

    @classmethod
    def from_json(cls, body: bytes) -> VolumeReport:
        """A `/admin/volume/status` answer; malformed → `BadRequest`."""
        raw = _object(body, "volume status")
        try:
            return cls.from_obj(raw)
        except WeedError as exc:
            raise BadRequest(f"bad volume status: {exc.message}") from None


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """A volume server's full state, sent every pulse."""

    ip: str
    port: int
    public_url: str = ""
    data_center: str = ""
    rack: str = ""
    max_volume_counts: Mapping[str, int] = field(default_factory=dict)
    max_file_key: int = 0
    volumes: tuple[VolumeReport, ...] = ()
    has_no_volumes: bool = False
    pulse_seconds: float = 0.0
    """The sender's heartbeat period, if it says (0: assume the master's)."""
    location_uuids: tuple[str, ...] = ()

    PATH: ClassVar[str] = "/internal/heartbeat"

    @property
    def node_id(self) -> str:
        return f"{self.ip}:{self.port}"

    def goodbye(self) -> Heartbeat:
        """The last heartbeat of a server leaving the cluster."""
        return replace(self, has_no_volumes=True, volumes=())

    def to_obj(self) -> dict[str, Any]:
        counts = dict(self.max_volume_counts)
        return {
            "ip": self.ip,
            "port": self.port,
            "publicUrl": self.public_url,
            "dataCenter": self.data_center,
            "rack": self.rack,
            "maxVolumeCount": counts.get(HDD, 0),
            "maxVolumeCounts": counts,
            "maxFileKey": self.max_file_key,
            "locationUuids": list(self.location_uuids),
            "hasNoVolumes": self.has_no_volumes,
            "pulseSeconds": self.pulse_seconds,
            "volumes": [v.to_obj() for v in self.volumes],
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_obj())

    @classmethod
    def from_json(cls, body: bytes) -> Heartbeat:
        """A heartbeat body; malformed → `BadRequest` naming the field. Unknown fields are
        ignored."""
        try:
            raw = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"heartbeat is not JSON: {exc}") from None
        return cls.from_obj(raw)

    @classmethod
    def from_obj(cls, raw: object) -> Heartbeat:
        f = _Fields(raw, "")
        try:
            return cls(
                ip=f.text("ip", _MAX_NAME, _HOST_RE),
                port=f.integer("port", 1, 65535),
                public_url=f.text("publicUrl", _MAX_URL, _PRINTABLE_RE),
                data_center=f.text("dataCenter"),
                rack=f.text("rack"),
                max_volume_counts=_max_counts(f),
                max_file_key=f.integer("maxFileKey", 0, U64_MAX, 0),
                volumes=tuple(
                    VolumeReport.from_obj(v, f"volumes[{i}].")
                    for i, v in enumerate(f.array("volumes", _MAX_HEARTBEAT_VOLUMES))
                ),
                has_no_volumes=f.flag("hasNoVolumes"),
                pulse_seconds=f.number("pulseSeconds", 0, _MAX_PULSE_SECONDS),
                location_uuids=f.names("locationUuids", _MAX_DIRECTORIES),
            )
        except WeedError as exc:
            raise BadRequest(f"bad heartbeat from {_show(f.get('ip'))}: {exc.message}") from None


@dataclass(frozen=True, slots=True)
class HeartbeatAnswer:
    """What the master answers a heartbeat with."""

    volume_size_limit: int = 0
    """Bytes; 0 when the master did not say."""
    leader: str = ""
    preallocate: bool = False
    pulse_seconds: float = 0.0
    locations_version: int | None = None

    def to_json(self) -> bytes:
        pulse = self.pulse_seconds
        obj: dict[str, Any] = {
            "volumeSizeLimit": self.volume_size_limit,
            "leader": self.leader,
            "preallocate": self.preallocate,
            # whole seconds are an int, as in every release; sub-second pulses run in tests
            "pulseSeconds": int(pulse) if pulse == int(pulse) else pulse,
        }
        if self.locations_version is not None:
            obj["locationsVersion"] = self.locations_version
        return orjson.dumps(obj)

    @classmethod
    def from_json(cls, body: bytes) -> HeartbeatAnswer:
        raw = _object(body, "heartbeat answer")
        limit = _typed(raw, "volumeSizeLimit", int, 0)
        leader = _typed(raw, "leader", str, "")
        preallocate = _typed(raw, "preallocate", bool, False)
        pulse = _typed(raw, "pulseSeconds", (int, float), 0)
        version = _typed(raw, "locationsVersion", int, None)
        return cls(limit, leader, preallocate, float(pulse), version)


def _typed(raw: Mapping[str, Any], name: str, kind: Any, default: Any) -> Any:
    """`raw[name]` if it has type `kind` (a bool is not a number), `default` when absent."""
    value = raw.get(name)
    if value is None:
        return default
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise BadRequest(f"heartbeat answer field {name} has the wrong type: {value!r}")
    return value


# ---------------------------------------------------------------------------- query messages


class AdminCall(Protocol):
    """A message sent as the query string of one route."""

    PATH: ClassVar[str]
    METHOD: ClassVar[str]

    def to_query(self) -> dict[str, str]: ...


def _volume_id(q: Mapping[str, str]) -> VolumeId:
    text = q.get("volume", "")
    if not text:
        raise BadRequest("missing volume parameter")
    return parse_volume_id(text)


def _flag(q: Mapping[str, str], name: str) -> bool:
    return q.get(name) == "true"


def _bytes(q: Mapping[str, str], name: str, limit: int) -> int:
    text = q.get(name, "")
    if not text:
        return 0
    value = parse_uint(text, limit)
    if value is None:
        raise BadRequest(f"invalid {name} {text!r}: want a number of bytes in 0..{limit}")
    return value


@dataclass(frozen=True, slots=True)
class _OneVolume:
    """A message whose only parameter is `volume`."""

    volume_id: int

    def to_query(self) -> dict[str, str]:
        return {"volume": str(self.volume_id)}

    @classmethod
    def from_query(cls, q: Mapping[str, str]) -> Self:
        return cls(_volume_id(q))


@dataclass(frozen=True, slots=True)
class UnwritableReport(_OneVolume):
    """Volume → master: a replicated write failed on `volume_id`; stop assigning it."""

    PATH: ClassVar[str] = "/internal/volume/unwritable"
    METHOD: ClassVar[str] = "POST"


@dataclass(frozen=True, slots=True)
class AllocateVolume:
    """Master → volume: create volume `volume_id` (its placement and TTL go in its
    superblock; `preallocate` bytes of disk are reserved for its `.dat`)."""

    volume_id: int
    collection: str = ""
    replica_placement: ReplicaPlacement = _NO_REPLICATION
    ttl: Ttl = Ttl.EMPTY
    preallocate: int = 0
    disk: str = HDD

    PATH: ClassVar[str] = "/admin/volume/allocate"
    METHOD: ClassVar[str] = "POST"

    def to_query(self) -> dict[str, str]:
        return {
            "volume": str(self.volume_id),
            "collection": self.collection,
            "replication": str(self.replica_placement),
            "ttl": str(self.ttl),
            "preallocate": str(self.preallocate),
            "disk": self.disk,
        }

    @classmethod
    def from_query(cls, q: Mapping[str, str], *, max_preallocate: int = I64_MAX) -> AllocateVolume:
        """`max_preallocate`: the most a volume of the receiver can hold."""
        return cls(
            volume_id=_volume_id(q),
            collection=parse_collection(q.get("collection", "")),
            replica_placement=ReplicaPlacement.parse(q.get("replication", "")),
            ttl=Ttl.parse(q.get("ttl", "")),
            preallocate=_bytes(q, "preallocate", max_preallocate),
            disk=normalize_disk(q.get("disk", "")),
        )


@dataclass(frozen=True, slots=True)
class DeleteVolume:
    """Master → volume: delete volume `volume_id`'s files (`only_empty`: unless it holds a
    live needle)."""

    volume_id: int
    only_empty: bool = False

    PATH: ClassVar[str] = "/admin/volume/delete"
    METHOD: ClassVar[str] = "POST"

    def to_query(self) -> dict[str, str]:
        q = {"volume": str(self.volume_id)}
        if self.only_empty:
            q["onlyEmpty"] = "true"
        return q

    @classmethod
    def from_query(cls, q: Mapping[str, str]) -> DeleteVolume:
        return cls(_volume_id(q), _flag(q, "onlyEmpty"))


@dataclass(frozen=True, slots=True)
class MarkReadonly:
    """Master → volume: stop writes to `volume_id` (`persist`: across restarts, in its
    `.vif`)."""

    volume_id: int
    persist: bool = False

    PATH: ClassVar[str] = "/admin/volume/readonly"
    METHOD: ClassVar[str] = "POST"

    def to_query(self) -> dict[str, str]:
        q = {"volume": str(self.volume_id)}
        if self.persist:
            q["persist"] = "true"
        return q

    @classmethod
    def from_query(cls, q: Mapping[str, str]) -> MarkReadonly:
        return cls(_volume_id(q), _flag(q, "persist"))


@dataclass(frozen=True, slots=True)
class MarkWritable(_OneVolume):
    """Master → volume: take writes to `volume_id` again."""

    PATH: ClassVar[str] = "/admin/volume/writable"
    METHOD: ClassVar[str] = "POST"


@dataclass(frozen=True, slots=True)
class DeleteCollection:
    """Master → volume: delete every volume of `collection`."""

    collection: str

    PATH: ClassVar[str] = "/admin/collection/delete"
    METHOD: ClassVar[str] = "POST"

    def to_query(self) -> dict[str, str]:
        return {"collection": self.collection}

    @classmethod
    def from_query(cls, q: Mapping[str, str]) -> DeleteCollection:
        return cls(parse_collection(q.get("collection", "")))


@dataclass(frozen=True, slots=True)
class VolumeStatusQuery(_OneVolume):
    """Master → volume: one volume's counters, answered with its `VolumeReport`."""

    PATH: ClassVar[str] = "/admin/volume/status"
    METHOD: ClassVar[str] = "GET"


def _optional_collection(q: Mapping[str, str]) -> str | None:
    """`collection` when given (then checked against the volume's), else None."""
    return parse_collection(q["collection"]) if "collection" in q else None


def _with_collection(q: dict[str, str], collection: str | None) -> dict[str, str]:
    if collection is not None:
        q["collection"] = collection
    return q


@dataclass(frozen=True, slots=True)
class TierUpload:
    """Volume `volume_id`'s `.dat` to the bucket `dest` names, its `.idx` and `.vif` beside it
    (`keep_local`: the local `.dat` stays too). Answered in NDJSON: progress lines, then the
    result (volume/tier.py)."""

    volume_id: int
    dest: str
    collection: str | None = None
    keep_local: bool = False

    PATH: ClassVar[str] = "/admin/volume/tier/upload"
    METHOD: ClassVar[str] = "POST"

    def to_query(self) -> dict[str, str]:
        q = {"volume": str(self.volume_id), "dest": self.dest}
        if self.keep_local:
            q["keepLocalDatFile"] = "true"
        return _with_collection(q, self.collection)

    @classmethod
    def from_query(cls, q: Mapping[str, str]) -> TierUpload:
        return cls(
            _volume_id(q), q.get("dest", ""), _optional_collection(q), _flag(q, "keepLocalDatFile")
        )


@dataclass(frozen=True, slots=True)
class TierDownload:
    """Volume `volume_id`'s `.dat` back from its bucket (`keep_remote`: the object stays).
    Answered in NDJSON like `TierUpload`."""

    volume_id: int
    collection: str | None = None
    keep_remote: bool = False

    PATH: ClassVar[str] = "/admin/volume/tier/download"
    METHOD: ClassVar[str] = "POST"

    def to_query(self) -> dict[str, str]:
        q = {"volume": str(self.volume_id)}
        if self.keep_remote:
            q["keepRemoteDatFile"] = "true"
        return _with_collection(q, self.collection)

    @classmethod
    def from_query(cls, q: Mapping[str, str]) -> TierDownload:
        return cls(_volume_id(q), _optional_collection(q), _flag(q, "keepRemoteDatFile"))


@dataclass(frozen=True, slots=True)
class TierMount:
    """Serve volume `volume_id` from the bucket `source` names (`""`: `s3`), its `.idx` and
    `.vif` fetched from beside the object `key` (`""`: the newest upload of the volume);
    `replace` gives up the receiver's own copy first."""

    volume_id: int
    source: str = ""
    collection: str | None = None
    key: str = ""
    replace: bool = False

    PATH: ClassVar[str] = "/admin/volume/tier/mount"
    METHOD: ClassVar[str] = "POST"

    def to_query(self) -> dict[str, str]:
        q = {"volume": str(self.volume_id), "source": self.source, "key": self.key}
        if self.replace:
            q["replace"] = "true"
        return _with_collection(q, self.collection)

    @classmethod
    def from_query(cls, q: Mapping[str, str]) -> TierMount:
        return cls(
            _volume_id(q),
            q.get("source", ""),
            _optional_collection(q),
            q.get("key", ""),
            _flag(q, "replace"),
        )


@dataclass(frozen=True, slots=True)
class TierForget:
    """Delete an earlier upload of volume `volume_id` from the bucket `source` names: the data
    object `key` and the `.idx` and `.vif` beside it, once no holder reads it any more (the
    vacuum of a tiered volume re-uploads it under a fresh key, `client/tiering.py`)."""

    volume_id: int
    source: str
    key: str

    PATH: ClassVar[str] = "/admin/volume/tier/forget"
    METHOD: ClassVar[str] = "POST"

    def to_query(self) -> dict[str, str]:
        return {"volume": str(self.volume_id), "source": self.source, "key": self.key}

    @classmethod
    def from_query(cls, q: Mapping[str, str]) -> TierForget:
        key = q.get("key", "")
        if not key or len(key) > _MAX_URL or not key.isprintable():
            raise BadRequest(f"invalid key {key[:64]!r}: want the printable key of an upload")
        return cls(_volume_id(q), q.get("source", ""), key)


@dataclass(frozen=True, slots=True)
class TierUploads:
    """The data keys of every upload of volume `volume_id` in the bucket `source` names, read
    or not (an upload cut short by a crash leaves objects no `.vif` names), answered
    `{"keys": [...]}`: what a rerun of a tiered vacuum forgets besides the key in use."""

    volume_id: int
    source: str

    PATH: ClassVar[str] = "/admin/volume/tier/uploads"
    METHOD: ClassVar[str] = "GET"

    def to_query(self) -> dict[str, str]:
        return {"volume": str(self.volume_id), "source": self.source}

    @classmethod
    def from_query(cls, q: Mapping[str, str]) -> TierUploads:
        return cls(_volume_id(q), q.get("source", ""))


@dataclass(frozen=True, slots=True)
class VacuumCheck(_OneVolume):
    """Master → volume: `volume_id`'s garbage ratio, answered with a `VacuumCheckAnswer`."""

    PATH: ClassVar[str] = "/admin/vacuum/check"
    METHOD: ClassVar[str] = "GET"


@dataclass(frozen=True, slots=True)
class VacuumCompact:
    """Master → volume: copy `volume_id`'s live needles into its `.cpd`/`.cpx` (reads and
    writes go on), `preallocate` bytes of disk reserved for the copy; answered with a
    `VacuumCompactAnswer` once done."""

    volume_id: int
    preallocate: int = 0

    PATH: ClassVar[str] = "/admin/vacuum/compact"
    METHOD: ClassVar[str] = "POST"

    def to_query(self) -> dict[str, str]:
        return {"volume": str(self.volume_id), "preallocate": str(self.preallocate)}

    @classmethod
    def from_query(cls, q: Mapping[str, str], *, max_preallocate: int = I64_MAX) -> VacuumCompact:
        """`max_preallocate`: the most a volume of the receiver can hold."""
        return cls(_volume_id(q), _bytes(q, "preallocate", max_preallocate))


@dataclass(frozen=True, slots=True)
class VacuumCommit(_OneVolume):
    """Master → volume: install `volume_id`'s finished compaction, answered with a
    `VacuumCommitAnswer`."""

    PATH: ClassVar[str] = "/admin/vacuum/commit"
    METHOD: ClassVar[str] = "POST"


@dataclass(frozen=True, slots=True)
class VacuumCleanup(_OneVolume):
    """Master → volume: drop `volume_id`'s uncommitted compaction."""

    PATH: ClassVar[str] = "/admin/vacuum/cleanup"
    METHOD: ClassVar[str] = "POST"


@dataclass(frozen=True, slots=True)
class VacuumCheckAnswer:
    garbage_ratio: float

    def to_json(self) -> bytes:
        return orjson.dumps({"garbageRatio": self.garbage_ratio})

    @classmethod
    def from_json(cls, body: bytes) -> VacuumCheckAnswer:
        f = _Fields(_object(body, "vacuum check answer"), "")
        return cls(f.number("garbageRatio", 0.0, float("inf")))


@dataclass(frozen=True, slots=True)
class VacuumCompactAnswer:
    processed_bytes: int = 0
    """Bytes of live needles copied."""
    needles: int = 0
    expired: int = 0
    corrupt: int = 0
    size_before: int = 0
    compacted_size: int = 0

    _FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("processed_bytes", "processedBytes"),
        ("needles", "needles"),
        ("expired", "expired"),
        ("corrupt", "corrupt"),
        ("size_before", "sizeBefore"),
        ("compacted_size", "compactedSize"),
    )

    def to_json(self) -> bytes:
        return orjson.dumps({name: getattr(self, attr) for attr, name in self._FIELDS})

    @classmethod
    def from_json(cls, body: bytes) -> VacuumCompactAnswer:
        f = _Fields(_object(body, "vacuum compact answer"), "")
        return cls(*(f.integer(name, 0, U64_MAX, 0) for _, name in cls._FIELDS))


@dataclass(frozen=True, slots=True)
class VacuumCommitAnswer:
    is_read_only: bool = False
    volume_size: int = 0
    reclaimed_bytes: int = 0
    replayed: int = 0

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "isReadOnly": self.is_read_only,
                "volumeSize": self.volume_size,
                "reclaimedBytes": self.reclaimed_bytes,
                "replayed": self.replayed,
            }
        )

    @classmethod
    def from_json(cls, body: bytes) -> VacuumCommitAnswer:
        f = _Fields(_object(body, "vacuum commit answer"), "")
        return cls(
            f.flag("isReadOnly"),
            f.integer("volumeSize", 0, U64_MAX, 0),
            f.integer("reclaimedBytes", 0, U64_MAX, 0),
            f.integer("replayed", 0, U64_MAX, 0),
        )


# ---------------------------------------------------------------------------- replicas


def _u64(q: Mapping[str, str], name: str, *, default: int | None = None) -> int:
    text = q.get(name, "")
    if not text and default is not None:
        return default
    value = parse_uint(text, U64_MAX) if text else None
    if value is None:
        raise BadRequest(f"invalid {name} {text!r}: want an integer in 0..{U64_MAX}")
    return value


def _server(q: Mapping[str, str], name: str) -> str:
    """A `host:port` parameter (a peer or a copy's source)."""
    text = q.get(name, "")
    host, colon, port = text.rpartition(":")
    number = parse_uint(port, 65535) if colon else None
    if not host or not _HOST_RE.fullmatch(host) or len(text) > _MAX_NAME or not number:
        raise BadRequest(f"invalid {name} {text!r}: want host:port")
    return text


def _buckets(q: Mapping[str, str]) -> tuple[int, ...] | None:
    text = q.get("buckets")
    if text is None or text == "all":
        return None
    out = []
    for part in text.split(",") if text else ():
        value = parse_uint(part, BUCKETS - 1)
        if value is None:
            raise BadRequest(f"invalid buckets {text!r}: want numbers in 0..{BUCKETS - 1}")
        out.append(value)
    return tuple(sorted(set(out)))


@dataclass(frozen=True, slots=True)
class VolumeDigestQuery(_OneVolume):
    """Volume → volume (and the shell): the bucket digests of a volume's live needles,
    answered with a `VolumeDigest`."""

    PATH: ClassVar[str] = "/admin/volume/digest"
    METHOD: ClassVar[str] = "GET"


@dataclass(frozen=True, slots=True)
class VolumeDigest:
    """`{"volume": N, "live": <live needles>, "buckets": ["<16 hex digits>", ...]}`, one
    digest per bucket (`formats/replica_digest.py`, `BUCKETS` of them)."""

    volume_id: int
    live: int
    buckets: tuple[int, ...]

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "volume": self.volume_id,
                "live": self.live,
                "buckets": [f"{d:016x}" for d in self.buckets],
            }
        )

    @classmethod
    def from_json(cls, body: bytes) -> VolumeDigest:
        f = _Fields(_object(body, "volume digest"), "", "volume digest")
        raw = f.array("buckets", BUCKETS)
        if len(raw) != BUCKETS or not all(
            isinstance(d, str) and len(d) == 16 and _HEX16.fullmatch(d) for d in raw
        ):
            raise BadRequest(f"volume digest: want {BUCKETS} digests of 16 hex digits")
        return cls(
            f.integer("volume", 0, U32_MAX),
            f.integer("live", 0, U64_MAX),
            tuple(int(d, 16) for d in raw),
        )

    def differing(self, other: VolumeDigest) -> list[int]:
        """The buckets whose digests differ."""
        return [
            i for i, (a, b) in enumerate(zip(self.buckets, other.buckets, strict=True)) if a != b
        ]


@dataclass(frozen=True, slots=True)
class NeedleStatesQuery:
    """Volume → volume: the `NeedleState`s of a volume's keys in `buckets` (None: all),
    answered with `encode_states` bytes."""

    volume_id: int
    buckets: tuple[int, ...] | None = None

    PATH: ClassVar[str] = "/admin/volume/needles"
    METHOD: ClassVar[str] = "GET"

    def to_query(self) -> dict[str, str]:
        q = {"volume": str(self.volume_id)}
        q["buckets"] = "all" if self.buckets is None else ",".join(map(str, self.buckets))
        return q

    @classmethod
    def from_query(cls, q: Mapping[str, str]) -> NeedleStatesQuery:
        return cls(_volume_id(q), _buckets(q))


# One needle state on the wire (the answer to NeedleStatesQuery is a run of these):
#
# | offset | size | field |
# |---|---|---|
# | 0 | 8 | key, uint64 BE |
# | 8 | 8 | stamp, uint64 BE: the time the state stands for (ns) |
# | 16 | 4 | cookie, uint32 BE |
# | 20 | 4 | body Size, int32 BE; -1: deleted |
# | 24 | 4 | data CRC-32C as stored, uint32 BE (0 for a deletion) |
# | 28 | 4 | zero |
_STATE = struct.Struct(">QQIiI4x")
assert _STATE.size == 32


def encode_states(states: Iterable[NeedleState]) -> bytes:
    return b"".join(_STATE.pack(s.key, s.stamp, s.cookie, s.size, s.crc) for s in states)


def decode_states(body: bytes) -> list[NeedleState]:
    """A `NeedleStatesQuery` answer; a length that is not whole entries is a `BadRequest`."""
    if len(body) % _STATE.size:
        raise BadRequest(f"needle states: {len(body)} bytes is not a whole number of entries")
    return [
        NeedleState(key, cookie, stamp, size, crc)
        for key, stamp, cookie, size, crc in _STATE.iter_unpack(body)
    ]


STAMP_HEADER: Final = "X-Weedpy-Stamp"
"""The header of a `NeedleRecordQuery` answer: the time the record stands for (ns)."""
CRC_HEADER: Final = "X-Weedpy-Crc32c"
"""The header of a `CopyFileQuery` answer: the CRC-32C of its body (8 hex digits)."""


@dataclass(frozen=True, slots=True)
class NeedleRecordQuery:
    """Volume → volume: the raw record of a live needle (checked by its sender before it is
    sent, and again by its receiver), its stamp in `STAMP_HEADER`; 404 when not live."""

    volume_id: int
    key: int

    PATH: ClassVar[str] = "/admin/volume/needle"
    METHOD: ClassVar[str] = "GET"

    def to_query(self) -> dict[str, str]:
        return {"volume": str(self.volume_id), "key": str(self.key)}

    @classmethod
    def from_query(cls, q: Mapping[str, str]) -> NeedleRecordQuery:
        return cls(_volume_id(q), _u64(q, "key"))


@dataclass(frozen=True, slots=True)
class SyncOrder:
    """To a holder of `volume_id`: pull from `peer` every needle state it holds newer than
    yours (anti-entropy, one direction); answered with a `SyncReport`."""

    volume_id: int
    peer: str

    PATH: ClassVar[str] = "/admin/volume/sync"
    METHOD: ClassVar[str] = "POST"

    def to_query(self) -> dict[str, str]:
        return {"volume": str(self.volume_id), "peer": self.peer}

    @classmethod
    def from_query(cls, q: Mapping[str, str]) -> SyncOrder:
        return cls(_volume_id(q), _server(q, "peer"))


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What one pull did: buckets whose digests differed, puts and deletes applied, and keys
    that could not be (the peer's record failed its check, or the volume refused)."""

    volume_id: int
    peer: str
    buckets: int = 0
    pulled: int = 0
    deleted: int = 0
    failed: int = 0

    @property
    def changed(self) -> int:
        return self.pulled + self.deleted

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "volume": self.volume_id,
                "peer": self.peer,
                "buckets": self.buckets,
                "pulled": self.pulled,
                "deleted": self.deleted,
                "failed": self.failed,
            }
        )

    @classmethod
    def from_json(cls, body: bytes) -> SyncReport:
        f = _Fields(_object(body, "sync report"), "", "sync report")
        return cls(
            f.integer("volume", 0, U32_MAX),
            f.text("peer"),
            f.integer("buckets", 0, BUCKETS, 0),
            f.integer("pulled", 0, U64_MAX, 0),
            f.integer("deleted", 0, U64_MAX, 0),
            f.integer("failed", 0, U64_MAX, 0),
        )


@dataclass(frozen=True, slots=True)
class CopySnapshotQuery(_OneVolume):
    """Volume → volume: what a copy of this volume takes now, answered with a
    `CopySnapshotReport` (a tiered volume is a 409: it is mounted, not copied)."""

    PATH: ClassVar[str] = "/admin/volume/copy/status"
    METHOD: ClassVar[str] = "GET"


@dataclass(frozen=True, slots=True)
class CopySnapshotReport:
    """`{"volume", "collection", "datSize", "idxSize", "stampsSize", "compactRevision",
    "vif"}`: sizes that agree with each other (every `.idx` entry in the first `idxSize`
    bytes points into the first `datSize` bytes of `.dat`), and the `.vif` text."""

    volume_id: int
    collection: str
    dat_size: int
    idx_size: int
    stamps_size: int
    compact_revision: int
    vif: str = ""

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "volume": self.volume_id,
                "collection": self.collection,
                "datSize": self.dat_size,
                "idxSize": self.idx_size,
                "stampsSize": self.stamps_size,
                "compactRevision": self.compact_revision,
                "vif": self.vif,
            }
        )

    @classmethod
    def from_json(cls, body: bytes) -> CopySnapshotReport:
        f = _Fields(_object(body, "copy status"), "", "copy status")
        vif = f.get("vif", "")
        if not isinstance(vif, str) or len(vif) > 1 << 20:
            raise BadRequest("copy status: vif: want a string of at most 1 MiB")
        return cls(
            f.integer("volume", 0, U32_MAX),
            f.parsed("collection", parse_collection, _MAX_NAME),
            f.integer("datSize", 0, U64_MAX),
            f.integer("idxSize", 0, U64_MAX),
            f.integer("stampsSize", 0, U64_MAX, 0),
            f.integer("compactRevision", 0, 0xFFFF, 0),
            vif,
        )


COPY_FILES: Final = ("dat", "idx", "ats")
_MAX_COPY_PIECE: Final = 64 << 20


@dataclass(frozen=True, slots=True)
class CopyFileQuery:
    """Volume → volume: `size` bytes at `offset` of a volume's `.dat`, `.idx` or stamp log
    (`file`: `dat`, `idx`, `ats`), while its compaction revision is still `revision` (409
    after a vacuum); the body's CRC-32C in `CRC_HEADER`. At most 64 MiB a piece."""

    volume_id: int
    file: str
    offset: int
    size: int
    revision: int

    PATH: ClassVar[str] = "/admin/volume/copy/file"
    METHOD: ClassVar[str] = "GET"

    def to_query(self) -> dict[str, str]:
        return {
            "volume": str(self.volume_id),
            "file": self.file,
            "offset": str(self.offset),
            "size": str(self.size),
            "revision": str(self.revision),
        }

    @classmethod
    def from_query(cls, q: Mapping[str, str]) -> CopyFileQuery:
        file = q.get("file", "")
        if file not in COPY_FILES:
            raise BadRequest(f"invalid file {file!r}: want one of {', '.join(COPY_FILES)}")
        size = _u64(q, "size")
        if size > _MAX_COPY_PIECE:
            raise BadRequest(f"invalid size {size}: at most {_MAX_COPY_PIECE} a piece")
        revision = _u64(q, "revision", default=0)
        if revision > 0xFFFF:
            raise BadRequest(f"invalid revision {revision}: want 0..65535")
        return cls(_volume_id(q), file, _u64(q, "offset"), size, revision)


@dataclass(frozen=True, slots=True)
class CopyVolume:
    """Master (or shell) → the target: copy volume `volume_id` from `source` here (`.dat`,
    `.idx`, stamp log, `.vif`; catching up on what the source appended meanwhile; then a pull
    of anything newer). Answered in NDJSON: progress lines, then `{"volume", "size",
    "rounds"}` or `{"error"}`."""

    volume_id: int
    source: str
    collection: str = ""

    PATH: ClassVar[str] = "/admin/volume/copy"
    METHOD: ClassVar[str] = "POST"

    def to_query(self) -> dict[str, str]:
        return {"volume": str(self.volume_id), "source": self.source, "collection": self.collection}

    @classmethod
    def from_query(cls, q: Mapping[str, str]) -> CopyVolume:
        return cls(_volume_id(q), _server(q, "source"), parse_collection(q.get("collection", "")))


@dataclass(frozen=True, slots=True)
class ScrubOrder:
    """To a volume server: check the CRC of every live needle of `volume_id` (None: of every
    volume) now, repairing what fails from a replica; answered with a `ScrubReport`."""

    volume_id: int | None = None

    PATH: ClassVar[str] = "/admin/volume/scrub"
    METHOD: ClassVar[str] = "POST"

    def to_query(self) -> dict[str, str]:
        return {} if self.volume_id is None else {"volume": str(self.volume_id)}

    @classmethod
    def from_query(cls, q: Mapping[str, str]) -> ScrubOrder:
        return cls(_volume_id(q) if q.get("volume") else None)


@dataclass(frozen=True, slots=True)
class CorruptFinding:
    volume_id: int
    key: int
    offset: int
    size: int
    reason: str
    repaired: bool = False


@dataclass(frozen=True, slots=True)
class ScrubReport:
    """`{"volumes", "needles", "bytes", "corrupt": [{"volume", "key", "offset", "size",
    "reason", "repaired"}]}`: what a scrub checked and what failed (and whether a replica's
    copy repaired it)."""

    volumes: int = 0
    needles: int = 0
    checked_bytes: int = 0
    corrupt: tuple[CorruptFinding, ...] = ()

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "volumes": self.volumes,
                "needles": self.needles,
                "bytes": self.checked_bytes,
                "corrupt": [
                    {
                        "volume": c.volume_id,
                        "key": c.key,
                        "offset": c.offset,
                        "size": c.size,
                        "reason": c.reason,
                        "repaired": c.repaired,
                    }
                    for c in self.corrupt
                ],
            }
        )

    @classmethod
    def from_json(cls, body: bytes) -> ScrubReport:
        f = _Fields(_object(body, "scrub report"), "", "scrub report")
        found = []
        for i, raw in enumerate(f.array("corrupt", 1 << 20)):
            c = _Fields(raw, f"corrupt[{i}].", "scrub report")
            found.append(
                CorruptFinding(
                    c.integer("volume", 0, U32_MAX),
                    c.integer("key", 0, U64_MAX),
                    c.integer("offset", 0, U64_MAX),
                    c.integer("size", -1, 0x7FFFFFFF),
                    c.text("reason", 4096),
                    c.flag("repaired"),
                )
            )
        return cls(
            f.integer("volumes", 0, U64_MAX, 0),
            f.integer("needles", 0, U64_MAX, 0),
            f.integer("bytes", 0, U64_MAX, 0),
            tuple(found),
        )


# ---------------------------------------------------------------------------- the admin lock


LOCK_NAME: Final = "shell"


@dataclass(frozen=True, slots=True)
class LeaseLock:
    """Shell (or master) → master: take or renew the cluster's admin lock `name` for
    `client` (`token`: the one held, to renew; 0 to take it). Answered `{"token", "name"}`;
    `409 {"error", "holder", "message"}` while someone else holds it."""

    client: str
    token: int = 0
    message: str = ""
    name: str = LOCK_NAME

    PATH: ClassVar[str] = "/cluster/lock"
    METHOD: ClassVar[str] = "POST"

    def to_query(self) -> dict[str, str]:
        return {
            "name": self.name,
            "client": self.client,
            "token": str(self.token),
            "message": self.message,
        }

    @classmethod
    def from_query(cls, q: Mapping[str, str]) -> LeaseLock:
        client = q.get("client", "")
        message = q.get("message", "")
        for label, text in (("client", client), ("message", message), ("name", q.get("name", ""))):
            if len(text) > _MAX_NAME or not text.isprintable():
                raise BadRequest(f"invalid {label}: want at most {_MAX_NAME} printable characters")
        if not client:
            raise BadRequest("missing client parameter")
        return cls(client, _u64(q, "token", default=0), message, q.get("name") or LOCK_NAME)


@dataclass(frozen=True, slots=True)
class ReleaseLock:
    """Shell → master: give the admin lock back (only with the token that holds it)."""

    token: int
    name: str = LOCK_NAME

    PATH: ClassVar[str] = "/cluster/unlock"
    METHOD: ClassVar[str] = "POST"

    def to_query(self) -> dict[str, str]:
        return {"name": self.name, "token": str(self.token)}

    @classmethod
    def from_query(cls, q: Mapping[str, str]) -> ReleaseLock:
        name = q.get("name") or LOCK_NAME
        if len(name) > _MAX_NAME or not name.isprintable():
            raise BadRequest(f"invalid name: want at most {_MAX_NAME} printable characters")
        return cls(_u64(q, "token"), name)
