"""A failed fdatasync of a journal several workers share (storage/journal.py, "A failed sync
fails every later write"): the first worker whose sync fails marks the share, and every other
worker refuses appends from its next lock, even one that opened the journal after the error
(its own fdatasync would report clean: the kernel tells each open file once). One process
plays both workers, one after the other, as in test_storage_vacuum_workers.py."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from seaweed_py.formats.needle import Needle
from seaweed_py.storage import journal as journal_module
from seaweed_py.storage.shared import WorkerShare
from seaweed_py.storage.store import Store
from seaweed_py.storage.volume import Volume
from tests.fault.storage_workload import COOKIE, journaled_store, leader_and_worker, payload

VID = 4


def _volume(store: Store) -> Volume:
    v = store.get(VID)
    assert v is not None
    return v


def _write(store: Store, key: int) -> None:
    _volume(store).write(Needle.build(COOKIE, key, payload(key))).durable.result(timeout=10)


def test_a_failed_sync_in_one_worker_fails_the_writes_of_every_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    leader, worker = leader_and_worker(tmp_path, allocate=VID)
    _write(leader, 1)
    _write(worker, 2)

    real = journal_module.os.fdatasync
    monkeypatch.setattr(
        journal_module.os,
        "fdatasync",
        lambda fd: (_ for _ in ()).throw(OSError(errno.EIO, "injected EIO")),
    )
    with pytest.raises(OSError) as lost:
        _write(leader, 3)
    assert lost.value.errno == errno.EIO
    monkeypatch.setattr(journal_module.os, "fdatasync", real)  # the next sync would pass

    for store, key in ((worker, 4), (leader, 5)):
        with pytest.raises(OSError, match="until the volume server restarts") as refused:
            _write(store, key)
        assert refused.value.errno == errno.EIO
    journals = [j for s in (leader, worker) for j in s.journals if j is not None]
    assert all(j.failed is not None for j in journals)
    worker.close()
    leader.close()

    again = journaled_store(tmp_path)  # a restart: a new share, the durable prefix replayed
    again.load()
    again.share_workers(WorkerShare(tmp_path, create=True))
    try:
        v = _volume(again)
        for key in (1, 2):
            assert v.read(key, COOKIE).data == payload(key)
        _write(again, 6)
        assert v.read(6, COOKIE).data == payload(6)
    finally:
        again.close()
