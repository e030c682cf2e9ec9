"""The stamp log (`.ats`): what a volume's `.dat` and `.idx` do not say about time.

Replicas converge by one rule, "the newest record by its append timestamp wins, tombstones
included" (docs/internals.md, "Replica anti-entropy"). A record's AppendAtNs in `.dat` is this
volume's own stamp, kept strictly increasing in file order (the recovery rule of
`storage/scan.py` depends on it); the time a replicated write or delete stands for is the
stamp its first server gave it, which may be older than the records already here. When the two
differ, the log keeps the first server's (`ORIGIN`). Deletes are logged too (`DELETE`): a vacuum
drops tombstones from `.dat` and `.idx`, but a replica that comes back after an outage must
still learn that its copy of the blob was deleted, and when.

Entries are appended, never rewritten; 32 bytes each, big-endian like `.idx`:

| offset | size | field |
|---|---|---|
| 0 | 8 | key, uint64 |
| 8 | 8 | at_ns, uint64: the AppendAtNs of this volume's record (0: a delete remembered for a key this volume did not hold) |
| 16 | 8 | origin_ns, uint64: the time the record stands for (the first server's stamp) |
| 24 | 4 | cookie, uint32 (of the needle written, or of the one deleted) |
| 28 | 1 | kind: 1 `ORIGIN` (a put record stamped later than its origin), 2 `DELETE` |
| 29 | 3 | zero |

A page the disk never wrote reads as zeros: kind 0, skipped. Entries never straddle a page
(4096 is a multiple of 32). A partial last entry (a crash mid-append) is ignored, and the next
append goes where it began.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "STAMP_ENTRY",
    "STAMP_ENTRY_SIZE",
    "StampKind",
    "Stamps",
    "decode_stamps",
    "encode_stamp",
]

STAMP_ENTRY = struct.Struct(">QQQIB3x")
STAMP_ENTRY_SIZE: Final = STAMP_ENTRY.size
assert STAMP_ENTRY_SIZE == 32 and 4096 % STAMP_ENTRY_SIZE == 0

_DTYPE: Final = np.dtype(
    [
        ("key", ">u8"),
        ("at", ">u8"),
        ("origin", ">u8"),
        ("cookie", ">u4"),
        ("kind", "u1"),
        ("pad", "V3"),
    ]
)
assert _DTYPE.itemsize == STAMP_ENTRY_SIZE


class StampKind(enum.IntEnum):
    ORIGIN = 1
    DELETE = 2


def encode_stamp(key: int, at_ns: int, origin_ns: int, cookie: int, kind: StampKind) -> bytes:
    return STAMP_ENTRY.pack(key, at_ns, origin_ns, cookie, kind)


@dataclass(frozen=True, slots=True)
class Stamps:
    """A decoded log, as numpy columns in file order (entries of kind 0 dropped)."""

    keys: npt.NDArray[np.uint64]
    at: npt.NDArray[np.uint64]
    origin: npt.NDArray[np.uint64]
    cookies: npt.NDArray[np.uint32]
    kinds: npt.NDArray[np.uint8]

    def __len__(self) -> int:
        return len(self.keys)

    def newest(self, kind: StampKind) -> dict[int, tuple[int, int, int]]:
        """key → (at_ns, origin_ns, cookie) of the newest entry of `kind` for each key (the
        greatest origin; the later entry on a tie)."""
        found: dict[int, tuple[int, int, int]] = {}
        select = np.nonzero(self.kinds == kind)[0]
        for i in select.tolist():
            key, origin = int(self.keys[i]), int(self.origin[i])
            old = found.get(key)
            if old is None or origin >= old[1]:
                found[key] = (int(self.at[i]), origin, int(self.cookies[i]))
        return found


def decode_stamps(buf: bytes | bytearray | memoryview) -> Stamps:
    """Every whole entry of `buf` (a trailing partial one is ignored)."""
    whole = len(buf) - len(buf) % STAMP_ENTRY_SIZE
    rows = np.frombuffer(buf, dtype=_DTYPE, count=whole // STAMP_ENTRY_SIZE)
    rows = rows[rows["kind"] != 0]
    return Stamps(
        rows["key"].astype(np.uint64),
        rows["at"].astype(np.uint64),
        rows["origin"].astype(np.uint64),
        rows["cookie"].astype(np.uint32),
        rows["kind"].astype(np.uint8),
    )
