"""The two kinds of token a weedpy cluster uses, both HS256 JWTs (`security.jwt`) signed with
`jwt.signing.key` (or, for reads, `jwt.signing.read.key`):

| token | claims | made by | checked by |
|---|---|---|---|
| file id | `{"fid": "<vid>,<key+cookie hex>", "exp": now + expires_after_seconds}` (`exp` left out when the lifetime is 0 or less) | master: `/dir/assign`, `/dir/lookup?fileId=`; a volume server for its own chunk and rollback calls | volume server: POST/PUT/DELETE of that blob (and GET/HEAD with a read key) |
| cluster | `{"sub": "weedpy-cluster", "exp": now + 60}` | master (admin calls), volume server (heartbeats, reports), `weedpy token` | master `/internal/*`, `/vol/grow`, `/col/delete`; volume server `/admin/*` |

File-id tokens are exactly weed's (spec §10.2), so weed and weedpy servers accept each other's.
Cluster tokens are weedpy's own (weed authenticates that traffic with gRPC mTLS instead): a
file-id token, which any client may obtain from `/dir/assign`, has no `sub` and is no cluster
token; a cluster token has no `fid` and opens no blob.

Where a request carries its token (`request_token`), in weed's order: the `jwt` query
parameter, else an `Authorization` header whose first six characters are `bearer` in any case
(the token starts at the eighth), else the `AT` cookie.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from seaweed_py.security.jwt import TokenError, decode, sign

__all__ = [
    "CLUSTER_SUBJECT",
    "CLUSTER_TOKEN_SECONDS",
    "JwtKeys",
    "TokenError",
    "check_cluster_token",
    "check_fid_token",
    "cluster_token",
    "fid_claim",
    "fid_token",
    "request_token",
]

CLUSTER_SUBJECT = "weedpy-cluster"
CLUSTER_TOKEN_SECONDS = 60
"""Lifetime of the cluster tokens servers make: long enough for clocks a little apart, short
enough that one seen on the wire is soon worthless (use TLS where the wire is not trusted)."""


@dataclass(frozen=True, slots=True)
class JwtKeys:
    """The `[jwt.signing]` settings: an empty key means that kind of check is off."""

    signing_key: bytes = b""
    expires_after_seconds: int = 10
    read_key: bytes = b""
    read_expires_after_seconds: int = 60


def fid_claim(vid_text: str, fid_text: str) -> str:
    """What a token must claim to open a blob URL whose vid and key+cookie text (extension
    removed) are these, as weed compares it: a batch suffix `_N` is dropped, so the token of
    an assign with `count=N` opens all N ids."""
    cut = fid_text.rfind("_")
    return f"{vid_text},{fid_text[:cut] if cut > 0 else fid_text}"


def fid_token(key: bytes, expires_after_seconds: int, fid: str, now: float) -> str:
    """A token for the blob `fid` (weed's claim layout, so the bytes match weed's)."""
    if expires_after_seconds > 0:
        return sign({"fid": fid, "exp": int(now) + expires_after_seconds}, key)
    return sign({"fid": fid}, key)


def check_fid_token(token: str, key: bytes, claim: str, now: float) -> None:
    """`TokenError` unless `token` is signed with `key`, valid at `now` and claims `claim`."""
    claims = decode(token, key, now)
    if claims.get("fid") != claim:
        raise TokenError(f"token is for {claims.get('fid')!r}, not {claim!r}")


def cluster_token(key: bytes, now: float, lifetime: int = CLUSTER_TOKEN_SECONDS) -> str:
    return sign({"sub": CLUSTER_SUBJECT, "exp": int(now) + lifetime}, key)


def check_cluster_token(token: str, key: bytes, now: float) -> None:
    """`TokenError` unless `token` is a cluster token signed with `key`, with an expiry, valid
    at `now`."""
    claims = decode(token, key, now)
    if claims.get("sub") != CLUSTER_SUBJECT:
        raise TokenError("token is not a cluster token")
    if "exp" not in claims:
        raise TokenError("cluster token has no expiry")


def request_token(query: Mapping[str, str], headers: Mapping[str, str]) -> str:
    """The token a request carries (`query` and lower-cased `headers`, first values), or ""."""
    token = query.get("jwt", "")
    if token:
        return token
    bearer = headers.get("authorization", "")
    if len(bearer) > 7 and bearer[:6].upper() == "BEARER":
        return bearer[7:]
    cookies = headers.get("cookie", "")
    return _cookie(cookies, "AT") if cookies else ""


def _cookie(header: str, name: str) -> str:
    """A cookie's value as Go's `Request.Cookie` reads it: pairs split on `;` and trimmed; the
    first of that name whose value (one pair of surrounding double quotes removed) holds only
    printable ASCII other than `"`, `;` and `\\`."""
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key != name:
            continue
        if len(value) > 1 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if _COOKIE_VALUE.fullmatch(value):
            return value
    return ""


_COOKIE_VALUE = re.compile(r"[\x20\x21\x23-\x3a\x3c-\x5b\x5d-\x7e]*")
"""Go's `validCookieValueByte`: 0x20-0x7e except `"` (0x22), `;` (0x3b) and `\\` (0x5c)."""
