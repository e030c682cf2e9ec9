"""Replica placement codes `xyz` (spec §5.1) and their one-byte superblock form.

| digit | field | extra copies placed |
|---|---|---|
| x | diff_data_center | each in another data center |
| y | diff_rack | on other racks of the main copy's data center |
| z | same_rack | on other servers of the main copy's rack |

Copies = x + y + z + 1. The superblock byte is `100x + 10y + z`, so it must stay ≤ 255 (x ≤ 2).
Strings are left-padded with `0` to three characters (`""` → `000`, `1` → `001`).

The reference also accepts any character at or above `'0'` as a "digit" (`":"` counts ten) and
ignores characters after the third; we accept only ASCII digits and at most three of them, so a
typo is an error instead of a different placement.
"""

from __future__ import annotations

from dataclasses import dataclass

from seaweed_py.errors import InvalidReplicaPlacement

__all__ = ["ReplicaPlacement"]


@dataclass(frozen=True, slots=True)
class ReplicaPlacement:
    diff_data_center: int = 0
    diff_rack: int = 0
    same_rack: int = 0

    def __post_init__(self) -> None:
        digits = (self.diff_data_center, self.diff_rack, self.same_rack)
        if any(not 0 <= d <= 9 for d in digits) or self.to_byte() > 255:
            raise InvalidReplicaPlacement(f"replica placement out of range: {digits}")

    @classmethod
    def parse(cls, text: str) -> ReplicaPlacement:
        """Parse `xyz` (shorter strings are left-padded with zeros; surrounding spaces ignored)."""
        cached = _PARSED.get(text)
        if cached is not None:
            return cached
        t = text.strip()
        if len(t) > 3 or not (t.isascii() and (t.isdigit() or t == "")):
            raise InvalidReplicaPlacement(f"unknown replication type: {text!r}")
        t = t.rjust(3, "0")
        value = int(t)
        if value > 255:
            raise InvalidReplicaPlacement(f"unexpected replication type: {text!r}")
        return cls(int(t[0]), int(t[1]), int(t[2]))

    @classmethod
    def from_byte(cls, value: int) -> ReplicaPlacement:
        """Decode the superblock byte `100x + 10y + z`."""
        if not 0 <= value <= 255:
            raise InvalidReplicaPlacement(f"replica placement byte out of range: {value}")
        return cls(value // 100, (value // 10) % 10, value % 10)

    def to_byte(self) -> int:
        return self.diff_data_center * 100 + self.diff_rack * 10 + self.same_rack

    @property
    def copy_count(self) -> int:
        return self.diff_data_center + self.diff_rack + self.same_rack + 1

    def __str__(self) -> str:
        return f"{self.diff_data_center}{self.diff_rack}{self.same_rack}"


# Every valid code, so hot paths (assign, heartbeats) parse by lookup.
_PARSED: dict[str, ReplicaPlacement] = {}
for _b in range(256):
    _rp = ReplicaPlacement.from_byte(_b)
    _PARSED[str(_rp)] = _rp
for _short in ("", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9"):
    _PARSED[_short] = ReplicaPlacement.parse(_short.rjust(3, "0"))
for _b in range(100):
    _PARSED[f"{_b:02d}"] = ReplicaPlacement.from_byte(_b)
del _b, _rp, _short
