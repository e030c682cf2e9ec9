"""Where `.dat` bytes live: a local file, or an object in an S3-compatible bucket (tiering).

| module | offers |
|---|---|
| `dat_file.py` | `DatFile` (the one "read at offset" interface the volume engine reads through), `LocalDatFile`, `RemoteDatFile`, `coalesce` |
| `s3.py` | `S3Backend`: ranged reads, multipart upload, download, head, list, delete (obstore) |
| `cache.py` | `RangeCache`: bounded LRU of hot byte ranges (`-tierCacheMB`) |
| `settings.py` | `S3Settings` from WEEDPY_S3_*/AWS_* and master.toml (`BackendSource`) |
| `layout.py` | object names of a tiered volume (data, `.idx`, `.vif` side by side) |

`Backends` holds one `S3Backend` per configured name (`s3.default`, `s3.<id>`), built when
first used (so a server whose bucket is unreachable still starts and serves its local volumes),
and the cache all remote files share.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from seaweed_py.errors import BackendNotFound, BadRequest
from seaweed_py.formats.vif import RemoteFile
from seaweed_py.storage.backend.cache import RangeCache
from seaweed_py.storage.backend.dat_file import DatFile, LocalDatFile, RemoteDatFile, coalesce
from seaweed_py.storage.backend.s3 import S3Backend
from seaweed_py.storage.backend.settings import (
    BackendConfigError,
    BackendSource,
    S3Settings,
    backend_name,
)

__all__ = [
    "BackendConfigError",
    "BackendSource",
    "Backends",
    "DatFile",
    "LocalDatFile",
    "RangeCache",
    "RemoteDatFile",
    "S3Backend",
    "S3Settings",
    "backend_name",
    "coalesce",
]

_HOW_TO = (
    "set WEEDPY_S3_BUCKET (and WEEDPY_S3_ENDPOINT, WEEDPY_S3_ACCESS_KEY, WEEDPY_S3_SECRET_KEY, "
    "WEEDPY_S3_REGION) or a [storage.backend.s3.default] table in master.toml"
)


class Backends:
    """The tiering destinations of one volume server."""

    def __init__(
        self,
        settings: Mapping[str, S3Settings] | None = None,
        *,
        cache_bytes: int = 0,
        user_agent: str = "weedpy",
    ) -> None:
        self.settings = dict(settings or {})
        self.cache = RangeCache(cache_bytes)
        self._user_agent = user_agent
        self._built: dict[str, S3Backend] = {}
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        return sorted(self.settings)

    def get(self, name: str) -> S3Backend:
        """The backend called `name` (`s3` means `s3.default`); `BackendNotFound` (400) if no
        setting names it, `BadRequest` for a name that is not one."""
        try:
            canonical = backend_name(name)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        settings = self.settings.get(canonical)
        if settings is None:
            if not self.settings:
                raise BackendNotFound(
                    f"destination {name} not found: no S3 backend is "
                    f"configured on this server; {_HOW_TO}"
                )
            raise BackendNotFound(
                f"destination {name} not found, configured: {', '.join(self.names)}"
            )
        with self._lock:
            built = self._built.get(canonical)
            if built is None:
                built = S3Backend(settings, user_agent=self._user_agent)
                self._built[canonical] = built
            return built

    def remote_file(self, remote: RemoteFile) -> RemoteDatFile:
        """The `.dat` a `.vif` `files` entry names, read through this server's cache."""
        store = self.get(f"{remote.backend_type}.{remote.backend_id}")
        return RemoteDatFile(store, remote.key.lstrip("/"), remote.file_size, self.cache)

    def requests(self) -> dict[str, int]:
        """Requests made so far by each backend in use."""
        with self._lock:
            return {name: b.requests for name, b in sorted(self._built.items())}

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for settings in self.settings.values() for s in settings.secrets())
