"""One exception tree for weedpy; each class knows its HTTP status.

    WeedError (500)
    ├── BadRequest (400)
    │   ├── InvalidFileId
    │   ├── InvalidTtl
    │   ├── InvalidReplicaPlacement
    │   ├── InvalidCollection       (a collection name outside formats/collection.py's rules)
    │   ├── InvalidChunkManifest    (manifest JSON that does not parse or names bad chunks)
    │   │   └── InvalidChunkFileId  (a chunk's fid does not parse; also an InvalidFileId)
    │   ├── BackendNotFound         (a tiering destination no S3 setting names)
    │   └── NotAMaster              (client side: the master address answers as a volume server)
    ├── Unauthorized (401)
    ├── NotFound (404)
    │   ├── VolumeNotFound
    │   └── NeedleNotFound          (unknown key, deleted, or wrong cookie on read)
    ├── MethodNotAllowed (405)      (carries Allow)
    ├── NotAcceptable (406)
    │   └── NoFreeSlots             (placement cannot be satisfied)
    ├── RequestTimeout (408)
    ├── Conflict (409)
    │   └── CookieMismatch          (write or delete with the wrong cookie)
    ├── PayloadTooLarge (413)
    ├── UriTooLong (414)
    ├── RangeNotSatisfiable (416)
    ├── ExpectationFailed (417)     (an `Expect` other than 100-continue)
    ├── TooManyRequests (429)       (the in-flight upload cap stayed full past the wait)
    ├── HeaderFieldsTooLarge (431)
    ├── ServiceUnavailable (503)
    │   ├── NoWritableVolume        (growth in progress; carries Retry-After)
    │   └── ServerUnreachable       (client side: no connection or no answer from a server)
    ├── ReplicationFailed (500)     (a replica did not store a write or delete)
    ├── StorageError (500)
    │   ├── CorruptNeedle           (bytes on disk fail a check; never served)
    │   ├── CorruptVolume
    │   ├── VolumeReadOnly
    │   ├── VolumeFull
    │   ├── DiskFull (507)          (ENOSPC on append, and writes while the volume is read-only for it)
    │   ├── PathEscapesDirectory    (a volume file would resolve outside its data directory)
    │   └── RemoteStorageError (502) (the S3 store of a tiered volume failed or refused a call)
    └── StartupError                (a server cannot start: a setting names what; never served)
        ├── CannotListen            (the port is taken, or the address is not this host's)
        ├── DirectoryUnusable       (a -dir/-mdir is missing, not a directory, or not writable)
        └── DirectoryInUse          (another process holds a data directory's lock)

Only `httpkit` renders these: the body is `{"error": message, **extra}` with `status` and
`headers`. Keyword context (volume_id=7, offset=81920, ...) goes into the message so an error
says where it happened. A `StartupError` is never rendered: the CLI prints it as one line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = [
    "BackendNotFound",
    "BadRequest",
    "CannotListen",
    "Conflict",
    "CookieMismatch",
    "CorruptNeedle",
    "CorruptVolume",
    "DirectoryInUse",
    "DirectoryUnusable",
    "DiskFull",
    "ExpectationFailed",
    "HeaderFieldsTooLarge",
    "InvalidChunkFileId",
    "InvalidChunkManifest",
    "InvalidCollection",
    "InvalidFileId",
    "InvalidReplicaPlacement",
    "InvalidTtl",
    "MethodNotAllowed",
    "NeedleNotFound",
    "NoFreeSlots",
    "NoWritableVolume",
    "NotAMaster",
    "NotAcceptable",
    "NotFound",
    "PathEscapesDirectory",
    "PayloadTooLarge",
    "RangeNotSatisfiable",
    "RemoteStorageError",
    "ReplicationFailed",
    "RequestTimeout",
    "ServerUnreachable",
    "ServiceUnavailable",
    "StartupError",
    "StorageError",
    "TooManyRequests",
    "Unauthorized",
    "UriTooLong",
    "VolumeFull",
    "VolumeNotFound",
    "VolumeReadOnly",
    "WeedError",
    "error_for_status",
]


class WeedError(Exception):
    """Base of every error weedpy raises on purpose."""

    status: ClassVar[int] = 500

    def __init__(
        self,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
        **context: object,
    ) -> None:
        # A place left None is unknown to the raiser: it is not named.
        context = {k: v for k, v in context.items() if v is not None}
        if context:
            where = ", ".join(f"{k}={v}" for k, v in context.items())
            message = f"{message} ({where})"
        super().__init__(message)
        self.message = message
        self.context = context
        self.headers: dict[str, str] = dict(headers or {})
        self.extra: dict[str, Any] = dict(extra or {})

    def body(self) -> dict[str, Any]:
        """The JSON object sent to clients."""
        return {**self.extra, "error": self.message}


class BadRequest(WeedError):
    status = 400


class InvalidFileId(BadRequest):
    pass


class InvalidTtl(BadRequest):
    pass


class InvalidReplicaPlacement(BadRequest):
    pass


class InvalidCollection(BadRequest):
    """A collection name that is not a value `formats.collection.parse_collection` accepts."""


class NotAMaster(BadRequest):
    """Raised by clients: the address given as the master's answered as a volume server (the
    caller's configuration is wrong; no retry helps)."""


class Unauthorized(WeedError):
    status = 401


class NotFound(WeedError):
    status = 404


class VolumeNotFound(NotFound):
    pass


class NeedleNotFound(NotFound):
    pass


class NotAcceptable(WeedError):
    status = 406


class NoFreeSlots(NotAcceptable):
    pass


class RequestTimeout(WeedError):
    status = 408


class Conflict(WeedError):
    status = 409


class CookieMismatch(Conflict):
    pass


class PayloadTooLarge(WeedError):
    status = 413


class UriTooLong(WeedError):
    status = 414


class RangeNotSatisfiable(WeedError):
    status = 416


class TooManyRequests(WeedError):
    status = 429


class HeaderFieldsTooLarge(WeedError):
    status = 431


class ServiceUnavailable(WeedError):
    status = 503


class NoWritableVolume(ServiceUnavailable):
    pass


class StorageError(WeedError):
    status = 500


class CorruptNeedle(StorageError):
    pass


class CorruptVolume(StorageError):
    pass


class VolumeReadOnly(StorageError):
    pass


class VolumeFull(StorageError):
    pass


class ServerUnreachable(ServiceUnavailable):
    """Raised by clients (SDK, CLI, replication): a server refused the connection, reset it or
    did not answer in time, so whether it did the work is unknown."""


class MethodNotAllowed(WeedError):
    status = 405


class ExpectationFailed(WeedError):
    status = 417


class ReplicationFailed(WeedError):
    """A replicated write or delete did not reach every replica of the volume."""

    status = 500


class InvalidChunkManifest(BadRequest):
    pass


class DiskFull(StorageError):
    """The disk ran out of space during an append (nothing was kept), or the volume is still
    read-only because of that; it takes writes again once its disk has room."""

    status = 507


class PathEscapesDirectory(StorageError):
    """A file a volume would create or delete resolves outside its data directory (a symlink,
    or a name that slipped past the collection parser): refused before anything is touched."""


class StartupError(WeedError):
    """A server cannot start because of one of its settings.

    `setting` is the flag as the server's own command spells it, without the `-` and without
    the `master.`/`volume.` prefix `weedpy server` adds (`port`, `port.public`, `dir`, `mdir`);
    `flag` starts equal to it and a command that spells the flag otherwise renames it. `value`
    is what the setting was; the message says what is wrong with it. `str()` is the one line
    the CLI prints: `-dir /x/y: no such directory`."""

    def __init__(self, setting: str, value: object, reason: str) -> None:
        super().__init__(reason)
        self.setting = setting
        self.flag = setting
        self.value = value

    def __str__(self) -> str:
        return f"-{self.flag} {self.value}: {self.message}"


class CannotListen(StartupError):
    """The server cannot listen on its port: taken by another process, or an address that is
    not this host's."""


class DirectoryUnusable(StartupError):
    """A data or meta directory is missing, is not a directory, or cannot be written."""


class DirectoryInUse(StartupError):
    """Another process serves this data directory (it holds the directory's lock file)."""


class InvalidChunkFileId(InvalidChunkManifest, InvalidFileId):
    """A manifest chunk's fid is not a file id: a bad manifest and a bad fid alike, so callers
    catching either see it."""


_GENERAL = (
    BadRequest,
    Unauthorized,
    NotFound,
    MethodNotAllowed,
    NotAcceptable,
    RequestTimeout,
    Conflict,
    PayloadTooLarge,
    UriTooLong,
    RangeNotSatisfiable,
    ExpectationFailed,
    TooManyRequests,
    HeaderFieldsTooLarge,
    ServiceUnavailable,
    DiskFull,
)
_BY_STATUS: dict[int, type[WeedError]] = {cls.status: cls for cls in _GENERAL}
assert len(_BY_STATUS) == len(_GENERAL), "two classes claim one status"


def error_for_status(status: int) -> type[WeedError]:
    """The general class for an HTTP status another server answered (`BadRequest` for 400),
    to pass its error on with the same status; `WeedError` (500) for any other status. Calls to
    other servers read statuses through `client/http.py`'s `error_for`, which uses this."""
    return _BY_STATUS.get(status, WeedError)


class BackendNotFound(BadRequest):
    """A tiering destination (`-dest=s3.x`) or a tiered volume's backend that no configuration
    of this server names (WEEDPY_S3_*, AWS_*, master.toml's `[storage.backend.s3.<id>]`)."""


class RemoteStorageError(StorageError):
    """The object store behind a tiered volume failed a call (unreachable, refused the
    credentials, lost the object, answered short). The message is one line and never holds a
    secret."""

    status = 502
