"""`ssl` contexts from the TLS settings of security.toml (`settings.ServerTls`, `ClientTls`).

Contexts are built once, at start: a file that cannot be read or parsed raises
`SecurityConfigError` naming the section and the file, so a server never starts without the TLS
it was told to use. TLS 1.2 is the oldest version either side speaks.
"""

from __future__ import annotations

import ssl

from seaweed_py.security.settings import ClientTls, SecurityConfigError, ServerTls

__all__ = ["client_context", "server_context"]


def server_context(tls: ServerTls) -> ssl.SSLContext:
    """The listener's context; with a `ca`, clients must present a certificate it signed."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(ctx, tls.cert, tls.key, tls.section)
    if tls.ca:
        _load_ca(ctx, tls.ca, tls.section)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(tls: ClientTls) -> ssl.SSLContext | None:
    """The context of weedpy's outgoing connections, or None for plain HTTP. Servers are
    verified against `ca` (else the system's roots), host name included, unless
    `insecure_skip_verify`; `cert`/`key` are presented to servers that ask (mutual TLS)."""
    if not tls.enabled:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls.ca:
        _load_ca(ctx, tls.ca, "https.client")
    if tls.cert:
        _load_chain(ctx, tls.cert, tls.key, "https.client")
    if tls.insecure_skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _load_chain(ctx: ssl.SSLContext, cert: str, key: str, section: str) -> None:
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise SecurityConfigError(f"[{section}] cert {cert} / key {key}: {_reason(exc)}") from None


def _load_ca(ctx: ssl.SSLContext, ca: str, section: str) -> None:
    try:
        ctx.load_verify_locations(cafile=ca)
    except (OSError, ssl.SSLError) as exc:
        raise SecurityConfigError(f"[{section}] ca {ca}: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)
