"""Golden volumes written by the reference decode byte-exactly with the formats codecs.

The files live in `../shared/golden/` beside the checkout (see its README). Volumes are walked
here with the codecs alone: replay the `.idx`, decode each record it points at, or scan the
`.dat` record by record. Engine-level reads of the same files are tested with `storage/`.
"""

from __future__ import annotations

import email.utils
import gzip
import hashlib
import json
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from seaweed_py.errors import CorruptNeedle, CorruptVolume
from seaweed_py.formats.crc import crc32c, legacy_checksum
from seaweed_py.formats.fid import parse_file_id
from seaweed_py.formats.idx import IDX4, IdxLayout, count_entries, decode_entries, iter_entries
from seaweed_py.formats.needle import (
    FLAG_GZIP,
    NEEDLE_HEADER_SIZE,
    Needle,
    decode_header,
    decode_needle,
    encode_needle,
    padding_length,
    record_length,
)
from seaweed_py.formats.replica_placement import ReplicaPlacement
from seaweed_py.formats.superblock import SuperBlock
from seaweed_py.formats.ttl import Ttl
from seaweed_py.formats.vif import VolumeInfo

GOLDEN = Path(__file__).resolve().parents[3] / "shared" / "golden"
REPO = GOLDEN / "seaweedfs-repo"
WEED48 = GOLDEN / "weed-4.48-8000GB"

pytestmark = pytest.mark.skipif(
    not GOLDEN.is_dir(), reason=f"golden files not found at {GOLDEN} (shared/ beside the checkout)"
)


@dataclass(frozen=True)
class Record:
    """One `.dat` record the index points at."""

    offset: int
    index_size: int
    raw: bytes

    @property
    def stored_checksum(self) -> int:
        size = decode_header(self.raw)[2]
        return int.from_bytes(self.raw[NEEDLE_HEADER_SIZE + size : NEEDLE_HEADER_SIZE + size + 4])


def index_records(dat: bytes, idx: bytes, layout: IdxLayout = IDX4) -> Iterator[tuple[int, Record]]:
    """(key, record) for every index entry in file order; tombstones point at Size-0 records."""
    for key, offset, size in iter_entries(idx, layout):
        length = record_length(decode_header(dat, offset)[2])
        yield key, Record(offset, size, dat[offset : offset + length])


def replay(dat: bytes, idx: bytes, layout: IdxLayout = IDX4) -> dict[int, Needle | None]:
    """The live view of a volume: key → newest needle, or None once deleted."""
    view: dict[int, Needle | None] = {}
    for key, record in index_records(dat, idx, layout):
        if record.index_size < 0 or record.offset == 0:
            view[key] = None
        else:
            view[key] = decode_needle(record.raw, offset=record.offset)
    return view


def scan(dat: bytes) -> Iterator[tuple[int, Needle]]:
    """Walk the `.dat` record by record after the superblock, as a rebuild of the index does."""
    offset = SuperBlock.decode(dat).block_size
    while offset < len(dat):
        length = record_length(decode_header(dat, offset)[2])
        yield offset, decode_needle(dat[offset : offset + length], offset=offset)
        offset += length


def read(path: Path) -> bytes:
    return path.read_bytes()


# --------------------------------------------------------------------------------------------
# fixtures from the SeaweedFS repository (4-byte offsets)


def test_healthy_volume_decodes_17_live_needles_and_10_tombstones() -> None:
    dat = read(REPO / "test_files__healthy_volume.dat")
    idx = read(REPO / "test_files__healthy_volume.idx")
    sb = SuperBlock.decode(dat)
    assert sb == SuperBlock(3, ReplicaPlacement.parse("002"), Ttl.EMPTY, 0, b"")
    records = list(index_records(dat, idx))
    assert len(records) == 27
    newest: dict[int, Needle] = {}
    tombstones = 0
    for key, record in records:
        n = decode_needle(record.raw, offset=record.offset)
        assert n.key == key
        if record.index_size < 0:
            tombstones += 1
            assert len(record.raw) == 32 and decode_header(record.raw)[2] == 0
            assert record.raw[-4:] == bytes(4)  # zero padding
            assert n.checksum == newest[key].checksum  # quirk A23
            assert n.cookie == newest[key].cookie
            continue
        assert record.index_size == decode_header(record.raw)[2]
        assert n.flags == 0x0E
        assert re.fullmatch(rb"file_\d+", n.name)
        assert n.mime == b""
        assert record.stored_checksum == crc32c(n.data) == n.checksum  # raw form
        newest[key] = n
    assert (len(newest), tombstones) == (17, 10)
    live = {k: v for k, v in replay(dat, idx).items() if v is not None}
    assert len(live) == 7
    last = max(r.offset for _, r in records)
    assert last + len(next(r for _, r in records if r.offset == last).raw) == len(dat)


def test_healthy_volume_scan_finds_exactly_the_indexed_records() -> None:
    dat = read(REPO / "test_files__healthy_volume.dat")
    idx = read(REPO / "test_files__healthy_volume.idx")
    scanned = [(offset, n.key) for offset, n in scan(dat)]
    indexed = sorted((r.offset, key) for key, r in index_records(dat, idx))
    assert scanned == indexed


def test_empty_volume_is_only_a_superblock() -> None:
    dat = read(REPO / "test_files__empty_volume.dat")
    assert dat == bytes.fromhex("0302000000000000")
    assert SuperBlock.decode(dat).replica_placement == ReplicaPlacement.parse("002")
    assert read(REPO / "test_files__empty_volume.idx") == b""
    assert list(scan(dat)) == []


def test_bitrot_volume_fails_crc_on_exactly_needles_3_and_48() -> None:
    dat = read(REPO / "test_files__bitrot_volume.dat")
    idx = read(REPO / "test_files__bitrot_volume.idx")
    assert idx == read(REPO / "test_files__healthy_volume.idx")
    corrupt: list[int] = []
    readable = 0
    for key, record in index_records(dat, idx):
        if record.index_size < 0:
            continue
        try:
            decode_needle(record.raw, offset=record.offset)
        except CorruptNeedle as e:
            assert "crc mismatch" in e.message and f"offset={record.offset}" in e.message
            corrupt.append(key)
        else:
            readable += 1
    assert sorted(corrupt) == [3, 48]
    assert readable == 15
    healthy_size = len(read(REPO / "test_files__healthy_volume.dat"))
    assert len(dat) == healthy_size + 1  # one stray trailing byte


def test_erasure_coding_volume_has_298_needles_all_with_the_legacy_crc() -> None:
    dat = read(REPO / "erasure_coding__1.dat")
    idx = read(REPO / "erasure_coding__1.idx")
    assert SuperBlock.decode(dat).replica_placement == ReplicaPlacement.parse("000")
    flags: dict[int, int] = {}
    for key, record in index_records(dat, idx):
        n = decode_needle(record.raw, offset=record.offset)
        assert n.key == key
        assert record.stored_checksum == legacy_checksum(n.checksum) != n.checksum
        assert n.checksum == crc32c(n.data)
        flags[n.flags] = flags.get(n.flags, 0) + 1
        if n.flags & FLAG_GZIP:  # auto-compressed text (Go sources mostly)
            assert n.mime in (b"text/plain; charset=utf-8", b"text/xml; charset=utf-8", b"")
            assert gzip.decompress(n.data)  # the stored stream is a whole gzip member
    assert flags == {0x0F: 293, 0x0E: 5}


def test_needle_43_is_one_large_needle_with_two_bytes_of_padding() -> None:
    dat = read(REPO / "needle__43.dat")
    assert len(dat) == 1_153_928
    [(offset, n)] = list(scan(dat))
    assert offset == 8
    assert decode_header(dat, offset)[2] == 1_153_890
    assert record_length(1_153_890) - (NEEDLE_HEADER_SIZE + 1_153_890 + 12) == 2
    assert n.name == b"Stickies.app.zip"
    assert n.checksum == crc32c(n.data)


def test_index_files_parse_and_damage_is_detected() -> None:
    simple = read(REPO / "idx__test_files__simple_index.idx")
    keys, offsets, sizes = decode_entries(simple)
    assert len(keys) == 161
    assert list(zip(keys.tolist(), offsets.tolist(), sizes.tolist(), strict=True)) == list(
        iter_entries(simple)
    )
    deleted = read(REPO / "idx__test_files__deleted_files.idx")
    assert len(decode_entries(deleted)[0]) == 230

    truncated = read(REPO / "idx__test_files__simple_index_truncated.idx")
    assert count_entries(len(truncated)) == (158, 12)
    with pytest.raises(CorruptVolume, match="partial"):
        decode_entries(truncated)
    assert len(decode_entries(truncated, allow_partial=True)[0]) == 158

    bitrot = read(REPO / "idx__test_files__simple_index_bitrot.idx")
    assert count_entries(len(bitrot)) == (161, 1)
    with pytest.raises(CorruptVolume, match="partial"):
        decode_entries(bitrot)
    keys, offsets, _ = decode_entries(bitrot, allow_partial=True)
    # The flipped bits give a garbage key whose record overlaps needle 49's.
    garbage = keys.tolist().index(3544668469065756977)
    assert offsets[garbage] == offsets[keys.tolist().index(49)] == 6602459528


# --------------------------------------------------------------------------------------------
# volumes written by weed 4.48 "8000GB" (5-byte offsets)


def manifest_cases() -> list[dict[str, Any]]:
    if not WEED48.is_dir():
        return []
    cases: list[dict[str, Any]] = json.loads((WEED48 / "manifest.json").read_text())["cases"]
    return cases


def load_weed48_volume(vid: int) -> tuple[SuperBlock, VolumeInfo, dict[int, Needle | None]]:
    [vif_path] = WEED48.glob(f"*_{vid}.vif")
    info = VolumeInfo.from_json(vif_path.read_text())
    dat = read(vif_path.with_suffix(".dat"))
    idx = read(vif_path.with_suffix(".idx"))
    return SuperBlock.decode(dat), info, replay(dat, idx, IdxLayout(info.bytes_offset))


def disposition_name(header: str) -> str:
    extended = re.search(r"filename\*=utf-8''([^;]+)", header, re.IGNORECASE)
    if extended:
        return urllib.parse.unquote(extended.group(1))
    plain = re.search(r'filename="?([^";]*)"?', header)
    assert plain, header
    return plain.group(1)


def test_weed48_volumes_use_5_byte_offsets() -> None:
    for vif in WEED48.glob("*.vif"):
        info = VolumeInfo.from_json(vif.read_text())
        assert info.bytes_offset == 5
        idx = read(vif.with_suffix(".idx"))
        assert count_entries(len(idx), IdxLayout(5))[1] == 0


@pytest.mark.parametrize("case", manifest_cases(), ids=lambda c: f"{c['fid']} {c['desc']}")
def test_weed48_needle_matches_what_weed_served(case: dict[str, Any]) -> None:
    fid = parse_file_id(case["fid"])
    sb, info, view = load_weed48_volume(fid.volume_id)
    n = view[fid.key]
    if case["get_status"] == 404:
        assert n is None  # deleted: the index ends in a tombstone
        return
    assert case["get_status"] == 200 and n is not None
    assert n.cookie == fid.cookie
    body = gzip.decompress(n.data) if n.flags & FLAG_GZIP else n.data
    assert hashlib.sha256(body).hexdigest() == case["sha256"]
    assert len(body) == case["length"]
    if case.get("etag") is not None:
        assert case["etag"] == f'"{n.etag}"'
    if case.get("content_disposition"):
        assert n.name.decode() == disposition_name(case["content_disposition"])
    if n.mime:
        assert n.mime.decode() == case["content_type"]
    elif case.get("content_type") is not None:
        assert case["content_type"] == "application/octet-stream"
    if case.get("last_modified"):
        assert email.utils.formatdate(n.last_modified, usegmt=True) == case["last_modified"]
    if case.get("pairs") is not None:
        assert json.loads(n.pairs) == case["pairs"]
    sent_pairs = dict(re.findall(r"Seaweed-(\w+): (\w+)", case["desc"]))
    if sent_pairs:
        assert json.loads(n.pairs) == sent_pairs
    if case.get("uploaded_sha256"):
        assert hashlib.sha256(body).hexdigest() == case["uploaded_sha256"]
    if sb.ttl:
        assert n.ttl == sb.ttl == Ttl.parse("3d")
        assert info.expire_at_sec > 0


def test_weed48_empty_upload_is_a_size_0_record_without_metadata() -> None:
    [case] = [c for c in manifest_cases() if c["length"] == 0]
    fid = parse_file_id(case["fid"])
    n = load_weed48_volume(fid.volume_id)[2][fid.key]
    assert n is not None
    assert (n.data, n.flags, n.name, n.checksum) == (b"", 0, b"", 0)  # quirk A2


def test_weed48_overwrite_keeps_both_records_and_the_index_points_at_the_newest() -> None:
    [case] = [c for c in manifest_cases() if "overwritten" in c["desc"]]
    fid = parse_file_id(case["fid"])
    [vif] = WEED48.glob(f"*_{fid.volume_id}.vif")
    dat, idx = read(vif.with_suffix(".dat")), read(vif.with_suffix(".idx"))
    versions = [r for key, r in index_records(dat, idx, IdxLayout(5)) if key == fid.key]
    assert len(versions) == 2
    first, second = (decode_needle(r.raw) for r in versions)
    assert hashlib.sha256(second.data).hexdigest() == case["sha256"]
    assert first.data != second.data and first.append_at_ns < second.append_at_ns


@pytest.mark.parametrize(
    ("base", "layout"),
    [
        (REPO / "test_files__healthy_volume", IdxLayout(4)),
        (REPO / "erasure_coding__1", IdxLayout(4)),
        (WEED48 / "golden_4", IdxLayout(5)),
        (WEED48 / "goldenttl_10", IdxLayout(5)),
    ],
    ids=lambda p: getattr(p, "name", str(p)),
)
def test_every_reference_record_reencodes_byte_exactly_up_to_the_padding(
    base: Path, layout: IdxLayout
) -> None:
    # The reference pads with leftovers of its scratch buffer; we pad with zeros (spec §4.8).
    dat, idx = read(base.with_suffix(".dat")), read(base.with_suffix(".idx"))
    for _, record in index_records(dat, idx, layout):
        ours = encode_needle(decode_needle(record.raw, verify=False))
        pad = padding_length(decode_header(record.raw)[2])
        assert len(ours) == len(record.raw)
        assert ours[:-pad] == record.raw[:-pad]
        assert ours[-pad:] == bytes(pad)
