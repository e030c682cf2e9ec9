"""The master's durable counters in `-mdir`: the file-key reservation mark and the max volume id.

File `<mdir>/weedpy_master.json`:

    {"maxFileKey": 120000, "maxVolumeId": 7, "topologyId": "0b6f…"}

`maxFileKey` is the sequencer's reserved mark (every key below it may have been handed out),
`maxVolumeId` the highest volume id ever allocated, `topologyId` a UUID made on first start.
Each save writes a temp file, fsyncs it, renames it over the old one and fsyncs the directory,
so a crash leaves either the old or the new counters, never a torn file, and a counter is on
disk before any id that depends on it is handed out.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import orjson

__all__ = ["META_FILE", "MasterMeta", "MetaStore"]

META_FILE = "weedpy_master.json"


@dataclass(frozen=True, slots=True)
class MasterMeta:
    max_file_key: int = 0
    max_volume_id: int = 0
    topology_id: str = ""


class MetaStore:
    """Loads and durably saves `MasterMeta` in one directory."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.path = self.directory / META_FILE
        self._current = MasterMeta()

    @property
    def current(self) -> MasterMeta:
        return self._current

    def load(self) -> MasterMeta:
        """Read the counters (a new topology id is made and saved on first start)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            raw = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            raw = {}
        except orjson.JSONDecodeError as exc:
            raise ValueError(
                f"{self.path}: not valid JSON ({exc}); refusing to reuse ids"
            ) from None
        meta = MasterMeta(
            max_file_key=int(raw.get("maxFileKey", 0)),
            max_volume_id=int(raw.get("maxVolumeId", 0)),
            topology_id=str(raw.get("topologyId", "")),
        )
        if not meta.topology_id:
            meta = replace(meta, topology_id=str(uuid.uuid4()))
            self.save(meta)
        self._current = meta
        return meta

    def save_file_key(self, mark: int) -> None:
        self.save(replace(self._current, max_file_key=mark))

    def save_volume_id(self, vid: int) -> None:
        self.save(replace(self._current, max_volume_id=vid))

    def save(self, meta: MasterMeta) -> None:
        body = orjson.dumps(
            {
                "maxFileKey": meta.max_file_key,
                "maxVolumeId": meta.max_volume_id,
                "topologyId": meta.topology_id,
            }
        )
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dfd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        self._current = meta
