"""`weedpy master` flags: Go spellings, defaults, validation and help."""

from __future__ import annotations

import pytest

from seaweed_py.cli.main import main
from seaweed_py.cli.master_cmd import flag_set
from seaweed_py.config.flags import UsageError
from seaweed_py.master import MasterOptions, master_options


def options(*argv: str) -> MasterOptions:
    values, _ = flag_set().parse(argv)
    return master_options(values)


def test_defaults_match_weed_master() -> None:
    o = options("-ip=10.1.2.3")
    assert (o.port, o.volume_size_limit_mb, o.pulse_seconds, o.garbage_threshold) == (
        9333,
        30720,
        5.0,
        0.3,
    )
    assert o.address == "10.1.2.3:9333" and o.listen_ip == "10.1.2.3"
    assert o.default_replication == "" and not o.volume_preallocate and o.mdir


@pytest.mark.parametrize(
    "argv",
    [
        ["-port=9444", "-volumePreallocate", "-defaultReplication=001"],
        ["-port", "9444", "-volumePreallocate=true", "-defaultReplication", "001"],
        ["--port", "9444", "--volumePreallocate", "--defaultReplication=001"],
    ],
)
def test_every_go_flag_spelling(argv: list[str]) -> None:
    o = options("-ip=127.0.0.1", *argv)
    assert (o.port, o.volume_preallocate, o.default_replication) == (9444, True, "001")


def test_bind_address_mdir_peers_and_white_list(tmp_path: object) -> None:
    o = options(
        "-ip=10.0.0.5",
        "-ip.bind=0.0.0.0",
        f"-mdir={tmp_path}",
        "-peers=none",
        "-whiteList=127.0.0.1, 10.0.0.0/8",
        "-telemetry=false",
        "-pulseSeconds=0.5",
    )
    assert (o.listen_ip, o.mdir, o.white_list, o.pulse_seconds) == (
        "0.0.0.0",
        str(tmp_path),
        ("127.0.0.1", "10.0.0.0/8"),
        0.5,
    )
    assert options("-ip=10.0.0.5", "-peers=10.0.0.5:9333").peers == "10.0.0.5:9333"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-volumeSizeLimitMB=30721"], "volumeSizeLimitMB"),
        (["-volumeSizeLimitMB=0"], "volumeSizeLimitMB"),
        (["-peers=10.0.0.1:9333,10.0.0.2:9333"], "single master"),
        (["-defaultReplication=xyz"], "replication"),
        (["-whiteList=not-an-ip"], "whiteList"),
        (["-pulseSeconds=0"], "pulseSeconds"),
        (["-port=x"], "-port"),
        (["-nope"], "not defined"),
    ],
)
def test_bad_flags_are_usage_errors(argv: list[str], message: str) -> None:
    with pytest.raises(Exception, match=message) as info:
        options("-ip=127.0.0.1", *argv)
    assert (
        isinstance(info.value, UsageError)
        or info.value.__class__.__name__ == "InvalidReplicaPlacement"
    )


def test_help_lists_the_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["master", "-h"]) == 0
    out = capsys.readouterr().out
    for flag in (
        "-port",
        "-mdir",
        "-volumeSizeLimitMB",
        "-defaultReplication",
        "-pulseSeconds",
        "-ip.bind",
    ):
        assert f"  {flag} " in out or f"  {flag}\n" in out
