"""Dead replicas under real `weedpy` processes (reliability scenarios 8, 9 and 11).

* #8/#9: a `001` volume whose replica is SIGKILLed while writes stream to its primary: no write
  is acknowledged with one copy, the master stops assigning the volume, and after the replica
  is back a retry of each failed write (same fid, same bytes) succeeds.
* #8 with a frozen replica (SIGSTOP: connections are accepted, nothing is answered): a write
  fails within 15 s (`-replicationTimeout`, 5 s by default) and is rolled back, the master stops
  assigning the volume, and once the master drops the frozen server writes fail at once. With
  a long timeout, a write in flight to the frozen server fails as soon as the master drops it.
* #11: the only holder of a volume is down: a read through another server (`-readMode=proxy`)
  and the master's lookup say so with 5xx, never a 404 that would tell a client the blob is
  gone; after it returns, 200.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from seaweed_py.client import Client
from seaweed_py.errors import ServiceUnavailable
from tests.fault.server_harness import (
    Fleet,
    Node,
    Oracle,
    call,
    fleet,
    frozen,
    put,
    read_checked,
    wait_for,
)
from tests.servers import skip_reason

pytestmark = pytest.mark.skipif(
    skip_reason("weedpy") is not None, reason=str(skip_reason("weedpy"))
)


def test_8_9_replica_killed_during_replicated_writes(tmp_path: Path) -> None:
    with fleet(tmp_path, "scenario 8/9") as f:
        f.add_master()
        f.add_volumes(3)
        f.wait_registered()
        answer = f.assign(replication="001", count=400)
        vid = int(answer["fid"].split(",")[0])
        fids = [answer["fid"]] + [f"{answer['fid']}_{i}" for i in range(1, 400)]
        holders = f.holders(answer["fid"])
        primary = next(v for v in f.volumes if v.url == answer["url"])
        replica = next(v for v in f.volumes if v.url in holders and v is not primary)
        data = {fid: f.rng.randbytes(f.rng.randrange(50, 20_000)) for fid in fids}

        oracle = Oracle()
        failed: list[str] = []
        stop = threading.Event()

        def writer(share: list[str]) -> None:
            for fid in share:
                if stop.is_set():
                    failed.append(fid)
                    continue
                if put(primary.url, fid, data[fid])[0] == 201:
                    oracle.ack(fid, data[fid])
                else:
                    failed.append(fid)

        threads = [
            threading.Thread(target=writer, args=(fids[i::3],), daemon=True) for i in range(3)
        ]
        for t in threads:
            t.start()
        time.sleep(0.2 + f.rng.random() * 0.4)
        replica.kill()
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join(30)
        print(f"acknowledged {len(oracle.acked)}, failed {len(failed)}")
        assert failed, "every write succeeded although the replica was down"

        # No silent one-copy success: a write to the volume now must fail.
        status, body = put(primary.url, failed[0], data[failed[0]])
        assert status >= 500, (status, body)

        # The master stops handing out the volume.
        for _ in range(10):
            status, body = call("GET", f"{f.master_url}/dir/assign?replication=001")
            if status == 200:
                assert int(json.loads(body)["fid"].split(",")[0]) != vid, body
            else:
                assert status in (406, 503), (status, body)

        replica.start()
        f.wait_registered()
        for fid in failed:  # the client's retry: same fid, same bytes
            status, body = put(primary.url, fid, data[fid])
            assert status == 201, (fid, status, body)
            oracle.ack(fid, data[fid])
        oracle.check(f.holders)
        assert sorted(f.holders(answer["fid"])) == sorted([primary.url, replica.url])


def _writables(f: Fleet) -> set[int]:
    layouts = json.loads(call("GET", f"{f.master_url}/dir/status")[1])["Topology"]["Layouts"]
    return {vid for lay in layouts for vid in lay["writables"] or []}


def _pair(f: Fleet, *extra: str) -> tuple[str, Node, Node]:
    """Two volume servers and a `001` fid; (fid, the server it names, the other holder)."""
    f.add_volumes(2, *extra)
    f.wait_registered()
    fid = f.assign(replication="001", count=4)["fid"]
    holders = f.holders(fid)
    primary = next(v for v in f.volumes if v.url == holders[0])
    replica = next(v for v in f.volumes if v is not primary)
    return fid, primary, replica


def test_8_frozen_replica_fails_the_write_in_bounded_time_and_rolls_it_back(
    tmp_path: Path,
) -> None:
    # A master pulse of 3 s: it drops a silent server after 9 s, so the write below meets the
    # replication timeout (5 s by default) first.
    with fleet(tmp_path, "scenario 8, SIGSTOP") as f:
        f.add_master(pulse=3)
        fid, primary, replica = _pair(f)
        vid = int(fid.split(",")[0])
        oracle = Oracle()
        before, late, after = f"{fid}_1", f"{fid}_2", f"{fid}_3"
        data = {x: f.rng.randbytes(f.rng.randrange(100, 5000)) for x in (fid, before, late, after)}
        assert put(primary.url, before, data[before])[0] == 201
        oracle.ack(before, data[before])
        with frozen(replica):
            start = time.monotonic()
            status, body = put(primary.url, fid, data[fid], timeout=60)
            took = time.monotonic() - start
            print(f"write with a frozen replica: {status} after {took:.1f} s: {body[:200]!r}")
            assert status == 500 and replica.url.encode() in body, (status, body)
            assert took < 15
            assert call("GET", f"{primary.url}/{fid}")[0] == 404  # rolled back
            assert vid not in _writables(f)  # the master stopped assigning it

            wait_for(
                "the master to drop the frozen server",
                lambda: f.holders(fid) == [primary.url],
                timeout=30,
            )
            start = time.monotonic()
            status, body = put(primary.url, late, data[late], timeout=60)
            took = time.monotonic() - start
            print(f"write after the drop: {status} after {took:.2f} s: {body[:200]!r}")
            assert status == 500 and b"less than volume replication copy count [2]" in body
            assert took < 5  # no forward: the master no longer names the frozen server
        f.wait_registered()
        wait_for("the replica to be listed again", lambda: len(f.holders(fid)) == 2, timeout=30)
        # What the frozen server held in its socket buffers when it resumed: the forward it
        # never answered (convergence of such a late copy is issue 14's). It is never served
        # with wrong bytes; the copy the client was told failed is gone from the primary.
        late_copy = read_checked(replica.url, fid, data[fid])
        print(f"the failed write on the resumed replica: {late_copy}")
        assert late_copy in (200, 404)
        assert read_checked(primary.url, fid, data[fid]) == 404
        wait_for(
            "a write to the volume to succeed again",
            lambda: put(primary.url, after, data[after])[0] == 201,
            timeout=30,
        )
        oracle.ack(after, data[after])
        oracle.check(f.holders)


def test_8_write_in_flight_to_a_frozen_replica_fails_when_the_master_drops_it(
    tmp_path: Path,
) -> None:
    # A timeout far beyond the test's bounds: only the master's drop can end the wait.
    with fleet(tmp_path, "scenario 8, SIGSTOP, dropped") as f:
        f.add_master()
        fid, primary, replica = _pair(f, "-replicationTimeout=3600")
        data = f.rng.randbytes(3000)
        with frozen(replica):
            start = time.monotonic()
            status, body = put(primary.url, fid, data, timeout=60)
            took = time.monotonic() - start
            print(
                f"write in flight when the master dropped the replica: {status} after {took:.1f} s"
            )
            assert status == 500 and b"dropped by the master" in body, (status, body)
            assert took < 30
            assert call("GET", f"{primary.url}/{fid}")[0] == 404


def test_11_every_replica_down_is_unavailable_not_missing(tmp_path: Path) -> None:
    with fleet(tmp_path, "scenario 11") as f:
        f.add_master()
        # Both proxy reads (the default, said here), so neither needs a restart to be the
        # other once the assign picks the holder.
        holder, other = f.add_volumes(2, "-readMode=proxy")
        f.wait_registered()
        oracle = Oracle()
        answer = f.assign()
        fid, vid = answer["fid"], answer["fid"].split(",")[0]
        if answer["url"] != holder.url:
            holder, other = other, holder
        data = f.rng.randbytes(3000)
        assert put(holder.url, fid, data)[0] == 201
        oracle.ack(fid, data)
        assert call("GET", f"{other.url}/{fid}") == (200, data)

        holder.kill()
        status, body = call("GET", f"{other.url}/{fid}")
        print("proxy read while the master still lists the holder:", status, body[:200])
        assert status == 503, (status, body)

        # Once the master drops the dead node, the volume has no location at all.
        wait_for(
            "the master to drop the dead holder",
            lambda: call("GET", f"{f.master_url}/dir/lookup?volumeId={vid}")[0] != 200,
        )
        status, body = call("GET", f"{f.master_url}/dir/lookup?volumeId={vid}")
        print("lookup with every holder down:", status, body[:200])
        assert status == 503, (status, body)
        status, body = call("GET", f"{f.master_url}/{fid}")  # the master's redirect
        assert status == 503, (status, body)
        status, body = call("GET", f"{other.url}/{fid}")
        print("proxy read with every holder down:", status, body[:200])
        assert status == 503, (status, body)
        with Client(f.master_url) as client, pytest.raises(ServiceUnavailable):
            client.download(fid)

        holder.start()
        f.wait_registered()
        wait_for(
            "the volume to be readable again",
            lambda: call("GET", f"{other.url}/{fid}") == (200, data),
        )
        oracle.check(f.holders)
