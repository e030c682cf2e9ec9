"""What one tiering command did to one volume (`client/tiering.py`, `client/tier_vacuum.py`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Say", "TierReport"]

Say = Callable[[str], None]
"""Where a command's progress lines go (the shell's output)."""


@dataclass
class TierReport:
    """What one tiering command did to one volume."""

    volume_id: int
    collection: str = ""
    source: str = ""
    backend: str = ""
    key: str = ""
    size: int = 0
    seconds: float = 0.0
    replicas: list[str] = field(default_factory=list)
    """The other holders, now mounted on the object (upload) or local again (download)."""
    already: bool = False
    """Nothing had to move: the volume already was where it was asked to go."""
    reclaimed: int = 0
    """Bytes a vacuum took off the volume."""

    def to_json(self) -> dict[str, Any]:
        return {
            "volumeId": self.volume_id,
            "collection": self.collection,
            "source": self.source,
            "backend": self.backend,
            "key": self.key,
            "size": self.size,
            "seconds": round(self.seconds, 3),
            "replicas": self.replicas,
            "already": self.already,
            "reclaimed": self.reclaimed,
        }
