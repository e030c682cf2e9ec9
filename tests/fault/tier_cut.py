"""`python -m tests.fault.tier_cut volume ARGS...`: a weedpy volume server that SIGKILLs (or
SIGSTOPs) itself at one step of a tier upload, for tests/fault/test_server_tier_vacuum.py.

The environment variable `WEEDPY_TEST_TIER_CUT` names a trigger file. While it does not exist
the server behaves as any; when an upload reaches a step and the file names that step
(`<action>:<step>`, action `kill` or `stop`), the file is removed (the cut fires once) and the
process is signalled:

| step | where |
|---|---|
| `data-begun` | the upload read the `.dat`'s first bytes: its PUT (or multipart upload) in flight |
| `data-sent` | the data object complete, its `.idx` and `.vif` not sent |
| `sidecars-sent` | data, `.idx` and `.vif` in the bucket, the local `.vif` not saved yet |
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from seaweed_py.storage.backend.s3 import S3Backend

STEPS = ("data-begun", "data-sent", "sidecars-sent")
ACTIONS = {"kill": signal.SIGKILL, "stop": signal.SIGSTOP}


def _reached(step: str) -> None:
    trigger = Path(os.environ["WEEDPY_TEST_TIER_CUT"])
    try:
        action, _, wanted = trigger.read_text().strip().partition(":")
    except FileNotFoundError:
        return
    if wanted != step:
        return
    trigger.unlink()
    os.kill(os.getpid(), ACTIONS[action])


def _install() -> None:
    real_upload = S3Backend.upload_file
    real_put = S3Backend.put_bytes

    def upload_file(
        self: S3Backend, key: str, path: Path, progress: Callable[[int], None] | None = None
    ) -> int:
        if key.endswith(".idx"):
            return real_upload(self, key, path, progress)

        def begun(n: int) -> None:
            _reached("data-begun")
            if progress is not None:
                progress(n)

        size = real_upload(self, key, path, begun)
        _reached("data-sent")
        return size

    def put_bytes(self: S3Backend, key: str, data: bytes) -> None:
        real_put(self, key, data)
        if key.endswith(".vif"):
            _reached("sidecars-sent")

    S3Backend.upload_file = upload_file  # type: ignore[method-assign]
    S3Backend.put_bytes = put_bytes  # type: ignore[method-assign]


if __name__ == "__main__":
    _install()
    sys.argv = ["seaweed_py", *sys.argv[1:]]
    runpy.run_module("seaweed_py", run_name="__main__", alter_sys=True)
