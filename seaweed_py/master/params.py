"""Request parameters and heartbeat bodies, parsed into typed values before any work is done."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from seaweed_py.errors import BadRequest, InvalidFileId, NotAcceptable, WeedError
from seaweed_py.formats.collection import parse_collection
from seaweed_py.formats.fid import parse_volume_id
from seaweed_py.formats.numbers import I64_MAX, U32_MAX, U64_MAX, parse_int, parse_uint
from seaweed_py.formats.replica_placement import ReplicaPlacement
from seaweed_py.formats.ttl import Ttl
from seaweed_py.topology import Heartbeat, LayoutKey, VolumeReport, normalize_disk

__all__ = [
    "AssignOption",
    "parse_assign",
    "parse_count",
    "parse_heartbeat",
    "parse_lookup_vid",
    "placement_object",
]


def parse_count(text: str) -> int | None:
    return parse_uint(text, U32_MAX)


def _number(form: Mapping[str, str], name: str, low: int, high: int, default: int) -> int:
    """An optional decimal parameter within `low..high`; anything else is the client's
    mistake (400 naming the parameter), where the reference would quietly use the default."""
    text = form.get(name, "")
    if not text:
        return default
    value = parse_uint(text, high)
    if value is None or value < low:
        raise BadRequest(f"invalid {name} {text!r}: want a whole number in {low}..{high}")
    return value


def placement_object(rp: ReplicaPlacement) -> dict[str, int]:
    """A replica placement as Go's JSON encoder writes it: zero counts omitted."""
    obj: dict[str, int] = {}
    if rp.same_rack:
        obj["node"] = rp.same_rack
    if rp.diff_rack:
        obj["rack"] = rp.diff_rack
    if rp.diff_data_center:
        obj["dc"] = rp.diff_data_center
    return obj


@dataclass(frozen=True, slots=True)
class AssignOption:
    """What `/dir/assign`, `/vol/grow` and `/submit` ask for."""

    count: int
    key: LayoutKey
    data_center: str = ""
    rack: str = ""
    data_node: str = ""
    preallocate: int = 0
    writable_volume_count: int = 0
    data_size: int = 0

    @property
    def constrained(self) -> bool:
        return bool(self.data_center or self.rack or self.data_node)

    def describe(self) -> str:
        """The option as the reference prints it in errors (Go JSON, empty fields omitted)."""
        obj: dict[str, Any] = {}
        if self.key.collection:
            obj["collection"] = self.key.collection
        obj["replication"] = placement_object(self.key.replica_placement)
        obj["ttl"] = {"Count": self.key.ttl.count, "Unit": self.key.ttl.unit}
        if self.key.disk != "hdd":
            obj["disk"] = self.key.disk
        if self.preallocate:
            obj["preallocate"] = self.preallocate
        for name, value in (
            ("dataCenter", self.data_center),
            ("rack", self.rack),
            ("dataNode", self.data_node),
        ):
            if value:
                obj[name] = value
        obj["version"] = 3
        return orjson.dumps(obj).decode()


def parse_assign(
    form: Mapping[str, str],
    default_replication: str,
    default_preallocate: int,
    *,
    max_preallocate: int = I64_MAX,
    with_count: bool = True,
) -> AssignOption:
    """Parse assign/grow parameters. A collection `parse_collection` refuses → 400; bad
    replication, ttl, preallocate or memoryMapMaxSizeMb → 406 (as the reference answers them);
    `preallocate` must lie in `0..max_preallocate` (the master passes its volume size limit: a
    volume never grows past it).

    `count` (with `with_count`: /dir/assign, /submit; /vol/grow reads its own), `dataSize` and
    `writableVolumeCount` that are present but not a number in range → 400: the reference
    reads them as 1, 0 and 0, so a client asking `count=0x10` got one key and did not know."""
    get = form.get
    collection = parse_collection(get("collection", ""))
    count = _number(form, "count", 1, U32_MAX, 1) if with_count else 1
    replication = get("replication") or default_replication
    try:
        placement = ReplicaPlacement.parse(replication)
    except WeedError:
        # the reference's wording, which scripts match on
        raise NotAcceptable(f"unexpected replication type: {replication}") from None
    try:
        ttl = Ttl.parse(get("ttl", ""))
    except WeedError as exc:
        raise NotAcceptable(exc.message) from None
    memory_map_text = get("memoryMapMaxSizeMb", "")
    if memory_map_text and parse_uint(memory_map_text, U32_MAX) is None:
        # Volumes are never memory-mapped here, but a value the reference refuses is refused.
        raise NotAcceptable(f"invalid memoryMapMaxSizeMb {memory_map_text!r}")
    preallocate = default_preallocate
    preallocate_text = get("preallocate", "")
    if preallocate_text:
        preallocate = _preallocate(preallocate_text, max_preallocate)
    return AssignOption(
        count=count,
        key=LayoutKey(collection, placement, ttl, normalize_disk(get("disk", ""))),
        data_center=get("dataCenter", ""),
        rack=get("rack", ""),
        data_node=get("dataNode", ""),
        preallocate=preallocate,
        writable_volume_count=_number(form, "writableVolumeCount", 0, U32_MAX, 0),
        data_size=_number(form, "dataSize", 0, U64_MAX, 0),
    )


def _preallocate(text: str, limit: int) -> int:
    """Bytes to reserve for a grown volume: 406 unless a decimal in `0..limit` (the reference
    takes any int64, negative ones included, and its volume servers fail to reserve them)."""
    value = parse_int(text, -I64_MAX - 1, I64_MAX)  # what the reference parses
    if value is None:
        raise NotAcceptable(f"invalid preallocate {text!r}: want a number of bytes")
    if not 0 <= value <= limit:
        raise NotAcceptable(f"invalid preallocate {text!r}: want a number of bytes in 0..{limit}")
    return value


def parse_lookup_vid(text: str) -> tuple[str, int | None]:
    """(the volume id text, the id or None if unparsable) from a vid or a full fid."""
    vid_text = text.split(",", 1)[0]
    try:
        return vid_text, parse_volume_id(vid_text)
    except InvalidFileId:
        return vid_text, None


# Bounds of heartbeat fields (docs/internals.md "Heartbeat"). Anything outside is a 400 that
# names the field: a forged or broken heartbeat must not put ids the cluster cannot address,
# negative sizes or an immortal server into the topology.
_MAX_HEARTBEAT_VOLUMES = 1 << 16  # 64 Ki volumes of 30 GiB: about 2 PiB on one server
_MAX_PULSE_SECONDS = 86400  # a server is dead after 3 of its pulses: 3 days at the most
_MAX_DISK_TYPES = 64
_MAX_NAME = 255
_MAX_URL = 1024
_HOST_RE = re.compile(r"[A-Za-z0-9._:%\[\]-]+")
_PRINTABLE_RE = re.compile(r"[!-~]*")  # visible ASCII: echoed into Location headers
_T = TypeVar("_T")


class _Fields:
    """Typed reads of one JSON object of a heartbeat. Every field is checked for its JSON type
    (no `"8080"`, `8080.0` or `true` where an integer is meant) and its range; a mistake is a
    `BadRequest` naming the field (`volumes[3].size: ...`)."""

    __slots__ = ("_raw", "_where")

    def __init__(self, raw: object, where: str) -> None:
        if not isinstance(raw, dict):
            raise BadRequest(f"{where or 'heartbeat'}: want a JSON object, got {_show(raw)}")
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


def _volume(raw: Any, index: int) -> VolumeReport:
    f = _Fields(raw, f"volumes[{index}].")
    return VolumeReport(
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


def _max_counts(f: _Fields) -> dict[str, int]:
    counts = f.get("maxVolumeCounts")
    if counts is None:
        return {"hdd": f.integer("maxVolumeCount", 0, U32_MAX, 0)}
    per_disk = _Fields(counts, "maxVolumeCounts.")
    if len(counts) > _MAX_DISK_TYPES:
        raise BadRequest(f"maxVolumeCounts: want at most {_MAX_DISK_TYPES} disk types")
    out: dict[str, int] = {}
    for disk in counts:
        if len(disk) > _MAX_NAME or not disk.isprintable():
            raise BadRequest(f"maxVolumeCounts: disk type {_show(disk)} is not a name")
        out[normalize_disk(disk)] = per_disk.integer(disk, 0, U32_MAX)
    return out


def parse_heartbeat(body: bytes) -> Heartbeat:
    """A heartbeat body (docs/internals.md); malformed → `BadRequest` saying what is wrong.

    `maxVolumeCount` counts `hdd` slots; an optional `maxVolumeCounts` object gives slots per
    disk type (`{"hdd": 8, "ssd": 2}`) and wins when present. An optional `pulseSeconds` is the
    sender's heartbeat period: a server pulsing slower than the master is given 3 of its own
    pulses before it counts as dead. Fields are checked for type and range (`_Fields`);
    unknown fields are ignored.
    """
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"heartbeat is not JSON: {exc}") from None
    f = _Fields(raw, "")
    try:
        return Heartbeat(
            ip=f.text("ip", _MAX_NAME, _HOST_RE),
            port=f.integer("port", 1, 65535),
            public_url=f.text("publicUrl", _MAX_URL, _PRINTABLE_RE),
            data_center=f.text("dataCenter"),
            rack=f.text("rack"),
            max_volume_counts=_max_counts(f),
            max_file_key=f.integer("maxFileKey", 0, U64_MAX, 0),
            volumes=tuple(
                _volume(v, i) for i, v in enumerate(f.array("volumes", _MAX_HEARTBEAT_VOLUMES))
            ),
            has_no_volumes=f.flag("hasNoVolumes"),
            pulse_seconds=f.number("pulseSeconds", 0, _MAX_PULSE_SECONDS),
        )
    except WeedError as exc:
        raise BadRequest(f"bad heartbeat from {_show(raw.get('ip'))}: {exc.message}") from None
