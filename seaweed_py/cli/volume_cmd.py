"""`weedpy volume`: run a volume server until SIGINT/SIGTERM."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from seaweed_py.config.flags import FlagSet
from seaweed_py.httpkit.run import run_servers
from seaweed_py.volume import VolumeServer, add_volume_flags, volume_options

__all__ = ["flag_set", "run"]


def flag_set() -> FlagSet:
    fs = FlagSet(
        "volume",
        "start a volume server to provide storage spaces.\n"
        "Example: weedpy volume -port=8080 -dir=/tmp -max=5 -ip=server_name "
        "-master=localhost:9333",
    )
    add_volume_flags(fs)
    return fs


def run(argv: Sequence[str]) -> int:
    values, _ = flag_set().parse(argv)
    options = volume_options(values)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    server = VolumeServer(options)
    return run_servers(server.start, server.stop)
