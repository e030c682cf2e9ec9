"""Token checks at the edge of both servers (spec §10.2; `seaweed_py.security.tokens`).

    token = check_fid(req, keys.signing_key, fid_claim(vid_text, fid_text), time.time())
    check_cluster(req, keys.signing_key, time.time())

Both raise `Unauthorized` (401) for a request without a valid token. A file-id failure answers
weed's exact `{"error":"wrong jwt"}`; why it failed (expired, another fid, bad signature...) is
logged at DEBUG only, as weed logs it at verbosity 1: the client learns nothing that would
help it forge the next one. Callers check a key is set before calling.
"""

from __future__ import annotations

import logging

from seaweed_py.errors import Unauthorized
from seaweed_py.httpkit.request import Request
from seaweed_py.security.jwt import TokenError
from seaweed_py.security.tokens import check_cluster_token, check_fid_token, request_token

__all__ = ["WRONG_JWT", "check_cluster", "check_fid", "token_of"]

log = logging.getLogger("seaweed_py.httpkit.auth")

WRONG_JWT = "wrong jwt"
_NO_QUERY: dict[str, str] = {}


def token_of(req: Request) -> str:
    """The token `req` carries: `jwt` parameter, else `Authorization: Bearer`, else `AT`."""
    return request_token(req.query if req.query_string else _NO_QUERY, req.headers)


def check_fid(req: Request, key: bytes, claim: str, now: float) -> str:
    """`Unauthorized("wrong jwt")` unless `req` carries a token signed with `key` for the file
    id `claim`, valid at `now`; returns the token (replicas get it forwarded)."""
    token = token_of(req)
    if not token:
        log.debug("%s %s from %s: no jwt", req.method, req.path, req.remote)
        raise Unauthorized(WRONG_JWT)
    try:
        check_fid_token(token, key, claim, now)
    except TokenError as exc:
        log.debug("%s %s from %s: %s", req.method, req.path, req.remote, exc)
        raise Unauthorized(WRONG_JWT) from None
    return token


def check_cluster(req: Request, key: bytes, now: float) -> None:
    """`Unauthorized` unless `req` carries a cluster token signed with `key`, valid at `now`."""
    token = token_of(req)
    if not token:
        raise Unauthorized(f"{req.path} needs a cluster token (the signing key is set)")
    try:
        check_cluster_token(token, key, now)
    except TokenError as exc:
        log.info("%s %s from %s: refused cluster token: %s", req.method, req.path, req.remote, exc)
        raise Unauthorized("wrong cluster token") from None
