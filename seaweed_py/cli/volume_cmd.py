"""`weedpy volume`: run a volume server until SIGINT/SIGTERM."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import replace

from seaweed_py.cli.daemon import serve
from seaweed_py.cli.secure import add_config_dir_flag, load_backends, load_security, reloader
from seaweed_py.config.flags import FlagSet
from seaweed_py.volume import VolumeServer, add_volume_flags, volume_options
from seaweed_py.volume.workers import Workers, worker_role

__all__ = ["flag_set", "run"]

_SWITCH_INTERVAL = 0.0005


def flag_set() -> FlagSet:
    fs = FlagSet(
        "volume",
        "start a volume server to provide storage spaces.\n"
        "Example: weedpy volume -port=8080 -dir=/tmp -max=5 -ip=server_name "
        "-master=localhost:9333",
    )
    add_volume_flags(fs)
    add_config_dir_flag(fs)
    return fs


def run(argv: Sequence[str]) -> int:
    values, _ = flag_set().parse(argv)
    source, security = load_security(values)
    options = replace(volume_options(values), security=security, backends=load_backends(values))
    role = worker_role()
    workers = None
    if role is not None:  # one of the leader's workers (volume/workers.py)
        options = replace(options, worker=role.index, port=role.port, public_port=role.public_port)
    elif options.workers > 1:
        workers = Workers(options.workers, argv)
    # Group-commit fsyncs and large reads finish in worker threads, which then need the GIL
    # to hand their result to the loop; the default 5 ms switch interval would add up to that
    # much to every acknowledged write while the loop is busy.
    sys.setswitchinterval(_SWITCH_INTERVAL)
    server = VolumeServer(options, workers=workers)
    tag = f" [worker {options.worker}]" if options.worker else ""
    return serve(server.start, server.stop, reloader(source, security, [server]), tag=tag)
