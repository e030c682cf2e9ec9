"""Run daemons under uvloop until SIGINT/SIGTERM, then stop them gracefully; SIGHUP reloads."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable

import uvloop

__all__ = ["run_servers", "serve_until_signalled"]

log = logging.getLogger("seaweed_py.httpkit")

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def run_servers(
    start: Callable[[], Awaitable[object]],
    stop: Callable[[], Awaitable[object]],
    reload: Callable[[], object] | None = None,
) -> int:
    """Run `await start()` on a fresh uvloop loop, wait for SIGINT or SIGTERM, then
    `await stop()` and return 0. `stop` also runs when `start` fails half-way (so it must cope
    with a partial start), and the failure is raised after it. A second signal during `stop`
    abandons the graceful stop and returns 1. `reload()` runs on the loop at each SIGHUP once
    `start` has finished (it must not raise: a failed reload is its own to report)."""
    return uvloop.run(serve_until_signalled(start, stop, reload))


async def serve_until_signalled(
    start: Callable[[], Awaitable[object]],
    stop: Callable[[], Awaitable[object]],
    reload: Callable[[], object] | None = None,
) -> int:
    """`run_servers` on the running loop (for callers that already have one)."""
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    stopping: asyncio.Future[object] | None = None
    forced = False

    def on_signal(signum: int) -> None:
        nonlocal forced
        if not stop_requested.is_set():
            log.info("received %s, stopping gracefully", signal.Signals(signum).name)
            stop_requested.set()
        elif stopping is not None and not stopping.done():
            log.warning("received %s again, stopping now", signal.Signals(signum).name)
            forced = True
            stopping.cancel()

    started = False

    def on_hangup() -> None:
        if not started or stop_requested.is_set():
            log.info("received SIGHUP while starting or stopping: nothing to reload")
            return
        log.info("received SIGHUP, reloading")
        assert reload is not None
        reload()

    for signum in _SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)
    if reload is not None:
        loop.add_signal_handler(signal.SIGHUP, on_hangup)
    try:
        try:
            await start()
            started = True
            await stop_requested.wait()
        finally:
            stopping = asyncio.ensure_future(stop())
            try:
                await stopping
            except asyncio.CancelledError:
                if not forced:
                    raise
        return 1 if forced else 0
    finally:
        for signum in (*_SIGNALS, signal.SIGHUP):
            loop.remove_signal_handler(signum)
