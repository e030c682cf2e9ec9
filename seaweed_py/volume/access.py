"""Which blob requests a volume server's keys let through (spec §10.2), checked before the
request reaches `read.py` or `write.py`.

| request | needs, when the key is set | checked after |
|---|---|---|
| POST, PUT | a write token claiming the URL's file id | the vid parses (else 400), as weed |
| DELETE | a write token claiming the URL's file id | the key and cookie parse (else 400), as weed |
| GET, HEAD | a read token claiming the URL's file id | nothing: a malformed URL without a token is 401, as weed |

The claim is weed's: `<vid as written in the URL>,<key+cookie text>` with the extension and a
batch suffix `_N` removed (`tokens.fid_claim`), whatever URL form carried it.
"""

from __future__ import annotations

from seaweed_py.formats.fid import parse_key_cookie, parse_volume_id
from seaweed_py.httpkit.auth import check_fid
from seaweed_py.httpkit.request import Request
from seaweed_py.security.tokens import fid_claim
from seaweed_py.volume.urls import split_url_path

__all__ = ["check_delete", "check_read", "check_write", "url_claim"]


def url_claim(path: str) -> str:
    """What a token must claim to open the blob URL `path`."""
    vid_text, fid_text, _, _ = split_url_path(path)
    return fid_claim(vid_text, fid_text)


def check_write(req: Request, key: bytes, now: float) -> str:
    """The request's token, if it may write this blob; `InvalidFileId` for a malformed vid,
    `Unauthorized` for a missing or wrong token."""
    vid_text, fid_text, _, _ = split_url_path(req.path)
    parse_volume_id(vid_text)
    return check_fid(req, key, fid_claim(vid_text, fid_text), now)


def check_delete(req: Request, key: bytes, now: float) -> str:
    """The request's token, if it may delete this blob; `InvalidFileId` for a malformed key
    or cookie, `Unauthorized` for a missing or wrong token."""
    vid_text, fid_text, _, _ = split_url_path(req.path)
    parse_key_cookie(fid_text)
    return check_fid(req, key, fid_claim(vid_text, fid_text), now)


def check_read(req: Request, key: bytes, now: float) -> None:
    """`Unauthorized` unless the request carries a read token for this blob."""
    check_fid(req, key, url_claim(req.path), now)
