"""In-process volume servers on loopback for the functional tests: a fake master, a starter
that stops every server it started, an aiohttp session, and the small request helpers the test
modules share. A module takes the fixtures by naming them (`master = volume_harness.master`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from seaweed_py.volume import VolumeOptions, VolumeServer
from tests.fake_master import FakeMaster

Session = aiohttp.ClientSession
Starter = Callable[..., Awaitable[VolumeServer]]
"""`await start(name="v0", **VolumeOptions fields, clock=...)`; the same name reopens the same
directory (a restart)."""


class Clock:
    """An injectable wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def master() -> AsyncIterator[FakeMaster]:
    m = FakeMaster()
    await m.start()
    yield m
    await m.stop()


@pytest.fixture
async def start_server(tmp_path: Path, master: FakeMaster) -> AsyncIterator[Starter]:
    started: list[VolumeServer] = []

    async def start(name: str = "v0", **overrides: Any) -> VolumeServer:
        directory = tmp_path / name
        directory.mkdir(exist_ok=True)
        fields: dict[str, Any] = dict(
            dirs=(str(directory),),
            max_volumes=(8,),
            masters=(master.address,),
            ip="127.0.0.1",
            port=0,
            pulse_seconds=0.2,
            pre_stop_seconds=0,
        )
        fields.update(overrides)
        clock = fields.pop("clock", None)
        server = VolumeServer(VolumeOptions(**fields), **({"clock": clock} if clock else {}))
        await server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        if not server.stopping:
            await server.stop()


@pytest.fixture
async def http() -> AsyncIterator[Session]:
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session


def url(server: VolumeServer, path: str) -> str:
    return f"http://127.0.0.1:{server.port}{path}"


async def allocate(http: Session, server: VolumeServer, vid: int, **params: str) -> None:
    async with http.post(
        url(server, "/admin/volume/allocate"), params={"volume": str(vid), **params}
    ) as resp:
        assert resp.status == 200, await resp.text()


async def get(http: Session, target: str, **kw: Any) -> tuple[int, Mapping[str, str], bytes]:
    async with http.get(target, **kw) as resp:
        return resp.status, resp.headers.copy(), await resp.read()


async def until(check: Callable[[], object], timeout: float = 10.0) -> None:
    """Wait for `check()` to hold, polling; fail the test after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)
