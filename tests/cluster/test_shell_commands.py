"""Every `weedpy shell` command against a live weedpy cluster: a master and three volume servers
(dc1/r1 twice, dc1/r2) as processes on loopback, shared by the module, with a signing key (the
shell signs its changes with the cluster token) and a white list of 127.0.0.1 (a shell on
127.0.0.2 is refused). Mistakes are one `error:` line each and a failing exit status, and
change nothing."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from seaweed_py.cli import shell as shell_cli
from seaweed_py.cli.shell.registry import ShellContext
from seaweed_py.client.cluster import Outgoing
from seaweed_py.security.tokens import JwtKeys, cluster_token, fid_token
from tests.servers import Cluster, VolumeSpec, call, free_port, start_cluster

KEY = b"shell-test-signing-key"
R2 = 2  # the only server in rack r2
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# ---------------------------------------------------------------------------- the cluster


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("shell-config")
    (folder / "security.toml").write_text(f'[jwt.signing]\nkey = "{KEY.decode()}"\n')
    return folder


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, config: Path) -> Iterator[Cluster]:
    # Room for every collection the tests grow (each grows several volumes at once).
    specs = [VolumeSpec("dc1", "r1", 60), VolumeSpec("dc1", "r1", 60), VolumeSpec("dc1", "r2", 60)]
    with start_cluster(
        "weedpy",
        tmp_path_factory.mktemp("shell-cluster"),
        specs,
        replication="010",
        pulse_seconds=1,
        config_dir=config,
        # The master repairs nothing by itself here: the shell's commands do it, and the
        # tests make copies too many or too few on purpose.
        master_args=["-whiteList=127.0.0.1", "-repairDelaySeconds=-1"],
        # No background scrubbing: the scrub tests rot bytes and scrub on demand.
        volume_args=["-whiteList=127.0.0.1", "-scrubMBps=0"],
    ) as running:
        yield running


def sh(cluster: Cluster, script: str, config: Path | None) -> tuple[int, str]:
    """Run `script` in `weedpy shell` in this process: (exit status, what it printed)."""
    out = io.StringIO()
    args = [f"-master={cluster.master_url}", "-c", script]
    if config is not None:
        args.insert(0, f"-config_dir={config}")
    with contextlib.redirect_stdout(out):
        status = shell_cli.run(args)
    return status, out.getvalue()


@pytest.fixture
def shell(cluster: Cluster, config: Path) -> Callable[[str], tuple[int, str]]:
    return lambda script: sh(cluster, script, config)


def errors_of(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


def assign(cluster: Cluster, **params: str) -> tuple[str, str, str]:
    """(fid, url, write token) of a new assign."""
    query = "&".join(f"{k}={v}" for k, v in params.items())
    with _OPENER.open(f"{cluster.master_http}/dir/assign?{query}", timeout=10) as resp:
        token = resp.headers.get("Authorization", "")
        answer = json.loads(resp.read())
    return answer["fid"], answer["url"], token


def upload(cluster: Cluster, count: int, **params: str) -> dict[str, bytes]:
    blobs: dict[str, bytes] = {}
    for i in range(count):
        fid, url, token = assign(cluster, **params)
        data = os.urandom(200 + 31 * i)
        status, body = call("PUT", f"{url}/{fid}", data, {"Authorization": token})
        assert status == 201, body
        blobs[fid] = data
    return blobs


def holders(cluster: Cluster, vid: int) -> list[str]:
    status, body = call("GET", f"{cluster.master_url}/dir/lookup?volumeId={vid}")
    if status != 200:
        return []
    return sorted(loc["url"] for loc in json.loads(body).get("locations") or [])


def until(what: str, check: Callable[[], bool], timeout: float = 20.0, why: object = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what} {why}")
        time.sleep(0.1)


def readable(cluster: Cluster, blobs: dict[str, bytes], servers: list[str], why: str = "") -> None:
    for fid, data in blobs.items():
        for server in servers:
            assert call("GET", f"{server}/{fid}") == (200, data), (server, fid, why)


def vid_of(fid: str) -> int:
    return int(fid.split(",")[0])


def node_volumes(cluster: Cluster) -> dict[str, list[dict[str, Any]]]:
    status, body = call("GET", f"{cluster.master_url}/vol/status")
    assert status == 200
    found: dict[str, list[dict[str, Any]]] = {}
    for racks in json.loads(body)["Volumes"]["DataCenters"].values():
        for nodes in racks.values():
            for url, vols in nodes.items():
                found[url] = vols or []
    return found


def cluster_post(cluster: Cluster, path: str) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {cluster_token(KEY, time.time())}"}
    return call("POST", f"{cluster.master_url}{path}", b"", headers)


# ---------------------------------------------------------------------------- reading


def test_volume_list_prints_weeds_tree(cluster: Cluster, shell: Callable[..., Any]) -> None:
    blobs = upload(cluster, 1, collection="tree", replication="010")
    vid = vid_of(next(iter(blobs)))
    where = holders(cluster, vid)
    status, out = shell(f"volume.list -volumeId {vid}")
    assert status == 0, out
    lines = out.splitlines()
    assert re.fullmatch(r"Topology hdd\(volume:\d+/\d+ active:\d+ free:\d+ remote:0\)", lines[0])
    assert lines[1].startswith("  DataCenter dc1 hdd(volume:")
    nodes = [ln.split()[1] for ln in lines if ln.startswith("      DataNode ")]
    assert sorted(nodes) == sorted(where * 2), out  # a header and a totals line each
    volume_lines = [ln for ln in lines if ln.startswith("          volume ")]
    assert len(volume_lines) == 2, out
    for ln in volume_lines:
        assert re.fullmatch(
            rf"          volume Id:{vid}, Size:\d+, ReplicaPlacement:010, Collection:tree, "
            r"Version:3, Ttl:, FileCount:\d, DeleteCount:0, DeletedByteCount:0, "
            r"ReadOnly:false, ModifiedAtSecond:\d+ ",
            ln,
        ), ln
    assert any(re.fullmatch(r"        Disk hdd\(volume:\d+/60 .*\) id:0", ln) for ln in lines)
    assert re.fullmatch(r"total size:\d+ file_count:\d+ ", lines[-1])

    status, out = shell(f"volume.list -volumeId {vid} -v 2 -rack r2")
    rack_lines = out.splitlines()
    assert [ln.split()[0] for ln in rack_lines] == [
        "Topology",
        "DataCenter",
        "Rack",
        "Rack",
        "DataCenter",
        "total",
    ], out
    status, out = shell(f"volume.list -volumeId {vid} -readonly")
    assert len(out.splitlines()) == 2  # nothing read-only: the topology and the total only
    status, out = shell(f"volume.list -dataNode {where[0]} -collectionPattern tr?e -json")
    tree = json.loads(out)
    shown = [
        (node["url"], v["id"])
        for dc in tree["dataCenters"]
        for rack in dc["racks"]
        for node in rack["nodes"]
        for v in node["volumes"]
    ]
    assert (where[0], vid) in shown and {u for u, _ in shown} == {where[0]}


def test_help_ps_check_and_lists(cluster: Cluster, shell: Callable[..., Any]) -> None:
    upload(cluster, 3, collection="pics", replication="010")
    status, out = shell("help; help volume.move; volume.fix.replication -h")
    assert status == 0, out
    for name in (
        "volume.fix.replication",
        "volume.balance",
        "volume.check.disk",
        "volume.scrub",
        "collection.delete",
        "cluster.ps",
        "lock",
    ):
        assert f"  {name} " in out
    assert "-source" in out and "-maxParallelizationPerServer" in out

    status, out = shell("cluster.ps; cluster.check; collection.list; volume.list")
    assert status == 0, out
    assert "* volume servers 3" in out and "* rack: r2" in out
    assert out.count("(weedpy ") == 3  # each server's version
    assert re.search(rf"checking master {cluster.master_url} \.\.\. ok round trip", out)
    assert len(re.findall(r"checking volume server \S+ \.\.\. ok round trip", out)) == 3
    assert 'collection:"pics"\tvolumeCount:' in out and "Total " in out
    assert "DataNode " in out

    status, out = shell("cluster.ps -json")
    ps = json.loads(out)
    assert sorted(s["server"] for s in ps["volumeServers"]) == sorted(cluster.volume_urls)

    def pics_files() -> int:
        rows = {r["collection"]: r for r in json.loads(shell("collection.list -json")[1])}
        return int(rows["pics"]["fileCount"])

    until("the heartbeats to count the files", lambda: pics_files() == 3)  # replicas once
    status, out = shell("cluster.check -json")
    assert status == 0 and all(c["ok"] for c in json.loads(out)["checks"])


# ---------------------------------------------------------------------------- the lock


def test_changes_need_the_lock(cluster: Cluster, shell: Callable[..., Any]) -> None:
    blobs = upload(cluster, 1, replication="010")
    vid = vid_of(next(iter(blobs)))
    node = holders(cluster, vid)[0]
    commands = [
        f"volume.mark -node {node} -volumeId {vid} -readonly",
        f"volume.delete -node {node} -volumeId {vid}",
        f"volume.move -volumeId {vid} -source {node} -target {cluster.volume_urls[R2]}",
        "volume.fix.replication -apply",
        "volume.balance",
        "volume.check.disk",
        "volume.scrub",
        "volume.vacuum",
        "collection.delete -collection pics",
    ]
    status, out = shell("\n".join(commands))
    assert status == 1
    errs = errors_of(out)
    assert len(errs) == len(commands), out
    assert all('need to run "lock" first to continue' in e for e in errs), errs
    # Planning only needs no lock, as in weed.
    status, out = shell("volume.fix.replication")
    assert status == 0 and "Running in simulation mode" in out
    readable(cluster, blobs, holders(cluster, vid))


def test_the_lock_is_one_operator_at_a_time(cluster: Cluster) -> None:
    async def scenario() -> list[str]:
        out = Outgoing(keys=JwtKeys(KEY))
        first_out, second_out = io.StringIO(), io.StringIO()
        async with aiohttp.ClientSession() as s1, aiohttp.ClientSession() as s2:
            first = ShellContext(cluster.master_url, out, s1, first_out)
            second = ShellContext(cluster.master_url, out, s2, second_out)
            assert await shell_cli.execute(first, "lock")
            waiting = asyncio.create_task(shell_cli.execute(second, "lock"))
            for _ in range(100):
                if "waiting for lock held by weedpy shell" in second_out.getvalue():
                    break
                await asyncio.sleep(0.05)
            assert not waiting.done()
            assert await shell_cli.execute(first, "unlock")
            assert await asyncio.wait_for(waiting, 10)
            assert not await shell_cli.execute(first, "volume.balance")  # first holds nothing
            await second.lock.close()
            await first.lock.close()
        return [first_out.getvalue(), second_out.getvalue()]

    first, second = asyncio.run(scenario())
    assert "lock acquired" in second
    assert 'need to run "lock" first' in first


# ---------------------------------------------------------------------------- repairs


def test_fix_replication_copies_and_trims_without_losing_a_write(
    cluster: Cluster, shell: Callable[..., Any]
) -> None:
    blobs = upload(cluster, 4, replication="010", collection="fix")
    vid = vid_of(next(iter(blobs)))
    blobs = {f: d for f, d in blobs.items() if vid_of(f) == vid}
    r2 = cluster.volume_urls[R2]
    before = holders(cluster, vid)
    assert r2 in before and len(before) == 2
    status, out = shell(f"lock; volume.delete -node {r2} -volumeId {vid}")
    assert status == 0 and f"deleted volume {vid} from {r2}" in out
    (kept,) = [u for u in before if u != r2]
    until("the master to drop the copy", lambda: holders(cluster, vid) == [kept])

    status, out = shell("volume.fix.replication -collectionPattern fix")
    assert status == 0, out
    assert "Running in simulation mode" in out
    assert f"volume {vid} replication 010, but under replicated +1" in out
    assert f"replicating volume {vid} 010 from {kept} to dataNode {r2} ..." in out
    assert holders(cluster, vid) == [kept]  # a simulation changes nothing

    status, out = shell("lock; volume.fix.replication -apply -collectionPattern fix")
    assert status == 0, out
    assert f"copied volume {vid} to {r2}" in out
    assert holders(cluster, vid) == before
    readable(cluster, blobs, before)

    # One copy too many, holding a write the others lack: the trim keeps the write.
    r1 = next(u for u in cluster.volume_urls if u not in before)
    status, out = shell(f"lock; volume.copy -volumeId {vid} -source {r2} -target {r1}")
    assert status == 0 and f"copied volume {vid} from {r2} to {r1}" in out, out
    until("three copies", lambda: len(holders(cluster, vid)) == 3)
    fid = f"{vid},7f00000001{0x5EED5EED:08x}"
    late = os.urandom(333)
    token = f"Bearer {fid_token(KEY, 10, fid, time.time())}"
    status, body = call("PUT", f"{r1}/{fid}?type=replicate", late, {"Authorization": token})
    assert status == 201, body
    blobs[fid] = late

    status, out = shell("lock; volume.fix.replication -force -collectionPattern fix")
    assert status == 0, out
    assert "WARNING: -force is deprecated" in out
    assert f"volume {vid} replication 010, but over replicated +3" in out
    until("two copies", lambda: len(holders(cluster, vid)) == 2)
    left = holders(cluster, vid)
    assert r2 in left  # the only copy in rack r2 stays
    # The late write lives on: on the trimmed copy's survivors if that copy held it, else on
    # the copy that holds it, from which check.disk spreads it.
    assert any(call("GET", f"{u}/{fid}") == (200, late) for u in left), out
    status, out = shell(f"lock; volume.check.disk -volumeId {vid} -apply")
    assert status == 0, out
    readable(cluster, blobs, left, out)
    status, out = shell("volume.fix.replication -collectionPattern fix -json")
    assert json.loads(out)["actions"] == []


def test_move_and_balance(cluster: Cluster, shell: Callable[..., Any]) -> None:
    status, body = cluster_post(cluster, "/vol/grow?count=8&collection=bal&replication=000")
    assert status == 200, body
    blobs = upload(cluster, 6, collection="bal", replication="000")
    r1 = [u for i, u in enumerate(cluster.volume_urls) if i != R2]

    def bal_volumes() -> dict[str, list[int]]:
        return {
            url: sorted(v["Id"] for v in vols if v["Collection"] == "bal")
            for url, vols in node_volumes(cluster).items()
        }

    def count(url: str) -> int:
        return len(node_volumes(cluster)[url])

    # Every bal volume onto one r1 server, by hand.
    spread = bal_volumes()
    a = max(r1, key=lambda url: sum(len(v) for u, v in spread.items() if u != url))
    script = ["lock"]
    for url, vids in spread.items():
        if url != a:
            script += [f"volume.move -volumeId {v} -source {url} -target {a}" for v in vids]
    assert len(script) > 1, spread
    status, out = shell("\n".join(script))
    assert status == 0, out
    assert re.search(r"copying volume \d+ from \S+ to " + re.escape(a), out)
    assert re.search(r"moved volume \d+ from \S+ to " + re.escape(a), out)
    until(
        "every bal volume on one server",
        lambda: all(not v for url, v in bal_volumes().items() if url != a),
    )
    readable(cluster, blobs, [a])

    (b,) = [u for u in r1 if u != a]
    assert count(a) - count(b) >= 2, node_volumes(cluster)  # unbalanced: 8 bal volumes more
    balance = f"volume.balance -collection bal -nodes {a},{b}"
    status, out = shell(f"lock; {balance}")
    assert status == 0, out
    assert "Running in simulation mode" in out and "moving volume bal_" in out
    assert all(not v for url, v in bal_volumes().items() if url != a)  # only a plan

    status, out = shell(f"lock; {balance} -apply -json")
    assert status == 0, out
    moves = json.loads(out)["moves"]
    assert moves and all(m["result"] == "done" and m["source"] == a for m in moves), moves
    for m in moves:
        until(f"volume {m['volume']} on {b}", lambda m=m: holders(cluster, m["volume"]) == [b])
    assert abs(count(a) - count(b)) <= 1
    for fid, data in blobs.items():
        readable(cluster, {fid: data}, holders(cluster, vid_of(fid)))
    status, out = shell(f"lock; {balance} -json")
    assert json.loads(out)["moves"] == []


def test_mark_delete_and_their_answers(cluster: Cluster, shell: Callable[..., Any]) -> None:
    blobs = upload(cluster, 2, collection="marks", replication="010")
    vid = vid_of(next(iter(blobs)))
    node = holders(cluster, vid)[0]

    def read_only(url: str) -> bool:
        return any(v["Id"] == vid and v["ReadOnly"] for v in node_volumes(cluster)[url])

    status, out = shell(f"lock; volume.mark -node {node} -volumeId {vid} -readonly")
    assert status == 0 and f"volume {vid} on {node} marked readonly" in out
    until("read-only", lambda: read_only(node))
    status, out = shell("lock; volume.mark -collection marks -writable")
    assert status == 0, out
    assert out.count("marked writable") == 2 * len({vid_of(f) for f in blobs}) or "marked" in out
    until("writable", lambda: not read_only(node))
    status, out = shell(f"lock; volume.delete -node {node} -volumeId 4000000")
    assert status == 1 and len(errors_of(out)) == 1 and "4000000" in errors_of(out)[0]
    readable(cluster, blobs, holders(cluster, vid))


# ---------------------------------------------------------------------------- checks


def test_check_disk_finds_a_difference_and_heals_it(
    cluster: Cluster, shell: Callable[..., Any]
) -> None:
    blobs = upload(cluster, 3, collection="check", replication="010")
    vid = vid_of(next(iter(blobs)))
    first, second = holders(cluster, vid)
    status, out = shell(f"lock; volume.check.disk -volumeId {vid}")
    assert status == 0 and f"volume {vid}: 2 replicas agree" in out, out

    fid = f"{vid},6e00000001{0x0BADF00D:08x}"
    only = os.urandom(500)
    token = f"Bearer {fid_token(KEY, 10, fid, time.time())}"
    status, body = call("PUT", f"{first}/{fid}?type=replicate", only, {"Authorization": token})
    assert status == 201, body
    assert call("GET", f"{second}/{fid}")[0] == 404

    status, out = shell(f"lock; volume.check.disk -volumeId {vid}")
    assert status == 0, out
    assert (
        f"volume {vid}: {first} holds 1 newer needle(s) and 0 newer delete(s) that {second}" in out
    )
    assert "-apply makes them converge" in out
    assert call("GET", f"{second}/{fid}")[0] == 404  # only reported

    status, out = shell(f"lock; volume.check.disk -volumeId {vid} -apply -json")
    assert status == 0, out
    report = json.loads(out)["volumes"][0]
    assert report["differences"] and report["after"] == []
    readable(cluster, {**blobs, fid: only}, [first, second])


def _rot(cluster: Cluster, vid: int, data: bytes, server: str) -> None:
    """Flip one byte of `data` inside volume `vid`'s .dat on `server`."""
    index = cluster.volume_urls.index(server)
    dats = list((cluster.directory / f"volume{index}").rglob(f"*{vid}.dat"))
    dats = [d for d in dats if re.fullmatch(rf"(.+_)?{vid}\.dat", d.name)]
    assert len(dats) == 1, dats
    raw = bytearray(dats[0].read_bytes())
    at = raw.find(data)
    assert at > 0
    with dats[0].open("r+b") as f:
        f.seek(at + len(data) // 2)
        f.write(bytes([raw[at + len(data) // 2] ^ 0xFF]))


def test_scrub_repairs_from_a_replica_and_fails_without_one(
    cluster: Cluster, shell: Callable[..., Any]
) -> None:
    blobs = upload(cluster, 2, collection="scrub", replication="010")
    fid, data = next(iter(blobs.items()))
    vid = vid_of(fid)
    victim = holders(cluster, vid)[0]
    _rot(cluster, vid, data, victim)
    status, out = shell(f"lock; volume.scrub -volumeId {vid} -node {victim} -details")
    assert status == 0, out
    assert "using FULL mode" in out and f"Scrubbing {victim} (1/1)..." in out
    assert f"1 corrupt needle(s) repaired from a replica: {victim}:{vid}" in out
    assert call("GET", f"{victim}/{fid}") == (200, data)

    lonely = upload(cluster, 1, collection="scrub0", replication="000")
    fid0, data0 = next(iter(lonely.items()))
    vid0 = vid_of(fid0)
    (only,) = holders(cluster, vid0)
    _rot(cluster, vid0, data0, only)
    status, out = shell(f"lock; volume.scrub -volumeId {vid0} -json")
    assert status == 1
    errs = errors_of(out)
    assert len(errs) == 1 and "no sound copy" in errs[0], out
    report = json.loads(out[: out.index("error:")])
    assert [c["repaired"] for r in report for c in r["corrupt"]] == [False]
    assert call("GET", f"{only}/{fid0}")[0] == 500  # never served


def test_collection_delete(cluster: Cluster, shell: Callable[..., Any]) -> None:
    upload(cluster, 2, collection="doomed", replication="010")
    status, out = shell("lock; collection.delete -collection doomed")
    assert status == 0 and "collection 'doomed' will be deleted. Use -apply" in out
    assert 'collection:"doomed"' in shell("collection.list")[1]
    status, out = shell("lock; collection.delete -collection doomed -apply")
    assert status == 0 and "collection doomed is deleted." in out, out
    # A heartbeat sent before the volumes went may list them once more (as with weed): the
    # next one, from servers that no longer hold them, drops them.
    until("collection gone", lambda: 'collection:"doomed"' not in shell("collection.list")[1])
    status, out = shell("lock; collection.delete -collection doomed -apply")
    assert status == 1 and len(errors_of(out)) == 1 and "doomed" in out


def test_vacuum(cluster: Cluster, shell: Callable[..., Any]) -> None:
    if cluster_post(cluster, "/vol/vacuum?garbageThreshold=0.99")[0] != 200:
        pytest.skip("this master has no /vol/vacuum yet (issue 13)")
    blobs = upload(cluster, 4, collection="vac", replication="010")
    vid = vid_of(next(iter(blobs)))
    mine = [f for f in blobs if vid_of(f) == vid]
    for fid in mine[:-1]:
        token = f"Bearer {fid_token(KEY, 10, fid, time.time())}"
        url = holders(cluster, vid)[0]
        assert call("DELETE", f"{url}/{fid}", None, {"Authorization": token})[0] == 202
    status, out = shell(f"lock; volume.vacuum -volumeId {vid} -garbageThreshold 0.0001")
    assert status == 0 and f"vacuumed volume(s) {vid}" in out, out
    readable(cluster, {mine[-1]: blobs[mine[-1]]}, holders(cluster, vid))
    status, out = shell("lock; volume.vacuum -volumeId 4000000")
    assert status == 1 and "volume 4000000 not found" in out


# ---------------------------------------------------------------------------- mistakes


def test_mistakes_are_one_line_each_and_change_nothing(
    cluster: Cluster, shell: Callable[..., Any]
) -> None:
    blobs = upload(cluster, 2, collection="safe", replication="010")
    vid = vid_of(next(iter(blobs)))
    a, b = holders(cluster, vid)
    cases = {
        "volume.nothing": "unknown command",
        f"volume.move -volumeId abc -source {a} -target {b}": "invalid value",
        f"volume.move -volumeId \u0663 -source {a} -target {b}": "invalid value",
        f"volume.delete -node {a} -volumeId 0": "-volumeId is required",
        f"volume.delete -node {a} -volumeId 4294967296": "-volumeId is required",
        f"volume.delete -node {a} -volumeId=-1": "-volumeId is required",
        f"volume.delete -node nohost -volumeId {vid}": "want a volume server",
        f"volume.delete -node {a}:x -volumeId {vid}": "want a volume server",
        f"volume.move -volumeId {vid} -source {a} -target {a}": "both",
        f"volume.move -volumeId {vid} -source {a}": "-target is required",
        f"volume.copy -volumeId {vid} -source {a} -target {b}": "already exists",
        f"volume.move -volumeId {vid} -source {a} -target 127.0.0.1:1": "127.0.0.1:1",
        f"volume.move -volumeId 4000000 -source {a} -target {b}": "no such volume",
        f"volume.mark -node {a} -volumeId {vid} -readonly -writable": "exactly one",
        f"volume.mark -node {a} -volumeId {vid}": "exactly one",
        "volume.scrub -mode index": "full mode",
        "volume.scrub -volumeId 1,x": "not a volume id",
        "volume.scrub -volumeId 4000000": "not found",
        "volume.check.disk -volumeId 4000000": "not found",
        "volume.check.disk -volumeId 99999999999": "want a volume id",
        "volume.vacuum -garbageThreshold 2": "ratio",
        "volume.balance -nodes 10.9.9.9:1": "not in the cluster",
        "volume.balance -collection EACH_COLLECTION": "not offered",
        "volume.fix.replication -maxParallelization 0": "at least 1",
        "volume.fix.replication -bogus": "flag provided but not defined: -bogus",
        "collection.delete": "-collection is required",
        "volume.list -volumeId=x": "invalid value",
        "volume.move 'unclosed": "quotation",
    }
    status, out = shell("lock\n" + "\n".join(cases))
    assert status == 1
    errs = errors_of(out)
    assert len(errs) == len(cases), out
    for error, says in zip(errs, cases.values(), strict=True):
        assert says in error, (says, error)
    assert holders(cluster, vid) == [a, b]
    readable(cluster, blobs, [a, b])
    # The failed move made its source writable again.
    until(
        "the source writable again",
        lambda: not any(v["Id"] == vid and v["ReadOnly"] for v in node_volumes(cluster)[a]),
    )


def test_unreachable_master_is_one_line_and_exit_1(tmp_path: Path) -> None:
    port = free_port()
    done = subprocess.run(
        [sys.executable, "-m", "seaweed_py", "shell", f"-master=127.0.0.1:{port}"],
        input="volume.list\ncluster.ps\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach the master"), done
    assert "Traceback" not in done.stderr


def test_commands_from_standard_input(cluster: Cluster, config: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "seaweed_py",
            f"-config_dir={config}",
            "shell",
            f"-master={cluster.master_url}",
        ],
        input="# a comment\ncluster.ps\nlock; volume.balance -collection nothing; unlock\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "* volume servers 3" in done.stdout and "nothing to move" in done.stdout


def _outsider_bindable() -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.2", 0))
        except OSError:
            return False
    return True


@pytest.mark.skipif(not _outsider_bindable(), reason="127.0.0.2 is not bindable")
def test_a_stranger_and_a_shell_without_the_key_are_refused(cluster: Cluster, config: Path) -> None:
    blobs = upload(cluster, 1, replication="010")
    vid = vid_of(next(iter(blobs)))
    node = holders(cluster, vid)[0]

    async def stranger() -> tuple[int, str]:
        out = io.StringIO()
        connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
        status = await shell_cli._session(
            cluster.master_url,
            Outgoing(keys=JwtKeys(KEY)),
            ["volume.list", "lock", f"volume.scrub -node {node} -volumeId {vid}"],
            out,
            connector,
        )
        return status, out.getvalue()

    status, out = asyncio.run(stranger())
    assert status == 1
    errs = errors_of(out)
    assert len(errs) == 3 and all("401" in e for e in errs[:2]), out

    status, out = sh(cluster, f"lock; volume.delete -node {node} -volumeId {vid}", None)
    assert status == 1
    errs = errors_of(out)
    assert len(errs) == 2 and "401" in errs[0], out  # no key: no lock, so no delete
    assert holders(cluster, vid) == sorted(holders(cluster, vid))
    readable(cluster, blobs, holders(cluster, vid))


def test_interactive_prompt_completes_and_remembers(
    cluster: Cluster, config: Path, tmp_path: Path
) -> None:
    """At a terminal: tab completion, history in ~/.weedpy_shell_history, the lock held
    across prompts (tests/functional/test_shell_stand_in.py shows its renewals)."""
    import pty
    import select

    blobs = upload(cluster, 1, replication="010", collection="tty")
    vid = vid_of(next(iter(blobs)))
    node = holders(cluster, vid)[0]
    argv = [
        sys.executable,
        "-m",
        "seaweed_py",
        f"-config_dir={config}",
        "shell",
        f"-master={cluster.master_url}",
    ]
    fd, terminal = pty.openpty()  # the shell's stdin and stdout are a terminal
    child = subprocess.Popen(
        argv,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env={**os.environ, "HOME": str(tmp_path)},
        start_new_session=True,
    )
    os.close(terminal)
    seen = b""

    def expect(what: bytes, timeout: float = 30.0) -> None:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while what not in seen:
            left = deadline - time.monotonic()
            assert left > 0, (what, seen.decode(errors="replace"))
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                try:
                    seen += os.read(fd, 4096)
                except OSError:  # the child closed the terminal
                    break
        assert what in seen, (what, seen.decode(errors="replace"))

    try:
        expect(b"> ")
        os.write(fd, b"cluster.p\t\n")
        expect(b"* volume servers 3")
        os.write(fd, b"lock\n")
        expect(b"> ", 10)
        seen = b""
        os.write(fd, f"volume.mark -node {node} -volumeId {vid} -readonly\n".encode())
        expect(f"volume {vid} on {node} marked readonly".encode())
        os.write(fd, f"volume.mark -node {node} -volumeId {vid} -writable\nexit\n".encode())
        expect(b"marked writable")
    finally:
        try:
            code = child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            code = child.wait()
        os.close(fd)
    assert code == 0, seen
    history = (tmp_path / ".weedpy_shell_history").read_text()
    assert "cluster.ps" in history and "lock" in history


def test_a_killed_server_shows_in_check_ps_and_the_plan(tmp_path: Path, config: Path) -> None:
    """SIGKILL one of two servers: cluster.check fails naming it and cluster.ps marks it while
    the master still lists it; once dropped, fix.replication reports the 001 volumes it cannot
    place (no failure, as weed), and lock and -apply change nothing."""
    with start_cluster(
        "weedpy",
        tmp_path,
        2,
        replication="001",
        pulse_seconds=1,
        config_dir=config,
        master_args=["-repairDelaySeconds=-1"],
    ) as small:
        blobs = upload(small, 2, replication="001")
        vid = vid_of(next(iter(blobs)))
        dead, alive = small.volume_urls
        small.kill_volume(0)
        status, out = sh(small, "cluster.check; cluster.ps", config)
        assert status == 1
        assert f"checking volume server {dead} ... FAILED" in out
        assert f"checking volume server {alive} ... ok" in out
        assert f"* {dead} (not answering)" in out
        errs = errors_of(out)
        assert len(errs) == 1 and dead in errs[0], out
        until("the master to drop the server", lambda: holders(small, vid) == [alive])
        status, out = sh(small, "lock; volume.fix.replication -apply", config)
        assert status == 0, out
        assert f"failed to place volume {vid} replica as 001, existing:1" in out
        assert holders(small, vid) == [alive]
        readable(small, blobs, [alive])
