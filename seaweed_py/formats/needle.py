"""Needle records: the unit of data in a `.dat` file (spec §4.3-§4.8).

Every record starts with a 16-byte header; all integers are big-endian.

| offset | size | field |
|---|---|---|
| 0 | 4 | cookie, uint32 |
| 4 | 8 | key (needle id), uint64 |
| 12 | 4 | Size, int32: length of the body that follows |

Versions 2 and 3 share the body (version 1 is only `Data[Size]`):

| field | size | present when |
|---|---|---|
| DataSize | 4, uint32 | Size > 0 |
| Data | DataSize | Size > 0 |
| Flags | 1 | Size > 0 and bytes remain in the body |
| NameSize, Name | 1 + NameSize (≤ 255) | flag 0x02 |
| MimeSize, Mime | 1 + MimeSize (≤ 255) | flag 0x04 |
| LastModified | 5, low 40 bits of Unix seconds | flag 0x08 |
| TTL | 2, `[count, unit]` | flag 0x10 |
| PairsSize, Pairs | 2 (uint16) + PairsSize (JSON object) | flag 0x20 |

After the body, outside `Size`: Checksum (4, CRC-32C of Data, raw or legacy form on read, raw on
write), AppendAtNs (8, uint64 nanoseconds, version 3 only), then 1..8 bytes of zero padding so
the record length is a multiple of 8. Padding is never 0 bytes: an already aligned record gets
a full 8 (quirk A1, kept for byte compatibility).

Empty data omits the whole body: Size is 0 and the name, MIME and other metadata are lost
(quirk A2, kept: it is what the reference writes and reads). Tombstones are Size-0 records whose
checksum field carries the deleted needle's checksum (quirk A23, kept). A Size-0 record is 24
bytes in version 2 and 32 in version 3.

Readers consume optional fields in order only while bytes remain inside `Size`, as the
reference does; a length that runs past the body is corruption.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, fields
from typing import Final, final

from crc32c import crc32c as _crc32c

from seaweed_py.errors import BadRequest, CorruptNeedle, CorruptVolume, PayloadTooLarge
from seaweed_py.formats.crc import BytesLike, legacy_checksum
from seaweed_py.formats.ttl import Ttl
from seaweed_py.types import NEEDLE_PADDING, Cookie, NeedleId

__all__ = [
    "CURRENT_VERSION",
    "FLAG_CHUNK_MANIFEST",
    "FLAG_GZIP",
    "FLAG_HAS_LAST_MODIFIED",
    "FLAG_HAS_MIME",
    "FLAG_HAS_NAME",
    "FLAG_HAS_PAIRS",
    "FLAG_HAS_TTL",
    "MAX_DATA_SIZE",
    "MAX_LAST_MODIFIED",
    "MAX_MIME_LENGTH",
    "MAX_NAME_LENGTH",
    "MAX_PAIRS_LENGTH",
    "NEEDLE_HEADER",
    "NEEDLE_HEADER_SIZE",
    "NEEDLE_HEAD_SIZE",
    "VERSION_1",
    "VERSION_2",
    "VERSION_3",
    "Needle",
    "body_size",
    "decode_footer",
    "decode_header",
    "decode_needle",
    "decode_needle_meta",
    "encode_needle",
    "encode_needle_head",
    "encode_needle_tail",
    "encode_tombstone",
    "padding_length",
    "record_length",
    "tail_length",
    "upload_needle",
]

VERSION_1: Final = 1
VERSION_2: Final = 2
VERSION_3: Final = 3
CURRENT_VERSION: Final = VERSION_3

FLAG_GZIP: Final = 0x01
FLAG_HAS_NAME: Final = 0x02
FLAG_HAS_MIME: Final = 0x04
FLAG_HAS_LAST_MODIFIED: Final = 0x08
FLAG_HAS_TTL: Final = 0x10
FLAG_HAS_PAIRS: Final = 0x20
FLAG_CHUNK_MANIFEST: Final = 0x80

MAX_NAME_LENGTH: Final = 255
MAX_MIME_LENGTH: Final = 255
MAX_PAIRS_LENGTH: Final = 0xFFFF
MAX_LAST_MODIFIED: Final = (1 << 40) - 1
# Size is an int32 that also holds DataSize (4), flags (1) and the optional fields.
MAX_DATA_SIZE: Final = 0x7FFFFFFF - 4 - 1 - (1 + 255) * 2 - 5 - 2 - 2 - 0xFFFF

NEEDLE_HEADER = struct.Struct(">IQi")  # cookie, key, Size
assert NEEDLE_HEADER.size == 16
NEEDLE_HEADER_SIZE: Final = NEEDLE_HEADER.size

_HEAD = struct.Struct(">IQiI")  # header + DataSize: everything before Data
assert _HEAD.size == 20
NEEDLE_HEAD_SIZE: Final = _HEAD.size

_TAIL_V3 = struct.Struct(">IQ")  # checksum, AppendAtNs
assert _TAIL_V3.size == 12
_TAIL_V2 = struct.Struct(">I")  # checksum
assert _TAIL_V2.size == 4
_LAST_MODIFIED = struct.Struct(">BI")  # 40 bits: high byte, low 32 bits
assert _LAST_MODIFIED.size == 5
# The end of a version-3 upload record in one go: LastModified (5), checksum, AppendAtNs.
_UPLOAD_END_V3 = struct.Struct(">BIIQ")
assert _UPLOAD_END_V3.size == 17
_U16 = struct.Struct(">H")
assert _U16.size == 2
_U32 = struct.Struct(">I")
assert _U32.size == 4

_unpack_header = NEEDLE_HEADER.unpack_from
_unpack_u32 = _U32.unpack_from
_unpack_u16 = _U16.unpack_from
_unpack_tail_v3 = _TAIL_V3.unpack_from
_unpack_last_modified = _LAST_MODIFIED.unpack_from
_pack_head = _HEAD.pack
_pack_header = NEEDLE_HEADER.pack
_pack_tail_v3 = _TAIL_V3.pack
_pack_tail_v2 = _TAIL_V2.pack
_pack_last_modified = _LAST_MODIFIED.pack
_pack_u16 = _U16.pack
_pack_upload_end_v3 = _UPLOAD_END_V3.pack

_BYTE = tuple(bytes((i,)) for i in range(256))
_PADDING = tuple(bytes(i) for i in range(NEEDLE_PADDING + 1))
_TAIL_LENGTH = (0, 4, 4, 12)  # checksum (+ AppendAtNs) by version
_EMPTY_TTL = Ttl.EMPTY
_META_FLAGS = FLAG_HAS_NAME | FLAG_HAS_MIME | FLAG_HAS_LAST_MODIFIED | FLAG_HAS_TTL | FLAG_HAS_PAIRS
_UPLOAD_FLAGS = FLAG_HAS_NAME | FLAG_HAS_MIME | FLAG_HAS_LAST_MODIFIED
# Every bit but gzip and chunk-manifest: which optional fields a record has (and, for a bad
# needle, bits outside a byte).
_SHAPE_FLAGS = ~(FLAG_GZIP | FLAG_CHUNK_MANIFEST)


@final
@dataclass(frozen=True, slots=True)
class Needle:
    """One stored blob with its metadata.

    `flags` is the truth for which optional fields exist: `name` is stored only with
    FLAG_HAS_NAME, and so on (a present field may be empty, as HTTP uploads store it).
    `checksum` is the stored CRC-32C of `data` in raw form; `Needle.build` computes it.
    A decoded tombstone or empty needle keeps whatever its checksum field held.
    """

    cookie: Cookie
    key: NeedleId
    data: bytes = b""
    flags: int = 0
    name: bytes = b""
    mime: bytes = b""
    last_modified: int = 0
    ttl: Ttl = _EMPTY_TTL
    pairs: bytes = b""
    checksum: int = 0
    append_at_ns: int = 0

    @classmethod
    def build(
        cls,
        cookie: Cookie,
        key: NeedleId,
        data: bytes,
        *,
        name: bytes | None = None,
        mime: bytes | None = None,
        last_modified: int | None = None,
        ttl: Ttl | None = None,
        pairs: bytes | None = None,
        gzipped: bool = False,
        chunk_manifest: bool = False,
        append_at_ns: int = 0,
    ) -> Needle:
        """A needle whose flags say which fields are given (None = absent) and whose checksum
        is the CRC-32C of `data`."""
        flags = (FLAG_GZIP if gzipped else 0) | (FLAG_CHUNK_MANIFEST if chunk_manifest else 0)
        if name is not None:
            flags |= FLAG_HAS_NAME
        if mime is not None:
            flags |= FLAG_HAS_MIME
        if last_modified is not None:
            flags |= FLAG_HAS_LAST_MODIFIED
        if ttl is not None:
            flags |= FLAG_HAS_TTL
        if pairs is not None:
            flags |= FLAG_HAS_PAIRS
        return _make_needle(
            cookie,
            key,
            data,
            flags,
            name or b"",
            mime or b"",
            last_modified or 0,
            ttl if ttl is not None else _EMPTY_TTL,
            pairs or b"",
            _crc32c(data),
            append_at_ns,
        )

    @property
    def is_gzipped(self) -> bool:
        return bool(self.flags & FLAG_GZIP)

    @property
    def is_chunk_manifest(self) -> bool:
        return bool(self.flags & FLAG_CHUNK_MANIFEST)

    @property
    def etag(self) -> str:
        """The HTTP ETag value (without quotes): the raw CRC as 8 hex digits."""
        return f"{self.checksum:08x}"


def upload_needle(
    cookie: Cookie,
    key: NeedleId,
    data: bytes,
    name: bytes,
    mime: bytes,
    last_modified: int,
    ttl: Ttl | None,
    pairs: bytes,
    gzipped: bool,
    chunk_manifest: bool,
) -> Needle:
    """The needle of an HTTP upload: `Needle.build` with name, MIME type and last-modified
    present (even when empty, as uploads store them), the TTL unless None and the pairs unless
    empty. Positional and without `build`'s keyword handling: every write goes through it."""
    flags = _UPLOAD_FLAGS
    if gzipped:
        flags |= FLAG_GZIP
    if chunk_manifest:
        flags |= FLAG_CHUNK_MANIFEST
    if ttl is None:
        ttl = _EMPTY_TTL
    else:
        flags |= FLAG_HAS_TTL
    if pairs:
        flags |= FLAG_HAS_PAIRS
    return _make_needle(
        cookie, key, data, flags, name, mime, last_modified, ttl, pairs, _crc32c(data), 0
    )


# The generated frozen __init__ sets each field through object.__setattr__; decoding builds a
# Needle per read, so it fills the slots through their descriptors instead (half the cost).
_new_object = object.__new__
(
    _set_cookie,
    _set_key,
    _set_data,
    _set_flags,
    _set_name,
    _set_mime,
    _set_last_modified,
    _set_ttl,
    _set_pairs,
    _set_checksum,
    _set_append_at_ns,
) = (Needle.__dict__[f.name].__set__ for f in fields(Needle))


def _make_needle(
    cookie: int,
    key: int,
    data: bytes,
    flags: int,
    name: bytes,
    mime: bytes,
    last_modified: int,
    ttl: Ttl,
    pairs: bytes,
    checksum: int,
    append_at_ns: int,
) -> Needle:
    n: Needle = _new_object(Needle)
    _set_cookie(n, cookie)
    _set_key(n, key)
    _set_data(n, data)
    _set_flags(n, flags)
    _set_name(n, name)
    _set_mime(n, mime)
    _set_last_modified(n, last_modified)
    _set_ttl(n, ttl)
    _set_pairs(n, pairs)
    _set_checksum(n, checksum)
    _set_append_at_ns(n, append_at_ns)
    return n


# ---------------------------------------------------------------------------------------------
# sizes


def tail_length(version: int) -> int:
    """Bytes after the body and before the padding: checksum, plus AppendAtNs in version 3."""
    return _TAIL_LENGTH[version]


def padding_length(size: int, version: int = CURRENT_VERSION) -> int:
    """Zero bytes after a record with body `size`: 1..8, never 0 (quirk A1)."""
    if size < 0:
        raise ValueError(f"needle body size must not be negative: {size}")
    return NEEDLE_PADDING - ((NEEDLE_HEADER_SIZE + size + _TAIL_LENGTH[version]) % NEEDLE_PADDING)


def record_length(size: int, version: int = CURRENT_VERSION) -> int:
    """Bytes a record with body `size` takes in `.dat` (a multiple of 8)."""
    unpadded = NEEDLE_HEADER_SIZE + size + _TAIL_LENGTH[version]
    if size < 0:
        raise ValueError(f"needle body size must not be negative: {size}")
    return unpadded + NEEDLE_PADDING - (unpadded % NEEDLE_PADDING)


def body_size(n: Needle) -> int:
    """The header's Size for `n`: 0 when the data is empty, else DataSize + data + metadata."""
    data_size = len(n.data)
    return _body_size(n, data_size) if data_size else 0


def _body_size(n: Needle, data_size: int) -> int:
    flags = n.flags
    size = 4 + data_size + 1
    if flags & FLAG_HAS_NAME:
        size += 1 + len(n.name)
    if flags & FLAG_HAS_MIME:
        size += 1 + len(n.mime)
    if flags & FLAG_HAS_LAST_MODIFIED:
        size += 5
    if flags & FLAG_HAS_TTL:
        size += 2
    if flags & FLAG_HAS_PAIRS:
        size += 2 + len(n.pairs)
    return size


# ---------------------------------------------------------------------------------------------
# encoding


def encode_needle(
    n: Needle, version: int = CURRENT_VERSION, *, append_at_ns: int | None = None
) -> bytes:
    """The whole record for `n`, padded. `append_at_ns` overrides `n.append_at_ns`."""
    data = n.data
    if not data:
        return encode_tombstone(
            n.cookie,
            n.key,
            n.checksum,
            n.append_at_ns if append_at_ns is None else append_at_ns,
            version,
        )
    data_size = len(data)
    if data_size > MAX_DATA_SIZE:
        _check_data_size(data_size)
    flags = n.flags
    if flags & _SHAPE_FLAGS == _UPLOAD_FLAGS and version == VERSION_3:
        record = _encode_upload_v3(n, data, data_size, flags, append_at_ns)
        if record is not None:
            return record
    meta = _encode_meta(n)
    size = 4 + data_size + len(meta)
    if version == VERSION_3:
        tail = _pack_tail_v3(n.checksum, n.append_at_ns if append_at_ns is None else append_at_ns)
    elif version == VERSION_2:
        tail = _pack_tail_v2(n.checksum)
    else:
        raise _unsupported_version(version)
    pad = NEEDLE_PADDING - ((NEEDLE_HEADER_SIZE + size + len(tail)) % NEEDLE_PADDING)
    return b"".join((_pack_head(n.cookie, n.key, size, data_size), data, meta, tail, _PADDING[pad]))


def _encode_upload_v3(
    n: Needle, data: bytes, data_size: int, flags: int, append_at_ns: int | None
) -> bytes | None:
    """`encode_needle` for the usual upload in version 3 (name, MIME type and last-modified,
    no TTL or pairs: flags checked by the caller), in one join; None when a field is out of
    range or unannounced, so that `_encode_meta` reports it."""
    name = n.name
    mime = n.mime
    last_modified = n.last_modified
    ttl = n.ttl
    if (
        len(name) > MAX_NAME_LENGTH
        or len(mime) > MAX_MIME_LENGTH
        or not 0 <= last_modified <= MAX_LAST_MODIFIED
        or n.pairs
        or (ttl is not _EMPTY_TTL and (ttl.count or ttl.unit))
    ):
        return None
    # Size: DataSize, data, flags, name and MIME with their lengths, last-modified.
    size = 4 + data_size + 8 + len(name) + len(mime)
    return b"".join(
        (
            _pack_head(n.cookie, n.key, size, data_size),
            data,
            _BYTE[flags],
            _BYTE[len(name)],
            name,
            _BYTE[len(mime)],
            mime,
            _pack_upload_end_v3(
                last_modified >> 32,
                last_modified & 0xFFFFFFFF,
                n.checksum,
                n.append_at_ns if append_at_ns is None else append_at_ns,
            ),
            _PADDING[NEEDLE_PADDING - ((NEEDLE_HEADER_SIZE + size + 12) % NEEDLE_PADDING)],
        )
    )


def encode_needle_head(
    n: Needle, data_size: int | None = None, version: int = CURRENT_VERSION
) -> bytes:
    """Header and DataSize: what precedes the data when a large body is streamed.

    `data_size` defaults to `len(n.data)`; `n.data` itself is not used, so a streaming writer
    passes a needle without data. `head + data + tail == encode_needle(n)`.
    """
    if data_size is None:
        data_size = len(n.data)
    if version not in (VERSION_2, VERSION_3):
        raise _unsupported_version(version)
    if data_size == 0:
        return _pack_header(n.cookie, n.key, 0)
    _check_data_size(data_size)
    return _pack_head(n.cookie, n.key, 4 + data_size + len(_encode_meta(n)), data_size)


def encode_needle_tail(
    n: Needle,
    data_size: int | None = None,
    version: int = CURRENT_VERSION,
    *,
    checksum: int | None = None,
    append_at_ns: int | None = None,
) -> bytes:
    """Metadata, checksum, AppendAtNs and padding: what follows the streamed data.

    `checksum` and `append_at_ns` override the needle's fields (a streaming writer knows the CRC
    only after the last chunk).
    """
    if data_size is None:
        data_size = len(n.data)
    if checksum is None:
        checksum = n.checksum
    if append_at_ns is None:
        append_at_ns = n.append_at_ns
    if version == VERSION_3:
        tail = _pack_tail_v3(checksum, append_at_ns)
    elif version == VERSION_2:
        tail = _pack_tail_v2(checksum)
    else:
        raise _unsupported_version(version)
    if data_size == 0:
        return tail + _PADDING[padding_length(0, version)]
    meta = _encode_meta(n)
    size = 4 + data_size + len(meta)
    return b"".join((meta, tail, _PADDING[padding_length(size, version)]))


def encode_tombstone(
    cookie: int,
    key: int,
    checksum: int = 0,
    append_at_ns: int = 0,
    version: int = CURRENT_VERSION,
) -> bytes:
    """A Size-0 record: the delete marker (carrying the deleted needle's checksum, quirk A23)
    and also the form of an empty file. 32 bytes in version 3, 24 in version 2."""
    if version == VERSION_3:
        return b"".join(
            (_pack_header(cookie, key, 0), _pack_tail_v3(checksum, append_at_ns), _PADDING[4])
        )
    if version == VERSION_2:
        return b"".join((_pack_header(cookie, key, 0), _pack_tail_v2(checksum), _PADDING[4]))
    raise _unsupported_version(version)


def _encode_meta(n: Needle) -> bytes:
    """Flags and the optional fields they announce, checked against the format's limits."""
    flags = n.flags
    name = n.name
    mime = n.mime
    pairs = n.pairs
    last_modified = n.last_modified
    ttl = n.ttl
    if flags & ~0xFF or flags < 0:
        raise ValueError(f"needle flags must be one byte: {flags:#x} (key={n.key:x})")
    if (
        (name and not flags & FLAG_HAS_NAME)
        or (mime and not flags & FLAG_HAS_MIME)
        or (last_modified and not flags & FLAG_HAS_LAST_MODIFIED)
        or (ttl is not _EMPTY_TTL and (ttl.count or ttl.unit) and not flags & FLAG_HAS_TTL)
        or (pairs and not flags & FLAG_HAS_PAIRS)
    ):
        raise ValueError(f"needle has a field its flags {flags:#04x} do not announce: {n!r:.200}")
    parts = [_BYTE[flags]]
    if flags & FLAG_HAS_NAME:
        if len(name) > MAX_NAME_LENGTH:
            raise BadRequest(f"file name longer than {MAX_NAME_LENGTH} bytes", key=f"{n.key:x}")
        parts += (_BYTE[len(name)], name)
    if flags & FLAG_HAS_MIME:
        if len(mime) > MAX_MIME_LENGTH:
            raise BadRequest(f"mime type longer than {MAX_MIME_LENGTH} bytes", key=f"{n.key:x}")
        parts += (_BYTE[len(mime)], mime)
    if flags & FLAG_HAS_LAST_MODIFIED:
        if not 0 <= last_modified <= MAX_LAST_MODIFIED:
            raise BadRequest(f"last-modified out of range: {last_modified}", key=f"{n.key:x}")
        parts.append(_pack_last_modified(last_modified >> 32, last_modified & 0xFFFFFFFF))
    if flags & FLAG_HAS_TTL:
        parts.append(ttl.to_bytes())
    if flags & FLAG_HAS_PAIRS:
        if len(pairs) > MAX_PAIRS_LENGTH:
            raise BadRequest(f"pairs longer than {MAX_PAIRS_LENGTH} bytes", key=f"{n.key:x}")
        parts += (_pack_u16(len(pairs)), pairs)
    return b"".join(parts)


def _check_data_size(data_size: int) -> None:
    if data_size > MAX_DATA_SIZE:
        raise PayloadTooLarge(f"needle data of {data_size} bytes exceeds {MAX_DATA_SIZE}")


# ---------------------------------------------------------------------------------------------
# decoding


def decode_header(b: BytesLike, offset: int = 0) -> tuple[int, int, int]:
    """(cookie, key, Size) from the 16 bytes at `offset`."""
    if offset < 0 or len(b) - offset < NEEDLE_HEADER_SIZE:
        raise CorruptNeedle("needle header truncated", offset=offset)
    cookie, key, size = _unpack_header(b, offset)
    return cookie, key, size


def decode_footer(
    record: BytesLike, version: int = CURRENT_VERSION, size: int | None = None
) -> tuple[int, int]:
    """(stored checksum, AppendAtNs) of a record whose header and footer `record` holds, read
    where its header's Size (or `size`, when given) puts them, unchecked (AppendAtNs is 0
    before version 3). A record too short for them raises `CorruptNeedle`."""
    if len(record) < NEEDLE_HEADER_SIZE:
        raise CorruptNeedle("needle header truncated")
    key, stored_size = _unpack_header(record, 0)[1:]
    size = stored_size if size is None else size
    tail_len = tail_length(version)
    at = NEEDLE_HEADER_SIZE + size
    if size < 0 or at + tail_len > len(record):
        raise _corrupt(f"record too short for the footer of body size {size}", None, None, key)
    if tail_len == 12:
        checksum, append_at_ns = _unpack_tail_v3(record, at)
        return checksum, append_at_ns
    return _unpack_u32(record, at)[0], 0


def decode_needle(
    record: BytesLike,
    version: int = CURRENT_VERSION,
    *,
    verify: bool = True,
    volume_id: int | None = None,
    offset: int | None = None,
) -> Needle:
    """Decode one record (header through checksum/AppendAtNs; padding may be absent).

    With `verify` (the default) a record with Size > 0 must carry the CRC-32C of its data in raw
    or legacy form, and the returned checksum is the raw CRC. Without it the checksum is the
    stored field, unchecked. Anything inconsistent raises `CorruptNeedle` naming the volume,
    offset and key. Bytes input is sliced without copying more than the fields; other buffers
    are copied once first.
    """
    if type(record) is not bytes:
        record = bytes(record)
    length = len(record)
    if length < NEEDLE_HEADER_SIZE:
        raise _corrupt("record shorter than the needle header", volume_id, offset, None)
    cookie, key, size = _unpack_header(record, 0)
    if version == VERSION_3:
        tail_len = 12
    elif version in (VERSION_2, VERSION_1):
        tail_len = 4
    else:
        raise _unsupported_version(version)
    body_end = NEEDLE_HEADER_SIZE + size
    if size < 0 or body_end + tail_len > length:
        raise _corrupt(
            f"record of {length} bytes cannot hold body size {size}", volume_id, offset, key
        )
    if tail_len == 12:
        checksum, append_at_ns = _unpack_tail_v3(record, body_end)
    else:
        checksum = _unpack_u32(record, body_end)[0]
        append_at_ns = 0
    if size == 0:
        return _make_needle(
            cookie, key, b"", 0, b"", b"", 0, _EMPTY_TTL, b"", checksum, append_at_ns
        )

    flags = last_modified = 0
    name = mime = pairs = b""
    ttl = _EMPTY_TTL
    if version == VERSION_1:
        data = record[NEEDLE_HEADER_SIZE:body_end]
    else:
        if size < 4:
            raise _corrupt(f"body size {size} cannot hold DataSize", volume_id, offset, key)
        pos = NEEDLE_HEAD_SIZE + _unpack_u32(record, NEEDLE_HEADER_SIZE)[0]
        if pos > body_end:
            raise _corrupt("DataSize runs past the body", volume_id, offset, key)
        if pos == NEEDLE_HEAD_SIZE:
            # Every writer stores empty data as Size 0 (no body): a body without data is
            # zeros where a record was never written whole, whose zero CRC would match.
            raise _corrupt(f"body of size {size} holds no data", volume_id, offset, key)
        data = record[NEEDLE_HEAD_SIZE:pos]
        # The common upload shape (name, mime, last-modified) is parsed inline: this runs on
        # every read. Anything else goes through the general parser.
        if pos < body_end:
            flags = record[pos]
            if flags & _META_FLAGS == _UPLOAD_FLAGS and (
                (name_stop := pos + 2 + record[pos + 1]) < body_end
                and (mime_stop := name_stop + 1 + record[name_stop]) + 5 == body_end
            ):
                name = record[pos + 2 : name_stop]
                mime = record[name_stop + 1 : mime_stop]
                high, low = _unpack_last_modified(record, mime_stop)
                last_modified = (high << 32) | low
            else:
                try:
                    flags, name, mime, last_modified, ttl, pairs = _decode_meta(
                        record, pos, body_end
                    )
                except _FieldOverrun as e:
                    raise _corrupt(str(e), volume_id, offset, key) from None
    if verify:
        crc = _crc32c(data)
        if checksum != crc and checksum != legacy_checksum(crc):
            raise _corrupt(
                f"crc mismatch: stored {checksum:08x}, data {crc:08x}", volume_id, offset, key
            )
        checksum = crc
    return _make_needle(
        cookie, key, data, flags, name, mime, last_modified, ttl, pairs, checksum, append_at_ns
    )


def decode_needle_meta(
    head: BytesLike,
    tail: BytesLike,
    version: int = CURRENT_VERSION,
    *,
    volume_id: int | None = None,
    offset: int | None = None,
) -> tuple[Needle, int]:
    """Decode a record without its data, for streaming reads of large bodies.

    `head` is the first NEEDLE_HEAD_SIZE (20) bytes of the record (16 are enough for Size 0);
    `tail` the bytes from the end of the data through the checksum (and AppendAtNs), padding
    optional. Returns the needle with empty `data` and the *stored*, unverified checksum, and
    the DataSize; the caller streams the data and checks it with `checksum_matches`.
    """
    if len(head) < NEEDLE_HEADER_SIZE:
        raise _corrupt("record shorter than the needle header", volume_id, offset, None)
    cookie, key, size = _unpack_header(head, 0)
    if version not in (VERSION_2, VERSION_3):
        raise _unsupported_version(version)
    tail_len = _TAIL_LENGTH[version]
    if size < 0:
        raise _corrupt(f"negative body size {size}", volume_id, offset, key)
    data_size = meta_len = 0
    if size > 0:
        if size < 4 or len(head) < NEEDLE_HEAD_SIZE:
            raise _corrupt("record too short for DataSize", volume_id, offset, key)
        data_size = _unpack_u32(head, NEEDLE_HEADER_SIZE)[0]
        if not data_size:  # see decode_needle
            raise _corrupt(f"body of size {size} holds no data", volume_id, offset, key)
        meta_len = size - 4 - data_size
        if meta_len < 0:
            raise _corrupt("DataSize runs past the body", volume_id, offset, key)
    if len(tail) < meta_len + tail_len:
        raise _corrupt("record tail truncated", volume_id, offset, key)
    if type(tail) is not bytes:
        tail = bytes(tail)
    if tail_len == 12:
        checksum, append_at_ns = _unpack_tail_v3(tail, meta_len)
    else:
        checksum, append_at_ns = _unpack_u32(tail, meta_len)[0], 0
    try:
        flags, name, mime, last_modified, ttl, pairs = _decode_meta(tail, 0, meta_len)
    except _FieldOverrun as e:
        raise _corrupt(str(e), volume_id, offset, key) from None
    needle = _make_needle(
        cookie, key, b"", flags, name, mime, last_modified, ttl, pairs, checksum, append_at_ns
    )
    return needle, data_size


class _FieldOverrun(Exception):
    """An optional field's length runs past the body (turned into CorruptNeedle by callers)."""


def _decode_meta(buf: bytes, pos: int, end: int) -> tuple[int, bytes, bytes, int, Ttl, bytes]:
    """Flags and optional fields in buf[pos:end], consumed in order while bytes remain, as the
    reference reads them."""
    if pos >= end:
        return 0, b"", b"", 0, _EMPTY_TTL, b""
    flags = buf[pos]
    pos += 1
    name = mime = pairs = b""
    last_modified = 0
    ttl = _EMPTY_TTL
    if flags & FLAG_HAS_NAME and pos < end:
        name, pos = _short_field(buf, pos, end, "name")
    if flags & FLAG_HAS_MIME and pos < end:
        mime, pos = _short_field(buf, pos, end, "mime")
    if flags & FLAG_HAS_LAST_MODIFIED and pos < end:
        if pos + 5 > end:
            raise _FieldOverrun("last-modified runs past the body")
        high, low = _unpack_last_modified(buf, pos)
        last_modified = (high << 32) | low
        pos += 5
    if flags & FLAG_HAS_TTL and pos < end:
        if pos + 2 > end:
            raise _FieldOverrun("ttl runs past the body")
        ttl = Ttl.from_bytes(buf[pos : pos + 2])
        pos += 2
    if flags & FLAG_HAS_PAIRS and pos < end:
        if pos + 2 > end:
            raise _FieldOverrun("pairs size runs past the body")
        stop = pos + 2 + _unpack_u16(buf, pos)[0]
        if stop > end:
            raise _FieldOverrun("pairs run past the body")
        pairs = buf[pos + 2 : stop]
    return flags, name, mime, last_modified, ttl, pairs


def _short_field(buf: bytes, pos: int, end: int, what: str) -> tuple[bytes, int]:
    """A field of a one-byte length and that many bytes at buf[pos], and the position after."""
    stop = pos + 1 + buf[pos]
    if stop > end:
        raise _FieldOverrun(f"{what} runs past the body")
    return buf[pos + 1 : stop], stop


def _corrupt(
    reason: str, volume_id: int | None, offset: int | None, key: int | None
) -> CorruptNeedle:
    return CorruptNeedle(
        reason, volume_id=volume_id, offset=offset, key=None if key is None else f"{key:x}"
    )


def _unsupported_version(version: int) -> CorruptVolume:
    return CorruptVolume(f"unsupported needle version {version}")
