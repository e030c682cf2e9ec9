"""The fsync helper process: fdatasyncs files for a volume server (storage/fsync_helper.py).

Run as `python -m seaweed_py.storage.fsync_worker FD`, FD being the helper's end of an
AF_UNIX SOCK_SEQPACKET pair (one message per packet). It imports nothing of weedpy: it must
start fast and stay small, and it holds no Python state the server shares.

Messages, little-endian:

    server -> helper
      b"O" key:i32            with SCM_RIGHTS [one descriptor]: sync that file as `key`
      b"F" key:i32            close the file known as `key`
      b"S" round:u64 key:i32*  fdatasync each file, in order, then answer
    helper -> server
      b"D" round:u64 (key:i32 errno:i32)*   one pair per key of the round; errno 0 = synced

`key` is the server's own descriptor number for the file. An unknown key answers EBADF.
Rounds run in a few threads at once (the server bounds how many it sends), so answers may come
out of order. The helper exits when the server's end closes (the server exited or stopped it).
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

__all__ = ["DONE", "FORGET", "OPEN", "SYNC", "serve"]

OPEN, FORGET, SYNC, DONE = b"O", b"F", b"S", b"D"
_KEY = struct.Struct("<i")
_ROUND = struct.Struct("<Q")
_RESULT = struct.Struct("<ii")
_MAX_PACKET = 1 << 16


class _Files:
    """The files known to the helper. A file forgotten while a round syncs it is closed when
    that round is done: its descriptor number must not be reused under the round's feet."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fds: dict[int, int] = {}  # key -> the helper's descriptor of that file
        self._busy: dict[int, int] = {}  # descriptor -> rounds syncing it now
        self._doomed: set[int] = set()  # forgotten while busy

    def put(self, key: int, fd: int | None) -> None:
        with self._lock:
            old = self._fds.pop(key, None)
            if fd is not None:
                self._fds[key] = fd
            if old is not None:
                if old in self._busy:
                    self._doomed.add(old)
                else:
                    os.close(old)

    def take(self, keys: list[int]) -> list[int | None]:
        with self._lock:
            fds = [self._fds.get(key) for key in keys]
            for fd in fds:
                if fd is not None:
                    self._busy[fd] = self._busy.get(fd, 0) + 1
            return fds

    def give_back(self, fds: list[int | None]) -> None:
        with self._lock:
            for fd in fds:
                if fd is None:
                    continue
                left = self._busy.pop(fd) - 1
                if left:
                    self._busy[fd] = left
                elif fd in self._doomed:
                    self._doomed.discard(fd)
                    os.close(fd)


def serve(sock: socket.socket, workers: int = 4) -> None:
    files = _Files()
    pool = ThreadPoolExecutor(workers, thread_name_prefix="fsync")

    def run_round(msg: bytes) -> None:
        keys = [key for (key,) in _KEY.iter_unpack(msg[1 + _ROUND.size :])]
        fds = files.take(keys)
        try:
            answer = bytearray(DONE)
            answer += msg[1 : 1 + _ROUND.size]
            for key, fd in zip(keys, fds, strict=True):
                answer += _RESULT.pack(key, _sync(fd))
        finally:
            files.give_back(fds)
        with contextlib.suppress(OSError):  # the server is gone: the main loop sees EOF
            sock.send(answer)

    while True:
        msg, fds, _flags, _addr = socket.recv_fds(sock, _MAX_PACKET, 1)
        if not msg:
            pool.shutdown(wait=True)
            return
        kind = msg[:1]
        if kind == SYNC:
            pool.submit(run_round, msg)
            continue
        (key,) = _KEY.unpack_from(msg, 1)
        files.put(key, fds.pop() if kind == OPEN and fds else None)
        for stray in fds:
            os.close(stray)


def _sync(fd: int | None) -> int:
    if fd is None:
        return errno.EBADF
    try:
        os.fdatasync(fd)
    except OSError as exc:
        return exc.errno or errno.EIO
    return 0


if __name__ == "__main__":
    serve(socket.socket(fileno=int(sys.argv[1])))
