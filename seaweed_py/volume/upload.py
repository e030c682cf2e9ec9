"""Uploads (POST/PUT bodies) parsed into an `Upload`: what the needle will store (spec §3.5).

Body forms:

* multipart (POST with an empty or `form-data` Content-Type): the first part, or if it has no
  file name the first later part that has one; the part's own `Content-Type`,
  `Content-Encoding: gzip` and `Content-MD5` apply;
* raw (PUT, or POST with any other type): the request body; the file name comes from
  `Content-Disposition` (`filename=` over `name=`), else it is the last URL segment, i.e. the fid
  itself (quirk A3, kept: downloads of raw uploads have always carried
  `Content-Disposition: inline; filename="3,01637037d6"` and clients save files by it).

A replica copy (`type=replicate`) stores the part's name and MIME type exactly as sent: the
sender already resolved them.

Upload options are read from the query string only; multipart text fields named `ts`, `ttl` or
`cm` are ignored (quirk A11, kept: the reference never read them, so honouring them now would
change what existing clients store). File names and MIME types of 256 bytes or more are
dropped, not truncated (quirk A12, kept: a truncated name is a wrong name).

Automatic compression (§15.1): data that is not already gzipped and not a replica copy is
gzipped (level 1) when its type is certainly compressible and gzip saves more than 10 %. The
reference passes the whole base file name where it means the extension (quirk A4); we pass the
extension, as the rules intend. The stored bytes and the client-visible content are the same
either way; only which needles end up stored gzipped differs. The gzip stream comes from ISA-L
(`isal`), three times faster than zlib at the same level and about as small; any gzip reader
decodes it.

Most uploads are one multipart file part whose header block a client repeats verbatim for every
file of a kind; everything that block decides (name, MIME type, whether the data is sniffed or
compressed) is worked out once per block (`_file_part`), so such an upload costs little beyond
slicing its data out and, when compressible, gzipping it. Raw bodies likewise memoise what their
declared type and extension decide (`_raw_rule`). Anything unusual (an MD5 to check, gzipped
data to measure, a file part after a text field...) takes the general path, `_parse_upload`,
which gives the same result for every request the shortcuts take.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import orjson
from isal import isal_zlib

from seaweed_py.errors import BadRequest, PayloadTooLarge
from seaweed_py.formats.needle import MAX_LAST_MODIFIED
from seaweed_py.formats.numbers import I64_MAX, parse_uint
from seaweed_py.formats.ttl import Ttl
from seaweed_py.volume.mime import detect_content_type, extension, type_by_extension
from seaweed_py.volume.spool import MAX_SLICE, SpooledBody

__all__ = [
    "MAX_NAME_BYTES",
    "Upload",
    "UploadOptions",
    "canonical_header_name",
    "gunzip",
    "is_compressible",
    "parse_spooled_upload",
    "parse_upload",
]

MAX_NAME_BYTES = 255
_INFLATE_CHUNK = 1 << 20

Buffer = bytes | SpooledBody
"""A whole request body: in memory, or spooled to a file (read in bounded pieces)."""
_MAX_PAIRS_BYTES = 65535
_OCTET = "application/octet-stream"
_PAIR_PREFIX = "seaweed-"
# Header blocks, names and types are memoised only up to this length: the memos must stay
# small whatever clients send.
_MEMO_LIMIT = 512


@dataclass(frozen=True, slots=True)
class UploadOptions:
    """The query-string options of an upload (quirk A11: the query string only)."""

    last_modified: int
    ttl: Ttl
    chunk_manifest: bool
    replicate: bool
    fsync: bool = False
    """`fsync=true`: acknowledge only once the data is on disk, whatever `-fsync` says."""
    token: str = ""
    """The client's write token (when a signing key is set): forwarded to the replicas."""
    append_at_ns: int | None = None
    """`appendAtNs` of a replica copy: the time its first server stamped the write (weedpy's
    replicas keep it, storage/stamps.py)."""

    @classmethod
    def from_query(cls, query: Mapping[str, str], now: int) -> UploadOptions:
        if not query:
            return _plain_options(now)
        ts = query.get("ts", "")
        replicate = query.get("type") == "replicate"
        return cls(
            last_modified=_last_modified(ts) if ts else now,
            ttl=Ttl.parse(query.get("ttl", "")),
            chunk_manifest=query.get("cm", "").lower() in ("true", "1", "t"),
            replicate=replicate,
            fsync=query.get("fsync") == "true",
            append_at_ns=append_at_ns(query),
        )


def append_at_ns(query: Mapping[str, str]) -> int | None:
    """The `appendAtNs` of a replica copy (a write or delete with `type=replicate`): None when
    absent; 400 when malformed or on a request that is no replica copy."""
    text = query.get("appendAtNs")
    if text is None:
        return None
    if query.get("type") != "replicate":
        raise BadRequest("appendAtNs is only for replica copies (type=replicate)")
    value = parse_uint(text, I64_MAX)
    if not value:
        raise BadRequest(f"invalid appendAtNs {text!r}: want nanoseconds in 1..{I64_MAX}")
    return value


def _last_modified(ts: str) -> int:
    """`ts`: the blob's modification time in Unix seconds, as the needle stores it (5 bytes).
    The reference reads anything else as "now" and stores larger values cut to 5 bytes; a
    client that sent a time must learn that it was not kept (400)."""
    value = parse_uint(ts, MAX_LAST_MODIFIED)
    if value is None:
        raise BadRequest(f"invalid ts {ts!r}: want Unix seconds in 0..{MAX_LAST_MODIFIED}")
    return value


@functools.lru_cache(maxsize=2)
def _plain_options(now: int) -> UploadOptions:
    """The options of an upload without a query string (most of them), shared per second."""
    return UploadOptions(last_modified=now, ttl=Ttl.EMPTY, chunk_manifest=False, replicate=False)


class Upload(NamedTuple):
    """Everything a needle stores for one upload."""

    data: bytes
    """As stored: gzipped when `gzipped`."""
    name: str
    mime: str
    gzipped: bool
    original_size: int
    pairs: bytes
    """JSON object of the `Seaweed-*` headers without the prefix; `b""` when none."""
    content_md5: str
    options: UploadOptions


class _Body(NamedTuple):
    """Where the file's bytes lie in the request body, and what the request says of them."""

    start: int
    end: int
    filename: str
    content_type: str
    content_encoding: str
    content_md5: str


def canonical_header_name(name: str) -> str:
    """Go `CanonicalMIMEHeaderKey`: `x-foo-bar` → `X-Foo-Bar`."""
    return "-".join(word[:1].upper() + word[1:].lower() for word in name.split("-"))


def _params(value: str) -> dict[str, str]:
    """`attachment; name="f"; filename="a b.txt"` → {name: f, filename: a b.txt}."""
    out: dict[str, str] = {}
    for m in _PARAM_RE.finditer(value):
        key, quoted, bare = m.group(1).lower(), m.group(2), m.group(3)
        out.setdefault(key, quoted.replace('\\"', '"') if quoted is not None else bare.strip())
    return out


_PARAM_RE = re.compile(r';\s*([^\s=;]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))')
_FILENAME_RE = re.compile(r';\s*filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))', re.IGNORECASE)
_BOUNDARY_RE = re.compile(r';\s*boundary\s*=\s*(?:"([^"]*)"|([^;\s]*))', re.IGNORECASE)


def _filename(disposition: str) -> str:
    m = _FILENAME_RE.search(disposition)
    if m is None:
        return ""
    quoted = m.group(1)
    return quoted.replace('\\"', '"') if quoted is not None else m.group(2).strip()


def _base_name(name: str) -> str:
    return name.replace("\\", "/").rsplit("/", 1)[-1]


class _PartHeaders(NamedTuple):
    filename: str
    """As sent (not yet reduced to its base name); `""` when the part has none."""
    content_type: str
    content_encoding: str
    content_md5: str


def _part_headers(block: bytes) -> _PartHeaders:
    """The headers of a part that matter here. Memoised (short blocks only, so the memo
    stays small): a client sends the same block for every upload of the same kind of file."""
    if len(block) <= _MEMO_LIMIT:
        return _part_headers_memo(block)
    return _parse_part_headers(block)


def _parse_part_headers(block: bytes) -> _PartHeaders:
    headers: dict[str, str] = {}
    for line in block.split(b"\r\n"):
        name, sep, value = line.partition(b":")
        if sep:
            headers.setdefault(
                name.strip().lower().decode("latin-1"), value.strip().decode("utf-8", "replace")
            )
    return _PartHeaders(
        filename=_filename(headers.get("content-disposition", "")),
        content_type=headers.get("content-type", ""),
        content_encoding=headers.get("content-encoding", ""),
        content_md5=headers.get("content-md5", ""),
    )


_part_headers_memo = functools.lru_cache(maxsize=256)(_parse_part_headers)


def _framing(content_type: str) -> tuple[bytes, bytes]:
    """(delimiter + CRLF: how a body whose first line is the delimiter opens, CRLF +
    delimiter: what ends a part). Memoised for the usual short Content-Type."""
    if len(content_type) <= _MEMO_LIMIT:
        return _framing_memo(content_type)
    return _framing_of(content_type)


def _framing_of(content_type: str) -> tuple[bytes, bytes]:
    m = _BOUNDARY_RE.search(content_type)
    boundary = (m.group(1) if m.group(1) is not None else m.group(2)) if m else ""
    if not boundary:
        raise BadRequest("no multipart boundary param in Content-Type")
    delimiter = b"--" + boundary.encode("latin-1")
    return delimiter + b"\r\n", b"\r\n" + delimiter


_framing_memo = functools.lru_cache(maxsize=64)(_framing_of)


def _iter_parts(body: Buffer, part_end: bytes) -> Iterator[tuple[_PartHeaders, int, int]]:
    """(headers, data start, data end) of each part, parsed only as far as the caller reads;
    `part_end` is CRLF + delimiter (`_framing`)."""
    delimiter = part_end[2:]
    pos = body.find(delimiter)
    if pos < 0:
        raise BadRequest("multipart body has no boundary delimiter")
    pos += len(delimiter)
    while body[pos : pos + 2] != b"--":
        head_start = body.find(b"\r\n", pos) + 2
        head_end = body.find(b"\r\n\r\n", head_start - 2)
        end = body.find(part_end, head_end + 2) if head_end >= 0 else -1
        if head_start < 2 or end < 0:
            raise BadRequest("truncated multipart body")
        if head_end - head_start > MAX_SLICE:
            # (Only a spooled body can get here: buffered ones are smaller than this.)
            raise BadRequest(f"multipart part headers longer than {MAX_SLICE} bytes")
        yield _part_headers(body[head_start:head_end]), head_end + 4, max(end, head_end + 4)
        pos = end + len(part_end)


def _multipart_body(body: Buffer, content_type: str) -> _Body:
    parts = _iter_parts(body, _framing(content_type)[1])
    first = next(parts, None)
    if first is None:
        raise BadRequest("multipart body has no parts")
    headers, start, end = first
    if not headers.filename:
        for later_headers, later_start, later_end in parts:
            if later_headers.filename:
                headers, start, end = later_headers, later_start, later_end
                break
    return _Body(
        start,
        end,
        _base_name(headers.filename),
        headers.content_type,
        headers.content_encoding,
        headers.content_md5,
    )


def _disposition_name(disposition: str) -> str:
    """The base file name a raw body's Content-Disposition gives (`filename=` over `name=`),
    `""` for none."""
    if not disposition.lower().startswith(("inline", "attachment")):
        disposition = "attachment; " + disposition
    params = _params(disposition)
    filename = params.get("filename") or params.get("name", "")
    return _base_name(filename) if filename else ""


_disposition_name_memo = functools.lru_cache(maxsize=256)(_disposition_name)


def _raw_body(size: int, headers: Mapping[str, str], path: str) -> _Body:
    disposition = headers.get("content-disposition", "")
    filename = _disposition_name(disposition) if disposition else ""
    return _Body(
        start=0,
        end=size,
        filename=filename or path[path.rfind("/") + 1 :],
        content_type=headers.get("content-type", ""),
        content_encoding=headers.get("content-encoding", ""),
        content_md5=headers.get("content-md5", ""),
    )


def _resolve_mime(declared: str, filename: str, raw: bool) -> str:
    # Keyed by the extension, the only part of the name the rule reads: raw uploads are
    # named after their (unique) fid, and would miss every time.
    ext = _ext(filename)
    if len(declared) + len(ext) <= _MEMO_LIMIT:
        return _resolve_mime_memo(declared, ext, raw)
    return _mime_rule(declared, ext, raw)


def _ext(filename: str) -> str:
    """The lower-case extension that the MIME and compression rules go by."""
    return extension(filename).lower()


def _mime_rule(declared: str, ext: str, raw: bool) -> str:
    by_ext = type_by_extension(ext)
    if declared and not declared.startswith(_OCTET) and declared != by_ext:
        return declared
    mime = declared if raw else ""
    if not mime and by_ext and not by_ext.startswith(_OCTET):
        return by_ext
    return mime


_resolve_mime_memo = functools.lru_cache(maxsize=256)(_mime_rule)

_COMPRESS_EXT = frozenset({".svg", ".bmp", ".wav"})
_NO_COMPRESS_EXT = frozenset({".zip", ".rar", ".gz", ".bz2", ".xz", ".zst", ".br"})
_TEXT_EXT = frozenset(
    {
        ".pdf",
        ".txt",
        ".html",
        ".htm",
        ".css",
        ".js",
        ".json",
        ".php",
        ".java",
        ".go",
        ".rb",
        ".c",
        ".cpp",
        ".h",
        ".hpp",
    }
)
_IMAGE_EXT = frozenset({".png", ".jpg", ".jpeg"})
_WAV_MIMES = frozenset({"audio/wave", "audio/wav", "audio/x-wav", "audio/x-pn-wav"})


def is_compressible(ext: str, mime: str) -> tuple[bool, bool]:
    """(compress?, certain?) for an extension and MIME type, in the reference's rule order."""
    if mime.startswith("text/"):
        return True, True
    if ext in _COMPRESS_EXT:
        return True, True
    if mime.startswith("image/"):
        return False, True
    if ext in _NO_COMPRESS_EXT:
        return False, True
    if ext in _TEXT_EXT:
        return True, True
    if ext in _IMAGE_EXT:
        return False, True
    if mime.startswith("application/"):
        if mime.endswith(("zstd", "vnd.rar")):
            return False, True
        if mime.endswith(("xml", "script")):
            return True, True
    if mime in _WAV_MIMES:
        return True, True
    return False, False


# A gzip stream is at least 20 bytes (10 of header, 8 of trailer, 2 of the shortest deflate
# block), so data shorter than this can never shrink by the required 10 %.
_MIN_GZIP_GAIN = 23


def _gzip(data: bytes) -> bytes:
    """Gzip at ISA-L's fastest level (1): 1 KiB takes 7 us against zlib's 17, with output of
    about the same size (wbits 31: a gzip header and trailer)."""
    return isal_zlib.compress(data, 1, 31)


def gunzip(data: bytes) -> bytes:
    """Decompress a gzip stream; corrupt input raises `BadRequest`."""
    try:
        return zlib.decompress(data, 47)
    except zlib.error as exc:
        raise BadRequest(f"invalid gzip data: {exc}") from None


def _should_compress(filename: str, sniffed: str) -> bool:
    ext = _ext(filename)
    if len(ext) + len(sniffed) <= _MEMO_LIMIT:
        return _should_compress_memo(ext, sniffed)
    return _compress_rule(ext, sniffed)


def _compress_rule(ext: str, sniffed: str) -> bool:
    if sniffed.startswith(_OCTET):
        sniffed = ""
    compress, certain = is_compressible(ext, sniffed)
    return compress and certain


_should_compress_memo = functools.lru_cache(maxsize=256)(_compress_rule)


def _maybe_compress(data: bytes, filename: str, mime: str) -> bytes | None:
    sniffed = mime or detect_content_type(data)  # octet-stream: see _type_rule
    if not _should_compress(filename, sniffed):
        return None
    return _packed(data)


def _packed(data: bytes) -> bytes | None:
    """`data` gzipped if that saves more than 10 % (§15.1), else None."""
    if len(data) < _MIN_GZIP_GAIN:
        return None
    packed = _gzip(data)
    return packed if len(packed) * 10 < len(data) * 9 else None


def _pairs(headers: Mapping[str, str]) -> bytes:
    for name in headers:
        if name.startswith(_PAIR_PREFIX):
            return _collect_pairs(headers)
    return b""


def _collect_pairs(headers: Mapping[str, str]) -> bytes:
    pairs = {
        canonical_header_name(name[len(_PAIR_PREFIX) :]): value
        for name, value in headers.items()
        if name.startswith(_PAIR_PREFIX) and len(name) > len(_PAIR_PREFIX)
    }
    if not pairs:
        return b""
    encoded = orjson.dumps(pairs)
    return encoded if len(encoded) <= _MAX_PAIRS_BYTES else b""


def _compare_md5(expected: str, digest: bytes) -> None:
    actual = base64.b64encode(digest).decode()
    if expected != actual:
        raise BadRequest(
            f"Content-MD5 did not match md5 of file data expected [{expected}] received [{actual}]"
        )


def _fits(text: str) -> str:
    if len(text) > MAX_NAME_BYTES:  # a character is at least a byte
        return ""
    if text.isascii():  # a byte per character
        return text
    return _fits_memo(text)


@functools.lru_cache(maxsize=256)
def _fits_memo(text: str) -> str:
    return text if len(text.encode()) <= MAX_NAME_BYTES else ""


def _locate(method: str, path: str, headers: Mapping[str, str], body: Buffer) -> tuple[_Body, bool]:
    content_type = headers.get("content-type", "")
    multipart = method == "POST" and (not content_type or "form-data" in content_type)
    if multipart and not content_type:
        raise BadRequest("request Content-Type isn't multipart/form-data")
    if multipart:
        part = _multipart_body(body, content_type)
        if not part.content_md5 and "content-md5" in headers:
            # The request's own Content-MD5 covers the file when its part names none.
            part = part._replace(content_md5=headers["content-md5"])
        return part, True
    return _raw_body(len(body), headers, path), False


def _stored_mime(part: _Body, multipart: bool, options: UploadOptions) -> str:
    if options.chunk_manifest or options.replicate:
        return part.content_type
    return _resolve_mime(part.content_type, part.filename, raw=not multipart)


def parse_upload(
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    options: UploadOptions,
    size_limit: int,
) -> Upload:
    """Turn one upload request into what its needle stores; bad input raises `BadRequest`,
    data (once gunzipped) above `size_limit` bytes `PayloadTooLarge`.

    `headers` have lower-case names.
    """
    content_type = headers.get("content-type", "")
    if method != "POST" or (content_type and "form-data" not in content_type):
        upload = _raw_upload(path, headers, body, options, size_limit)
    elif content_type and "content-md5" not in headers:
        upload = _first_file_part(body, content_type, headers, options, size_limit)
    else:
        upload = None
    if upload is None:
        upload = _parse_upload(method, path, headers, body, options, size_limit)
    return upload


class _TypeRule(NamedTuple):
    """The stored MIME type and the compression decision that follow from a declared type
    and a file name's extension."""

    ext: str
    """The file name's lower-case extension, as the compression rules see it."""
    mime: str
    """As stored: `""` when 256 bytes or more (quirk A12)."""
    compress: bool | None
    """Whether the data is compressible; None when that depends on sniffing it."""
    by_sniff: dict[str, bool]
    """The compression decision per sniffed type, filled as types are seen (a handful)."""


def _type_rule(declared: str, ext: str, raw: bool, as_sent: bool) -> _TypeRule:
    """`raw`: a raw body (which keeps a declared octet-stream type); `as_sent`: `cm` or
    `type=replicate`, which store the declared type unresolved."""
    mime = declared if as_sent else _mime_rule(declared, ext, raw)
    # Only a missing type is sniffed: a declared octet-stream (kept by raw bodies) counts as
    # "no type" for the rules without being sniffed, so such an upload is stored as sent
    # unless its extension asks for compression (as the reference).
    compress = None if not mime else _compress_rule(ext, mime)
    return _TypeRule(ext, _fits(mime), compress, {})


def _compressed(data: bytes, rule: _TypeRule) -> bytes | None:
    """`data` gzipped when its type calls for it and that pays (§15.1), else None."""
    compress = rule.compress
    if compress is None:
        sniffed = detect_content_type(data)
        compress = rule.by_sniff.get(sniffed)
        if compress is None:
            compress = rule.by_sniff[sniffed] = _compress_rule(rule.ext, sniffed)
    return _packed(data) if compress else None


class _FilePart(NamedTuple):
    """What a multipart file part's header block decides, for `_first_file_part`."""

    name: str
    """As stored: `""` when 256 bytes or more (quirk A12)."""
    rule: _TypeRule


def _file_part(block: bytes, as_sent: bool) -> _FilePart | None:
    """The `_FilePart` of a header block, memoised; None when it names no file or announces
    gzip or an MD5, which `_parse_upload` handles."""
    memo = _FILE_PARTS[as_sent]
    try:
        return memo[block]
    except KeyError:
        return _remember(memo, block, _new_file_part(block, as_sent))


def _new_file_part(block: bytes, as_sent: bool) -> _FilePart | None:
    headers = _parse_part_headers(block)
    if not headers.filename or headers.content_md5 or headers.content_encoding.lower() == "gzip":
        return None
    filename = _base_name(headers.filename)
    return _FilePart(
        _fits(filename), _type_rule(headers.content_type, _ext(filename), False, as_sent)
    )


def _raw_rule(declared: str, ext: str, as_sent: bool) -> _TypeRule:
    """`_type_rule` of a raw body, memoised."""
    key = (declared, ext, as_sent)
    rule = _RAW_RULES.get(key)
    if rule is None:
        rule = _remember(_RAW_RULES, key, _type_rule(declared, ext, True, as_sent))
    return rule


def _remember(memo: dict[K, V], key: K, value: V) -> V:
    """Store `value` in a bounded memo. A client cycling through many keys empties it and
    starts over: it stays small, and the usual handful of keys is back at once."""
    if len(memo) >= _MEMO_ENTRIES:
        memo.clear()
    memo[key] = value
    return value


K = TypeVar("K")
V = TypeVar("V")

# Plain dicts, not lru_cache: a hit costs a third as much, and hits are the rule.
_FILE_PARTS: tuple[dict[bytes, _FilePart | None], dict[bytes, _FilePart | None]] = ({}, {})
_RAW_RULES: dict[tuple[str, str, bool], _TypeRule] = {}
_MEMO_ENTRIES = 256
_new_upload = tuple.__new__


def _first_file_part(
    body: bytes,
    content_type: str,
    headers: Mapping[str, str],
    options: UploadOptions,
    size_limit: int,
) -> Upload | None:
    """`parse_upload` of a multipart body that opens with the file's part (most do), or None
    to take the general path. Only the part's header block and the closing delimiter are
    looked for; the rest of the body is never scanned."""
    opening, part_end = _framing(content_type)
    head_start = len(opening)
    if not body.startswith(opening):
        return None
    head_end = body.find(b"\r\n\r\n", head_start - 2)
    if head_end < 0 or head_end - head_start > _MEMO_LIMIT:
        return None
    start = head_end + 4
    end = body.find(part_end, head_end + 2)
    size = end - start
    if size < 0 or size > size_limit:
        return None
    part = _file_part(body[head_start:head_end], options.chunk_manifest or options.replicate)
    if part is None:
        return None
    return _upload(body[start:end], part.name, part.rule, headers, options)


def _raw_upload(
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    options: UploadOptions,
    size_limit: int,
) -> Upload | None:
    """`parse_upload` of a raw body sent without Content-Encoding or Content-MD5, or None to
    take the general path."""
    size = len(body)
    declared = headers.get("content-type", "")
    disposition = headers.get("content-disposition", "")
    if (
        "content-encoding" in headers
        or "content-md5" in headers
        or size > size_limit
        or len(disposition) > _MEMO_LIMIT
    ):
        return None
    filename = (disposition and _disposition_name_memo(disposition)) or path[path.rfind("/") + 1 :]
    ext = _ext(filename)
    if len(declared) + len(ext) > _MEMO_LIMIT:  # the memo must stay small
        return None
    rule = _raw_rule(declared, ext, options.chunk_manifest or options.replicate)
    return _upload(body, _fits(filename), rule, headers, options)


def _upload(
    data: bytes, name: str, rule: _TypeRule, headers: Mapping[str, str], options: UploadOptions
) -> Upload:
    """The `Upload` of a shortcut: `data` as sent, gzipped if its rule says so and it pays."""
    packed = _compressed(data, rule) if data and not options.replicate else None
    # Upload's fields in order, without its generated __new__.
    return _new_upload(
        Upload,
        (
            data if packed is None else packed,
            name,
            rule.mime,
            packed is not None,
            len(data),
            _pairs(headers),
            "",
            options,
        ),
    )


def _parse_upload(
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    options: UploadOptions,
    size_limit: int,
) -> Upload:
    """`parse_upload` for every request shape."""
    part, multipart = _locate(method, path, headers, body)
    data = body[part.start : part.end] if multipart else body
    gzipped = part.content_encoding.lower() == "gzip"
    original_size = _measure((data,), gzipped, part.content_md5, size_limit)
    mime = _stored_mime(part, multipart, options)
    if not gzipped and not options.replicate and data:
        packed = _maybe_compress(data, part.filename, mime)
        if packed is not None:
            data, gzipped = packed, True
    return Upload(
        data=data,
        name=_fits(part.filename),
        mime=_fits(mime),
        gzipped=gzipped,
        original_size=original_size,
        pairs=_pairs(headers),
        content_md5=part.content_md5,
        options=options,
    )


def _measure(
    pieces: Iterable[bytes | memoryview], gzipped: bool, content_md5: str, limit: int
) -> int:
    """The plain size of the data (gunzipped if `gzipped`, a piece at a time so a gzip bomb
    never unpacks in memory); checks `content_md5` if given. Raises `PayloadTooLarge` past
    `limit`, `BadRequest` for corrupt gzip or an MD5 mismatch."""
    digest = hashlib.md5() if content_md5 else None
    inflate = zlib.decompressobj(47) if gzipped else None
    size = 0
    for piece in pieces:
        for plain in (piece,) if inflate is None else _inflate(inflate, piece):
            size += len(plain)
            if size > limit:
                raise PayloadTooLarge(f"file over the limited {limit} bytes")
            if digest is not None:
                digest.update(plain)
    if inflate is not None and not inflate.eof:
        raise BadRequest("invalid gzip data: truncated stream")
    if digest is not None:
        _compare_md5(content_md5, digest.digest())
    return size


def _inflate(inflate: Any, piece: bytes | memoryview) -> Iterator[bytes]:
    try:
        while piece:
            yield inflate.decompress(piece, _INFLATE_CHUNK)
            piece = inflate.unconsumed_tail
    except zlib.error as exc:
        raise BadRequest(f"invalid gzip data: {exc}") from None


def parse_spooled_upload(
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: SpooledBody,
    options: UploadOptions,
    size_limit: int,
) -> tuple[Upload, int, int]:
    """`parse_upload` for a body spooled to a file: (metadata with empty `data`, start, end of
    the file's bytes in `body`). Such bodies are stored as sent, without automatic compression
    (it would need the whole body in memory). Every pass reads the file in bounded pieces.
    Runs in a worker thread."""
    part, multipart = _locate(method, path, headers, body)
    gzipped = part.content_encoding.lower() == "gzip"
    original_size = part.end - part.start
    if gzipped or part.content_md5:
        original_size = _measure(
            body.chunks(part.start, part.end), gzipped, part.content_md5, size_limit
        )
    upload = Upload(
        data=b"",
        name=_fits(part.filename),
        mime=_fits(_stored_mime(part, multipart, options)),
        gzipped=gzipped,
        original_size=original_size,
        pairs=_pairs(headers),
        content_md5=part.content_md5,
        options=options,
    )
    return upload, part.start, part.end
