"""JSON Web Tokens signed with HMAC, as SeaweedFS signs and checks them (spec §10.2).

A token is three base64url segments without padding, joined by dots:

| segment | content |
|---|---|
| header | `{"alg":"HS256","typ":"JWT"}` (keys sorted, as Go marshals a map) |
| claims | a JSON object, e.g. `{"fid":"3,01637037d6","exp":1700000010}` |
| signature | HMAC of the ASCII text `<header>.<claims>` (the segments as sent) with the key |

`sign` writes HS256 tokens byte-identical to weed's for the same claims, key and time.
`decode` accepts exactly what weed 4.48 accepts (golang-jwt v5 behind a key function that admits
any HMAC method), because a token weed's master signed must pass a weedpy volume server and the
reverse:

- `alg` HS256, HS384 or HS512. Only a holder of the key can make any of them, so the two longer
  hashes are no weaker; `none`, the public-key algorithms and anything unknown are refused.
- Segments are unpadded base64url; anything else (padding, `+`, `/`, spaces) is refused.
- The claims are a JSON object. Registered claims of the wrong type are refused: `iss`, `sub`,
  `jti` strings, `aud` a string or a list of strings, `exp`, `nbf`, `iat` numbers (or, as Go's
  `json.Number` allows, strings holding a number). `null` means absent. Names match without
  regard to ASCII case and the last duplicate wins, as Go's `encoding/json` decodes them.
- `exp` (whole seconds, the fraction dropped) holds while `now < exp`; `nbf` once
  `now >= nbf`; either may be absent. `iat` is not checked.

No I/O and no clock of its own: `now` is passed in.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["HMAC_ALGORITHMS", "TokenError", "decode", "sign"]

HMAC_ALGORITHMS: Mapping[str, Any] = {
    "HS256": hashlib.sha256,
    "HS384": hashlib.sha384,
    "HS512": hashlib.sha512,
}
"""The algorithms a token may be signed with (weed's key function admits any HMAC method)."""

_HS256_HEADER = b"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
assert base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=") == _HS256_HEADER
_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")
# Registered claims and the JSON types Go's RegisteredClaims decodes them from.
_STRING_CLAIMS = ("iss", "sub", "jti")
_TIME_CLAIMS = ("exp", "nbf", "iat")
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


class TokenError(ValueError):
    """A token that does not verify; the message says why (for logs, never for clients)."""


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def sign(claims: Mapping[str, Any], key: bytes) -> str:
    """An HS256 token carrying `claims` (serialised in the given order, compactly)."""
    payload = _b64(json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode())
    signing_input = _HS256_HEADER + b"." + payload
    signature = hmac.new(key, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + _b64(signature)).decode("ascii")


def decode(token: str, key: bytes, now: float) -> dict[str, Any]:
    """The claims of `token` if it is signed with `key` and valid at `now` (Unix seconds);
    `TokenError` otherwise. Claim names come back lower-cased for the registered ones."""
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError(f"token has {len(parts)} segments, not 3")
    header = dict(_json_object(_segment(parts[0], "header"), "header"))
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise TokenError("token header names no signing algorithm")
    digest = HMAC_ALGORITHMS.get(alg)
    if digest is None:
        raise TokenError(f"signing algorithm {alg!r} is not accepted")
    claims = _claims(_json_object(_segment(parts[1], "claims"), "claims"))
    signature = _segment(parts[2], "signature")
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    if not hmac.compare_digest(hmac.new(key, signing_input, digest).digest(), signature):
        raise TokenError("signature does not match the key")
    exp = claims.get("exp")
    if exp is not None and not now < exp:
        raise TokenError(f"token expired at {exp}")
    nbf = claims.get("nbf")
    if nbf is not None and now < nbf:
        raise TokenError(f"token not valid before {nbf}")
    return claims


def _segment(text: str, what: str) -> bytes:
    if not _SEGMENT.fullmatch(text) or len(text) % 4 == 1:
        raise TokenError(f"token {what} is not unpadded base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise TokenError(f"token {what} is not unpadded base64url") from None


class _Pairs(list[tuple[str, Any]]):
    """A JSON object's members in order (duplicates kept), told apart from a JSON array."""


def _json_object(raw: bytes, what: str) -> _Pairs:
    try:
        value = json.loads(raw, object_pairs_hook=_Pairs, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError):
        raise TokenError(f"token {what} is not JSON") from None
    if not isinstance(value, _Pairs):
        raise TokenError(f"token {what} is not a JSON object")
    return value


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")  # Python's json takes NaN and Infinity; Go's not


def _claims(pairs: _Pairs) -> dict[str, Any]:
    """Registered claims checked for type and keyed in lower case (Go matches JSON names to
    struct fields ignoring ASCII case; of several spellings the last one wins)."""
    claims: dict[str, Any] = {}
    for name, value in pairs:
        low = name.lower() if name.isascii() else name
        if low in _STRING_CLAIMS or low == "fid":
            if value is not None and not isinstance(value, str):
                raise TokenError(f"claim {name!r} is not a string")
            claims[low] = value or ""
        elif low == "aud":
            if value is not None and not isinstance(value, str | list):
                raise TokenError("claim 'aud' is not a string or a list")
            if isinstance(value, list) and not all(isinstance(v, str) for v in value):
                raise TokenError("claim 'aud' holds a value that is not a string")
            claims[low] = value
        elif low in _TIME_CLAIMS:
            claims[low] = None if value is None else _seconds(name, value)
        else:
            claims[name] = _plain(value)
    return {k: v for k, v in claims.items() if v is not None or k not in _TIME_CLAIMS}


def _plain(value: Any) -> Any:
    """A JSON value with its objects as dicts again (the last of duplicate names wins)."""
    if isinstance(value, _Pairs):
        return {k: _plain(v) for k, v in value}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _seconds(name: str, value: object) -> int:
    """A NumericDate as golang-jwt reads it: a JSON number, or a string that is one, in
    seconds; the fraction is dropped (its precision is one second)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TokenError(f"claim {name!r} is not a number")
    if isinstance(value, str):
        if not _JSON_NUMBER.fullmatch(value):
            raise TokenError(f"claim {name!r} is not a number")
        value = float(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TokenError(f"claim {name!r} is not a finite number")
        return math.floor(value)
    return value
