"""The `-whiteList` guard shared by the master and the volume server (spec §10.3)."""

from __future__ import annotations

import re

import pytest

from seaweed_py.config.flags import UsageError
from seaweed_py.errors import Unauthorized
from seaweed_py.httpkit.allow_list import MEMO_LIMIT, AllowList, white_list_entries
from seaweed_py.httpkit.request import Request


def test_empty_list_allows_everyone_and_is_falsy() -> None:
    allow = AllowList(())
    assert not allow
    assert allow.allows("203.0.113.9") and allow.allows("") and allow.allows("not-an-ip")
    allow.check(Request("POST", "/1,01", remote="203.0.113.9"))
    assert allow.remembered == 0


def test_exact_ipv4_and_cidr() -> None:
    allow = AllowList(["192.0.2.7", " 10.0.0.0/8 "])
    assert allow
    assert allow.allows("192.0.2.7") and allow.allows("10.255.0.1")
    assert not allow.allows("192.0.2.8") and not allow.allows("11.0.0.1")


def test_host_bits_in_a_cidr_are_ignored_like_go() -> None:
    assert AllowList(["10.1.2.3/8"]).allows("10.200.0.1")


def test_ipv6_exact_cidr_and_mapped_ipv4() -> None:
    allow = AllowList(["2001:db8::/32", "::1", "10.0.0.0/8"])
    assert allow.allows("2001:db8:1::5") and allow.allows("::1")
    assert not allow.allows("2001:db9::1") and not allow.allows("127.0.0.1")
    # A dual-stack listener reports an IPv4 client as ::ffff:a.b.c.d: matched as that IPv4.
    assert allow.allows("::ffff:10.1.2.3")
    assert not allow.allows("::ffff:11.1.2.3")
    # Link-local peers carry their interface as a scope; the scope does not hide the address.
    assert AllowList(["fe80::/10"]).allows("fe80::1%eth0")


def test_unparsable_peers_are_refused_when_a_list_is_set() -> None:
    allow = AllowList(["127.0.0.1"])
    assert not allow.allows("") and not allow.allows("/run/weed.sock")


def test_check_raises_unauthorized_naming_the_peer() -> None:
    allow = AllowList(["10.9.9.9"])
    allow.check(Request("DELETE", "/1,01", remote="10.9.9.9"))
    with pytest.raises(Unauthorized, match=r"^127\.0\.0\.1 is not in the white list$") as info:
        allow.check(Request("POST", "/1,01", remote="127.0.0.1"))
    assert info.value.status == 401


def test_forwarded_headers_are_not_trusted() -> None:
    allow = AllowList(["10.9.9.9"])
    req = Request(
        "POST",
        "/1,01",
        headers={"x-forwarded-for": "10.9.9.9", "x-real-ip": "10.9.9.9"},
        remote="127.0.0.1",
    )
    with pytest.raises(Unauthorized):
        allow.check(req)


@pytest.mark.parametrize("entry", ["not-an-ip", "10.0.0.0/33", "1.2.3", "example.com", "::g"])
def test_bad_entries_are_refused(entry: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(entry))):
        AllowList(["127.0.0.1", entry])
    with pytest.raises(UsageError, match=rf"^-whiteList: {re.escape(repr(entry))} is not an IP"):
        white_list_entries(f"127.0.0.1,{entry}")


def test_white_list_entries_splits_and_drops_blanks() -> None:
    assert white_list_entries(" 127.0.0.1, ,10.0.0.0/8,") == ("127.0.0.1", "10.0.0.0/8")
    assert white_list_entries(("::1", "")) == ("::1",)
    assert white_list_entries("") == ()
    with pytest.raises(UsageError, match=r"^-volume\.whiteList: "):
        white_list_entries("x", flag="-volume.whiteList")


def test_memo_is_bounded_and_decisions_stay_right() -> None:
    allow = AllowList(["10.0.0.0/24"], memo_limit=8)
    for i in range(50):
        assert allow.allows(f"10.0.{i % 2}.{i}") is (i % 2 == 0)
        assert 1 <= allow.remembered <= 8
    assert allow.allows("10.0.0.1") and not allow.allows("10.0.1.1")
    default = AllowList(["::1"])
    for i in range(MEMO_LIMIT + 10):
        default.allows(f"2001:db8::{i:x}")
    assert default.remembered <= MEMO_LIMIT
    with pytest.raises(ValueError, match="memo_limit"):
        AllowList(["::1"], memo_limit=0)
