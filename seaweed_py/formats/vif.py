"""`.vif` volume info: protobuf `VolumeInfo` in protojson form (spec §4.11).

| JSON field | proto type | meaning |
|---|---|---|
| `files` | repeated RemoteFile | remote-tier copies of the `.dat` |
| `version` | uint32 | needle version |
| `replication` | string | replica placement; overrides the superblock when set |
| `bytesOffset` | uint32 | 4 or 5: the `.idx` offset width (0 = not recorded) |
| `datFileSize` | int64 (JSON string) | `.dat` size when tiered |
| `expireAtSec` | uint64 (JSON string) | TTL volumes: Unix time the volume expires |
| `readOnly` | bool | persisted `volume.mark -readonly` |
| `ecShardConfig` | message or null | erasure-coding layout (kept as given, we do not interpret it) |
| `readOnlyCanDelete` | bool | read-only that still accepts deletes |

RemoteFile: `backendType`, `backendId`, `key`, `extension` (strings); `offset`, `fileSize`,
`modifiedTime` (uint64, JSON strings).

Writing follows protojson with unpopulated fields emitted and 2-space indentation. Reading is
tolerant like protojson: 64-bit integers as strings or numbers, the proto's snake_case names as
well as the camelCase ones, unknown fields (such as the old `destroyTime`) ignored, and an empty
file meaning every default. Defaults are the protobuf zero values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from seaweed_py.errors import CorruptVolume

__all__ = ["RemoteFile", "VolumeInfo"]


@dataclass(frozen=True, slots=True)
class RemoteFile:
    backend_type: str = ""
    backend_id: str = ""
    key: str = ""
    offset: int = 0
    file_size: int = 0
    modified_time: int = 0
    extension: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "backendType": self.backend_type,
            "backendId": self.backend_id,
            "key": self.key,
            "offset": str(self.offset),
            "fileSize": str(self.file_size),
            "modifiedTime": str(self.modified_time),
            "extension": self.extension,
        }

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> RemoteFile:
        return cls(
            backend_type=_string(obj, "backendType", "backend_type"),
            backend_id=_string(obj, "backendId", "backend_id"),
            key=_string(obj, "key", "key"),
            offset=_integer(obj, "offset", "offset"),
            file_size=_integer(obj, "fileSize", "file_size"),
            modified_time=_integer(obj, "modifiedTime", "modified_time"),
            extension=_string(obj, "extension", "extension"),
        )


@dataclass(frozen=True, slots=True)
class VolumeInfo:
    version: int = 0
    replication: str = ""
    bytes_offset: int = 0
    dat_file_size: int = 0
    expire_at_sec: int = 0
    read_only: bool = False
    read_only_can_delete: bool = False
    files: tuple[RemoteFile, ...] = ()
    ec_shard_config: Mapping[str, Any] | None = None

    def to_json(self) -> str:
        """protojson text, every field emitted, 2-space indentation, trailing newline absent."""
        obj = {
            "files": [f.to_dict() for f in self.files],
            "version": self.version,
            "replication": self.replication,
            "bytesOffset": self.bytes_offset,
            "datFileSize": str(self.dat_file_size),
            "expireAtSec": str(self.expire_at_sec),
            "readOnly": self.read_only,
            "ecShardConfig": dict(self.ec_shard_config) if self.ec_shard_config else None,
            "readOnlyCanDelete": self.read_only_can_delete,
        }
        return json.dumps(obj, indent=2, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> VolumeInfo:
        """Parse a `.vif`; empty (or whitespace-only) text gives the defaults."""
        if not text.strip():
            return cls()
        try:
            obj = json.loads(text)
        except (ValueError, UnicodeDecodeError) as e:
            raise CorruptVolume(f"volume info is not JSON: {e}") from None
        if not isinstance(obj, dict):
            raise CorruptVolume("volume info is not a JSON object")
        try:
            files = obj.get("files")
            files = [] if files is None else files
            if not isinstance(files, list) or not all(isinstance(f, dict) for f in files):
                raise TypeError("files must be a list of objects")
            ec = _field(obj, "ecShardConfig", "ec_shard_config")
            if ec is not None and not isinstance(ec, dict):
                raise TypeError("ecShardConfig must be an object")
            return cls(
                version=_integer(obj, "version", "version"),
                replication=_string(obj, "replication", "replication"),
                bytes_offset=_integer(obj, "bytesOffset", "bytes_offset"),
                dat_file_size=_integer(obj, "datFileSize", "dat_file_size"),
                expire_at_sec=_integer(obj, "expireAtSec", "expire_at_sec"),
                read_only=_boolean(obj, "readOnly", "read_only"),
                read_only_can_delete=_boolean(obj, "readOnlyCanDelete", "read_only_can_delete"),
                files=tuple(RemoteFile.from_dict(f) for f in files),
                ec_shard_config=ec or None,
            )
        except (TypeError, ValueError) as e:
            raise CorruptVolume(f"volume info has a bad field: {e}") from None


def _field(obj: Mapping[str, Any], camel: str, snake: str) -> Any:
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _integer(obj: Mapping[str, Any], camel: str, snake: str) -> int:
    value = _field(obj, camel, snake)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"{camel} must be an integer, got {value!r}")
    if isinstance(value, str) and not (value.isascii() and value.lstrip("-").isdigit()):
        raise ValueError(f"{camel} must be an integer, got {value!r}")
    return int(value)


def _string(obj: Mapping[str, Any], camel: str, snake: str) -> str:
    value = _field(obj, camel, snake)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError(f"{camel} must be a string, got {value!r}")
    return value


def _boolean(obj: Mapping[str, Any], camel: str, snake: str) -> bool:
    value = _field(obj, camel, snake)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise TypeError(f"{camel} must be true or false, got {value!r}")
    return value
