"""The outgoing-HTTP layer (`client/http.py`) against a stand-in server on loopback: answers
come back whole, unexpected statuses raise the error of their status, and a server that cannot
be reached, or does not answer in time, is `ServerUnreachable`."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from seaweed_py import errors
from seaweed_py.client.cluster import Outgoing
from seaweed_py.client.http import HttpClient, Timeout
from seaweed_py.security.tokens import JwtKeys, check_cluster_token

KEY = b"cluster secret"


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[web.Request]]]:
    """`/status/{code}` answers that status with a JSON error; `/slow` answers after 1 s;
    `/echo` answers its parameter `a` and its body."""
    seen: list[web.Request] = []

    async def status(request: web.Request) -> web.Response:
        seen.append(request)
        code = int(request.match_info["code"])
        return web.json_response({"error": f"said {code}"}, status=code)

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(1)
        return web.Response()

    async def echo(request: web.Request) -> web.Response:
        seen.append(request)
        return web.Response(body=request.query.get("a", "").encode() + b"|" + await request.read())

    app = web.Application(client_max_size=8 << 20)
    app.router.add_route("*", "/status/{code}", status)
    app.router.add_get("/slow", slow)
    app.router.add_post("/echo", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"127.0.0.1:{port}", seen
    await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    client = HttpClient(Outgoing(keys=JwtKeys(signing_key=KEY)), Timeout(total=10, connect=3))
    await client.start()
    yield client
    await client.close()


async def test_an_answer_comes_back_whole_with_its_status(
    server: tuple[str, list[web.Request]], http: HttpClient
) -> None:
    address, _ = server
    reply = await http.request("POST", address, "/echo", params={"a": "1 2"}, data=b"body")
    assert (reply.status, reply.body) == (200, b"1 2|body")
    reply = await http.request("GET", address, "/status/404")
    assert reply.status == 404 and reply.headers["content-type"].startswith("application/json")


async def test_a_large_body_goes_out_whole_without_a_warning(
    server: tuple[str, list[web.Request]], http: HttpClient
) -> None:
    """aiohttp warns (an error here) of bytes bodies over 1 MiB; the layer sends them in
    pieces with the same bytes."""
    address, seen = server
    body = bytes(range(256)) * (12 << 10)  # 3 MiB
    reply = await http.request("POST", address, "/echo", data=body)
    assert reply.body == b"|" + body
    assert seen[-1].headers["Content-Length"] == str(len(body))


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (400, errors.BadRequest),
        (401, errors.Unauthorized),
        (409, errors.Conflict),
        (500, errors.WeedError),
        (503, errors.ServiceUnavailable),
        (507, errors.DiskFull),
    ],
)
async def test_an_unexpected_status_raises_its_error_with_the_servers_message(
    server: tuple[str, list[web.Request]], http: HttpClient, code: int, cls: type
) -> None:
    address, _ = server
    with pytest.raises(cls) as raised:
        await http.call("GET", address, f"/status/{code}")
    assert type(raised.value) is cls
    assert raised.value.message == f"GET {address}/status/{code} answered {code}: said {code}"


async def test_a_call_names_itself_narrows_and_expects_what_it_asks(
    server: tuple[str, list[web.Request]], http: HttpClient
) -> None:
    address, _ = server
    with pytest.raises(errors.VolumeNotFound, match=r"^volume 7 answered 404: said 404$"):
        await http.call(
            "GET", address, "/status/404", what="volume 7", narrow={404: errors.VolumeNotFound}
        )
    assert (await http.call("GET", address, "/status/404", ok=(404,))).status == 404
    with pytest.raises(errors.WeedError, match="answered 200"):
        await http.call("GET", address, "/status/200", ok=(206,))


async def test_a_cluster_call_carries_a_fresh_cluster_token(
    server: tuple[str, list[web.Request]], http: HttpClient
) -> None:
    address, seen = server
    await http.call("POST", address, "/echo", cluster=True)
    await http.call("POST", address, "/echo")
    signed, plain = seen
    scheme, token = signed.headers["Authorization"].split(" ")
    assert scheme == "Bearer"
    check_cluster_token(token, KEY, time.time())  # raises if it is not one
    assert "Authorization" not in plain.headers


async def test_a_refused_connection_is_server_unreachable(http: HttpClient) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: refused
        with pytest.raises(errors.ServerUnreachable, match=rf"^POST http://127.0.0.1:{port}/x "):
            await http.call("POST", f"127.0.0.1:{port}", "/x")


async def test_no_answer_within_the_timeout_is_server_unreachable(
    server: tuple[str, list[web.Request]], http: HttpClient
) -> None:
    address, _ = server
    with pytest.raises(errors.ServerUnreachable, match="Timeout"):
        await http.request("GET", address, "/slow", timeout=Timeout(total=0.2))


async def test_a_client_is_used_between_start_and_close_only() -> None:
    client = HttpClient(None, Timeout(total=1))
    with pytest.raises(RuntimeError, match="before start"):
        await client.request("GET", "127.0.0.1:1", "/")
    await client.start()
    await client.close()
    with pytest.raises(RuntimeError, match="after close"):
        await client.request("GET", "127.0.0.1:1", "/")
