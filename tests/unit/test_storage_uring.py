"""`AsyncSync` (storage/uring.py): fdatasyncs through a real io_uring, tokens in and out, bad
descriptors, a full ring, a ring closed with syncs in flight, and kernels that refuse io_uring
(faked by failing its system calls)."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import socket
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from seaweed_py.storage import uring
from seaweed_py.storage.journal import Journal
from seaweed_py.storage.uring import AsyncSync
from tests.uring_kernel import failing_syscall, needs_io_uring, readable, refuse_io_uring

CAPACITY = uring._ENTRIES


@pytest.fixture
def ring() -> Iterator[AsyncSync]:
    r = AsyncSync()
    try:
        yield r
    finally:
        r.close()


def dirty_file(tmp_path: Path, name: str) -> int:
    fd = os.open(tmp_path / name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    os.pwrite(fd, name.encode() * 100, 0)
    return fd


def collect(r: AsyncSync, count: int, timeout: float = 10.0) -> list[tuple[int, OSError | None]]:
    """Completions gathered as an event loop would: poll the eventfd, then `completed()`."""
    done: list[tuple[int, OSError | None]] = []
    while len(done) < count:
        assert readable(r.fileno(), timeout), (
            f"no completion within {timeout} s ({len(done)} of {count})"
        )
        done.extend(r.completed())
    return done


def open_fds() -> set[str]:
    """What this process's descriptors point to (a leak shows up as a new io_uring/eventfd)."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor, gone
            found.add(f"{fd}:{os.readlink(f'/proc/self/fd/{fd}')}")
    return found


def inline_errno(fd: int) -> int | None:
    """What a plain fdatasync of `fd` says: the ring must say the same."""
    if fd < 0:
        return errno.EBADF  # what the kernel says; Python refuses such a number before
    try:
        os.fdatasync(fd)
    except OSError as exc:
        return exc.errno
    return None


# ---------------------------------------------------------------------------- round trips


@needs_io_uring
def test_a_sync_completes_once_with_its_token(ring: AsyncSync, tmp_path: Path) -> None:
    fd = dirty_file(tmp_path, "a")
    try:
        assert ring.completed() == []  # nothing submitted: nothing done, and no blocking
        ring.submit(fd, 12345)
        assert ring.in_flight == 1
        assert collect(ring, 1) == [(12345, None)]
        assert ring.in_flight == 0
        assert ring.completed() == []  # reported once
        assert ring.wait() == []  # nothing in flight: returns at once
    finally:
        os.close(fd)


@needs_io_uring
def test_a_full_ring_of_syncs_comes_back_each_once_in_any_order(
    ring: AsyncSync, tmp_path: Path
) -> None:
    """Eight syncs in flight over eight files, tokens at both ends of their range: each
    completes exactly once with its token; io-wq runs them in parallel, so the order is the
    kernel's (the journal keeps one in flight and needs none)."""
    fds = [dirty_file(tmp_path, f"f{i}") for i in range(CAPACITY)]
    tokens = [0, 1, 2**32, 2**63, 2**64 - 1, 7, 8, 9]
    try:
        for fd, token in zip(fds, tokens, strict=True):
            ring.submit(fd, token)
        assert ring.in_flight == CAPACITY
        done = collect(ring, 1)
        done += ring.wait()
        assert sorted(t for t, _ in done) == sorted(tokens)
        assert all(error is None for _, error in done)
        assert ring.in_flight == 0
        assert ring.completed() == []
    finally:
        for fd in fds:
            os.close(fd)


@needs_io_uring
def test_rounds_one_after_another_reuse_the_ring_past_its_size(
    ring: AsyncSync, tmp_path: Path
) -> None:
    """The journal's pattern: one sync in flight, collected, the next submitted; many more
    rounds than the ring has entries (the ring indices wrap)."""
    fd = dirty_file(tmp_path, "a")
    try:
        for token in range(5 * CAPACITY + 3):
            os.pwrite(fd, b"%d" % token, 0)
            ring.submit(fd, token)
            assert collect(ring, 1) == [(token, None)]
        assert ring.in_flight == 0
    finally:
        os.close(fd)


@needs_io_uring
def test_submit_beyond_capacity_raises_and_the_ring_goes_on(
    ring: AsyncSync, tmp_path: Path
) -> None:
    """Completions not yet collected still count as in flight: the ninth submit is refused
    with EBUSY, takes no slot, and the ring works once they are collected."""
    fd = dirty_file(tmp_path, "a")
    try:
        for token in range(CAPACITY):
            ring.submit(fd, token)
        with pytest.raises(OSError) as refused:
            ring.submit(fd, 99)
        assert refused.value.errno == errno.EBUSY
        assert ring.in_flight == CAPACITY
        assert sorted(t for t, _ in ring.wait()) == list(range(CAPACITY))
        ring.submit(fd, 100)
        assert ring.wait() == [(100, None)]
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------- bad descriptors


def _closed_fd(tmp_path: Path, stack: contextlib.ExitStack) -> int:
    fd = dirty_file(tmp_path, "gone")
    os.close(fd)
    return fd


def _directory_fd(tmp_path: Path, stack: contextlib.ExitStack) -> int:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    stack.callback(os.close, fd)
    return fd


def _pipe_fd(tmp_path: Path, stack: contextlib.ExitStack) -> int:
    r, w = os.pipe()
    stack.callback(os.close, r)
    stack.callback(os.close, w)
    return r


def _socket_fd(tmp_path: Path, stack: contextlib.ExitStack) -> int:
    a, b = socket.socketpair()
    stack.enter_context(a)
    stack.enter_context(b)
    return a.fileno()


def _path_only_fd(tmp_path: Path, stack: contextlib.ExitStack) -> int:
    fd = os.open(tmp_path, os.O_PATH)
    stack.callback(os.close, fd)
    return fd


def _eventfd(tmp_path: Path, stack: contextlib.ExitStack) -> int:
    fd = os.eventfd(0)
    stack.callback(os.close, fd)
    return fd


def _minus_one(tmp_path: Path, stack: contextlib.ExitStack) -> int:
    return -1


@needs_io_uring
@pytest.mark.parametrize(
    "make",
    [_closed_fd, _directory_fd, _pipe_fd, _socket_fd, _path_only_fd, _eventfd, _minus_one],
    ids=["closed", "directory", "pipe", "socket", "O_PATH", "eventfd", "minus-one"],
)
def test_a_bad_descriptor_completes_as_an_inline_fdatasync_would(
    ring: AsyncSync, tmp_path: Path, make: Callable[[Path, contextlib.ExitStack], int]
) -> None:
    """Whatever the descriptor, the ring answers what `os.fdatasync` answers (EBADF, EINVAL,
    or success for a directory), as a completion or as a submit OSError with nothing in
    flight; the count stays right and the ring serves a good file afterwards."""
    with contextlib.ExitStack() as stack:
        fd = make(tmp_path, stack)
        good = dirty_file(tmp_path, "good")
        stack.callback(os.close, good)
        expected = inline_errno(fd)
        try:
            ring.submit(fd, 7)
        except OSError as exc:
            assert ring.in_flight == 0
            assert exc.errno == expected
        else:
            assert ring.in_flight == 1
            ((token, error),) = collect(ring, 1)
            assert token == 7
            assert (None if error is None else error.errno) == expected
            assert ring.in_flight == 0
        ring.submit(good, 8)
        assert collect(ring, 1) == [(8, None)]


# ---------------------------------------------------------------------------- close


@needs_io_uring
def test_close_with_syncs_in_flight_waits_and_frees_everything(tmp_path: Path) -> None:
    before = open_fds()
    ring = AsyncSync()
    fds = [dirty_file(tmp_path, f"f{i}") for i in range(3)]
    try:
        for i, fd in enumerate(fds):
            ring.submit(fd, i)
        ring.close()
        assert ring.in_flight == 0
        assert ring.fileno() == -1
        ring.close()  # twice: nothing left to free, no error
    finally:
        for fd in fds:
            os.close(fd)
    assert open_fds() == before


@needs_io_uring
def test_a_closed_ring_refuses_submits_with_an_oserror(tmp_path: Path) -> None:
    """The journal falls back to an inline sync on OSError: a closed ring must raise that,
    not something the fallback lets through."""
    ring = AsyncSync()
    ring.close()
    fd = dirty_file(tmp_path, "a")
    try:
        with pytest.raises(OSError) as refused:
            ring.submit(fd, 1)
        assert refused.value.errno == errno.EBADF
        assert ring.in_flight == 0
        assert ring.completed() == []
        assert ring.wait() == []
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------- faked kernels


@pytest.mark.parametrize("err", [errno.EPERM, errno.ENOSYS, errno.ENOMEM, errno.EINVAL])
def test_a_kernel_refusing_io_uring_setup_raises_oserror_and_leaks_nothing(
    monkeypatch: pytest.MonkeyPatch, err: int
) -> None:
    """seccomp (EPERM), an old kernel (ENOSYS), a memory-lock limit (ENOMEM), a kernel that
    knows no flag we pass (EINVAL): `AsyncSync()` raises that OSError, and nothing stays
    open."""
    refuse_io_uring(monkeypatch, err)
    before = open_fds()
    with pytest.raises(OSError) as refused:
        AsyncSync()
    assert refused.value.errno == err
    assert open_fds() == before


@needs_io_uring
def test_a_kernel_before_5_6_is_refused_its_entries_would_fail(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Linux 5.1-5.5 have io_uring but not IOSQE_ASYNC: every fdatasync would complete with
    EINVAL, and every write with it. Such a kernel announces only the features below
    IORING_FEAT_RW_CUR_POS (5.6): refused (ENOSYS), and the journal's rounds stay inline."""
    real = uring._syscall

    def syscall(n: int, *args: object) -> int:
        result: int = real(n, *args)
        if n == uring._SYS_SETUP and result >= 0:
            params = args[1]
            assert isinstance(params, ctypes.Array)
            struct.pack_into("<I", params, 20, 0b111)  # features of Linux 5.5
        return result

    monkeypatch.setattr(uring, "_syscall", syscall)
    before = open_fds()
    with pytest.raises(OSError) as refused:
        AsyncSync()
    assert refused.value.errno == errno.ENOSYS
    assert open_fds() == before
    journal = Journal(tmp_path, lambda: None, ring=1 << 16)
    try:
        assert journal.sync_in_background(lambda f: None) is None
    finally:
        journal.close()


@needs_io_uring
def test_a_failed_eventfd_registration_closes_the_ring_it_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Setup and the maps succeed, the registration fails: the ring, its maps and the eventfd
    are freed before the error goes up."""
    monkeypatch.setattr(uring, "_syscall", failing_syscall(uring._SYS_REGISTER, errno.EPERM))
    before = open_fds()
    with pytest.raises(OSError) as refused:
        AsyncSync()
    assert refused.value.errno == errno.EPERM
    assert open_fds() == before


def _enter_failing(fail: Callable[[tuple[object, ...]], int | None]) -> Callable[..., int]:
    """The module's `_call` with `io_uring_enter` failing when `fail(args)` names an errno."""
    real = uring._call

    def call(number: int, *args: object) -> int:
        if number == uring._SYS_ENTER:
            err = fail(args)
            if err is not None:
                raise OSError(err, os.strerror(err))
        return real(number, *args)

    return call


@needs_io_uring
def test_a_refused_submission_is_taken_back(
    ring: AsyncSync, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`io_uring_enter` refuses the entry (EAGAIN: no memory for it; EBUSY: completions
    overflowing): submit raises, nothing is in flight, and the entry left in the ring is not
    submitted later under another sync's name."""
    fd = dirty_file(tmp_path, "a")
    refusals = [errno.EAGAIN, errno.EBUSY]
    monkeypatch.setattr(
        uring,
        "_call",
        _enter_failing(lambda args: refusals.pop(0) if args[1] == 1 and refusals else None),
    )
    try:
        for err in (errno.EAGAIN, errno.EBUSY):
            with pytest.raises(OSError) as refused:
                ring.submit(fd, 1)
            assert refused.value.errno == err
            assert ring.in_flight == 0
        ring.submit(fd, 2)
        assert collect(ring, 1) == [(2, None)]  # one completion: token 1 never went in
        assert ring.wait() == []
    finally:
        os.close(fd)


@needs_io_uring
def test_a_submission_the_kernel_does_not_take_is_taken_back(
    ring: AsyncSync, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`io_uring_enter` returns 0 (took nothing): EAGAIN, and the next submit goes in alone."""
    fd = dirty_file(tmp_path, "a")
    real = uring._call
    took_nothing = [True]

    def call(number: int, *args: object) -> int:
        if number == uring._SYS_ENTER and args[1] == 1 and took_nothing:
            took_nothing.clear()
            return 0
        return real(number, *args)

    monkeypatch.setattr(uring, "_call", call)
    try:
        with pytest.raises(OSError) as refused:
            ring.submit(fd, 1)
        assert refused.value.errno == errno.EAGAIN
        assert ring.in_flight == 0
        ring.submit(fd, 2)
        assert ring.wait() == [(2, None)]
    finally:
        os.close(fd)


@needs_io_uring
def test_wait_goes_on_after_a_signal_interrupts_it(
    ring: AsyncSync, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signal (SIGTERM to the server, SIGCHLD of a worker) makes `io_uring_enter` return
    EINTR while it waits: the wait goes on, and the sync's completion is not lost."""
    fd = dirty_file(tmp_path, "a")
    interrupts = [errno.EINTR, errno.EINTR]
    monkeypatch.setattr(
        uring,
        "_call",
        _enter_failing(lambda args: interrupts.pop() if args[3] and interrupts else None),
    )
    try:
        ring.submit(fd, 5)
        assert ring.wait() == [(5, None)]
        assert not interrupts
        assert ring.in_flight == 0
    finally:
        os.close(fd)


@pytest.mark.parametrize("err", [errno.EPERM, errno.ENOSYS])
def test_without_io_uring_the_journal_syncs_its_rounds_inline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, err: int
) -> None:
    """`sync_in_background` answers None where the kernel refuses io_uring; the rounds the
    same thread kicks are synced right there, and resolve."""
    refuse_io_uring(monkeypatch, err)
    journal = Journal(tmp_path, lambda: None, ring=1 << 16)
    journal.begin()
    synced: list[int] = []
    real = os.fdatasync

    def fdatasync(fd: int) -> None:
        synced.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    try:
        deferred: list[Callable[[], None]] = []
        assert journal.sync_in_background(deferred.append) is None
        assert journal.background_fd is None
        for round_ in range(3):
            future = journal.append(1, 0, round_ * 100, b"record %d" % round_)
            journal.kick()
            assert future.done() and future.exception() is None
        assert journal.syncs == 3
        assert synced == [journal._fd] * 3
        assert deferred == []
        journal.stop_background()  # nothing to stop: harmless
    finally:
        journal.close()
