"""security.toml, file-id and cluster tokens, white-list entries and TLS settings: pure values
and functions (no asyncio, no HTTP), used at the edges by httpkit, master, volume and client.

| module | offers |
|---|---|
| `settings.py` | `SecuritySource(config_dir, env).load() -> SecuritySettings` (security.toml found as weed finds it, `WEED_*` overrides, fail closed: `SecurityConfigError`) |
| `jwt.py` | `sign(claims, key)`, `decode(token, key, now)` (HS256 tokens, verified as weed 4.48 verifies them; `TokenError`) |
| `tokens.py` | file-id and cluster token claims: `fid_token`, `check_fid_token`, `fid_claim`, `cluster_token`, `check_cluster_token`; `request_token(query, headers)` |
| `tls.py` | `server_context(ServerTls)`, `client_context(ClientTls)` |
| `guard.py` | white-list entries: `network(entry)`, `split_entries(text)` |
| `scaffold.py` | `SECURITY_TOML`, the commented file `weedpy scaffold -config=security` prints |
"""

from seaweed_py.security.jwt import TokenError
from seaweed_py.security.settings import (
    ClientTls,
    SecurityConfigError,
    SecuritySettings,
    SecuritySource,
    ServerTls,
)
from seaweed_py.security.tokens import JwtKeys

__all__ = [
    "ClientTls",
    "JwtKeys",
    "SecurityConfigError",
    "SecuritySettings",
    "SecuritySource",
    "ServerTls",
    "TokenError",
]
