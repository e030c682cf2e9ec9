"""Request parameters, parsed into typed values before any work is done. Heartbeats and the
other volume-server messages are `formats/wire.py`'s."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from seaweed_py.errors import (
    BadRequest,
    InvalidFileId,
    NotAcceptable,
    VolumeNotFound,
    WeedError,
)
from seaweed_py.formats.collection import parse_collection
from seaweed_py.formats.fid import parse_volume_id
from seaweed_py.formats.numbers import I64_MAX, U32_MAX, U64_MAX, parse_int, parse_uint
from seaweed_py.formats.replica_placement import ReplicaPlacement
from seaweed_py.formats.ttl import Ttl
from seaweed_py.topology import LayoutKey, Topology, normalize_disk
from seaweed_py.topology.vacuum import VacuumPass

__all__ = [
    "AssignOption",
    "parse_assign",
    "parse_count",
    "parse_lookup_vid",
    "parse_vacuum",
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


# Go's strconv.ParseFloat syntax: decimal with an optional exponent, or hexadecimal with a
# binary exponent; `inf`, `infinity` and `nan` are matched apart (any case).
_GO_DECIMAL: Final = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_GO_HEX: Final = re.compile(
    r"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?[0-9]+"
)
_GO_SPECIAL: Final = frozenset(("inf", "+inf", "-inf", "infinity", "+infinity", "-infinity", "nan"))


def parse_go_float(text: str) -> float | None:
    """`text` as Go's `strconv.ParseFloat(text, 64)` reads it, None where it fails: no spaces,
    no underscores, and a finite number too large for a float64 is an error, not infinity."""
    if text.lower() in _GO_SPECIAL:
        return float(text)
    if _GO_DECIMAL.fullmatch(text):
        value = float(text)
    elif _GO_HEX.fullmatch(text):
        value = float.fromhex(text)
    else:
        return None
    return None if math.isinf(value) else value


def parse_vacuum(
    form: Mapping[str, str], default_threshold: float, topology: Topology
) -> VacuumPass:
    """`/vol/vacuum`'s parameters: `garbageThreshold` (Go float syntax; 406 otherwise, the
    reference's answer), `collection` (400 for a name `parse_collection` refuses or no volume
    has) and `volumeId` (400 if malformed, 404 if no server holds it). The reference's HTTP
    handler reads only the threshold; the filters are weedpy's (docs/compat.md)."""
    text = form.get("garbageThreshold", "")
    threshold = parse_go_float(text) if text else default_threshold
    if threshold is None:
        raise NotAcceptable(f"garbageThreshold {text} is not a valid float number")
    collection = None
    if "collection" in form:
        collection = parse_collection(form["collection"])
        if collection not in topology.collections():
            raise BadRequest(f"collection {collection} does not exist")
    volume_id = None
    vid_text = form.get("volumeId", "")
    if vid_text:
        volume_id = parse_volume_id(vid_text)
        if not topology.lookup(volume_id):
            raise VolumeNotFound(f"volume id {volume_id} not found")
    return VacuumPass(threshold, collection, volume_id)
