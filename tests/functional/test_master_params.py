"""Parsing of master request parameters, and the status helpers (no sockets). Heartbeat bodies
are the wire codec's: tests/unit/test_wire.py."""

from __future__ import annotations

import pytest

from seaweed_py.errors import BadRequest, InvalidCollection, NotAcceptable
from seaweed_py.formats.ttl import Ttl
from seaweed_py.master.params import parse_assign, parse_lookup_vid
from seaweed_py.master.views import volume_id_runs


def test_assign_defaults_and_counts() -> None:
    opt = parse_assign({}, "001", 0)
    assert (opt.count, str(opt.key.replica_placement), opt.key.disk, opt.key.collection) == (
        1,
        "001",
        "hdd",
        "",
    )
    assert parse_assign({"count": ""}, "", 0).count == 1
    assert parse_assign({"count": "2000000"}, "", 0).count == 2_000_000
    assert parse_assign({"count": "4294967295"}, "", 0).count == 4294967295


@pytest.mark.parametrize(
    ("name", "text"),
    [
        *[
            ("count", t)
            for t in ("0", "-3", "x", "0x10", "1e3", " 2", "\uff12", "4294967296", "9" * 5000)
        ],
        *[("writableVolumeCount", t) for t in ("-1", "abc", "4294967296", "1.5")],
        *[("dataSize", t) for t in ("-1", "abc", "18446744073709551616", "9" * 5000)],
    ],
)
def test_assign_numbers_out_of_range_are_400_naming_the_parameter(name: str, text: str) -> None:
    """The reference reads these as 1 (count) or 0: a client asking `count=0x10` got one key
    and did not know. Issue 12: the client's mistake is a 400 saying which parameter."""
    with pytest.raises(BadRequest) as raised:
        parse_assign({name: text}, "", 0)
    assert type(raised.value) is BadRequest and raised.value.status == 400
    assert raised.value.message.startswith(f"invalid {name} ")


def test_vol_grow_reads_no_assign_count() -> None:
    assert parse_assign({"count": "0"}, "", 0, with_count=False).count == 1


@pytest.mark.parametrize("text", ["-1", "abc", "0x10", "9223372036854775808", "9" * 5000, "1025"])
def test_preallocate_outside_the_volume_size_is_406(text: str) -> None:
    """406, as the reference answers an unparsable preallocate; it also takes negative or huge
    values, which its volume servers then fail to reserve."""
    with pytest.raises(NotAcceptable) as raised:
        parse_assign({"preallocate": text}, "", 0, max_preallocate=1024)
    assert raised.value.message.startswith(f"invalid preallocate {text!r}")
    assert parse_assign({"preallocate": "1024"}, "", 0, max_preallocate=1024).preallocate == 1024
    assert parse_assign({"preallocate": "+0"}, "", 7, max_preallocate=1024).preallocate == 0


def test_assign_options_are_parsed_into_values() -> None:
    opt = parse_assign(
        {
            "replication": "110",
            "ttl": "24h",
            "collection": "c",
            "disk": "SSD",
            "dataCenter": "d",
            "rack": "r",
            "dataNode": "n:1",
            "preallocate": "1024",
            "writableVolumeCount": "3",
            "dataSize": "10",
        },
        "",
        0,
    )
    assert opt.key.ttl == Ttl.parse("1d") and opt.key.disk == "ssd"
    assert (opt.data_center, opt.rack, opt.data_node, opt.preallocate) == ("d", "r", "n:1", 1024)
    assert (opt.writable_volume_count, opt.data_size, opt.constrained) == (3, 10, True)
    # Field names and order as `weed` 4.48 prints them (checked against the binary).
    assert opt.describe() == (
        '{"collection":"c","replication":{"rack":1,"dc":1},"ttl":{"Count":1,"Unit":3},'
        '"disk":"ssd","preallocate":1024,"dataCenter":"d","rack":"r","dataNode":"n:1","version":3}'
    )


@pytest.mark.parametrize("form", [{"replication": "abc"}, {"ttl": "x1"}, {"preallocate": "big"}])
def test_bad_assign_options_are_406(form: dict[str, str]) -> None:
    with pytest.raises(NotAcceptable):
        parse_assign(form, "", 0)


def test_lookup_vid_from_vid_or_fid() -> None:
    assert parse_lookup_vid("3") == ("3", 3)
    assert parse_lookup_vid("3,01637037d6") == ("3", 3)
    assert parse_lookup_vid("abc") == ("abc", None)
    assert parse_lookup_vid("") == ("", None)
    assert parse_lookup_vid("4294967296") == ("4294967296", None)


@pytest.mark.parametrize("name", ["../../x", "/abs/x", "..", "a b", "x" * 121])
def test_a_bad_assign_collection_is_400_not_406(name: str) -> None:
    with pytest.raises(InvalidCollection, match=r"^invalid collection "):
        parse_assign({"collection": name}, "", 0)


def test_volume_id_runs_like_the_reference() -> None:
    assert volume_id_runs([]) == " "
    assert volume_id_runs([5, 1, 2, 3, 7, 8, 9, 10]) == " 1-3 5 7-10"
    assert volume_id_runs(range(1, 202, 2)).endswith(" 197 199 ...")
