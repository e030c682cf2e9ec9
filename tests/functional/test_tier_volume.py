"""A volume tiered to a real S3-compatible server (weed's gateway): reads with the index local
and the data remote, deletes, a restart, a mount on a second server from the bucket alone, and
the way back to local disk (tiering spec §5-§7)."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import os
import random
import time
from pathlib import Path

import aiohttp
import pytest

from seaweed_py.client.cluster import Outgoing
from seaweed_py.client.http import HttpClient, Timeout
from seaweed_py.client.tiering import Tiering
from seaweed_py.client.volume_admin import VolumeAdmin
from seaweed_py.errors import BadRequest, Conflict, NotFound, VolumeNotFound
from seaweed_py.formats.vif import VolumeInfo
from seaweed_py.formats.wire import Heartbeat, MarkReadonly
from seaweed_py.master.tiering import AutoTier
from seaweed_py.storage.backend import Backends
from seaweed_py.storage.backend.settings import BackendSource
from seaweed_py.topology import Topology
from seaweed_py.topology.tiering import TierPolicy
from seaweed_py.volume import VolumeServer
from tests import s3_server, volume_harness
from tests.fake_master import FakeMaster
from tests.volume_harness import Session, Starter, allocate, get, until, url

s3 = s3_server.s3
master = volume_harness.master
start_server = volume_harness.start_server
http = volume_harness.http

VID = 7


def settings(s3: s3_server.S3Server, bucket: str, **extra: str) -> dict:  # type: ignore[type-arg]
    return BackendSource(env=s3.env(bucket, **extra), search_dirs=()).load()


async def fill(http: Session, server: VolumeServer, vid: int, count: int) -> dict[str, bytes]:
    """`count` small blobs, one 3 MiB blob (streamed in ranges) and one stored gzipped."""
    await allocate(http, server, vid)
    rng = random.Random(vid)
    blobs: dict[str, bytes] = {}
    sizes = [rng.randrange(1, 9000) for _ in range(count)] + [3 << 20]
    for i, size in enumerate(sizes, start=1):
        fid = f"{vid},{i:x}{0x1000 + i:08x}"
        data = rng.randbytes(size)
        async with http.put(url(server, f"/{fid}"), data=io.BytesIO(data)) as resp:
            assert resp.status == 201, await resp.text()
        blobs[fid] = data
    text = b"compressible " * 500
    fid = f"{vid},{len(sizes) + 1:x}{0x2000:08x}"
    headers = {"Content-Encoding": "gzip", "Content-Type": "text/plain"}
    async with http.put(url(server, f"/{fid}"), data=gzip.compress(text), headers=headers) as r:
        assert r.status == 201, await r.text()
    blobs[fid] = text
    return blobs


async def read_all(http: Session, server: VolumeServer, blobs: dict[str, bytes]) -> None:
    async def one(fid: str, data: bytes) -> None:
        plain = {"Accept-Encoding": "identity"}
        status, _, body = await get(http, url(server, f"/{fid}"), headers=plain)
        assert (status, body) == (200, data), (fid, status, body[:200])

    await asyncio.gather(*(one(fid, data) for fid, data in blobs.items()))


def vif(server: VolumeServer, vid: int) -> VolumeInfo:
    return VolumeInfo.from_json((Path(server.options.dirs[0]) / f"{vid}.vif").read_bytes())


async def test_tier_read_delete_restart_mount_and_download(
    s3: s3_server.S3Server, start_server: Starter, http: Session
) -> None:
    bucket = s3.new_bucket()
    backends = settings(s3, bucket, WEEDPY_S3_PREFIX="cluster-a")
    v0 = await start_server("v0", backends=backends)
    blobs = await fill(http, v0, VID, 40)
    directory = Path(v0.options.dirs[0])
    original = (directory / f"{VID}.dat").read_bytes()
    admin = VolumeAdmin(HttpClient(Outgoing(), Timeout(120), session=http))

    done = await admin.tier_upload(v0.url(), VID, dest="s3", collection="")
    info = vif(v0, VID)
    assert info.files[0].key == done["key"] and done["key"].startswith("cluster-a/7/")
    assert (info.files[0].backend_type, info.files[0].backend_id) == ("s3", "default")
    assert info.files[0].file_size == len(original) and not info.read_only
    assert not (directory / f"{VID}.dat").exists()
    store = v0.store.backends.get("s3")
    assert store.read_range(done["key"], 0, len(original)) == original  # byte for byte
    await read_all(http, v0, blobs)
    status, _, body = await get(
        http, url(v0, f"/{next(iter(blobs))}"), headers={"Range": "bytes=1-3"}
    )
    assert status == 206 and body == next(iter(blobs.values()))[1:4]
    large = next(fid for fid, data in blobs.items() if len(data) == 3 << 20)
    status, _, body = await get(http, url(v0, f"/{large}"), headers={"Range": "bytes=2000000-"})
    assert (status, body) == (206, blobs[large][2000000:])

    # Writes are refused; a delete touches only the local .idx.
    async with http.put(url(v0, f"/{VID},ff00000001"), data=b"x") as resp:
        assert resp.status >= 400
    deleted, *_ = blobs
    idx_before = (directory / f"{VID}.idx").stat().st_size
    async with http.delete(url(v0, f"/{deleted}")) as resp:
        assert resp.status == 202, await resp.text()
    assert (directory / f"{VID}.idx").stat().st_size == idx_before + 16
    assert (await get(http, url(v0, f"/{deleted}")))[0] == 404
    kept = {fid: data for fid, data in blobs.items() if fid != deleted}
    status_body = json.loads((await get(http, url(v0, "/status")))[2])
    (row,) = [v for v in status_body["Volumes"] if v["Id"] == VID]
    assert (row["RemoteStorageName"], row["ReadOnly"], row["ReadOnlyCanDelete"]) == (
        "s3.default",
        True,
        True,
    )
    # The deletion reaches the bucket's copy of the .idx within a pulse or two.
    await until(lambda: not v0.store.get(VID).index_dirty, timeout=20)  # type: ignore[union-attr]

    # A restart serves it again from the .vif and .idx alone.
    await v0.stop()
    v0 = await start_server("v0", backends=backends)
    await read_all(http, v0, kept)
    assert (await get(http, url(v0, f"/{deleted}")))[0] == 404

    # A second server with nothing of the volume mounts it from the bucket alone.
    v1 = await start_server("v1", backends=backends)
    mounted = await admin.tier_mount(v1.url(), VID, source="s3")
    assert mounted["key"] == done["key"]
    await read_all(http, v1, kept)
    assert (await get(http, url(v1, f"/{deleted}")))[0] == 404
    beat = v1.admin.heartbeat().to_obj()
    (hb,) = [v for v in beat["volumes"] if v["id"] == VID]
    assert (hb["remoteStorageName"], hb["remoteStorageKey"], hb["readOnly"]) == (
        "s3.default",
        done["key"],
        True,
    )

    # Back to local disk: v0 keeps the object for v1, v1 (the last holder) deletes it.
    back = await admin.tier_download(v0.url(), VID, collection="", keep_remote=True)
    assert back["key"] == done["key"]
    assert (directory / f"{VID}.dat").read_bytes() == original
    assert os.stat(directory / f"{VID}.dat").st_mtime == info.files[0].modified_time
    assert not vif(v0, VID).files
    await read_all(http, v0, kept)
    assert (await get(http, url(v0, f"/{deleted}")))[0] == 404  # the tombstone stays
    async with http.put(url(v0, f"/{VID},ff00000001"), data=b"new") as resp:
        assert resp.status == 201  # writable again
    await admin.tier_download(v1.url(), VID, collection="")
    await read_all(http, v1, kept)
    assert [o.key for o in store.list("cluster-a/")] == []
    with pytest.raises(Conflict, match="already on local disk"):
        await admin.tier_download(v1.url(), VID)


async def test_a_delete_the_bucket_missed_before_a_crash_is_sent_after_the_restart(
    s3: s3_server.S3Server, start_server: Starter, http: Session
) -> None:
    """A delete acknowledged just before a crash may never have reached the bucket's `.idx`
    (the pulse that sends it did not come, and the restart forgets it was due): the restarted
    server compares the copies once and sends its own, so a server mounting the volume from
    the bucket does not serve the deleted blob again."""
    bucket = s3.new_bucket()
    backends = settings(s3, bucket)
    v0 = await start_server("v0", backends=backends)
    blobs = await fill(http, v0, VID, 10)
    admin = VolumeAdmin(HttpClient(Outgoing(), Timeout(120), session=http))
    done = await admin.tier_upload(v0.url(), VID, dest="s3", collection="")
    store = v0.store.backends.get("s3")
    idx_key = f"{done['key']}.idx"
    before = store.read_object(idx_key)
    deleted, *_ = blobs
    async with http.delete(url(v0, f"/{deleted}")) as resp:
        assert resp.status == 202, await resp.text()
    await v0.stop()
    store.put_bytes(idx_key, before)  # as if the crash came before the pulse sent it

    v0 = await start_server("v0", backends=backends)
    local = (Path(v0.options.dirs[0]) / f"{VID}.idx").read_bytes()
    assert len(local) == len(before) + 16
    await until(lambda: store.read_object(idx_key) == local, timeout=20)
    v1 = await start_server("v1", backends=backends)
    await admin.tier_mount(v1.url(), VID, source="s3")
    assert (await get(http, url(v1, f"/{deleted}")))[0] == 404
    await read_all(http, v1, {fid: data for fid, data in blobs.items() if fid != deleted})


async def test_a_holder_back_with_an_older_idx_leaves_the_buckets_newer_copy(
    s3: s3_server.S3Server, start_server: Starter, http: Session
) -> None:
    """A holder that was away while another sent a delete's `.idx` must not send its shorter
    one after its restart: that would take the delete back for every later mount."""
    bucket = s3.new_bucket()
    backends = settings(s3, bucket)
    v0 = await start_server("v0", backends=backends)
    blobs = await fill(http, v0, VID, 10)
    admin = VolumeAdmin(HttpClient(Outgoing(), Timeout(120), session=http))
    done = await admin.tier_upload(v0.url(), VID, dest="s3", collection="")
    v1 = await start_server("v1", backends=backends)
    await admin.tier_mount(v1.url(), VID, source="s3")
    await v1.stop()
    store = v0.store.backends.get("s3")
    idx_key = f"{done['key']}.idx"
    deleted, *_ = blobs
    async with http.delete(url(v0, f"/{deleted}")) as resp:
        assert resp.status == 202, await resp.text()
    newer = (Path(v0.options.dirs[0]) / f"{VID}.idx").read_bytes()
    await until(lambda: store.read_object(idx_key) == newer, timeout=20)

    v1 = await start_server("v1", backends=backends)
    await until(lambda: not v1.store.get(VID).index_unchecked, timeout=20)  # type: ignore[union-attr]
    assert store.read_object(idx_key) == newer
    v2 = await start_server("v2", backends=backends)
    await admin.tier_mount(v2.url(), VID, source="s3")
    assert (await get(http, url(v2, f"/{deleted}")))[0] == 404


async def test_a_mark_held_in_memory_is_passed_on_by_a_download_but_not_saved(
    s3: s3_server.S3Server, start_server: Starter, http: Session
) -> None:
    """A tiering step's read-only mark (`persist=false`) holds across the download's reopen
    (a tiered vacuum holds deletes so), but is written to no `.vif`: after a restart the
    volume takes writes again."""
    backends = settings(s3, s3.new_bucket())
    v0 = await start_server("v0", backends=backends)
    await fill(http, v0, VID, 3)
    admin = VolumeAdmin(HttpClient(Outgoing(), Timeout(120), session=http))
    await admin.tier_upload(v0.url(), VID, dest="s3", collection="")
    await admin.send(v0.url(), MarkReadonly(VID, persist=False))
    await admin.tier_download(v0.url(), VID, collection="")
    assert not vif(v0, VID).read_only
    async with http.put(url(v0, f"/{VID},ff00000001"), data=b"held") as resp:
        assert resp.status == 500 and "read-only" in await resp.text()
    await v0.stop()
    v0 = await start_server("v0", backends=backends)
    async with http.put(url(v0, f"/{VID},ff00000001"), data=b"free") as resp:
        assert resp.status == 201, await resp.text()


async def test_a_mount_that_cannot_read_the_bucket_leaves_the_copy_it_would_replace(
    s3: s3_server.S3Server, start_server: Starter, http: Session
) -> None:
    """`replace` gives the old copy up only once the new `.idx` and `.vif` are in hand."""
    backends = settings(s3, s3.new_bucket())
    v0 = await start_server("v0", backends=backends)
    blobs = await fill(http, v0, VID, 5)
    admin = VolumeAdmin(HttpClient(Outgoing(), Timeout(120), session=http))
    done = await admin.tier_upload(v0.url(), VID, dest="s3", collection="")
    missing = done["key"][:-12] + "000000000000"  # an upload that is not in the bucket
    with pytest.raises(NotFound):
        await admin.tier_mount(v0.url(), VID, source="s3", key=missing, replace=True)
    await read_all(http, v0, blobs)
    assert vif(v0, VID).files[0].key == done["key"]


async def test_keep_local_dat_still_reads_the_bucket(
    s3: s3_server.S3Server, start_server: Starter, http: Session
) -> None:
    v0 = await start_server("v0", backends=settings(s3, s3.new_bucket()))
    blobs = await fill(http, v0, VID, 5)
    admin = VolumeAdmin(HttpClient(Outgoing(), Timeout(120), session=http))
    await admin.tier_upload(v0.url(), VID, dest="s3.default", keep_local=True)
    dat = Path(v0.options.dirs[0]) / f"{VID}.dat"
    assert dat.exists()
    requests = v0.store.backends.requests()["s3.default"]
    await read_all(http, v0, blobs)
    assert v0.store.backends.requests()["s3.default"] > requests  # spec §7: reads go remote
    again = await admin.tier_upload(v0.url(), VID, dest="s3")
    assert again["already"] is True  # a rerun is a no-op, as weed's


async def test_refusals_before_anything_changes(
    s3: s3_server.S3Server, start_server: Starter, http: Session
) -> None:
    v0 = await start_server("v0")  # no S3 settings at all: local volumes still serve
    blobs = await fill(http, v0, VID, 3)
    admin = VolumeAdmin(HttpClient(Outgoing(), Timeout(120), session=http))
    with pytest.raises(BadRequest, match="no S3 backend is configured"):
        await admin.tier_upload(v0.url(), VID, dest="s3")
    with pytest.raises(VolumeNotFound):
        await admin.tier_upload(v0.url(), 99, dest="s3")
    with pytest.raises(BadRequest, match="collection"):
        await admin.tier_upload(v0.url(), VID, dest="s3", collection="other")
    with pytest.raises(BadRequest, match="backend name"):
        await admin.tier_upload(v0.url(), VID, dest="s3.a.b")
    with pytest.raises(Conflict, match="already on local disk"):
        await admin.tier_download(v0.url(), VID)
    await read_all(http, v0, blobs)
    async with http.put(url(v0, f"/{VID},ff00000001"), data=b"x") as resp:
        assert resp.status == 201  # still writable


async def test_an_unreachable_bucket_fails_the_upload_and_leaves_the_volume_local(
    s3: s3_server.S3Server, start_server: Starter, http: Session
) -> None:
    backends = settings(s3, s3.new_bucket(), WEEDPY_S3_ENDPOINT="http://127.0.0.1:9")
    v0 = await start_server("v0", backends=backends)
    blobs = await fill(http, v0, VID, 3)
    admin = VolumeAdmin(HttpClient(Outgoing(), Timeout(120), session=http))
    with pytest.raises(Exception, match=r"upload s3\.default/") as caught:
        await admin.tier_upload(v0.url(), VID, dest="s3")
    assert s3.secret_key not in str(caught.value)
    assert not vif(v0, VID).files
    await read_all(http, v0, blobs)
    async with http.put(url(v0, f"/{VID},ff00000001"), data=b"x") as resp:
        assert resp.status == 201  # writable again


async def test_a_tiered_volume_whose_backend_is_not_configured_is_skipped_alone(
    s3: s3_server.S3Server, start_server: Starter, http: Session
) -> None:
    backends = settings(s3, s3.new_bucket())
    v0 = await start_server("v0", backends=backends)
    await fill(http, v0, VID, 2)
    local = await fill(http, v0, VID + 1, 2)
    await VolumeAdmin(HttpClient(Outgoing(), Timeout(120), session=http)).tier_upload(
        v0.url(), VID, dest="s3"
    )
    await v0.stop()
    v0 = await start_server("v0")  # restarted without the S3 settings
    assert v0.store.get(VID) is None
    assert any("s3.default not found" in why for why in v0.store.load_errors.values())
    await read_all(http, v0, local)


async def test_secrets_stay_out_of_status_metrics_heartbeats_and_vif(
    s3: s3_server.S3Server, start_server: Starter, http: Session, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    bucket = s3.new_bucket()
    v0 = await start_server("v0", backends=settings(s3, bucket))
    blobs = await fill(http, v0, VID, 3)
    await VolumeAdmin(HttpClient(Outgoing(), Timeout(120), session=http)).tier_upload(
        v0.url(), VID, dest="s3"
    )
    await read_all(http, v0, blobs)
    seen = [
        (await get(http, url(v0, "/status")))[2].decode(),
        (await get(http, url(v0, "/metrics")))[2].decode(),
        (await get(http, url(v0, "/ui/index.html")))[2].decode(),
        v0.admin.heartbeat().to_json().decode(),
        (Path(v0.options.dirs[0]) / f"{VID}.vif").read_text(),
        repr(v0.options),
        caplog.text,
    ]
    for text in seen:
        assert s3.secret_key not in text


def test_backends_repr_hides_the_secret(s3: s3_server.S3Server) -> None:
    backends = Backends(settings(s3, "some-bucket"))
    assert s3.secret_key not in repr(backends.settings)
    assert backends.secrets() == (s3.secret_key,)


async def test_reads_coalesce_and_the_cache_keeps_them_off_the_network(
    s3: s3_server.S3Server, start_server: Starter, http: Session
) -> None:
    v0 = await start_server("v0", backends=settings(s3, s3.new_bucket()), tier_cache=8 << 20)
    blobs = await fill(http, v0, VID, 60)
    small = {fid: data for fid, data in blobs.items() if len(data) < 10000}
    await VolumeAdmin(HttpClient(Outgoing(), Timeout(120), session=http)).tier_upload(
        v0.url(), VID, dest="s3"
    )
    before = v0.store.backends.requests()["s3.default"]
    await read_all(http, v0, small)  # all at once: neighbours share GETs
    first = v0.store.backends.requests()["s3.default"] - before
    assert first < len(small)
    before = v0.store.backends.requests()["s3.default"]
    await read_all(http, v0, small)  # again: from the cache
    assert v0.store.backends.requests()["s3.default"] == before


async def test_bucket_gone_answers_502_and_reads_recover(
    s3: s3_server.S3Server, start_server: Starter, http: Session
) -> None:
    bucket = s3.new_bucket()
    v0 = await start_server("v0", backends=settings(s3, bucket), tier_cache=0)
    blobs = await fill(http, v0, VID, 3)
    done = await VolumeAdmin(HttpClient(Outgoing(), Timeout(120), session=http)).tier_upload(
        v0.url(), VID, dest="s3"
    )
    store = v0.store.backends.get("s3")
    saved = store.read_range(done["key"], 0, 1 << 30)
    store.delete(done["key"])
    fid = next(iter(blobs))
    status, _, body = await get(http, url(v0, f"/{fid}"))
    assert status == 502 and b"error" in body and s3.secret_key.encode() not in body
    store.put_bytes(done["key"], saved)
    await read_all(http, v0, blobs)


async def test_tier_routes_are_behind_the_white_list(
    s3: s3_server.S3Server, start_server: Starter
) -> None:
    v0 = await start_server("v0", backends=settings(s3, s3.new_bucket()), white_list=("127.0.0.1",))
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=connector) as outsider:
        for method, path in (
            ("POST", "upload"),
            ("POST", "download"),
            ("POST", "mount"),
            ("POST", "forget"),
            ("GET", "uploads"),
        ):
            async with outsider.request(
                method,
                url(v0, f"/admin/volume/tier/{path}"),
                params={"volume": "1", "dest": "s3", "source": "s3", "key": "1/x"},
            ) as resp:
                assert resp.status == 401, (method, path)


async def test_the_masters_policy_tiers_full_quiet_volumes_by_itself(
    s3: s3_server.S3Server, start_server: Starter, http: Session, master: FakeMaster
) -> None:
    v0 = await start_server("v0", backends=settings(s3, s3.new_bucket()))
    blobs = await fill(http, v0, VID, 10)
    await allocate(http, v0, VID + 1)
    local = {f"{VID + 1},1000000001": b"small"}
    async with http.put(url(v0, f"/{VID + 1},1000000001"), data=b"small") as resp:
        assert resp.status == 201
    master.locations[VID] = [v0.url()]
    master.locations[VID + 1] = [v0.url()]
    topology = Topology(volume_size_limit=4 << 20, pulse_seconds=1.0)
    topology.apply_heartbeat(Heartbeat.from_json(v0.admin.heartbeat().to_json()), 0.0)
    policy = TierPolicy(dest="s3", quiet_for=3600.0, full_percent=50.0)
    auto = AutoTier(
        topology,
        Tiering(HttpClient(Outgoing(), Timeout(120), session=http), master.address),
        policy,
        now=lambda: time.time() + 7200,
    )
    # Volume 7 holds more than half the size limit and was last written "two hours ago";
    # volume 8 is small.
    assert await auto.round() == [VID]
    assert vif(v0, VID).files and not vif(v0, VID + 1).files
    await read_all(http, v0, {**blobs, **local})
    topology.apply_heartbeat(Heartbeat.from_json(v0.admin.heartbeat().to_json()), 1.0)
    assert await auto.round() == []  # tiered volumes are left alone
