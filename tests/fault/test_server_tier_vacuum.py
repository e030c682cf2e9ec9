"""The vacuum of a tiered volume cut at each step by a crash (SIGKILL) or a freeze (SIGSTOP) of
a holder or of the orchestrator, then finished by a rerun (client/tier_vacuum.py).

One master and two volume servers (replication 001, their bucket on weed's S3 gateway) serve
every test of the module; each test tiers a volume of its own. The orchestrator runs
`Tiering.vacuum` in-process with a `VolumeAdmin` whose call to one server first (or then) kills
or freezes a process, or raises `OrchestratorKilled` (the shell dying between two steps: no
further call, no cleanup). A volume server cut in the middle of its own upload runs under
tests/fault/tier_cut.py, which signals itself at the step its trigger file names. No window is
hit by sleeping.

After the rerun every test checks: each blob kept reads the same bytes from each holder, each
blob deleted before the vacuum is 404 on each, every holder reads one object, the bucket holds
nothing else of the volume (its `.dat`, `.idx`, `.vif`), and no local `.dat`, compaction or
temporary file is left; during the fault, no GET answered 200 with wrong bytes or for a deleted blob.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from seaweed_py import errors
from seaweed_py.client.cluster import Outgoing
from seaweed_py.client.http import HttpClient, Timeout
from seaweed_py.client.tier_report import TierReport
from seaweed_py.client.tiering import Tiering
from seaweed_py.client.volume_admin import VolumeAdmin
from seaweed_py.formats.wire import MarkReadonly, MarkWritable
from seaweed_py.storage.backend import Backends, S3Backend
from seaweed_py.storage.backend.settings import BackendSource
from seaweed_py.topology.vacuum import VacuumTimeouts
from tests import s3_server
from tests.fault.server_harness import Fleet, Node, call, get_json, put, seeded, wait_for
from tests.servers import shell, skip_reason

s3 = s3_server.s3

pytestmark = pytest.mark.skipif(
    skip_reason("weedpy") is not None, reason=str(skip_reason("weedpy"))
)

TIMEOUTS = VacuumTimeouts(check=30.0, compact=30.0, commit=30.0, transfer=30.0)
FROZEN = VacuumTimeouts(check=30.0, compact=30.0, commit=30.0, transfer=3.0)
"""A frozen holder fails a transfer or a mount after 3 s of silence."""


REPO = Path(__file__).resolve().parents[2]


class OrchestratorKilled(BaseException):
    """The orchestrator's process dies here: nothing after it runs."""


@dataclass
class Cluster:
    fleet: Fleet
    bucket: S3Backend
    triggers: dict[str, Path] = field(default_factory=dict)

    def node(self, url: str) -> Node:
        return next(n for n in self.fleet.volumes if n.url == url)


@pytest.fixture(scope="module")
def cluster(s3: s3_server.S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("tier-vacuum-faults")
    name = s3.new_bucket()
    f = Fleet(root, seeded("tiered vacuum faults"))
    try:
        f.add_master("-disableVacuum")
        running = Cluster(
            f, Backends(BackendSource(env=s3.env(name), search_dirs=()).load()).get("s3")
        )
        for _ in range(2):
            node = f.add_volume(start=False)
            trigger = node.directory.parent / f"{node.directory.name}.cut"
            node.env = {
                **os.environ,
                **s3.env(name),
                "WEEDPY_TEST_TIER_CUT": str(trigger),
                "PYTHONPATH": str(REPO),  # for `-m tests.fault.tier_cut` from its cwd
            }
            node.module = "tests.fault.tier_cut"
            node.start()
            running.triggers[node.url] = trigger
        f.wait_registered()
        yield running
    finally:
        f.stop()


@dataclass
class Tiered:
    vid: int
    kept: dict[str, bytes]
    gone: list[str]
    source: str
    other: str
    old_key: str


def run(coro: Callable[[Tiering], Awaitable[Any]], master: str, admin: Any = None) -> Any:
    async def go() -> Any:
        async with aiohttp.ClientSession() as session:
            tiering = Tiering(
                HttpClient(Outgoing(), Timeout(30, connect=5), session=session), master
            )
            if admin is not None:
                admin.real = tiering.admin
                tiering.admin = admin
            return await coro(tiering)

    return asyncio.run(go())


def holders(c: Cluster, vid: int) -> list[str]:
    """In the master's order, which is the order `Tiering` takes them in."""
    answer = get_json(f"{c.fleet.master_url}/dir/lookup?volumeId={vid}")
    return [str(loc["url"]) for loc in answer["locations"]]


def tiered_volume(c: Cluster, count: int = 16) -> Tiered:
    """A fresh volume with `count` blobs, tiered, then half of them deleted."""
    f = c.fleet
    assigned = f.assign(replication="001", count=count)
    fids = [assigned["fid"]] + [f"{assigned['fid']}_{i}" for i in range(1, count)]
    blobs = {fid: f.rng.randbytes(f.rng.randrange(2000, 6000)) for fid in fids}
    for fid, data in blobs.items():
        assert put(assigned["url"], fid, data)[0] == 201, fid
    vid = int(fids[0].split(",")[0])
    wait_for("both holders", lambda: len(holders(c, vid)) == 2)
    run(lambda t: t.upload(vid, "s3"), f.master_url)
    source, other = holders(c, vid)
    gone = fids[1::2]
    for fid in gone:
        status, body = call("DELETE", f"{other}/{fid}")
        assert status == 202, (fid, status, body)
    old_key = str(status_of(source, vid)["remoteStorageKey"])
    kept = {fid: data for fid, data in blobs.items() if fid not in gone}
    return Tiered(vid, kept, gone, source, other, old_key)


def status_of(server: str, vid: int) -> dict[str, Any]:
    answer: dict[str, Any] = get_json(f"{server}/admin/volume/status?volume={vid}")
    return answer


class Cut:
    """A `VolumeAdmin` whose first call `method(server, ...)` (for which `match` holds) runs
    `action` before or after it."""

    def __init__(
        self,
        method: str,
        server: str,
        action: Callable[[], None],
        *,
        after: bool = False,
        match: Callable[[tuple[Any, ...]], bool] = lambda args: True,
    ) -> None:
        self.real: VolumeAdmin | None = None
        self.method, self.server, self.action = method, server, action
        self.after, self.match = after, match
        self.fired = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.real, name)
        if name != self.method:
            return attr

        async def wrapped(server: str, *args: Any, **kwargs: Any) -> Any:
            hit = not self.fired and server == self.server and self.match(args)
            if hit and not self.after:
                self.fired = True
                self.action()
            result = await attr(server, *args, **kwargs)
            if hit and self.after:
                self.fired = True
                self.action()
            return result

        return wrapped


def vacuum(
    c: Cluster, vid: int, *, admin: Cut | None = None, timeouts: VacuumTimeouts = TIMEOUTS
) -> TierReport:
    report: TierReport = run(
        lambda t: t.vacuum(vid, threshold=0.3, timeouts=timeouts), c.fleet.master_url, admin
    )
    return report


def failed_vacuum(c: Cluster, vid: int, admin: Cut, timeouts: VacuumTimeouts = TIMEOUTS) -> str:
    with pytest.raises(errors.WeedError) as caught:
        vacuum(c, vid, admin=admin, timeouts=timeouts)
    message = caught.value.message
    assert "rerun volume.tier.compact to finish" in message and "\n" not in message, message
    return message


def kill(c: Cluster, url: str) -> Callable[[], None]:
    return lambda: c.node(url).kill()


def die() -> None:
    raise OrchestratorKilled


def restart(c: Cluster, url: str, vid: int) -> None:
    """Start the killed holder again; back once the master lists it and it serves `vid`."""
    node = c.node(url)
    node.kill()  # reaps it when it killed itself
    node.start()
    back(c, url, vid)


def back(c: Cluster, url: str, vid: int) -> None:
    """Once the master lists `url` as a holder of `vid` again and it serves `vid`."""
    wait_for(
        f"{url} to hold volume {vid} again",
        lambda: (
            url in holders(c, vid)
            and call("GET", f"{url}/admin/volume/status?volume={vid}")[0] == 200
        ),
        timeout=30,
    )


def reads_stay_right(c: Cluster, t: Tiered, servers: list[str]) -> None:
    """During a fault: no 200 with wrong bytes, no 200 for a deleted blob."""
    for url in servers:
        for fid, data in t.kept.items():
            status, body = call("GET", f"{url}/{fid}", timeout=10)
            assert status != 200 or body == data, f"{fid} on {url}: 200 with wrong bytes"
        for fid in t.gone:
            status, _ = call("GET", f"{url}/{fid}", timeout=10)
            assert status != 200, f"deleted {fid} served by {url}"


def converged(c: Cluster, t: Tiered) -> str:
    """The invariants after the rerun; the key every holder reads."""
    servers = holders(c, t.vid)
    assert sorted(servers) == sorted([t.source, t.other])
    states = [status_of(url, t.vid) for url in servers]
    read = {(s["remoteStorageName"], s["remoteStorageKey"]) for s in states}
    assert len(read) == 1 and all(name for name, _ in read), states
    ((_, key),) = read
    assert key != t.old_key
    for url in servers:
        for fid, data in t.kept.items():
            assert call("GET", f"{url}/{fid}") == (200, data), (url, fid)
        for fid in t.gone:
            assert call("GET", f"{url}/{fid}")[0] == 404, (url, fid)
    objects = sorted(o.key for o in c.bucket.list(f"{t.vid}/"))
    assert objects == sorted([key, f"{key}.idx", f"{key}.vif"]), objects
    for node in c.fleet.volumes:
        left = {p.name for p in node.directory.iterdir() if p.name.split(".")[0] == str(t.vid)}
        # .sdx: the sealed index a tiered volume reads through
        assert left - {f"{t.vid}.sdx"} == {f"{t.vid}.idx", f"{t.vid}.vif"}, (node.url, left)
    # Deletes are no longer held: one goes through on every holder.
    fid = next(iter(t.kept))
    assert call("DELETE", f"{servers[0]}/{fid}")[0] == 202
    for url in servers:
        assert call("GET", f"{url}/{fid}")[0] == 404
    del t.kept[fid]
    t.gone.append(fid)
    return str(key)


# ---------------------------------------------------------------- a, b: the first holder dies


@pytest.mark.parametrize(
    "step",
    [
        "tier_download",  # a: the .dat local, the other holder still on the old object
        pytest.param("vacuum_compact", marks=pytest.mark.slow),  # b: compacted, not committed
        pytest.param("vacuum_commit", marks=pytest.mark.slow),  # b: committed, not uploaded
    ],
)
def test_the_first_holder_killed_after_a_step_and_restarted(cluster: Cluster, step: str) -> None:
    t = tiered_volume(cluster)
    failed_vacuum(cluster, t.vid, Cut(step, t.source, kill(cluster, t.source), after=True))
    reads_stay_right(cluster, t, [t.other])
    restart(cluster, t.source, t.vid)
    reads_stay_right(cluster, t, [t.source, t.other])
    report = vacuum(cluster, t.vid)
    assert report.source == t.source and not report.already
    converged(cluster, t)


# ---------------------------------------------------------------- c: killed mid-upload


@pytest.mark.parametrize(
    "step",
    [
        "data-sent",  # the data object complete, no .idx or .vif beside it: an orphan
        pytest.param("data-begun", marks=pytest.mark.slow),
        pytest.param("sidecars-sent", marks=pytest.mark.slow),
    ],
)
def test_the_first_holder_killed_during_its_upload_and_restarted(
    cluster: Cluster, step: str
) -> None:
    t = tiered_volume(cluster)
    cluster.triggers[t.source].write_text(f"kill:{step}")
    failed_vacuum(cluster, t.vid, Cut("tier_upload", t.source, lambda: None))
    assert not cluster.triggers[t.source].exists(), "the cut did not fire"
    reads_stay_right(cluster, t, [t.other])
    if step != "data-begun":
        assert len({o.key.split(".")[0] for o in cluster.bucket.list(f"{t.vid}/")}) == 2
    restart(cluster, t.source, t.vid)
    reads_stay_right(cluster, t, [t.source, t.other])
    vacuum(cluster, t.vid)
    converged(cluster, t)


# ---------------------------------------------------------------- d: the other holder dies


@pytest.mark.parametrize("after", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_the_other_holder_killed_around_its_mount_and_restarted(
    cluster: Cluster, after: bool
) -> None:
    t = tiered_volume(cluster)
    failed_vacuum(cluster, t.vid, Cut("tier_mount", t.other, kill(cluster, t.other), after=after))
    new_key = status_of(t.source, t.vid)["remoteStorageKey"]
    assert new_key != t.old_key
    reads_stay_right(cluster, t, [t.source])
    restart(cluster, t.other, t.vid)
    if not after:  # holders read different objects
        assert status_of(t.other, t.vid)["remoteStorageKey"] == t.old_key
    reads_stay_right(cluster, t, [t.source, t.other])
    report = vacuum(cluster, t.vid)
    assert report.key == new_key
    assert converged(cluster, t) == new_key


def test_deletes_made_while_holders_read_different_objects_stay_deleted(cluster: Cluster) -> None:
    """The first holder on the new object, the other still on the old one, both restarted
    (a restart lifts the delete hold): a delete then lands on both; the rerun's mount must not
    bring it back from an .idx the bucket got before it."""
    t = tiered_volume(cluster)
    failed_vacuum(cluster, t.vid, Cut("tier_mount", t.other, kill(cluster, t.other)))
    cluster.node(t.source).kill()
    restart(cluster, t.source, t.vid)
    restart(cluster, t.other, t.vid)
    late = next(iter(t.kept))
    status, body = call("DELETE", f"{t.source}/{late}")
    assert status == 202, body
    del t.kept[late]
    t.gone.append(late)
    vacuum(cluster, t.vid)
    converged(cluster, t)


# ---------------------------------------------------------------- e: the orchestrator dies


def _is(kind: type) -> Callable[[tuple[Any, ...]], bool]:
    return lambda args: isinstance(args[0], kind)


def _second() -> Callable[[tuple[Any, ...]], bool]:
    """The second call: a run lists the uploads when it begins and again before it forgets."""
    calls = iter([False, True])
    return lambda args: next(calls, True)


E_CUTS: dict[str, tuple[str, bool, Callable[[], Callable[[tuple[Any, ...]], bool]] | None]] = {
    "held": ("send", False, lambda: _is(MarkReadonly)),
    "downloaded": ("tier_download", True, None),
    "compacted": ("vacuum_compact", True, None),
    "committed": ("vacuum_commit", True, None),
    "uploaded": ("tier_upload", True, None),
    "mounted": ("tier_mount", True, None),
    "listed": ("tier_uploads", True, _second),
    "forgotten": ("tier_forget", True, None),
    "released": ("send", True, lambda: _is(MarkWritable)),
}


@pytest.mark.parametrize(
    "cut",
    [c if c == "uploaded" else pytest.param(c, marks=pytest.mark.slow) for c in E_CUTS],
)
def test_the_orchestrator_killed_between_two_steps(cluster: Cluster, cut: str) -> None:
    t = tiered_volume(cluster)
    method, after, match = E_CUTS[cut]
    server = t.other if method == "tier_mount" else t.source
    admin = Cut(method, server, die, after=after, match=match() if match else lambda args: True)
    with pytest.raises(OrchestratorKilled):
        vacuum(cluster, t.vid, admin=admin)
    reads_stay_right(cluster, t, [t.source, t.other])
    if cut not in ("held", "released"):  # deletes are held until the rerun
        fid = next(iter(t.kept))
        for url in (t.source, t.other):
            status, body = call("DELETE", f"{url}/{fid}")
            assert status == 500 and b"read-only" in body, (url, status, body)
        reads_stay_right(cluster, t, [t.source, t.other])
        for url in (t.source, t.other):
            assert call("GET", f"{url}/{fid}") == (200, t.kept[fid]), url
    report = vacuum(cluster, t.vid)
    assert report.already == (cut in ("mounted", "listed", "forgotten", "released"))
    converged(cluster, t)


# ---------------------------------------------------------------- f: a holder frozen


@contextlib.contextmanager
def thawed_at_the_end(node: Node) -> Iterator[None]:
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(node.pid, signal.SIGCONT)


def settled(c: Cluster, url: str, vid: int) -> None:
    """The thawed holder finished what it was asked while frozen (its abandoned upload)."""
    wait_for(
        f"{url} to end its upload of volume {vid}",
        lambda: bool(status_of(url, vid)["remoteStorageKey"]),
        timeout=30,
    )


def mounted(url: str, vid: int, key: str) -> None:
    """The thawed holder ran the mount it was sent while frozen: it reads `key`. Until then a
    rerun may reach it between dropping its old copy and mounting the new one (404)."""

    def reads_key() -> bool:
        status, body = call("GET", f"{url}/admin/volume/status?volume={vid}")
        return status == 200 and json.loads(body)["remoteStorageKey"] == key

    wait_for(f"{url} to read volume {vid} from {key}", reads_key, timeout=30)


def test_the_first_holder_frozen_during_its_upload(cluster: Cluster) -> None:
    t = tiered_volume(cluster)
    node = cluster.node(t.source)
    cluster.triggers[t.source].write_text("stop:data-begun")
    with thawed_at_the_end(node):
        done = shell(
            cluster.fleet.master_url, f"lock\nvolume.tier.compact -volumeId={t.vid} -timeout=3s\n"
        )
        assert done.returncode == 1, done.stdout + done.stderr
        errors_said = [line for line in done.stdout.splitlines() if line.startswith("error:")]
        assert len(errors_said) == 1, done.stdout
        assert "rerun volume.tier.compact to finish" in errors_said[0], errors_said
        assert not cluster.triggers[t.source].exists(), "the cut did not fire"
        reads_stay_right(cluster, t, [t.other])
    settled(cluster, t.source, t.vid)
    back(cluster, t.source, t.vid)
    status, body = call(
        "GET",
        f"{cluster.fleet.master_url}/vol/vacuum?volumeId={t.vid}&garbageThreshold=0.3",
        timeout=60,
    )
    assert status == 200, body
    converged(cluster, t)


def test_the_other_holder_frozen_during_its_mount(cluster: Cluster) -> None:
    t = tiered_volume(cluster)
    node = cluster.node(t.other)
    with thawed_at_the_end(node):
        freeze = Cut("tier_mount", t.other, lambda: os.kill(node.pid, signal.SIGSTOP))
        message = failed_vacuum(cluster, t.vid, freeze, FROZEN)
        assert t.other in message, message
        reads_stay_right(cluster, t, [t.source])
        new_key = str(status_of(t.source, t.vid)["remoteStorageKey"])
        assert new_key != t.old_key
    mounted(t.other, t.vid, new_key)
    back(cluster, t.other, t.vid)
    vacuum(cluster, t.vid)
    converged(cluster, t)


def test_a_frozen_holder_fails_the_hold_within_the_transfer_bound(cluster: Cluster) -> None:
    """The hold, like every short call, waits `transfer` seconds (3 here), not `check`'s
    (600 here: past the test's own timeout)."""
    t = tiered_volume(cluster)
    node = cluster.node(t.other)
    slow_checks = VacuumTimeouts(check=600.0, compact=600.0, commit=600.0, transfer=3.0)
    with thawed_at_the_end(node):
        freeze = Cut(
            "send", t.other, lambda: os.kill(node.pid, signal.SIGSTOP), match=_is(MarkReadonly)
        )
        message = failed_vacuum(cluster, t.vid, freeze, slow_checks)
        assert t.other in message, message
        reads_stay_right(cluster, t, [t.source])
    back(cluster, t.other, t.vid)
    vacuum(cluster, t.vid)
    converged(cluster, t)


# ---------------------------------------------------------------- g: two runs at once


def test_an_upload_made_during_a_run_is_left_to_the_next_run(cluster: Cluster) -> None:
    """Another run's fresh upload (here an object put in the bucket while this run mounts) is
    not deleted by this run: it may be mounting it. The next run, finding no holder on it,
    deletes it."""
    t = tiered_volume(cluster)
    foreign = f"{t.vid}/00000000-0000-4000-8000-000000000000"
    put_foreign = Cut("tier_mount", t.other, lambda: cluster.bucket.put_bytes(foreign, b"x"))
    report = vacuum(cluster, t.vid, admin=put_foreign)
    assert put_foreign.fired and not report.already
    assert foreign in {o.key for o in cluster.bucket.list(f"{t.vid}/")}
    assert vacuum(cluster, t.vid).already
    converged(cluster, t)


def test_the_master_leaves_a_tiered_volume_alone_while_the_admin_lock_is_held(
    cluster: Cluster,
) -> None:
    """As its repair loop does: the shell holding the lock may be vacuuming that volume. The
    master's own run holds the lock, and gives it back."""
    t = tiered_volume(cluster)
    master = cluster.fleet.master_url
    status, body = call("POST", f"{master}/cluster/lock?client=operator&message=moving")
    assert status == 200, body
    token = json.loads(body)["token"]
    try:
        status, body = call("GET", f"{master}/vol/vacuum?volumeId={t.vid}&garbageThreshold=0.3")
        assert status == 409 and b"operator" in body, (status, body)
        assert status_of(t.source, t.vid)["remoteStorageKey"] == t.old_key
    finally:
        status, body = call("POST", f"{master}/cluster/unlock?token={token}")
        assert status == 200, body
    status, body = call(
        "GET", f"{master}/vol/vacuum?volumeId={t.vid}&garbageThreshold=0.3", timeout=60
    )
    assert status == 200, body
    converged(cluster, t)
    status, body = call("POST", f"{master}/cluster/lock?client=operator")
    assert status == 200, body
    call("POST", f"{master}/cluster/unlock?token={json.loads(body)['token']}")
