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

import ipaddress
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from seaweed_py.cli.daemon import serve
from seaweed_py.cli.secure import add_config_dir_flag, load_backends, load_security, reloader
from seaweed_py.config.flags import FlagSet, UsageError
from seaweed_py.errors import StartupError
from seaweed_py.httpkit.allow_list import white_list_entries
from seaweed_py.master.options import (
    MasterOptions,
    add_master_flags,
    detect_ip,
    master_options,
)
from seaweed_py.volume.options import VolumeOptions, add_volume_flags, volume_options

__all__ = ["build_flags", "run", "server_options"]

_SHARED_TO_VOLUME = {"dataCenter": "volume.dataCenter", "rack": "volume.rack"}


def build_flags() -> FlagSet:
    fs = FlagSet(
        "server",
        "start a master and a volume server in one process.\n"
        "Example: weedpy server -dir=./data   (master :9333, volume :8080)",
    )
    fs.add(
        "ip",
        "",
        "address advertised by both servers, also their identifier (default: this host's address)",
    )
    fs.add("ip.bind", "0.0.0.0", "address both servers listen on")
    fs.add(
        "dir",
        "",
        "data directory: volumes, and the master's metadata unless -master.dir "
        "(default: -volume.dir)",
    )
    fs.add("dataCenter", "", "data center of the volume server")
    fs.add("rack", "", "rack of the volume server")
    fs.add(
        "whiteList",
        "",
        "comma separated IP addresses or CIDRs allowed to use the master "
        "API and to write, delete and call /admin/* on the volume server; empty: everyone. "
        "The volume server also allows -ip (and loopback when -ip or -volume.master is a "
        "loopback address), the address its master calls it from",
    )
    add_master_flags(fs, "master.")
    add_volume_flags(fs, "volume.")
    add_config_dir_flag(fs)
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
    v["volume.whiteList"] = ",".join(_volume_white_list(v))
    if v["master.port"] == v["volume.port"]:
        raise UsageError(f"-master.port and -volume.port are both {v['master.port']}")
    return v


def _volume_white_list(v: dict[str, Any]) -> list[str]:
    """The shared -whiteList plus the addresses the embedded master reaches the volume server
    from (`_own_addresses`)."""
    entries = list(white_list_entries(v["whiteList"]))
    if not entries:
        return entries  # empty allows everyone; adding our own address would restrict it
    return entries + [ip for ip in _own_addresses(v) if ip not in entries]


def _own_addresses(v: dict[str, Any]) -> list[str]:
    """The addresses one of the two embedded servers reaches the other from: -ip (a
    connection to a local address leaves from that address) and loopback when either side is
    named by a loopback address. Host names are not resolved."""
    own = [ip for ip in (v["ip"], v["volume.ip"]) if _is_ip(ip)]
    masters = (v["volume.mserver"] or v["volume.master"]).split(",")
    masters = [m.strip().rpartition(":")[0] for m in masters]
    if any(_is_loopback(host) for host in (v["ip"], v["volume.ip"], *masters)):
        own += ["127.0.0.1", "::1"]
    return list(dict.fromkeys(own))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _flag_name(prefix: str, setting: str, given: set[str]) -> str:
    """The flag of this command that set one embedded server's `setting`: `-dir` unless the
    prefixed flag was given (the master's directory comes from the volume's, as `resolve`
    fills it)."""
    if (prefix, setting) in (("master.", "mdir"), ("volume.", "dir")):
        for name in (f"{prefix}dir", "volume.dir"):
            if name in given:
                return name
        return "dir"
    return prefix + setting


def server_options(resolved: dict[str, Any]) -> tuple[MasterOptions, VolumeOptions]:
    """The two servers' options from `resolve`d values. The master's client API keeps the
    operator's -whiteList; its volume-server protocol also admits the embedded volume server's
    heartbeats."""
    master = master_options(resolved, "master.")
    # `weed server` refuses a missing -dir/-master.dir where `weed master` creates its -mdir.
    master = replace(master, cluster_white_list=tuple(_own_addresses(resolved)), create_mdir=False)
    return master, volume_options(resolved, "volume.")


def run(argv: Sequence[str]) -> int:
    values, rest = build_flags().parse(argv)
    if rest:
        raise UsageError(f"unexpected arguments: {' '.join(rest)}")
    given = _given(argv)
    resolved = resolve(values, given)
    source, security = load_security(values)
    # The servers (and the storage engine under them) load only to run, not for `-h`.
    from seaweed_py.master.server import MasterServer
    from seaweed_py.volume.server import VolumeServer

    master_opts, volume_opts = server_options(resolved)
    master = MasterServer(replace(master_opts, security=security))
    volume = VolumeServer(replace(volume_opts, security=security, backends=load_backends(values)))
    started: list[MasterServer | VolumeServer] = []

    async def start() -> None:
        for prefix, server in (("master.", master), ("volume.", volume)):
            started.append(server)  # stopped even if it fails half-way: it cleans up
            try:
                await server.start()
            except StartupError as exc:
                exc.flag = _flag_name(prefix, exc.setting, given)
                raise

    async def stop() -> None:
        for server in reversed(started):
            await server.stop()

    return serve(start, stop, reloader(source, security, [master, volume]))
