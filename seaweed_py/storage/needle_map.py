"""Packed needle maps: needle key -> `IndexHit(offset, size)` for the live needles of a volume.

Memory per needle is a budget (ARCHITECTURE.md): a Python dict costs ~200 B per entry, so the
bulk of a map lives in packed numpy columns and only recent writes sit in a small dict.

`MemoryNeedleMap` (index kind `memory`)
    Sorted columns `keys` (uint64), `units` (offset / 8: uint32 for 4-byte-offset volumes,
    uint64 for 5-byte ones) and `sizes` (int32): 16 B per needle with 4-byte offsets. Keys
    written since the last merge live in `recent`, a dict checked first; an overwrite of a
    column key also goes to `recent` (it shadows the column), a delete marks the column entry
    dead in place (size -1, one atomic store). When `recent` reaches 1/128 of the columns (at
    least 1024 keys) it is merged: appended in place when its keys are all above the largest
    column key (the usual case, keys come from a sequencer), rebuilt otherwise.

`MmapNeedleMap` (index kind `mmap`, and every sealed volume)
    The live entries sorted by key in a `.sdx` file, in the `.idx` entry layout (16 or 17
    bytes, big-endian), memory-mapped and searched in place: every 32nd key is sampled into a
    native array (0.25 B per needle), a bisect there names a 32-entry block, and one
    `mmap.find` of the 8 big-endian key bytes inside the block finds the entry. Writes and
    deletes go to an overlay dict; past 1/16 of the base (at least 65536 keys) a new `.sdx` is
    written and swapped in.

Readers never lock: each map publishes an immutable snapshot object that a writer replaces
with one attribute store, and in-place column updates are single item stores. One writer per
volume (the Volume serialises writes).
"""

from __future__ import annotations

import mmap
import os
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NamedTuple, TypeVar, cast

import numpy as np
import numpy.typing as npt

from seaweed_py.formats.idx import IDX4, IDX4_ENTRY, IDX5_ENTRY, IdxLayout, entry_dtype
from seaweed_py.storage.volume_paths import check_inside

__all__ = [
    "IndexHit",
    "IndexStats",
    "LiveArrays",
    "MemoryNeedleMap",
    "MmapNeedleMap",
    "NeedleMap",
    "TailingMap",
    "replay_index",
]

LiveArrays = tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64], npt.NDArray[np.int32]]
"""(keys, byte offsets, sizes) of the live needles, sorted by key."""


class IndexHit(NamedTuple):
    """Where the live record of a needle lies: what a map's `get` and `Volume.lookup` answer,
    and what `Volume.read_at` and friends take back. A NamedTuple, not a frozen slots
    dataclass: one is made on every lookup of a column entry, and `_hit(IndexHit, (offset,
    size))` takes about 0.15 us to make where the dataclass's `__init__` takes 0.5 (and the
    NamedTuple's own generated `__new__` 0.3); made and freed, it adds about 0.25 us to such
    a lookup over a bare tuple (0.8 -> 1.05 us, measured on the development machine).
    Recent entries are kept as IndexHits, so their lookups make nothing, and `holds` checks
    a hit without making one."""

    offset: int
    """Byte offset of the record in `.dat`."""
    size: int
    """Body Size of the record (its header's Size field)."""


_hit: Final = tuple.__new__  # IndexHit without the Python-level __new__ NamedTuple generates

_DEAD: Final = -1  # size of a column entry deleted in place
_MEMORY_MERGE_MIN: Final = 1024
_MMAP_MERGE_MIN: Final = 65536
_SAMPLE: Final = 32  # .sdx entries per sampled key (0.25 B of RAM per needle)
_WRITE_CHUNK: Final = 1 << 20  # entries per write when producing a .sdx


@dataclass
class IndexStats:
    """Counters of spec §4.9, as the reference keeps them while replaying an index.

    `file_count` counts every put ever, `content_size` their sizes; an overwrite counts as a
    delete of the old needle (garbage for vacuum, §9.1).
    """

    file_count: int = 0
    delete_count: int = 0
    deleted_bytes: int = 0
    content_size: int = 0
    max_key: int = 0

    def note_put(self, key: int, size: int, old: int | None) -> None:
        self.file_count += 1
        self.content_size += size
        if key > self.max_key:
            self.max_key = key
        if old is not None:
            self.delete_count += 1
            self.deleted_bytes += old

    def note_delete(self, old: int) -> None:
        self.delete_count += 1
        self.deleted_bytes += old


def replay_index(
    keys: npt.NDArray[np.uint64], offsets: npt.NDArray[np.uint64], sizes: npt.NDArray[np.int32]
) -> tuple[LiveArrays, IndexStats]:
    """Replay `.idx` entries (file order) into the live set and the counters, vectorised.

    The last entry of a key decides: a put (offset != 0, size >= 0) keeps the key, anything
    else deletes it. Counting follows the reference's replay (`needle_map_memory.go`): each put
    adds to the file count; each delete adds to the delete count, and so does each put that
    replaces a live value; the replaced or deleted size goes to the deleted bytes.
    """
    n = len(keys)
    stats = IndexStats()
    if n == 0:
        empty = (np.empty(0, np.uint64), np.empty(0, np.uint64), np.empty(0, np.int32))
        return empty, stats
    is_put = (offsets != 0) & (sizes >= 0)
    if bool(np.all(keys[1:] >= keys[:-1])):
        sk, sput, ssz, soff = keys, is_put, sizes, offsets
    else:
        order = np.argsort(keys, kind="stable")
        sk, sput, ssz, soff = keys[order], is_put[order], sizes[order], offsets[order]
        del order
    same_as_prev = np.zeros(n, dtype=bool)
    np.equal(sk[1:], sk[:-1], out=same_as_prev[1:])
    replaced = same_as_prev
    replaced[1:] &= sput[:-1]  # the entry before (same key) left the key live
    puts = int(np.count_nonzero(sput))
    stats.file_count = puts
    stats.content_size = int(ssz.sum(where=sput, dtype=np.int64))
    stats.delete_count = (n - puts) + int(np.count_nonzero(replaced[1:] & sput[1:]))
    stats.deleted_bytes = int(ssz[:-1].sum(where=replaced[1:], dtype=np.int64))
    stats.max_key = int(sk[-1])
    last = np.ones(n, dtype=bool)
    np.not_equal(sk[:-1], sk[1:], out=last[:-1])
    live = last & sput
    return (
        (
            np.ascontiguousarray(sk[live], dtype=np.uint64),
            np.ascontiguousarray(soff[live]),  # keeps the caller's offset type (bytes or units)
            np.ascontiguousarray(ssz[live], dtype=np.int32),
        ),
        stats,
    )


class NeedleMap:
    """What a Volume needs from its map. `get` is the read hot path: no allocation beyond the
    returned `IndexHit`."""

    kind: str = ""

    def __init__(self, stats: IndexStats) -> None:
        self.stats = stats

    def get(self, key: int) -> IndexHit | None:
        """Where the live needle `key` lies, or None."""
        raise NotImplementedError

    def holds(self, key: int, hit: IndexHit) -> bool:
        """Whether the live needle `key` lies at `hit`: `get(key) == hit`, which a map may
        answer without making an IndexHit (the volume server asks on every GET it answers
        from its cache)."""
        return self.get(key) == hit

    def put(self, key: int, offset: int, size: int) -> int | None:
        """Point `key` at a new record; returns the size of the live needle it replaced."""
        old = self._set(key, offset, size)
        self.stats.note_put(key, size, old)
        return old

    def delete(self, key: int) -> int | None:
        """Forget `key`; returns the size of the needle deleted, None if it was not live."""
        old = self._remove(key)
        if old is not None:
            self.stats.note_delete(old)
        return old

    def live_arrays(self) -> LiveArrays:
        """Copies of the live entries, sorted by key."""
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def merge(self) -> None:
        """Fold recent changes into the packed form."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the map holds (an mmap); the map is unusable afterwards."""

    def _set(self, key: int, offset: int, size: int) -> int | None:
        raise NotImplementedError

    def _remove(self, key: int) -> int | None:
        raise NotImplementedError


def _u64_view(a: npt.NDArray[np.uint64]) -> memoryview:
    return a.data.cast("B").cast("Q")


def _units_view(a: npt.NDArray[np.unsignedinteger[Any]]) -> memoryview:
    return a.data.cast("B").cast("I" if a.dtype == np.uint32 else "Q")


def _i32_view(a: npt.NDArray[np.int32]) -> memoryview:
    return a.data.cast("B").cast("i")


class _Columns:
    """One published state of a MemoryNeedleMap; arrays may have capacity beyond `n`.

    `first`, `last` and `span` serve an interpolation guess: keys come from a sequencer, so a
    volume's keys are close to evenly spread and the guess usually lands on the key or within
    a few slots of it, a single probe instead of ~24 bisect steps.
    """

    __slots__ = (
        "first",
        "keys",
        "kmv",
        "last",
        "n",
        "recent",
        "sizes",
        "smv",
        "span",
        "umv",
        "units",
    )

    def __init__(
        self,
        n: int,
        keys: npt.NDArray[np.uint64],
        units: npt.NDArray[np.unsignedinteger[Any]],
        sizes: npt.NDArray[np.int32],
        views: tuple[memoryview, memoryview, memoryview] | None = None,
    ) -> None:
        self.n = n
        self.keys = keys
        self.units = units
        self.sizes = sizes
        if views is None:
            views = (_u64_view(keys), _units_view(units), _i32_view(sizes))
        self.kmv, self.umv, self.smv = views
        self.recent: dict[int, IndexHit] = {}
        self.first = int(keys[0]) if n else 1
        self.last = int(keys[n - 1]) if n else 0
        self.span = max(self.last - self.first, 1)


_WINDOW: Final = 256  # slots searched around an interpolation guess before a full bisect


def _find(c: _Columns, key: int) -> int:
    """Index of `key` in the columns, or -1."""
    first = c.first
    if key < first or key > c.last:
        return -1
    kmv = c.kmv
    n = c.n
    i = (key - first) * (n - 1) // c.span
    k = kmv[i]
    if k == key:
        return i
    if k < key:
        lo, hi = i + 1, i + _WINDOW
        if hi >= n:
            hi = n
        elif kmv[hi - 1] < key:
            lo, hi = hi, n
    else:
        lo, hi = i - _WINDOW, i
        if lo <= 0:
            lo = 0
        elif kmv[lo] > key:
            lo, hi = 0, lo
    j = bisect_left(kmv, key, lo, hi)
    return j if j < n and kmv[j] == key else -1


class MemoryNeedleMap(NeedleMap):
    """Sorted packed columns plus a dict of recent writes (module docstring)."""

    kind = "memory"

    def __init__(
        self,
        live: LiveArrays,
        stats: IndexStats,
        layout: IdxLayout = IDX4,
        *,
        merge_min: int = _MEMORY_MERGE_MIN,
        in_units: bool = False,
    ) -> None:
        """`live` holds byte offsets, or offsets in 8-byte units with `in_units`."""
        super().__init__(stats)
        self._merge_min = merge_min
        self._units_dtype: type[np.unsignedinteger[Any]] = (
            np.uint32 if layout is IDX4 else np.uint64
        )
        keys, offsets, sizes = live
        units: npt.NDArray[np.unsignedinteger[Any]] = (
            offsets if in_units else offsets >> np.uint64(3)
        ).astype(self._units_dtype, copy=False)
        self._cols = _Columns(
            len(keys),
            np.ascontiguousarray(keys, dtype=np.uint64),
            units,
            np.ascontiguousarray(sizes, dtype=np.int32),
        )
        self._dead = 0  # column entries deleted in place since the last rebuild

    def __len__(self) -> int:
        c = self._cols
        return c.n - self._dead + len(c.recent) - self._shadowed(c)

    def get(self, key: int) -> IndexHit | None:
        c = self._cols
        hit = c.recent.get(key)
        if hit is not None:
            return hit
        i = _find(c, key)
        if i >= 0:
            size: int = c.smv[i]
            if size != _DEAD:
                return _hit(IndexHit, (c.umv[i] << 3, size))
        return None

    def holds(self, key: int, hit: IndexHit) -> bool:
        c = self._cols
        recent = c.recent.get(key)
        if recent is not None:
            return recent == hit
        i = _find(c, key)
        # A dead entry's size (-1) is never a live hit's.
        return i >= 0 and c.smv[i] == hit.size and c.umv[i] << 3 == hit.offset

    def _set(self, key: int, offset: int, size: int) -> int | None:
        c = self._cols
        hit = c.recent.get(key)
        old: int | None = None
        if hit is not None:
            old = hit[1]
        else:
            i = _find(c, key)
            if i >= 0 and c.smv[i] != _DEAD:
                old = c.smv[i]
        c.recent[key] = _hit(IndexHit, (offset, size))
        if len(c.recent) >= max(self._merge_min, c.n >> 7):
            self._merge(compact=False)
        return old

    def _remove(self, key: int) -> int | None:
        c = self._cols
        i = _find(c, key)
        column_live = i >= 0 and c.smv[i] != _DEAD
        old: int | None = c.smv[i] if column_live else None
        if column_live:
            c.smv[i] = _DEAD  # before popping `recent`, so a reader never sees the old column
            self._dead += 1
        hit = c.recent.pop(key, None)
        return hit[1] if hit is not None else old

    def _shadowed(self, c: _Columns) -> int:
        """Live column entries that a `recent` entry overrides (counted once in len)."""
        count = 0
        for key in c.recent:
            i = _find(c, key)
            if i >= 0 and c.smv[i] != _DEAD:
                count += 1
        return count

    def _recent_arrays(
        self, c: _Columns
    ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.unsignedinteger[Any]], npt.NDArray[np.int32]]:
        m = len(c.recent)
        rk = np.fromiter(c.recent.keys(), dtype=np.uint64, count=m)
        vals = np.fromiter(
            (v for pair in c.recent.values() for v in pair), dtype=np.int64, count=2 * m
        ).reshape(m, 2)
        order = np.argsort(rk)
        return (
            rk[order],
            (vals[order, 0] >> 3).astype(self._units_dtype),
            vals[order, 1].astype(np.int32),
        )

    def merge(self) -> None:
        """Fold `recent` into the columns and drop dead entries; publishes a new snapshot."""
        self._merge(compact=True)

    def _merge(self, *, compact: bool) -> None:
        """Fold `recent` into the columns. When every recent key is new and above the
        largest column key, they are appended in place and dead entries stay marked (cheap:
        O(recent)); otherwise, or when `compact` or dead entries pass 1/8, rebuild (O(n))."""
        c = self._cols
        n = c.n
        compact = compact or self._dead > (n >> 3)
        if not c.recent and not (compact and self._dead):
            return
        rk, ru, rs = self._recent_arrays(c)
        m = len(rk)
        if m and not compact and int(rk[0]) > c.last:
            self._append(c, rk, ru, rs)
            return
        bk = c.keys[:n]
        keep = c.sizes[:n] != _DEAD
        if n and m:
            pos = np.searchsorted(bk, rk)
            inside = pos < n
            pos = pos[inside]
            keep[pos[bk[pos] == rk[inside]]] = False  # overwritten: `recent` holds the news
        kk, ku, ks = bk[keep], c.units[:n][keep], c.sizes[:n][keep]
        at = np.searchsorted(kk, rk)
        self._cols = _Columns(
            len(kk) + m,
            np.insert(kk, at, rk),
            np.insert(ku, at, ru),
            np.insert(ks, at, rs),
        )
        self._dead = 0

    def _append(
        self,
        c: _Columns,
        rk: npt.NDArray[np.uint64],
        ru: npt.NDArray[np.unsignedinteger[Any]],
        rs: npt.NDArray[np.int32],
    ) -> None:
        n, m = c.n, len(rk)
        keys, units, sizes = c.keys, c.units, c.sizes
        if n + m > len(keys):
            # Doubling keeps appends amortised O(1); untouched capacity is never resident.
            cap = max(2 * len(keys), n + m, 1024)
            keys, units, sizes = (
                _grow(keys, n, cap),
                _grow(units, n, cap),
                _grow(sizes, n, cap),
            )
        keys[n : n + m] = rk
        units[n : n + m] = ru
        sizes[n : n + m] = rs
        views = (c.kmv, c.umv, c.smv) if keys is c.keys else None
        self._cols = _Columns(n + m, keys, units, sizes, views)

    def live_arrays(self) -> LiveArrays:
        self.merge()
        c = self._cols
        n = c.n
        return (
            c.keys[:n].copy(),
            c.units[:n].astype(np.uint64) << np.uint64(3),
            c.sizes[:n].copy(),
        )


_Arr = TypeVar("_Arr", bound="np.ndarray[Any, Any]")


def _grow(a: _Arr, n: int, cap: int) -> _Arr:
    out = np.empty(cap, dtype=a.dtype)
    out[:n] = a[:n]
    return cast(_Arr, out)


def write_sdx(path: Path, live: LiveArrays, layout: IdxLayout) -> None:
    """Write sorted live entries as a `.sdx` (atomically: a temporary file renamed over it).

    Not fsynced: the `.sdx` is derived from the `.idx` and rebuilt whenever it is doubted.
    Neither file may resolve outside `path`'s directory (`PathEscapesDirectory`).
    """
    keys, offsets, sizes = live
    dtype = entry_dtype(layout)
    tmp = path.with_name(path.name + ".tmp")
    check_inside(path.parent, path, tmp)
    with open(tmp, "wb") as f:
        for start in range(0, len(keys), _WRITE_CHUNK):
            stop = start + _WRITE_CHUNK
            units = offsets[start:stop] >> np.uint64(3)
            rec = np.empty(len(units), dtype=dtype)
            rec["key"] = keys[start:stop]
            rec["units"] = units & np.uint64(0xFFFFFFFF)
            if layout is not IDX4:
                rec["units_high"] = units >> np.uint64(32)
            rec["size"] = sizes[start:stop]
            f.write(rec.tobytes())
    os.replace(tmp, path)


def read_sdx(buf: bytes | mmap.mmap | memoryview, layout: IdxLayout) -> LiveArrays:
    """Decode a whole `.sdx` into native columns."""
    rec = np.frombuffer(buf, dtype=entry_dtype(layout))
    units = rec["units"].astype(np.uint64)
    if layout is not IDX4:
        units |= rec["units_high"].astype(np.uint64) << np.uint64(32)
    return rec["key"].astype(np.uint64), units << np.uint64(3), rec["size"].astype(np.int32)


class _Sorted:
    """One published state of an MmapNeedleMap."""

    __slots__ = ("mm", "n", "nbytes", "overlay", "samples", "smv")

    def __init__(
        self, mm: mmap.mmap | None, n: int, samples: npt.NDArray[np.uint64], entry_size: int
    ) -> None:
        self.mm = mm
        self.n = n
        self.nbytes = n * entry_size
        self.samples = samples
        self.smv = _u64_view(samples)
        self.overlay: dict[int, IndexHit] = {}


_GONE: Final = IndexHit(0, _DEAD)  # overlay value of a key deleted since the base was written


class MmapNeedleMap(NeedleMap):
    """A memory-mapped sorted `.sdx` plus an overlay dict of changes (module docstring)."""

    kind = "mmap"

    def __init__(
        self,
        path: Path,
        live: LiveArrays,
        stats: IndexStats,
        layout: IdxLayout = IDX4,
        *,
        merge_min: int = _MMAP_MERGE_MIN,
    ) -> None:
        super().__init__(stats)
        self._merge_min = merge_min
        self.path = path
        self._layout = layout
        self._w = layout.entry_size
        self._four = layout is IDX4
        self._state = self._publish(live)

    def _publish(self, live: LiveArrays) -> _Sorted:
        write_sdx(self.path, live, self._layout)
        keys = live[0]
        samples = np.ascontiguousarray(keys[::_SAMPLE], dtype=np.uint64)
        mm: mmap.mmap | None = None
        if len(keys):
            with open(self.path, "rb") as f:
                mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            # Lookups touch one page or two at random: read-ahead would only evict others.
            mm.madvise(mmap.MADV_RANDOM)
        return _Sorted(mm, len(keys), samples, self._w)

    def __len__(self) -> int:
        s = self._state
        count = s.n
        for key, (_, size) in s.overlay.items():
            in_base = self._base_get(s, key) is not None
            count += (size != _DEAD) - in_base
        return count

    def _base_get(self, s: _Sorted, key: int) -> IndexHit | None:
        b = bisect_right(s.smv, key) - 1
        mm = s.mm
        if b < 0 or mm is None:
            return None
        w = self._w
        lo = b * _SAMPLE * w
        hi = min(lo + _SAMPLE * w, s.nbytes)
        kb = key.to_bytes(8, "big")
        p = mm.find(kb, lo, hi)
        while p != -1 and (p - lo) % w:
            p = mm.find(kb, p + 1, hi)
        if p == -1:
            return None
        if self._four:
            _, units, size = IDX4_ENTRY.unpack_from(mm, p)
            return _hit(IndexHit, (units << 3, size))
        _, low, high, size = IDX5_ENTRY.unpack_from(mm, p)
        return _hit(IndexHit, (((high << 32) | low) << 3, size))

    def get(self, key: int) -> IndexHit | None:
        s = self._state
        hit = s.overlay.get(key)
        if hit is not None:
            return None if hit is _GONE else hit
        return self._base_get(s, key)

    def _set(self, key: int, offset: int, size: int) -> int | None:
        s = self._state
        old = self.get(key)
        s.overlay[key] = _hit(IndexHit, (offset, size))
        if len(s.overlay) >= max(self._merge_min, s.n >> 4):
            self.merge()
        return old[1] if old is not None else None

    def _remove(self, key: int) -> int | None:
        s = self._state
        old = self.get(key)
        if old is None:
            return None
        s.overlay[key] = _GONE
        return old[1]

    def _combined(self) -> LiveArrays:
        s = self._state
        base: LiveArrays
        if s.mm is None:
            base = (np.empty(0, np.uint64), np.empty(0, np.uint64), np.empty(0, np.int32))
        else:
            base = read_sdx(memoryview(s.mm)[: s.nbytes], self._layout)
        if not s.overlay:
            return base
        bk, bo, bs = base
        m = len(s.overlay)
        ok = np.fromiter(s.overlay.keys(), dtype=np.uint64, count=m)
        vals = np.fromiter(
            (v for pair in s.overlay.values() for v in pair), dtype=np.int64, count=2 * m
        ).reshape(m, 2)
        keep = ~np.isin(bk, ok, assume_unique=True)
        alive = vals[:, 1] != _DEAD
        keys = np.concatenate((bk[keep], ok[alive]))
        offsets = np.concatenate((bo[keep], vals[alive, 0].astype(np.uint64)))
        sizes = np.concatenate((bs[keep], vals[alive, 1].astype(np.int32)))
        order = np.argsort(keys, kind="stable")
        return keys[order], offsets[order], sizes[order]

    def merge(self) -> None:
        """Write the overlay into a new `.sdx` and map it."""
        if self._state.overlay:
            self._state = self._publish(self._combined())

    def live_arrays(self) -> LiveArrays:
        keys, offsets, sizes = self._combined()
        return keys.copy(), offsets.copy(), sizes.copy()

    def close(self) -> None:
        mm = self._state.mm
        self._state = _Sorted(None, 0, np.empty(0, np.uint64), self._w)
        if mm is not None:
            mm.close()


class TailingMap(NeedleMap):
    """A map several worker processes keep in step (storage/shared.py): before it answers,
    `catch_up` takes in the `.idx` entries the other workers appended. The appends of this
    process go straight to `inner`, as in a map of one process."""

    def __init__(self, inner: NeedleMap, catch_up: Callable[[], None]) -> None:
        super().__init__(inner.stats)
        self.inner = inner
        self.kind = inner.kind
        self._catch_up = catch_up

    def get(self, key: int) -> IndexHit | None:
        self._catch_up()
        return self.inner.get(key)

    def holds(self, key: int, hit: IndexHit) -> bool:
        self._catch_up()
        return self.inner.holds(key, hit)

    def put(self, key: int, offset: int, size: int) -> int | None:
        return self.inner.put(key, offset, size)

    def delete(self, key: int) -> int | None:
        return self.inner.delete(key)

    def live_arrays(self) -> LiveArrays:
        self._catch_up()
        return self.inner.live_arrays()

    def __len__(self) -> int:
        self._catch_up()
        return len(self.inner)

    def merge(self) -> None:
        self.inner.merge()

    def close(self) -> None:
        self.inner.close()
