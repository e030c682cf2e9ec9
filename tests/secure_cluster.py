"""In-process clusters with security.toml settings for the security tests (no tests here): a
real master and real volume servers on loopback, each given its own `SecuritySettings`, and a
throwaway PKI (a CA, server and client certificates made by `trustme` for the test only).

    async with SecureCluster(tmp_path, settings(key=KEY), volumes=2) as cluster:
        answer = await cluster.http.get(cluster.master_url("/dir/assign"))

`settings()` builds what a security.toml would say. Nothing here is a committed key: every
certificate and key is generated in the test's temporary directory and deleted with it.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import trustme

from seaweed_py.master import MasterOptions, MasterServer
from seaweed_py.security import ClientTls, JwtKeys, SecuritySettings, ServerTls
from seaweed_py.security.tokens import cluster_token
from seaweed_py.volume import VolumeOptions, VolumeServer

__all__ = ["KEY", "READ_KEY", "Pki", "SecureCluster", "make_pki", "settings", "until"]

KEY = b"cluster-write-key-for-tests"
READ_KEY = b"cluster-read-key-for-tests"


@dataclass(frozen=True)
class Pki:
    """PEM files of a throwaway CA, a server certificate for 127.0.0.1/localhost, a client
    certificate from the same CA, and a client certificate from another CA."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path
    stranger_key: Path

    def client_context(self, *, with_cert: bool = True, stranger: bool = False) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        if stranger:
            ctx.load_cert_chain(str(self.stranger_cert), str(self.stranger_key))
        elif with_cert:
            ctx.load_cert_chain(str(self.client_cert), str(self.client_key))
        return ctx


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("weedpy-test-client")
    stranger = trustme.CA().issue_cert("weedpy-test-stranger")

    def write(name: str, blob: trustme.Blob) -> Path:
        path = directory / name
        blob.write_to_path(str(path))
        return path

    return Pki(
        ca=write("ca.pem", ca.cert_pem),
        server_cert=write("server.pem", server.cert_chain_pems[0]),
        server_key=write("server.key", server.private_key_pem),
        client_cert=write("client.pem", client.cert_chain_pems[0]),
        client_key=write("client.key", client.private_key_pem),
        stranger_cert=write("stranger.pem", stranger.cert_chain_pems[0]),
        stranger_key=write("stranger.key", stranger.private_key_pem),
    )


def settings(
    *,
    key: bytes = b"",
    read_key: bytes = b"",
    expires: int = 10,
    white_list: tuple[str, ...] = (),
    access_ui: bool = False,
    pki: Pki | None = None,
    mutual: bool = False,
) -> SecuritySettings:
    """What a security.toml with these values says; `pki` turns HTTPS on for both servers and
    their clients (`mutual`: clients must present a certificate)."""
    server_tls = client_tls = None
    if pki is not None:
        ca = str(pki.ca) if mutual else ""
        server_tls = ServerTls(str(pki.server_cert), str(pki.server_key), ca)
        client_tls = ClientTls(
            enabled=True,
            ca=str(pki.ca),
            cert=str(pki.client_cert) if mutual else "",
            key=str(pki.client_key) if mutual else "",
        )
    return SecuritySettings(
        keys=JwtKeys(key, expires, read_key, 60),
        white_list=white_list,
        access_ui=access_ui,
        https_master=server_tls,
        https_volume=server_tls,
        https_client=client_tls or ClientTls(),
    )


async def until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


class SecureCluster:
    """A master and `volumes` volume servers sharing `security` (or one settings per volume
    server in `volume_security`), started on enter and stopped on exit."""

    def __init__(
        self,
        tmp_path: Path,
        security: SecuritySettings,
        *,
        volumes: int = 1,
        volume_security: Sequence[SecuritySettings] | None = None,
        client_ssl: ssl.SSLContext | None = None,
        **volume_options: Any,
    ) -> None:
        self.tmp_path = tmp_path
        self.security = security
        self.volume_security = list(volume_security or [security] * volumes)
        self.volume_options = volume_options
        self.scheme = "https" if security.https_master else "http"
        self.client_ssl = client_ssl
        self.master: MasterServer | None = None
        self.volumes: list[VolumeServer] = []
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> SecureCluster:
        try:
            await self._start()
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def _start(self) -> None:
        # A master creates one missing level of -mdir, as weed master does; tmp_path may be
        # a directory that does not exist yet.
        self.tmp_path.mkdir(parents=True, exist_ok=True)
        self.master = MasterServer(
            MasterOptions(
                ip="127.0.0.1",
                port=0,
                mdir=str(self.tmp_path / "master"),
                pulse_seconds=0.2,
                security=self.security,
            )
        )
        await self.master.start()
        for i, security in enumerate(self.volume_security):
            directory = self.tmp_path / f"v{i}"
            directory.mkdir(exist_ok=True)
            volume = VolumeServer(
                VolumeOptions(
                    dirs=(str(directory),),
                    max_volumes=(8,),
                    masters=(self.master.address,),
                    ip="127.0.0.1",
                    port=0,
                    pulse_seconds=0.2,
                    pre_stop_seconds=0,
                    security=security,
                    **self.volume_options,
                )
            )
            await volume.start()
            self.volumes.append(volume)
        master = self.master
        await until(lambda: len(master.topology.nodes) == len(self.volumes))

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.close()
        for volume in self.volumes:
            await volume.stop()
        if self.master is not None:
            await self.master.stop()

    @property
    def http(self) -> aiohttp.ClientSession:
        """A client session trusting the cluster's CA (and presenting `client_ssl`'s cert)."""
        if self._http is None:
            connector = aiohttp.TCPConnector(ssl=self.client_ssl or True)
            self._http = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        return self._http

    def master_url(self, path: str) -> str:
        assert self.master is not None
        return f"{self.scheme}://127.0.0.1:{self.master.port}{path}"

    def volume_url(self, index: int, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.volumes[index].port}{path}"

    def cluster_headers(self, key: bytes = KEY) -> dict[str, str]:
        return {"Authorization": f"Bearer {cluster_token(key, time.time())}"}
