"""The storage benchmark's pieces run at a tiny size and answer correctly (no timings are
asserted: performance is for benchmarks)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.storage_bench import build_sparse_volume, child_open, measure_throughput
from seaweed_py.storage.volume import FsyncMode


def test_sparse_volume_opens_with_every_needle(tmp_path: Path) -> None:
    build_sparse_volume(tmp_path, 5000)
    for kind in ("memory", "mmap"):
        result = child_open(str(tmp_path), kind, 5000, lookups=1000)
        assert result["ok"], kind
        assert result["open_s"] > 0


@pytest.mark.parametrize("mode", list(FsyncMode))
def test_throughput_run_reports_rates(tmp_path: Path, mode: FsyncMode) -> None:
    result = measure_throughput(mode, 100, tmp_path)
    assert result["ops"] == 100 and result["appends_per_s"] > 0 and result["reads_per_s"] > 0
    assert list(tmp_path.iterdir()) == []
