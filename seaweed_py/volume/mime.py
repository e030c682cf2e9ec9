"""MIME types from file extensions and from content, as the reference's Go runtime decides them.

`type_by_extension` mirrors Go `mime.TypeByExtension` on Linux: a small built-in table first,
then the first shared-mime-info `globs2` database found (only plain `*.ext` globs; the first entry
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

# Go's builtinTypesLower (src/mime/type.go); these win over the system database.
_BUILTIN = {
    ".avif": "image/avif",
    ".css": "text/css; charset=utf-8",
    ".gif": "image/gif",
    ".htm": "text/html; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".jpeg": "image/jpeg",
    ".jpg": "image/jpeg",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".mjs": "text/javascript; charset=utf-8",
    ".pdf": "application/pdf",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".wasm": "application/wasm",
    ".webp": "image/webp",
    ".xml": "text/xml; charset=utf-8",
    # Not in Go's table nor in shared-mime-info, yet `weed` 4.48 serves these as
    # application/octet-stream (observed), so the reference's runtime registers them.
    ".bin": "application/octet-stream",
    ".com": "application/octet-stream",
    ".exe": "application/octet-stream",
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


def detect_content_type(data: bytes) -> str:
    """Go `http.DetectContentType` for the common cases (first 512 bytes only)."""
    head = data[:512]
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
