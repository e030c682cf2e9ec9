"""The URL forms of blob requests (spec §3.2), parsed into typed values.

| form | example | file name | extension |
|---|---|---|---|
| `/vid/fid/name` (3 slashes) | `/3/01637037d6/my.jpg` | `my.jpg` | `.jpg` |
| `/vid/fid[.ext]` (2 slashes) | `/3/01637037d6.jpg` | `""` | `.jpg` |
| `/vid,fid[.ext]` (otherwise: the last segment) | `/3,01637037d6.jpg` | `""` | `.jpg` |

The fid part may end in `_N` (the N-th id of a batch assign). Reads and deletes accept every
form; writes accept only the comma form (quirk A10, kept: the reference parses the text after the
last comma of the whole path, so `/3/01637037d6` has never been a valid upload URL and clients
do not send it).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from seaweed_py.errors import InvalidFileId
from seaweed_py.formats.fid import parse_key_cookie, parse_volume_id
from seaweed_py.types import Cookie, NeedleId, VolumeId
from seaweed_py.volume.mime import extension

__all__ = ["BlobPath", "parse_blob_path", "parse_write_path", "split_url_path"]


class BlobPath(NamedTuple):
    """A parsed blob URL: which needle, and the name/extension the URL itself carries."""

    volume_id: VolumeId
    key: NeedleId
    cookie: Cookie
    filename: str
    ext: str
    fid_text: str
    """The key+cookie text as written in the URL (with any `_N`), for redirects."""


def split_url_path(path: str) -> tuple[str, str, str, str]:
    """(vid text, fid text, file name, extension) as the reference's `parseURLPath` splits."""
    slashes = path.count("/")
    if slashes == 3:
        _, vid, fid, filename = path.split("/")
        return vid, fid, filename, extension(filename)
    if slashes == 2:
        _, vid, fid = path.split("/")
        dot = fid.rfind(".")
        if dot > 0:
            return vid, fid[:dot], "", fid[dot:]
        return vid, fid, "", ""
    last = path[path.rfind("/") + 1 :]
    comma = last.rfind(",")
    if comma <= 0:
        return last, "", "", ""
    fid = last[comma + 1 :]
    dot = fid.rfind(".")
    if dot >= 0:
        return last[:comma], fid[:dot], "", fid[dot:]
    return last[:comma], fid, "", ""


# The common shapes, `/<vid>,<key><cookie>[_N]`, in one match; the rest takes the general path.
# The key and cookie are read as one number: the cookie is its low 32 bits (8 hex digits).
_PLAIN_COMMA = re.compile(r"/([0-9]{1,9}),(([0-9a-fA-F]{9,24})(?:_([0-9]{1,18}))?)").fullmatch
_U64_MAX = (1 << 64) - 1
# BlobPath's fields straight from a tuple: its generated __new__ and the NewType wrappers cost
# more than the whole match on this path, which every read and write takes.
_new_blob_path = tuple.__new__


def _fast(path: str) -> BlobPath | None:
    m = _PLAIN_COMMA(path)
    if m is None:
        return None
    vid, fid, key_cookie, delta = m.groups()
    both = int(key_cookie, 16)
    key = both >> 32
    if delta is not None:
        key += int(delta)
        if key > _U64_MAX:
            return None
    return _new_blob_path(BlobPath, (int(vid), key, both & 0xFFFFFFFF, "", "", fid))


def parse_blob_path(path: str) -> BlobPath:
    """Parse a read or delete URL path; malformed ids raise `InvalidFileId` (400)."""
    fast = _fast(path)
    if fast is not None:
        return fast
    vid_text, fid_text, filename, ext = split_url_path(path)
    vid = parse_volume_id(vid_text)
    if not fid_text:
        raise InvalidFileId(f"no needle id in {path!r}", volume_id=vid)
    key, cookie = parse_key_cookie(fid_text)
    return BlobPath(vid, key, cookie, filename, ext, fid_text)


def parse_write_path(path: str) -> BlobPath:
    """Parse an upload URL: the comma form only (quirk A10)."""
    fast = _fast(path)
    if fast is not None:
        return fast
    comma = path.rfind(",")
    if comma < 0:
        raise InvalidFileId(f"upload path {path!r} is not of the form /<vid>,<key><cookie>")
    vid = parse_volume_id(path[path.rfind("/", 0, comma) + 1 : comma])
    fid_text = path[comma + 1 :]
    ext = ""
    dot = fid_text.rfind(".")
    if dot >= 0:
        fid_text, ext = fid_text[:dot], fid_text[dot:]
    key, cookie = parse_key_cookie(fid_text)
    return BlobPath(vid, key, cookie, "", ext, fid_text)
