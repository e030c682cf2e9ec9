"""security.toml, found and read the way `weed` finds and reads it (spec §10.1), into a frozen
`SecuritySettings`.

Where: the first `security.toml` in `-config_dir` (when given), the working directory,
`~/.seaweedfs/`, `/usr/local/etc/seaweedfs/`, `/etc/seaweedfs/`. No file at all is no error: every
setting keeps its default (security off).

What weedpy reads (names are matched without regard to case, as weed's viper does):

| key | type | default | environment |
|---|---|---|---|
| `jwt.signing.key` | string | `""` (off) | `WEED_JWT_SIGNING_KEY` |
| `jwt.signing.expires_after_seconds` | integer | 10 | `WEED_JWT_SIGNING_EXPIRES_AFTER_SECONDS` |
| `jwt.signing.read.key` | string | `""` (off) | `WEED_JWT_SIGNING_READ_KEY` |
| `jwt.signing.read.expires_after_seconds` | integer | 60 | `WEED_JWT_SIGNING_READ_EXPIRES_AFTER_SECONDS` |
| `guard.white_list` | string, comma-separated (or an array of strings) | `""` | `WEED_GUARD_WHITE_LIST` |
| `access.ui` | boolean | false | `WEED_ACCESS_UI` |
| `https.master.cert`, `.key`, `.ca` | strings (PEM file paths) | `""` (plain HTTP) | `WEED_HTTPS_MASTER_CERT`... |
| `https.volume.cert`, `.key`, `.ca` | strings | `""` | `WEED_HTTPS_VOLUME_CERT`... |
| `https.client.enabled`, `.insecure_skip_verify` | booleans | false | `WEED_HTTPS_CLIENT_ENABLED`... |
| `https.client.ca`, `.cert`, `.key` | strings | `""` | `WEED_HTTPS_CLIENT_CA`... |

A `WEED_<KEY>` variable (dots become underscores, upper case) that is set and not empty wins
over the file. Other sections (grpc, filer, s3, admin, cors...) configure programs weedpy does
not have and are not read.

Fail closed: where weed logs a warning and starts without security, or quietly reads a bad value
as zero, weedpy raises `SecurityConfigError` naming the file and the key — a file that is not
TOML or cannot be read, a value of the wrong type, an unknown key inside a section weedpy reads
(a typo such as `kye = ...` would otherwise leave writes open), a white-list entry that is not
an IP address or CIDR, a certificate without its key. The CLI prints that one line and exits.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seaweed_py.formats.config_file import SEARCH_DIRS, find_config_file, read_config_file
from seaweed_py.security.guard import network, split_entries
from seaweed_py.security.tokens import JwtKeys

__all__ = [
    "FILE_NAME",
    "SEARCH_DIRS",
    "ClientTls",
    "SecurityConfigError",
    "SecuritySettings",
    "SecuritySource",
    "ServerTls",
]

FILE_NAME = "security.toml"

# The sections weedpy reads and the keys each may hold (a table inside a section is a key too).
_KNOWN: Mapping[tuple[str, ...], frozenset[str]] = {
    ("jwt", "signing"): frozenset({"key", "expires_after_seconds", "read"}),
    ("jwt", "signing", "read"): frozenset({"key", "expires_after_seconds"}),
    ("guard",): frozenset({"white_list"}),
    ("access",): frozenset({"ui"}),
    ("https", "master"): frozenset({"cert", "key", "ca"}),
    ("https", "volume"): frozenset({"cert", "key", "ca"}),
    ("https", "client"): frozenset({"enabled", "cert", "key", "ca", "insecure_skip_verify"}),
}
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


class SecurityConfigError(ValueError):
    """security.toml (or a file it names, or a `WEED_*` variable) cannot be used as it is."""


@dataclass(frozen=True, slots=True)
class ServerTls:
    """`[https.master]` or `[https.volume]`: the server's certificate and key, and the CA that
    must have signed its clients' certificates (mutual TLS) when `ca` is set."""

    cert: str
    key: str
    ca: str = ""
    section: str = "https"
    """Where it was configured (`https.master`), for messages."""


@dataclass(frozen=True, slots=True)
class ClientTls:
    """`[https.client]`: how weedpy's clients reach the servers of the cluster."""

    enabled: bool = False
    ca: str = ""
    cert: str = ""
    key: str = ""
    insecure_skip_verify: bool = False

    @property
    def scheme(self) -> str:
        return "https" if self.enabled else "http"


@dataclass(frozen=True, slots=True)
class SecuritySettings:
    """Everything security.toml says to weedpy. The defaults are "security off"."""

    keys: JwtKeys = field(default_factory=JwtKeys)
    white_list: tuple[str, ...] = ()
    """`guard.white_list`, merged by the servers with their `-whiteList`."""
    access_ui: bool = False
    """Serve the volume server's UI page even with a signing key set."""
    https_master: ServerTls | None = None
    https_volume: ServerTls | None = None
    https_client: ClientTls = field(default_factory=ClientTls)
    source: str = ""
    """The file read; "" when none was found (defaults and environment only)."""

    def describe(self) -> str:
        return self.source or "no security.toml found"


@dataclass(frozen=True)
class SecuritySource:
    """Where settings come from: `load()` reads them now (at start, and again on SIGHUP)."""

    config_dir: str = ""
    env: Mapping[str, str] = field(default_factory=lambda: os.environ)
    search_dirs: tuple[str, ...] = SEARCH_DIRS

    def find(self) -> Path | None:
        """The security.toml that is read: the first one in the search order."""
        return find_config_file(FILE_NAME, self.config_dir, self.search_dirs, fail_closed=True)

    def load(self) -> SecuritySettings:
        path = self.find()
        document: dict[str, Any] = {}
        if path is not None:
            document = _read(path)
        where = str(path) if path is not None else "the environment"
        return _Reader(document, self.env, where).settings(str(path or ""))

    def reload(self, current: SecuritySettings) -> SecuritySettings:
        """`load()` for a running server: a file that was read at start and cannot be found now
        is an error too, so that a moment without the file never opens the server."""
        settings = self.load()
        if current.source and not settings.source:
            raise SecurityConfigError(f"{current.source} is no longer there")
        return settings


def _read(path: Path) -> dict[str, Any]:
    return read_config_file(path, SecurityConfigError)


class _Reader:
    """Typed values out of a parsed security.toml, each overridden by its `WEED_*` variable."""

    def __init__(self, document: Mapping[str, Any], env: Mapping[str, str], where: str) -> None:
        self._where = where
        self._env = env
        self._doc = self._lowered(document, ())
        for section, allowed in _KNOWN.items():
            table = self._table(section)
            unknown = sorted(set(table) - allowed)
            if unknown:
                names = ", ".join(".".join((*section, k)) for k in unknown)
                raise SecurityConfigError(f"{where}: unknown key {names}")

    def settings(self, source: str) -> SecuritySettings:
        return SecuritySettings(
            keys=JwtKeys(
                signing_key=self._string("jwt.signing.key").encode(),
                expires_after_seconds=self._int("jwt.signing.expires_after_seconds", 10),
                read_key=self._string("jwt.signing.read.key").encode(),
                read_expires_after_seconds=self._int("jwt.signing.read.expires_after_seconds", 60),
            ),
            white_list=self._white_list("guard.white_list"),
            access_ui=self._bool("access.ui"),
            https_master=self._server_tls("https.master"),
            https_volume=self._server_tls("https.volume"),
            https_client=self._client_tls(),
            source=source,
        )

    # -- the document ---------------------------------------------------------------------

    def _lowered(self, table: Mapping[str, Any], at: tuple[str, ...]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in table.items():
            low = key.lower()
            if low in out:
                raise SecurityConfigError(f"{self._where}: {'.'.join((*at, low))} given twice")
            out[low] = self._lowered(value, (*at, low)) if isinstance(value, dict) else value
        return out

    def _table(self, path: tuple[str, ...]) -> Mapping[str, Any]:
        node: dict[str, Any] = self._doc
        for depth, part in enumerate(path, 1):
            child = node.get(part)
            if child is None:
                return {}
            if not isinstance(child, dict):
                where = ".".join(path[:depth])
                raise SecurityConfigError(f"{self._where}: {where} must be a table")
            node = child
        return node

    def _raw(self, key: str) -> tuple[object, str]:
        """(value, where it came from) of a dotted key; None when unset."""
        variable = "WEED_" + key.replace(".", "_").upper()
        from_env = self._env.get(variable, "")
        if from_env:
            return from_env, variable
        *section, name = key.split(".")
        return self._table(tuple(section)).get(name), f"{self._where}: {key}"

    # -- typed values ---------------------------------------------------------------------

    def _string(self, key: str) -> str:
        value, where = self._raw(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise SecurityConfigError(f"{where} must be a string, not {_kind(value)}")
        return value

    def _int(self, key: str, default: int) -> int:
        value, where = self._raw(key)
        if value is None:
            return default
        if isinstance(value, str):
            text = value.strip()
            if text.lstrip("+-").isdigit() and text.isascii():
                return int(text)
        elif isinstance(value, int) and not isinstance(value, bool):
            return value
        raise SecurityConfigError(f"{where} must be a whole number of seconds, not {value!r}")

    def _bool(self, key: str) -> bool:
        value, where = self._raw(key)
        if value is None:
            return False
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value in _TRUE | _FALSE:
            return value in _TRUE
        raise SecurityConfigError(f"{where} must be true or false, not {value!r}")

    def _white_list(self, key: str) -> tuple[str, ...]:
        value, where = self._raw(key)
        if value is None:
            return ()
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            entries: str | Iterable[str] = value
        elif isinstance(value, str):
            entries = value
        else:
            raise SecurityConfigError(f"{where} must be a string of IPs and CIDRs")
        kept = split_entries(entries)
        for entry in kept:
            try:
                network(entry)
            except ValueError:
                raise SecurityConfigError(
                    f"{where}: {entry!r} is not an IP address or CIDR"
                ) from None
        return kept

    def _server_tls(self, section: str) -> ServerTls | None:
        cert = self._string(f"{section}.cert")
        key = self._string(f"{section}.key")
        ca = self._string(f"{section}.ca")
        if not (cert or key or ca):
            return None
        if not (cert and key):
            raise SecurityConfigError(
                f"{self._where}: [{section}] needs both cert and key to serve HTTPS"
            )
        return ServerTls(cert, key, ca, section)

    def _client_tls(self) -> ClientTls:
        cert = self._string("https.client.cert")
        key = self._string("https.client.key")
        if bool(cert) != bool(key):
            raise SecurityConfigError(
                f"{self._where}: [https.client] needs both cert and key, or neither"
            )
        return ClientTls(
            enabled=self._bool("https.client.enabled"),
            ca=self._string("https.client.ca"),
            cert=cert,
            key=key,
            insecure_skip_verify=self._bool("https.client.insecure_skip_verify"),
        )


def _kind(value: object) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", list: "a list"}.get(
        type(value), type(value).__name__
    )
