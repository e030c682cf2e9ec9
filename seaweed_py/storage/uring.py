"""fdatasync without waiting for it: Linux io_uring, from Python, for the journal's rounds.

An fdatasync submitted to an io_uring with `IOSQE_ASYNC` runs in one of the kernel's io-wq
worker threads, on whichever core is free; its completion is posted to the ring and signalled
on an eventfd, which an event loop watches like a socket. The loop thus goes on reading and
appending the next round's writes while the disk syncs the last one, and the sync's CPU (about
0.1 ms of block-layer and virtio work per round on the development VM) leaves the loop's core.
Kernel AIO (`IOCB_CMD_FDSYNC`) was measured too: its sync runs in a per-CPU kworker queued on the
submitting core, which preempts the loop for the same CPU the inline sync takes. Measurements
and the choice: docs/internals.md, "Durable writes: the journal".

Only what an fdatasync needs is built: no SQPOLL, no registered files, one operation kind. The
rings are shared memory with the kernel; without SQPOLL the kernel reads the submission ring
only inside `io_uring_enter` and we read the completion ring only after the eventfd said so
(both system calls, hence full barriers), so plain loads and stores suffice on any architecture.

Layouts (include/uapi/linux/io_uring.h), little-endian:

`struct io_uring_params`, 120 bytes, filled by `io_uring_setup`:

| bytes | what |
|---|---|
| 0..27 | sq_entries, cq_entries, flags, sq_thread_cpu, sq_thread_idle, features, wq_fd (u32 each) |
| 28..39 | reserved |
| 40..79 | `io_sqring_offsets`: head, tail, ring_mask, ring_entries, flags, dropped, array, resv1 (u32), user_addr (u64) |
| 80..119 | `io_cqring_offsets`: head, tail, ring_mask, ring_entries, overflow, cqes, flags, resv1 (u32), user_addr (u64) |

A submission queue entry (64 bytes) for `IORING_OP_FSYNC`: opcode u8, flags u8, ioprio u16,
fd s32, off u64, addr u64, len u32, fsync_flags u32 (`IORING_FSYNC_DATASYNC`), user_data u64,
then 24 bytes of zeros. A completion queue entry (16 bytes): user_data u64, res s32 (0 or
-errno), flags u32.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import mmap
import os
import struct
import sys
from typing import Final

__all__ = ["AsyncSync"]

log = logging.getLogger(__name__)

_SYS_SETUP: Final = 425  # the same number on every architecture (new system calls share it)
_SYS_ENTER: Final = 426
_SYS_REGISTER: Final = 427
_REGISTER_EVENTFD: Final = 4
_OFF_SQ_RING: Final = 0
_OFF_CQ_RING: Final = 0x8000000
_OFF_SQES: Final = 0x10000000
_FEAT_SINGLE_MMAP: Final = 1
_FEAT_RW_CUR_POS: Final = 1 << 3  # came with IOSQE_ASYNC, in Linux 5.6
_OP_FSYNC: Final = 3
_FSYNC_DATASYNC: Final = 1
_SQE_ASYNC: Final = 1 << 4  # straight to an io-wq worker: an fsync would block inline
_ENTER_GETEVENTS: Final = 1

_PARAMS: Final = struct.Struct("<7I12x")
_RING_OFFSETS: Final = struct.Struct("<8IQ")
_SQE: Final = struct.Struct("<BBHiQQIIQ24x")
assert _SQE.size == 64
_CQE: Final = struct.Struct("<QiI")
_U32: Final = struct.Struct("<I")
_ENTRIES: Final = 8  # at most one sync in flight per journal and process; room to spare

_syscall = ctypes.CDLL(None, use_errno=True).syscall
_syscall.restype = ctypes.c_long


def _call(number: int, *args: object) -> int:
    result: int = _syscall(number, *args)
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


class AsyncSync:
    """One io_uring that runs fdatasyncs in the background (module docstring).

    `submit(fd, token)` queues an fdatasync of `fd`; when `fileno()` (an eventfd) is readable,
    `completed()` returns the `(token, error)` pairs that finished (`error` None or an
    OSError). Not thread-safe: one thread (an event loop's) submits and collects."""

    def __init__(self) -> None:
        """Raise OSError where the kernel has no io_uring, refuses one (seccomp, the
        `kernel.io_uring_disabled` sysctl, a memory-lock limit) or predates Linux 5.6."""
        if not sys.platform.startswith("linux"):
            raise OSError(errno.ENOSYS, "io_uring needs Linux")
        self.in_flight = 0
        self._event_fd = self._ring_fd = -1
        self._maps: list[mmap.mmap] = []
        params = ctypes.create_string_buffer(120)
        self._ring_fd = _call(_SYS_SETUP, ctypes.c_uint(_ENTRIES), params)
        try:
            if not _PARAMS.unpack_from(params.raw)[5] & _FEAT_RW_CUR_POS:
                # Linux 5.1-5.5 (Ubuntu 20.04's 5.4) fail an entry with a flag they do not
                # know: every round would complete with EINVAL and fail its writes.
                raise OSError(errno.ENOSYS, "io_uring before Linux 5.6 (no IOSQE_ASYNC)")
            self._map_rings(params.raw)
            self._event_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            event_fd = ctypes.c_int(self._event_fd)
            _call(_SYS_REGISTER, self._ring_fd, _REGISTER_EVENTFD, ctypes.byref(event_fd), 1)
        except BaseException:
            self.close()
            raise

    def _map_rings(self, params: bytes) -> None:
        sq_entries, cq_entries, _, _, _, features, _ = _PARAMS.unpack_from(params, 0)
        sq = _RING_OFFSETS.unpack_from(params, 40)
        cq = _RING_OFFSETS.unpack_from(params, 80)
        sq_size = sq[6] + sq_entries * 4
        cq_size = cq[5] + cq_entries * _CQE.size
        prot = mmap.PROT_READ | mmap.PROT_WRITE
        if features & _FEAT_SINGLE_MMAP:
            sq_map = cq_map = mmap.mmap(self._ring_fd, max(sq_size, cq_size), prot=prot)
            self._maps.append(sq_map)
        else:
            sq_map = mmap.mmap(self._ring_fd, sq_size, prot=prot, offset=_OFF_SQ_RING)
            self._maps.append(sq_map)
            cq_map = mmap.mmap(self._ring_fd, cq_size, prot=prot, offset=_OFF_CQ_RING)
            self._maps.append(cq_map)
        sqes = mmap.mmap(self._ring_fd, sq_entries * _SQE.size, prot=prot, offset=_OFF_SQES)
        self._maps.append(sqes)
        self._sq, self._cq, self._sqes = sq_map, cq_map, sqes
        self._sq_tail, self._sq_array = sq[1], sq[6]
        self._sq_mask = _U32.unpack_from(sq_map, sq[2])[0]
        self._cq_head, self._cq_tail, self._cqes = cq[0], cq[1], cq[5]
        self._cq_mask = _U32.unpack_from(cq_map, cq[2])[0]

    def fileno(self) -> int:
        """The eventfd that turns readable when a sync completed."""
        return self._event_fd

    def submit(self, fd: int, token: int) -> None:
        """Start an fdatasync of `fd`; it covers every write to `fd` finished before this call.
        OSError if the kernel would not take it (nothing is then in flight for it)."""
        if not self._maps:
            raise OSError(errno.EBADF, "io_uring is closed")
        if self.in_flight >= _ENTRIES:
            raise OSError(errno.EBUSY, "too many syncs in flight")
        tail = _U32.unpack_from(self._sq, self._sq_tail)[0]
        index = tail & self._sq_mask
        _SQE.pack_into(
            self._sqes, index * _SQE.size, _OP_FSYNC, _SQE_ASYNC, 0, fd, 0, 0, 0,
            _FSYNC_DATASYNC, token,
        )  # fmt: skip
        _U32.pack_into(self._sq, self._sq_array + index * 4, index)
        _U32.pack_into(self._sq, self._sq_tail, (tail + 1) & 0xFFFFFFFF)
        try:
            taken = _call(_SYS_ENTER, self._ring_fd, 1, 0, 0, None, 0)
        except OSError:
            _U32.pack_into(self._sq, self._sq_tail, tail)  # take the entry back
            raise
        if taken != 1:
            _U32.pack_into(self._sq, self._sq_tail, tail)
            raise OSError(errno.EAGAIN, "io_uring took no submission")
        self.in_flight += 1

    def completed(self) -> list[tuple[int, OSError | None]]:
        """The syncs that finished since the last call, as (token, error)."""
        if not self._maps:
            return []  # closed: what was in flight was waited for and dropped
        with contextlib.suppress(BlockingIOError):  # the count is only a wake-up
            os.eventfd_read(self._event_fd)
        return self._drain()

    def wait(self) -> list[tuple[int, OSError | None]]:
        """Block until every sync in flight has finished; their (token, error) pairs."""
        done: list[tuple[int, OSError | None]] = []
        while self.in_flight:
            # A signal (SIGTERM, a worker's SIGCHLD) ends the wait early: ctypes does not retry
            # as the os module does (PEP 475), and the syncs are still in flight.
            with contextlib.suppress(InterruptedError):
                _call(_SYS_ENTER, self._ring_fd, 0, 1, _ENTER_GETEVENTS, None, 0)
            done.extend(self.completed())
        return done

    def _drain(self) -> list[tuple[int, OSError | None]]:
        cq = self._cq
        head = _U32.unpack_from(cq, self._cq_head)[0]
        tail = _U32.unpack_from(cq, self._cq_tail)[0]
        done: list[tuple[int, OSError | None]] = []
        while head != tail:
            token, res, _ = _CQE.unpack_from(cq, self._cqes + (head & self._cq_mask) * _CQE.size)
            done.append((token, None if res >= 0 else OSError(-res, os.strerror(-res))))
            head = (head + 1) & 0xFFFFFFFF
        _U32.pack_into(cq, self._cq_head, head)
        self.in_flight -= len(done)
        return done

    def close(self) -> None:
        """Wait for what is in flight (its results are dropped), then free the ring."""
        if self.in_flight and self._maps:
            try:
                self.wait()
            except OSError as exc:
                log.error("waiting for background syncs failed: %s", exc)
        for m in self._maps:
            m.close()
        self._maps = []
        for fd in (self._event_fd, self._ring_fd):
            if fd >= 0:
                os.close(fd)
        self._event_fd = self._ring_fd = -1
        self.in_flight = 0
