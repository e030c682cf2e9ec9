"""Where tiered volumes go: the S3 settings of one volume server, from its environment and from
a SeaweedFS `master.toml` (tiering spec §1), into frozen `S3Settings` by backend name.

| setting | environment (first set wins) | master.toml `[storage.backend.s3.<id>]` |
|---|---|---|
| endpoint | `WEEDPY_S3_ENDPOINT`, `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL` | `endpoint` (`""`: AWS) |
| access key | `WEEDPY_S3_ACCESS_KEY`, `AWS_ACCESS_KEY_ID` | `aws_access_key_id` |
| secret key | `WEEDPY_S3_SECRET_KEY`, `AWS_SECRET_ACCESS_KEY` | `aws_secret_access_key` |
| bucket | `WEEDPY_S3_BUCKET` | `bucket` |
| region | `WEEDPY_S3_REGION`, `AWS_REGION`, `AWS_DEFAULT_REGION` | `region` (`us-east-1` when unset) |
| prefix | `WEEDPY_S3_PREFIX` | `prefix` (weedpy's; weed has none) |
| storage class | | `storage_class` (`STANDARD_IA` as weed; `STANDARD` for the environment's) |
| path-style requests | | `force_path_style` (true) |

The `WEEDPY_S3_*` variables configure the backend `s3.default` (`-dest=s3`); they win over the
same key of master.toml's `s3.default`, and `WEEDPY_S3_BUCKET` alone is enough to define it.
`AWS_*` variables only fill what neither names (credentials, region, endpoint), as the AWS SDK
chain of weed's volume servers does. master.toml is searched like security.toml: `-config_dir`,
`.`, `~/.seaweedfs`, `/usr/local/etc/seaweedfs`, `/etc/seaweedfs`; only tables with
`enabled = true` count, each key can be overridden by `WEED_STORAGE_BACKEND_S3_<ID>_<KEY>` as
weed's viper does, and other sections of the file are not read. In weed only the master reads
the file and hands the secrets to volume servers over gRPC; in weedpy each volume server reads
its own (docs/compat.md), so no secret travels between servers.

Nothing configured is no error: the server serves its local volumes, and a tiering command
fails with one line naming the variables to set. A setting that cannot be used (no bucket, an
endpoint that is not an http(s) URL, half a key pair, a key of master.toml weedpy does not know,
a file that is not TOML) raises `BackendConfigError`, one line, at start. Secrets never appear
in `repr`, `describe()` or any message.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from seaweed_py.formats.config_file import SEARCH_DIRS, find_config_file, read_config_file

__all__ = [
    "DEFAULT_BACKEND",
    "FILE_NAME",
    "BackendConfigError",
    "BackendSource",
    "S3Settings",
    "backend_name",
]

FILE_NAME = "master.toml"
DEFAULT_BACKEND = "s3.default"
_DEFAULT_REGION = "us-east-1"
_TOML_KEYS = frozenset(
    {
        "enabled",
        "aws_access_key_id",
        "aws_secret_access_key",
        "region",
        "bucket",
        "endpoint",
        "storage_class",
        "force_path_style",
        "prefix",
    }
)
_ENV_KEYS = ("ENDPOINT", "ACCESS_KEY", "SECRET_KEY", "BUCKET", "REGION", "PREFIX")
# S3's rules for bucket names (path-style requests also take upper case and `_`, as MinIO
# and weed's gateway do; AWS itself would refuse them with a clear error).
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,254}")
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TRUE = frozenset({"1", "t", "true", "y", "yes", "on"})
_FALSE = frozenset({"0", "f", "false", "n", "no", "off"})


class BackendConfigError(ValueError):
    """A tiering setting cannot be used as it is; the message is one line, without secrets."""


def backend_name(text: str) -> str:
    """The canonical `<type>.<id>` of a destination: `s3` is `s3.default` (weed's
    `BackendNameToTypeId`); more than one dot, or a type other than s3, raises ValueError."""
    kind, dot, ident = text.partition(".")
    if not dot:
        ident = "default"
    if kind != "s3" or not _ID.fullmatch(ident):
        raise ValueError(f"{text!r} is not a backend name (s3, s3.default or s3.<id>)")
    return f"{kind}.{ident}"


@dataclass(frozen=True, slots=True)
class S3Settings:
    """One S3-compatible destination. `secret_key` is left out of `repr` and messages."""

    bucket: str
    backend_id: str = "default"
    endpoint: str = ""
    region: str = _DEFAULT_REGION
    access_key: str = ""
    secret_key: str = field(default="", repr=False)
    prefix: str = ""
    storage_class: str = ""
    force_path_style: bool = True
    source: str = "the environment"
    """Where it was configured, for messages (a file path or "the environment")."""

    @property
    def name(self) -> str:
        return f"s3.{self.backend_id}"

    def describe(self) -> str:
        """One line for logs: where the objects go, never the keys."""
        where = self.endpoint or "AWS"
        prefix = f", prefix {self.prefix}" if self.prefix else ""
        return f"{self.name}: bucket {self.bucket} at {where} (region {self.region}{prefix})"

    def secrets(self) -> tuple[str, ...]:
        """The values no output may show (tests grep for them)."""
        return tuple(s for s in (self.secret_key,) if s)


@dataclass(frozen=True)
class BackendSource:
    """Where the settings come from; `load()` reads them now."""

    config_dir: str = ""
    env: Mapping[str, str] = field(default_factory=lambda: os.environ)
    search_dirs: tuple[str, ...] = SEARCH_DIRS

    def find(self) -> Path | None:
        """The master.toml that is read: the first one in the search order."""
        return find_config_file(FILE_NAME, self.config_dir, self.search_dirs)

    def load(self) -> dict[str, S3Settings]:
        """Every configured backend by name (`s3.default`, `s3.<id>`); {} when none is."""
        path = self.find()
        tables = _s3_tables(_read(path), str(path)) if path is not None else {}
        found: dict[str, S3Settings] = {}
        for ident, table in sorted(tables.items()):
            settings = self._from_table(ident, table, str(path))
            if settings is not None:
                found[settings.name] = settings
        env_default = self._from_environment(tables.get("default"), str(path or ""))
        if env_default is not None:
            found[DEFAULT_BACKEND] = env_default
        return found

    # -- master.toml ------------------------------------------------------------------------

    def _from_table(self, ident: str, table: Mapping[str, Any], where: str) -> S3Settings | None:
        values = _Values(table, self.env, f"STORAGE_BACKEND_S3_{ident.upper()}", where, ident)
        if not values.boolean("enabled", False):
            return None
        if ident == "default" and self._env("WEEDPY_S3_BUCKET"):
            return None  # the environment's s3.default replaces it (load)
        return _settings(
            ident=ident,
            bucket=values.text("bucket"),
            endpoint=values.text("endpoint") or self._aws_endpoint(),
            region=values.text("region") or self._aws_region(),
            access_key=values.text("aws_access_key_id"),
            secret_key=values.text("aws_secret_access_key"),
            prefix=values.text("prefix"),
            storage_class=values.text("storage_class") or "STANDARD_IA",
            force_path_style=values.boolean("force_path_style", True),
            source=where,
            env=self.env,
        )

    # -- the environment ---------------------------------------------------------------------

    def _from_environment(self, table: Mapping[str, Any] | None, where: str) -> S3Settings | None:
        given = [k for k in _ENV_KEYS if self._env(f"WEEDPY_S3_{k}")]
        if not given:
            return None
        if "BUCKET" not in given:
            raise BackendConfigError(
                f"WEEDPY_S3_{given[0]} is set but WEEDPY_S3_BUCKET is not: name the bucket"
            )
        base = _Values(table or {}, self.env, "STORAGE_BACKEND_S3_DEFAULT", where, "default")
        use_table = table is not None and base.boolean("enabled", False)

        def pick(variable: str, key: str) -> str:
            return self._env(variable) or (base.text(key) if use_table else "")

        return _settings(
            ident="default",
            bucket=self._env("WEEDPY_S3_BUCKET"),
            endpoint=pick("WEEDPY_S3_ENDPOINT", "endpoint") or self._aws_endpoint(),
            region=pick("WEEDPY_S3_REGION", "region") or self._aws_region(),
            access_key=pick("WEEDPY_S3_ACCESS_KEY", "aws_access_key_id"),
            secret_key=pick("WEEDPY_S3_SECRET_KEY", "aws_secret_access_key"),
            prefix=pick("WEEDPY_S3_PREFIX", "prefix"),
            storage_class=(base.text("storage_class") if use_table else "") or "STANDARD",
            force_path_style=base.boolean("force_path_style", True) if use_table else True,
            source="the environment (WEEDPY_S3_*)",
            env=self.env,
        )

    def _env(self, name: str) -> str:
        return self.env.get(name, "").strip()

    def _aws_endpoint(self) -> str:
        return self._env("AWS_ENDPOINT_URL_S3") or self._env("AWS_ENDPOINT_URL")

    def _aws_region(self) -> str:
        return self._env("AWS_REGION") or self._env("AWS_DEFAULT_REGION") or _DEFAULT_REGION


def _settings(
    *,
    ident: str,
    bucket: str,
    endpoint: str,
    region: str,
    access_key: str,
    secret_key: str,
    prefix: str,
    storage_class: str,
    force_path_style: bool,
    source: str,
    env: Mapping[str, str],
) -> S3Settings:
    """Checked settings; the AWS_* pair fills credentials neither other place gives."""
    name = f"s3.{ident}"
    if not bucket:
        raise BackendConfigError(f"{source}: {name} names no bucket")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise BackendConfigError(f"{source}: {name}: {bucket!r} is not a bucket name")
    if endpoint:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
            raise BackendConfigError(
                f"{source}: {name}: endpoint {endpoint!r} is not an http:// or https:// URL"
            )
        try:
            parts.port  # noqa: B018 (a port that does not parse raises here)
        except ValueError:
            raise BackendConfigError(
                f"{source}: {name}: endpoint {endpoint!r} has a bad port"
            ) from None
        endpoint = endpoint.rstrip("/")
    if not access_key and not secret_key:
        access_key = env.get("AWS_ACCESS_KEY_ID", "").strip()
        secret_key = env.get("AWS_SECRET_ACCESS_KEY", "").strip()
    if bool(access_key) != bool(secret_key):
        missing = "secret key" if access_key else "access key"
        raise BackendConfigError(f"{source}: {name} has an access key pair without its {missing}")
    prefix = prefix.strip().lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    if any(c in prefix for c in "\r\n\\") or "//" in prefix:
        raise BackendConfigError(f"{source}: {name}: prefix {prefix!r} is not a key prefix")
    return S3Settings(
        bucket=bucket,
        backend_id=ident,
        endpoint=endpoint,
        region=region or _DEFAULT_REGION,
        access_key=access_key,
        secret_key=secret_key,
        prefix=prefix,
        storage_class=storage_class,
        force_path_style=force_path_style,
        source=source,
    )


def _read(path: Path) -> dict[str, Any]:
    return read_config_file(path, BackendConfigError)


def _s3_tables(document: Mapping[str, Any], where: str) -> dict[str, Mapping[str, Any]]:
    """The `[storage.backend.s3.<id>]` tables; another backend type is an error, as in weed
    (whose release binaries know only s3)."""
    storage = document.get("storage", {})
    backends = storage.get("backend", {}) if isinstance(storage, dict) else {}
    if not isinstance(backends, dict):
        raise BackendConfigError(f"{where}: storage.backend must be a table")
    tables: dict[str, Mapping[str, Any]] = {}
    for kind, by_id in backends.items():
        if kind != "s3":
            raise BackendConfigError(
                f"{where}: storage.backend.{kind}: only s3 backends are supported"
            )
        if not isinstance(by_id, dict):
            raise BackendConfigError(f"{where}: storage.backend.s3 must hold tables")
        for ident, table in by_id.items():
            if not isinstance(table, dict) or not _ID.fullmatch(ident):
                raise BackendConfigError(f"{where}: storage.backend.s3.{ident} is not a backend")
            unknown = sorted(set(table) - _TOML_KEYS)
            if unknown:
                raise BackendConfigError(
                    f"{where}: storage.backend.s3.{ident}: unknown key {', '.join(unknown)}"
                )
            tables[ident] = table
    return tables


class _Values:
    """Typed keys of one table, each overridable by `WEED_<SECTION>_<KEY>` (viper's rule)."""

    def __init__(
        self, table: Mapping[str, Any], env: Mapping[str, str], section: str, where: str, ident: str
    ) -> None:
        self._table = table
        self._env = env
        self._section = section
        self._where = where
        self._ident = ident

    def _raw(self, key: str) -> tuple[object, str]:
        variable = f"WEED_{self._section}_{key.upper()}"
        value = self._env.get(variable, "")
        if value:
            return value, variable
        return self._table.get(key), f"{self._where}: storage.backend.s3.{self._ident}.{key}"

    def text(self, key: str) -> str:
        value, where = self._raw(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise BackendConfigError(f"{where} must be a string")
        return value.strip()

    def boolean(self, key: str, default: bool) -> bool:
        value, where = self._raw(key)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise BackendConfigError(f"{where} must be true or false")
