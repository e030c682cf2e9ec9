"""File-id tokens end to end (spec §10.2, reliability scenarios 22 and 23): the master issues
them, volume servers check writes, deletes and (with a read key) reads, replicas check the
forwarded client token, and the servers sign their own internal calls (manifest chunks,
`/submit`). Every refusal is `401 {"error":"wrong jwt"}` and leaves the stored data as it was.
"""

from __future__ import annotations

import asyncio
import io
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from seaweed_py.client import AsyncClient, ChunkInfo, ChunkManifest
from seaweed_py.security import jwt
from seaweed_py.security.tokens import cluster_token, fid_token
from tests.jwt_cases import make_token
from tests.secure_cluster import KEY, READ_KEY, SecureCluster, settings

WRONG_JWT = {"error": "wrong jwt"}


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[SecureCluster]:
    async with SecureCluster(tmp_path, settings(key=KEY)) as running:
        yield running


@pytest.fixture
async def read_cluster(tmp_path: Path) -> AsyncIterator[SecureCluster]:
    async with SecureCluster(tmp_path, settings(key=KEY, read_key=READ_KEY), volumes=2) as c:
        yield c


async def _assign(cluster: SecureCluster, query: str = "") -> tuple[str, str, str]:
    """(fid, volume server url, Authorization header) of a fresh assign."""
    async with cluster.http.get(cluster.master_url(f"/dir/assign?{query}")) as resp:
        assert resp.status == 200, await resp.text()
        answer = await resp.json()
        assert "auth" not in answer  # weed's HTTP answer has none: the token is the header
        return answer["fid"], answer["url"], resp.headers.get("Authorization", "")


def _form(data: bytes) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO(data), filename="f.bin")
    return form


async def _post(
    cluster: SecureCluster,
    url: str,
    fid: str,
    data: bytes,
    headers: dict[str, str] | None = None,
    query: str = "",
) -> tuple[int, object]:
    target = f"{cluster.scheme}://{url}/{fid}{query}"
    async with cluster.http.post(target, data=_form(data), headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


async def _get(cluster: SecureCluster, url: str, fid: str, **kw: object) -> tuple[int, bytes]:
    async with cluster.http.get(f"{cluster.scheme}://{url}/{fid}", **kw) as resp:  # type: ignore[arg-type]
        return resp.status, await resp.read()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_assign_issues_a_write_token_for_its_fid(cluster: SecureCluster) -> None:
    before = int(time.time())
    fid, url, auth = await _assign(cluster)
    scheme, _, token = auth.partition(" ")
    assert scheme == "Bearer"
    claims = jwt.decode(token, KEY, time.time())
    assert claims["fid"] == fid
    assert before + 10 <= claims["exp"] <= int(time.time()) + 10
    assert (await _post(cluster, url, fid, b"signed", {"Authorization": auth}))[0] == 201
    assert (await _get(cluster, url, fid)) == (200, b"signed")


async def test_token_precedence_query_then_header_then_cookie(cluster: SecureCluster) -> None:
    fid, url, auth = await _assign(cluster)
    good = auth.removeprefix("Bearer ")
    bad = fid_token(b"not the key", 10, fid, time.time())
    refused = [
        ({}, ""),  # no token at all
        (_bearer(good), f"?jwt={bad}"),  # the query wins, even when the header is good
        ({"Authorization": f"Bearer {bad}", "Cookie": f"AT={good}"}, ""),  # header before cookie
        ({"Authorization": f"Basic {good}"}, ""),  # not a bearer token, and no cookie
        ({"Authorization": f"Bearer  {good}"}, ""),  # the token starts at the 8th character
    ]
    for headers, query in refused:
        status, body = await _post(cluster, url, fid, b"x", headers, query)
        assert (status, body) == (401, WRONG_JWT), (headers, query)
    assert (await _get(cluster, url, fid))[0] == 404  # nothing was stored
    accepted = [
        ({}, f"?jwt={good}"),
        (_bearer(good), "?jwt="),  # an empty parameter is no token: the header counts
        ({"Authorization": f"bearer {good}"}, ""),
        ({"Authorization": f"BEARER {good}"}, ""),
        ({"Cookie": f"theme=dark; AT={good}"}, ""),
        ({"Cookie": f'AT="{good}"'}, ""),
    ]
    for i, (headers, query) in enumerate(accepted):
        status, _ = await _post(cluster, url, fid, b"v%d" % i, headers, query)
        assert status == 201, (headers, query)
    assert await _get(cluster, url, fid) == (200, b"v%d" % (len(accepted) - 1))


async def test_tokens_for_another_blob_key_or_time_are_refused(cluster: SecureCluster) -> None:
    fid, url, auth = await _assign(cluster)
    assert (await _post(cluster, url, fid, b"original", {"Authorization": auth}))[0] == 201
    vid, key_cookie = fid.split(",")
    other_cookie = f"{vid},{key_cookie[:-8]}{int(key_cookie[-8:], 16) ^ 1:08x}"
    other_key = f"{vid},{int(key_cookie[:-8], 16) + 1:x}{key_cookie[-8:]}"
    now = time.time()
    for token in (
        fid_token(KEY, 10, other_cookie, now),  # the same key, another cookie
        fid_token(KEY, 10, other_key, now),  # another needle key
        fid_token(KEY, 10, f"{int(vid) + 1},{key_cookie}", now),  # another volume
        fid_token(b"another signing key", 10, fid, now),
        fid_token(KEY, 10, fid, now - 11),  # expired a second ago
        make_token({"fid": fid}, header={"alg": "none"}),
        cluster_token(KEY, now),  # signed with the key, but for the cluster, not this blob
    ):
        for method in ("POST", "DELETE"):
            target = f"http://{url}/{fid}"
            data = _form(b"overwrite") if method == "POST" else None
            async with cluster.http.request(
                method, target, data=data, headers=_bearer(token)
            ) as resp:
                assert (resp.status, await resp.json()) == (401, WRONG_JWT), (method, token)
    assert await _get(cluster, url, fid) == (200, b"original")


async def test_a_batch_token_opens_every_id_of_the_batch(cluster: SecureCluster) -> None:
    fid, url, auth = await _assign(cluster, "count=3")
    for i, name in enumerate((fid, f"{fid}_1", f"{fid}_2")):
        status, _ = await _post(cluster, url, name, b"part %d" % i, {"Authorization": auth})
        assert status == 201, name
        assert await _get(cluster, url, name) == (200, b"part %d" % i)


async def test_deletes_take_the_lookup_token(cluster: SecureCluster) -> None:
    fid, url, auth = await _assign(cluster)
    assert (await _post(cluster, url, fid, b"doomed", {"Authorization": auth}))[0] == 201
    target = f"http://{url}/{fid}"
    async with cluster.http.delete(target) as resp:
        assert (resp.status, await resp.json()) == (401, WRONG_JWT)
    async with cluster.http.get(cluster.master_url(f"/dir/lookup?fileId={fid}&read=yes")) as r:
        assert "Authorization" not in r.headers  # no read key: nothing for read=yes, as weed
    async with cluster.http.get(
        cluster.master_url(f"/dir/lookup?volumeId={fid.split(',')[0]}")
    ) as r:
        assert "Authorization" not in r.headers  # no fileId: no token
    async with cluster.http.get(cluster.master_url(f"/dir/lookup?fileId={fid}")) as resp:
        assert resp.status == 200
        lookup_auth = resp.headers["Authorization"]
    async with cluster.http.delete(target, headers={"Authorization": lookup_auth}) as resp:
        assert resp.status == 202
    assert (await _get(cluster, url, fid))[0] == 404


async def test_a_malformed_vid_is_400_before_the_token_is_looked_at(
    cluster: SecureCluster,
) -> None:
    """As weed: POST checks the vid first, DELETE the key and cookie; GET (with no read key)
    does not ask for a token at all."""
    url = f"127.0.0.1:{cluster.volumes[0].port}"
    async with cluster.http.post(f"http://{url}/abc,0123456789", data=_form(b"x")) as resp:
        assert resp.status == 400
    async with cluster.http.delete(f"http://{url}/3,zz") as resp:
        assert resp.status == 400
    async with cluster.http.post(f"http://{url}/3,zz", data=_form(b"x")) as resp:
        assert (resp.status, await resp.json()) == (401, WRONG_JWT)


async def test_submit_signs_its_own_upload(cluster: SecureCluster) -> None:
    async with cluster.http.post(cluster.master_url("/submit"), data=_form(b"via submit")) as r:
        assert r.status == 201, await r.text()
        answer = await r.json()
    url = f"127.0.0.1:{cluster.volumes[0].port}"
    assert await _get(cluster, url, answer["fid"]) == (200, b"via submit")


async def test_replicas_check_the_forwarded_token(tmp_path: Path) -> None:
    """A replicated write reaches the replica with the client's token: stored on both with a
    valid token; a replica given another key refuses the forwarded token, so the write fails
    and is rolled back on the primary (scenario 22: identical behaviour across replicas)."""
    async with SecureCluster(tmp_path / "same", settings(key=KEY), volumes=2) as cluster:
        fid, url, auth = await _assign(cluster, "replication=001")
        assert (await _post(cluster, url, fid, b"both", {"Authorization": auth}))[0] == 201
        for volume in cluster.volumes:
            assert await _get(cluster, f"127.0.0.1:{volume.port}", fid) == (200, b"both")
        other = next(f"127.0.0.1:{v.port}" for v in cluster.volumes if v.url() != url)
        # The replica itself refuses a forward that carries no token.
        status, body = await _post(cluster, other, fid, b"forged", None, "?type=replicate")
        assert (status, body) == (401, WRONG_JWT)
        async with cluster.http.get(cluster.master_url(f"/dir/lookup?fileId={fid}")) as resp:
            delete_auth = resp.headers["Authorization"]
        async with cluster.http.delete(
            f"http://{url}/{fid}", headers={"Authorization": delete_auth}
        ) as resp:
            assert resp.status == 202
        for volume in cluster.volumes:
            assert (await _get(cluster, f"127.0.0.1:{volume.port}", fid))[0] == 404
    # A master without a key and two volume servers with different keys: a token signed with
    # the first server's key passes there and is refused by its replica when forwarded.
    other_key = b"a different key"
    odd = [settings(key=KEY), settings(key=other_key)]
    async with SecureCluster(tmp_path / "odd", settings(), volume_security=odd) as cluster:
        for volume, key in zip(cluster.volumes, (KEY, other_key), strict=True):
            async with cluster.http.post(
                f"http://127.0.0.1:{volume.port}/admin/volume/allocate",
                params={"volume": "7", "replication": "001"},
                headers=cluster.cluster_headers(key),
            ) as resp:
                assert resp.status == 200, await resp.text()
        fid = ""
        for _ in range(100):  # until the master has heard of both copies
            async with cluster.http.get(cluster.master_url("/dir/assign?replication=001")) as r:
                if r.status == 200:
                    fid = (await r.json())["fid"]
                    break
            await asyncio.sleep(0.05)
        assert fid.startswith("7,")
        for volume, key in zip(cluster.volumes, (KEY, other_key), strict=True):
            url = f"127.0.0.1:{volume.port}"
            token = fid_token(key, 10, fid, time.time())
            status, body = await _post(cluster, url, fid, b"half", _bearer(token))
            assert status == 500 and "wrong jwt" in str(body), body
            assert (await _get(cluster, url, fid))[0] == 404  # rolled back


async def test_a_read_key_guards_every_read(read_cluster: SecureCluster) -> None:
    cluster = read_cluster
    fid, url, auth = await _assign(cluster)
    assert (await _post(cluster, url, fid, b"secret", {"Authorization": auth}))[0] == 201
    assert (await _get(cluster, url, fid))[0] == 401
    write_token = auth.removeprefix("Bearer ")
    assert (await _get(cluster, url, fid, headers=_bearer(write_token)))[0] == 401
    async with cluster.http.get(cluster.master_url(f"/dir/lookup?fileId={fid}&read=yes")) as r:
        read_auth = r.headers["Authorization"]
    claims = jwt.decode(read_auth.removeprefix("Bearer "), READ_KEY, time.time())
    assert claims["fid"] == fid and claims["exp"] - time.time() > 55  # read tokens live 60 s
    assert await _get(cluster, url, fid, headers={"Authorization": read_auth}) == (200, b"secret")
    # A read on a server without the volume is proxied with the client's token.
    other = next(f"127.0.0.1:{v.port}" for v in cluster.volumes if v.url() != url)
    assert (await _get(cluster, other, fid))[0] == 401
    assert await _get(cluster, other, fid, headers={"Authorization": read_auth}) == (
        200,
        b"secret",
    )
    # Without a token even a malformed URL is 401, as weed checks the token first.
    assert (await _get(cluster, url, "not-a-fid"))[0] == 401


async def test_the_sdk_fetches_tokens_where_it_needs_them(read_cluster: SecureCluster) -> None:
    """Uploads carry the assign's token; reads, deletes and writes to a given fid fetch theirs
    from the master after a 401; a chunked file reads back and deletes with its chunks."""
    cluster = read_cluster
    assert cluster.master is not None
    async with AsyncClient(cluster.master.address, chunk_size=64 * 1024) as client:
        small = await client.upload(b"small and secret", name="s.txt")
        assert await client.download(small.fid) == b"small and secret"
        big_data = os.urandom(300 * 1024)
        big = await client.upload(big_data, name="big.bin")
        assert big.chunks == 5
        assert await client.download(big.fid) == big_data
        batch = await client.assign(count=2)
        await client.write(f"{batch.fid}_1", b"second of two")
        assert await client.download(f"{batch.fid}_1") == b"second of two"
        assert await client.delete(big.fid) == len(big_data)
        await client.delete(small.fid)
    live = sum(
        v.file_count - v.delete_count for s in cluster.volumes for v in s.store.volume_infos()
    )
    assert live == 1  # only the batch write is left: the manifest's chunks went with it


async def test_manifest_chunks_on_another_server_use_the_servers_own_tokens(
    read_cluster: SecureCluster,
) -> None:
    """A chunk manifest on one server naming a chunk on the other: reading it fetches the chunk
    with a read token the server signs; deleting it deletes the chunk with a write token."""
    cluster = read_cluster
    first, second = (f"127.0.0.1:{v.port}" for v in cluster.volumes)

    async def assign_on(url: str) -> tuple[str, str]:
        for _ in range(200):
            fid, at, auth = await _assign(cluster)
            if at == url:
                return fid, auth
        raise AssertionError(f"no assign landed on {url}")

    chunk, chunk_auth = await assign_on(first)
    assert (await _post(cluster, first, chunk, b"chunk bytes", {"Authorization": chunk_auth}))[
        0
    ] == 201
    manifest = ChunkManifest(
        "whole.bin", "application/octet-stream", 11, (ChunkInfo(chunk, 0, 11),)
    )
    fid, auth = await assign_on(second)
    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO(manifest.to_json()), filename="whole.bin")
    async with cluster.http.post(
        f"http://{second}/{fid}?cm=true", data=form, headers={"Authorization": auth}
    ) as resp:
        assert resp.status == 201, await resp.text()
    async with cluster.http.get(cluster.master_url(f"/dir/lookup?fileId={fid}&read=yes")) as r:
        read_auth = r.headers["Authorization"]
    assert await _get(cluster, second, fid, headers={"Authorization": read_auth}) == (
        200,
        b"chunk bytes",
    )
    async with cluster.http.get(cluster.master_url(f"/dir/lookup?fileId={fid}")) as r:
        write_auth = r.headers["Authorization"]
    async with cluster.http.delete(
        f"http://{second}/{fid}", headers={"Authorization": write_auth}
    ) as resp:
        assert (resp.status, await resp.json()) == (202, {"size": 11})
    chunk_volume = cluster.volumes[0].store.get(int(chunk.split(",")[0]))
    assert chunk_volume is not None and chunk_volume.live_count == 0
