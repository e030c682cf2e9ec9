"""security.toml for the commands: the `-config_dir` flag, loading at start (fail closed), the
SIGHUP reload of running servers, and the SDK options of client commands.

    source, settings = load_security(values)        # SecurityConfigError stops the command
    server = MasterServer(replace(options, security=settings))
    return run_servers(server.start, server.stop, reloader(source, settings, [server]))

`weedpy -config_dir=DIR <command>` (weed's global spelling) and `weedpy <command>
-config_dir=DIR` are the same (cli/main.py moves the global one behind the command).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from seaweed_py.config.flags import FlagSet
from seaweed_py.security.settings import SecurityConfigError, SecuritySettings, SecuritySource
from seaweed_py.security.tls import client_context
from seaweed_py.storage.backend.settings import BackendSource, S3Settings

__all__ = [
    "add_config_dir_flag",
    "client_options",
    "load_backends",
    "load_security",
    "reloader",
]

log = logging.getLogger("seaweed_py.cli")


class Reloadable(Protocol):
    def reload_security(self, settings: SecuritySettings) -> None: ...


def add_config_dir_flag(fs: FlagSet) -> None:
    fs.add(
        "config_dir",
        "",
        "directory with security.toml (and master.toml for volume servers), searched before ., "
        "~/.seaweedfs/, "
        "/usr/local/etc/seaweedfs/ and /etc/seaweedfs/",
    )


def load_security(values: dict[str, Any]) -> tuple[SecuritySource, SecuritySettings]:
    """The settings in force at start; `SecurityConfigError` if they cannot be used."""
    source = SecuritySource(config_dir=str(values.get("config_dir") or ""))
    return source, source.load()


def load_backends(values: dict[str, Any]) -> dict[str, S3Settings]:
    """The S3 settings of a volume server (WEEDPY_S3_*, AWS_*, master.toml found like
    security.toml); `BackendConfigError` if they cannot be used."""
    return BackendSource(config_dir=str(values.get("config_dir") or "")).load()


def reloader(
    source: SecuritySource, settings: SecuritySettings, servers: Sequence[Reloadable]
) -> Callable[[], None]:
    """What SIGHUP runs: read security.toml again and hand it to every server. A load that
    fails leaves every server with what it had (one ERROR line says why): a running server
    never opens up because of a bad file."""
    current = [settings]

    def reload() -> None:
        try:
            fresh = source.reload(current[0])
        except SecurityConfigError as exc:
            log.error("security.toml not reloaded, the previous settings stay: %s", exc)
            return
        for server in servers:
            server.reload_security(fresh)
        current[0] = fresh

    return reload


def client_options(settings: SecuritySettings, master: str) -> tuple[str, ssl.SSLContext | None]:
    """The SDK's master address and TLS context under `[https.client]`: `https://` masters
    (and so volume servers) verified with its CA, when it is enabled."""
    tls = settings.https_client
    if not tls.enabled:
        return master, None
    addresses = [m.strip() for m in master.split(",") if m.strip()]
    return ",".join(m if "://" in m else f"https://{m}" for m in addresses), client_context(tls)
