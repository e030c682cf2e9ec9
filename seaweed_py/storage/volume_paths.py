"""Where a volume's files are: their names, and the check that they stay in their directory.

A volume's files are `<collection>_<vid><ext>` (`<vid><ext>` for the default collection), ext
being `.dat`, `.idx`, `.vif`, `.sdx` and their `.tmp` siblings. Names are built by string
concatenation, never `Path.with_suffix`, which would cut a dotted collection (`my.bucket_3`)
at its dot. Reading a name back (`parse_volume_file_name`, spec §4.1: the collection is the
text before the last `_`) accepts exactly the names `volume_base_name` builds, so what the
store creates it also finds on its next start, and nothing else.

`check_inside` is defence in depth behind `formats.collection`: every file the store creates
or deletes must resolve (symlinks followed) inside its data directory, else nothing is done.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Final

from seaweed_py.errors import InvalidCollection, PathEscapesDirectory
from seaweed_py.formats.collection import Collection, parse_collection

__all__ = [
    "VOLUME_FILE_SUFFIXES",
    "check_inside",
    "parse_volume_file_name",
    "volume_base_name",
    "volume_file",
]

log = logging.getLogger(__name__)

VOLUME_FILE_SUFFIXES: Final = (
    ".dat",
    ".idx",
    ".vif",
    ".sdx",
    ".sdx.tmp",
    ".vif.tmp",
    ".idx.tmp",
    ".note",
    ".cpd",
    ".cpx",
    ".cpc",
    ".ats",
)
"""Every suffix a volume's files may carry (the longest bounds the collection's length)."""

_VOLUME_FILE: Final = re.compile(r"(?:(?P<collection>.*)_)?(?P<vid>0|[1-9][0-9]*)\.(?:idx|vif)")
_VID_DIGITS: Final = 10  # 4294967295


def volume_base_name(collection: str, volume_id: int) -> str:
    """`<collection>_<vid>`, or `<vid>` for the default collection; a collection that does not
    parse raises `InvalidCollection`."""
    parse_collection(collection)
    return f"{collection}_{volume_id}" if collection else str(volume_id)


def volume_file(directory: Path, collection: str, volume_id: int, ext: str) -> Path:
    """The path of one file of a volume: its base name and `ext` (`.dat`...) concatenated."""
    return directory / (volume_base_name(collection, volume_id) + ext)


def parse_volume_file_name(name: str) -> tuple[Collection, int] | None:
    """(collection, volume id) of `<collection>_<vid>.idx|.vif` or `<vid>.idx|.vif`; None for
    any other name, including a collection `parse_collection` refuses (an empty one, as in
    `_7.idx`) and a vid with leading zeros or above 2^32 - 1, which would name another file."""
    m = _VOLUME_FILE.fullmatch(name)
    if m is None or len(m.group("vid")) > _VID_DIGITS:
        return None
    vid = int(m.group("vid"))
    if vid >= 1 << 32:
        return None
    raw = m.group("collection")
    if raw is None:
        return Collection(""), vid
    if not raw:
        return None
    try:
        return parse_collection(raw), vid
    except InvalidCollection:
        return None


def check_inside(directory: Path, *paths: Path) -> None:
    """Raise `PathEscapesDirectory` (and log it) unless every path resolves, symlinks
    followed, inside `directory`; called before a file is created or deleted, so a refusal
    touches nothing."""
    root = os.path.realpath(directory)
    for path in paths:
        real = os.path.realpath(path)
        if os.path.commonpath((root, real)) != root or real == root:
            log.error("refused: %s resolves to %s, outside data directory %s", path, real, root)
            raise PathEscapesDirectory(
                "volume file resolves outside its data directory",
                path=str(path),
                resolved=real,
                directory=root,
            )
