"""The seeded write/delete workload the power-loss tests run against a group-mode volume, and
the check that a reopened volume serves only outcomes the workload allows."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from seaweed_py.errors import NeedleNotFound
from seaweed_py.formats.needle import Needle
from seaweed_py.storage.shared import WorkerShare
from seaweed_py.storage.store import DiskLocation, Store
from seaweed_py.storage.volume import FsyncMode, Volume

COOKIE = 0xC0FFEE


def payload(key: int) -> bytes:
    return bytes((key * 7 + i) % 251 for i in range(10 + key * 3))


@dataclass
class Outcomes:
    acked: dict[int, bytes | None] = field(default_factory=dict)  # data, None: deleted
    maybe: dict[int, set[bytes | None]] = field(default_factory=dict)  # unacknowledged


def run_workload(
    v: Volume,
    rng: random.Random,
    seed: int,
    *,
    steps: int,
    keys: int,
    ack_chance: float,
    at_step: Callable[[int], None] | None = None,
) -> Outcomes:
    """Writes and deletes of keys 1..keys-1; each is acknowledged (its `durable` awaited) with
    probability `ack_chance`, else left in flight. `at_step` runs before each step."""
    out = Outcomes()
    acked, maybe = out.acked, out.maybe
    for step in range(steps):
        if at_step is not None:
            at_step(step)
        key = rng.randrange(1, keys)
        data = b"%d:%d:" % (seed, step) + payload(key)
        live = (key in acked and acked[key] is not None) or any(
            x is not None for x in maybe.get(key, ())
        )
        if live and rng.random() < 0.3:
            try:
                result = v.delete(key, COOKIE)
            except NeedleNotFound:
                continue
            outcome: bytes | None = None
            durable = result.durable
        else:
            w = v.write(Needle.build(COOKIE, key, data))
            outcome, durable = data, w.durable
        if rng.random() < ack_chance:
            durable.result(timeout=10)
            acked[key] = outcome
            maybe.pop(key, None)
        else:
            maybe.setdefault(key, set()).add(outcome)
    return out


def assert_allowed(v: Volume, out: Outcomes) -> None:
    """Every acknowledged write reads back, every acknowledged delete stays deleted, and an
    unacknowledged key reads back as one of its in-flight outcomes or as absent."""
    for key in set(out.acked) | set(out.maybe):
        allowed = set(out.maybe.get(key, set()))
        if key in out.acked:
            allowed.add(out.acked[key])
        try:
            got: bytes | None = v.read(key, COOKIE).data
        except NeedleNotFound:
            got = None
        assert got in allowed or (key not in out.acked and got is None), (key, got)


def seeds(default: int, slow: int = 400) -> list[Any]:
    """Seeds 0..default-1 for the default run, and the rest up to `slow` for `make test-all`
    (power-loss states that go wrong on about one seed in a hundred need the many)."""
    return [
        *range(default),
        *(pytest.param(s, marks=pytest.mark.slow) for s in range(default, slow)),
    ]


def assert_reopens_clean(d: Path, key: int, data: bytes) -> None:
    """Volume 1 in `d`, written to after its recovery, opens with nothing left to repair and
    serves that write."""
    again = Volume.open(d, 1, fsync_mode=FsyncMode.NONE)
    try:
        assert not again.recovery, again.recovery
        assert again.read(key, COOKIE).data == data
    finally:
        again.close()


def journaled_store(directory: Path) -> Store:
    """A store over `directory` with group commit through a small (1 MiB) journal."""
    return Store([DiskLocation(directory, 8)], fsync_mode=FsyncMode.GROUP, journal_ring=1 << 20)


def leader_and_worker(directory: Path, *, allocate: int | None = None) -> tuple[Store, Store]:
    """Two workers of one volume server in this process: the leader loads `directory` (and
    creates volume `allocate`) and shares it; the other attaches."""
    leader = journaled_store(directory)
    leader.load()
    leader.share_workers(WorkerShare(directory, create=True))
    if allocate is not None:
        leader.allocate(allocate)
    worker = journaled_store(directory)
    worker.attach(WorkerShare(directory, create=False))
    return leader, worker
