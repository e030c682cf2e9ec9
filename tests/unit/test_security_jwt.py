"""`seaweed_py.security.jwt` and `tokens`: tokens verified exactly as weed 4.48 verifies them
(the cases of tests/jwt_cases.py, observed on weed), weed's token layout, claims and the order
in which a request's token is found (spec §10.2)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from seaweed_py.security import jwt, tokens
from seaweed_py.security.jwt import TokenError
from tests.jwt_cases import CASES, KEY, JwtCase, make_token

FID = "3,01637037d6"
NOW = 1_700_000_000


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_decode_accepts_what_weed_accepts(case: JwtCase) -> None:
    token = case.token(FID, NOW)
    if case.accepted:
        tokens.check_fid_token(token, KEY, FID, NOW)
    else:
        with pytest.raises(TokenError):
            tokens.check_fid_token(token, KEY, FID, NOW)


def test_signed_tokens_are_laid_out_as_weed_signs_them() -> None:
    token = tokens.fid_token(KEY, 10, FID, NOW + 0.9)
    head, body, _ = token.split(".")
    assert base64.urlsafe_b64decode(head + "==") == b'{"alg":"HS256","typ":"JWT"}'
    assert base64.urlsafe_b64decode(body + "==") == b'{"fid":"3,01637037d6","exp":1700000010}'
    expected = hmac.new(KEY, f"{head}.{body}".encode(), hashlib.sha256).digest()
    assert token.split(".")[2] == base64.urlsafe_b64encode(expected).rstrip(b"=").decode()
    assert jwt.decode(token, KEY, NOW) == {"fid": FID, "exp": NOW + 10}


def test_a_lifetime_of_zero_or_less_signs_no_expiry() -> None:
    for lifetime in (0, -5):
        token = tokens.fid_token(KEY, lifetime, FID, NOW)
        assert jwt.decode(token, KEY, NOW + 10**9) == {"fid": FID}


@pytest.mark.parametrize(
    ("at", "valid"), [(NOW + 9.999, True), (NOW + 10, False), (NOW + 11, False)]
)
def test_expiry_holds_while_now_is_before_exp(at: float, valid: bool) -> None:
    token = tokens.fid_token(KEY, 10, FID, NOW)
    if valid:
        tokens.check_fid_token(token, KEY, FID, at)
    else:
        with pytest.raises(TokenError, match="expired"):
            tokens.check_fid_token(token, KEY, FID, at)


@pytest.mark.parametrize(
    ("vid", "fid_text", "claim"),
    [
        ("3", "01637037d6", "3,01637037d6"),
        ("3", "01637037d6_7", "3,01637037d6"),  # a batch id opens with the batch's token
        ("03", "01637037d6", "03,01637037d6"),  # the vid as written
        ("3", "_01637037d6", "3,_01637037d6"),  # an underscore at 0 is no suffix
        ("3", "a_b_c", "3,a_b"),
    ],
)
def test_fid_claim_is_the_url_text_without_a_batch_suffix(
    vid: str, fid_text: str, claim: str
) -> None:
    assert tokens.fid_claim(vid, fid_text) == claim


def test_a_cluster_token_opens_no_blob_and_a_fid_token_is_no_cluster_token() -> None:
    cluster = tokens.cluster_token(KEY, NOW)
    tokens.check_cluster_token(cluster, KEY, NOW + 59)
    with pytest.raises(TokenError):
        tokens.check_cluster_token(cluster, KEY, NOW + 60)
    with pytest.raises(TokenError):
        tokens.check_fid_token(cluster, KEY, FID, NOW)
    with pytest.raises(TokenError, match="not a cluster token"):
        tokens.check_cluster_token(tokens.fid_token(KEY, 10, FID, NOW), KEY, NOW)
    forever = make_token({"sub": tokens.CLUSTER_SUBJECT})
    with pytest.raises(TokenError, match="no expiry"):
        tokens.check_cluster_token(forever, KEY, NOW)
    with pytest.raises(TokenError):
        tokens.check_cluster_token(tokens.cluster_token(b"other", NOW), KEY, NOW)


@pytest.mark.parametrize(
    ("query", "headers", "found"),
    [
        ({}, {}, ""),
        ({"jwt": "q"}, {"authorization": "Bearer h", "cookie": "AT=c"}, "q"),
        ({"jwt": ""}, {"authorization": "Bearer h"}, "h"),
        ({}, {"authorization": "bearer h", "cookie": "AT=c"}, "h"),
        ({}, {"authorization": "BeArErXh"}, "h"),  # any 7th character, as weed slices
        ({}, {"authorization": "Bearer  h"}, " h"),
        ({}, {"authorization": "Bearer "}, ""),  # 7 characters: too short, no token
        ({}, {"authorization": "Basic h", "cookie": "AT=c"}, "c"),
        ({}, {"cookie": "x=1; AT=c; AT=d"}, "c"),
        ({}, {"cookie": 'AT="c"'}, "c"),
        ({}, {"cookie": "AT=a\\b; AT=c"}, "c"),  # a value Go refuses is skipped
        ({}, {"cookie": "at=c"}, ""),  # cookie names are case-sensitive
    ],
)
def test_request_token_precedence(
    query: dict[str, str], headers: dict[str, str], found: str
) -> None:
    assert tokens.request_token(query, headers) == found


def test_claims_of_unknown_names_pass_through() -> None:
    token = make_token({"fid": FID, "role": {"nested": True}})
    assert jwt.decode(token, KEY, NOW) == {"fid": FID, "role": {"nested": True}}


def test_sign_is_compact_json_in_claim_order() -> None:
    token = jwt.sign({"sub": "x", "exp": 5}, KEY)
    body = token.split(".")[1]
    assert json.loads(base64.urlsafe_b64decode(body + "==")) == {"sub": "x", "exp": 5}
    assert base64.urlsafe_b64decode(body + "==") == b'{"sub":"x","exp":5}'
