"""File-id JWTs (spec §10.2), the same assertions against weed 4.48 and weedpy, both started
with one security.toml (`-config_dir`) holding a write key and a read key: the tokens the
master issues, where a volume server looks for one and in which order, which tokens it accepts
(every case of tests/jwt_cases.py), and what it answers when it refuses: `401 {"error":"wrong
jwt"}`."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from seaweed_py.security import jwt
from seaweed_py.security.tokens import fid_token
from tests.jwt_cases import CASES, KEY, JwtCase
from tests.parity.targets import skip_unless_runnable
from tests.servers import IMPLS, Impl, call, start_cluster

pytestmark = pytest.mark.parity

READ_KEY = b"the-cluster-read-key"
WRONG_JWT = {"error": "wrong jwt"}
OCTETS = {"Content-Type": "application/octet-stream"}


@dataclass(frozen=True)
class Secured:
    impl: Impl
    master: str
    volume: str

    def assign(self, query: str = "") -> tuple[str, str]:
        """(fid, the Authorization header of the answer)."""
        status, body, headers = _call_with_headers("GET", f"{self.master}/dir/assign?{query}")
        assert status == 200, body
        answer = json.loads(body)
        assert set(answer) == {"fid", "url", "publicUrl", "count"}  # no `auth` field over HTTP
        return answer["fid"], headers.get("Authorization", "")

    def lookup_token(self, query: str) -> str:
        status, body, headers = _call_with_headers("GET", f"{self.master}/dir/lookup?{query}")
        assert status == 200, body
        return headers.get("Authorization", "")

    def put(self, path: str, data: bytes, headers: dict[str, str] | None = None) -> int:
        status, body = call("PUT", f"{self.volume}{path}", data, {**OCTETS, **(headers or {})})
        if status == 401:
            assert json.loads(body) == WRONG_JWT
        return status


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _call_with_headers(method: str, url: str) -> tuple[int, bytes, dict[str, str]]:
    try:
        with _OPENER.open(urllib.request.Request(f"http://{url}", method=method), timeout=10) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


@pytest.fixture(scope="module", params=IMPLS)
def secured(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Secured]:
    impl: Impl = request.param
    skip_unless_runnable(impl)
    conf = tmp_path_factory.mktemp(f"jwt-conf-{impl}")
    (conf / "security.toml").write_text(
        f'[jwt.signing]\nkey = "{KEY.decode()}"\n[jwt.signing.read]\nkey = "{READ_KEY.decode()}"\n'
    )
    running = start_cluster(impl, tmp_path_factory.mktemp(f"jwt-{impl}"), config_dir=conf)
    try:
        yield Secured(impl, running.master_url, running.volume_urls[0])
    finally:
        running.stop()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_which_tokens_a_volume_server_accepts(secured: Secured, case: JwtCase) -> None:
    fid, _ = secured.assign()
    status = secured.put(f"/{fid}", case.name.encode(), _bearer(case.token(fid, int(time.time()))))
    assert status == (201 if case.accepted else 401)


def test_assign_and_lookup_issue_tokens(secured: Secured) -> None:
    before = int(time.time())
    fid, auth = secured.assign()
    scheme, _, token = auth.partition(" ")
    assert scheme == "Bearer"
    claims = jwt.decode(token, KEY, time.time())
    assert set(claims) == {"fid", "exp"} and claims["fid"] == fid
    assert before + 10 <= claims["exp"] <= int(time.time()) + 10
    vid = fid.split(",")[0]
    assert secured.lookup_token(f"volumeId={vid}") == ""
    write = secured.lookup_token(f"fileId={fid}").removeprefix("Bearer ")
    assert jwt.decode(write, KEY, time.time())["fid"] == fid
    read = secured.lookup_token(f"fileId={fid}&read=yes").removeprefix("Bearer ")
    claims = jwt.decode(read, READ_KEY, time.time())
    assert claims["fid"] == fid
    assert before + 60 <= claims["exp"] <= int(time.time()) + 60  # quirk A26: 60 s in code
    # The lookup signs the fileId as sent, batch suffix included.
    batch = secured.lookup_token(f"fileId={fid}_1").removeprefix("Bearer ")
    assert jwt.decode(batch, KEY, time.time())["fid"] == f"{fid}_1"


def test_token_precedence(secured: Secured) -> None:
    fid, auth = secured.assign()
    good = auth.removeprefix("Bearer ")
    bad = fid_token(b"not the key", 10, fid, time.time())
    assert secured.put(f"/{fid}", b"a") == 401
    assert secured.put(f"/{fid}?jwt={bad}", b"a", _bearer(good)) == 401
    assert (
        secured.put(f"/{fid}", b"a", {"Authorization": f"Bearer {bad}", "Cookie": f"AT={good}"})
        == 401
    )
    assert secured.put(f"/{fid}", b"a", {"Authorization": f"Bearer  {good}"}) == 401
    assert secured.put(f"/{fid}?jwt={good}", b"1") == 201
    assert secured.put(f"/{fid}?jwt=", b"2", _bearer(good)) == 201
    assert secured.put(f"/{fid}", b"3", {"Authorization": f"bEaReR {good}"}) == 201
    assert secured.put(f"/{fid}", b"4", {"Authorization": f"BearerX{good}"}) == 201
    assert (
        secured.put(f"/{fid}", b"5", {"Authorization": "Basic x", "Cookie": f"a=b; AT={good}"})
        == 201
    )
    assert secured.put(f"/{fid}", b"6", {"Cookie": f'AT="{good}"'}) == 201


def test_what_a_token_opens(secured: Secured) -> None:
    fid, auth = secured.assign("count=2")
    headers = {"Authorization": auth}
    assert secured.put(f"/{fid}_1", b"batch", headers) == 201  # the batch's token
    assert secured.put(f"/{fid}.txt", b"with extension", headers) == 201
    assert secured.put(f"/0{fid}", b"vid as written", headers) == 401
    vid, key_cookie = fid.split(",")
    assert secured.put(f"/{vid},{key_cookie.upper()}", b"case", headers) == 401
    # Reads need the read token: not the write token, not none.
    for got in ({}, headers):
        assert call("GET", f"{secured.volume}/{fid}_1", headers=got)[0] == 401
    read = {"Authorization": secured.lookup_token(f"fileId={fid}&read=yes")}
    assert call("GET", f"{secured.volume}/{fid}_1", headers=read) == (200, b"batch")
    # Not served with a key: the blob handler takes the path, and asks for a token first.
    assert call("GET", f"{secured.volume}/ui/index.html")[0] == 401
    # Deletes take the write token (the lookup's), after the fid itself parses.
    assert call("DELETE", f"{secured.volume}/{fid}")[0] == 401
    assert call("DELETE", f"{secured.volume}/{vid},zz")[0] == 400
    write = {"Authorization": secured.lookup_token(f"fileId={fid}")}
    assert call("DELETE", f"{secured.volume}/{fid}", headers=write)[0] == 202
    # Writes parse the vid before looking for a token, and the rest of the fid after.
    assert secured.put("/abc,0123456789", b"x") == 400
    assert secured.put(f"/{vid},zz", b"x") == 401


def test_replicas_take_the_forwarded_token_and_reads_stay_open(tmp_path: Path) -> None:
    """Only a write key: a replicated write with the assign's token lands on both servers (the
    writing server forwards the token; the replica checks it), reads need no token, and
    `read=yes` issues nothing (not a write token)."""
    for impl in IMPLS:
        skip_unless_runnable(impl)
        conf = tmp_path / f"conf-{impl}"
        conf.mkdir()
        (conf / "security.toml").write_text(f'[jwt.signing]\nkey = "{KEY.decode()}"\n')
        cluster = start_cluster(
            impl, tmp_path / impl, volumes=2, replication="001", config_dir=conf
        )
        try:
            secured = Secured(impl, cluster.master_url, cluster.volume_urls[0])
            status, body, headers = _call_with_headers(
                "GET", f"{cluster.master_url}/dir/assign?replication=001"
            )
            assert status == 200, body
            answer = json.loads(body)
            fid, url = answer["fid"], answer["url"]
            assert secured.lookup_token(f"fileId={fid}&read=yes") == ""
            assert call("PUT", f"{url}/{fid}", b"no token", OCTETS)[0] == 401
            auth = {"Authorization": headers["Authorization"]}
            assert call("PUT", f"{url}/{fid}", b"on both", {**OCTETS, **auth})[0] == 201, impl
            for volume in cluster.volume_urls:
                assert call("GET", f"{volume}/{fid}") == (200, b"on both"), (impl, volume)
            other = next(v for v in cluster.volume_urls if v != url)
            forged = call("PUT", f"{other}/{fid}?type=replicate", b"forged", OCTETS)
            assert forged[0] == 401, impl
            assert call("GET", f"{other}/{fid}") == (200, b"on both")
        finally:
            cluster.stop()
