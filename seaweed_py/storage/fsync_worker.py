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

`key` is the server's own descriptor number for the file. An unknown key answers EBADF. The
helper exits when the server's end closes (the server exited or stopped the helper).
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import sys

__all__ = ["DONE", "FORGET", "OPEN", "SYNC", "serve"]

OPEN, FORGET, SYNC, DONE = b"O", b"F", b"S", b"D"
_KEY = struct.Struct("<i")
_ROUND = struct.Struct("<Q")
_RESULT = struct.Struct("<ii")
_MAX_PACKET = 1 << 16


def serve(sock: socket.socket) -> None:
    files: dict[int, int] = {}  # key -> the helper's descriptor of that file
    while True:
        msg, fds, _flags, _addr = socket.recv_fds(sock, _MAX_PACKET, 1)
        if not msg:
            return
        kind = msg[:1]
        if kind == SYNC:
            answer = bytearray(DONE)
            answer += msg[1 : 1 + _ROUND.size]
            for (key,) in _KEY.iter_unpack(msg[1 + _ROUND.size :]):
                answer += _RESULT.pack(key, _sync(files.get(key)))
            sock.send(answer)
            continue
        (key,) = _KEY.unpack_from(msg, 1)
        old = files.pop(key, None)
        if old is not None:
            os.close(old)
        if kind == OPEN and fds:
            files[key] = fds.pop()
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
