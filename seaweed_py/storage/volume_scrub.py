"""Scrubbing a volume: every live needle read back and checked, as a read would check it (the
header against the index, every field's bounds, the data against its CRC).

`scrub_pass` walks the live needles in file order, reading neighbouring records with one pread
of up to `SCRUB_BATCH` bytes and decoding each (`formats.needle.decode_needle`); a record
larger than that is checked in 1 MiB pieces (`Volume.verify`). It yields after each batch, so
the caller paces it (the volume server's scrubber sleeps between batches to keep to
`-scrubMBps`) and may run each batch in a worker thread. A record that fails is noted in the
volume's `CorruptNeedles` (logged once, listed by `corrupt_needles`, counted in metrics) and
handed back for repair. A vacuum that commits during a pass ends it for that volume: offsets
changed, and the next pass starts over.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import numpy as np

from seaweed_py.errors import CorruptNeedle, NeedleNotFound
from seaweed_py.formats.needle import NEEDLE_HEADER, NEEDLE_HEADER_SIZE, decode_needle
from seaweed_py.storage.integrity import CorruptRecord
from seaweed_py.storage.needle_map import IndexHit

if TYPE_CHECKING:
    from seaweed_py.storage.volume import Volume

__all__ = ["SCRUB_BATCH", "ScrubStep"]

SCRUB_BATCH: Final = 1 << 20
_GAP: Final = 256 << 10  # garbage between live records read through rather than skipped


@dataclass(slots=True)
class ScrubStep:
    """What one batch of a pass checked."""

    needles: int = 0
    checked_bytes: int = 0
    corrupt: list[CorruptRecord] = field(default_factory=list)


def scrub_pass(self: Volume, batch_bytes: int = SCRUB_BATCH) -> Iterator[ScrubStep]:
    """Check every live needle of the volume (module docstring); one step per batch. Each
    `next()` blocks on disk reads: call it off the event loop."""
    if self.remote is not None:
        return
    with self._lock:
        if self._closed:
            return
        keys, offsets, sizes = self._map.live_arrays()
    order = np.argsort(offsets, kind="stable")
    keys, offsets, sizes = keys[order].tolist(), offsets[order].tolist(), sizes[order].tolist()
    revision = self.compact_revision
    tail = self._tail
    i, n = 0, len(keys)
    while i < n:
        if self._closed or self.compact_revision != revision:
            return
        start = offsets[i]
        end = start + NEEDLE_HEADER_SIZE + sizes[i] + tail
        j = i + 1
        while j < n:
            rec_end = offsets[j] + NEEDLE_HEADER_SIZE + sizes[j] + tail
            if rec_end - start > batch_bytes or offsets[j] - end > _GAP:
                break
            end, j = max(end, rec_end), j + 1
        step = ScrubStep()
        if end - start > batch_bytes:  # one record larger than a batch
            _check_large(self, keys[i], IndexHit(start, sizes[i]), step)
        else:
            buf = self._pread(end - start, start)
            for k in range(i, j):
                _check(self, keys[k], IndexHit(offsets[k], sizes[k]), buf, start, step)
        step.needles = j - i
        step.checked_bytes = end - start
        yield step
        i = j


def _check(self: Volume, key: int, hit: IndexHit, buf: bytes, base: int, step: ScrubStep) -> None:
    offset, size = hit
    if not self._map.holds(key, hit):
        return  # overwritten or deleted since the pass began
    at = offset - base
    record = buf[at : at + NEEDLE_HEADER_SIZE + size + self._tail]
    try:
        if len(record) < NEEDLE_HEADER_SIZE + size + self._tail:
            raise CorruptNeedle("record truncated", volume_id=self.id, offset=offset)
        stored_key, stored_size = NEEDLE_HEADER.unpack_from(record)[1:]
        if stored_key != key or stored_size != size:
            raise CorruptNeedle(
                "record header does not match the index", volume_id=self.id, offset=offset
            )
        decode_needle(record, self.version, volume_id=self.id, offset=offset)
    except CorruptNeedle as exc:
        if not self._map.holds(key, hit):
            return  # replaced while we read it
        _found(self, CorruptRecord(key, offset, size, exc.message), step)


def _check_large(self: Volume, key: int, hit: IndexHit, step: ScrubStep) -> None:
    head = self._pread(NEEDLE_HEADER_SIZE, hit.offset)
    if len(head) < NEEDLE_HEADER_SIZE:
        _found(self, CorruptRecord(key, hit.offset, hit.size, "record truncated"), step)
        return
    cookie = int(NEEDLE_HEADER.unpack_from(head)[0])
    try:
        self.verify(self._meta_at(key, cookie, hit, NeedleNotFound))
    except NeedleNotFound:
        return  # replaced since the pass began
    except CorruptNeedle as exc:
        if self._map.holds(key, hit):
            _found(self, CorruptRecord(key, hit.offset, hit.size, exc.message), step)


def _found(self: Volume, record: CorruptRecord, step: ScrubStep) -> None:
    self._corrupt.note(record)
    step.corrupt.append(record)
