"""The volume server's `-whiteList` (spec §10.3, reliability scenario 24): writes, deletes,
replica forwards and `/admin/*` answer 401 to peers outside the list; reads stay open. Also the
flag wiring of `weedpy volume` and `weedpy server`, and a `weedpy server` whose master still
grows volumes when only a client address is listed.

Every test client connects from 127.0.0.1; a list without it (10.9.9.9) makes it an outsider.
State the outsider must not change is created first by the same server started without a list.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from seaweed_py.cli.server_cmd import build_flags, resolve, server_options
from seaweed_py.cli.volume_cmd import flag_set
from seaweed_py.config.flags import UsageError
from seaweed_py.master.options import master_options
from seaweed_py.master.server import MasterServer
from seaweed_py.volume import VolumeOptions, VolumeServer, volume_options
from tests import volume_harness
from tests.fake_master import FakeMaster
from tests.servers import free_port

Session = volume_harness.Session
Starter = volume_harness.Starter
master = volume_harness.master
start_server = volume_harness.start_server
http = volume_harness.http
_url = volume_harness.url

FID = "1,01637037d6"
OTHER_FID = "1,02637037d6"
OUTSIDER = {"error": "127.0.0.1 is not in the white list"}


def _form(data: bytes) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO(data), filename="f.bin")
    return form


async def _call(http: Session, method: str, url: str, **kw: Any) -> tuple[int, str, bytes]:
    async with http.request(method, url, **kw) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.read()


async def _ok(http: Session, method: str, url: str, **kw: Any) -> bytes:
    status, _, body = await _call(http, method, url, **kw)
    assert status < 300, (method, url, status, body)
    return body


async def _refused(http: Session, method: str, url: str, **kw: Any) -> None:
    status, content_type, body = await _call(http, method, url, **kw)
    assert (status, json.loads(body)) == (401, OUTSIDER), (method, url)
    assert content_type.startswith("application/json")


async def _prepared(
    start_server: Starter, http: Session, name: str = "v0", replication: str = "000"
) -> None:
    """Volume 1 holding FID, volume 2 in collection "pics", written by an unguarded start."""
    open_server = await start_server(name)
    await _ok(
        http,
        "POST",
        _url(open_server, "/admin/volume/allocate"),
        params={"volume": "1", "replication": replication},
    )
    await _ok(
        http,
        "POST",
        _url(open_server, "/admin/volume/allocate"),
        params={"volume": "2", "collection": "pics"},
    )
    await _ok(
        http,
        "POST",
        _url(open_server, f"/{FID}"),
        data=_form(b"kept"),
        params={"type": "replicate"},
    )
    await open_server.stop()


# ------------------------------------------------------------------ outsiders


async def test_outsider_writes_deletes_and_admin_calls_are_401_and_change_nothing(
    start_server: Starter, http: Session
) -> None:
    await _prepared(start_server, http)
    vs = await start_server("v0", white_list=("10.9.9.9",))
    forged = {"X-Forwarded-For": "10.9.9.9", "X-Real-IP": "10.9.9.9"}  # not trusted

    await _refused(http, "POST", _url(vs, f"/{OTHER_FID}"), data=_form(b"new"))
    await _refused(http, "POST", _url(vs, f"/{OTHER_FID}"), data=_form(b"new"), headers=forged)
    await _refused(http, "PUT", _url(vs, f"/{OTHER_FID}"), data=b"new")
    await _refused(
        http,
        "POST",
        _url(vs, f"/{OTHER_FID}"),
        data=_form(b"replica"),
        params={"type": "replicate"},
    )
    await _refused(http, "DELETE", _url(vs, f"/{FID}"))
    await _refused(http, "DELETE", _url(vs, f"/{FID}"), params={"type": "replicate"})
    for path, params in (
        ("/admin/volume/allocate", {"volume": "3"}),
        ("/admin/volume/readonly", {"volume": "1"}),
        ("/admin/volume/delete", {"volume": "1"}),
        ("/admin/collection/delete", {"collection": "pics"}),
    ):
        await _refused(http, "POST", _url(vs, path), params=params)
    await _refused(http, "GET", _url(vs, "/admin/volume/status"), params={"volume": "1"})
    await _refused(
        http, "POST", _url(vs, "/admin/volume/writable"), params={"volume": "1"}, headers=forged
    )
    # Every /admin/ route, enumerated from the router so that a new one cannot be left open.
    for path, route in vs.http.router.exact.items():
        if path.startswith("/admin/"):
            assert route.methods is not None
            for method in sorted(route.methods - {"HEAD"}):
                await _refused(http, method, _url(vs, path), params={"volume": "1"})

    # Nothing changed: the blob still reads, the refused write stored nothing, no volume was
    # allocated, deleted or frozen.
    assert (await _call(http, "GET", _url(vs, f"/{FID}")))[::2] == (200, b"kept")
    assert (await _call(http, "HEAD", _url(vs, f"/{FID}")))[0] == 200
    assert (await _call(http, "GET", _url(vs, f"/{OTHER_FID}")))[0] == 404
    infos = {info.id: info for info in vs.store.volume_infos()}
    assert sorted(infos) == [1, 2]
    assert infos[2].collection == "pics"
    assert not infos[1].read_only


async def test_reads_status_health_metrics_ui_and_preflight_stay_open(
    start_server: Starter, http: Session
) -> None:
    await _prepared(start_server, http)
    vs = await start_server("v0", white_list=("10.9.9.9",))
    for path in ("/status", "/healthz", "/readyz", "/metrics", "/ui/index.html", f"/{FID}"):
        await _ok(http, "GET", _url(vs, path))
    await _ok(http, "OPTIONS", _url(vs, f"/{FID}"), headers={"Origin": "http://x"})


async def test_a_listed_network_writes_deletes_and_administers(
    start_server: Starter, http: Session
) -> None:
    vs = await start_server("v0", white_list=("10.9.9.9", "127.0.0.0/8"))
    await _ok(http, "POST", _url(vs, "/admin/volume/allocate"), params={"volume": "1"})
    assert json.loads(await _ok(http, "POST", _url(vs, f"/{FID}"), data=_form(b"hello")))
    await _ok(http, "PUT", _url(vs, f"/{OTHER_FID}"), data=b"put")
    assert (await _call(http, "GET", _url(vs, f"/{OTHER_FID}")))[::2] == (200, b"put")
    await _ok(http, "DELETE", _url(vs, f"/{FID}"))
    assert (await _call(http, "GET", _url(vs, f"/{FID}")))[0] == 404
    await _ok(http, "POST", _url(vs, "/admin/volume/readonly"), params={"volume": "1"})
    await _ok(http, "GET", _url(vs, "/admin/volume/status"), params={"volume": "1"})
    await _ok(http, "POST", _url(vs, "/admin/volume/delete"), params={"volume": "1"})
    assert vs.store.volume_infos() == []


async def test_a_peer_outside_the_replicas_list_fails_the_replicated_write(
    start_server: Starter, master: FakeMaster, http: Session
) -> None:
    """Replica forwards come from the writing server's address, so replicas must list it."""
    await _prepared(start_server, http, "replica", replication="001")
    replica = await start_server("replica", white_list=("10.9.9.9",))
    primary = await start_server("primary")
    await _ok(
        http,
        "POST",
        _url(primary, "/admin/volume/allocate"),
        params={"volume": "1", "replication": "001"},
    )
    master.locations[1] = [primary.url(), replica.url()]
    status, _, _ = await _call(http, "POST", _url(primary, f"/{OTHER_FID}"), data=_form(b"x"))
    assert status >= 500
    assert (await _call(http, "GET", _url(replica, f"/{OTHER_FID}")))[0] == 404

    await replica.stop()
    replica = await start_server("replica", white_list=("127.0.0.1",))
    master.locations[1] = [primary.url(), replica.url()]
    primary.link.forget(1)
    await _ok(http, "POST", _url(primary, f"/{OTHER_FID}"), data=_form(b"y"))
    assert (await _call(http, "GET", _url(replica, f"/{OTHER_FID}")))[::2] == (200, b"y")


# ------------------------------------------------------------------ flags


def test_volume_flag_is_validated_like_the_masters() -> None:
    values, _ = flag_set().parse(["-dir=/tmp", "-ip=127.0.0.1", "-whiteList=10.0.0.1, ::1/128"])
    assert volume_options(values).white_list == ("10.0.0.1", "::1/128")
    values, _ = flag_set().parse(["-dir=/tmp", "-ip=127.0.0.1"])
    assert volume_options(values).white_list == ()
    values, _ = flag_set().parse(["-dir=/tmp", "-ip=127.0.0.1", "-whiteList=10.0.0.1,bogus"])
    with pytest.raises(UsageError, match="-whiteList: 'bogus'"):
        volume_options(values)
    with pytest.raises(UsageError, match="-whiteList: 'bogus'"):
        VolumeOptions(dirs=("/tmp",), max_volumes=(1,), white_list=("bogus",))


def _server_values(*argv: str) -> dict[str, Any]:
    values, _ = build_flags().parse(argv)
    return resolve(values, {a.lstrip("-").partition("=")[0] for a in argv})


def test_server_shares_the_list_and_adds_its_own_address_for_the_volume_server() -> None:
    v = _server_values("-ip=10.0.0.5", "-whiteList=192.0.2.1")
    assert master_options(v, "master.").white_list == ("192.0.2.1",)
    assert volume_options(v, "volume.").white_list == ("192.0.2.1", "10.0.0.5")
    v = _server_values("-ip=127.0.1.1", "-whiteList=192.0.2.1")  # Debian's hostname address
    assert v["volume.whiteList"] == "192.0.2.1,127.0.1.1,127.0.0.1,::1"
    v = _server_values("-ip=10.0.0.5", "-volume.master=localhost:9333", "-whiteList=10.0.0.5")
    assert v["volume.whiteList"] == "10.0.0.5,127.0.0.1,::1"
    # Host names are not resolved; an empty list stays empty (everyone allowed).
    v = _server_values("-ip=weed1.example", "-whiteList=192.0.2.1")
    assert v["volume.whiteList"] == "192.0.2.1"
    assert _server_values("-ip=10.0.0.5")["volume.whiteList"] == ""
    with pytest.raises(UsageError, match="-whiteList: 'nope'"):
        _server_values("-ip=10.0.0.5", "-whiteList=nope")


def _client_address_available() -> bool:
    try:
        with socket.socket() as probe:
            probe.bind(("127.0.0.2", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _client_address_available(), reason="127.0.0.2 is not bindable here")
async def test_server_with_only_a_client_listed_still_grows_volumes(tmp_path: Path) -> None:
    """The master allocates on its volume server from 127.0.0.1, which the operator did not
    list; the client (127.0.0.2) assigns, uploads and reads; others cannot use the master."""
    v = _server_values(
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={tmp_path}",
        f"-master.port={free_port()}",
        f"-volume.port={free_port()}",
        "-master.pulseSeconds=1",
        "-volume.pulseSeconds=1",
        "-whiteList=127.0.0.2",
    )
    master_opts, volume_opts = server_options(v)
    master = MasterServer(master_opts)
    volume = VolumeServer(volume_opts)
    await master.start()
    try:
        await volume.start()
        try:
            await _client_uses_the_server(master, volume)
        finally:
            await volume.stop()
    finally:
        await master.stop()


async def _client_uses_the_server(master: MasterServer, volume: VolumeServer) -> None:
    client = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=client) as http, aiohttp.ClientSession() as other:
        base = f"http://127.0.0.1:{master.port}"
        for _ in range(50):  # until the volume server's first heartbeat is in
            if master.topology.free_slots():
                break
            await asyncio.sleep(0.05)
        answer = json.loads(await _ok(http, "GET", f"{base}/dir/assign"))
        blob = f"http://127.0.0.1:{volume.port}/{answer['fid']}"
        await _ok(http, "POST", blob, data=_form(b"grown"))
        assert (await _call(http, "GET", blob))[::2] == (200, b"grown")
        assert (await _call(other, "GET", f"{base}/dir/assign"))[0] == 401
