"""Disk faults for storage and volume-server tests, injected in-process: a write that fails
with a chosen errno on one file descriptor (`os.pwrite` is how volumes write), a disk whose
free space the test sets (the store's `disk_usage` probe), and a byte that rots in place."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def fail_writes_to(monkeypatch: pytest.MonkeyPatch, fd: int, error: int, message: str) -> None:
    """Make every `os.pwrite` to `fd` fail with `OSError(error, message)` until
    `monkeypatch.undo()`; writes to other files go through."""
    real = os.pwrite

    def pwrite(target: int, data: bytes, offset: int) -> int:
        if target == fd:
            raise OSError(error, message)
        return real(target, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)


class FakeDisk:
    """`shutil.disk_usage` of a disk whose free space the test sets; counts the probes."""

    def __init__(self, total: int = 100 << 30) -> None:
        self.total = total
        self.free = total
        self.probes = 0

    def __call__(self, path: object) -> tuple[int, int, int]:
        self.probes += 1
        return self.total, self.total - self.free, self.free


def flip_byte(path: Path, at: int) -> None:
    """Flip the bits of the byte at `at` in place (bit rot), durably."""
    fd = os.open(path, os.O_RDWR)
    try:
        os.pwrite(fd, bytes([os.pread(fd, 1, at)[0] ^ 0x5A]), at)
        os.fsync(fd)
    finally:
        os.close(fd)
