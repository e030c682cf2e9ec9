"""Re-replication and surplus removal with real `weedpy` processes (reliability scenarios 12
and 13; issue 14): the master copies what a lost server held, within the placement, and trims
the copy too many once the server returns, never below the copy count, losing nothing.

* #13: a server SIGKILLed for good: every volume it held is copied to another server of the
  right rack after `-repairDelaySeconds`, every acknowledged blob reads back from every copy,
  and the volumes take replicated writes on their new copies; when the server returns with its
  old data, the surplus copies go while writes go on, every volume keeps 2 copies all along
  and no acknowledged write is lost;
* a server that comes back with a wiped data directory gets its copies back (the only place a
  `001` volume may go in a two-server cluster);
* #12: a volume's `.dat` and `.idx` deleted under a running server: the volume is reported
  missing and copied back;
* `010`: a lost rack-2 server's copies go to the other rack-2 server, never beside their
  rack-1 copy;
* #34 (the copy's side): a volume copied while it takes writes catches up and agrees.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fault.server_harness import Fleet, Node, Oracle, call, fleet, put, wait_for
from tests.servers import skip_reason

pytestmark = pytest.mark.skipif(
    skip_reason("weedpy") is not None, reason=str(skip_reason("weedpy"))
)

QUIET = ("-replicaCheckSeconds=0", "-scrubMBps=0", "-maintenanceMBps=0")
REPAIR = "-repairDelaySeconds=1"


def repair_status(f: Fleet) -> dict[str, Any]:
    status, body = call("GET", f"{f.master_url}/cluster/repair")
    assert status == 200, body
    return dict(json.loads(body))


def master_metric(f: Fleet, name: str, labels: str = "") -> float:
    text = call("GET", f"{f.master_url}/metrics")[1].decode()
    found = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def volume_metric(node: Node, name: str) -> float:
    text = call("GET", f"{node.url}/metrics")[1].decode()
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def holders_of(f: Fleet, vid: int) -> list[str]:
    status, body = call("GET", f"{f.master_url}/dir/lookup?volumeId={vid}")
    if status != 200:
        return []
    return sorted(loc["url"] for loc in json.loads(body)["locations"])


def write_blobs(f: Fleet, oracle: Oracle, replication: str, n: int) -> set[int]:
    """`n` blobs, each on a freshly assigned fid; the volumes they went to."""
    vids = set()
    for _ in range(n):
        answer = f.assign(replication=replication)
        data = f.rng.randbytes(f.rng.randrange(1, 40_000))
        status, body = put(answer["url"], answer["fid"], data)
        assert status == 201, body
        oracle.ack(answer["fid"], data)
        vids.add(int(answer["fid"].split(",")[0]))
    return vids


def volumes_on(node: Node) -> set[int]:
    status = json.loads(call("GET", f"{node.url}/status")[1])
    return {int(v["Id"]) for v in status["Volumes"]}


def write_into(f: Fleet, oracle: Oracle, vid: int) -> None:
    """A replicated write into volume `vid` (a fresh key, sent to its first holder)."""
    key_cookie = f.assign(replication="000")["fid"].split(",")[1]
    fid = f"{vid},{key_cookie}"
    data = f.rng.randbytes(3000)
    status, body = put(holders_of(f, vid)[0], fid, data)
    assert status == 201, body
    oracle.ack(fid, data)


class CopyCountWatch:
    """Polls the master's lookups in the background and remembers the fewest copies each
    watched volume ever had."""

    def __init__(self, f: Fleet, vids: set[int]) -> None:
        self.fewest = {vid: 99 for vid in vids}
        self._f = f
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CopyCountWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            for vid in self.fewest:
                self.fewest[vid] = min(self.fewest[vid], len(holders_of(self._f, vid)))


class Writer:
    """Writes into `vids` in the background (fresh keys, to each volume's first holder) and
    acknowledges in `oracle` what was answered 201; failures are allowed (a write that meets
    a copy going away is rolled back and answered an error), losses are not."""

    def __init__(self, f: Fleet, oracle: Oracle, vids: list[int]) -> None:
        self.acked = 0
        self._f, self._oracle, self._vids = f, oracle, vids
        self._rng = random.Random(f.rng.random())  # its own: the test's goes on meanwhile
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        f, i = self._f, 0
        while not self._stop.wait(0.02):
            vid = self._vids[i % len(self._vids)]
            i += 1
            try:
                key_cookie = f.assign(replication="000")["fid"].split(",")[1]
                where = holders_of(f, vid)
                fid, data = f"{vid},{key_cookie}", self._rng.randbytes(2000 + i)
                if where and put(where[0], fid, data)[0] == 201:
                    self._oracle.ack(fid, data)
                    self.acked += 1
            except OSError:
                continue


def test_13_a_lost_server_is_re_replicated_and_its_return_trimmed(tmp_path: Path) -> None:
    with fleet(tmp_path, "re-replication 001") as f:
        f.add_master(REPAIR)
        f.add_volumes(3, *QUIET)
        f.wait_registered()
        oracle = Oracle()
        vids = write_blobs(f, oracle, "001", 30)
        victim = next(n for n in f.volumes if volumes_on(n) & vids)
        lost = volumes_on(victim) & vids
        others = [n.url for n in f.volumes if n is not victim]
        victim.kill()

        def restored() -> bool:
            return all(len(h := holders_of(f, vid)) == 2 and set(h) <= set(others) for vid in vids)

        wait_for("every volume written to back at 2 copies", restored, timeout=60)
        # Volumes grown and never written to are copied too.
        wait_for("no volume short", lambda: repair_status(f)["underReplicated"] == [], timeout=60)
        status = repair_status(f)
        assert status["done"]["copies"] >= len(lost), status
        assert status["failed"]["copies"] == 0, status
        assert master_metric(f, "weedpy_master_repairs_total", '{kind="copy",outcome="done"}') >= 1
        oracle.check(f.holders)
        for vid in lost:  # the new copies take replicated writes
            write_into(f, oracle, vid)
        oracle.check(f.holders)

        with CopyCountWatch(f, vids) as watch, Writer(f, oracle, sorted(lost)) as writer:
            victim.start()
            wait_for(
                "the surplus copies to be trimmed",
                lambda: (
                    repair_status(f)["done"]["trims"] >= len(lost)
                    and repair_status(f)["surplus"] == []
                    and all(len(holders_of(f, vid)) == 2 for vid in vids)
                ),
                timeout=60,
            )
        assert min(watch.fewest.values()) == 2, watch.fewest
        assert writer.acked > 0, "no write went through while the copies were trimmed"
        status = repair_status(f)
        # Every volume copied had one copy too many once the server was back: one trim each.
        assert status["done"]["trims"] == status["done"]["copies"], status
        assert status["failed"]["trims"] == 0, status
        oracle.check(f.holders)
        page = call("GET", f"{f.master_url}/")[1].decode()
        assert "Repairs" in page and "remove from" in page


def test_a_server_back_with_a_wiped_directory_gets_its_copies_back(tmp_path: Path) -> None:
    with fleet(tmp_path, "wiped directory") as f:
        f.add_master(REPAIR)
        a, b = f.add_volumes(2, *QUIET)
        f.wait_registered()
        oracle = Oracle()
        vids = write_blobs(f, oracle, "001", 20)
        b.kill()
        shutil.rmtree(b.directory)
        b.directory.mkdir()
        wait_for("b's copies to be missed", lambda: repair_status(f)["underReplicated"] != [])
        b.start()
        wait_for(
            "every volume back at 2 copies",
            lambda: all(holders_of(f, vid) == sorted([a.url, b.url]) for vid in vids),
            timeout=60,
        )
        assert volumes_on(b) >= vids
        oracle.check(f.holders)


def test_12_a_volume_deleted_under_a_running_server_is_copied_back(tmp_path: Path) -> None:
    with fleet(tmp_path, "files deleted") as f:
        f.add_master(REPAIR)
        f.add_volumes(2, *QUIET)
        f.wait_registered()
        oracle = Oracle()
        vids = write_blobs(f, oracle, "001", 10)
        vid = min(vids)
        node = f.volumes[1]
        for suffix in (".dat", ".idx"):
            (node.directory / f"{vid}{suffix}").unlink()
        wait_for(
            f"volume {vid} to be copied back",
            lambda: (
                repair_status(f)["done"]["copies"] >= 1
                and len(holders_of(f, vid)) == 2
                and (node.directory / f"{vid}.dat").exists()
            ),
            timeout=60,
        )
        oracle.check(f.holders)


def test_010_copies_stay_across_racks(tmp_path: Path) -> None:
    with fleet(tmp_path, "re-replication 010") as f:
        f.add_master(REPAIR)
        rack = {}
        for name in ("rack1", "rack2"):
            for node in f.add_volumes(2, *QUIET, rack=name):
                rack[node.url] = name
        f.wait_registered()
        oracle = Oracle()
        vids = write_blobs(f, oracle, "010", 20)
        victim = next(n for n in f.volumes if rack[n.url] == "rack2" and volumes_on(n) & vids)
        victim.kill()

        def spread() -> bool:
            for vid in vids:
                h = holders_of(f, vid)
                if len(h) != 2 or victim.url in h or {rack[u] for u in h} != {"rack1", "rack2"}:
                    return False
            return True

        wait_for("every volume back at 2 copies on 2 racks", spread, timeout=60)
        oracle.check(f.holders)


def test_34_a_copy_of_a_volume_taking_writes_catches_up(tmp_path: Path) -> None:
    """A volume copied while its source keeps taking writes: the target's catch-up rounds
    and final pull leave it holding every write the source acknowledged before the copy
    ended, and the two copies agree (no repair loop here: it would trim the extra copy)."""
    with fleet(tmp_path, "copy under writes") as f:
        f.add_master("-repairDelaySeconds=-1")
        slow = ("-scrubMBps=0", "-replicaCheckSeconds=0", "-maintenanceMBps=2")
        a, b = f.add_volumes(2, *slow)
        f.wait_registered()
        oracle = Oracle()
        answer = f.assign(replication="000")
        vid = int(answer["fid"].split(",")[0])
        source = a if vid in volumes_on(a) else b
        target = b if source is a else a
        base = answer["fid"]
        for i in range(40):  # ~6 MiB: three seconds of copying at 2 MiB/s, more than a round
            fid, data = f"{base}_{i}", f.rng.randbytes(150_000)
            assert put(source.url, fid, data)[0] == 201
            oracle.ack(fid, data)
        stop = threading.Event()

        def keep_writing() -> None:
            i = 1000
            while not stop.is_set():
                fid, data = f"{base}_{i}", f.rng.randbytes(5000)
                if put(source.url, fid, data)[0] == 201:
                    oracle.ack(fid, data)
                i += 1

        writer = threading.Thread(target=keep_writing, daemon=True)
        writer.start()
        result: list[tuple[int, bytes]] = []
        copier = threading.Thread(
            target=lambda: result.append(
                call(
                    "POST",
                    f"{target.url}/admin/volume/copy?volume={vid}&source={source.url}",
                    timeout=120,
                )
            ),
            daemon=True,
        )
        copier.start()
        wait_for(
            "the copy to begin",
            lambda: volume_metric(target, "weedpy_volume_copy_bytes_total") > 0,
        )
        time.sleep(1.0)  # writes while the first round runs (it takes some 3 s)
        stop.set()
        writer.join(10)
        # The copy cannot have ended: every write acknowledged so far came before its end.
        assert copier.is_alive(), "the copy ended before the writes stopped"
        copier.join(120)
        status, body = result[0]
        assert status == 200, body
        last = json.loads(body.strip().splitlines()[-1])
        assert last.get("volume") == vid and last["rounds"] >= 2, last
        missing = [
            fid
            for fid, data in oracle.acked.items()
            if call("GET", f"{target.url}/{fid}?proxied=true") != (200, data)
        ]
        assert missing == [], (last, len(oracle.acked), target.tail(3000))
        digests = [
            json.loads(call("GET", f"{n.url}/admin/volume/digest?volume={vid}")[1])["buckets"]
            for n in (a, b)
        ]
        assert digests[0] == digests[1]
