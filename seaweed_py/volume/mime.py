"""MIME types from file extensions and from content, as the reference's Go runtime decides them.

`type_by_extension` mirrors what `weed` answers: its compiled-in table first, then the first
shared-mime-info `globs2` database found (only plain `*.ext` globs; the first entry
per extension wins because the file is in weight order), and only when no such database exists
the classic `mime.types` files. `detect_content_type` is the subset of Go
`http.DetectContentType` the volume server needs: a few binary signatures, HTML/XML prefixes,
and "text if no control bytes", else `application/octet-stream`.
"""

from __future__ import annotations

import functools
import mimetypes
import re
from pathlib import Path

__all__ = ["detect_content_type", "extension", "type_by_extension"]

# The table compiled into `weed` 4.48 (Go's built-in types overlaid by SeaweedFS's own): what it
# answers for these extensions whatever the machine's databases say, probed with the system
# databases hidden (tests/parity/reference_extension_types.json). They win over the system.
_BUILTIN = {
    ".7z": "application/x-7z-compressed",
    ".aac": "audio/aac",
    ".ai": "application/postscript",
    ".apk": "application/vnd.android.package-archive",
    ".apng": "image/apng",
    ".avi": "video/x-msvideo",
    ".avif": "image/avif",
    ".bin": "application/octet-stream",
    ".bmp": "image/bmp",
    ".bz2": "application/x-bzip2",
    ".c": "text/x-c; charset=utf-8",
    ".c++": "text/x-c++; charset=utf-8",
    ".cc": "text/x-c++; charset=utf-8",
    ".cfg": "text/plain; charset=utf-8",
    ".com": "application/octet-stream",
    ".conf": "text/plain; charset=utf-8",
    ".cpp": "text/x-c++; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
    ".cxx": "text/x-c++; charset=utf-8",
    ".doc": "application/msword",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".eml": "message/rfc822",
    ".env": "text/plain; charset=utf-8",
    ".eps": "application/postscript",
    ".exe": "application/octet-stream",
    ".flac": "audio/flac",
    ".flv": "video/x-flv",
    ".gif": "image/gif",
    ".go": "text/x-go; charset=utf-8",
    ".gz": "application/gzip",
    ".h": "text/x-c-header; charset=utf-8",
    ".hpp": "text/x-c-header; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".ico": "image/x-icon",
    ".ics": "text/calendar; charset=utf-8",
    ".ini": "text/plain; charset=utf-8",
    ".java": "text/x-java; charset=utf-8",
    ".jfif": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".jpg": "image/jpeg",
    ".js": "application/javascript",
    ".json": "application/json",
    ".kt": "text/x-kotlin; charset=utf-8",
    ".log": "text/plain; charset=utf-8",
    ".m4a": "audio/mp4",
    ".markdown": "text/markdown; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".mjs": "application/javascript",
    ".mov": "video/quicktime",
    ".mp3": "audio/mpeg",
    ".mp4": "video/mp4",
    ".oga": "audio/ogg",
    ".ogg": "audio/ogg",
    ".ogv": "video/ogg",
    ".opus": "audio/ogg",
    ".pdf": "application/pdf",
    ".php": "text/x-php; charset=utf-8",
    ".pl": "text/x-perl; charset=utf-8",
    ".png": "image/png",
    ".ppt": "application/vnd.ms-powerpoint",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".ps": "application/postscript",
    ".py": "text/x-python; charset=utf-8",
    ".rar": "application/x-rar-compressed",
    ".rb": "text/x-ruby; charset=utf-8",
    ".rdf": "application/rdf+xml",
    ".rs": "text/x-rust; charset=utf-8",
    ".rtf": "application/rtf",
    ".scala": "text/x-scala; charset=utf-8",
    ".sh": "text/x-shellscript; charset=utf-8",
    ".shtml": "text/html; charset=utf-8",
    ".sql": "text/sql; charset=utf-8",
    ".svg": "image/svg+xml",
    ".swift": "text/x-swift; charset=utf-8",
    ".tar": "application/x-tar",
    ".text": "text/plain; charset=utf-8",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".ts": "text/typescript; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".vtt": "text/vtt; charset=utf-8",
    ".wasm": "application/wasm",
    ".wav": "audio/wav",
    ".webm": "video/webm",
    ".webp": "image/webp",
    ".wmv": "video/x-ms-wmv",
    ".xbl": "text/xml; charset=utf-8",
    ".xbm": "image/x-xbitmap",
    ".xht": "application/xhtml+xml",
    ".xhtml": "application/xhtml+xml",
    ".xls": "application/vnd.ms-excel",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".xml": "application/xml",
    ".xsl": "text/xml; charset=utf-8",
    ".yaml": "text/yaml; charset=utf-8",
    ".yml": "text/yaml; charset=utf-8",
    ".zip": "application/zip",
}

_GLOBS2 = ("/usr/local/share/mime/globs2", "/usr/share/mime/globs2")
_GLOB_SPECIAL = frozenset("?*[")


def extension(name: str) -> str:
    """Go `filepath.Ext`: from the last dot of the last path element, `""` if none."""
    dot = name.rfind(".")
    if dot < 0 or "/" in name[dot:]:
        return ""
    return name[dot:]


def type_by_extension(ext: str) -> str:
    """The MIME type for `ext` (with its leading dot), `""` when unknown."""
    if not ext:
        return ""
    table = _table()
    found = table.get(ext)
    if found is None:
        found = table.get(ext.lower(), "")
    return found


@functools.cache
def _table() -> dict[str, str]:
    table = dict(_BUILTIN)
    for path in _GLOBS2:
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        _merge_globs2(table, text)
        return table
    for ext, mime in mimetypes.MimeTypes().types_map[True].items():
        table.setdefault(ext.lower(), mime)
    return table


def _merge_globs2(table: dict[str, str], text: str) -> None:
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        if len(fields) < 3 or not fields[2].startswith("*."):
            continue
        ext = fields[2][1:]
        if _GLOB_SPECIAL.intersection(ext[1:]):
            continue
        table.setdefault(ext.lower(), fields[1])


# (prefix, type) checked in order; the HTML/XML ones also allow leading whitespace.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "application/pdf"),
    (b"%!PS-Adobe-", "application/postscript"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
    (b"\x1f\x8b\x08", "application/x-gzip"),
    (b"PK\x03\x04", "application/zip"),
    (b"Rar!\x1a\x07", "application/x-rar-compressed"),
    (b"\x00asm", "application/wasm"),
    (b"OggS\x00", "application/ogg"),
    (b"\x1aE\xdf\xa3", "video/webm"),
)
_ANY_SIGNATURE = tuple(prefix for prefix, _ in _SIGNATURES)
_HTML_START = re.compile(
    rb"[\t\n\x0c\r ]*(?:<!doctype html|<html|<head|<script|<iframe|<h1|<div|<font|<table|<a"
    rb"|<style|<title|<b|<body|<br|<p|<!--)[ >]",
    re.IGNORECASE,
).match
_WHITESPACE = b"\t\n\x0c\r "
# Bytes Go's sniffer counts as binary (WHATWG "binary data byte"); `_NOT_BINARY` is the rest, so
# `head.translate(None, _NOT_BINARY)` keeps exactly the binary bytes (at C speed).
_BINARY = bytes([*range(0x00, 0x09), 0x0B, *range(0x0E, 0x1B), *range(0x1C, 0x20)])
_NOT_BINARY = bytes(b for b in range(256) if b not in _BINARY)


# First bytes that no signature, HTML/XML prefix or byte-order mark can start with (they all
# begin with one of `_SNIFF_START`): data opening with one of these is decided by the
# binary-byte check alone, which skips a dozen prefix tests for most uploads.
_SNIFF_START = frozenset(b"%\x89\xffGB\x1fPR\x00O\x1a<\t\n\x0c\r \xfe\xef")
_PLAIN_START = bytes(0 if b in _SNIFF_START else 1 for b in range(256))


def detect_content_type(data: bytes) -> str:
    """Go `http.DetectContentType` for the common cases (first 512 bytes only)."""
    head = data[:512]
    if head and _PLAIN_START[head[0]]:
        if head.translate(None, _NOT_BINARY):
            return "application/octet-stream"
        return "text/plain; charset=utf-8"
    return _sniff(head)


def _sniff(head: bytes) -> str:
    """`detect_content_type` of the first 512 bytes, every rule in order."""
    if head.startswith(_ANY_SIGNATURE):
        return next(mime for prefix, mime in _SIGNATURES if head.startswith(prefix))
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wave"
    if _HTML_START(head):
        return "text/html; charset=utf-8"
    if head.lstrip(_WHITESPACE).startswith(b"<?xml"):
        return "text/xml; charset=utf-8"
    if head.startswith((b"\xfe\xff", b"\xff\xfe")):
        return "text/plain; charset=utf-16" + ("be" if head[0] == 0xFE else "le")
    if head.startswith(b"\xef\xbb\xbf"):
        return "text/plain; charset=utf-8"
    if head.translate(None, _NOT_BINARY):
        return "application/octet-stream"
    return "text/plain; charset=utf-8"
