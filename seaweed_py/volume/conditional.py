"""Conditional reads: `If-Modified-Since` and `If-None-Match` → 304 (spec §3.3 steps 8-9).

`If-Modified-Since` is evaluated first (quirk A8, kept: it is harmless, RFC 9110 would ignore IMS
when INM is present, but both only ever turn a 200 into a 304 for an unchanged needle). The IMS
value must be an HTTP date (`Mon, 02 Jan 2006 15:04:05 GMT`); anything else is ignored. INM must
equal the quoted ETag exactly: no lists, no `W/`, no `*`, as in the reference.
"""

from __future__ import annotations

import calendar
import time

__all__ = ["http_date", "is_not_modified", "parse_http_date"]

_HTTP_DATE = "%a, %d %b %Y %H:%M:%S GMT"


def http_date(unix_seconds: int) -> str:
    """`Tue, 14 Nov 2023 22:13:20 GMT` for a Unix second."""
    return time.strftime(_HTTP_DATE, time.gmtime(unix_seconds))


def parse_http_date(text: str) -> int | None:
    """Unix seconds of an RFC 1123 GMT date, `None` if it does not parse."""
    try:
        return calendar.timegm(time.strptime(text, _HTTP_DATE))
    except ValueError:
        return None


def is_not_modified(
    if_modified_since: str | None,
    if_none_match: str | None,
    last_modified: int,
    etag: str,
) -> bool:
    """True when the request's validators say the client's copy is current.

    `etag` is the quoted form sent in the `ETag` header; `last_modified` is Unix seconds (0 when
    the needle has none, which disables the IMS check).
    """
    if if_modified_since and last_modified:
        since = parse_http_date(if_modified_since)
        if since is not None and since >= last_modified:
            return True
    return bool(if_none_match) and if_none_match == etag
