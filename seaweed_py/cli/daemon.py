"""Running the server commands (`master`, `volume`, `server`): logging, then `run_servers`.

Log records of the start are held until it succeeds. A start that fails (a port in use, a
mistyped `-dir`) then ends in the one line `main` prints for its `StartupError`, not after
the "listening on" lines and the warnings of whatever had already started (about a server
that is not going to run); errors are still shown.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from seaweed_py.httpkit.run import run_servers

__all__ = ["serve"]

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _Held(logging.Handler):
    """Keeps records until `pass_on` hands them to the real handlers."""

    def __init__(self, root: logging.Logger) -> None:
        super().__init__()
        self._root = root
        self._handlers = root.handlers[:]
        self._records: list[logging.LogRecord] = []
        root.handlers = [self]

    def emit(self, record: logging.LogRecord) -> None:
        self._records.append(record)

    def pass_on(self, level: int) -> None:
        """Restore the real handlers and pass them the held records of `level` and above."""
        if self._root.handlers == [self]:
            self._root.handlers = self._handlers
        records, self._records = self._records, []
        for record in records:
            if record.levelno >= level:
                for handler in self._handlers:
                    if record.levelno >= handler.level:
                        handler.handle(record)


def serve(
    start: Callable[[], Awaitable[object]],
    stop: Callable[[], Awaitable[object]],
    reload: Callable[[], object] | None = None,
    *,
    tag: str = "",
) -> int:
    """Log at INFO to stderr and run the servers until SIGINT/SIGTERM, reloading on SIGHUP
    (`run_servers`). `tag` follows the logger name on every line (a volume worker's)."""
    logging.basicConfig(level=logging.INFO, format=_FORMAT.replace("%(name)s", f"%(name)s{tag}"))
    held = _Held(logging.getLogger())

    async def start_quietly() -> None:
        try:
            await start()
        except BaseException:
            held.pass_on(logging.ERROR)
            raise
        held.pass_on(logging.NOTSET)

    try:
        return run_servers(start_quietly, stop, reload)
    finally:
        held.pass_on(logging.WARNING)
