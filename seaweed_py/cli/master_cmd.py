"""`weedpy master`: run a master server until SIGINT/SIGTERM."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from seaweed_py.cli.daemon import serve
from seaweed_py.cli.secure import add_config_dir_flag, load_security, reloader
from seaweed_py.config.flags import FlagSet
from seaweed_py.master import MasterServer, add_master_flags, master_options

__all__ = ["flag_set", "run"]


def flag_set() -> FlagSet:
    fs = FlagSet(
        "master",
        "start a master server: volume => location mapping and file id assignment.\n"
        "Example: weedpy master -port=9333 -mdir=/data/master",
    )
    add_master_flags(fs)
    add_config_dir_flag(fs)
    return fs


def run(argv: Sequence[str]) -> int:
    values, _ = flag_set().parse(argv)
    source, security = load_security(values)
    options = replace(master_options(values), security=security)
    server = MasterServer(options)
    return serve(server.start, server.stop, reloader(source, security, [server]))
