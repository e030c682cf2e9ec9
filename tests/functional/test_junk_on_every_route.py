"""Junk on every route of the master and the volume server (issue 12: errors are the client's
where they are the client's).

The routes come from the servers' own `Router`s, so a route added later is fuzzed without
anyone remembering to list it. Each one gets every method, junk values for every parameter
either server reads, and junk bodies (not JSON, JSON of the wrong shape, deeply nested, over
the size limit, binary) under several content types. Every answer must be below 500, and a
4xx must carry the JSON `{"error": ...}` body (the master's text 404 for paths it does not
serve, the reference's `404 page not found`, is kept on purpose). Afterwards both servers still
answer and a blob stored before reads back byte for byte.

The requests are drawn with a seeded RNG: the seed is printed, and `WEEDPY_JUNK_SEED=<seed>`
replays a run.
"""

from __future__ import annotations

import asyncio
import io
import os
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
import pytest
from PIL import Image

from seaweed_py.httpkit.router import Router
from seaweed_py.master import MasterOptions, MasterServer
from seaweed_py.volume import VolumeOptions, VolumeServer

# Every parameter a handler of either server reads (spec §2, §3, docs/internals.md).
PARAMETERS = (
    # master: assign, grow, lookup, collections, status, unwritable
    "count",
    "replication",
    "collection",
    "ttl",
    "dataCenter",
    "rack",
    "dataNode",
    "disk",
    "preallocate",
    "memoryMapMaxSizeMb",
    "writableVolumeCount",
    "dataSize",
    "volumeId",
    "fileId",
    "detail",
    "pretty",
    "garbageThreshold",
    # volume: admin, uploads, reads, images
    "volume",
    "onlyEmpty",
    "persist",
    "ts",
    "cm",
    "type",
    "fsync",
    "width",
    "height",
    "mode",
    "crop_x1",
    "crop_y1",
    "crop_x2",
    "crop_y2",
    "readDeleted",
    "dl",
    "proxied",
)
JUNK_VALUES = (
    "",
    "0",
    "-1",
    "-0",
    "+1",
    "0x10",
    "1e9",
    "1.5",
    " 1",
    "abc",
    "\uff11\uff12",  # fullwidth digits: int() reads them, Go does not
    "1_000",
    "4294967296",
    "18446744073709551616",
    "9" * 30,
    "9" * 5000,  # past Python's 4300-digit int() limit
    "true",
    "null",
    "{}",
    "é" * 64,
    "../../junk",  # a path where a name is meant (collections: a 400, never a file outside)
)
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW")
CONTENT_TYPES = (
    None,
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "multipart/form-data; boundary=junk",
    "text/plain",
    "application/octet-stream",
)
GO_TEXT_404 = b"404 page not found\n"


def _bodies(rng: random.Random) -> dict[str, bytes]:
    return {
        "empty": b"",
        "not-json": b"{not json",
        "wrong-shape": b'["wrong", "shape", 1]',
        "wrong-types": orjson.dumps(
            {"ip": 7, "port": "x", "volumes": {"id": "1"}, "maxFileKey": -1, "count": []}
        ),
        "deep": b"[" * 50_000 + b"]" * 50_000,
        "binary": rng.randbytes(4096),
        "form": b"count=0x10&volume=abc&ttl=999999y&preallocate=-1&width=-5&ts=abc&\xff=\xfe",
        "multipart": (
            b'--junk\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
            b"Content-Type: image/png\r\n\r\n" + rng.randbytes(64)  # never closed
        ),
    }


@dataclass
class Cluster:
    master: MasterServer
    volume: VolumeServer
    fid: str
    blob: bytes
    failures: list[str] = field(default_factory=list)
    sent: int = 0


async def _until(check: object, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 12), (10, 200, 30)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    master = MasterServer(
        MasterOptions(
            ip="127.0.0.1",
            port=0,
            mdir=str(tmp_path / "m"),
            pulse_seconds=0.5,
            assign_wait_seconds=1.0,
        )
    )
    await master.start()
    (tmp_path / "v").mkdir()
    volume = VolumeServer(
        VolumeOptions(
            dirs=(str(tmp_path / "v"),),
            max_volumes=(16,),
            masters=(master.address,),
            ip="127.0.0.1",
            port=0,
            pulse_seconds=0.5,
            pre_stop_seconds=0,
            file_size_limit=1 << 20,
        )
    )
    try:
        await volume.start()
        await _until(lambda: master.topology.free_slots() > 0)
        blob = _png()
        async with aiohttp.ClientSession() as http:
            # The known blob lives in a collection of its own: junk that legitimately deletes
            # the default collection (`/col/delete?collection=`) must not take it along.
            grow = f"http://{master.address}/vol/grow?count=1&collection=keep"
            async with http.get(grow) as resp:
                assert resp.status == 200, await resp.text()
            async with http.get(f"http://{master.address}/dir/assign?collection=keep") as resp:
                fid = (await resp.json())["fid"]
            async with http.get(f"http://{master.address}/dir/assign") as resp:
                assert resp.status == 200, await resp.text()
            # ... once the default layout's growth is over (the assign answered at its first
            # writable volume), so that volumes appear only when a request grows them
            grown = 1 + master.topology.growth.copy_1
            await _until(lambda: len(list(master.topology.volume_ids())) == grown)
            form = aiohttp.FormData()
            form.add_field("file", blob, filename="known.png", content_type="image/png")
            async with http.post(f"http://{volume.url()}/{fid}", data=form) as resp:
                assert resp.status == 201, await resp.text()
        yield Cluster(master, volume, fid, blob)
    finally:
        await volume.stop()
        await master.stop()


def _paths(router: Router, fallbacks: tuple[str, ...]) -> list[str]:
    paths = sorted(router.exact)
    assert paths, "the router lists no routes"
    if router.fallback_route is not None:
        paths += fallbacks
    return paths


def _plan(c: Cluster, rng: random.Random) -> Iterator[tuple[str, str, dict[str, str], str]]:
    """(method, url, query, body name) to send, every route covered."""
    vid, key_cookie = c.fid.split(",")
    other_cookie = f"{key_cookie[:-8]}{int(key_cookie[-8:], 16) ^ 1:08x}"
    master = f"http://{c.master.address}"
    volume = f"http://{c.volume.url()}"
    # Fid-shaped paths for the fallbacks; writes and deletes never name the known blob with
    # its own cookie (that would be a valid request), only with another.
    readable = (f"/{c.fid}.png", f"/{vid}/{key_cookie}/known.png")
    unsafe = (f"/{vid},{other_cookie}", f"/{vid},{key_cookie[:-8]}0", "/zz,zz", "/a/b/c", "/,")
    assert c.master._http is not None
    targets = [
        *((master + p, True) for p in _paths(c.master._http.router, (*readable, *unsafe))),
        *((volume + p, p not in readable) for p in _paths(c.volume.http.router, unsafe)),
        *((volume + p, False) for p in readable),
    ]
    for url, writable in targets:
        methods = METHODS if writable else ("GET", "HEAD", "OPTIONS")
        for method in methods:
            yield method, url, {}, "empty"
        for name in PARAMETERS:  # each parameter on each route, a random junk value
            yield rng.choice(methods), url, {name: rng.choice(JUNK_VALUES)}, "empty"
        for _ in range(8):  # several junk parameters at once
            query = {n: rng.choice(JUNK_VALUES) for n in rng.sample(PARAMETERS, 4)}
            yield rng.choice(methods), url, query, "empty"
        if writable:
            for body in ("not-json", "wrong-shape", "wrong-types", "deep", "binary", "form"):
                yield rng.choice(("POST", "PUT", "PATCH")), url, {}, body
            yield "POST", url, {}, "multipart"
            yield "POST", url, {}, "huge"
    # every junk value of every parameter at least once, somewhere
    for name in PARAMETERS:
        for value in JUNK_VALUES:
            url, writable = rng.choice(targets)
            method = rng.choice(METHODS if writable else ("GET", "HEAD"))
            yield method, url, {name: value}, "empty"


async def _send(
    http: aiohttp.ClientSession,
    c: Cluster,
    rng: random.Random,
    request: tuple[str, str, dict[str, str], str],
    bodies: dict[str, bytes],
) -> None:
    method, url, query, body_name = request
    body: bytes | io.BytesIO = bodies.get(body_name, b"")
    if body_name == "huge":  # over every route's limit; a stream, as aiohttp wants large bodies
        body = io.BytesIO(b"x" * (3 << 20))
    headers = {}
    content_type = rng.choice(CONTENT_TYPES) if body_name != "multipart" else CONTENT_TYPES[4]
    if content_type is not None and body:
        headers["Content-Type"] = content_type
    what = f"{method} {url} {query} body={body_name} type={content_type}"
    c.sent += 1
    try:
        async with http.request(
            method, url, params=query, data=body or None, headers=headers, allow_redirects=False
        ) as resp:
            answer = await resp.read()
            status = resp.status
    except aiohttp.ClientError as exc:
        # A body over the limit is refused before it is read: the server answers 413 and
        # closes while the client may still be sending. Anything else is a dropped request.
        if body_name != "huge":
            c.failures.append(f"{what}: no answer ({exc!r})")
        return
    if status == 503 and "Retry-After" in resp.headers:
        # "Busy, retry": an assign racing a volume growth (the reference's 503 "volume growth
        # in progress"), or a write to a volume deleted a moment ago that the master still
        # lists. Answers to a valid request in a changing cluster, not to the junk in it.
        status = 400
    if status >= 500:
        c.failures.append(f"{what}: {status} {answer[:200]!r}")
    elif status >= 400 and method != "HEAD" and answer != GO_TEXT_404:
        try:
            parsed = orjson.loads(answer)
        except orjson.JSONDecodeError:
            parsed = None
        if not (isinstance(parsed, dict) and isinstance(parsed.get("error"), str)):
            c.failures.append(f"{what}: {status} without a JSON error: {answer[:200]!r}")


async def test_junk_on_every_route_is_answered_4xx_and_loses_nothing(
    cluster: Cluster, tmp_path: Path
) -> None:
    seed = int(os.environ.get("WEEDPY_JUNK_SEED") or random.randrange(1 << 32))
    print(f"junk seed: {seed} (replay with WEEDPY_JUNK_SEED={seed})")
    rng = random.Random(seed)
    bodies = _bodies(rng)
    plan = list(_plan(cluster, rng))
    limit = asyncio.Semaphore(8)

    async def one(request: tuple[str, str, dict[str, str], str]) -> None:
        async with limit:
            await _send(http, cluster, rng, request, bodies)

    timeout = aiohttp.ClientTimeout(total=30)
    # The master's redirects repeat the query in `Location`: long junk makes a long header.
    async with aiohttp.ClientSession(
        timeout=timeout, auto_decompress=False, max_field_size=1 << 17
    ) as http:
        await asyncio.gather(*(one(r) for r in plan))
        assert not cluster.failures, (
            f"seed {seed}: {len(cluster.failures)} of {cluster.sent} answers were wrong:\n"
            + "\n".join(cluster.failures[:40])
        )
        # Both servers are still up, and the blob stored before reads back unchanged.
        for url in (
            f"http://{cluster.master.address}/cluster/healthz",
            f"http://{cluster.volume.url()}/healthz",
        ):
            async with http.get(url) as resp:
                assert resp.status == 200, url
        async with http.get(f"http://{cluster.volume.url()}/{cluster.fid}") as resp:
            assert resp.status == 200
            assert await resp.read() == cluster.blob
        # nothing was created where a junk name pointed, outside the servers' directories
        assert not [p for p in (tmp_path.parent, tmp_path) if list(p.glob("junk*"))]
        lookup = f"http://{cluster.master.address}/dir/lookup?volumeId={cluster.fid}"
        async with http.get(lookup) as resp:
            assert resp.status == 200
            [location] = (await resp.json())["locations"]
            assert location["url"] == cluster.volume.url()
