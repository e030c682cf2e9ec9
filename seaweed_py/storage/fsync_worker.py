"""The fsync helper process: fdatasyncs files for a volume server (storage/fsync_helper.py).

Run as `python -m seaweed_py.storage.fsync_worker FD THREADS`, FD being the helper's end of an
AF_UNIX SOCK_SEQPACKET pair (one message per packet). It imports nothing of weedpy: it must
start fast and stay small, and it shares no state with the server.

Messages, little-endian:

    server -> helper   b"S" round:u64 key:i32*    with SCM_RIGHTS: one descriptor per key
    helper -> server   b"D" round:u64 (key:i32 errno:i32)*    errno 0 = synced

A round carries its files with it: the helper fdatasyncs each descriptor it received and closes
it. It keeps nothing open between rounds, so a file the server deletes is never held open
here, and rounds need no order among themselves. `key` is the server's descriptor number of
the file, echoed back so the server knows which file failed; a key whose descriptor did not
arrive answers EBADF.

THREADS threads (as many as the server lets run at once) each wait for a round on the socket
(the kernel hands every packet to one of them), so a round costs one wake-up. The helper exits when
the server's end closes (the server exited or stopped it).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import struct
import sys
import threading

__all__ = ["DONE", "MAX_FDS", "SYNC", "decode_answer", "encode_round", "serve"]

SYNC, DONE = b"S", b"D"
MAX_FDS = 250
"""Descriptors per round: Linux passes at most 253 in one message (SCM_MAX_FD)."""
_HEAD = struct.Struct("<cQ")
_KEY = struct.Struct("<i")
_RESULT = struct.Struct("<ii")
_MAX_PACKET = 1 << 16


def encode_round(round_id: int, keys: list[int]) -> bytes:
    """The server's round message; the descriptors travel beside it (SCM_RIGHTS)."""
    return _HEAD.pack(SYNC, round_id) + b"".join(_KEY.pack(key) for key in keys)


def _decode_round(msg: bytes) -> tuple[int, list[int]]:
    _, round_id = _HEAD.unpack_from(msg)
    return round_id, [key for (key,) in _KEY.iter_unpack(msg[_HEAD.size :])]


def _encode_answer(round_id: int, results: list[tuple[int, int]]) -> bytes:
    return _HEAD.pack(DONE, round_id) + b"".join(_RESULT.pack(*r) for r in results)


def decode_answer(msg: bytes) -> tuple[int, list[tuple[int, int]]]:
    """(round id, [(key, errno)]) of the helper's answer; ValueError if it is not one."""
    try:
        kind, round_id = _HEAD.unpack_from(msg)
        results = list(_RESULT.iter_unpack(msg[_HEAD.size :]))
    except struct.error as exc:
        raise ValueError(f"malformed answer {msg[: _HEAD.size]!r}: {exc}") from None
    if kind != DONE:
        raise ValueError(f"unexpected answer {msg[: _HEAD.size]!r}")
    return round_id, results


def serve(sock: socket.socket, threads: int = 1) -> None:
    """Serve rounds from `threads` threads until the server's end closes."""
    workers = [
        threading.Thread(target=_rounds, args=(sock,), daemon=True) for _ in range(threads - 1)
    ]
    for worker in workers:
        worker.start()
    _rounds(sock)
    for worker in workers:
        worker.join()


def _rounds(sock: socket.socket) -> None:
    while True:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(sock, _MAX_PACKET, MAX_FDS + 3)
        except OSError:
            return
        if not msg:
            return
        try:
            round_id, keys = _decode_round(msg)
            answer = _encode_answer(
                round_id,
                [(key, _sync(fds[i] if i < len(fds) else None)) for i, key in enumerate(keys)],
            )
        finally:
            for fd in fds:
                os.close(fd)
        with contextlib.suppress(OSError):  # the server is gone: every thread sees EOF next
            sock.send(answer)


def _sync(fd: int | None) -> int:
    if fd is None:
        return errno.EBADF
    try:
        os.fdatasync(fd)
    except OSError as exc:
        return exc.errno or errno.EIO
    return 0


if __name__ == "__main__":
    # A Ctrl-C in a terminal, or a service manager stopping the whole group, signals the helper
    # too: it must outlive the server's graceful stop, which still syncs, and it leaves on its
    # own once the server's end of the socket closes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    serve(socket.socket(fileno=int(sys.argv[1])), int(sys.argv[2]) if len(sys.argv) > 2 else 1)
