"""A secured cluster as a whole (issue 16): mutual TLS between every server and client
(heartbeats, the master's admin calls, replication and proxied reads all present the
`[https.client]` certificate), and the guard: `guard.white_list` merged with `-whiteList`,
CIDRs, the TCP peer address only, swapped by a reload."""

from __future__ import annotations

import ssl
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from seaweed_py.client import AsyncClient
from seaweed_py.master import MasterOptions, MasterServer
from seaweed_py.volume import VolumeOptions, VolumeServer
from tests.functional.test_master_cluster_guard import OUTSIDER, _outsider_bindable
from tests.secure_cluster import KEY, SecureCluster, make_pki, settings


async def test_mutual_tls_cluster_replicates_and_proxies(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    security = settings(key=KEY, pki=pki, mutual=True)
    client_ssl = pki.client_context()
    async with SecureCluster(tmp_path, security, volumes=2, client_ssl=client_ssl) as cluster:
        assert cluster.master is not None
        master = f"https://127.0.0.1:{cluster.master.port}"
        async with AsyncClient(master, ssl=client_ssl) as client:
            stored = await client.upload(b"two copies over mTLS", replication="001")
            locations = await client.lookup(stored.fid)
            assert len(locations) == 2
            for volume in cluster.volumes:  # each server holds its own copy
                held = volume.store.get(int(stored.fid.split(",")[0]))
                assert held is not None and held.live_count == 1
            assert await client.download(stored.fid) == b"two copies over mTLS"
            single = await client.upload(b"one copy")
        # A read sent to the server without the volume is proxied to the holder over mTLS.
        vid = int(single.fid.split(",")[0])
        other = next(i for i, v in enumerate(cluster.volumes) if v.store.get(vid) is None)
        async with cluster.http.get(cluster.volume_url(other, f"/{single.fid}")) as resp:
            assert (resp.status, await resp.read()) == (200, b"one copy")
        # Clients without a certificate of the CA do not get in, on either port.
        for url in (cluster.master_url("/dir/status"), cluster.volume_url(0, "/status")):
            for ctx in (pki.client_context(with_cert=False), pki.client_context(stranger=True)):
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as http:
                    with pytest.raises((aiohttp.ClientError, ssl.SSLError)):
                        async with http.get(url) as resp:
                            await resp.read()


@pytest.mark.skipif(not _outsider_bindable(), reason="127.0.0.2 is not bindable")
async def test_guard_white_list_merges_with_the_flag_and_reloads(tmp_path: Path) -> None:
    flag_only = MasterOptions(
        ip="127.0.0.1", port=0, mdir=str(tmp_path / "m"), white_list=("10.1.0.0/16",)
    )
    master = MasterServer(replace(flag_only, security=settings(white_list=("127.0.0.0/30",))))
    await master.start()
    (tmp_path / "v").mkdir()
    volume = VolumeServer(
        VolumeOptions(
            dirs=(str(tmp_path / "v"),),
            max_volumes=(1,),
            masters=(master.address,),
            ip="127.0.0.1",
            port=0,
            pre_stop_seconds=0,
            white_list=("10.2.0.0/16",),
            security=settings(white_list=("127.0.0.1",)),
        )
    )
    await volume.start()
    base = f"http://127.0.0.1:{master.port}"
    try:
        async with (
            aiohttp.ClientSession() as inside,
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(local_addr=(OUTSIDER, 0))
            ) as outside,
        ):
            # 127.0.0.2 is in the file's CIDR for the master, not in the volume server's list.
            headers = {"X-Forwarded-For": "127.0.0.1"}  # chosen by the client: ignored
            async with outside.get(f"{base}/dir/status", headers=headers) as resp:
                assert resp.status == 200
            volume_admin = f"http://127.0.0.1:{volume.port}/admin/volume/status?volume=1"
            async with outside.get(volume_admin, headers=headers) as resp:
                assert resp.status == 401
            async with inside.get(volume_admin) as resp:
                assert resp.status == 404  # allowed through, no such volume
            # A reload narrows the master's list to the flag's: the outsider is refused now.
            master.reload_security(settings())
            async with outside.get(f"{base}/dir/status") as resp:
                assert resp.status == 401
            async with outside.get(f"{base}/healthz") as resp:
                assert resp.status == 200  # probes stay open
            # And a reload of the volume server's adds the outsider there.
            volume.reload_security(settings(white_list=(OUTSIDER,)))
            async with outside.get(volume_admin) as resp:
                assert resp.status == 404
            async with inside.get(volume_admin) as resp:
                assert resp.status == 401  # 127.0.0.1 left the file's list
    finally:
        await volume.stop()
        await master.stop()
