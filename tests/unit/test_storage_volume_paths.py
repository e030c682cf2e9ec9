"""Volume file names at the storage layer (storage/volume_paths.py): dotted collections keep
their whole name across a restart, the Store API refuses names the parser refuses, files whose
names no volume of ours has are skipped unopened, and no file is created or deleted outside the
data directory, even through a symlink (defence in depth behind the parser)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from seaweed_py.errors import InvalidCollection, PathEscapesDirectory
from seaweed_py.formats.needle import Needle
from seaweed_py.storage.check import check_volume, rebuild_index
from seaweed_py.storage.store import DiskLocation, Store
from seaweed_py.storage.volume import FsyncMode, Volume
from seaweed_py.storage.volume_paths import check_inside, volume_file

COOKIE = 0x1234


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """The data directory, two levels down so `../..` lands inside `tmp_path`."""
    d = tmp_path / "a" / "b" / "data"
    d.mkdir(parents=True)
    return d


@pytest.fixture
def make_store(data: Path) -> Iterator[Callable[[], Store]]:
    stores: list[Store] = []

    def factory() -> Store:
        s = Store([DiskLocation(data, 8)], fsync_mode=FsyncMode.NONE)
        s.load()
        stores.append(s)
        return s

    yield factory
    for s in stores:
        s.close()


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_dotted_collections_keep_their_names_and_reload_after_a_restart(
    make_store: Callable[[], Store], data: Path
) -> None:
    s = make_store()
    v = s.allocate(3, collection="my.bucket")
    v.write(Needle.build(COOKIE, 5, b"kept"))
    # Before the fix every `my.*` volume was `my.dat`: the second one could not be created.
    s.allocate(4, collection="my.other")
    s.allocate(5, collection="my")
    s.allocate(6, collection="my.bucket.v2")
    s.close()
    names = sorted(p.name for p in data.glob("*.dat"))
    assert names == ["my.bucket.v2_6.dat", "my.bucket_3.dat", "my.other_4.dat", "my_5.dat"]
    again = make_store()
    assert {v.id: v.collection for v in again.volumes()} == {
        3: "my.bucket",
        4: "my.other",
        5: "my",
        6: "my.bucket.v2",
    }
    v3 = again.get(3)
    assert v3 is not None and v3.read(5, COOKIE).data == b"kept"
    again.allocate(7, collection="my.bucket")
    assert (data / "my.bucket_7.idx").exists() and again.load_errors == {}


@pytest.mark.parametrize(
    "collection", ["../../x", "..", "a/b", "/abs/x", "a\x00b", "my bucket", "é", "x" * 121]
)
def test_the_store_refuses_invalid_collections_and_touches_nothing(
    make_store: Callable[[], Store], tmp_path: Path, collection: str
) -> None:
    s = make_store()
    s.allocate(1, collection="x")
    before = files_under(tmp_path)
    with pytest.raises(InvalidCollection):
        s.allocate(2, collection=collection)
    with pytest.raises(InvalidCollection):
        s.delete_collection(collection)
    with pytest.raises(InvalidCollection):
        Volume.create(s.locations[0].path, 2, collection=collection)
    assert files_under(tmp_path) == before
    assert [v.id for v in s.volumes()] == [1]


def test_files_with_names_no_volume_has_are_skipped_unopened_with_one_log_line(
    make_store: Callable[[], Store], data: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s = make_store()
    v = s.allocate(3, collection="ok")
    v.write(Needle.build(COOKIE, 5, b"kept"))
    s.close()
    torn = (data / "ok_3.dat").read_bytes() + b"\x01\x02\x03"  # a tail an open would cut
    strangers = ["my bucket_4", "07", "_8", "a..b_9", "pics_x"]
    for stem in strangers:
        (data / f"{stem}.dat").write_bytes(torn)
        for ext in (".idx", ".vif"):
            (data / f"{stem}{ext}").write_bytes((data / f"ok_3{ext}").read_bytes())
    caplog.set_level(logging.ERROR, logger="seaweed_py.storage.store")
    again = make_store()
    assert [v.id for v in again.volumes()] == [3]
    for stem in strangers:
        assert (data / f"{stem}.dat").read_bytes() == torn, stem  # never opened (not repaired)
        lines = [r for r in caplog.records if f"{data / stem}.*" in r.getMessage()]
        assert len(lines) == 1, (stem, [r.getMessage() for r in caplog.records])
    assert set(again.load_errors) == {str(data / stem) for stem in strangers}


# ---------------------------------------------------------------- containment (symlinks)


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file outside the data directory that a planted symlink points at."""
    outside = tmp_path / "outside"
    outside.mkdir()
    path = outside / "victim"
    path.write_bytes(b"not yours")
    return path


def test_check_inside_refuses_traversal_absolute_and_symlinked_paths(
    data: Path, victim: Path, caplog: pytest.LogCaptureFixture
) -> None:
    check_inside(data, data / "7.dat", data / "my.bucket_7.sdx.tmp")
    (data / "link.dat").symlink_to(victim)
    for escaping in (data / ".." / "x_7.dat", Path("/tmp/x_7.dat"), data / "link.dat", data):
        with pytest.raises(PathEscapesDirectory) as caught:
            check_inside(data, data / "7.dat", escaping)
        assert caught.value.status == 500 and str(data.resolve()) in caught.value.message
    assert sum("outside data directory" in r.getMessage() for r in caplog.records) == 4


def test_a_data_directory_reached_through_a_symlink_is_inside_itself(
    tmp_path: Path, data: Path
) -> None:
    alias = tmp_path / "alias"
    alias.symlink_to(data)
    v = Volume.create(alias, 4, collection="c", fsync_mode=FsyncMode.NONE)
    v.write(Needle.build(COOKIE, 1, b"x"))
    v.destroy()
    assert list(data.iterdir()) == []


@pytest.mark.parametrize("ext", [".dat", ".idx", ".vif", ".vif.tmp", ".sdx", ".sdx.tmp"])
def test_create_refuses_a_planted_symlink_before_creating_anything(
    data: Path, victim: Path, ext: str
) -> None:
    (data / f"c_4{ext}").symlink_to(victim)
    with pytest.raises(PathEscapesDirectory):
        Volume.create(data, 4, collection="c", index_kind="mmap", fsync_mode=FsyncMode.NONE)
    assert victim.read_bytes() == b"not yours"
    assert sorted(p.name for p in data.iterdir()) == [f"c_4{ext}"]


def test_delete_refuses_a_symlinked_file_and_keeps_the_volume(
    make_store: Callable[[], Store], data: Path, victim: Path
) -> None:
    s = make_store()
    v = s.allocate(3, collection="c")
    v.write(Needle.build(COOKIE, 5, b"kept"))
    s.allocate(4, collection="c")
    (data / "c_3.cpd").symlink_to(victim)
    before = files_under(data)
    with pytest.raises(PathEscapesDirectory):
        s.delete_volume(3)
    with pytest.raises(PathEscapesDirectory):
        s.delete_collection("c")  # volume 4 is fine, but the collection goes whole or not at all
    assert files_under(data) == before and victim.read_bytes() == b"not yours"
    assert sorted(v.id for v in s.volumes()) == [3, 4]
    kept = s.get(3)
    assert kept is not None and kept.read(5, COOKIE).data == b"kept"


def test_sealing_refuses_a_symlinked_sorted_index_and_changes_nothing(
    make_store: Callable[[], Store], data: Path, victim: Path
) -> None:
    s = make_store()
    v = s.allocate(3)
    v.write(Needle.build(COOKIE, 5, b"kept"))
    (data / "3.sdx.tmp").symlink_to(victim)
    vif = (data / "3.vif").read_bytes()
    with pytest.raises(PathEscapesDirectory):
        s.mark_read_only(3, True)
    assert not v.read_only and (data / "3.vif").read_bytes() == vif
    assert victim.read_bytes() == b"not yours"
    assert v.read(5, COOKIE).data == b"kept"


def test_rebuild_index_refuses_a_symlinked_temporary_file(data: Path, victim: Path) -> None:
    v = Volume.create(data, 3, collection="my.bucket", fsync_mode=FsyncMode.NONE)
    v.write(Needle.build(COOKIE, 5, b"kept"))
    v.close()
    assert check_volume(data, 3, "my.bucket").ok
    assert rebuild_index(data, 3, "my.bucket") == 1
    volume_file(data, "my.bucket", 3, ".idx.tmp").symlink_to(victim)
    with pytest.raises(PathEscapesDirectory):
        rebuild_index(data, 3, "my.bucket")
    assert victim.read_bytes() == b"not yours"
    assert os.path.getsize(data / "my.bucket_3.idx") == 16


def test_a_volume_whose_dat_lives_elsewhere_still_opens_but_is_not_deleted_through_the_link(
    make_store: Callable[[], Store], data: Path, tmp_path: Path
) -> None:
    s = make_store()
    v = s.allocate(3)
    v.write(Needle.build(COOKIE, 5, b"kept"))
    s.close()
    other_disk = tmp_path / "disk2"
    other_disk.mkdir()
    (data / "3.dat").rename(other_disk / "3.dat")
    (data / "3.dat").symlink_to(other_disk / "3.dat")
    again = make_store()
    moved = again.get(3)
    assert moved is not None and moved.read(5, COOKIE).data == b"kept"
    moved.write(Needle.build(COOKIE, 6, b"more"))
    with pytest.raises(PathEscapesDirectory):
        again.delete_volume(3)
    assert (other_disk / "3.dat").exists() and (data / "3.dat").is_symlink()
    assert again.get(3) is moved
