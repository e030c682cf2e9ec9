"""A seeded mix of writes, deletes, kills, freezes, vacuums and repairs on a `001` cluster of
real `weedpy` processes (reliability scenario 37), then the oracle.

Each step is drawn from the seed (printed; `WEEDPY_CHAOS_SEED=<n>` replays a run's steps): write a few
blobs, delete one, SIGKILL a volume server (at most one down at a time, restarted some steps
later, sometimes with its data directory wiped), freeze one (SIGSTOP) through a few requests,
vacuum, or pause while the master repairs. At the end every server is up, and once the master
has nothing short, surplus or in flight and every volume's holders agree (digests), for every
blob:

* acknowledged and not deleted since: 200 with its bytes on every holder;
* deleted with an acknowledgement: 404 on every holder;
* answered with an error (a write or delete the cluster may or may not have applied): the same
  on every holder, either 404 or 200 with the bytes that were sent, never anything else.

The default run takes a short walk; the `slow` one a long one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.fault.server_harness import Fleet, Node, call, fleet, put, wait_for
from tests.fault.test_server_rereplication import holders_of, repair_status, volumes_on
from tests.servers import skip_reason

pytestmark = pytest.mark.skipif(
    skip_reason("weedpy") is not None, reason=str(skip_reason("weedpy"))
)

VOLUME = ("-scrubMBps=0", "-replicaCheckSeconds=0", "-replicationTimeout=2")


@dataclass
class Truth:
    present: dict[str, bytes] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)
    unsure: dict[str, bytes] = field(default_factory=dict)
    """fid → the bytes it has if it exists at all."""

    def check(self, f: Fleet) -> None:
        for fid, data in self.present.items():
            for url in holders_of(f, int(fid.split(",")[0])):
                assert call("GET", f"{url}/{fid}") == (200, data), f"{fid} on {url}"
        for fid in self.gone:
            for url in holders_of(f, int(fid.split(",")[0])):
                assert call("GET", f"{url}/{fid}")[0] == 404, f"deleted {fid} on {url}"
        for fid, data in self.unsure.items():
            seen = set()
            for url in holders_of(f, int(fid.split(",")[0])):
                status, body = call("GET", f"{url}/{fid}?proxied=true")
                assert (status, body) == (200, data) or status == 404, f"{fid} on {url}: {status}"
                seen.add(status)
            assert len(seen) <= 1, f"{fid}: holders disagree ({seen})"


def _digests_agree(f: Fleet) -> bool:
    vids = set().union(*(volumes_on(n) for n in f.volumes))
    for vid in vids:
        seen = set()
        for url in holders_of(f, vid):
            code, body = call("GET", f"{url}/admin/volume/digest?volume={vid}")
            if code != 200:
                return False
            seen.add(tuple(json.loads(body)["buckets"]))
        if len(seen) > 1:
            return False
    return True


def walk(tmp_path: Path, steps: int, seed: int) -> None:
    rng = random.Random(seed)
    print(f"chaos seed={seed} steps={steps}")
    with fleet(tmp_path, f"chaos {seed}") as f:
        f.add_master("-repairDelaySeconds=2")
        f.add_volumes(4, *VOLUME)
        f.wait_registered()
        truth = Truth()
        down: Node | None = None
        down_for = 0

        def write(n: int) -> None:
            for _ in range(n):
                try:
                    answer = f.assign(replication="001")
                except AssertionError:
                    return  # nothing writable right now (a copy is short)
                fid, data = answer["fid"], rng.randbytes(rng.choice([10, 3000, 70_000]))
                try:
                    status = put(answer["url"], fid, data)[0]
                except OSError:
                    status = 0
                if status == 201:
                    truth.present[fid] = data
                else:
                    truth.unsure[fid] = data

        def delete() -> None:
            if not truth.present:
                return
            fid = rng.choice(sorted(truth.present))
            url = rng.choice(holders_of(f, int(fid.split(",")[0])) or [f.volumes[0].url])
            try:
                status = call("DELETE", f"{url}/{fid}")[0]
            except OSError:
                status = 0
            data = truth.present.pop(fid)
            if status in (200, 202):
                truth.gone.add(fid)
            else:
                truth.unsure[fid] = data

        write(10)
        for step in range(steps):
            action = rng.choices(
                ["write", "delete", "kill", "freeze", "vacuum", "pause"], [6, 3, 1, 1, 1, 1]
            )[0]
            print(f"step {step}: {action}")
            if down is not None:
                down_for -= 1
                if down_for <= 0:
                    down.start()
                    down = None
            if action == "write":
                write(rng.randrange(1, 6))
            elif action == "delete":
                delete()
            elif action == "kill" and down is None:
                down = rng.choice(f.volumes)
                down.kill()
                down_for = rng.randrange(1, 8)
                if rng.random() < 0.25:  # gone for good: a new disk
                    shutil.rmtree(down.directory)
                    down.directory.mkdir()
            elif action == "freeze":
                node = rng.choice([n for n in f.volumes if n is not down])
                os.kill(node.pid, signal.SIGSTOP)
                try:
                    write(2)
                    delete()
                finally:
                    os.kill(node.pid, signal.SIGCONT)
            elif action == "vacuum":
                call("POST", f"{f.master_url}/vol/vacuum?garbageThreshold=0.0001", timeout=60)
            elif action == "pause":
                time.sleep(rng.uniform(0.5, 3))
        if down is not None:
            down.start()

        def quiet() -> bool:
            s = repair_status(f)
            return not (s["underReplicated"] or s["misplaced"] or s["surplus"] or s["inFlight"])

        wait_for("the repairs to finish", quiet, timeout=90)
        wait_for("every volume's holders to agree", lambda: _digests_agree(f), timeout=60)
        truth.check(f)


def _seed(default: int | None = None) -> int:
    chosen = os.environ.get("WEEDPY_CHAOS_SEED")
    if chosen:
        return int(chosen)
    return default if default is not None else random.SystemRandom().randrange(1 << 32)


def test_37_a_short_chaos_walk_keeps_the_oracle(tmp_path: Path) -> None:
    walk(tmp_path, 25, _seed(37))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_37_a_long_chaos_walk_keeps_the_oracle(tmp_path: Path) -> None:
    walk(tmp_path, 250, _seed())  # a new walk each run: the seed is printed
