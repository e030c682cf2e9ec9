"""One S3-compatible bucket, through obstore (Rust `object_store`): the calls tiering makes.

    store = S3Backend(settings)
    store.upload_file(key, path, progress)     # multipart above 64 MiB, 4 parts in flight
    store.read_range(key, offset, length)      # one ranged GET
    store.read_ranges(key, spans)              # one GET per span, up to 10 concurrently
    store.download_file(key, path, progress)   # ranged GETs of 64 MiB into a positional file
    store.head(key), store.delete(key), store.list(prefix), store.put_bytes(key, data)

Why obstore (issue 15, measured there): 1,436 range GET/s at 235 µs of client CPU each against
326/s for aiobotocore and 369/s for boto3 in threads. Its calls are blocking here (storage/ does
no asyncio); obstore releases the GIL while it waits, so the volume server runs them in worker
threads.

Every failure is a `RemoteStorageError` (502) whose message is one line: the operation, the
backend name and key, and what the store said (its S3 error code or the transport's reason),
never a credential. `requests` counts the HTTP requests made (GETs of `read_*` and `download`
one per span), which `/metrics` reports and the tests use to see coalescing.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final, cast

from seaweed_py.errors import NotFound, RemoteStorageError
from seaweed_py.storage.backend.settings import S3Settings

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig, S3Config

__all__ = ["ObjectInfo", "S3Backend"]

log = logging.getLogger(__name__)

# weed's s3manager starts at 64 MiB parts (tiering spec §3); object_store keeps that many
# bytes in memory per part in flight, so 4 in flight bound an upload to 256 MiB of buffers.
UPLOAD_PART_SIZE: Final = 64 << 20
UPLOAD_CONCURRENCY: Final = 4
DOWNLOAD_PART_SIZE: Final = 64 << 20
_CONNECT_TIMEOUT: Final = timedelta(seconds=5)
_REQUEST_TIMEOUT: Final = timedelta(seconds=120)
_RETRIES: Final = 3
_RETRY_TIMEOUT: Final = timedelta(seconds=30)
_S3_CODE = re.compile(r"<Code>([A-Za-z0-9.]+)</Code>")
_STATUS = re.compile(r"status code: (\d{3}[^:\n]*)")


class ObjectInfo:
    """What `head` and `list` tell of one object."""

    __slots__ = ("key", "modified", "size")

    def __init__(self, key: str, size: int, modified: float) -> None:
        self.key = key
        self.size = size
        self.modified = modified

    def __repr__(self) -> str:
        return f"ObjectInfo({self.key!r}, size={self.size})"


class S3Backend:
    """A bucket (and key prefix) of one `S3Settings`. Thread-safe: one obstore client serves
    every thread."""

    def __init__(self, settings: S3Settings, *, user_agent: str = "weedpy") -> None:
        from obstore.store import S3Store  # the server extra; imported where tiering is used

        self.settings = settings
        self.name = settings.name
        config: S3Config = {
            "region": settings.region,
            "virtual_hosted_style_request": not settings.force_path_style,
        }
        if settings.endpoint:
            config["endpoint"] = settings.endpoint
        if settings.access_key:
            config["access_key_id"] = settings.access_key
            config["secret_access_key"] = settings.secret_key
        options: ClientConfig = {
            "connect_timeout": _CONNECT_TIMEOUT,
            "timeout": _REQUEST_TIMEOUT,
            "user_agent": user_agent,
            "allow_http": settings.endpoint.startswith("http://"),
        }
        retry: RetryConfig = {"max_retries": _RETRIES, "retry_timeout": _RETRY_TIMEOUT}
        try:
            self._store = S3Store(
                settings.bucket, config=config, client_options=options, retry_config=retry
            )
        except Exception as exc:  # obstore's configuration errors
            raise RemoteStorageError(self._reason("configure", "", exc)) from None
        self._count = itertools.count()
        self._counted = 0
        self._count_lock = threading.Lock()

    @property
    def requests(self) -> int:
        """HTTP requests made so far (reads, writes, heads, lists, deletes)."""
        return self._counted

    def _counting(self, n: int = 1) -> None:
        with self._count_lock:
            self._counted += n

    # ------------------------------------------------------------------ reads

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        """`length` bytes at `offset` of `key` (one ranged GET); fewer only past the end."""
        import obstore

        if length <= 0:
            return b""
        self._counting()
        try:
            got = obstore.get_range(self._store, key, start=offset, length=length)
        except Exception as exc:
            raise self._error("read", key, exc, offset=offset) from None
        return bytes(got)

    def read_ranges(self, key: str, spans: Sequence[tuple[int, int]]) -> list[bytes]:
        """The bytes of each (offset, length) span, one GET per span (obstore runs up to ten
        at once); callers merge neighbouring spans first (`coalesce`)."""
        import obstore

        todo = [(o, n) for o, n in spans if n > 0]
        if not todo:
            return [b"" for _ in spans]
        self._counting(len(todo))
        try:
            got = obstore.get_ranges(
                self._store,
                key,
                starts=[o for o, _ in todo],
                lengths=[n for _, n in todo],
                coalesce=0,
            )
        except Exception as exc:
            raise self._error("read", key, exc, offset=todo[0][0]) from None
        out = iter(bytes(b) for b in got)
        return [next(out) if n > 0 else b"" for _, n in spans]

    def read_object(self, key: str) -> bytes:
        """The whole (small) object `key`: a sidecar `.idx` or `.vif`."""
        import obstore

        self._counting()
        try:
            return bytes(obstore.get(self._store, key).bytes())
        except Exception as exc:
            raise self._error("read", key, exc) from None

    def head(self, key: str) -> ObjectInfo:
        import obstore

        self._counting()
        try:
            meta = obstore.head(self._store, key)
        except Exception as exc:
            raise self._error("head", key, exc) from None
        return ObjectInfo(meta["path"], int(meta["size"]), meta["last_modified"].timestamp())

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object whose key starts with `prefix` (`list_objects_v2`, paged)."""
        import obstore

        try:
            for page in obstore.list(self._store, prefix=prefix or None):
                self._counting()
                for meta in page:
                    yield ObjectInfo(
                        meta["path"], int(meta["size"]), meta["last_modified"].timestamp()
                    )
        except Exception as exc:
            raise self._error("list", prefix, exc) from None

    # ------------------------------------------------------------------ writes

    def put_bytes(self, key: str, data: bytes) -> None:
        import obstore

        self._counting()
        try:
            obstore.put(self._store, key, data, use_multipart=False, attributes=self._attributes())
        except Exception as exc:
            raise self._error("upload", key, exc) from None

    def upload_file(
        self, key: str, path: Path, progress: Callable[[int], None] | None = None
    ) -> int:
        """Upload the file at `path` as `key` (multipart above one part); the bytes sent. The
        size is taken at open: the file must not change meanwhile (a sealed `.dat`)."""
        import obstore

        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            reader = _Counting(f, progress)
            parts = max(1, -(-size // UPLOAD_PART_SIZE))
            self._counting(1 if parts == 1 else parts + 2)
            try:
                obstore.put(
                    self._store,
                    key,
                    cast(IO[bytes], reader),
                    use_multipart=size > UPLOAD_PART_SIZE,
                    chunk_size=UPLOAD_PART_SIZE,
                    max_concurrency=UPLOAD_CONCURRENCY,
                    attributes=self._attributes(),
                )
            except Exception as exc:
                raise self._error("upload", key, exc) from None
        return size

    def download_file(
        self, key: str, path: Path, size: int, progress: Callable[[int], None] | None = None
    ) -> None:
        """Write the first `size` bytes of `key` into a new file at `path` (ranged GETs of 64
        MiB, several at once, each written in place), then fsync it. A short object raises."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.ftruncate(fd, size)
            spans = [
                (o, min(DOWNLOAD_PART_SIZE, size - o)) for o in range(0, size, DOWNLOAD_PART_SIZE)
            ]
            for batch in _batches(spans, UPLOAD_CONCURRENCY):
                for (offset, length), data in zip(batch, self.read_ranges(key, batch), strict=True):
                    if len(data) != length:
                        raise RemoteStorageError(
                            f"download of {self.name}/{key} is short: {len(data)} of {length} "
                            f"bytes at offset {offset}"
                        )
                    view = memoryview(data)
                    pos = offset
                    while view:
                        n = os.pwrite(fd, view, pos)
                        view, pos = view[n:], pos + n
                    if progress is not None:
                        progress(length)
            os.fsync(fd)
        finally:
            os.close(fd)

    def delete(self, key: str) -> None:
        import obstore

        self._counting()
        try:
            obstore.delete(self._store, key)
        except Exception as exc:
            err = self._error("delete", key, exc)
            if isinstance(err, NotFound):
                return
            raise err from None

    def _attributes(self) -> dict[str, str] | None:
        """`x-amz-storage-class` of uploads (weed sends its configured class too)."""
        storage_class = self.settings.storage_class
        return {"Storage-Class": storage_class} if storage_class else None

    # ------------------------------------------------------------------ errors

    def _error(
        self, op: str, key: str, exc: BaseException, *, offset: int | None = None
    ) -> RemoteStorageError | NotFound:
        reason = self._reason(op, key, exc, offset)
        if isinstance(exc, FileNotFoundError):
            return NotFound(reason)
        return RemoteStorageError(reason)

    def _reason(self, op: str, key: str, exc: BaseException, offset: int | None = None) -> str:
        """One line: what failed, where, and the store's short reason (never a secret)."""
        text = str(exc)
        code = _S3_CODE.search(text)
        status = _STATUS.search(text)
        if code is not None:
            why = code.group(1) + (f" ({status.group(1).strip()})" if status else "")
        elif status is not None:
            why = status.group(1).strip()
        else:
            why = text.splitlines()[0] if text else type(exc).__name__
            why = why.split(" - ")[-1][:200]
        at = f" at offset {offset}" if offset is not None else ""
        line = f"{op} {self.name}/{key}{at} failed: {why}"
        for secret in self.settings.secrets():
            line = line.replace(secret, "***")
        return line


class _Counting:
    """A binary file that reports how many bytes were read from it (upload progress)."""

    def __init__(self, f: IO[bytes], progress: Callable[[int], None] | None) -> None:
        self._f = f
        self._progress = progress

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        if data and self._progress is not None:
            self._progress(len(data))
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()


def _batches(items: Sequence[tuple[int, int]], size: int) -> Iterator[Sequence[tuple[int, int]]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
