"""httpkit driven by aiohttp, the client every weedpy component uses: normal use."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
from collections.abc import AsyncIterator

import aiohttp

from seaweed_py.httpkit import Limits
from tests.functional.test_httpkit_helpers import on_uvloop, serving

LIMITS = Limits(max_body=16 * 1024 * 1024, stream_threshold=256 * 1024, idle_timeout=5)


@on_uvloop
async def test_json_get_with_query_headers_and_pretty() -> None:
    async with serving(LIMITS) as (server, _), aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{server.port}/info?volumeId=3&volumeId=4&empty="
        async with http.get(url, headers={"X-Custom": "v1"}) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "application/json"
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
            info = await resp.json()
        assert info["query"] == {"volumeId": "3", "empty": ""}  # first value wins
        assert info["headers"]["x-custom"] == "v1"
        assert info["remote"] == "127.0.0.1"
        assert info["method"] == "GET"
        async with http.get(url + "&pretty=y") as resp:
            text = await resp.text()
        assert text.startswith('{\n  "method": "GET",\n')
        assert not text.endswith("\n")


@on_uvloop
async def test_form_values_come_from_query_and_urlencoded_body() -> None:
    async with serving(LIMITS) as (server, _), aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{server.port}/info?count=1&collection=q"
        async with http.post(url, data={"count": "5", "ttl": "3d"}) as resp:
            info = await resp.json()
        assert info["form"] == {"count": "5", "collection": "q", "ttl": "3d"}  # body wins
        assert info["query"] == {"count": "1", "collection": "q"}


@on_uvloop
async def test_weed_errors_render_as_json_with_status_and_headers() -> None:
    async with serving(LIMITS) as (server, _), aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{server.port}"
        async with http.get(base + "/missing") as resp:
            assert resp.status == 404
            assert await resp.json() == {"error": "needle not found (volume_id=3, key=5963266006)"}
        async with http.get(base + "/busy") as resp:
            assert resp.status == 503
            assert resp.headers["Retry-After"] == "1"
            assert await resp.json() == {"error": "no writable volumes"}
        async with http.get(base + "/nowhere") as resp:
            assert resp.status == 404
            assert "error" in await resp.json()
        async with http.head(base + "/missing") as resp:
            assert resp.status == 404
            assert int(resp.headers["Content-Length"]) > 0
            assert await resp.read() == b""


@on_uvloop
async def test_keep_alive_reuses_one_connection() -> None:
    async with serving(LIMITS) as (server, _):
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=connector) as http:
            for _ in range(20):
                async with http.get(f"http://127.0.0.1:{server.port}/hello") as resp:
                    assert await resp.read() == b"hello"
            assert server.connection_count == 1


@on_uvloop
async def test_small_body_is_buffered_large_body_is_streamed() -> None:
    async with serving(LIMITS) as (server, calls), aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{server.port}/echo"
        small = os.urandom(1000)
        async with http.post(url, data=small) as resp:
            assert await resp.read() == small
        big = os.urandom(6 * 1024 * 1024)
        async with http.put(url, data=io.BytesIO(big)) as resp:
            assert resp.status == 200
            assert hashlib.sha256(await resp.read()).digest() == hashlib.sha256(big).digest()
        assert calls.streamed == [len(big)]  # only the large one went through the stream


@on_uvloop
async def test_chunked_upload_from_a_generator_streams_several_mib() -> None:
    async with serving(LIMITS) as (server, calls), aiohttp.ClientSession() as http:
        digest = hashlib.sha256()

        async def produce() -> AsyncIterator[bytes]:
            for i in range(40):
                block = bytes([i]) * 100_000
                digest.update(block)
                yield block
                await asyncio.sleep(0)

        async with http.post(f"http://127.0.0.1:{server.port}/echo", data=produce()) as resp:
            assert resp.status == 200
            assert hashlib.sha256(await resp.read()).digest() == digest.digest()
        assert calls.streamed == [4_000_000]


@on_uvloop
async def test_upload_over_the_limit_is_refused_with_413() -> None:
    async with serving(LIMITS) as (server, calls), aiohttp.ClientSession() as http:
        too_big = io.BytesIO(b"x" * (LIMITS.max_body + 1))
        async with http.post(f"http://127.0.0.1:{server.port}/echo", data=too_big) as resp:
            assert resp.status == 413
            assert "exceeds the limit" in (await resp.json())["error"]
        assert calls.bodies == []


@on_uvloop
async def test_streamed_responses_chunked_and_with_length() -> None:
    async with serving(LIMITS) as (server, _), aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{server.port}/stream?size={5 * 1024 * 1024 + 7}"
        async with http.get(base) as resp:
            assert resp.headers["Transfer-Encoding"] == "chunked"
            assert await resp.read() == b"s" * (5 * 1024 * 1024 + 7)
        async with http.get(base + "&length=1") as resp:
            assert resp.headers["Content-Length"] == str(5 * 1024 * 1024 + 7)
            total = 0
            async for chunk in resp.content.iter_chunked(65536):
                total += len(chunk)
            assert total == 5 * 1024 * 1024 + 7


@on_uvloop
async def test_concurrent_clients_are_served_independently() -> None:
    async with serving(LIMITS) as (server, _), aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{server.port}"

        async def fetch(path: str) -> bytes:
            async with http.get(base + path) as resp:
                return await resp.read()

        results = await asyncio.gather(fetch("/slow?s=0.3"), *(fetch("/hello") for _ in range(30)))
        assert results[0] == b"slow"
        assert set(results[1:]) == {b"hello"}
