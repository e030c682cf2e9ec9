"""The superblock: the first bytes of every `.dat` file (spec §4.2).

| offset | size | field |
|---|---|---|
| 0 | 1 | needle version (1, 2 or 3; new volumes 3) |
| 1 | 1 | replica placement byte `100x + 10y + z` |
| 2 | 2 | TTL `[count, unit]` |
| 4 | 2 | compaction revision, uint16 BE (each vacuum adds one) |
| 6 | 2 | extra size, uint16 BE (versions 2 and 3) |

For versions 2 and 3, `extra size` bytes of a protobuf `SuperBlockExtra` may follow and needles
start after them. The reference never reads those bytes (quirk A16); we keep them opaque, honour
their length for the first needle's offset, and always write none.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from seaweed_py.errors import CorruptVolume
from seaweed_py.formats.crc import BytesLike
from seaweed_py.formats.replica_placement import ReplicaPlacement
from seaweed_py.formats.ttl import Ttl

__all__ = ["SUPERBLOCK", "SUPERBLOCK_SIZE", "SuperBlock", "superblock_length"]

SUPERBLOCK = struct.Struct(">BBBBHH")  # version, placement, ttl count, ttl unit, revision, extra
assert SUPERBLOCK.size == 8
SUPERBLOCK_SIZE: Final = SUPERBLOCK.size

_VERSIONS = (1, 2, 3)
_NO_REPLICATION = ReplicaPlacement()


@dataclass(frozen=True, slots=True)
class SuperBlock:
    version: int = 3
    replica_placement: ReplicaPlacement = _NO_REPLICATION
    ttl: Ttl = Ttl.EMPTY
    compaction_revision: int = 0
    extra: bytes = b""

    @property
    def block_size(self) -> int:
        """Offset of the first needle: 8 plus the extra bytes (versions 2 and 3)."""
        return SUPERBLOCK_SIZE + (len(self.extra) if self.version >= 2 else 0)

    def encode(self) -> bytes:
        if self.version not in _VERSIONS:
            raise ValueError(f"unsupported needle version {self.version}")
        if not 0 <= self.compaction_revision <= 0xFFFF:
            raise ValueError(f"compaction revision out of range: {self.compaction_revision}")
        extra = self.extra if self.version >= 2 else b""
        if len(extra) > 0xFFFF:
            raise ValueError(f"superblock extra of {len(extra)} bytes is too long")
        head = SUPERBLOCK.pack(
            self.version,
            self.replica_placement.to_byte(),
            self.ttl.count,
            self.ttl.unit,
            self.compaction_revision,
            len(extra),
        )
        return head + extra

    @classmethod
    def decode(cls, data: BytesLike, *, volume_id: int | None = None) -> SuperBlock:
        """Decode the superblock from the start of `data` (pass at least `superblock_length`
        bytes when the extra size is not zero)."""
        if len(data) < SUPERBLOCK_SIZE:
            raise CorruptVolume(f"superblock truncated to {len(data)} bytes", volume_id=volume_id)
        version, placement, ttl_count, ttl_unit, revision, extra_size = SUPERBLOCK.unpack_from(
            data, 0
        )
        if version not in _VERSIONS:
            raise CorruptVolume(
                f"unsupported needle version {version} in superblock", volume_id=volume_id
            )
        extra = b""
        if version >= 2 and extra_size:
            end = SUPERBLOCK_SIZE + extra_size
            if len(data) < end:
                raise CorruptVolume(
                    f"superblock extra of {extra_size} bytes truncated", volume_id=volume_id
                )
            extra = bytes(data[SUPERBLOCK_SIZE:end])
        return cls(
            version,
            ReplicaPlacement.from_byte(placement),
            Ttl.from_bytes(bytes((ttl_count, ttl_unit))),
            revision,
            extra,
        )


def superblock_length(head: BytesLike) -> int:
    """Total superblock length (8 + extra) from its first 8 bytes."""
    if len(head) < SUPERBLOCK_SIZE:
        raise CorruptVolume(f"superblock truncated to {len(head)} bytes")
    version = head[0]
    extra_size = SUPERBLOCK.unpack_from(head, 0)[5]
    return SUPERBLOCK_SIZE + (extra_size if version >= 2 else 0)
