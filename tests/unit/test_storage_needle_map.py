"""Needle maps against a plain-dict model: replay counters, random operations, merges."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seaweed_py.formats.idx import IDX4, IDX5, IdxLayout
from seaweed_py.storage.needle_map import (
    IndexStats,
    LiveArrays,
    MemoryNeedleMap,
    MmapNeedleMap,
    NeedleMap,
    read_sdx,
    replay_index,
)

Entry = tuple[int, int, int]


def model_replay(entries: list[Entry]) -> tuple[dict[int, tuple[int, int]], IndexStats]:
    """The reference's doLoading, one entry at a time."""
    live: dict[int, tuple[int, int]] = {}
    s = IndexStats()
    for key, offset, size in entries:
        s.max_key = max(s.max_key, key)
        if offset != 0 and size >= 0:
            s.file_count += 1
            s.content_size += size
            old = live.get(key)
            live[key] = (offset, size)
            if old is not None:
                s.delete_count += 1
                s.deleted_bytes += old[1]
        else:
            old = live.pop(key, None)
            s.delete_count += 1
            s.deleted_bytes += old[1] if old is not None else 0
    return live, s


def arrays(entries: list[Entry]) -> LiveArrays:
    return (
        np.array([e[0] for e in entries], dtype=np.uint64),
        np.array([e[1] for e in entries], dtype=np.uint64),
        np.array([e[2] for e in entries], dtype=np.int32),
    )


def as_dict(live: LiveArrays) -> dict[int, tuple[int, int]]:
    keys, offsets, sizes = live
    return {int(k): (int(o), int(s)) for k, o, s in zip(keys, offsets, sizes, strict=True)}


entry_strategy = st.tuples(
    st.integers(1, 40),
    st.one_of(st.just(0), st.integers(1, 1 << 20).map(lambda u: u * 8)),
    st.one_of(st.just(-1), st.integers(0, 5000)),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(entry_strategy, max_size=80))
def test_replay_matches_the_reference_entry_by_entry(entries: list[Entry]) -> None:
    (live, stats) = replay_index(*arrays(entries))
    want_live, want_stats = model_replay(entries)
    assert as_dict(live) == want_live
    assert list(live[0]) == sorted(want_live)
    assert stats == want_stats


def make_map(kind: str, tmp_path: Path, layout: IdxLayout, entries: list[Entry]) -> NeedleMap:
    live, stats = replay_index(*arrays(entries))
    if kind == "memory":
        return MemoryNeedleMap(live, stats, layout, merge_min=64)
    return MmapNeedleMap(tmp_path / "1.sdx", live, stats, layout, merge_min=64)


@pytest.mark.parametrize("layout", [IDX4, IDX5])
@pytest.mark.parametrize("kind", ["memory", "mmap"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_puts_and_deletes_agree_with_a_dict(
    kind: str, layout: IdxLayout, seed: int, tmp_path: Path
) -> None:
    rng = random.Random(seed)
    print("seed", seed)
    big = 1 << 35 if layout is IDX5 else 1 << 34  # 5-byte offsets reach past 32 GiB
    initial = [
        (rng.randrange(1, 3000), rng.randrange(1, big // 8) * 8, rng.randrange(0, 9000))
        for _ in range(1500)
    ]
    m = make_map(kind, tmp_path, layout, initial)
    model, stats = model_replay(initial)
    assert len(m) == len(model)
    assert m.stats == stats
    next_key = 3000
    for step in range(3000):
        op = rng.random()
        if op < 0.35:  # new key above everything: the append path of a merge
            next_key += rng.randrange(1, 4)
            key = next_key
        elif op < 0.55:  # out of order: forces a rebuild merge
            key = rng.randrange(1, next_key)
        else:
            key = rng.choice(list(model)) if model and op < 0.8 else rng.randrange(1, next_key)
        if op < 0.8:
            offset, size = rng.randrange(1, big // 8) * 8, rng.randrange(0, 9000)
            old = m.put(key, offset, size)
            want_old = model.get(key)
            assert old == (want_old[1] if want_old else None), (step, key)
            model[key] = (offset, size)
        else:
            old = m.delete(key)
            want = model.pop(key, None)
            assert old == (want[1] if want else None), (step, key)
        if step % 500 == 0:
            for k in rng.sample(range(1, next_key + 1), 200):
                assert m.get(k) == model.get(k), (step, k)
    for k in range(1, next_key + 2):
        assert m.get(k) == model.get(k), k
    assert len(m) == len(model)
    assert as_dict(m.live_arrays()) == model
    m.merge()
    assert as_dict(m.live_arrays()) == model
    m.close()


def test_mmap_map_keeps_a_sorted_sdx_in_the_idx_layout(tmp_path: Path) -> None:
    entries = [(k, 8 * k, k % 7) for k in (9, 3, 27, 1, 14)]
    m = make_map("mmap", tmp_path, IDX5, entries)
    raw = (tmp_path / "1.sdx").read_bytes()
    assert len(raw) == 5 * IDX5.entry_size
    assert as_dict(read_sdx(raw, IDX5)) == {k: (o, s) for k, o, s in entries}
    assert list(read_sdx(raw, IDX5)[0]) == [1, 3, 9, 14, 27]
    m.close()


def test_empty_maps_answer_none(tmp_path: Path) -> None:
    for kind in ("memory", "mmap"):
        m = make_map(kind, tmp_path, IDX4, [])
        assert m.get(1) is None
        assert m.delete(1) is None
        assert len(m) == 0
        assert m.put(5, 64, 10) is None
        assert m.get(5) == (64, 10)
        m.close()


def test_put_and_delete_keep_the_reference_counters(tmp_path: Path) -> None:
    m = make_map("memory", tmp_path, IDX4, [(1, 8, 10), (2, 16, 20)])
    m.put(1, 24, 30)  # overwrite: the old 10 bytes become garbage
    m.delete(2)
    m.put(7, 40, 5)
    assert m.stats == IndexStats(
        file_count=4, delete_count=2, deleted_bytes=30, content_size=65, max_key=7
    )


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(st.integers(1, 2000), st.integers(1, 2**64 - 1)),
        min_size=1,
        max_size=1000,
        unique=True,
    ),
    st.lists(st.integers(0, 2**64 - 1), max_size=50),
)
def test_lookups_find_every_key_however_skewed_the_spread(
    keys: list[int], probes: list[int]
) -> None:
    """Clustered keys make the interpolation guess miss by far: the search still finds."""
    entries = [(k, 8 * (i + 1), i % 100) for i, k in enumerate(keys)]
    m = MemoryNeedleMap(*replay_index(*arrays(entries)))
    want = {k: (o, s) for k, o, s in entries}
    for k in keys:
        assert m.get(k) == want[k]
    for k in probes:
        assert m.get(k) == want.get(k)


@pytest.mark.parametrize("kind", ["memory", "mmap"])
def test_readers_never_miss_a_key_while_a_writer_merges(kind: str, tmp_path: Path) -> None:
    """Readers take no lock: every published state must answer for the stable keys."""
    stable = [(k, 8 * k, k % 50) for k in range(1, 400, 2)]
    m = make_map(kind, tmp_path, IDX4, stable)
    stop = threading.Event()
    misses: list[int] = []

    def reader() -> None:
        rng = random.Random(7)
        while not stop.is_set():
            k, _, s = stable[rng.randrange(len(stable))]
            got = m.get(k)
            if got is None or got[1] != s:
                misses.append(k)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        rng = random.Random(8)
        for i in range(3000):
            key = 1000 + i if i % 3 else rng.randrange(2, 400, 2)  # appends and out-of-order
            m.put(key, 8 * (5000 + i), 7)
            if i % 5 == 0:
                m.delete(key)
            if i % 7 == 0:
                k, _, s = stable[rng.randrange(len(stable))]
                m.put(k, 8 * (90000 + i), s)  # overwrite: a new offset, same size
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert misses == []
    m.close()


def test_appends_keep_dead_markers_until_compaction(tmp_path: Path) -> None:
    m = MemoryNeedleMap(
        *replay_index(*arrays([(k, 8 * k, 10) for k in range(1, 2001)])), merge_min=16
    )
    for k in range(1, 200, 2):
        assert m.delete(k) == 10  # 100 dead markers: below 1/8, no rebuild needed
    model = {k: (8 * k, 10) for k in range(1, 2001) if not (k % 2 and k < 200)}
    for k in range(3000, 3400):  # ascending new keys: merged by appending in place
        m.put(k, 8 * k, 20)
        model[k] = (8 * k, 20)
    assert len(m) == len(model)
    for k in range(0, 3500):
        assert m.get(k) == model.get(k), k
    assert as_dict(m.live_arrays()) == model  # compacts
    assert len(m) == len(model)
    assert m.get(1) is None and m.get(3399) == (8 * 3399, 20)
