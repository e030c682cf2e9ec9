"""Dead replicas under real `weedpy` processes (reliability scenarios 8, 9 and 11).

* #8/#9: a `001` volume whose replica is SIGKILLed while writes stream to its primary: no write
  is acknowledged with one copy, the master stops assigning the volume, and after the replica
  is back a retry of each failed write (same fid, same bytes) succeeds.
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
from tests.fault.server_harness import Oracle, call, fleet, put, wait_for
from tests.servers import skip_reason

pytestmark = pytest.mark.skipif(
    skip_reason("weedpy") is not None, reason=str(skip_reason("weedpy"))
)


def test_8_9_replica_killed_during_replicated_writes(tmp_path: Path) -> None:
    with fleet(tmp_path, "scenario 8/9") as f:
        f.add_master()
        for _ in range(3):
            f.add_volume()
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


def test_11_every_replica_down_is_unavailable_not_missing(tmp_path: Path) -> None:
    with fleet(tmp_path, "scenario 11") as f:
        f.add_master()
        holder = f.add_volume()
        other = f.add_volume("-readMode=proxy")
        f.wait_registered()
        oracle = Oracle()
        answer = f.assign()
        fid, vid = answer["fid"], answer["fid"].split(",")[0]
        if answer["url"] != holder.url:
            holder, other = other, holder
            other.args.append("-readMode=proxy")  # takes effect at its restart below
            other.terminate()
            other.start()
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
