"""Carrying out the actions `topology/repair.py` plans, over the volume servers' admin calls
(`client/volume_admin.py`): the master's repair loop (`master/repair.py`) and `weedpy shell`'s
`volume.fix.replication` use the same sequences.

A **copy** (`CopyOrder`) is one `POST /admin/volume/copy` to the target, which pulls the volume
from the source (volume/copy.py: checksummed pieces, catch-up rounds, all or nothing, then a
pull of anything newer). The target's heartbeat, sent at once after the commit, tells the
master.

A **trim** (`TrimOrder`) must never lose a write, even one that only the doomed copy holds (a
write killed mid fan-out, a replica that came back with writes nobody else has):

1. every survivor pulls from the doomed copy what it holds newer (`/admin/volume/sync`);
2. the pull is repeated until a round changes nothing and fails nothing, which proves that
   the survivors hold every state the doomed copy holds (at most `_PROOF_ROUNDS` rounds: a
   volume taking writes keeps them all the same, as every acknowledged write reached every
   holder; one whose pulls keep changing is left for the next pass);
3. only then is the doomed copy deleted (`/admin/volume/delete`).

Anything that fails raises (`WeedError`) and changes nothing more; a trim that stops before
its step 3 has deleted nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from seaweed_py import errors
from seaweed_py.client.volume_admin import Progress, VolumeAdmin
from seaweed_py.formats.wire import CopyVolume, DeleteVolume
from seaweed_py.topology.repair import CopyOrder, TrimOrder

__all__ = ["CopyDone", "Repairs", "TrimDone"]

_PROOF_ROUNDS: Final = 3

Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class CopyDone:
    order: CopyOrder
    size: int
    """Bytes of `.dat` the target holds."""
    rounds: int


@dataclass(frozen=True, slots=True)
class TrimDone:
    order: TrimOrder
    pulled: int
    """Needle states the survivors took from the doomed copy before it went."""


class Repairs:
    """Copies and trims through one `VolumeAdmin` (whose `HttpClient` the caller owns)."""

    def __init__(self, admin: VolumeAdmin) -> None:
        self.admin = admin

    async def copy(
        self, order: CopyOrder, *, progress: Progress | None = None, say: Say | None = None
    ) -> CopyDone:
        _say(say, order.describe())
        done: dict[str, Any] = await self.admin.copy_volume(
            order.target, CopyVolume(order.volume, order.source, order.collection), progress
        )
        return CopyDone(order, _int(done, "size"), _int(done, "rounds"))

    async def trim(self, order: TrimOrder, *, say: Say | None = None) -> TrimDone:
        if not order.keep:
            raise errors.BadRequest(
                f"volume {order.volume}: no copy would be left if {order.doomed} went"
            )
        pulled = 0
        for round_ in range(1, _PROOF_ROUNDS + 1):
            changed = failed = 0
            for survivor in order.keep:
                report = await self.admin.sync(survivor, order.volume, order.doomed)
                changed += report.changed
                failed += report.failed
            pulled += changed
            if failed:
                raise errors.WeedError(
                    f"volume {order.volume}: {failed} needle(s) of the copy on {order.doomed} "
                    "could not be taken by the others; it is kept"
                )
            if changed == 0:
                break
            _say(say, f"volume {order.volume}: round {round_} took {changed} state(s) from it")
        else:
            raise errors.ServiceUnavailable(
                f"volume {order.volume}: the copy on {order.doomed} still held newer states "
                f"after {_PROOF_ROUNDS} rounds; it is kept for now"
            )
        _say(say, order.describe())
        await self.admin.send(order.doomed, DeleteVolume(order.volume))
        return TrimDone(order, pulled)


def _int(answer: dict[str, Any], name: str) -> int:
    value = answer.get(name, 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _say(say: Say | None, line: str) -> None:
    if say is not None:
        say(line)
