"""Tiered volumes cross between weed 4.48 and weedpy on one S3 server (weed's gateway):
a volume `weed shell volume.tier.upload` moved is served by weedpy from its `.vif` and `.idx`,
and a volume weedpy moved is mounted and served by a weed volume server (tiering spec §9).
The SDK's download_many falls back to single GETs against weed, which has no batch read."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from seaweed_py.client import AsyncClient
from seaweed_py.client.cluster import Outgoing
from seaweed_py.client.http import HttpClient, Timeout
from seaweed_py.client.volume_admin import VolumeAdmin
from seaweed_py.formats.vif import VolumeInfo
from seaweed_py.storage.backend.settings import BackendSource
from tests import s3_server, volume_harness
from tests.servers import WEED, call, free_port, get_json, put, start_cluster
from tests.volume_harness import Session, Starter, allocate, get, url

pytestmark = pytest.mark.parity

s3 = s3_server.s3
master = volume_harness.master
start_server = volume_harness.start_server
http = volume_harness.http


def config_dir(s3: s3_server.S3Server, tmp_path: Path) -> Path:
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "master.toml").write_text(s3.master_toml(s3.new_bucket()))
    return cfg


async def test_weedpy_serves_a_volume_weed_tiered(
    s3: s3_server.S3Server, tmp_path: Path, start_server: Starter, http: Session
) -> None:
    cfg = config_dir(s3, tmp_path)
    weed = start_cluster("weed", tmp_path, volumes=1, config_dir=cfg)
    try:
        blobs: dict[str, bytes] = {}
        for i in range(30):
            assigned = get_json(f"{weed.master_url}/dir/assign")
            data = os.urandom(300 + 11 * i)
            assert put(assigned["url"], assigned["fid"], data)[0] == 201
            blobs[assigned["fid"]] = data
        # weed has no /batch/read: download_many reads one GET per fid there.
        async with AsyncClient(weed.master_url) as client:
            missing = f"{next(iter(blobs)).split(',')[0]},ffff00000001"
            got = await client.download_many([*blobs, missing])
        assert got == {**blobs, missing: None}
        vid = int(next(iter(blobs)).split(",")[0])
        script = f"lock\nvolume.tier.upload -volumeId={vid} -dest=s3.default\nunlock\n"
        done = subprocess.run(
            [str(WEED), "shell", f"-master={weed.master_url}"],
            input=script,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert f"markVolumeReadonly {vid}" in done.stdout, done.stdout + done.stderr
        source = weed.directory / "volume0"
        assert not (source / f"{vid}.dat").exists()
    finally:
        weed.stop()
    info = VolumeInfo.from_json((source / f"{vid}.vif").read_bytes())
    assert info.files[0].backend_type == "s3" and info.bytes_offset == 5
    target = tmp_path / "v0"
    target.mkdir()
    for ext in (".idx", ".vif"):
        shutil.copy(source / f"{vid}{ext}", target / f"{vid}{ext}")
    backends = BackendSource(config_dir=str(cfg), env={}, search_dirs=()).load()
    server = await start_server("v0", backends=backends)
    mine = {fid: data for fid, data in blobs.items() if fid.startswith(f"{vid},")}
    assert mine
    for fid, data in mine.items():
        status, _, body = await get(http, url(server, f"/{fid}"))
        assert (status, body) == (200, data), fid
    gone = next(iter(mine))
    idx_size = (target / f"{vid}.idx").stat().st_size
    async with http.delete(url(server, f"/{gone}")) as resp:
        assert resp.status == 202
    assert (target / f"{vid}.idx").stat().st_size == idx_size + 17  # a 5-byte-offset entry
    assert (await get(http, url(server, f"/{gone}")))[0] == 404


async def test_weed_mounts_a_volume_weedpy_tiered(
    s3: s3_server.S3Server, tmp_path: Path, start_server: Starter, http: Session
) -> None:
    cfg = config_dir(s3, tmp_path)
    backends = BackendSource(config_dir=str(cfg), env={}, search_dirs=()).load()
    # weed 4.48 is the large-disk build: it reads only 5-byte-offset volumes.
    server = await start_server("v0", backends=backends, large_disk=True)
    vid = 9
    await allocate(http, server, vid)
    blobs: dict[str, bytes] = {}
    for n in range(1, 31):
        fid = f"{vid},{n:x}{0x5EED0000 + n:08x}"
        blobs[fid] = os.urandom(500 + n)
        async with http.put(url(server, f"/{fid}"), data=io.BytesIO(blobs[fid])) as resp:
            assert resp.status == 201
    await VolumeAdmin(HttpClient(Outgoing(), Timeout(120), session=http)).tier_upload(
        server.url(), vid, dest="s3"
    )
    await server.stop()
    weed_dir = tmp_path / "weed-volume"
    weed_dir.mkdir()
    for ext in (".idx", ".vif"):
        shutil.copy(Path(server.options.dirs[0]) / f"{vid}{ext}", weed_dir / f"{vid}{ext}")
    weed = start_cluster("weed", tmp_path, volumes=[], config_dir=cfg, wait_writable=False)
    port = free_port()
    log = tmp_path / "weed-volume.log"
    with log.open("wb") as out:
        volume = subprocess.Popen(
            [
                str(WEED),
                f"-config_dir={cfg}",
                "volume",
                f"-dir={weed_dir}",
                "-ip=127.0.0.1",
                f"-port={port}",
                f"-master={weed.master_url}",
                "-max=5",
                "-preStopSeconds=0",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=tmp_path,
        )
    try:
        deadline = time.monotonic() + 60
        first = next(iter(blobs))
        while _status(f"127.0.0.1:{port}/{first}") != 200:
            assert volume.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        for fid, data in blobs.items():
            assert call("GET", f"127.0.0.1:{port}/{fid}") == (200, data), fid
        assert "is tiered to s3.default" in log.read_text()
    finally:
        volume.terminate()
        volume.wait(10)
        weed.stop()


def _status(target: str) -> int:
    try:
        return call("GET", target, timeout=2)[0]
    except OSError:
        return 0
