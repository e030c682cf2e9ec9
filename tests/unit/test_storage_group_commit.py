"""The group-commit thread: futures resolve only after a sync that started after the request."""

from __future__ import annotations

import threading

import pytest

from seaweed_py.storage.group_commit import SETTLED, GroupCommitter


class RecordingSync:
    """Records syncs; each blocks until the test lets it finish."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.release = threading.Semaphore(0)
        self.started = threading.Semaphore(0)
        self.fail: set[int] = set()

    def __call__(self, fd: int) -> None:
        self.calls.append(fd)
        self.started.release()
        assert self.release.acquire(timeout=10)
        if fd in self.fail:
            raise OSError(5, "injected EIO")


def test_a_request_made_during_a_sync_waits_for_the_next_round() -> None:
    sync = RecordingSync()
    gc = GroupCommitter(sync=sync)
    try:
        first = gc.request([3])
        assert sync.started.acquire(timeout=10)  # round 1 is syncing fd 3
        late = gc.request([3])  # its write may postdate the running fsync
        sync.release.release()
        first.result(timeout=10)
        assert not late.done()
        assert sync.started.acquire(timeout=10)
        sync.release.release()
        late.result(timeout=10)
        assert sync.calls == [3, 3]
    finally:
        sync.release.release()
        gc.close()


def test_waiters_queued_together_share_one_sync_per_file() -> None:
    sync = RecordingSync()
    gc = GroupCommitter(sync=sync)
    try:
        blocker = gc.request([9])
        assert sync.started.acquire(timeout=10)
        waiting = [gc.request([3, 4]) for _ in range(50)]
        sync.release.release()
        blocker.result(timeout=10)
        for _ in range(2):
            assert sync.started.acquire(timeout=10)
            sync.release.release()
        for f in waiting:
            f.result(timeout=10)
        assert sorted(sync.calls[1:]) == [3, 4]  # 50 writers, one fsync of each file
        assert gc.rounds == 2
    finally:
        gc.close()


def test_a_failed_sync_fails_exactly_the_waiters_on_that_file() -> None:
    sync = RecordingSync()
    sync.fail.add(4)
    gc = GroupCommitter(sync=sync)
    try:
        blocker = gc.request([9])
        assert sync.started.acquire(timeout=10)
        on_four, on_three = gc.request([3, 4]), gc.request([3])
        sync.release.release()
        blocker.result(timeout=10)
        for _ in range(2):
            assert sync.started.acquire(timeout=10)
            sync.release.release()
        with pytest.raises(OSError, match="injected EIO"):
            on_four.result(timeout=10)
        assert on_three.result(timeout=10) is None
    finally:
        gc.close()


def test_close_serves_pending_requests_then_refuses_new_ones(tmp_path: object) -> None:
    synced: list[int] = []
    gc = GroupCommitter(sync=synced.append)
    futures = [gc.request([1]) for _ in range(10)]
    gc.close()
    assert all(f.done() and f.exception() is None for f in futures)
    assert synced and set(synced) == {1}
    with pytest.raises(RuntimeError):
        gc.request([1])


def test_settled_is_already_resolved() -> None:
    f = SETTLED
    assert f.done()
    assert f.result() is None
