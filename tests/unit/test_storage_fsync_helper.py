"""HelperGroupCommitter: group commit with the fsyncs in a helper process.

Real files and a real helper process; a pipe stands in for a file whose fsync fails (fdatasync
of a pipe is EINVAL)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from seaweed_py.storage.fsync_helper import HelperGroupCommitter
from seaweed_py.volume.durability import DurableWaits, HelperDriver


@pytest.fixture
def committer() -> Iterator[HelperGroupCommitter]:
    gc = HelperGroupCommitter(lazy_interval=0.05)
    yield gc
    gc.close()


@pytest.fixture
def data_fd(tmp_path: Path) -> Iterator[int]:
    fd = os.open(tmp_path / "data", os.O_RDWR | os.O_CREAT, 0o644)
    yield fd
    os.close(fd)


@pytest.fixture
async def waits(committer: HelperGroupCommitter) -> AsyncIterator[DurableWaits]:
    """Durable waits on this test's loop, which drives `committer`."""
    driver = HelperDriver(committer)
    driver.start()
    yield DurableWaits()
    driver.stop()


def helper_pid(gc: HelperGroupCommitter) -> int:
    proc = gc._proc
    assert proc is not None
    return proc.pid


def test_requests_of_a_round_share_one_future_and_one_fsync(
    committer: HelperGroupCommitter, data_fd: int
) -> None:
    os.write(data_fd, b"x" * 100)
    first = committer.request([data_fd])
    second = committer.request([data_fd])
    assert first is second
    first.result(timeout=10)
    assert committer.rounds == 1
    assert committer.request([data_fd]) is not first  # the next round


def test_a_failed_fsync_fails_exactly_the_waiters_on_that_file(
    committer: HelperGroupCommitter, data_fd: int
) -> None:
    r, w = os.pipe()
    try:
        bad = committer.request([r])
        good = committer.request([data_fd])
        committer.kick()
        with pytest.raises(OSError) as info:
            bad.result(timeout=10)
        assert info.value.errno == 22  # EINVAL: a pipe cannot be synced
        good.result(timeout=10)
    finally:
        os.close(r)
        os.close(w)


def test_a_helper_that_died_idle_is_replaced_and_the_round_succeeds(
    committer: HelperGroupCommitter, data_fd: int
) -> None:
    committer.request([data_fd]).result(timeout=10)
    first = helper_pid(committer)
    os.kill(first, signal.SIGKILL)
    time.sleep(0.1)
    committer.request([data_fd]).result(timeout=10)
    assert helper_pid(committer) != first


def test_a_helper_lost_mid_round_fails_that_round_only(
    committer: HelperGroupCommitter, data_fd: int
) -> None:
    committer.request([data_fd]).result(timeout=10)
    pid = helper_pid(committer)
    os.kill(pid, signal.SIGSTOP)  # the round reaches it, never its answer
    try:
        lost = committer.request([data_fd])
        committer.kick()
    finally:
        os.kill(pid, signal.SIGKILL)
    with pytest.raises(OSError, match="fsync helper"):
        lost.result(timeout=10)
    committer.request([data_fd]).result(timeout=10)  # a new helper serves the next one


def test_rounds_overlap_up_to_max_rounds(data_fd: int, tmp_path: Path) -> None:
    gc = HelperGroupCommitter(max_rounds=2)
    try:
        gc.request([data_fd]).result(timeout=10)  # helper up
        pid = helper_pid(gc)
        os.kill(pid, signal.SIGSTOP)
        try:
            futures = []
            for _ in range(3):
                futures.append(gc.request([data_fd]))
                gc.kick()
            assert len(gc._inflight) == 2  # the third waits for a free slot
        finally:
            os.kill(pid, signal.SIGCONT)
        for future in futures:
            future.result(timeout=10)
        assert gc.rounds == 4
    finally:
        gc.close()


def test_due_lazy_files_are_synced_by_tick(committer: HelperGroupCommitter, data_fd: int) -> None:
    assert committer.request([], lazy=[data_fd]).done()
    committer.tick()
    assert committer.rounds == 0  # not due yet
    time.sleep(0.08)
    committer.tick()
    deadline = time.monotonic() + 10
    while committer.rounds == 0 and time.monotonic() < deadline:
        committer.pump()
        time.sleep(0.01)
    assert committer.rounds == 1


def test_the_helper_keeps_no_file_open_between_rounds(
    committer: HelperGroupCommitter, tmp_path: Path
) -> None:
    path = tmp_path / "doomed"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        committer.request([fd]).result(timeout=10)
        fd_dir = Path(f"/proc/{helper_pid(committer)}/fd")
        assert not any("doomed" in os.readlink(p) for p in fd_dir.iterdir())
    finally:
        os.close(fd)


def test_a_file_closed_before_its_round_fails_only_its_waiters(
    committer: HelperGroupCommitter, data_fd: int, tmp_path: Path
) -> None:
    committer.request([data_fd]).result(timeout=10)  # the helper's socket is open already
    fd = os.open(tmp_path / "gone", os.O_RDWR | os.O_CREAT, 0o644)
    gone = committer.request([fd])
    kept = committer.request([data_fd])
    os.close(fd)
    committer.kick()
    with pytest.raises(OSError) as info:
        gone.result(timeout=10)
    assert info.value.errno == 9  # EBADF
    kept.result(timeout=10)


def test_a_round_carries_at_most_max_fds_files(tmp_path: Path) -> None:
    from seaweed_py.storage.fsync_worker import MAX_FDS

    fds = [os.open(tmp_path / f"f{i}", os.O_RDWR | os.O_CREAT, 0o644) for i in range(MAX_FDS + 5)]
    gc = HelperGroupCommitter()
    try:
        futures = [gc.request([fd]) for fd in fds]
        for future in futures:
            future.result(timeout=20)
        assert gc.rounds == 2
    finally:
        gc.close()
        for fd in fds:
            os.close(fd)


def test_close_serves_pending_requests_then_refuses_new_ones(data_fd: int) -> None:
    gc = HelperGroupCommitter()
    pending = gc.request([data_fd])
    gc.close()
    assert pending.done() and pending.exception() is None
    with pytest.raises(RuntimeError):
        gc.request([data_fd])


async def test_a_loop_driven_committer_resolves_waiters_without_blocking(
    committer: HelperGroupCommitter, waits: DurableWaits, data_fd: int
) -> None:
    answers = [waits.deliver(committer.request([data_fd]), n) for n in range(5)]
    assert await asyncio.wait_for(asyncio.gather(*answers), 10) == [0, 1, 2, 3, 4]
    assert committer.rounds == 1  # five writes, one fsync
    r, w = os.pipe()
    try:
        with pytest.raises(OSError):
            await asyncio.wait_for(waits.deliver(committer.request([r]), None), 10)
    finally:
        os.close(r)
        os.close(w)


def test_the_helper_ignores_group_signals_and_leaves_when_the_server_end_closes(
    data_fd: int,
) -> None:
    gc = HelperGroupCommitter()
    gc.request([data_fd]).result(timeout=10)
    proc = gc._proc
    assert proc is not None
    for signum in (signal.SIGINT, signal.SIGTERM):  # what a terminal or systemd sends the group
        os.kill(proc.pid, signum)
    time.sleep(0.2)
    assert proc.poll() is None
    gc.request([data_fd]).result(timeout=10)  # the graceful stop still gets its syncs
    gc.close()
    assert proc.poll() is not None


def test_close_waits_for_the_round_in_flight(data_fd: int) -> None:
    gc = HelperGroupCommitter()
    gc.request([data_fd]).result(timeout=10)  # helper up
    pid = helper_pid(gc)
    os.kill(pid, signal.SIGSTOP)  # the round goes out and stays unanswered for a while
    in_flight = gc.request([data_fd])
    gc.kick()
    assert not in_flight.done()
    os.kill(pid, signal.SIGCONT)
    gc.close()
    assert in_flight.done() and in_flight.exception() is None


async def test_a_loop_driven_committer_survives_its_helper_dying(
    committer: HelperGroupCommitter, waits: DurableWaits, data_fd: int
) -> None:
    await asyncio.wait_for(waits.deliver(committer.request([data_fd]), None), 10)
    first = helper_pid(committer)
    os.kill(first, signal.SIGKILL)
    for _ in range(50):  # the loop sees the EOF and lets the helper go
        await asyncio.sleep(0.01)
        if committer._proc is None:
            break
    assert committer._proc is None
    assert await asyncio.wait_for(waits.deliver(committer.request([data_fd]), 7), 10) == 7
    assert helper_pid(committer) != first


def test_the_round_and_answer_codecs_agree_and_refuse_malformed_answers() -> None:
    from seaweed_py.storage import fsync_worker as w

    assert w._decode_round(w.encode_round(7, [3, -1, 250])) == (7, [3, -1, 250])
    answer = w._encode_answer(9, [(3, 0), (4, 5)])
    assert w.decode_answer(answer) == (9, [(3, 0), (4, 5)])
    for bad in (b"", b"D\x01", answer[:-1], w.encode_round(9, [3])):
        with pytest.raises(ValueError):
            w.decode_answer(bad)
