"""The remote range cache and the span merging of batched reads."""

from __future__ import annotations

import os
import random

from hypothesis import given
from hypothesis import strategies as st

from seaweed_py.storage.backend import RangeCache, coalesce
from seaweed_py.storage.backend.dat_file import LocalDatFile, read_merged


def test_cache_hits_inside_a_span_and_misses_outside() -> None:
    c = RangeCache(1 << 20)
    c.put("k", 100, bytes(range(200)))
    assert c.get("k", 100, 200) == bytes(range(200))
    assert c.get("k", 150, 10) == bytes(range(50, 60))
    assert c.get("k", 90, 20) is None  # starts before the span
    assert c.get("k", 250, 100) is None  # runs past it
    assert c.get("other", 100, 10) is None
    assert (c.hits, c.misses) == (2, 3)


def test_cache_evicts_oldest_and_stays_within_budget() -> None:
    c = RangeCache(4000)
    for i in range(10):
        c.put("k", i * 1000, bytes([i]) * 1000)
        assert c.size <= 4000
    assert c.get("k", 0, 10) is None
    assert c.get("k", 9000, 1000) == bytes([9]) * 1000
    c.get("k", 6000, 1)  # touched: survives the next eviction
    c.put("k", 20000, b"x" * 1000)
    assert c.get("k", 6000, 1) is not None
    assert c.get("k", 7000, 1) is None


def test_zero_capacity_and_huge_spans_keep_nothing() -> None:
    c = RangeCache(0)
    c.put("k", 0, b"abc")
    assert c.get("k", 0, 3) is None and c.size == 0
    c = RangeCache(1000)
    c.put("k", 0, b"x" * 600)  # over a quarter of the cache
    assert c.size == 0


def test_forget_drops_an_objects_spans() -> None:
    c = RangeCache(10000)
    c.put("a", 0, b"1" * 10)
    c.put("b", 0, b"2" * 10)
    c.forget("a")
    assert c.get("a", 0, 1) is None and c.get("b", 0, 1) == b"2" and c.size == 10


def test_coalesce_merges_neighbours_within_the_gap() -> None:
    spans = [(5000, 10), (0, 100), (150, 50), (10_000_000, 5)]
    merged = coalesce(spans, gap=1000)
    assert merged == [(0, 200, [1, 2]), (5000, 10, [0]), (10_000_000, 5, [3])]
    assert coalesce(spans, gap=10_000) == [(0, 5010, [1, 2, 0]), (10_000_000, 5, [3])]
    # A merged read never passes the limit; a span alone may.
    assert coalesce([(0, 10), (20, 10), (40, 100)], gap=100, limit=40) == [
        (0, 30, [0, 1]),
        (40, 100, [2]),
    ]


@given(
    st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 300)), max_size=40),
    st.integers(0, 2000),
)
def test_coalesced_reads_give_every_span_its_bytes(spans: list[tuple[int, int]], gap: int) -> None:
    data = random.Random(7).randbytes(6000)
    reads: list[tuple[int, int]] = []

    def read_at(offset: int, length: int) -> bytes:
        reads.append((offset, length))
        return data[offset : offset + length]

    got = read_merged(read_at, spans, gap)
    assert got == [data[o : o + n] for o, n in spans]
    assert len(reads) <= len(spans)


def test_local_dat_file_reads_spans(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "x.dat")
    blob = os.urandom(10000)
    with open(path, "wb") as f:
        f.write(blob)
    fd = os.open(path, os.O_RDONLY)
    try:
        local = LocalDatFile(fd)
        assert local.size == 10000 and not local.remote
        assert local.read_spans([(9000, 2000), (10, 5)]) == [blob[9000:], blob[10:15]]
    finally:
        os.close(fd)
