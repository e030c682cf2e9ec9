"""client/tier_vacuum.py against a fake `VolumeAdmin`: what a run does when the source refuses
its compaction as there already (409). The runs over real servers, cut at every step:
tests/fault/test_server_tier_vacuum.py."""

from __future__ import annotations

from typing import Any

import pytest

from seaweed_py.client.tier_vacuum import vacuum_tiered
from seaweed_py.errors import Conflict
from seaweed_py.formats.replica_placement import ReplicaPlacement
from seaweed_py.formats.wire import AdminCall, VacuumCommitAnswer, VolumeReport
from seaweed_py.topology.vacuum import VacuumTimeouts

VID = 7
LOCAL, TIERED = "a:1", "b:1"


class FakeAdmin:
    """LOCAL holds the `.dat` (a cut run downloaded it), TIERED reads the old object. The
    source's compaction is refused as running already; its commit answers `commit`."""

    def __init__(self, commit: Exception | VacuumCommitAnswer) -> None:
        self.commit = commit
        self.calls: list[str] = []

    async def volume_status(self, server: str, vid: int, **kw: Any) -> VolumeReport:
        tiered = server == TIERED
        return VolumeReport(
            vid,
            replica_placement=ReplicaPlacement.parse("001"),
            remote_storage_name="s3.default" if tiered else "",
            remote_storage_key=f"{vid}/old" if tiered else "",
        )

    async def tier_uploads(self, server: str, vid: int, **kw: Any) -> list[str]:
        return [f"{vid}/old"]

    async def send(self, server: str, message: AdminCall, **kw: Any) -> bytes:
        self.calls.append(f"{type(message).__name__} {server}")
        return b"{}"

    async def vacuum_check(self, server: str, vid: int, **kw: Any) -> float:
        return 0.5

    async def vacuum_compact(self, server: str, vid: int, **kw: Any) -> None:
        self.calls.append(f"compact {server}")
        raise Conflict("volume is being vacuumed already", volume_id=vid)

    async def vacuum_commit(self, server: str, vid: int, **kw: Any) -> VacuumCommitAnswer:
        self.calls.append(f"commit {server}")
        if isinstance(self.commit, Exception):
            raise self.commit
        return self.commit

    async def vacuum_cleanup(self, server: str, vid: int, **kw: Any) -> None:
        self.calls.append(f"cleanup {server}")

    async def tier_upload(self, server: str, vid: int, **kw: Any) -> dict[str, Any]:
        self.calls.append(f"upload {server}")
        raise Conflict("the test stops here", volume_id=vid)


class FakeTiering:
    def __init__(self, admin: FakeAdmin) -> None:
        self.admin = admin

    async def states(self, vid: int, **kw: Any) -> list[tuple[str, VolumeReport]]:
        return [(url, await self.admin.volume_status(url, vid)) for url in (TIERED, LOCAL)]

    def clock(self) -> float:
        return 0.0


TIMEOUTS = VacuumTimeouts(check=1.0, compact=1.0, commit=1.0, transfer=1.0)


async def test_a_compaction_still_copying_is_left_alone() -> None:
    admin = FakeAdmin(Conflict("the compaction is still copying", volume_id=VID))
    with pytest.raises(Conflict) as caught:
        await vacuum_tiered(FakeTiering(admin), VID, threshold=0.3, timeouts=TIMEOUTS)  # type: ignore[arg-type]
    message = caught.value.message
    assert "busy" in message and "still copying" in message, message
    assert "rerun volume.tier.compact to finish" in message, message
    assert not [c for c in admin.calls if c.startswith(("cleanup", "upload"))], admin.calls


async def test_a_finished_compaction_a_cut_run_left_is_committed_and_uploaded() -> None:
    admin = FakeAdmin(VacuumCommitAnswer(reclaimed_bytes=100))
    with pytest.raises(Conflict, match="the test stops here"):
        await vacuum_tiered(FakeTiering(admin), VID, threshold=0.3, timeouts=TIMEOUTS)  # type: ignore[arg-type]
    assert admin.calls[-3:] == [f"compact {LOCAL}", f"commit {LOCAL}", f"upload {LOCAL}"]
