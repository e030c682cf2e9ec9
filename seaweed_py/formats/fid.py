"""File ids: `<vid>,<key hex><cookie hex>` such as `3,01637037d6` (spec §1).

| part | type | text |
|---|---|---|
| vid | uint32 | decimal |
| `,` | | separator (the first comma) |
| key | uint64 | big-endian bytes with leading zero *bytes* dropped, lower-case hex (even length) |
| cookie | uint32 | exactly 8 lower-case hex digits |
| `_N` | optional | decimal N added to the key (the i-th id of a batch assign) |

Parsing accepts what the reference accepts: 9 to 24 hex digits after the comma (the last 8 are the
cookie, so odd key lengths are fine), either case. A vid above 2**32 - 1 is rejected rather than
truncated to 32 bits like the reference does (quirk A15): truncation would silently address a
different volume.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NoReturn

from seaweed_py.errors import InvalidFileId
from seaweed_py.formats.numbers import parse_uint
from seaweed_py.types import Cookie, NeedleId, VolumeId

__all__ = [
    "FileId",
    "format_key_cookie",
    "parse_file_id",
    "parse_key_cookie",
    "parse_volume_id",
]

_U32_MAX = 0xFFFFFFFF
_U64_MAX = 0xFFFFFFFFFFFFFFFF

# key (1-16 hex) + cookie (8 hex), optional `_<decimal delta>`; the slow path below explains
# why anything else fails.
_KEY_COOKIE_RE = re.compile(r"([0-9a-fA-F]{1,16})([0-9a-fA-F]{8})(?:_([0-9]+))?")
# The common case in one match: vid, key, cookie, optional delta. Anything else (long vids with
# leading zeros, errors) takes the step-by-step path.
_FILE_ID_RE = re.compile(r"([0-9]{1,10}),([0-9a-fA-F]{1,16})([0-9a-fA-F]{8})(?:_([0-9]{1,19}))?")
_HEX_RE = re.compile(r"[0-9a-fA-F]*")
_DECIMAL_RE = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class FileId:
    volume_id: VolumeId
    key: NeedleId
    cookie: Cookie

    def __post_init__(self) -> None:
        if not 0 <= self.volume_id <= _U32_MAX:
            raise InvalidFileId(f"volume id out of range: {self.volume_id}")
        if not 0 <= self.key <= _U64_MAX:
            raise InvalidFileId(f"needle key out of range: {self.key}")
        if not 0 <= self.cookie <= _U32_MAX:
            raise InvalidFileId(f"cookie out of range: {self.cookie}")

    def key_cookie(self) -> str:
        """The part after the comma: key hex (leading zero bytes dropped) + 8-digit cookie."""
        return format_key_cookie(self.key, self.cookie)

    def __str__(self) -> str:
        return f"{self.volume_id},{format_key_cookie(self.key, self.cookie)}"


# parse_file_id has checked every range, so it fills the slots directly instead of going
# through the frozen __init__ and __post_init__ (a fid is parsed on every request).
_new_object = object.__new__
_set_volume_id = FileId.__dict__["volume_id"].__set__
_set_key = FileId.__dict__["key"].__set__
_set_cookie = FileId.__dict__["cookie"].__set__


def format_key_cookie(key: int, cookie: int) -> str:
    """Key hex without leading zero bytes, then the cookie as 8 hex digits.

    Key 0 yields only the cookie digits, which no parser accepts (as in the reference); the
    sequencer never issues key 0.
    """
    if key == 0:
        return f"{cookie:08x}"
    key_hex = f"{key:x}"
    if len(key_hex) & 1:
        key_hex = "0" + key_hex
    return f"{key_hex}{cookie:08x}"


def parse_volume_id(text: str) -> VolumeId:
    """A decimal uint32 volume id."""
    if not _DECIMAL_RE.fullmatch(text):
        raise InvalidFileId(f"invalid volume id {text!r}")
    vid = parse_uint(text, _U32_MAX)
    if vid is None:
        raise InvalidFileId(f"volume id {text!r} out of range")
    return VolumeId(vid)


def parse_key_cookie(text: str) -> tuple[NeedleId, Cookie]:
    """Parse `<key hex><cookie hex>[_N]` into (key + N, cookie)."""
    m = _KEY_COOKIE_RE.fullmatch(text)
    if m is None:
        _raise_key_cookie_error(text)
    key = int(m.group(1), 16)
    delta = m.group(3)
    if delta is not None:
        step = parse_uint(delta, _U64_MAX)
        if step is None or key + step > _U64_MAX:
            raise InvalidFileId(f"needle key delta overflows: {text!r}")
        key += step
    return NeedleId(key), Cookie(int(m.group(2), 16))


def parse_file_id(text: str) -> FileId:
    """Parse `<vid>,<key hex><cookie hex>[_N]`."""
    m = _FILE_ID_RE.fullmatch(text)
    if m is None:
        return _parse_file_id_slowly(text)
    vid_text, key_text, cookie_text, delta = m.groups()
    vid = int(vid_text)
    if vid > _U32_MAX:
        raise InvalidFileId(f"volume id {vid_text!r} out of range")
    key = int(key_text, 16)
    if delta is not None:
        key += int(delta)
        if key > _U64_MAX:
            raise InvalidFileId(f"needle key delta overflows: {text!r}")
    fid: FileId = _new_object(FileId)
    _set_volume_id(fid, vid)
    _set_key(fid, key)
    _set_cookie(fid, int(cookie_text, 16))
    return fid


def _parse_file_id_slowly(text: str) -> FileId:
    comma = text.find(",")
    if comma <= 0:
        raise InvalidFileId(f"invalid fid {text!r}: expected <volume id>,<key><cookie>")
    vid = parse_volume_id(text[:comma])
    key, cookie = parse_key_cookie(text[comma + 1 :])
    return FileId(vid, key, cookie)


def _raise_key_cookie_error(text: str) -> NoReturn:
    hex_part, sep, delta = text.rpartition("_") if "_" in text else (text, "", "")
    if sep and not _DECIMAL_RE.fullmatch(delta):
        raise InvalidFileId(f"invalid needle key delta in {text!r}")
    if not _HEX_RE.fullmatch(hex_part):
        raise InvalidFileId(f"needle key and cookie are not hex: {text!r}")
    if len(hex_part) <= 8:
        raise InvalidFileId(f"KeyHash is too short: {text!r}")
    raise InvalidFileId(f"KeyHash is too long: {text!r}")
