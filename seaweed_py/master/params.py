"""Request parameters and heartbeat bodies, parsed into typed values before any work is done."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from seaweed_py.errors import BadRequest, InvalidFileId, NotAcceptable, WeedError
from seaweed_py.formats.collection import parse_collection
from seaweed_py.formats.fid import parse_volume_id
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

_U64_MAX = (1 << 64) - 1
_U32_MAX = (1 << 32) - 1


def _uint(text: str, limit: int) -> int | None:
    """Go `strconv.ParseUint` semantics: decimal digits only, within range, else None."""
    if not text or not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    return value if value <= limit else None


def parse_count(text: str) -> int | None:
    return _uint(text, _U32_MAX)


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
    form: Mapping[str, str], default_replication: str, default_preallocate: int
) -> AssignOption:
    """Parse assign/grow parameters. A collection `parse_collection` refuses → 400; bad
    replication, ttl, preallocate or memoryMapMaxSizeMb → 406 (as the reference answers them); a
    missing or bad `count` means 1."""
    get = form.get
    collection = parse_collection(get("collection", ""))
    count = _uint(get("count", ""), _U64_MAX) or 1
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
    if memory_map_text and _uint(memory_map_text, _U32_MAX) is None:
        # Volumes are never memory-mapped here, but a value the reference refuses is refused.
        raise NotAcceptable(f"invalid memoryMapMaxSizeMb {memory_map_text!r}")
    preallocate_text = get("preallocate", "")
    preallocate = default_preallocate
    if preallocate_text:
        try:
            preallocate = int(preallocate_text)
        except ValueError:
            raise NotAcceptable(f"invalid preallocate {preallocate_text!r}") from None
    return AssignOption(
        count=count,
        key=LayoutKey(collection, placement, ttl, normalize_disk(get("disk", ""))),
        data_center=get("dataCenter", ""),
        rack=get("rack", ""),
        data_node=get("dataNode", ""),
        preallocate=preallocate,
        writable_volume_count=_uint(get("writableVolumeCount", ""), _U32_MAX) or 0,
        data_size=_uint(get("dataSize", ""), _U64_MAX) or 0,
    )


def parse_lookup_vid(text: str) -> tuple[str, int | None]:
    """(the volume id text, the id or None if unparsable) from a vid or a full fid."""
    vid_text = text.split(",", 1)[0]
    try:
        return vid_text, parse_volume_id(vid_text)
    except InvalidFileId:
        return vid_text, None


def _volume(raw: Any) -> VolumeReport:
    if not isinstance(raw, dict):
        raise BadRequest(f"heartbeat volume must be an object, got {raw!r}")
    placement = raw.get("replicaPlacement", "")
    ttl = raw.get("ttl", "")
    collection = raw.get("collection", "")
    if not isinstance(collection, str):
        raise BadRequest(f"heartbeat volume collection must be a string, got {collection!r}")
    return VolumeReport(
        id=int(raw["id"]),
        collection=parse_collection(collection, "heartbeat volume collection"),
        size=int(raw.get("size", 0)),
        file_count=int(raw.get("fileCount", 0)),
        delete_count=int(raw.get("deleteCount", 0)),
        deleted_byte_count=int(raw.get("deletedByteCount", 0)),
        read_only=bool(raw.get("readOnly", False)),
        replica_placement=(
            ReplicaPlacement.from_byte(placement)
            if isinstance(placement, int)
            else ReplicaPlacement.parse(str(placement))
        ),
        ttl=Ttl.from_uint32(ttl) if isinstance(ttl, int) else Ttl.parse(str(ttl)),
        version=int(raw.get("version", 3)),
        compact_revision=int(raw.get("compactRevision", 0)),
        modified_at_second=int(raw.get("modifiedAtSecond", 0)),
        disk_type=normalize_disk(str(raw.get("diskType", ""))),
    )


def parse_heartbeat(body: bytes) -> Heartbeat:
    """A heartbeat body (docs/internals.md); malformed → `BadRequest` saying what is wrong.

    `maxVolumeCount` counts `hdd` slots; an optional `maxVolumeCounts` object gives slots per
    disk type (`{"hdd": 8, "ssd": 2}`) and wins when present. An optional `pulseSeconds` is the
    sender's heartbeat period: a server pulsing slower than the master is given 3 of its own
    pulses before it counts as dead.
    """
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"heartbeat is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise BadRequest("heartbeat must be a JSON object")
    try:
        ip, port = str(raw["ip"]), int(raw["port"])
        counts = raw.get("maxVolumeCounts")
        if isinstance(counts, dict):
            max_counts = {normalize_disk(str(k)): int(v) for k, v in counts.items()}
        else:
            max_counts = {"hdd": int(raw.get("maxVolumeCount", 0))}
        volumes = tuple(_volume(v) for v in raw.get("volumes") or ())
        return Heartbeat(
            ip=ip,
            port=port,
            public_url=str(raw.get("publicUrl", "")),
            data_center=str(raw.get("dataCenter", "")),
            rack=str(raw.get("rack", "")),
            max_volume_counts=max_counts,
            max_file_key=int(raw.get("maxFileKey", 0)),
            volumes=volumes,
            has_no_volumes=bool(raw.get("hasNoVolumes", False)),
            pulse_seconds=float(raw.get("pulseSeconds", 0) or 0),
        )
    except WeedError as exc:
        raise BadRequest(
            f"bad heartbeat from {raw.get('ip')}:{raw.get('port')}: {exc.message}"
        ) from None
    except (KeyError, TypeError, ValueError) as exc:
        raise BadRequest(f"bad heartbeat: {exc.__class__.__name__} {exc}") from None
