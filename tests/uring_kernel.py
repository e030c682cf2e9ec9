"""Whether this kernel gives us an io_uring (storage/uring.py), for the tests that need a real
one; they skip, saying why, where it refuses (seccomp, `kernel.io_uring_disabled`, an old
kernel). The tests of the refusal itself fake it (`failing_syscall`) and run everywhere."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import select
from collections.abc import Callable
from pathlib import Path

import pytest

from seaweed_py.storage import uring
from seaweed_py.storage.uring import AsyncSync


@functools.cache
def io_uring_refusal() -> str | None:
    """Why `AsyncSync()` fails here, or None if it works."""
    try:
        AsyncSync().close()
    except OSError as exc:
        return f"this kernel refuses io_uring: {exc}"
    return None


needs_io_uring = pytest.mark.skipif(io_uring_refusal() is not None, reason=f"{io_uring_refusal()}")


def failing_syscall(number: int, err: int) -> Callable[..., int]:
    """`uring._syscall` with system call `number` failing with `err` as libc reports it (-1
    and errno); the others go through. Install it with monkeypatch."""
    real = uring._syscall

    def syscall(n: int, *args: object) -> int:
        if n == number:
            ctypes.set_errno(err)
            return -1
        result: int = real(n, *args)
        return result

    return syscall


def refuse_io_uring(monkeypatch: pytest.MonkeyPatch, err: int) -> None:
    """Make `io_uring_setup` fail with `err`, as seccomp (EPERM) or an old kernel (ENOSYS)."""
    monkeypatch.setattr(uring, "_syscall", failing_syscall(uring._SYS_SETUP, err))


def sync_rings(pid: int) -> list[int]:
    """The io_urings of process `pid` sized as storage/uring.py makes them (uvloop's own are
    larger), each as the count of completions posted to it (from `/proc/<pid>/fdinfo`; the
    descriptors an mmap of a ring duplicates count once)."""
    rings: dict[str, int] = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError, KeyError, ValueError):  # closed meanwhile
            if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:[io_uring]":
                continue
            text = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
            info = dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)
            if int(info["SqMask"], 16) + 1 == uring._ENTRIES:
                rings[info["ino"]] = int(info["CqTail"])
    return list(rings.values())


def readable(fd: int, timeout: float) -> bool:
    """Whether `fd` turns readable within `timeout` seconds, as an event loop would see it
    (poll: `select` refuses descriptors above 1023, which a long test run reaches)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(timeout * 1000))
