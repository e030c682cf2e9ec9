"""`weedpy fix`: scrub volumes offline and, with `-rebuild`, rebuild their `.idx` from `.dat`.

Prints one line per corrupt needle (key in hex as in file ids, offset in the `.dat`, reason),
one for index gaps or trailing bytes, and exits 1 if anything was wrong. Stop the volume
server first: `-rebuild` rewrites the index of a volume that must not be open elsewhere.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from seaweed_py.config.flags import FlagSet, UsageError, flag_value
from seaweed_py.errors import WeedError
from seaweed_py.formats.collection import parse_collection
from seaweed_py.storage.check import check_volume, rebuild_index
from seaweed_py.storage.volume_paths import parse_volume_file_name, volume_base_name

__all__ = ["build_flags", "run"]


def build_flags() -> FlagSet:
    flags = FlagSet(
        "fix",
        "Check volumes for corrupt needles (CRC, header, bounds); -rebuild rewrites the .idx "
        "from the .dat.",
    )
    flags.add("dir", ".", "data directory holding the volume files")
    flags.add("collection", "", "the volume's collection")
    flags.add("volumeId", 0, "the volume to check; 0 checks every volume in -dir")
    flags.add("rebuild", False, "rebuild the .idx from the .dat after checking")
    return flags


def run(argv: Sequence[str]) -> int:
    values, positional = build_flags().parse(argv)
    if positional:
        raise UsageError(f"unexpected arguments: {' '.join(positional)}")
    directory: str = values["dir"]
    if not os.path.isdir(directory):
        raise UsageError(f"-dir {directory!r} is not a directory")
    collection = flag_value("collection", parse_collection, values["collection"])
    targets = _targets(directory, collection, values["volumeId"])
    if not targets:
        print(f"no volumes found in {directory}", file=sys.stderr)
        return 1
    status = 0
    for target_collection, vid in targets:
        status |= _fix_one(directory, target_collection, vid, rebuild=values["rebuild"])
    return status


def _targets(directory: str, collection: str, vid: int) -> list[tuple[str, int]]:
    if vid:
        return [(collection, vid)]
    found = {parse_volume_file_name(name) for name in os.listdir(directory)}
    return sorted(t for t in found if t is not None and (not collection or t[0] == collection))


def _fix_one(directory: str, collection: str, vid: int, *, rebuild: bool) -> int:
    name = volume_base_name(collection, vid)
    try:
        report = check_volume(directory, vid, collection)
    except (WeedError, OSError) as exc:
        print(f"volume {name}: cannot check: {exc}", file=sys.stderr)
        return 1
    print(
        f"volume {name}: {report.records} records, {report.indexed} index entries, "
        f"{len(report.corrupt)} corrupt"
    )
    for c in report.corrupt:
        print(f"  corrupt needle key={c.key:x} offset={c.offset} size={c.size}: {c.reason}")
    for offset in report.unindexed:
        print(f"  record at offset {offset} is not in the index")
    if report.tail_error is not None:
        print(f"  .dat ends badly at offset {report.tail_offset}: {report.tail_error}")
    if rebuild:
        count = rebuild_index(directory, vid, collection)
        print(f"  rebuilt {name}.idx: {count} entries")
    return 0 if report.ok else 1
