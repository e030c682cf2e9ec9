"""`weedpy benchmark`: its report layout, and a short run with worker processes."""

from __future__ import annotations

import re
import time
import urllib.request
from pathlib import Path

import pytest

from seaweed_py.cli.benchmark import PhaseStats, build_flags, format_report
from seaweed_py.cli.main import main
from tests import servers
from tests.servers import Cluster

shared_cluster = servers.shared_cluster

# The block `weed benchmark` 4.48 printed for a write phase (spacing verbatim).
WEED_LAYOUT = """
Concurrency Level:      4
Time taken for tests:   0.913 seconds
Completed requests:      4
Failed requests:        0
Total transferred:      263182 bytes
Requests per second:    4.38 [#/sec]
Transfer rate:          281.50 [Kbytes/sec]

Connection Times (ms)
              min      avg        max      std
Total:        0.5      4.7       15.3      6.1

Percentage of the requests served within a certain time (ms)
   50%      1.4 ms
   66%      1.7 ms
   75%      1.7 ms
   80%     15.3 ms
   90%     15.3 ms
   95%     15.3 ms
   98%     15.3 ms
   99%     15.3 ms
  100%     15.3 ms"""


def test_report_matches_weed_layout() -> None:
    stats = PhaseStats()
    for latency in (0.5, 1.4, 1.7, 15.3):
        stats.record(latency, 263182 // 4)
    stats.transferred = 263182
    assert format_report(stats, 4, 0.913) == WEED_LAYOUT


def test_stats_merge_and_percentiles() -> None:
    a, b = PhaseStats(), PhaseStats()
    for i in range(1, 101):
        (a if i % 2 else b).record(i / 10, 10)
    for _ in range(3):
        b.fail("upload: HTTP 500")
    a.merge(b)
    assert (a.completed, a.failed, a.transferred) == (100, 3, 1000)
    assert a.errors == {"upload: HTTP 500": 3}
    assert (a.latency_min_ms, a.latency_max_ms) == (0.1, 10.0)
    assert a.percentile_ms(50) == pytest.approx(5.0)
    assert a.percentile_ms(99) == pytest.approx(9.9)
    assert PhaseStats().percentile_ms(50) == 0.0
    assert "Completed requests:      0" in format_report(PhaseStats(), 1, 0.0)


def test_benchmark_writes_then_reads_with_no_failures(
    shared_cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The benchmark writes to its own collection: grow it first. The reference answers 406 to
    # an assign that races the growth which took the server's last free slot, and the run
    # would count that as a failed request.
    deadline = time.monotonic() + 30
    assign = f"{shared_cluster.master_url}/dir/assign?collection=benchmark"
    while (answer := servers.call("GET", assign))[0] != 200:
        assert time.monotonic() < deadline, answer
        time.sleep(0.2)
    listing = tmp_path / "fids.txt"
    args = [
        "benchmark",
        f"-master={shared_cluster.master_url}",
        "-n=300",
        "-c=4",
        "-procs=2",
        "-size=100",
        f"-list={listing}",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("This is weedpy version")
    assert "------------ Writing Benchmark ----------" in out
    assert "------------ Randomly Reading Benchmark ----------" in out
    assert re.findall(r"Completed requests: +(\d+)", out) == ["300", "300"]
    assert re.findall(r"Failed requests: +(\d+)", out) == ["0", "0"]
    fids = listing.read_text().split()
    assert len(set(fids)) == 300
    lookup = f"{shared_cluster.master_http}/dir/lookup?volumeId={fids[0].split(',')[0]}"
    with urllib.request.urlopen(lookup, timeout=5) as resp:
        assert resp.status == 200
    # -readOnly replays reads from the list.
    assert main([*args[:-1], f"-list={listing}", "-readOnly", "-n=50", "-procs=1"]) == 0
    out = capsys.readouterr().out
    assert "Writing Benchmark" not in out
    assert re.findall(r"Completed requests: +(\d+)", out) == ["50"]


def test_flags_have_help_and_bad_combinations_are_refused() -> None:
    assert all(flag.help for flag in build_flags().flags.values())
    assert main(["benchmark", "-readOnly", "-writeOnly"]) == 2
    assert main(["benchmark", "-n=0"]) == 2


def test_a_list_entry_that_is_not_a_fid_is_refused_before_any_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listing = tmp_path / "fids.txt"
    # `_N` batch suffixes are fids; the bad entry is named, and no worker starts (the master
    # address is unreachable, so a started read phase would report failed reads instead).
    listing.write_text("3,01637037d6\n3,01637037d6_1\n4,x1637037d6\n")
    args = ["benchmark", "-readOnly", f"-list={listing}", "-master=127.0.0.1:1", "-n=1", "-procs=1"]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert str(listing) in captured.err and "'x1637037d6'" in captured.err
    assert "Randomly Reading Benchmark" not in captured.out
