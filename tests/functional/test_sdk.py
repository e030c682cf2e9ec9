"""The SDK against a real cluster: the reference `weed`, and weedpy once its servers exist."""

from __future__ import annotations

import asyncio
import io
import os
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from seaweed_py.client import AsyncClient, Client, Location
from seaweed_py.client.manifest import decode_manifest
from seaweed_py.errors import (
    InvalidFileId,
    NeedleNotFound,
    ServerUnreachable,
    VolumeNotFound,
)
from tests import servers
from tests.servers import Cluster, VolumeSpec

impl = servers.impl
cluster_factory = servers.cluster_factory
shared_cluster = servers.shared_cluster

MiB = 1024 * 1024


@pytest.fixture
def cluster(shared_cluster: Cluster) -> Cluster:
    return shared_cluster


@pytest.fixture
async def client(cluster: Cluster) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(cluster.master_url, chunk_size=MiB) as sdk:
        yield sdk


async def raw_get(url: str, **params: str) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as session, session.get(url, params=params) as resp:
        return resp.status, dict(resp.headers), await resp.read()


async def test_bytes_round_trip_keeps_name_mime_and_pairs(client: AsyncClient) -> None:
    result = await client.upload(b"hello weed", name="hello.txt", pairs={"Owner": "ann"})
    assert result.size == 10
    assert result.name == "hello.txt"
    assert result.chunks == 0
    assert await client.download(result.fid) == b"hello weed"
    status, headers, body = await raw_get(f"http://{result.url}")
    assert (status, body) == (200, b"hello weed")
    assert headers["Content-Type"].startswith("text/plain")
    assert "hello.txt" in headers["Content-Disposition"]
    assert headers["Owner"] == "ann"


async def test_file_path_and_stream_round_trip(client: AsyncClient, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    source = tmp_path / "photo.bin"
    source.write_bytes(data)
    from_path = await client.upload(source)
    assert from_path.name == "photo.bin"
    from_stream = await client.upload(io.BytesIO(data), name="s.bin")
    target = tmp_path / "out" / "copy.bin"
    target.parent.mkdir()
    assert await client.download_to(from_path.fid, target) == len(data)
    assert target.read_bytes() == data
    sink = io.BytesIO()
    await client.download_to(from_stream.fid, sink)
    assert sink.getvalue() == data
    assert [p.name for p in target.parent.iterdir()] == ["copy.bin"]


async def test_save_names_the_file_like_the_server_does(
    client: AsyncClient, tmp_path: Path
) -> None:
    named = await client.upload(b"report", name="report.pdf")
    assert await client.save(named.fid, tmp_path) == tmp_path / "report.pdf"
    assert (tmp_path / "report.pdf").read_bytes() == b"report"
    chosen = await client.save(named.fid, tmp_path, name="mine.pdf")
    assert chosen.read_bytes() == b"report"
    with pytest.raises(NeedleNotFound):
        await client.save(named.fid[:-1] + ("0" if named.fid[-1] != "0" else "1"), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.pdf", "report.pdf"]


async def test_large_file_is_chunked_with_a_manifest_and_reads_whole(
    client: AsyncClient, cluster: Cluster
) -> None:
    data = os.urandom(3 * MiB + 12345)
    sent: list[tuple[int, int | None]] = []
    result = await client.upload(data, name="big.iso", progress=lambda n, t: sent.append((n, t)))
    assert (result.size, result.chunks) == (len(data), 4)
    assert sum(n for n, _ in sent) == len(data)
    assert {t for _, t in sent} == {len(data)}
    received: list[tuple[int, int | None]] = []
    assert await client.download(result.fid, progress=lambda n, t: received.append((n, t))) == data
    assert sum(n for n, _ in received) == len(data)
    assert {t for _, t in received} == {len(data)}
    location = (await client.lookup(result.fid))[0]
    status, _, raw = await raw_get(f"http://{location.url}/{result.fid}", cm="false")
    assert status == 200
    manifest = decode_manifest(raw)
    assert manifest.name == "big.iso"
    assert manifest.size == len(data)
    assert [(c.offset, c.size) for c in manifest.chunks] == [
        (0, MiB),
        (MiB, MiB),
        (2 * MiB, MiB),
        (3 * MiB, 12345),
    ]
    for chunk in manifest.chunks:
        assert await client.download(chunk.fid) == data[chunk.offset : chunk.offset + chunk.size]


async def test_exact_multiple_of_the_chunk_size_has_no_empty_chunk(client: AsyncClient) -> None:
    data = os.urandom(2 * MiB)
    result = await client.upload(data)
    assert result.chunks == 2
    assert await client.download(result.fid) == data


async def test_stream_of_unknown_length_is_chunked(client: AsyncClient) -> None:
    data = os.urandom(2 * MiB + 1)

    class Pipe(io.RawIOBase):
        """Non-seekable, returns short reads, like a pipe."""

        def __init__(self) -> None:
            self._pos = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            n = min(len(buffer), 70_000, len(data) - self._pos)
            buffer[:n] = data[self._pos : self._pos + n]
            self._pos += n
            return n

    result = await client.upload(Pipe(), name="piped")
    assert (result.size, result.chunks) == (len(data), 3)
    assert await client.download(result.fid) == data


async def test_a_failed_chunked_upload_deletes_the_chunks_it_wrote(
    client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    class BreaksAfterTwoChunks(io.RawIOBase):
        def __init__(self) -> None:
            self._pos = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            if self._pos >= 2 * MiB:
                raise OSError("disk read error")
            n = min(len(buffer), 2 * MiB - self._pos)
            buffer[:n] = b"x" * n
            self._pos += n
            return n

    deleted: list[str] = []
    delete = client.delete

    async def recording_delete(fid: str) -> int:
        deleted.append(fid)
        return await delete(fid)

    monkeypatch.setattr(client, "delete", recording_delete)
    with pytest.raises(OSError, match="disk read error"):
        await client.upload(BreaksAfterTwoChunks(), name="broken")
    assert len(deleted) == 2
    for fid in deleted:
        with pytest.raises(NeedleNotFound):
            await client.download(fid)


async def test_batch_assign_addresses_consecutive_keys(client: AsyncClient) -> None:
    assignment = await client.assign(count=3)
    assert assignment.count == 3
    fids = assignment.fids
    assert fids[1] == f"{assignment.fid}_1"
    for i, fid in enumerate(fids):
        await client.write(fid, f"file {i}".encode(), url=assignment.url, name=f"f{i}.txt")
    for i, fid in enumerate(fids):
        assert await client.download(fid) == f"file {i}".encode()
    # `write` without a url finds the volume server itself.
    await client.write(fids[2], b"rewritten")
    assert await client.download(fids[2]) == b"rewritten"


async def test_delete_removes_blob_and_chunks(client: AsyncClient) -> None:
    small = await client.upload(b"short-lived")
    assert await client.delete(small.fid) > 0
    with pytest.raises(NeedleNotFound):
        await client.download(small.fid)
    with pytest.raises(NeedleNotFound):
        await client.delete(small.fid)
    big = await client.upload(os.urandom(MiB + 1))
    location = (await client.lookup(big.fid))[0]
    _, _, raw = await raw_get(f"http://{location.url}/{big.fid}", cm="false")
    chunks = decode_manifest(raw).chunks
    await client.delete(big.fid)
    for fid in [big.fid, *(c.fid for c in chunks)]:
        with pytest.raises(NeedleNotFound):
            await client.download(fid)


async def test_errors_map_to_the_exception_tree(client: AsyncClient) -> None:
    with pytest.raises(VolumeNotFound):
        await client.lookup(999_999)
    with pytest.raises(InvalidFileId):
        await client.download("3,zz")
    with pytest.raises(InvalidFileId):
        await client.lookup("three")
    fid = (await client.upload(b"x")).fid
    vid, rest = fid.split(",")
    wrong_cookie = f"{vid},{rest[:-8]}{int(rest[-8:], 16) ^ 1:08x}"
    with pytest.raises(NeedleNotFound):
        await client.download(wrong_cookie)
    async with AsyncClient(f"127.0.0.1:{servers.free_port()}", connect_timeout=2) as dead:
        with pytest.raises(ServerUnreachable):
            await dead.assign()


async def test_location_cache_expires(cluster: Cluster) -> None:
    now = [0.0]
    async with AsyncClient(cluster.master_url, cache_ttl=10, clock=lambda: now[0]) as sdk:
        fid = (await sdk.upload(b"cached")).fid
        vid = int(fid.split(",")[0])
        await sdk.lookup(vid)
        assert vid in sdk.cache
        now[0] = 9.9
        assert vid in sdk.cache
        now[0] = 10.0
        assert vid not in sdk.cache
        assert await sdk.download(fid) == b"cached"
        assert vid in sdk.cache


async def _stale_server(status: int) -> tuple[web.AppRunner, str]:
    """A 'volume server' that answers every request with `status`: a volume that moved."""

    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"error": "not here"}, status=status)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"127.0.0.1:{port}"


async def test_stale_cache_is_invalidated_on_404(client: AsyncClient) -> None:
    fid = (await client.upload(b"moved volume")).fid
    vid = int(fid.split(",")[0])
    runner, stale = await _stale_server(404)
    try:
        client.cache.put(vid, [Location(stale, stale)])
        assert await client.download(fid) == b"moved volume"
        cached = client.cache.get(vid)
        assert cached is not None
        assert stale not in [loc.url for loc in cached]
    finally:
        await runner.cleanup()


async def test_stale_cache_is_invalidated_on_connection_error(client: AsyncClient) -> None:
    fid = (await client.upload(b"dead server")).fid
    vid = int(fid.split(",")[0])
    dead = f"127.0.0.1:{servers.free_port()}"
    client.cache.put(vid, [Location(dead, dead)])
    assert await client.download(fid) == b"dead server"
    cached = client.cache.get(vid)
    assert cached is not None
    assert dead not in [loc.url for loc in cached]


def test_sync_client_round_trip(cluster: Cluster, tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"sync notes")
    with Client(cluster.master_url) as sdk:
        result = sdk.upload(path)
        assert sdk.download(result.fid) == b"sync notes"
        assert sdk.lookup(result.fid)[0].url in cluster.volume_urls
        assignment = sdk.assign(count=2)
        sdk.write(assignment.fids[1], b"second")
        assert sdk.download(assignment.fids[1]) == b"second"
        assert sdk.delete(result.fid) > 0
    with pytest.raises(RuntimeError):
        sdk.download(result.fid)


async def test_sync_client_works_inside_a_running_event_loop(cluster: Cluster) -> None:
    # The facade runs its own loop on a thread, so it does not clash with this one
    # (called from a worker thread here only because it blocks).
    def work() -> bytes:
        with Client(cluster.master_url) as sdk:
            return sdk.download(sdk.upload(b"nested").fid)

    assert await asyncio.to_thread(work) == b"nested"


async def test_reads_fail_over_to_another_replica(
    cluster_factory: Callable[..., Cluster],
) -> None:
    replicated = cluster_factory(
        volumes=[VolumeSpec(rack="r1"), VolumeSpec(rack="r1")], replication="001"
    )

    class InOrder(random.Random):
        """Reads try replicas in lookup order, so the dead one is tried first."""

        def shuffle(self, x: list[object]) -> None:  # type: ignore[override]
            pass

    async with AsyncClient(replicated.master_url, rng=InOrder()) as sdk:
        result = await sdk.upload(b"two copies", replication="001")
        locations = await sdk.lookup(result.fid)
        assert len(locations) == 2
        replicated.kill_volume(replicated.volume_urls.index(locations[0].url))
        assert await sdk.download(result.fid) == b"two copies"
        assert await sdk.download(result.fid) == b"two copies"
