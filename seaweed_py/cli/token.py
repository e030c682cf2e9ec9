"""`weedpy token`: print a token signed with the `jwt.signing.key` of security.toml.

With no flag it is a cluster token (docs/internals.md "Security"), for an operator's calls that
change the cluster:

    curl -H "Authorization: Bearer $(weedpy token)" "localhost:9333/col/delete?collection=tmp"

With `-fid=3,01637037d6` it is that blob's write token (`-read`: its read token, signed with
`jwt.signing.read.key`), as the master would issue it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from seaweed_py.cli.secure import add_config_dir_flag, load_security
from seaweed_py.config.flags import FlagSet, UsageError
from seaweed_py.errors import InvalidFileId
from seaweed_py.formats.fid import parse_file_id
from seaweed_py.security.tokens import cluster_token, fid_token

__all__ = ["build_flags", "run"]


def build_flags() -> FlagSet:
    flags = FlagSet(
        "token",
        "Print a cluster token (or, with -fid, a file id token) signed with security.toml's key.",
    )
    flags.add("fid", "", "sign a token for this file id instead of a cluster token")
    flags.add("read", False, "with -fid: a read token (jwt.signing.read.key)")
    flags.add("expires", 60, "seconds the token stays valid (a file id token: 0 never expires)")
    add_config_dir_flag(flags)
    return flags


def run(argv: Sequence[str]) -> int:
    opts, rest = build_flags().parse(argv)
    if rest:
        raise UsageError(f"unexpected arguments: {' '.join(rest)}")
    _, security = load_security(opts)
    keys = security.keys
    fid, lifetime = opts["fid"], opts["expires"]
    if opts["read"] and not fid:
        raise UsageError("-read needs -fid")
    key = keys.read_key if opts["read"] else keys.signing_key
    if not key:
        which = "jwt.signing.read.key" if opts["read"] else "jwt.signing.key"
        variable = "WEED_" + which.replace(".", "_").upper()
        where = security.source or "any security.toml"
        raise UsageError(f"{which} is set neither in {where} nor in {variable}")
    if not fid:
        if lifetime <= 0:
            raise UsageError("-expires must be positive for a cluster token")
        print(cluster_token(key, time.time(), lifetime))
        return 0
    try:
        parse_file_id(fid)
    except InvalidFileId as exc:
        raise UsageError(f"-fid: {exc.message}") from None
    print(fid_token(key, lifetime, fid, time.time()))
    return 0
