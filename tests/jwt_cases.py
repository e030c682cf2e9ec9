"""Hand-made JWTs for one file id, and whether weed 4.48 accepts each (no tests here).

The same table drives the unit tests of `seaweed_py.security.jwt` and the parity test that
sends every token to a weed and a weedpy volume server (tests/parity/test_jwt.py); the
expectations were observed on weed 4.48 (golang-jwt v5).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["CASES", "KEY", "JwtCase", "make_token"]

KEY = b"the-cluster-signing-key"

_DIGESTS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_token(
    claims: dict[str, Any] | bytes,
    *,
    alg: str = "HS256",
    key: bytes = KEY,
    header: dict[str, Any] | None = None,
) -> str:
    """A token signed by hand (not by the code under test); `claims` may be raw JSON bytes."""
    head = _b64(json.dumps(header or {"alg": alg, "typ": "JWT"}).encode())
    raw = claims if isinstance(claims, bytes) else json.dumps(claims).encode()
    body = _b64(raw)
    digest = _DIGESTS.get(alg, hashlib.sha256)
    signature = _b64(hmac.new(key, f"{head}.{body}".encode(), digest).digest())
    return f"{head}.{body}.{signature}"


@dataclass(frozen=True)
class JwtCase:
    name: str
    token: Callable[[str, int], str]
    """(fid, now) -> token"""
    accepted: bool


def _raw(template: str) -> Callable[[str, int], str]:
    """Raw JSON claims; `@F` stands for the fid."""
    return lambda fid, now: make_token(template.replace("@F", fid).encode())


CASES = (
    JwtCase("good", lambda f, n: make_token({"fid": f, "exp": n + 30}), True),
    JwtCase("HS384", lambda f, n: make_token({"fid": f, "exp": n + 30}, alg="HS384"), True),
    JwtCase("HS512", lambda f, n: make_token({"fid": f, "exp": n + 30}, alg="HS512"), True),
    JwtCase("alg none", lambda f, n: make_token({"fid": f}, header={"alg": "none"}), False),
    JwtCase("alg hs256", lambda f, n: make_token({"fid": f}, header={"alg": "hs256"}), False),
    JwtCase("alg RS256", lambda f, n: make_token({"fid": f}, header={"alg": "RS256"}), False),
    JwtCase("no alg", lambda f, n: make_token({"fid": f}, header={"typ": "JWT"}), False),
    JwtCase(
        "other typ", lambda f, n: make_token({"fid": f}, header={"alg": "HS256", "typ": "x"}), True
    ),
    JwtCase("wrong key", lambda f, n: make_token({"fid": f, "exp": n + 30}, key=b"other"), False),
    JwtCase("no exp", lambda f, n: make_token({"fid": f}), True),
    JwtCase("exp null", lambda f, n: make_token({"fid": f, "exp": None}), True),
    JwtCase("expired", lambda f, n: make_token({"fid": f, "exp": n - 1}), False),
    JwtCase("exp far past", lambda f, n: make_token({"fid": f, "exp": 1}), False),
    JwtCase("exp as string", lambda f, n: make_token({"fid": f, "exp": str(n + 30)}), True),
    JwtCase("exp word", lambda f, n: make_token({"fid": f, "exp": "soon"}), False),
    JwtCase("exp fraction", lambda f, n: make_token({"fid": f, "exp": n + 30.5}), True),
    JwtCase("exp exponent", _raw('{"fid":"@F","exp":1e10}'), True),
    JwtCase("exp NaN", _raw('{"fid":"@F","exp":NaN}'), False),
    JwtCase("exp true", lambda f, n: make_token({"fid": f, "exp": True}), False),
    JwtCase("nbf ahead", lambda f, n: make_token({"fid": f, "exp": n + 30, "nbf": n + 20}), False),
    JwtCase("nbf behind", lambda f, n: make_token({"fid": f, "exp": n + 30, "nbf": n - 20}), True),
    JwtCase("iat ahead", lambda f, n: make_token({"fid": f, "exp": n + 30, "iat": n + 999}), True),
    JwtCase("iat word", lambda f, n: make_token({"fid": f, "iat": "x"}), False),
    JwtCase("sub number", lambda f, n: make_token({"fid": f, "sub": 5}), False),
    JwtCase("aud list", lambda f, n: make_token({"fid": f, "aud": ["a"]}), True),
    JwtCase("aud number", lambda f, n: make_token({"fid": f, "aud": 5}), False),
    JwtCase("FID spelled upper", lambda f, n: make_token({"FID": f}), True),
    JwtCase("fid then Fid", _raw('{"fid":"@F","Fid":"9,0123456789"}'), False),
    JwtCase("fid then FID", _raw('{"fid":"9,0123456789","FID":"@F"}'), True),
    JwtCase("fid a number", lambda f, n: make_token({"fid": 5}), False),
    JwtCase("claims an array", lambda f, n: make_token(f'[["fid","{f}"]]'.encode()), False),
    JwtCase("claims not JSON", lambda f, n: make_token(b"fid"), False),
    JwtCase("another fid", lambda f, n: make_token({"fid": f.replace(",", ",ff", 1)}), False),
    JwtCase("padded", lambda f, n: make_token({"fid": f}) + "=", False),
    JwtCase("two segments", lambda f, n: make_token({"fid": f}).rsplit(".", 1)[0], False),
    JwtCase("four segments", lambda f, n: make_token({"fid": f}) + ".x", False),
)
