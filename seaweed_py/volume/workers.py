"""`weedpy volume -workers=N`: one volume server served by N processes, one public port.

The process the operator started is worker 0, the leader: it loads the store (journal
replay, crash repair), shares it (storage/shared.py), listens, and starts workers 1..N-1 as
`python -m seaweed_py volume <the same flags>` with `WEEDPY_VOLUME_WORKER=<index>:<port>:
<public port>:<leader pid>` in their environment. Each worker attaches to the shared store and
listens on the same port with SO_REUSEPORT, so the kernel spreads connections over the
workers; every worker serves reads, writes, deletes and admin calls for every volume. Only the
leader heartbeats: the master sees one data node.

The leader checks its workers every `_WATCH_SECONDS` and starts a new one in place of any
that exited (and calls `on_exit` with the dead one's pid: the volume server takes once the
lock of each volume it held, storage/store.py `recover_from`); a worker dies with its leader (`PR_SET_PDEATHSIG`), so a kill -9 of the leader is
a kill -9 of the whole server (the journal keeps every acknowledged write). A graceful stop
stops the workers first (each drains its connections and closes its volumes), then the leader.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final

__all__ = ["WORKER_ENV", "WorkerRole", "Workers", "worker_role"]

log = logging.getLogger(__name__)

WORKER_ENV: Final = "WEEDPY_VOLUME_WORKER"
_WATCH_SECONDS: Final = 0.2
_STOP_SECONDS: Final = 30.0
_PR_SET_PDEATHSIG: Final = 1


@dataclass(frozen=True)
class WorkerRole:
    """What a worker the leader started is told."""

    index: int
    port: int
    public_port: int


def worker_role() -> WorkerRole | None:
    """This process's role if the leader started it (and it outlives no leader), else None.
    Reads and removes `WEEDPY_VOLUME_WORKER`, so processes this one starts are not workers."""
    text = os.environ.pop(WORKER_ENV, None)
    if text is None:
        return None
    try:
        index, port, public_port, leader = (int(part) for part in text.split(":"))
    except ValueError:
        raise SystemExit(f"weedpy volume: bad {WORKER_ENV}={text!r}") from None
    _die_with(leader)
    return WorkerRole(index, port, public_port)


def _die_with(leader: int) -> None:
    """Be killed when the leader dies, however it dies."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != leader:  # it died before the line above took effect
        os._exit(1)


class Workers:
    """The leader's workers: started, watched and restarted, stopped."""

    def __init__(self, count: int, argv: Sequence[str]) -> None:
        self.count = count
        # -P: the worker runs this installation's code, never a `seaweed_py` that happens to
        # sit in the directory the server was started from.
        self._argv = [sys.executable, "-P", "-m", "seaweed_py", "volume", *argv]
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._watch: asyncio.Task[None] | None = None
        self._port = self._public_port = 0
        self.restarts = 0
        self.on_exit: Callable[[int], Awaitable[None]] | None = None
        """Called with the pid of each worker that exited (after its replacement started)."""

    @property
    def pids(self) -> dict[int, int]:
        """Worker index -> pid of the workers running now."""
        return {k: p.pid for k, p in self._procs.items() if p.poll() is None}

    async def start(self, port: int, public_port: int) -> None:
        """Start workers 1..count-1 on `port` (and `public_port`, 0: none)."""
        self._port, self._public_port = port, public_port
        for index in range(1, self.count):
            self._spawn(index)
        self._watch = asyncio.create_task(self._watch_loop(), name="volume workers")

    def _spawn(self, index: int) -> None:
        role = f"{index}:{self._port}:{self._public_port}:{os.getpid()}"
        self._procs[index] = subprocess.Popen(
            self._argv, env={**os.environ, WORKER_ENV: role}, stdin=subprocess.DEVNULL
        )

    async def _watch_loop(self) -> None:
        while True:
            await asyncio.sleep(_WATCH_SECONDS)
            for index, proc in list(self._procs.items()):
                code = proc.poll()
                if code is not None:
                    log.error(
                        "volume worker %d (pid %d) exited with %s; starting another",
                        index,
                        proc.pid,
                        code,
                    )
                    self.restarts += 1
                    self._spawn(index)
                    if self.on_exit is not None:
                        await self.on_exit(proc.pid)

    async def stop(self) -> None:
        """Stop every worker gracefully (SIGTERM, then SIGKILL after `_STOP_SECONDS`)."""
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
            self._watch = None
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(self._reap)
        self._procs.clear()

    def _reap(self) -> None:
        for index, proc in self._procs.items():
            try:
                proc.wait(timeout=_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                log.error("volume worker %d (pid %d) did not stop; killing it", index, proc.pid)
                proc.kill()
                proc.wait()
