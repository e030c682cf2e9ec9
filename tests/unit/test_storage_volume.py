"""Volume behaviour: appends, reads, cookies, overwrites, deletes, limits, durability modes."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from seaweed_py.errors import (
    BadRequest,
    CookieMismatch,
    CorruptNeedle,
    NeedleNotFound,
    VolumeFull,
    VolumeReadOnly,
)
from seaweed_py.formats.crc import crc32c
from seaweed_py.formats.idx import IDX4, IDX5, iter_entries
from seaweed_py.formats.needle import NEEDLE_HEADER, Needle, decode_needle
from seaweed_py.formats.replica_placement import ReplicaPlacement
from seaweed_py.formats.ttl import Ttl
from seaweed_py.storage.volume import FsyncMode, Volume

COOKIE = 0x637037D6


class Clock:
    """A nanosecond clock that only moves when told (and can stand still)."""

    def __init__(self, start: int = 1_700_000_000_000_000_000) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make(tmp_path: Path, clock: Clock) -> Iterator[Callable[..., Volume]]:
    opened: list[Volume] = []

    def factory(**kw: object) -> Volume:
        kw.setdefault("fsync_mode", FsyncMode.NONE)
        v = Volume.create(tmp_path, 7, clock_ns=clock, **kw)  # type: ignore[arg-type]
        opened.append(v)
        return v

    yield factory
    for v in opened:
        v.close()


def needle(key: int, data: bytes, cookie: int = COOKIE, **kw: object) -> Needle:
    kw.setdefault("name", b"f.txt")
    kw.setdefault("mime", b"text/plain")
    kw.setdefault("last_modified", 1_700_000_000)
    return Needle.build(cookie, key, data, **kw)  # type: ignore[arg-type]


def idx_bytes(v: Volume) -> bytes:
    """The `.idx` of an open volume, batched entries included."""
    v.sync()
    return v.path(".idx").read_bytes()


def reopen(v: Volume, clock: Clock, **kw: object) -> Volume:
    v.close()
    return Volume.open(
        v.directory, v.id, collection=v.collection, clock_ns=clock, fsync_mode=FsyncMode.NONE, **kw
    )  # type: ignore[arg-type]


def test_create_writes_the_superblock_vif_and_empty_idx(make: Callable[..., Volume]) -> None:
    v = make(collection="pics", replica_placement=ReplicaPlacement.parse("001"))
    assert v.name == "pics_7"
    dat = v.path(".dat").read_bytes()
    assert dat == bytes([3, 1, 0, 0, 0, 0, 0, 0])
    assert v.path(".idx").read_bytes() == b""
    info = json.loads(v.path(".vif").read_text())
    assert info["bytesOffset"] == 4 and info["version"] == 3 and info["replication"] == "001"
    with pytest.raises(FileExistsError):
        Volume.create(v.directory, 7, collection="pics")


def test_the_default_collection_uses_the_bare_volume_id(make: Callable[..., Volume]) -> None:
    assert make().name == "7"


def test_append_and_read_back_with_the_spec_record_layout(
    make: Callable[..., Volume], clock: Clock
) -> None:
    v = make()
    clock.now = 1700000000123456789
    n = needle(1, b"hello", name=b"hello.txt", mime=b"text/plain", last_modified=1700000000)
    r = v.write(n)
    assert (r.offset, r.size, r.unchanged) == (8, 36, False)
    assert r.durable.done()
    raw = v.path(".dat").read_bytes()
    assert len(raw) == 8 + 72  # spec §4.8 worked example: 72-byte record
    assert raw[8:24].hex() == "637037d6000000000000000100000024"
    assert idx_bytes(v).hex() == "00000000000000010000000100000024"
    got = v.read(1, COOKIE)
    assert (got.data, got.name, got.mime, got.append_at_ns) == (
        b"hello",
        b"hello.txt",
        b"text/plain",
        1700000000123456789,
    )
    assert v.lookup(1) == (8, 36)


def test_wrong_cookie_unknown_and_deleted_keys_read_as_not_found(
    make: Callable[..., Volume],
) -> None:
    v = make()
    v.write(needle(1, b"secret"))
    for key, cookie in ((1, COOKIE ^ 1), (2, COOKIE)):
        with pytest.raises(NeedleNotFound) as exc:
            v.read(key, cookie)
        assert "secret" not in str(exc.value)
    v.delete(1, COOKIE)
    with pytest.raises(NeedleNotFound):
        v.read(1, COOKIE)


def test_a_flipped_data_byte_raises_corrupt_needle_never_the_bytes(
    make: Callable[..., Volume],
) -> None:
    v = make()
    v.write(needle(1, b"a" * 100))
    r = v.write(needle(2, b"b" * 100))
    with open(v.path(".dat"), "r+b") as f:
        f.seek(r.offset + 40)
        f.write(b"X")
    with pytest.raises(CorruptNeedle) as exc:
        v.read(2, COOKIE)
    assert exc.value.context["volume_id"] == 7 and exc.value.context["offset"] == r.offset
    assert v.read(1, COOKIE).data == b"a" * 100


def test_overwrite_replaces_and_counts_the_old_needle_as_garbage(
    make: Callable[..., Volume], clock: Clock
) -> None:
    v = make()
    v.write(needle(5, b"one"))
    second = v.write(needle(5, b"two!"))
    assert not second.unchanged
    assert v.read(5, COOKIE).data == b"two!"
    assert (v.file_count, v.delete_count, v.live_count) == (2, 1, 1)
    assert v.deleted_byte_count == v.content_size - second.size
    v = reopen(v, clock)
    assert v.read(5, COOKIE).data == b"two!"
    assert (v.file_count, v.delete_count, v.live_count) == (2, 1, 1)


def test_overwrite_or_delete_with_another_cookie_changes_nothing(
    make: Callable[..., Volume],
) -> None:
    v = make()
    v.write(needle(5, b"mine"))
    size = v.size
    with pytest.raises(CookieMismatch):
        v.write(needle(5, b"theirs", cookie=COOKIE + 1))
    with pytest.raises(CookieMismatch):
        v.delete(5, COOKIE + 1)
    assert v.size == size
    assert len(idx_bytes(v)) == 16
    assert v.read(5, COOKIE).data == b"mine"


def test_identical_reupload_appends_nothing(make: Callable[..., Volume], clock: Clock) -> None:
    v = make()
    first = v.write(needle(5, b"same", last_modified=100))
    size = v.size
    clock.now += 10**9
    again = v.write(needle(5, b"same", last_modified=200))  # a retry: only the clock differs
    assert again.unchanged and (again.offset, again.size) == (first.offset, first.size)
    assert v.size == size
    renamed = v.write(needle(5, b"same", name=b"other.txt"))
    assert not renamed.unchanged and v.size > size


def test_reupload_to_a_ttl_volume_is_never_unchanged(make: Callable[..., Volume]) -> None:
    v = make(ttl=Ttl.parse("3d"))
    v.write(needle(5, b"same"))
    assert not v.write(needle(5, b"same")).unchanged


def test_delete_appends_a_tombstone_carrying_the_checksum(make: Callable[..., Volume]) -> None:
    v = make()
    w = v.write(needle(9, b"payload"))
    end = v.size
    d = v.delete(9, COOKIE)
    assert d.size == w.size  # the body Size, quirk A5
    raw = v.path(".dat").read_bytes()
    assert len(raw) == end + 32
    tomb = decode_needle(raw[end:], 3)
    assert (tomb.cookie, tomb.key, tomb.data) == (COOKIE, 9, b"")
    assert tomb.checksum == crc32c(b"payload")  # quirk A23
    entries = list(iter_entries(idx_bytes(v), IDX4))
    assert entries[-1] == (9, end, -1)
    with pytest.raises(NeedleNotFound):
        v.delete(9, COOKIE)
    assert v.size == end + 32


def test_deletes_stay_deleted_after_reopen(make: Callable[..., Volume], clock: Clock) -> None:
    v = make()
    for k in range(1, 11):
        v.write(needle(k, b"x" * k))
    for k in (2, 5, 9):
        v.delete(k, COOKIE)
    v = reopen(v, clock)
    assert not v.recovery
    for k in range(1, 11):
        if k in (2, 5, 9):
            with pytest.raises(NeedleNotFound):
                v.read(k, COOKIE)
        else:
            assert v.read(k, COOKIE).data == b"x" * k
    assert (v.file_count, v.delete_count, v.max_file_key) == (10, 3, 10)


def test_empty_file_is_stored_as_a_size_zero_needle(
    make: Callable[..., Volume], clock: Clock
) -> None:
    v = make()
    r = v.write(needle(3, b""))
    assert r.size == 0
    assert v.read(3, COOKIE).data == b""
    v = reopen(v, clock)
    assert v.read(3, COOKIE).data == b""


def test_append_at_ns_strictly_increases_with_a_stuck_clock(
    make: Callable[..., Volume], clock: Clock
) -> None:
    v = make()
    for k in range(1, 6):
        v.write(needle(k, b"d"))
    v.delete(1, COOKIE)
    stamps = [v.read(k, COOKIE).append_at_ns for k in range(2, 6)]
    assert stamps == [clock.now + i for i in range(1, 5)]
    v = reopen(v, clock)
    v.write(needle(6, b"d"))
    assert v.read(6, COOKIE).append_at_ns == clock.now + 6  # the tombstone took +5


def test_open_reads_the_last_record_once(
    make: Callable[..., Volume], clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record that checks the `.idx` tail also gives the AppendAtNs to continue from."""
    v = make()
    for k in range(1, 4):
        v.write(needle(k, b"d" * k))
    v.close()
    reads: list[int] = []
    pread = os.pread

    def counting(fd: int, n: int, at: int) -> bytes:
        reads.append(at)
        return pread(fd, n, at)

    monkeypatch.setattr(os, "pread", counting)
    v = reopen(v, clock)
    last = v.lookup(3)
    assert last is not None
    assert [at for at in reads if at >= last[0]] == [last[0]]  # the record, whole, once
    monkeypatch.undo()
    v.write(needle(4, b"d"))
    assert v.read(4, COOKIE).append_at_ns == clock.now + 3  # after now, now+1, now+2


def test_preallocate_reserves_disk_without_growing_the_dat(
    make: Callable[..., Volume], clock: Clock
) -> None:
    v = make(preallocate=8 << 20)
    dat = v.path(".dat")
    st = os.stat(dat)
    assert st.st_size == 8  # the superblock only: the file still ends at its last record
    assert st.st_blocks * 512 >= 8 << 20
    v.write(needle(1, b"d" * 1000))
    v = reopen(v, clock)
    assert v.recovery.dat_bytes_cut == 0 and v.size == os.path.getsize(dat)
    assert v.read(1, COOKIE).data == b"d" * 1000


def test_preallocate_beyond_the_disk_only_warns(
    make: Callable[..., Volume], caplog: pytest.LogCaptureFixture
) -> None:
    v = make(preallocate=1 << 62)
    assert "cannot preallocate" in caplog.text
    v.write(needle(1, b"d"))
    assert v.read(1, COOKIE).data == b"d"


def test_read_only_volume_refuses_writes_and_deletes(
    make: Callable[..., Volume], clock: Clock
) -> None:
    v = make()
    v.write(needle(1, b"keep"))
    v.set_read_only(True)
    assert v.needle_map.kind == "mmap" and v.path(".sdx").exists()
    with pytest.raises(VolumeReadOnly):
        v.write(needle(2, b"no"))
    with pytest.raises(VolumeReadOnly):
        v.delete(1, COOKIE)
    v = reopen(v, clock)
    assert v.read_only and v.read(1, COOKIE).data == b"keep"
    v.set_read_only(False)
    assert v.needle_map.kind == "memory"
    v.write(needle(2, b"yes"))
    assert v.read(2, COOKIE).data == b"yes"


def test_size_limit_raises_volume_full_and_leaves_no_trace(make: Callable[..., Volume]) -> None:
    v = make(size_limit=8 + 3 * 72)
    for k in range(1, 4):
        v.write(needle(k, b"hello"))
    size = v.size
    with pytest.raises(VolumeFull):
        v.write(needle(4, b"hello"))
    assert v.size == size == os.path.getsize(v.path(".dat"))
    assert len(idx_bytes(v)) == 3 * 16


def test_large_disk_volume_uses_five_byte_offsets(
    make: Callable[..., Volume], clock: Clock
) -> None:
    v = make(large_disk=True)
    assert json.loads(v.path(".vif").read_text())["bytesOffset"] == 5
    for k in range(1, 4):
        v.write(needle(k, b"big disk %d" % k))
    v.delete(2, COOKIE)
    raw = idx_bytes(v)
    assert len(raw) == 4 * 17
    assert [e[0] for e in iter_entries(raw, IDX5)] == [1, 2, 3, 2]
    v = reopen(v, clock)
    assert v.layout is IDX5 and not v.recovery
    assert v.read(3, COOKIE).data == b"big disk 3"
    with pytest.raises(NeedleNotFound):
        v.read(2, COOKIE)


@pytest.mark.parametrize("mode", list(FsyncMode))
def test_every_durability_mode_resolves_durable(
    make: Callable[..., Volume], mode: FsyncMode
) -> None:
    v = make(fsync_mode=mode)
    results = [v.write(needle(k, b"d" * 10)) for k in range(1, 20)]
    if mode is not FsyncMode.GROUP:
        assert all(r.durable.done() for r in results)
    for r in results:
        assert r.durable.result(timeout=10) is None
    assert v.delete(3, COOKIE).durable.result(timeout=10) is None


def test_mmap_index_kind_serves_reads_writes_and_deletes(
    make: Callable[..., Volume], clock: Clock
) -> None:
    v = make(index_kind="mmap")
    for k in range(1, 50):
        v.write(needle(k, b"m" * k))
    v.delete(10, COOKIE)
    v.write(needle(11, b"new"))
    v = reopen(v, clock, index_kind="mmap")
    assert v.needle_map.kind == "mmap"
    assert v.read(11, COOKIE).data == b"new"
    assert v.read(49, COOKIE).data == b"m" * 49
    with pytest.raises(NeedleNotFound):
        v.read(10, COOKIE)


def test_streamed_write_equals_a_whole_write(make: Callable[..., Volume]) -> None:
    v = make()
    data = os.urandom(300_000)
    chunks = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    n = needle(1, b"")
    r = v.write_streamed(n, len(data), iter(chunks))
    whole = needle(2, data)
    v.write(whole)
    got = v.read(1, COOKIE)
    assert got.data == data and got.checksum == whole.checksum and got.name == b"f.txt"
    loc = v.read_meta(1, COOKIE)
    assert loc.data_size == len(data) and loc.data_offset == r.offset + 20
    assert b"".join(v.iter_data(loc, 100_000)) == data
    again = v.write_streamed(n, len(data), iter(chunks))
    assert again.unchanged and again.offset == r.offset


def _chunked(data: bytes, size: int = 65536) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_an_identical_streamed_re_upload_writes_nothing_and_never_reads_the_old_whole(
    make: Callable[..., Volume], monkeypatch: pytest.MonkeyPatch
) -> None:
    v = make()
    data = os.urandom(300_000)
    first = v.write_streamed(needle(1, b""), len(data), iter(_chunked(data)))
    size, idx = v.size, idx_bytes(v)

    def whole_record(*_: object) -> bytes:
        raise AssertionError("the old record was read whole")

    monkeypatch.setattr(Volume, "record_at", whole_record)
    monkeypatch.setattr(Volume, "read_at", whole_record)
    again = v.write_streamed(needle(1, b""), len(data), iter(_chunked(data, 50_000)))
    assert again.unchanged and (again.offset, again.size) == (first.offset, first.size)
    assert v.size == size == os.path.getsize(v.path(".dat"))
    assert idx_bytes(v) == idx


@pytest.mark.parametrize("at", [0, 70_000, 299_999])
def test_a_streamed_re_upload_differing_at_some_byte_stores_the_new_data_whole(
    make: Callable[..., Volume], at: int
) -> None:
    v = make()
    data = os.urandom(300_000)
    first = v.write_streamed(needle(1, b""), len(data), iter(_chunked(data)))
    new = data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]
    again = v.write_streamed(needle(1, b""), len(new), iter(_chunked(new)))
    assert not again.unchanged and again.offset > first.offset
    got = v.read(1, COOKIE)
    assert got.data == new and got.checksum == crc32c(new)


def test_a_streamed_re_upload_that_matches_but_ends_short_keeps_the_old_needle(
    make: Callable[..., Volume],
) -> None:
    v = make()
    data = os.urandom(200_000)
    v.write_streamed(needle(1, b""), len(data), iter(_chunked(data)))
    size = v.size
    with pytest.raises(BadRequest, match="shorter"):
        v.write_streamed(needle(1, b""), len(data), iter(_chunked(data[:150_000])))
    assert v.size == size == os.path.getsize(v.path(".dat"))
    assert v.read(1, COOKIE).data == data


def test_a_streamed_re_upload_that_matches_but_runs_long_keeps_the_old_needle(
    make: Callable[..., Volume],
) -> None:
    v = make()
    data = os.urandom(200_000)
    v.write_streamed(needle(1, b""), len(data), iter(_chunked(data)))
    size = v.size
    with pytest.raises(BadRequest, match="longer"):
        v.write_streamed(needle(1, b""), len(data), iter(_chunked(data + b"more")))
    assert v.size == size == os.path.getsize(v.path(".dat"))
    assert v.read(1, COOKIE).data == data


def test_a_streamed_re_upload_over_a_bad_checksum_stores_the_data_anew(
    make: Callable[..., Volume],
) -> None:
    v = make()
    data = os.urandom(100_000)
    first = v.write_streamed(needle(1, b""), len(data), iter(_chunked(data)))
    with open(v.path(".dat"), "r+b") as f:  # the stored CRC, after the body
        f.seek(first.offset + 16 + first.size)
        f.write(b"\0\0\0\0")
    with pytest.raises(CorruptNeedle):
        v.read(1, COOKIE)
    again = v.write_streamed(needle(1, b""), len(data), iter(_chunked(data)))
    assert not again.unchanged
    assert v.read(1, COOKIE).data == data


def test_a_streamed_re_upload_with_another_cookie_is_refused_and_keeps_nothing(
    make: Callable[..., Volume],
) -> None:
    v = make()
    data = os.urandom(100_000)
    v.write_streamed(needle(1, b""), len(data), iter(_chunked(data)))
    size = v.size
    with pytest.raises(CookieMismatch):
        v.write_streamed(needle(1, b"", cookie=COOKIE + 1), len(data), iter(_chunked(data)))
    assert v.size == size
    assert v.read(1, COOKIE).data == data


@pytest.mark.parametrize("chunks", [[b"abc"], [b"abcdef", b"ghij"]])
def test_streamed_write_with_the_wrong_length_keeps_nothing(
    make: Callable[..., Volume], chunks: list[bytes]
) -> None:
    v = make()
    v.write(needle(1, b"before"))
    size = v.size
    with pytest.raises(BadRequest):
        v.write_streamed(needle(2, b""), 8, iter(chunks))
    assert v.size == size == os.path.getsize(v.path(".dat"))
    assert len(idx_bytes(v)) == 16
    with pytest.raises(NeedleNotFound):
        v.read(2, COOKIE)


def test_iter_data_raises_after_the_last_chunk_on_a_bad_crc(make: Callable[..., Volume]) -> None:
    v = make()
    r = v.write(needle(1, b"z" * 5000))
    with open(v.path(".dat"), "r+b") as f:
        f.seek(r.offset + 20 + 4000)
        f.write(b"!")
    loc = v.read_meta(1, COOKIE)
    with pytest.raises(CorruptNeedle):
        for _ in v.iter_data(loc, 1024):
            pass
    with pytest.raises(NeedleNotFound):
        v.read_meta(1, COOKIE + 1)


def test_status_reports_what_a_heartbeat_needs(make: Callable[..., Volume]) -> None:
    v = make(collection="c_1", replica_placement=ReplicaPlacement.parse("010"), ttl=Ttl.parse("3d"))
    v.write(needle(40, b"x"))
    s = v.status()
    assert (s.id, s.collection, s.size, s.file_count, s.delete_count, s.max_file_key) == (
        7,
        "c_1",
        os.path.getsize(v.path(".dat")),
        1,
        0,
        40,
    )
    assert str(s.replica_placement) == "010" and str(s.ttl) == "3d" and s.version == 3
    assert not s.read_only and s.compact_revision == 0
    header = NEEDLE_HEADER.unpack_from(v.path(".dat").read_bytes(), 8)
    assert header[1] == 40


def test_concurrent_writers_racing_the_size_limit_never_exceed_it(
    make: Callable[..., Volume],
) -> None:
    """Scenario 16: every acknowledged write reads back and the .dat stays under the limit."""
    v = make(size_limit=64 * 1024)
    acked: list[int] = []
    lock = threading.Lock()

    def writer(base: int) -> None:
        for i in range(400):
            try:
                v.write(needle(base + i, b"w" * 300))
            except VolumeFull:
                return
            with lock:
                acked.append(base + i)

    threads = [threading.Thread(target=writer, args=(t * 1000 + 1,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert v.size <= 64 * 1024 == v.size_limit
    assert os.path.getsize(v.path(".dat")) == v.size
    assert len(acked) == v.live_count > 100
    for key in acked:
        assert v.read(key, COOKIE).data == b"w" * 300


@pytest.mark.parametrize("index_kind", ["memory", "mmap"])
def test_read_deleted_finds_the_last_live_version_until_it_is_gone(
    make: Callable[..., Volume], clock: Clock, index_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("seaweed_py.storage.volume_read._SCAN_ENTRIES", 2)  # scan crosses blocks
    v = make(index_kind=index_kind)
    v.write(needle(1, b"first"))
    v.write(needle(2, b"other"))
    v.write(needle(1, b"second"))
    v.delete(1, COOKIE)
    v.write(needle(3, b""))
    v.delete(3, COOKIE)
    with pytest.raises(NeedleNotFound):
        v.read(1, COOKIE)
    assert v.read(1, COOKIE, read_deleted=True).data == b"second"
    assert v.read(2, COOKIE, read_deleted=True).data == b"other"  # live keys read as usual
    for key, cookie in ((1, COOKIE ^ 1), (3, COOKIE), (4, COOKIE)):
        with pytest.raises(NeedleNotFound):  # wrong cookie, deleted at Size 0, never written
            v.read(key, cookie, read_deleted=True)
    v = reopen(v, clock, index_kind=index_kind)
    assert v.read(1, COOKIE, read_deleted=True).data == b"second"
    v.write(needle(1, b"third"))
    v.delete(1, COOKIE)
    assert v.read(1, COOKIE, read_deleted=True).data == b"third"


def test_record_at_is_the_stored_record_and_read_at_decodes_it(make: Callable[..., Volume]) -> None:
    v = make()
    v.write(needle(1, b"one"))
    r = v.write(needle(2, b"two"))
    hit = v.lookup(2)
    assert hit == (r.offset, r.size)
    record = v.record_at(hit)
    raw = v.path(".dat").read_bytes()
    assert record == raw[r.offset : r.offset + len(record)]
    assert decode_needle(record).data == b"two"
    assert v.read_at(2, COOKIE, hit, record).data == b"two"
    assert v.read_at(2, COOKIE, hit).data == b"two"
    with pytest.raises(NeedleNotFound):
        v.read_at(2, COOKIE ^ 1, hit, record)
