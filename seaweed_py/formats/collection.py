"""Collection names: the one parser every layer uses (master, volume server, store, tools).

A collection name becomes part of file names (`<collection>_<vid>.dat`), so it is a value,
never a path. The rules:

| rule | why |
|---|---|
| `""` is valid: the default collection | its files are `<vid>.dat` |
| only ASCII letters, digits, `.`, `-`, `_` | the alphabet `weed` users write (S3 bucket names are a subset); no separator (`/`, `\\`), NUL, space, `%`, or non-ASCII letter can reach a file name |
| no `..` anywhere | `..` is never needed in a name and is the shape of every traversal |
| at most `MAX_COLLECTION_LENGTH` (120) bytes | see below |

The bound: a volume's longest file name is `<collection>_<vid>` plus its longest suffix
(`.sdx.tmp`, `.vif.tmp`, `.idx.tmp`: 8 bytes) with a vid of up to 10 digits, so 19 bytes on top
of the collection. NAME_MAX is 255 bytes on ext4, XFS and btrfs, but only 143 on eCryptfs
(encrypted home directories); 120 keeps every derived name (at most 139 bytes) under both, and
is roomy for S3 bucket names (at most 63 bytes), which S3 gateways use as collection names.

The reference (`weed` 4.48) accepts any string and builds paths from it, so `../../x` escapes
`-dir` (docs/compat.md). Anything else raises `InvalidCollection` (400), whose message names the
parameter and what is wrong.
"""

from __future__ import annotations

import re
from typing import Final, NewType

from seaweed_py.errors import InvalidCollection

__all__ = ["MAX_COLLECTION_LENGTH", "Collection", "parse_collection"]

Collection = NewType("Collection", str)
"""A collection name that passed `parse_collection` (`""` is the default collection)."""

MAX_COLLECTION_LENGTH: Final = 120

_OUTSIDE_ALPHABET: Final = re.compile(r"[^A-Za-z0-9._-]")
_SHOWN: Final = 40  # characters of a bad value quoted in the error


def parse_collection(raw: str | bytes, param: str = "collection") -> Collection:
    """`raw` as a `Collection`, or `InvalidCollection` naming `param` and the broken rule."""
    if isinstance(raw, bytes):
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            raise _invalid(param, raw.decode("latin-1"), "it is not ASCII") from None
    else:
        text = raw
    if len(text) > MAX_COLLECTION_LENGTH:
        raise _invalid(
            param, text, f"it is {len(text)} characters long, at most {MAX_COLLECTION_LENGTH}"
        )
    bad = _OUTSIDE_ALPHABET.search(text)
    if bad is not None:
        char = bad.group()
        what = "a path separator" if char in "/\\" else "a character outside the alphabet"
        raise _invalid(param, text, f"it contains {char!r}, {what}")
    if ".." in text:
        raise _invalid(param, text, "it contains '..'")
    return Collection(text)


def _invalid(param: str, text: str, why: str) -> InvalidCollection:
    shown = text if len(text) <= _SHOWN else text[:_SHOWN] + "..."
    return InvalidCollection(
        f"invalid {param} {shown!r}: {why}; collection names are ASCII letters, digits, "
        f"'.', '-' and '_', without '..', at most {MAX_COLLECTION_LENGTH} characters"
    )
