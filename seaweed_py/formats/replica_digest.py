"""What one replica holds, and the rule that decides between replicas: digests of live needles
and "the newest record wins" (docs/internals.md, "Replica anti-entropy").

A replica's state of a key is a `NeedleState`: the live needle (cookie, body Size, data CRC) or
its deletion, with the time it stands for (`stamp`: the AppendAtNs its first server gave it,
which travels with replicated writes and deletes; the stamp log keeps it where it differs from
the record's own). Of two states of one key, the greater `order` wins:

    (stamp, deleted, crc, cookie, size)

so the newest record wins, a tombstone wins a tie with a put of the same nanosecond, and
anything still equal is decided by content, the same way on every replica. A key one replica
does not know at all has no state: any state wins over none. A vacuum removes tombstones from
`.dat`, never from the stamp log, so a deletion outlives it.

Comparing two replicas starts with digests: keys are spread over `BUCKETS` buckets by a mix of
their bits, and each bucket's digest is the XOR of a 64-bit hash of every live needle's (key,
cookie, Size, CRC) in it. Equal digests: nothing to do for that bucket (deletions are not hashed:
two replicas that agree on every live needle agree). Different: the needle lists of those
buckets are compared key by key. Files, offsets, counts and compaction revisions are never
compared: independent vacuums make them differ between healthy replicas.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "BUCKETS",
    "NeedleState",
    "bucket_of",
    "buckets_of",
    "digests",
    "newer_states",
    "winner",
]

BUCKETS: Final = 256
_GOLDEN: Final = 0x9E3779B97F4A7C15
_M1: Final = 0xBF58476D1CE4E5B9
_M2: Final = 0x94D049BB133111EB
# numpy is imported by the hashing functions, not with the module: the master imports this
# module (through formats/wire.py) for `NeedleState` and `BUCKETS` alone, and numpy would be
# some 0.1 s of CPU of its start.


@dataclass(frozen=True, slots=True)
class NeedleState:
    """One key as one replica holds it: live (`size` ≥ 0) or deleted (`size` -1)."""

    key: int
    cookie: int
    stamp: int
    size: int
    crc: int = 0

    @property
    def deleted(self) -> bool:
        return self.size < 0

    @property
    def order(self) -> tuple[int, bool, int, int, int]:
        return (self.stamp, self.deleted, self.crc, self.cookie, self.size)


def winner(a: NeedleState | None, b: NeedleState | None) -> NeedleState | None:
    """The state that wins between two of one key (None: neither exists)."""
    if a is None:
        return b
    if b is None:
        return a
    return b if b.order > a.order else a


def newer_states(
    ours: Mapping[int, NeedleState], theirs: Iterable[NeedleState]
) -> list[NeedleState]:
    """Their states that win over ours (what a pull from them applies here), by key."""
    out = [s for s in theirs if winner(ours.get(s.key), s) is s and ours.get(s.key) != s]
    return sorted(out, key=lambda s: s.key)


def _mix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64's finaliser, elementwise (wrapping uint64 arithmetic)."""
    import numpy as np

    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(_M1)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(_M2)
        return x ^ (x >> np.uint64(31))


def buckets_of(keys: npt.NDArray[np.uint64]) -> npt.NDArray[np.intp]:
    """The bucket of each key."""
    import numpy as np

    with np.errstate(over="ignore"):
        mixed = _mix(keys.astype(np.uint64) * np.uint64(_GOLDEN))
    return (mixed >> np.uint64(56)).astype(np.intp)


def bucket_of(key: int) -> int:
    import numpy as np

    return int(buckets_of(np.array([key], dtype=np.uint64))[0])


def digests(
    keys: npt.NDArray[np.uint64],
    cookies: npt.NDArray[np.uint64],
    sizes: npt.NDArray[np.uint64],
    crcs: npt.NDArray[np.uint64],
) -> list[int]:
    """The `BUCKETS` digests of the live needles given as columns (any order)."""
    import numpy as np

    k = keys.astype(np.uint64)
    with np.errstate(over="ignore"):
        h = _mix(k ^ np.uint64(_GOLDEN))
        h = _mix(h ^ (cookies.astype(np.uint64) << np.uint64(32) | crcs.astype(np.uint64)))
        h = _mix(h ^ sizes.astype(np.uint64))
    out = np.zeros(BUCKETS, dtype=np.uint64)
    np.bitwise_xor.at(out, buckets_of(k), h)
    return [int(d) for d in out]
