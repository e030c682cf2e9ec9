"""The receiving end of a volume copy (storage/volume_copy.py, Store.begin_copy): pieces of a
source volume's snapshot become a volume that reads like it, all or nothing, a copy cut short
by a crash is removed at the next start, and a target that holds the volume, has no slot or no
room refuses before writing anything."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from seaweed_py.errors import Conflict, DiskFull, NeedleNotFound, NoFreeSlots
from seaweed_py.formats.needle import Needle
from seaweed_py.formats.replica_placement import ReplicaPlacement
from seaweed_py.storage.store import DiskLocation, Store
from seaweed_py.storage.volume import FsyncMode, Volume

COOKIE = 0x0BADCAFE


def source_volume(directory: Path, count: int = 40) -> Volume:
    v = Volume.create(
        directory, 12, replica_placement=ReplicaPlacement.parse("001"), fsync_mode=FsyncMode.NONE
    )
    for key in range(1, count + 1):
        v.write(Needle.build(COOKIE, key, os.urandom(key * 37)), origin_ns=1000 + key)
    v.delete(3, COOKIE)
    return v


def store(directory: Path, max_volumes: int = 4, **kw: object) -> Store:
    directory.mkdir(exist_ok=True)
    s = Store([DiskLocation(directory, max_volumes)], fsync_mode=FsyncMode.NONE, **kw)  # type: ignore[arg-type]
    s.load()
    return s


def copy_all(src: Volume, target: Store, piece: int = 1000) -> Volume:
    snap = src.copy_snapshot()
    incoming = target.begin_copy(src.id, src.collection, snap.dat_size, "src:8080")
    for file, size in (("dat", snap.dat_size), ("idx", snap.idx_size), ("ats", snap.stamps_size)):
        for at in range(0, size, piece):
            data = src.read_for_copy(file, at, min(piece, size - at), snap.compact_revision)
            incoming.write(file, at, data)
    return incoming.commit(snap.vif)


def test_a_copy_reads_like_its_source(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    src = source_volume(tmp_path / "src")
    target = store(tmp_path / "dst")
    copied = copy_all(src, target)
    assert target.get(12) is copied
    assert copied.replica_placement == ReplicaPlacement.parse("001")
    assert copied.states() == src.states()
    assert copied.digest() == src.digest()
    assert copied.read(7, COOKIE).data == src.read(7, COOKIE).data
    with pytest.raises(NeedleNotFound):
        copied.read(3, COOKIE)
    assert not list((tmp_path / "dst").glob("*.note"))
    # It takes writes at once, and its stamps go on from the source's.
    copied.write(Needle.build(COOKIE, 99, b"after"))
    assert copied.states()[99].stamp > max(s.stamp for s in src.states().values())
    src.close()
    target.close()


def test_an_aborted_copy_leaves_nothing_and_frees_its_slot(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    src = source_volume(tmp_path / "src")
    target = store(tmp_path / "dst", max_volumes=1)
    incoming = target.begin_copy(12, "", 10_000, "src:8080")
    incoming.write("dat", 0, src.read_for_copy("dat", 0, 64, 0))
    with pytest.raises(NoFreeSlots):  # the copy holds the only slot
        target.allocate(13)
    incoming.abort()
    assert sorted(os.listdir(tmp_path / "dst")) == [".weedpy.lock", "vol_dir.uuid"]
    target.allocate(13)
    src.close()
    target.close()


def test_a_copy_cut_short_by_a_crash_is_removed_at_the_next_start(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    src = source_volume(tmp_path / "src")
    target = store(tmp_path / "dst")
    snap = src.copy_snapshot()
    incoming = target.begin_copy(12, "", snap.dat_size, "src:8080")
    incoming.write("dat", 0, src.read_for_copy("dat", 0, snap.dat_size, 0))
    incoming.write("idx", 0, src.read_for_copy("idx", 0, snap.idx_size, 0))
    (tmp_path / "dst" / "12.vif").write_bytes(snap.vif)  # all there but the commit
    incoming._close()  # the process dies: nothing more happens
    target.close()
    again = store(tmp_path / "dst")
    assert again.get(12) is None
    assert not [n for n in os.listdir(tmp_path / "dst") if n.startswith("12.")]
    src.close()
    again.close()


def test_refusals_come_before_any_file(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    src = source_volume(tmp_path / "src")
    target = store(tmp_path / "dst")
    target.allocate(12)
    with pytest.raises(Conflict):
        target.begin_copy(12, "", 10, "src:8080")
    incoming = target.begin_copy(14, "", 10, "src:8080")
    with pytest.raises(Conflict):
        target.begin_copy(14, "", 10, "src:8080")
    incoming.abort()
    full = store(tmp_path / "full", disk_usage=lambda _: (10 << 30, 10 << 30, 1 << 20))
    with pytest.raises(DiskFull):
        full.begin_copy(15, "", 1 << 20, "src:8080")
    assert not list((tmp_path / "full").glob("15.*"))
    src.close()
    target.close()
    full.close()


def test_a_volume_whose_files_were_deleted_is_copied_afresh(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    src = source_volume(tmp_path / "src")
    target = store(tmp_path / "dst")
    lost = target.allocate(12, replica_placement=ReplicaPlacement.parse("001"))
    lost.path(".dat").unlink()
    assert target.missing_volumes() == [12]
    copied = copy_all(src, target)
    assert target.missing_volumes() == []
    assert copied.digest() == src.digest()
    src.close()
    target.close()
