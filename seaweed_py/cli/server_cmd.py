"""`weedpy server`: a master and a volume server in one process, like `weed server`.

For one machine: `weedpy server -dir=./data` stores volumes in `./data` and the master's
metadata in the same directory, serves the master on :9333 and the volume server on :8080, and
registers the volume server with that master. Every `weedpy master` flag is available as
`-master.<flag>` and every `weedpy volume` flag as `-volume.<flag>`; `-ip`, `-ip.bind`, `-dir`,
`-dataCenter`, `-rack` and `-whiteList` are shared. SIGINT/SIGTERM (Ctrl-C) stops the volume
server first (so it says goodbye to the master), then the master.

Defaults that differ from the separate commands, because both servers share a machine: the
listeners bind every interface (`-ip.bind=0.0.0.0`, so `localhost` works whatever `-ip` is
advertised), and the volume server does not linger after a stop signal
(`-volume.preStopSeconds=0`: the master it would keep serving for is stopping too).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from seaweed_py.config.flags import FlagSet, UsageError
from seaweed_py.httpkit.run import run_servers
from seaweed_py.master.options import add_master_flags, detect_ip, master_options
from seaweed_py.volume.options import add_volume_flags, volume_options

__all__ = ["build_flags", "run"]

_SHARED_TO_VOLUME = {"dataCenter": "volume.dataCenter", "rack": "volume.rack"}


def build_flags() -> FlagSet:
    fs = FlagSet(
        "server",
        "start a master and a volume server in one process.\n"
        "Example: weedpy server -dir=./data   (master :9333, volume :8080)",
    )
    fs.add("ip", "", "address advertised by both servers, also their identifier "
           "(default: this host's address)")
    fs.add("ip.bind", "0.0.0.0", "address both servers listen on")
    fs.add("dir", "", "data directory: volumes, and the master's metadata unless -master.dir "
           "(default: -volume.dir)")
    fs.add("dataCenter", "", "data center of the volume server")
    fs.add("rack", "", "rack of the volume server")
    fs.add("whiteList", "", "comma separated IP addresses or CIDRs allowed to use the master API")
    add_master_flags(fs, "master.")
    add_volume_flags(fs, "volume.")
    return fs


def _given(argv: Sequence[str]) -> set[str]:
    """Flag names present on the command line (to tell an explicit value from a default)."""
    names = set()
    for arg in argv:
        if arg == "--":
            break
        if arg.startswith("-") and arg != "-":
            names.add(arg.lstrip("-").partition("=")[0])
    return names


def resolve(values: dict[str, Any], given: set[str]) -> dict[str, Any]:
    """Fill the prefixed master/volume settings from the shared flags and from each other."""
    v = dict(values)
    v["ip"] = v["ip"] or detect_ip()
    if v["dir"] and "volume.dir" not in given:
        v["volume.dir"] = v["dir"]
    if "master.dir" not in given:
        v["master.dir"] = v["volume.dir"].split(",")[0]
    if "volume.master" not in given and "volume.mserver" not in given:
        v["volume.master"] = f"{v['ip']}:{v['master.port']}"
    for name in ("ip", "ip.bind"):
        if f"volume.{name}" not in given:
            v[f"volume.{name}"] = v[name]
    for shared, prefixed in _SHARED_TO_VOLUME.items():
        if prefixed not in given:
            v[prefixed] = v[shared]
    if "volume.preStopSeconds" not in given:
        v["volume.preStopSeconds"] = 0
    if v["master.port"] == v["volume.port"]:
        raise UsageError(f"-master.port and -volume.port are both {v['master.port']}")
    return v


def run(argv: Sequence[str]) -> int:
    values, rest = build_flags().parse(argv)
    if rest:
        raise UsageError(f"unexpected arguments: {' '.join(rest)}")
    resolved = resolve(values, _given(argv))
    # The servers (and the storage engine under them) load only to run, not for `-h`.
    from seaweed_py.master.server import MasterServer
    from seaweed_py.volume.server import VolumeServer

    master = MasterServer(master_options(resolved, "master."))
    volume = VolumeServer(volume_options(resolved, "volume."))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    started: list[MasterServer | VolumeServer] = []

    async def start() -> None:
        for server in (master, volume):
            await server.start()
            started.append(server)

    async def stop() -> None:
        for server in reversed(started):
            await server.stop()

    return run_servers(start, stop)
