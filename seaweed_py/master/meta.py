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

from seaweed_py.errors import StartupError
from seaweed_py.storage.directories import check_directory

__all__ = ["META_FILE", "MasterMeta", "MetaStore"]

META_FILE = "weedpy_master.json"


@dataclass(frozen=True, slots=True)
class MasterMeta:
    max_file_key: int = 0
    max_volume_id: int = 0
    topology_id: str = ""


class MetaStore:
    """Loads and durably saves `MasterMeta` in one directory. With `create` a missing
    directory is made (one level, as `weed master` makes a missing `-mdir`); without it, as
    `weed server` does, it is refused."""

    def __init__(self, directory: str | os.PathLike[str], *, create: bool = True) -> None:
        self.directory = Path(directory)
        self._create = create
        self.path = self.directory / META_FILE
        self._current = MasterMeta()

    @property
    def current(self) -> MasterMeta:
        return self._current

    def load(self) -> MasterMeta:
        """Read the counters (a new topology id is made and saved on first start). A
        directory that is missing (without `create`), not a directory or not writable raises
        `DirectoryUnusable`; a counters file that does not parse, `StartupError`: guessing
        would reissue ids."""
        check_directory(self.directory, "mdir", create=self._create)
        try:
            raw = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            raw = {}
        except (orjson.JSONDecodeError, OSError) as exc:
            raise self._unreadable(f"cannot be read ({exc})") from None
        try:
            meta = MasterMeta(
                max_file_key=_counter(raw, "maxFileKey"),
                max_volume_id=_counter(raw, "maxVolumeId"),
                topology_id=str(raw.get("topologyId", "")),
            )
        except (AttributeError, TypeError, ValueError) as exc:
            raise self._unreadable(f"is not what weedpy writes ({exc})") from None
        if not meta.topology_id:
            meta = replace(meta, topology_id=str(uuid.uuid4()))
            self.save(meta)
        self._current = meta
        return meta

    def _unreadable(self, why: str) -> StartupError:
        return StartupError("mdir", self.directory, f"{META_FILE} {why}; refusing to reuse ids")

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


def _counter(raw: dict[str, object], name: str) -> int:
    value = raw.get(name, 0)
    if type(value) is not int or value < 0:
        raise ValueError(f"{name} is {value!r}, not a counter")
    return value
