"""`weedpy upload` and `weedpy download` end to end, against weed and (once it runs) weedpy."""

from __future__ import annotations

import io
import json
import os
import urllib.request
from pathlib import Path

import pytest

from seaweed_py.cli.main import main
from seaweed_py.client.manifest import decode_manifest
from seaweed_py.client.progress import ProgressBar, format_bytes
from tests import servers
from tests.servers import Cluster

shared_cluster = servers.shared_cluster

MiB = 1024 * 1024


def upload_json(
    cluster: Cluster, capsys: pytest.CaptureFixture[str], *args: str
) -> list[dict[str, object]]:
    assert main(["upload", f"-master={cluster.master_url}", "-json", *args]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    results: list[dict[str, object]] = json.loads(out)
    return results


def manifest_of(cluster: Cluster, url: str) -> bytes:
    with urllib.request.urlopen(f"http://{url}?cm=false", timeout=10) as resp:
        data: bytes = resp.read()
    return data


def test_upload_then_download_is_byte_identical_and_large_files_are_chunked(
    shared_cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    small, big = tmp_path / "notes.txt", tmp_path / "disk.img"
    small.write_bytes(b"some notes\n")
    big_data = os.urandom(3 * MiB + 5)
    big.write_bytes(big_data)
    results = upload_json(shared_cluster, capsys, "-maxMB=1", str(small), str(big))
    assert [r["fileName"] for r in results] == ["notes.txt", "disk.img"]
    assert [r["size"] for r in results] == [11, len(big_data)]
    first, second = (str(r["fid"]) for r in results)
    assert second == f"{first}_1"  # one assign, consecutive keys, like weed upload
    assert str(results[0]["url"]).endswith(f"/{first}")
    chunks = decode_manifest(manifest_of(shared_cluster, str(results[1]["url"]))).chunks
    assert [c.size for c in chunks] == [MiB, MiB, MiB, 5]

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    assert (
        main(["download", f"-master={shared_cluster.master_url}", f"-dir={out_dir}", first, second])
        == 0
    )
    assert (out_dir / "notes.txt").read_bytes() == b"some notes\n"
    assert (out_dir / "disk.img").read_bytes() == big_data
    assert sorted(p.name for p in out_dir.iterdir()) == ["disk.img", "notes.txt"]


def test_plain_output_is_one_fid_per_file(
    shared_cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = [tmp_path / f"f{i}.txt" for i in range(3)]
    for i, path in enumerate(files):
        path.write_text(f"file {i}")
    assert main(["upload", f"-master={shared_cluster.master_url}", *map(str, files)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[1] for line in lines] == [str(p) for p in files]
    base = lines[0].split("\t")[0]
    assert [line.split("\t")[0] for line in lines] == [base, f"{base}_1", f"{base}_2"]


def test_dir_upload_with_include_pattern(
    shared_cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.pdf").write_bytes(b"pdf a")
    (tree / "sub" / "b.pdf").write_bytes(b"pdf b")
    (tree / "skip.txt").write_bytes(b"no")
    results = upload_json(shared_cluster, capsys, f"-dir={tree}", "-include=*.pdf")
    assert sorted(str(r["fileName"]) for r in results) == ["a.pdf", "b.pdf"]
    assert len({str(r["fid"]).split("_")[0] for r in results}) == 2  # one assign each


def test_download_to_stdout_concatenates(
    shared_cluster: Cluster,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"first,")
    b.write_bytes(b"second")
    fids = [str(r["fid"]) for r in upload_json(shared_cluster, capsys, str(a), str(b))]
    sink = io.BytesIO()
    monkeypatch.setattr("sys.stdout", io.TextIOWrapper(sink))
    assert main(["download", f"-master={shared_cluster.master_url}", "-dir=-", *fids]) == 0
    assert sink.getvalue() == b"first,second"


def test_failures_are_reported_with_exit_status(
    shared_cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "x.txt"
    path.write_bytes(b"x")
    fid = str(upload_json(shared_cluster, capsys, str(path))[0]["fid"])
    vid, rest = fid.split(",")
    missing = f"{vid},{rest[:-8]}{int(rest[-8:], 16) ^ 1:08x}"
    master = f"-master={shared_cluster.master_url}"
    assert main(["download", master, f"-dir={tmp_path}", missing]) == 1
    assert "404" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [path]  # no partial file left behind
    assert main(["download", master, "not-a-fid"]) == 2
    assert main(["upload", master, str(tmp_path / "nope")]) == 2
    dead = f"-master=127.0.0.1:{servers.free_port()}"
    assert main(["upload", dead, "-json", str(path)]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out[0]["fileName"] == "x.txt"
    assert "error" in out[0]


def test_every_flag_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("upload", "download"):
        assert main([command, "-h"]) == 0
        usage = capsys.readouterr().out
        assert "-master" in usage
    from seaweed_py.cli import download, upload

    for flags in (upload.build_flags(), download.build_flags()):
        assert all(flag.help for flag in flags.flags.values())


def test_progress_bar_renders_only_on_terminals() -> None:
    now = [0.0]
    out = io.StringIO()
    bar = ProgressBar("big.iso", out, enabled=True, width=10, clock=lambda: now[0])
    now[0] = 2.0
    bar.update(5 * MiB, 10 * MiB)
    assert bar.render(2.0) == "big.iso [#####.....]  50.0% 5.0 MiB/10.0 MiB 2.5 MiB/s"
    bar.close()
    assert out.getvalue().endswith("\n")
    quiet = io.StringIO()
    off = ProgressBar("x", quiet)  # StringIO is not a terminal
    off.update(10, None)
    off.close()
    assert quiet.getvalue() == ""
    assert off.render(1.0).startswith("x 10 B")
    assert format_bytes(1536) == "1.5 KiB"


def test_fifty_mib_file_round_trips_through_the_cli_in_chunks(
    shared_cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "fifty.bin"
    data = os.urandom(50 * MiB)
    source.write_bytes(data)
    [result] = upload_json(shared_cluster, capsys, str(source))  # default -maxMB=4
    assert result["size"] == len(data)
    chunks = decode_manifest(manifest_of(shared_cluster, str(result["url"]))).chunks
    assert len(chunks) == 13
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    assert (
        main(
            [
                "download",
                f"-master={shared_cluster.master_url}",
                f"-dir={out_dir}",
                str(result["fid"]),
            ]
        )
        == 0
    )
    assert (out_dir / "fifty.bin").read_bytes() == data


def test_the_progress_bar_is_closed_when_the_assign_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from seaweed_py.cli import upload

    closed: list[ProgressBar] = []

    class RecordingBar(ProgressBar):
        def close(self) -> None:
            closed.append(self)
            super().close()

    monkeypatch.setattr(upload, "ProgressBar", RecordingBar)
    path = tmp_path / "x.txt"
    path.write_bytes(b"x")
    dead = f"-master=127.0.0.1:{servers.free_port()}"
    assert main(["upload", dead, "-json", str(path)]) == 1  # the assign is the early return
    assert "error" in json.loads(capsys.readouterr().out)[0]
    assert len(closed) == 1
