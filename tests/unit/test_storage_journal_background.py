"""The journal's rounds synced in the background (`Journal.sync_in_background`, storage/uring.py),
with the thread that called it driven by hand as the volume server's event loop drives it:
callbacks deferred until the input at hand is handled, the journal's descriptor watched with
`poll`, `synced()` when it is readable. Rounds resolve only after their sync completed, one
is in flight at a time, waiting on a future never deadlocks, and failures (a sync that fails, a
submit the kernel refuses) fail or fall back without losing a round."""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest

from seaweed_py.storage import journal as journal_module
from seaweed_py.storage.group_commit import RoundFuture
from seaweed_py.storage.journal import JOURNAL_FILE, Journal, read_entries
from seaweed_py.storage.uring import AsyncSync
from tests.uring_kernel import needs_io_uring, readable

pytestmark = needs_io_uring

RING = 1 << 16


class HandLoop:
    """The thread that called `sync_in_background`, driven by hand."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.deferred: list[Callable[[], None]] = []
        fd = journal.sync_in_background(self.deferred.append)
        assert fd is not None and fd == journal.background_fd
        self.fd = fd

    def run_deferred(self) -> None:
        while self.deferred:
            self.deferred.pop(0)()

    def turn(self, timeout: float) -> None:
        """One pass of the loop: a completion collected if the descriptor says so, then the
        callbacks it deferred."""
        if readable(self.fd, timeout):
            self.journal.synced()
        self.run_deferred()

    def until(self, check: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, "the loop did not get there in time"
            self.turn(0.05)

    def completion_ready(self, timeout: float = 10.0) -> bool:
        """Whether the kernel posted a completion (without collecting it)."""
        return readable(self.fd, timeout)


class Syncs:
    """Every journal fdatasync, by how it ran: inline (`os.fdatasync`, with its thread) or
    submitted to a ring (with the in-flight count the ring had then)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.inline: list[tuple[int, int]] = []
        self.submitted: list[tuple[int, int, int]] = []
        self.collected: list[int] = []
        real_sync, real_submit, real_drain = os.fdatasync, AsyncSync.submit, AsyncSync._drain

        def fdatasync(fd: int) -> None:
            self.inline.append((fd, threading.get_ident()))
            real_sync(fd)

        def submit(ring: AsyncSync, fd: int, token: int) -> None:
            in_flight = ring.in_flight
            real_submit(ring, fd, token)
            self.submitted.append((fd, token, in_flight))

        def drain(ring: AsyncSync) -> list[tuple[int, OSError | None]]:
            done = real_drain(ring)
            self.collected.extend(token for token, _ in done)
            return done

        monkeypatch.setattr(os, "fdatasync", fdatasync)
        monkeypatch.setattr(AsyncSync, "submit", submit)
        monkeypatch.setattr(AsyncSync, "_drain", drain)

    def inline_of(self, fd: int) -> list[int]:
        """The threads that synced `fd` inline."""
        return [thread for f, thread in self.inline if f == fd]


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal(tmp_path, lambda: None, ring=RING)
    j.begin()
    try:
        yield j
    finally:
        j.stop_background()
        if not j._closed:
            j.close()


@pytest.fixture
def syncs(monkeypatch: pytest.MonkeyPatch) -> Syncs:
    return Syncs(monkeypatch)


def append(journal: Journal, n: int) -> RoundFuture:
    future = journal.append(1, 0, 8 + n * 64, b"record %d" % n)
    assert isinstance(future, RoundFuture)
    return future


def thrown(future: Future[None]) -> BaseException | None:
    assert future.done()
    return future.exception(timeout=0)


# ---------------------------------------------------------------------------- rounds


def test_a_round_resolves_only_once_its_background_sync_is_collected(
    journal: Journal, syncs: Syncs
) -> None:
    """The kick submits the round's fdatasync and returns; the kernel finishing it is not
    enough: the future resolves when `synced()` collects the completion, after it."""
    loop = HandLoop(journal)
    future = append(journal, 1)
    resolved_after: list[list[int]] = []
    future.add_done_callback(lambda f: resolved_after.append(list(syncs.collected)))
    future.kick()  # what DurableWaits does once the loop's input is handled
    assert not future.done()
    ((fd, token, in_flight),) = syncs.submitted
    assert (fd, in_flight) == (journal._fd, 0)
    assert syncs.inline == []  # nothing synced inline, on the loop
    assert loop.completion_ready()
    assert not future.done()  # done in the kernel, not yet collected
    loop.turn(0)
    assert thrown(future) is None
    assert resolved_after == [[token]]
    assert journal.syncs == 1
    assert syncs.inline == []


def test_writes_appended_while_a_round_is_in_flight_wait_for_the_next_round(
    journal: Journal, syncs: Syncs
) -> None:
    """One round in flight at a time: kicks while it is return at once; its completion
    starts the next round (deferred) with every write that came meanwhile."""
    loop = HandLoop(journal)
    first = append(journal, 1)
    journal.kick()
    second = append(journal, 2)
    assert append(journal, 3) is second  # one future per round
    for _ in range(3):
        second.kick()
    assert len(syncs.submitted) == 1
    loop.completion_ready()
    journal.synced()
    assert thrown(first) is None
    assert not second.done()
    assert len(loop.deferred) == 1  # the next round, once the input at hand is handled
    loop.run_deferred()
    assert len(syncs.submitted) == 2 and not second.done()
    loop.until(second.done)
    assert thrown(second) is None
    assert journal.syncs == 2
    assert [t for _, t, _ in syncs.submitted] == sorted(t for _, t, _ in syncs.submitted)
    assert [e.offset for e in read_entries(journal.path)[0]] == [72, 136, 200]


def test_a_steady_stream_keeps_one_sync_in_flight_and_acknowledges_every_write(
    journal: Journal, syncs: Syncs
) -> None:
    """Writes come in every pass of the loop; every future resolves, never more than one
    sync is in flight, and the rounds take several writes each."""
    loop = HandLoop(journal)
    futures = []
    for n in range(300):
        futures.append(append(journal, n))
        futures[-1].kick()
        loop.turn(0)
    loop.until(lambda: all(f.done() for f in futures))
    assert all(thrown(f) is None for f in futures)
    assert all(in_flight == 0 for _, _, in_flight in syncs.submitted)
    assert len(syncs.submitted) < 300
    assert threading.get_ident() not in syncs.inline_of(journal._fd)  # (a checkpoint's are)


# ---------------------------------------------------------------------------- waiting


def test_waiting_on_a_future_in_the_background_thread_never_deadlocks(
    journal: Journal, syncs: Syncs
) -> None:
    """The loop's own thread asks a pending future for its result (nobody else will collect
    the completion): on the round in flight, and on the round behind it; both return, the
    first by waiting for the ring, the second synced inline right after."""
    outcome: list[object] = []

    def background() -> None:
        try:
            HandLoop(journal)
            in_flight = append(journal, 1)
            journal.kick()
            behind = append(journal, 2)
            outcome.append(behind.result(timeout=10))  # waits for `in_flight` first
            outcome.append(thrown(in_flight))
            again = append(journal, 3)
            journal.kick()
            outcome.append(again.exception(timeout=10))  # the ring's round, waited for
            journal.stop_background()
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=background)
    thread.start()
    thread.join(20)
    assert not thread.is_alive(), "result() deadlocked in the thread that syncs"
    assert outcome == [None, None, None]
    assert len(syncs.submitted) == 2
    assert len(syncs.inline_of(journal._fd)) == 1  # the round behind, after the wait
    assert journal.syncs == 3


def test_waiting_from_another_thread_while_the_background_thread_drives(
    journal: Journal, syncs: Syncs
) -> None:
    """A thread other than the loop's (a worker thread of the server) waits: on the round in
    flight it blocks until the loop collects it; on a round not yet started it syncs that
    round itself, inline, and the loop's deferred kick then finds nothing to do."""
    loop = HandLoop(journal)
    in_flight = append(journal, 1)
    journal.kick()
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(in_flight.result(timeout=10)))
    waiter.start()
    loop.until(lambda: not waiter.is_alive())
    assert got == [None]
    assert journal.syncs == 1 and syncs.inline == []

    blocker = append(journal, 2)
    journal.kick()  # in flight
    pending = append(journal, 3)
    waiter = threading.Thread(target=lambda: got.append(pending.result(timeout=10)))
    waiter.start()
    waiter.join(10)
    assert not waiter.is_alive() and got == [None, None]
    assert syncs.inline_of(journal._fd) == [waiter.ident]
    loop.until(blocker.done)
    assert thrown(blocker) is None
    loop.run_deferred()
    assert len(syncs.submitted) == 2  # the round behind was already synced
    assert journal.syncs == 3


# ---------------------------------------------------------------------------- failures


class _FailsFirstCompletion(AsyncSync):
    """A ring whose first fdatasync completes with EIO (a disk error)."""

    def _drain(self) -> list[tuple[int, OSError | None]]:
        done = super()._drain()
        if done and not getattr(self, "failed", False):
            self.failed = True
            done[0] = (done[0][0], OSError(errno.EIO, "injected EIO"))
        return done


class _RefusesFirstSubmit(AsyncSync):
    """A ring that refuses its first submission (EAGAIN: the kernel is out of memory)."""

    def submit(self, fd: int, token: int) -> None:
        if not getattr(self, "refused", False):
            self.refused = True
            raise OSError(errno.EAGAIN, "injected EAGAIN")
        super().submit(fd, token)


def test_a_failed_background_sync_fails_its_round_and_every_later_write(
    journal: Journal,
    syncs: Syncs,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """After EIO the kernel may have dropped the pages it could not write and call the next
    sync clean: a later round's success would not cover the failed round's entries, and
    replay stops at the first one missing. So the round behind fails too, without a sync,
    and so does every later append, until a restart."""
    monkeypatch.setattr(journal_module, "AsyncSync", _FailsFirstCompletion)
    loop = HandLoop(journal)
    failed = append(journal, 1)
    journal.kick()
    behind = append(journal, 2)
    journal.kick()
    loop.until(failed.done)
    error = thrown(failed)
    assert isinstance(error, OSError) and error.errno == errno.EIO
    assert journal.syncs == 0
    assert "fdatasync of" in caplog.text and "injected EIO" in caplog.text
    assert journal.failed is not None and journal.failed.errno == errno.EIO
    loop.until(behind.done)
    error = thrown(behind)
    assert isinstance(error, OSError) and error.errno == errno.EIO
    assert "until the volume server restarts" in str(error)
    with pytest.raises(OSError, match="until the volume server restarts"):
        append(journal, 3)
    assert journal.syncs == 0
    assert len(syncs.submitted) == 1  # nothing synced after the failure
    assert syncs.inline == []
    journal.stop_background()
    journal.close()  # no checkpoint over the failed round; the file is let go
    assert journal._closed


def test_a_refused_submit_syncs_that_round_inline_and_the_next_goes_to_the_ring(
    journal: Journal,
    syncs: Syncs,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(journal_module, "AsyncSync", _RefusesFirstSubmit)
    loop = HandLoop(journal)
    refused = append(journal, 1)
    journal.kick()
    assert thrown(refused) is None  # synced inline, right in the kick
    assert syncs.inline_of(journal._fd) == [threading.get_ident()]
    assert "background sync refused" in caplog.text
    assert journal._in_flight is None
    later = append(journal, 2)
    journal.kick()
    assert not later.done() and len(syncs.submitted) == 1
    loop.until(later.done)
    assert thrown(later) is None
    assert journal.syncs == 2


def _completing_with(err: int) -> type[AsyncSync]:
    """A ring whose every fdatasync completes with `err`."""

    class Failing(AsyncSync):
        def _drain(self) -> list[tuple[int, OSError | None]]:
            return [(token, OSError(err, os.strerror(err))) for token, _ in super()._drain()]

    return Failing


@pytest.mark.parametrize("err", [errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS])
def test_a_ring_that_cannot_fdatasync_sends_this_round_and_the_next_inline(
    journal: Journal, syncs: Syncs, monkeypatch: pytest.MonkeyPatch, err: int
) -> None:
    """A partial io_uring (a sandbox's) refuses the operation: that says nothing about the
    disk, so the round is synced inline and acknowledged, the round behind it too, and every
    later round is inline without trying the ring again."""
    monkeypatch.setattr(journal_module, "AsyncSync", _completing_with(err))
    loop = HandLoop(journal)
    assert journal.syncs_in_background
    refused = append(journal, 1)
    journal.kick()
    behind = append(journal, 2)
    behind.kick()
    loop.until(lambda: refused.done() and behind.done())
    assert thrown(refused) is None and thrown(behind) is None
    assert not journal.syncs_in_background
    for n in range(3, 6):
        later = append(journal, n)
        later.kick()
        assert thrown(later) is None  # inline, in the kick
    assert len(syncs.submitted) == 1
    assert syncs.inline_of(journal._fd) == [threading.get_ident()] * 5
    assert journal.syncs == 5
    journal.stop_background()
    last = append(journal, 6)
    last.kick()
    assert thrown(last) is None


def test_sync_in_background_twice_is_refused(journal: Journal) -> None:
    HandLoop(journal)
    with pytest.raises(RuntimeError):
        journal.sync_in_background(lambda f: None)


# ---------------------------------------------------------------------------- stop, close


def test_stop_background_resolves_the_round_in_flight_then_rounds_are_inline(
    journal: Journal, syncs: Syncs
) -> None:
    loop = HandLoop(journal)
    in_flight = append(journal, 1)
    journal.kick()
    eventfd = loop.fd
    journal.stop_background()
    assert thrown(in_flight) is None
    assert journal.background_fd is None
    assert not os.path.exists(f"/proc/self/fd/{eventfd}") or "eventfd" not in os.readlink(
        f"/proc/self/fd/{eventfd}"
    )
    inline = append(journal, 2)
    journal.kick()
    assert thrown(inline) is None
    assert syncs.inline_of(journal._fd) == [threading.get_ident()]
    journal.synced()  # a late wake-up of the reader: nothing to do
    loop.run_deferred()
    assert journal.syncs == 2
    journal.stop_background()  # twice: nothing to stop

    HandLoop(journal)  # and back to the background
    again = append(journal, 3)
    journal.kick()
    assert not again.done()
    journal.stop_background()
    assert thrown(again) is None
    assert len(syncs.submitted) == 2


def test_stop_background_also_syncs_the_round_behind_the_one_in_flight(
    tmp_path: Path, syncs: Syncs
) -> None:
    """The round behind the one in flight was kicked (DurableWaits kicks once) while one was
    in flight: its start was left to that completion, which stop_background collects
    itself. It syncs that round too, inline; left pending, nobody would start it and the
    store's close would fail its writes ("journal closed") though the checkpoint made them
    durable."""
    journal = Journal(tmp_path, lambda: None, ring=RING)
    journal.begin()
    HandLoop(journal)
    in_flight = append(journal, 1)
    journal.kick()
    behind = append(journal, 2)
    behind.kick()
    begun = len(syncs.inline)  # the header's
    journal.stop_background()
    assert thrown(in_flight) is None
    assert thrown(behind) is None
    assert syncs.inline[begun:] == [(journal._fd, threading.get_ident())]
    journal.close()
    assert thrown(behind) is None


def test_a_checkpoint_while_a_round_is_in_flight_covers_the_round_behind_it(
    tmp_path: Path, syncs: Syncs
) -> None:
    """A checkpoint (another thread: the quarter-ring one, or a volume's destroy) syncs the
    journal and the volumes while a round is in flight: the round in flight still resolves
    from its completion, and the one behind, covered by the checkpoint's sync, resolves
    without another."""
    volume_syncs: list[int] = []
    journal = Journal(tmp_path, lambda: volume_syncs.append(1), ring=RING)
    journal.begin()
    try:
        loop = HandLoop(journal)
        in_flight = append(journal, 1)
        journal.kick()
        behind = append(journal, 2)
        checkpoint = threading.Thread(target=journal.checkpoint)
        checkpoint.start()
        checkpoint.join(10)
        assert volume_syncs == [1] and journal.checkpoints == 1 and journal.in_use == 0
        assert not in_flight.done()
        loop.until(in_flight.done)
        assert thrown(in_flight) is None
        loop.until(behind.done)
        assert thrown(behind) is None
        assert len(syncs.submitted) == 1
        assert read_entries(journal.path) == ([], journal._pos)
    finally:
        journal.stop_background()
        journal.close()


def test_rounds_in_the_background_go_on_through_checkpoints_and_laps(
    tmp_path: Path, syncs: Syncs
) -> None:
    """A small ring: the quarter-ring checkpoint thread runs again and again (and an append
    that finds the ring full checkpoints itself) while rounds are in flight; every write is
    acknowledged, and what the journal still holds replays in order."""
    journal = Journal(tmp_path, lambda: None, ring=4096)
    journal.begin()
    try:
        loop = HandLoop(journal)
        futures = []
        for n in range(400):
            future = journal.append(1, 0, n * 100, bytes([n % 251]) * 60)
            assert isinstance(future, RoundFuture)
            future.kick()
            futures.append(future)
            if n % 3 == 0:
                loop.turn(0)
        loop.until(lambda: all(f.done() for f in futures))
        assert all(thrown(f) is None for f in futures)
        assert journal.checkpoints > 10
        thread = journal._checkpointing
        if thread is not None:
            thread.join(10)
        entries, _ = read_entries(journal.path)
        assert [e.offset for e in entries] == sorted(e.offset for e in entries)
        assert all(e.record == bytes([e.offset // 100 % 251]) * 60 for e in entries)
    finally:
        journal.stop_background()
        journal.close()


def test_close_after_stop_background(tmp_path: Path) -> None:
    """The server's order: the loop stops the background, then the store closes the journal
    in a worker thread. Every round resolved, nothing left to replay."""
    journal = Journal(tmp_path, lambda: None, ring=RING)
    journal.begin()
    HandLoop(journal)
    acked = append(journal, 1)
    journal.kick()
    journal.stop_background()
    closing = threading.Thread(target=journal.close)
    closing.start()
    closing.join(10)
    assert not closing.is_alive()
    assert thrown(acked) is None
    assert journal._fd == -1
    assert read_entries(journal.path)[0] == []
    with pytest.raises(OSError, match="closed"):
        append(journal, 2)


def test_a_failed_inline_sync_fails_every_later_write_until_a_new_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same rule without a ring: the first fdatasync error fails its round and every
    later append; a journal opened again on the directory (a restart) appends and syncs."""
    journal = Journal(tmp_path, lambda: None, ring=RING)
    journal.begin()
    durable = append(journal, 1)
    journal.kick()
    assert thrown(durable) is None

    real = os.fdatasync
    calls: list[int] = []

    def failing(fd: int) -> None:
        calls.append(fd)
        raise OSError(errno.EIO, "injected EIO")

    monkeypatch.setattr(journal_module.os, "fdatasync", failing)
    lost = append(journal, 2)
    journal.kick()
    error = thrown(lost)
    assert isinstance(error, OSError) and error.errno == errno.EIO
    monkeypatch.setattr(journal_module.os, "fdatasync", real)
    with pytest.raises(OSError, match="until the volume server restarts"):
        append(journal, 3)
    assert len(calls) == 1
    journal.close()

    entries, end = read_entries(tmp_path / JOURNAL_FILE)
    assert [e.record for e in entries][:1] == [b"record 1"]
    again = Journal(tmp_path, lambda: None, ring=RING, start=end)
    again.begin()
    later = append(again, 4)
    again.kick()
    assert thrown(later) is None
    again.close()
