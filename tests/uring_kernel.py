"""Whether this kernel gives us an io_uring (storage/uring.py), for the tests that need a real
one; they skip, saying why, where it refuses (seccomp, `kernel.io_uring_disabled`, an old
kernel). The tests of the refusal itself fake it and run everywhere."""

from __future__ import annotations

import functools

import pytest

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
