"""SIGKILL a real `weedpy master` under assign load, restart it on the same -mdir, repeat, and check
that no file key was ever handed out twice (the reference reissues keys here, quirk A22).

The volume server is a heartbeat driver that reports three writable volumes and `maxFileKey` 0,
so nothing but the master's own persisted reservation protects it from reissuing keys.
"""

from __future__ import annotations

import http.client
import itertools
import json
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from seaweed_py.formats.fid import parse_file_id
from seaweed_py.formats.wire import Heartbeat, VolumeReport

ROUNDS = 5
LOAD_SECONDS = 0.8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _heartbeat(port: int) -> None:
    body = Heartbeat(
        "127.0.0.1",
        1,
        "127.0.0.1:1",
        max_volume_counts={"hdd": 8},
        volumes=tuple(VolumeReport(vid, size=8) for vid in (1, 2, 3)),
    ).to_json()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/internal/heartbeat", body, method="POST")
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200


def _start_master(port: int, mdir: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "seaweed_py",
                "master",
                "-ip=127.0.0.1",
                f"-port={port}",
                f"-mdir={mdir}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(f"master exited: {log.read_text()}") from None
            time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"master did not start: {log.read_text()}")


def _assign_until(port: int, stop: threading.Event, out: list[tuple[int, int]], seed: int) -> None:
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        _assign_loop(conn, rng, stop, out)
    finally:
        conn.close()


def _assign_loop(
    conn: http.client.HTTPConnection,
    rng: random.Random,
    stop: threading.Event,
    out: list[tuple[int, int]],
) -> None:
    while not stop.is_set():
        count = rng.choice((1, 1, 1, 2, 7, 1000))
        try:
            conn.request("GET", f"/dir/assign?count={count}")
            resp = conn.getresponse()
            body = resp.read()
        except (OSError, http.client.HTTPException):
            return  # the master was killed under us
        if resp.status == 200:
            answer = json.loads(body)
            out.append((parse_file_id(answer["fid"]).key, answer["count"]))


def test_sigkill_under_assign_load_never_reissues_a_key(tmp_path: Path) -> None:
    mdir, log = tmp_path / "mdir", tmp_path / "master.log"
    issued: list[tuple[int, int]] = []
    for round_no in range(ROUNDS):
        port = _free_port()
        proc = _start_master(port, mdir, log)
        try:
            _heartbeat(port)
            stop = threading.Event()
            results: list[list[tuple[int, int]]] = [[], []]
            workers = [
                threading.Thread(
                    target=_assign_until, args=(port, stop, results[i], round_no * 2 + i)
                )
                for i in range(2)
            ]
            for w in workers:
                w.start()
            time.sleep(LOAD_SECONDS)
            proc.send_signal(signal.SIGKILL)  # mid-load, no chance to save anything
            proc.wait(5)
            stop.set()
            for w in workers:
                w.join(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
        assert results[0] and results[1], (
            f"round {round_no}: no assign succeeded; log: {log.read_text()}"
        )
        issued += results[0] + results[1]
    issued.sort()
    for (k1, n1), (k2, _) in itertools.pairwise(issued):
        assert k1 + n1 <= k2, f"key range {k1}+{n1} overlaps {k2}: a key was issued twice"
    assert len(issued) > ROUNDS * 10
