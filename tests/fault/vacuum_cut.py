"""A process that vacuums volume 7 of a directory while writing to it, and SIGKILLs itself at
one step of the vacuum: `python -m tests.fault.vacuum_cut DIR CUT`.

It prints one JSON line per write or delete once the volume acknowledged it (`{"put": key}`,
`{"delete": key}`; the data of a key is `data_of(key)`), and `{"cut": name}` just before it
dies, so tests/fault/test_storage_vacuum_crash.py knows what must survive. The cut points,
in the order a vacuum reaches them:

| cut | where the process dies |
|---|---|
| `copy` | in the middle of the copy into `.cpd` (after some records, writes coming in) |
| `copied` | compaction done (`.cpd`/`.cpx` synced), more writes, no commit yet |
| `replay` | commit: the writes of the copy replayed into `.cpd`, not into `.cpx`, nothing synced |
| `synced` | commit: both files replayed and synced, no marker |
| `marked` | commit: marker written, nothing renamed |
| `renamed-dat` | commit: `.cpd` renamed to `.dat`, `.cpx` not yet |
| `renamed` | commit: both renamed (the directory not synced), the new files not opened yet |
| `reopened` | commit: the new files open and written to, the marker still there |
| `committed` | after the commit, once more writes were acknowledged |
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from seaweed_py.formats.needle import Needle
from seaweed_py.storage import volume_vacuum
from seaweed_py.storage.volume import FsyncMode, Volume

COOKIE = 0x1234ABCD
CUTS = (
    "copy",
    "copied",
    "replay",
    "synced",
    "marked",
    "renamed-dat",
    "renamed",
    "reopened",
    "committed",
)


def data_of(key: int) -> bytes:
    """The bytes stored under `key` (so a reader knows them without being told)."""
    seed = hashlib.sha256(key.to_bytes(8, "big")).digest()
    return seed * (1 + key % 97)


def _say(**event: Any) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def _die(cut: str) -> None:
    _say(cut=cut)
    os.kill(os.getpid(), signal.SIGKILL)


class _Writer:
    """Writes fresh keys from 10_000 on and deletes given keys, each acknowledged on stdout."""

    def __init__(self, volume: Volume, deletable: list[int]) -> None:
        self.v = volume
        self.next_key = 10_000
        self.deletable = deletable

    def some(self, count: int = 3) -> None:
        for _ in range(count):
            key = self.next_key
            self.next_key += 1
            self.v.write(Needle.build(COOKIE, key, data_of(key)))
            _say(put=key)
        if self.deletable:
            key = self.deletable.pop()
            self.v.delete(key, COOKIE)
            _say(delete=key)


def _kill_on_call(module: Any, name: str, cut: str, nth: int = 1) -> None:
    real: Callable[..., Any] = getattr(module, name)
    calls = [0]

    def dying(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == nth:
            _die(cut)
        return real(*args, **kwargs)

    setattr(module, name, dying)


def main(directory: str, cut: str, deletable: list[int]) -> None:
    volume_vacuum._FLUSH = 1  # type: ignore[misc]  # a pause after every record copied
    v = Volume.open(Path(directory), 7, fsync_mode=FsyncMode.NONE)
    writer = _Writer(v, deletable)
    pauses = [0]

    def meanwhile(_seconds: float) -> None:
        pauses[0] += 1
        if pauses[0] % 5 == 0:
            writer.some(1)
        if cut == "copy" and pauses[0] == 25:
            _die(cut)

    v.compact(bytes_per_second=1 << 40, sleep=meanwhile, monotonic=lambda: 0.0)
    writer.some()
    if cut == "copied":
        _die(cut)
    steps = {
        "replay": (volume_vacuum, "_write_entries"),
        "synced": (volume_vacuum, "write_marker"),
        "marked": (volume_vacuum, "rename"),
        "renamed": (volume_vacuum, "_reopen"),
    }
    if cut in steps:
        _kill_on_call(*steps[cut], cut)
    elif cut == "renamed-dat":
        _kill_on_call(volume_vacuum, "rename", cut, nth=2)
    if cut == "reopened":
        real_reopen = volume_vacuum._reopen

        def reopen_then_die_at_the_sync(volume: Volume) -> None:
            real_reopen(volume)

            def written_then_dead(directory: Path) -> None:
                writer.some()  # the lock is released: writes reach the new files
                _die(cut)

            # The next directory sync is the one after the lock (the renames' own).
            volume_vacuum._loading.sync_dir = written_then_dead  # type: ignore[assignment]

        volume_vacuum._reopen = reopen_then_die_at_the_sync  # type: ignore[assignment]
    v.commit_compact()
    writer.some()
    _die(cut)


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[2] not in CUTS:
        sys.exit(f"usage: python -m tests.fault.vacuum_cut DIR {{{'|'.join(CUTS)}}} KEY,KEY...")
    main(sys.argv[1], sys.argv[2], [int(k) for k in sys.argv[3].split(",") if k])
