"""`weedpy compact`: compact one volume offline, as `weed compact` does.

The live needles of `<dir>/<collection>_<vid>.dat` are copied into `.cpd`, their index into
`.cpx` (deleted, expired and corrupt needles left behind); the volume's own files are not
changed. Rename `.cpd` to `.dat` and `.cpx` to `.idx` (with the volume server stopped) to use
the compacted volume, which opens in weedpy and in `weed` alike; a volume server that starts
with the two files still beside the volume deletes them (an uncommitted vacuum). The data
directory must not be in use by a volume server (its lock is taken).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from seaweed_py.config.flags import FlagSet, UsageError, flag_value
from seaweed_py.errors import WeedError
from seaweed_py.formats.collection import parse_collection
from seaweed_py.storage.store import held_directory
from seaweed_py.storage.volume import Volume
from seaweed_py.storage.volume_paths import volume_base_name

__all__ = ["build_flags", "run"]


def build_flags() -> FlagSet:
    flags = FlagSet(
        "compact",
        "Copy a volume's live needles into <volume>.cpd and its index into <volume>.cpx "
        "(weed compact); rename them to .dat and .idx, server stopped, to use them.",
    )
    flags.add("dir", ".", "data directory holding the volume files")
    flags.add("collection", "", "volume collection name")
    flags.add("volumeId", -1, "a volume id. The volume should already exist in the dir.")
    flags.add("preallocateMB", 0, "preallocate disk space for the .cpd, in MiB")
    return flags


def run(argv: Sequence[str]) -> int:
    values, positional = build_flags().parse(argv)
    if positional:
        raise UsageError(f"unexpected arguments: {' '.join(positional)}")
    directory = Path(values["dir"])
    if not directory.is_dir():
        raise UsageError(f"-dir {str(directory)!r} is not a directory")
    collection = flag_value("collection", parse_collection, values["collection"])
    vid: int = values["volumeId"]
    if not 0 <= vid < 1 << 32:
        raise UsageError(f"-volumeId must name a volume (0..4294967295), got {vid}")
    preallocate: int = values["preallocateMB"]
    if preallocate < 0:
        raise UsageError(f"-preallocateMB cannot be negative, got {preallocate}")
    name = volume_base_name(collection, vid)
    if not (directory / f"{name}.dat").exists():
        print(f"weedpy compact: no volume {name} in {directory}", file=sys.stderr)
        return 1
    try:
        with held_directory(directory):
            volume = Volume.open(directory, vid, collection=collection)
            try:
                result = volume.compact(
                    preallocate=preallocate << 20,
                    disk_free=_free_bytes(directory),
                )
            finally:
                volume.close()
    except (WeedError, OSError) as exc:
        print(f"weedpy compact: volume {name}: {exc}", file=sys.stderr)
        return 1
    print(
        f"volume {name}: {result.needles} needles ({result.copied_bytes} bytes) copied into "
        f"{name}.cpd and {name}.cpx, {result.expired} expired and {result.corrupt} corrupt "
        f"dropped; {result.size_before} -> {result.compacted_size} bytes"
    )
    return 0


def _free_bytes(directory: Path) -> int:
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize
