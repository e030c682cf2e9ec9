"""Replica convergence with `weedpy volume -workers=2` (storage/stamps.py "Several workers";
Store.finish_copy; docs/internals.md "Several workers"): every worker writes the stamp log a
replicated write or delete needs, a volume copied in through one worker is served by every
worker, and a worker killed in the middle of replicated writes leaves a stamp log that every
worker and a restart read cleanly.

Requests go over fresh connections, so the kernel spreads them over the workers; each test
asks until every worker of a server has answered (`ask_worker` finds which one did).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from seaweed_py.formats.replica_digest import NeedleState
from seaweed_py.formats.stamp_log import STAMP_ENTRY_SIZE, decode_stamps
from seaweed_py.formats.wire import decode_states
from tests.fault.server_harness import (
    Fleet,
    Node,
    ask_worker,
    call,
    fleet,
    multipart_file,
    wait_for,
)
from tests.servers import skip_reason

pytestmark = pytest.mark.skipif(
    skip_reason("weedpy") is not None, reason=str(skip_reason("weedpy"))
)

QUIET = ("-workers=2", "-replicaCheckSeconds=0", "-scrubMBps=0")
SECOND = 1_000_000_000


def two_workers(node: Node) -> None:
    wait_for(f"the second worker of {node.url}", lambda: len(node.pids()) == 2)


def replicated(node: Node, fid: str, data: bytes, stamp: int) -> tuple[int, int]:
    """A replica copy of a write the first server stamped `stamp`: (status, worker pid)."""
    body, headers = multipart_file(data)
    status, answer, pid = ask_worker(
        node, "POST", f"/{fid}?type=replicate&appendAtNs={stamp}", body, headers
    )
    assert status in (201, 204), (status, answer)
    return status, pid


def replicated_delete(node: Node, fid: str, stamp: int) -> tuple[int, int]:
    status, answer, pid = ask_worker(node, "DELETE", f"/{fid}?type=replicate&appendAtNs={stamp}")
    assert status in (202, 404), (status, answer)
    return status, pid


def states_from_each_worker(node: Node, vid: int) -> dict[int, dict[int, NeedleState]]:
    """The volume's needle states as each worker of `node` answers them (asked until every
    worker did)."""
    found: dict[int, dict[int, NeedleState]] = {}
    deadline = time.monotonic() + 15
    while len(found) < len(node.pids()) and time.monotonic() < deadline:
        status, body, pid = ask_worker(node, "GET", f"/admin/volume/needles?volume={vid}")
        assert status == 200, (status, body)
        found[pid] = {s.key: s for s in decode_states(body)}
    assert len(found) == len(node.pids()), f"not every worker of {node.url} answered"
    return found


def same_states_everywhere(vid: int, *nodes: Node) -> dict[int, NeedleState]:
    """Every worker of every node tells the same state, stamp included, for every key."""
    seen = [s for node in nodes for s in states_from_each_worker(node, vid).values()]
    for states in seen[1:]:
        assert states == seen[0]
    return seen[0]


def clean_stamp_log(node: Node, vid: int) -> int:
    """Entries of the volume's stamp log on `node`'s disk; it holds whole entries only and
    no hole (a zero entry)."""
    (ats,) = node.directory.glob(f"{vid}.ats")
    raw = ats.read_bytes()
    assert len(raw) % STAMP_ENTRY_SIZE == 0, f"a torn entry: {len(raw)} bytes"
    assert len(decode_stamps(raw)) * STAMP_ENTRY_SIZE == len(raw), "a hole in the stamp log"
    return len(raw) // STAMP_ENTRY_SIZE


def volume_on(f: Fleet, replication: str) -> tuple[str, int]:
    fid = f.assign(replication=replication, count=200)["fid"]
    return fid, int(fid.split(",")[0])


def test_replicated_writes_and_deletes_on_each_worker_keep_their_origin_time(
    tmp_path: Path,
) -> None:
    """Copies of writes and deletes a first server stamped reach both replicas' workers,
    many out of order (older than what the volume holds): every worker of both servers tells
    the first server's time for each, the digests agree, and after a divergence one pull
    each way (served by any worker) makes them agree again."""
    with fleet(tmp_path, "replicas with workers") as f:
        f.add_master()
        a, b = f.add_volumes(2, *QUIET)
        f.wait_registered()
        for node in (a, b):
            two_workers(node)
        fid, vid = volume_on(f, "001")
        now = time.time_ns()
        answered: dict[str, set[int]] = {a.url: set(), b.url: set()}
        want: dict[int, int] = {}
        fids = [f"{fid}_{i}" if i else fid for i in range(60)]
        for i, x in enumerate(fids):
            stamp = now - (100 - i % 7) * SECOND  # out of order, several per stamp range
            for node in (a, b):
                answered[node.url].add(replicated(node, x, b"%d" % i * 40, stamp + i)[1])
            want[i] = stamp + i
        for i in range(0, 60, 5):
            for node in (a, b):
                answered[node.url].add(replicated_delete(node, fids[i], now + i)[1])
            want[i] = -(now + i)
        for node in (a, b):
            assert answered[node.url] == set(node.pids()), "a worker served none of them"
        states = same_states_everywhere(vid, a, b)
        base = int(fid.split(",")[1][:-8], 16)
        got = {k - base: -s.stamp if s.deleted else s.stamp for k, s in states.items()}
        assert got == want
        assert clean_stamp_log(a, vid) >= 12 and clean_stamp_log(b, vid) >= 12  # the deletes
        # A divergence both ways: a write only A got, a delete only B got.
        replicated(a, f"{fid}_70", b"only a", now + 70)
        replicated_delete(b, fids[1], now + 71)
        assert _digest(a, vid) != _digest(b, vid)
        for node, peer in ((a, b), (b, a)):
            status, body, _ = ask_worker(
                node, "POST", f"/admin/volume/sync?volume={vid}&peer={peer.url}"
            )
            assert status == 200, body
        assert _digest(a, vid) == _digest(b, vid)
        states = same_states_everywhere(vid, a, b)
        assert states[base + 1].deleted and states[base + 1].stamp == now + 71
        assert states[base + 70].stamp == now + 70


def _digest(node: Node, vid: int) -> list[str]:
    status, body = call("GET", f"{node.url}/admin/volume/digest?volume={vid}")
    assert status == 200, body
    return list(json.loads(body)["buckets"])


def test_a_volume_copied_in_through_one_worker_is_served_by_every_worker(tmp_path: Path) -> None:
    """`POST /admin/volume/copy` lands on one worker of B; every worker of B then serves
    the copy (its blobs, deletions and origin times), takes writes to it, lets go of it when
    it is deleted through any worker, and serves it again once copied anew."""
    with fleet(tmp_path, "copy with workers") as f:
        f.add_master("-repairDelaySeconds=-1")  # the master leaves the copies as they are
        a = f.add_volume(*QUIET)
        f.wait_registered()
        fid, vid = volume_on(f, "000")
        b = f.add_volume(*QUIET)
        f.wait_registered()
        for node in (a, b):
            two_workers(node)
        now = time.time_ns()
        blobs = {f"{fid}_{i}" if i else fid: os.urandom(100 + i) for i in range(16)}
        for i, (x, data) in enumerate(blobs.items()):
            replicated(a, x, data, now - (50 - i % 5) * SECOND)
        replicated_delete(a, f"{fid}_3", now)
        del blobs[f"{fid}_3"]

        def copy() -> None:
            status, body, _ = ask_worker(
                b, "POST", f"/admin/volume/copy?volume={vid}&source={a.url}"
            )
            assert status == 200 and b'"error"' not in body, body

        copy()
        source = states_from_each_worker(a, vid)[a.pid]
        for copied in states_from_each_worker(b, vid).values():
            assert copied == source
        original = dict(blobs)
        _through_every_worker(b, {f"/{x}": d for x, d in blobs.items()} | {f"/{fid}_3": None})
        for i in range(40, 50):  # writes through either worker of the copy
            x = f"{fid}_{i}"
            blobs[x] = os.urandom(50 + i)
            replicated(b, x, blobs[x], now + i)
        _through_every_worker(b, {f"/{x}": d for x, d in blobs.items()})
        status, body, _ = ask_worker(b, "POST", f"/admin/volume/delete?volume={vid}")
        assert status == 200, body
        # (A read is proxied to A now: the volume's own admin calls tell it is gone here.)
        _through_every_worker(b, {f"/admin/volume/needles?volume={vid}": None})
        assert not list(b.directory.glob(f"{vid}.*"))
        copy()  # again, after its deletion: a new claim of the slot
        _through_every_worker(b, {f"/{x}": d for x, d in original.items()} | {f"/{fid}_40": None})


def _through_every_worker(node: Node, blobs: dict[str, bytes | None]) -> None:
    """GET each fid of `blobs` over fresh connections, round and round, until each was read
    once and every worker answered some: each answer right (the bytes; 404 for None)."""
    asks = list(blobs.items())
    answered: set[int] = set()
    deadline = time.monotonic() + 15
    i = 0
    while (i < len(asks) or answered != set(node.pids())) and time.monotonic() < deadline:
        target, data = asks[i % len(asks)]
        status, body, pid = ask_worker(node, "GET", target)
        want = (404,) if data is None else (200, data)
        assert (status,) == want or (status, body) == want, (target, status, body[:100], pid)
        answered.add(pid)
        i += 1
    assert answered == set(node.pids()), f"not every worker answered: {answered}"


def test_kill_9_of_the_other_worker_mid_replicated_writes_leaves_a_clean_stamp_log(
    tmp_path: Path,
) -> None:
    """Replicated writes and deletes, each older than the volume's records (so each appends
    a stamp log entry), stream to a server while its non-leader worker is SIGKILLed: the
    log holds whole entries only, every acknowledged one stands for its first server's time
    through every worker (the new one too), and so after a restart."""
    with fleet(tmp_path, "kill a worker mid stamp log") as f:
        f.add_master()
        node = f.add_volume(*QUIET)
        f.wait_registered()
        two_workers(node)
        fid, vid = volume_on(f, "000")
        base = int(fid.split(",")[1][:-8], 16)
        now = time.time_ns()
        # The volume's clock moves past every origin below: each write and delete then
        # appends a stamp log entry (storage/stamps.py).
        replicated(node, f"{fid}_5000", b"first", now + SECOND)
        written: dict[int, int] = {}
        deleted: dict[int, int] = {}
        answered: set[int] = set()
        in_flight: set[int] = set()  # keys of deletes whose worker died under them
        lock = threading.Lock()
        stop = threading.Event()

        def writer(lane: int) -> None:
            for i in range(lane, 2000, 4):
                if stop.is_set():
                    return
                try:
                    if i % 4 == 3:  # a delete of what lane 1 wrote (404 if not yet there)
                        status, pid = replicated_delete(node, f"{fid}_{i - 2}", now + i)
                        done, key, outcome = deleted, i - 2, now + i
                    else:
                        x = f"{fid}_{i}" if i else fid
                        stamp = now - (3000 - i) * SECOND // 1000
                        status, pid = replicated(node, x, b"%d" % i * 30, stamp)
                        done, key, outcome = written, i, stamp
                except (OSError, AssertionError):  # its worker died under it: in flight
                    if i % 4 == 3:
                        in_flight.add(i - 2)
                    continue
                with lock:
                    answered.add(pid)
                    if status in (201, 202, 204):
                        done[key] = outcome

        threads = [threading.Thread(target=writer, args=(k,), daemon=True) for k in range(4)]
        for t in threads:
            t.start()
        wait_for("some writes through both workers", lambda: len(written) > 100)
        (other,) = [p for p in node.pids() if p != node.pid]
        assert other in answered
        os.kill(other, 9)
        wait_for("a new worker", lambda: len(node.pids()) == 2 and other not in node.pids(), 20)
        (new,) = [p for p in node.pids() if p != node.pid]
        wait_for("writes through the new worker", lambda: new in answered, 30)
        stop.set()
        for t in threads:
            t.join(30)
        assert deleted, "no delete was acknowledged"
        clean_stamp_log(node, vid)

        def check() -> None:
            for states in states_from_each_worker(node, vid).values():
                for key in written.keys() | deleted.keys():
                    s = states[base + key]
                    if key in deleted:  # (a delete succeeds only once the write is there)
                        assert s.deleted and s.stamp == deleted[key], key
                    elif key not in in_flight:
                        assert not s.deleted and s.stamp == written[key], key

        check()
        assert node.terminate() == 0
        node.start()
        two_workers(node)
        assert "partial entry" not in node.tail(20000)
        clean_stamp_log(node, vid)
        check()
