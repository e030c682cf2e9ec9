"""client/repair.py's sequences against a fake `VolumeAdmin`: a trim deletes the doomed copy
only once a round of pulls by every survivor took nothing and failed nothing; a copy is one
order to the target."""

from __future__ import annotations

from typing import Any

import pytest

from seaweed_py.client.repair import Repairs
from seaweed_py.errors import BadRequest, ServiceUnavailable, WeedError
from seaweed_py.formats.wire import AdminCall, CopyVolume, DeleteVolume, SyncReport
from seaweed_py.topology.repair import CopyOrder, TrimOrder


class FakeAdmin:
    def __init__(self, pulls: list[dict[str, tuple[int, int]]]) -> None:
        """`pulls[i][survivor]`: (changed, failed) of that survivor's pull in round i."""
        self.pulls = pulls
        self.calls: list[tuple[str, Any]] = []
        self.round = 0

    async def sync(self, server: str, vid: int, peer: str) -> SyncReport:
        self.calls.append(("sync", (server, vid, peer)))
        changed, failed = self.pulls[min(self.round, len(self.pulls) - 1)].get(server, (0, 0))
        if server == sorted(self.pulls[0])[-1]:
            self.round += 1
        return SyncReport(vid, peer, pulled=changed, failed=failed)

    async def send(self, server: str, message: AdminCall) -> bytes:
        self.calls.append(("send", (server, message)))
        return b"{}"

    async def copy_volume(self, server: str, order: CopyVolume, progress: Any) -> dict[str, Any]:
        self.calls.append(("copy", (server, order)))
        return {"volume": order.volume_id, "size": 123, "rounds": 2, "pulled": 0}


TRIM = TrimOrder(7, "c:1", ("a:1", "b:1"), "replication 001 has 3 of 2 copies")


def repairs(admin: FakeAdmin) -> Repairs:
    return Repairs(admin)  # type: ignore[arg-type]


async def test_a_trim_pulls_until_nothing_changes_then_deletes() -> None:
    admin = FakeAdmin([{"a:1": (3, 0), "b:1": (0, 0)}, {"a:1": (0, 0), "b:1": (0, 0)}])
    lines: list[str] = []
    done = await repairs(admin).trim(TRIM, say=lines.append)
    assert done.pulled == 3
    syncs = [c[1] for c in admin.calls if c[0] == "sync"]
    assert syncs == [("a:1", 7, "c:1"), ("b:1", 7, "c:1")] * 2
    assert admin.calls[-1] == ("send", ("c:1", DeleteVolume(7)))
    assert any("removing the copy on c:1" in line for line in lines)


async def test_a_trim_keeps_the_copy_when_a_needle_could_not_be_taken() -> None:
    admin = FakeAdmin([{"a:1": (1, 1), "b:1": (0, 0)}])
    with pytest.raises(WeedError, match="could not be taken"):
        await repairs(admin).trim(TRIM)
    assert not [c for c in admin.calls if c[0] == "send"]


async def test_a_trim_of_a_copy_that_keeps_changing_waits() -> None:
    admin = FakeAdmin([{"a:1": (1, 0), "b:1": (0, 0)}])
    with pytest.raises(ServiceUnavailable, match="still held newer states"):
        await repairs(admin).trim(TRIM)
    assert not [c for c in admin.calls if c[0] == "send"]


async def test_a_trim_with_no_survivor_is_refused() -> None:
    admin = FakeAdmin([{}])
    with pytest.raises(BadRequest, match="no copy would be left"):
        await repairs(admin).trim(TrimOrder(7, "c:1", (), "x"))
    assert admin.calls == []


async def test_a_copy_is_one_order_to_the_target() -> None:
    admin = FakeAdmin([{}])
    done = await repairs(admin).copy(CopyOrder(7, "a:1", "b:1", "pics", "short"))
    assert admin.calls == [("copy", ("b:1", CopyVolume(7, "a:1", "pics")))]
    assert (done.size, done.rounds) == (123, 2)
