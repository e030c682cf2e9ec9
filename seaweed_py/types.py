"""Named scalars shared by every layer.

They are `NewType`s over `int`: free at run time, distinct for mypy, so a needle key cannot be
passed where a volume id is expected.
"""

from typing import NewType

__all__ = [
    "NEEDLE_PADDING",
    "TOMBSTONE_SIZE",
    "Cookie",
    "NeedleId",
    "Offset",
    "Size",
    "VolumeId",
]

VolumeId = NewType("VolumeId", int)
"""uint32 volume id; decimal in file ids."""

NeedleId = NewType("NeedleId", int)
"""uint64 needle key."""

Cookie = NewType("Cookie", int)
"""uint32 random cookie that must match on every read, write and delete."""

Offset = NewType("Offset", int)
"""Byte offset of a needle record in a `.dat` file (always a multiple of NEEDLE_PADDING)."""

Size = NewType("Size", int)
"""Needle body size as stored in the header and the index (int32; -1 marks a tombstone)."""

TOMBSTONE_SIZE = Size(-1)
NEEDLE_PADDING = 8
