"""Store: directories with slots, discovery on start, allocation, deletion, read-only marks."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from seaweed_py.errors import (
    Conflict,
    DirectoryInUse,
    DirectoryUnusable,
    DiskFull,
    NeedleNotFound,
    NoFreeSlots,
    VolumeNotFound,
    VolumeReadOnly,
)
from seaweed_py.formats.needle import Needle
from seaweed_py.formats.replica_placement import ReplicaPlacement
from seaweed_py.formats.ttl import Ttl
from seaweed_py.storage.directories import check_directory
from seaweed_py.storage.journal import JOURNAL_FILE
from seaweed_py.storage.store import DISK_FULL_MARGIN, DiskLocation, Store
from seaweed_py.storage.volume import FsyncMode
from seaweed_py.storage.volume_paths import parse_volume_file_name
from tests.disk_faults import FakeDisk, fail_writes_to

COOKIE = 0x1234


@pytest.fixture
def make_store(tmp_path: Path) -> Iterator[Callable[..., Store]]:
    stores: list[Store] = []

    def factory(**kw: object) -> Store:
        for name in ("a", "b"):
            (tmp_path / name).mkdir(exist_ok=True)
        s = Store([DiskLocation(tmp_path / "a", 2), DiskLocation(tmp_path / "b", 3)], **kw)  # type: ignore[arg-type]
        s.load()
        stores.append(s)
        return s

    yield factory
    for s in stores:
        s.close()


@pytest.mark.parametrize(
    ("name", "parsed"),
    [
        ("7.idx", ("", 7)),
        ("pics_7.vif", ("pics", 7)),
        ("my_old_pics_12.idx", ("my_old_pics", 12)),
        ("7.dat", None),
        ("x.idx", None),
        ("pics_.idx", None),
        ("99999999999.idx", None),
        ("my.bucket_3.idx", ("my.bucket", 3)),
        ("my.bucket_3.vif", ("my.bucket", 3)),
        ("4294967295.idx", ("", 4294967295)),
        ("4294967296.idx", None),
        ("_7.idx", None),  # an empty collection is written `7.idx`
        ("07.idx", None),  # leading zeros would name another file (`7.dat`)
        ("pics_07.idx", None),
        ("\u0663.idx", None),  # an Arabic-Indic three: not an ASCII digit
        ("7.idx\n", None),
        ("my bucket_3.idx", None),
        ("..\\x_3.idx", None),
        ("a..b_3.vif", None),
        ("x" * 121 + "_3.idx", None),
    ],
)
def test_volume_file_names(name: str, parsed: tuple[str, int] | None) -> None:
    assert parse_volume_file_name(name) == parsed


def test_allocate_fills_the_emptiest_directory_then_refuses(
    make_store: Callable[..., Store], tmp_path: Path
) -> None:
    s = make_store()
    assert (s.max_volume_count, s.free_slots) == (5, 5)
    for vid in range(1, 6):
        s.allocate(vid, collection="c" if vid % 2 else "")
    assert s.free_slots == 0
    assert sorted(p.name for p in (tmp_path / "a").glob("*.dat")) == ["c_1.dat", "c_3.dat"]
    assert len(list((tmp_path / "b").glob("*.dat"))) == 3
    with pytest.raises(NoFreeSlots):
        s.allocate(6)
    with pytest.raises(Conflict):
        s.allocate(3)
    assert len(set(s.location_uuids)) == 2


def test_volumes_and_uuids_are_found_again_on_start(make_store: Callable[..., Store]) -> None:
    s = make_store(fsync_mode=FsyncMode.GROUP)
    v = s.allocate(
        3, collection="my_col", replica_placement=ReplicaPlacement.parse("001"), ttl=Ttl.parse("2h")
    )
    result = v.write(Needle.build(COOKIE, 77, b"kept"))
    result.durable.result(timeout=10)
    s.allocate(4)
    uuids = s.location_uuids
    s.close()
    again = make_store()
    assert again.location_uuids == uuids
    infos = {i.id: i for i in again.volume_infos()}
    assert set(infos) == {3, 4}
    info = infos[3]
    assert (info.collection, str(info.replica_placement), str(info.ttl)) == ("my_col", "001", "2h")
    assert (info.file_count, info.max_file_key, info.version) == (1, 77, 3)
    assert again.max_file_key == 77
    v3 = again.get(3)
    assert v3 is not None and v3.read(77, COOKIE).data == b"kept"
    assert again.get(99) is None


def test_delete_volume_and_collection_remove_the_files(
    make_store: Callable[..., Store], tmp_path: Path
) -> None:
    s = make_store()
    for vid, col in ((1, "x"), (2, "x"), (3, "")):
        s.allocate(vid, collection=col)
    v3 = s.get(3)
    assert v3 is not None
    v3.write(Needle.build(COOKIE, 1, b"data"))
    with pytest.raises(Conflict):
        s.delete_volume(3, only_empty=True)
    s.delete_volume(3)
    with pytest.raises(VolumeNotFound):
        s.delete_volume(3)
    assert sorted(s.delete_collection("x")) == [1, 2]
    assert s.volume_infos() == []
    leftovers = sorted(p.name for d in ("a", "b") for p in (tmp_path / d).iterdir())
    assert (
        leftovers
        == [".weedpy.lock", ".weedpy.lock", "vol_dir.uuid", "vol_dir.uuid"] + [JOURNAL_FILE] * 2
    )
    assert s.free_slots == 5


def test_read_only_mark_persists_across_restart(make_store: Callable[..., Store]) -> None:
    s = make_store()
    s.allocate(1)
    s.mark_read_only(1, True)
    s.allocate(2)
    s.mark_read_only(2, True, persist=False)
    with pytest.raises(VolumeNotFound):
        s.mark_read_only(9, True)
    s.close()
    again = make_store()
    assert {i.id: i.read_only for i in again.volume_infos()} == {1: True, 2: False}


def test_a_broken_volume_is_skipped_and_reported(
    make_store: Callable[..., Store], tmp_path: Path
) -> None:
    s = make_store()
    s.allocate(1)
    s.allocate(2)
    s.close()
    (tmp_path / "a" / "1.dat").write_bytes(b"\x09")  # shorter than a superblock
    again = make_store()
    assert [i.id for i in again.volume_infos()] == [2]
    assert any("1" in k for k in again.load_errors)


def test_size_limit_reaches_every_volume(make_store: Callable[..., Store]) -> None:
    s = make_store()
    v = s.allocate(1)
    s.volume_size_limit = 1 << 20
    assert v.size_limit == 1 << 20


def test_a_second_store_on_the_same_directory_is_refused(
    make_store: Callable[..., Store], tmp_path: Path
) -> None:
    """Scenario 21: the lock is held until close; the data is untouched."""
    s = make_store()
    s.allocate(1).write(Needle.build(COOKIE, 5, b"mine"))
    intruder = Store([DiskLocation(tmp_path / "b", 3)])
    with pytest.raises(DirectoryInUse):
        intruder.load()
    intruder.close()
    v = s.get(1)
    assert v is not None and v.read(5, COOKIE).data == b"mine"
    s.close()
    again = make_store()
    assert [i.id for i in again.volume_infos()] == [1]


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("missing", "no such directory"),
        ("file", "not a directory"),
        ("file/below", "not a directory ({tmp}/file is a file)"),
    ],
)
def test_a_directory_that_is_not_there_is_refused_not_created(
    tmp_path: Path, name: str, why: str
) -> None:
    """Issue 12: a mistyped -dir is refused, as `weed volume` refuses it (it was created)."""
    (tmp_path / "file").write_bytes(b"")
    good = tmp_path / "good"
    good.mkdir()
    store = Store([DiskLocation(good, 1), DiskLocation(tmp_path / name, 1)])
    with pytest.raises(DirectoryUnusable) as raised:
        store.load()
    store.close()
    assert str(raised.value) == f"-dir {tmp_path / name}: {why.format(tmp=tmp_path)}"
    assert not (tmp_path / "missing").exists()
    # the directory checked first was not locked for good
    again = Store([DiskLocation(good, 1)])
    again.load()
    again.close()


def test_check_directory_creates_one_missing_level_when_asked(tmp_path: Path) -> None:
    check_directory(tmp_path / "meta", "mdir", create=True)
    assert (tmp_path / "meta").is_dir()
    assert list((tmp_path / "meta").iterdir()) == []  # the probe file is gone
    with pytest.raises(DirectoryUnusable, match="no such directory"):
        check_directory(tmp_path / "no" / "meta", "mdir", create=True)
    assert not (tmp_path / "no").exists()


def test_deleted_volume_files_are_noticed_while_running(
    make_store: Callable[..., Store], tmp_path: Path
) -> None:
    """Scenario 12: a .dat or .idx removed under a running server is reported missing."""
    s = make_store()
    s.allocate(1)
    s.allocate(2)
    assert s.missing_volumes() == []
    next((tmp_path / "a").glob("1.dat")).unlink()
    next((tmp_path / "b").glob("2.idx")).unlink()
    assert sorted(s.missing_volumes()) == [1, 2]


def _fill_up(s: Store, vid: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """An append to `vid` that meets ENOSPC: the volume turns read-only, "disk full"."""
    v = s.get(vid)
    assert v is not None
    fail_writes_to(monkeypatch, v._dat, errno.ENOSPC, "No space left on device")
    with pytest.raises(DiskFull):
        v.write(Needle.build(COOKIE, 99, b"does not fit"))
    monkeypatch.undo()


def test_a_volume_whose_disk_filled_is_writable_again_once_there_is_room(
    make_store: Callable[..., Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = FakeDisk()
    s = make_store(disk_usage=disk)
    for vid in (1, 2, 3):
        s.allocate(vid)
        s.get(vid).write(Needle.build(COOKIE, 1, b"kept"))
    assert s.reopen_full_volumes() == [] and disk.probes == 0  # nothing full: no probe
    sizes = {vid: s.get(vid).size for vid in (1, 2, 3)}
    for vid in (1, 2, 3):
        _fill_up(s, vid, monkeypatch)
    s.mark_read_only(3, True)  # an operator's mark is not the disk's to lift
    margin = max(DISK_FULL_MARGIN, disk.total // 100)

    disk.free = margin - 1
    assert s.reopen_full_volumes() == []
    with pytest.raises(DiskFull, match="disk full"):
        s.get(1).write(Needle.build(COOKIE, 2, b"in between"))

    disk.free = margin
    assert s.reopen_full_volumes() == [1, 2]
    for vid in (1, 2, 3):
        v = s.get(vid)
        assert v.size == sizes[vid] == os.path.getsize(v.path(".dat"))  # no partial
        assert v.read(1, COOKIE).data == b"kept"
        with pytest.raises(NeedleNotFound):
            v.read(99, COOKIE)
    s.get(1).write(Needle.build(COOKIE, 2, b"after"))
    assert s.get(1).read(2, COOKIE).data == b"after"
    assert s.get(3).read_only and not s.get(3).read_only_reason
    with pytest.raises(VolumeReadOnly):
        s.get(3).write(Needle.build(COOKIE, 2, b"still marked"))
    assert s.reopen_full_volumes() == []
