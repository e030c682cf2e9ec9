"""Needle checksums: CRC-32C (Castagnoli) over the stored data bytes.

The checksum covers the data exactly as stored (after compression). It is written as the raw
CRC; servers older than SeaweedFS 3.09 wrote a masked "legacy" form instead:

    legacy(crc) = rotl32(crc, 17) + 0xa282ead8   (mod 2**32)

Readers accept either form (spec §4.7). The CRC itself runs in the `crc32c` C extension, which
uses the SSE4.2 / ARMv8 CRC instructions when the CPU has them.
"""

from __future__ import annotations

# The C function itself, `crc32c(data, crc=0)` continuing from `crc` (so chunks can be fed one
# after another): every record written or read is checked with it, so no Python wrapper.
from crc32c import crc32c

__all__ = [
    "LEGACY_MASK_DELTA",
    "BytesLike",
    "checksum_matches",
    "crc32c",
    "legacy_checksum",
]

LEGACY_MASK_DELTA = 0xA282EAD8
_U32 = 0xFFFFFFFF

BytesLike = bytes | bytearray | memoryview


def legacy_checksum(crc: int) -> int:
    """The masked form pre-3.09 servers stored for a raw CRC."""
    return ((((crc >> 15) | (crc << 17)) & _U32) + LEGACY_MASK_DELTA) & _U32


def checksum_matches(stored: int, crc: int) -> bool:
    """True when the stored checksum field is `crc` in raw or legacy form."""
    return stored == crc or stored == legacy_checksum(crc)
