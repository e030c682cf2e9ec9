"""Scrub a volume offline: report every corrupt needle, and rebuild `.idx` from `.dat`.

`check_volume` reads the volume's files without changing them. It checks every record the
index points at (header key and Size, field bounds, CRC), then walks `.dat` record by record
to find corrupt records the index does not point at, records the index misses, and where the
walk ends early: trailing bytes, a header it cannot trust, or a torn record (the rule is
`scan.py`'s; recovery on open cuts from there). `rebuild_index` writes a fresh `.idx` from a walk of `.dat` (what
`weed fix` does), keeping deleted needles deleted.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from seaweed_py.errors import CorruptNeedle, CorruptVolume
from seaweed_py.formats.idx import IdxLayout, encode_entry, iter_entries, layout_for
from seaweed_py.formats.needle import (
    NEEDLE_HEADER,
    NEEDLE_HEADER_SIZE,
    decode_needle,
    tail_length,
)
from seaweed_py.formats.vif import VolumeInfo
from seaweed_py.storage.integrity import CorruptRecord
from seaweed_py.storage.scan import Record, read_superblock, scan_records
from seaweed_py.storage.volume_paths import check_inside, volume_file

__all__ = [
    "CheckReport",
    "CorruptRecord",
    "VolumeFiles",
    "check_volume",
    "rebuild_index",
    "walk_index_entries",
]


@dataclass
class CheckReport:
    volume_id: int
    records: int = 0  # records walked in .dat
    indexed: int = 0  # index entries that point at a record
    corrupt: list[CorruptRecord] = field(default_factory=list)
    unindexed: list[int] = field(default_factory=list)  # offsets of sound records not indexed
    tail_error: str | None = None  # what ended the walk early (trailing bytes, bad header)
    tail_offset: int | None = None

    @property
    def ok(self) -> bool:
        return not self.corrupt and self.tail_error is None and not self.unindexed


@dataclass(frozen=True)
class VolumeFiles:
    """Paths and format facts of one volume on disk."""

    directory: Path
    volume_id: int
    collection: str
    version: int
    block_size: int
    layout: IdxLayout

    def path(self, ext: str) -> Path:
        """The volume's file with extension `ext` (`.dat`, `.idx`...)."""
        return volume_file(self.directory, self.collection, self.volume_id, ext)

    @classmethod
    def find(
        cls, directory: str | os.PathLike[str], volume_id: int, collection: str = ""
    ) -> VolumeFiles:
        """The volume's facts; `InvalidCollection` for a collection that names no file."""
        d = Path(directory)
        dat = volume_file(d, collection, volume_id, ".dat")
        if not dat.exists():
            raise CorruptVolume("no .dat file", volume_id=volume_id, path=str(dat))
        vif = volume_file(d, collection, volume_id, ".vif")
        info = VolumeInfo.from_json(vif.read_bytes()) if vif.exists() else VolumeInfo()
        layout = layout_for(info.bytes_offset, volume_id)
        fd = os.open(dat, os.O_RDONLY)
        try:
            sb = read_superblock(fd, volume_id=volume_id)
        finally:
            os.close(fd)
        return cls(d, volume_id, collection, sb.version, sb.block_size, layout)


def check_volume(
    directory: str | os.PathLike[str], volume_id: int, collection: str = ""
) -> CheckReport:
    """Scrub one volume (read-only): see the module docstring."""
    files = VolumeFiles.find(directory, volume_id, collection)
    report = CheckReport(volume_id)
    idx_path = files.path(".idx")
    raw = idx_path.read_bytes() if idx_path.exists() else b""
    fd = os.open(files.path(".dat"), os.O_RDONLY)
    try:
        end = os.fstat(fd).st_size
        checked: set[int] = set()
        indexed: set[int] = set()
        for key, offset, size in iter_entries(raw, files.layout, allow_partial=True):
            if offset == 0:
                continue
            indexed.add(offset)
            report.indexed += 1
            if offset in checked:
                continue
            checked.add(offset)
            reason = _check_indexed(fd, files, key, offset, max(size, 0), end)
            if reason is not None:
                report.corrupt.append(CorruptRecord(key, offset, size, reason))
        for rec in scan_records(fd, files.block_size, end, files.version, volume_id=volume_id):
            if rec.fatal:
                report.tail_error, report.tail_offset = rec.error, rec.offset
                break
            report.records += 1
            if rec.error is not None:
                if rec.offset not in checked:
                    report.corrupt.append(CorruptRecord(rec.key, rec.offset, rec.size, rec.error))
            elif rec.offset not in indexed:
                report.unindexed.append(rec.offset)
    finally:
        os.close(fd)
    report.corrupt.sort(key=lambda c: c.offset)
    return report


def _check_indexed(
    fd: int, files: VolumeFiles, key: int, offset: int, size: int, end: int
) -> str | None:
    """Why the record an index entry points at is corrupt, or None if it is sound."""
    length = NEEDLE_HEADER_SIZE + size + tail_length(files.version)
    if offset % 8 or offset < files.block_size or offset + length > end:
        return f"index entry points outside the .dat (offset {offset}, {length} bytes)"
    record = os.pread(fd, length, offset)
    _, stored_key, stored_size = NEEDLE_HEADER.unpack_from(record)
    if stored_key != key or stored_size != size:
        return f"header says key {stored_key:x} Size {stored_size}, index says {key:x} {size}"
    try:
        decode_needle(record, files.version, volume_id=files.volume_id, offset=offset)
    except CorruptNeedle as exc:
        return exc.message
    return None


def walk_index_entries(fd: int, files: VolumeFiles, end: int) -> Iterator[tuple[Record, int]]:
    """Index entries for the sound records of `.dat` in file order: (record, idx size).

    A Size-0 record is a tombstone when its key is live at that point, else an empty file
    (the two are byte-identical; quirk A2). Rotted records (failing their CRC) are indexed
    too, so reads report them corrupt rather than missing; the walk stops at a torn record or
    a header it cannot trust (`scan.py`).
    """
    live: set[int] = set()
    for rec in scan_records(fd, files.block_size, end, files.version, volume_id=files.volume_id):
        if rec.fatal:
            return
        if rec.size == 0 and rec.key in live:
            live.discard(rec.key)
            yield rec, -1
        else:
            live.add(rec.key)
            yield rec, rec.size


def rebuild_index(directory: str | os.PathLike[str], volume_id: int, collection: str = "") -> int:
    """Write a new `.idx` from a walk of `.dat` (atomically); returns the entry count.

    The volume must not be open for writing meanwhile."""
    files = VolumeFiles.find(directory, volume_id, collection)
    idx_path, tmp = files.path(".idx"), files.path(".idx.tmp")
    check_inside(files.directory, idx_path, tmp)
    fd = os.open(files.path(".dat"), os.O_RDONLY)
    count = 0
    try:
        end = os.fstat(fd).st_size
        with open(tmp, "wb") as out:
            for rec, size in walk_index_entries(fd, files, end):
                out.write(encode_entry(rec.key, rec.offset, size, files.layout))
                count += 1
            out.flush()
            os.fsync(out.fileno())
    finally:
        os.close(fd)
    os.replace(tmp, idx_path)
    return count
