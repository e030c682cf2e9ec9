"""`weedpy export`: list the live needles of a volume, or write them into a tar file.

Like `weed export`, it reads the volume files directly (stop the volume server first, or use
a copy); nothing is changed on disk. Without `-o` it prints one line per live needle: the file
id, the stored size, the name, the MIME type and the last-modified time. With `-o out.tar` it
writes each needle's content (gunzipped if stored compressed) under its name, or its file id
when it has none. Needles that fail their checks are reported on stderr and skipped; the exit
status is then 1.
"""

from __future__ import annotations

import gzip
import io
import sys
import tarfile
import time
from collections.abc import Sequence

from seaweed_py.config.flags import FlagSet, UsageError, flag_value
from seaweed_py.errors import CorruptNeedle, WeedError
from seaweed_py.formats.collection import parse_collection
from seaweed_py.formats.fid import format_key_cookie
from seaweed_py.formats.needle import Needle
from seaweed_py.storage.volume import Volume

__all__ = ["build_flags", "run"]


def build_flags() -> FlagSet:
    flags = FlagSet("export", "List or export the live needles of a volume (offline).")
    flags.add("dir", ".", "data directory holding the volume files")
    flags.add("collection", "", "the volume's collection")
    flags.add("volumeId", 0, "the volume to export (required)")
    flags.add("o", "", "write the needles into this tar file instead of listing them")
    return flags


def run(argv: Sequence[str]) -> int:
    values, positional = build_flags().parse(argv)
    if positional:
        raise UsageError(f"unexpected arguments: {' '.join(positional)}")
    vid: int = values["volumeId"]
    if vid <= 0:
        raise UsageError("-volumeId is required")
    collection = flag_value("collection", parse_collection, values["collection"])
    try:
        volume = Volume.open(values["dir"], vid, collection=collection, writable=False)
    except (WeedError, OSError) as exc:
        print(f"cannot open volume {vid}: {exc}", file=sys.stderr)
        return 1
    try:
        if values["o"]:
            return _export_tar(volume, values["o"])
        return _list(volume)
    finally:
        volume.close()


def _fid(volume: Volume, n: Needle) -> str:
    return f"{volume.id},{format_key_cookie(n.key, n.cookie)}"


def _list(volume: Volume) -> int:
    status = 0
    out = sys.stdout
    for offset, item in volume.iter_needles():
        if isinstance(item, CorruptNeedle):
            print(f"corrupt needle at offset {offset}: {item}", file=sys.stderr)
            status = 1
            continue
        modified = (
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(item.last_modified))
            if item.last_modified
            else "-"
        )
        name = item.name.decode("utf-8", "replace") or "-"
        mime = item.mime.decode("utf-8", "replace") or "-"
        out.write(f"{_fid(volume, item)}\t{len(item.data)}\t{name}\t{mime}\t{modified}\n")
    return status


def _export_tar(volume: Volume, path: str) -> int:
    status = 0
    with tarfile.open(path, "w") as tar:
        for offset, item in volume.iter_needles():
            if isinstance(item, CorruptNeedle):
                print(f"corrupt needle at offset {offset}: {item}", file=sys.stderr)
                status = 1
                continue
            data = gzip.decompress(item.data) if item.is_gzipped else item.data
            info = tarfile.TarInfo(item.name.decode("utf-8", "replace") or _fid(volume, item))
            info.size = len(data)
            info.mtime = item.last_modified or int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return status
