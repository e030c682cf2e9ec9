"""What a volume offers its replicas: its needles as `NeedleState`s and their digests, a live
needle's raw record for a peer, a peer's newer record or deletion applied here, and the
consistent snapshot and file reads a copy of the whole volume is made from.

The rule deciding between replicas is `formats/replica_digest.py`'s; the time each state stands
for comes from the record's AppendAtNs and the stamp log (storage/stamps.py). Applying is
"only if newer": under the volume's lock the key's current state here is read again, so a write
or delete that raced the comparison is never overwritten by an older one.

Reads take no lock except to copy the live index (`states`, `digest`) or to flush the batched
`.idx` entries (`copy_snapshot`); they read records with preads and run off the event loop.
The functions here are methods of `Volume` (volume.py binds them).
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np

from seaweed_py.errors import (
    Conflict,
    CorruptNeedle,
    CorruptVolume,
    NeedleNotFound,
    NotFound,
)
from seaweed_py.formats.crc import checksum_matches, crc32c
from seaweed_py.formats.needle import NEEDLE_HEADER, NEEDLE_HEADER_SIZE, Needle, decode_needle
from seaweed_py.formats.replica_digest import NeedleState, buckets_of, digests, winner
from seaweed_py.storage import volume_write as _write
from seaweed_py.storage.integrity import CorruptRecord
from seaweed_py.storage.needle_map import IndexHit, LiveArrays
from seaweed_py.storage.shared import IDX_END

if TYPE_CHECKING:
    from seaweed_py.storage.volume import Volume

__all__ = ["CopySnapshot", "VolumeDigest"]

_WHOLE_RECORD: Final = 4096  # records up to this body Size are read in one pread


@dataclass(frozen=True, slots=True)
class VolumeDigest:
    live: int
    buckets: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class CopySnapshot:
    """How much of each file a copy takes, consistent with each other: every `.idx` entry in
    the first `idx_size` bytes points into the first `dat_size` bytes of `.dat`."""

    dat_size: int
    idx_size: int
    stamps_size: int
    compact_revision: int
    vif: bytes


def _live_state(self: Volume, key: int, hit: IndexHit) -> NeedleState:
    """The state of the live needle `key` at `hit`, from its header and footer (unchecked
    data: the scrubber and reads check CRCs)."""
    offset, size = hit
    tail = self._tail
    if size <= _WHOLE_RECORD:
        record = self._pread(NEEDLE_HEADER_SIZE + size + tail, offset)
        head, foot = record, record[NEEDLE_HEADER_SIZE + size :]
    else:
        head = self._pread(NEEDLE_HEADER_SIZE, offset)
        foot = self._pread(tail, offset + NEEDLE_HEADER_SIZE + size)
    if len(head) < NEEDLE_HEADER_SIZE or len(foot) < tail:
        raise CorruptNeedle("record truncated", volume_id=self.id, offset=offset, key=f"{key:x}")
    cookie, stored_key, stored_size = NEEDLE_HEADER.unpack_from(head)
    if stored_key != key or stored_size != size:
        raise CorruptNeedle(
            "record header does not match the index",
            volume_id=self.id,
            offset=offset,
            key=f"{key:x}",
        )
    crc = int.from_bytes(foot[:4], "big")
    stamp = int.from_bytes(foot[4:12], "big") if tail >= 12 else 0
    return NeedleState(key, cookie, self._stamps.origin_of(key, stamp), size, crc)


def _live(self: Volume) -> LiveArrays:
    with self._lock:
        return self._map.live_arrays()


def states(self: Volume, buckets: Collection[int] | None = None) -> dict[int, NeedleState]:
    """Every key this volume knows, live or deleted (`buckets`: only keys in these), each
    as its newest state. A record that cannot be read as its index says is left out (the
    scrubber reports it; a peer's copy then wins). Blocks: run it off the event loop."""
    keys, offsets, sizes = _live(self)
    if buckets is not None:
        chosen = np.isin(buckets_of(keys), np.fromiter(buckets, dtype=np.intp))
        keys, offsets, sizes = keys[chosen], offsets[chosen], sizes[chosen]
    found: dict[int, NeedleState] = {}
    for key, offset, size in zip(keys.tolist(), offsets.tolist(), sizes.tolist(), strict=True):
        try:
            found[key] = _live_state(self, key, IndexHit(offset, size))
        except CorruptNeedle as exc:
            self._corrupt.note(CorruptRecord(key, offset, size, exc.message))
    wanted = None if buckets is None else set(buckets)
    deletions = self._stamps.deletions()
    if wanted is not None and deletions:
        dkeys = np.fromiter(deletions, dtype=np.uint64, count=len(deletions))
        inside = dkeys[np.isin(buckets_of(dkeys), np.fromiter(wanted, dtype=np.intp))]
        deletions = {k: deletions[k] for k in inside.tolist()}
    for key, (_, origin, cookie) in deletions.items():
        gone = NeedleState(key, cookie, origin, -1)
        found[key] = winner(found.get(key), gone) or gone
    return found


def digest(self: Volume) -> VolumeDigest:
    """The bucket digests of the live needles (formats/replica_digest.py)."""
    live = [s for s in states(self).values() if not s.deleted]
    cols = np.array([(s.key, s.cookie, s.size, s.crc) for s in live], dtype=np.uint64).reshape(
        -1, 4
    )
    return VolumeDigest(len(live), tuple(digests(cols[:, 0], cols[:, 1], cols[:, 2], cols[:, 3])))


def record_for_peer(self: Volume, key: int) -> tuple[bytes, int]:
    """The live needle `key`'s record, checked, and the time it stands for; NeedleNotFound
    when it is not live, CorruptNeedle when it does not check out (never handed on)."""
    hit = self._map.get(key)
    if hit is None:
        raise NeedleNotFound("needle not found", volume_id=self.id, key=f"{key:x}")
    record = self.record_at(hit)
    needle = self.read_at(key, int.from_bytes(record[:4], "big"), hit, record)
    state = _live_state(self, key, hit)
    del needle
    return record, state.stamp


def apply_put(self: Volume, record: bytes, stamp: int, known: NeedleState | None) -> bool:
    """Store a peer's record of a needle (checked here first) as this key's live record if
    its state wins over this volume's: the live one read again under the lock, else `known`
    (this volume's state when the comparison was made: a deletion). True if it was stored."""
    needle = decode_needle(record, self.version, volume_id=self.id)
    size = int(NEEDLE_HEADER.unpack_from(record)[2])
    incoming = NeedleState(needle.key, needle.cookie, stamp, size, needle.checksum)
    with self._lock:
        _write._check_writable(self)
        hit = self._map.get(needle.key)
        current = known if hit is None else _current(self, needle.key, hit)
        if winner(current, incoming) is not incoming or current == incoming:
            return False
        _write.put_record(self, needle, stamp)
        return True


def repair_corrupt(self: Volume, record: bytes, stamp: int) -> bool:
    """Replace this volume's rotted record of a needle with a peer's sound copy of the same
    needle (key, cookie and, where the rotted footer still says it, CRC). True if replaced;
    False when the live record here is sound (or gone, or another version: anti-entropy
    orders versions, repair only restores bytes)."""
    needle = decode_needle(record, self.version, volume_id=self.id)
    key = needle.key
    with self._lock:
        _write._check_writable(self)
        hit = self._map.get(key)
        if hit is None:
            return False
        mine = self.record_at(hit)
        try:
            self.read_at(key, needle.cookie, hit, mine)
            return False
        except NeedleNotFound:
            return False  # another cookie: another needle
        except CorruptNeedle:
            pass
        if not _same_needle(mine, hit, needle):
            return False
        _write.put_record(self, needle, stamp)
        return True


def _same_needle(mine: bytes, hit: IndexHit, needle: Needle) -> bool:
    """Whether the rotted record `mine` (where `hit` says) is a copy of `needle`, as far as
    its bytes still tell: with a sound header, the same cookie, and the same CRC in the
    footer or over the data; a rotted header says nothing, and the index says it is the key's."""
    if len(mine) < NEEDLE_HEADER_SIZE:
        return True
    cookie, stored_key, size = NEEDLE_HEADER.unpack_from(mine)
    if stored_key != needle.key or size != hit.size:
        return True
    if cookie != needle.cookie:
        return False
    foot = mine[NEEDLE_HEADER_SIZE + size : NEEDLE_HEADER_SIZE + size + 4]
    if len(foot) == 4 and int.from_bytes(foot, "big") == needle.checksum:
        return True
    data_size = int.from_bytes(mine[NEEDLE_HEADER_SIZE : NEEDLE_HEADER_SIZE + 4], "big")
    data = mine[NEEDLE_HEADER_SIZE + 4 : NEEDLE_HEADER_SIZE + 4 + data_size]
    return checksum_matches(needle.checksum, crc32c(data))


def apply_delete(self: Volume, gone: NeedleState, known: NeedleState | None) -> bool:
    """Apply a peer's deletion of `gone.key` if it wins over this volume's state (as
    `apply_put`): the live needle gets a tombstone; a key not live here has the deletion
    logged, so it is remembered against late writes. True if anything changed."""
    key = gone.key
    with self._lock:
        _write._check_writable(self)
        hit = self._map.get(key)
        current = known if hit is None else _current(self, key, hit)
        if current is not None and winner(current, gone) is not gone:
            return False
        if current is not None and current.deleted:
            return False
        if hit is None:
            self._stamps.note_delete(key, 0, gone.stamp, gone.cookie)
            return True
        cookie = NEEDLE_HEADER.unpack_from(self._pread(NEEDLE_HEADER_SIZE, hit.offset))[0]
        _write.tombstone(self, key, cookie, hit, gone.stamp)
        return True


def _current(self: Volume, key: int, hit: IndexHit) -> NeedleState | None:
    try:
        return _live_state(self, key, hit)
    except CorruptNeedle:
        return None  # a rotted record loses to any sound one


def copy_snapshot(self: Volume) -> CopySnapshot:
    """The sizes a copy of this volume takes now (the batched `.idx` entries written out
    first, so the three agree), its compaction revision and `.vif`."""
    if self.remote is not None:
        raise Conflict("a tiered volume is not copied: mount it from its bucket", volume_id=self.id)
    with self._lock:
        if self._closed:
            raise NotFound("volume is closed", volume_id=self.id)
        self._flush_idx()
        if self._idx_batch:
            raise CorruptVolume("the index could not be written out", volume_id=self.id)
        vif = self.path(".vif")
        return CopySnapshot(
            dat_size=self._end,
            idx_size=self._idx_end,
            stamps_size=self._stamps.size,
            compact_revision=self.compact_revision,
            vif=vif.read_bytes() if vif.exists() else b"",
        )


COPY_FILES: Final = ("dat", "idx", "ats")


def read_for_copy(self: Volume, file: str, offset: int, size: int, revision: int) -> bytes:
    """`size` bytes at `offset` of the volume's `.dat`, `.idx` or stamp log, as a copy reads
    them; a vacuum since the snapshot (another compaction revision) is a `Conflict`, as is a
    range past what is written. Blocks: off the event loop."""
    self._catch_up()  # (another worker's vacuum commit followed first: its revision counts)
    if revision != self.compact_revision:
        raise Conflict(
            f"volume was compacted (revision {self.compact_revision}, copy began at {revision})",
            volume_id=self.id,
        )
    if file == "ats":
        return self._stamps.read_at(offset, size)
    share = self._share  # another worker may have appended since this one last held the lock
    if file == "dat":
        fd, end = self._dat, self.size
    else:  # what is on disk: batched entries are not
        fd, end = self._idx, self._idx_end - len(self._idx_batch)
        if share is not None:
            end = max(end, int(share.words[self._slot + IDX_END]))
    if file not in ("dat", "idx") or fd < 0:
        raise NotFound(f"no {file} file to copy", volume_id=self.id)
    if offset + size > end:
        raise Conflict(f"{file} has {end} bytes, {offset + size} asked for", volume_id=self.id)
    data = os.pread(fd, size, offset)
    if len(data) != size:
        raise CorruptVolume(f"{file} shrank while copied", volume_id=self.id, offset=offset)
    return data
