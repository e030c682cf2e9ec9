"""deploy/ checked without a container engine: files parse, flags exist, metrics exist."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from seaweed_py.cli import master_cmd, volume_cmd
from seaweed_py.cli.main import COMMANDS, main
from seaweed_py.formats.replica_placement import ReplicaPlacement
from seaweed_py.master import MasterOptions, master_options
from seaweed_py.volume import VolumeOptions, volume_options

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def load_yaml(name: str) -> list[Any]:
    return [doc for doc in yaml.safe_load_all((DEPLOY / name).read_text()) if doc is not None]


def compose() -> dict[str, Any]:
    docs = load_yaml("docker-compose.yml")
    assert len(docs) == 1
    doc: dict[str, Any] = docs[0]
    return doc


def kubernetes_docs() -> list[dict[str, Any]]:
    return [
        d
        for p in sorted((DEPLOY / "kubernetes").glob("*.yaml"))
        for d in load_yaml(f"kubernetes/{p.name}")
    ]


def test_every_yaml_and_json_file_parses() -> None:
    yamls = sorted(DEPLOY.rglob("*.yml")) + sorted(DEPLOY.rglob("*.yaml"))
    assert len(yamls) >= 5
    for path in yamls:
        assert load_yaml(str(path.relative_to(DEPLOY))), path
    dashboard = json.loads((DEPLOY / "grafana" / "weedpy-dashboard.json").read_text())
    assert dashboard["panels"]


def test_compose_has_a_master_and_three_volume_servers_in_two_racks() -> None:
    services = compose()["services"]
    volumes = {name: s for name, s in services.items() if s.get("command", [""])[0] == "volume"}
    assert services["master"]["command"][0] == "master"
    assert len(volumes) == 3
    racks = {flag for s in volumes.values() for flag in s["command"] if flag.startswith("-rack=")}
    assert len(racks) == 2
    named = set(compose()["volumes"])
    for name in ["master", *volumes]:
        service = services[name]
        assert "/healthz" in " ".join(service["healthcheck"]["test"])
        mounts = [m.split(":")[0] for m in service["volumes"]]
        assert mounts and set(mounts) <= named, name
    for volume in volumes.values():
        assert volume["depends_on"]["master"]["condition"] == "service_healthy"


def test_kubernetes_statefulsets_services_and_probes() -> None:
    docs = kubernetes_docs()
    kinds = [d["kind"] for d in docs]
    assert kinds.count("StatefulSet") == 2
    assert kinds.count("Service") >= 2
    services = {d["metadata"]["name"] for d in docs if d["kind"] == "Service"}
    for sts in (d for d in docs if d["kind"] == "StatefulSet"):
        assert sts["spec"]["serviceName"] in services
        assert sts["spec"]["volumeClaimTemplates"]
        selector = sts["spec"]["selector"]["matchLabels"]
        assert selector.items() <= sts["spec"]["template"]["metadata"]["labels"].items()
        for container in sts["spec"]["template"]["spec"]["containers"]:
            for probe in ("livenessProbe", "readinessProbe"):
                assert container[probe]["httpGet"]["path"] == "/healthz"


def test_dockerfile_installs_the_package_on_python_311_slim() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    assert 'pip install ".[server]"' in text  # the servers need the server extra
    assert re.search(r'^ENTRYPOINT \["weedpy"\]$', text, re.M)


# ---- every -flag used in deploy/ exists --------------------------------------------------------


def _dockerfile_invocations() -> list[list[str]]:
    match = re.search(r"^CMD (\[.*\])$", (DEPLOY / "Dockerfile").read_text(), re.M)
    assert match
    return [json.loads(match.group(1))]


def _systemd_invocations() -> list[list[str]]:
    found = []
    for unit in sorted((DEPLOY / "systemd").glob("*.service")):
        for line in unit.read_text().splitlines():
            if line.startswith("ExecStart="):
                words = shlex.split(line.removeprefix("ExecStart="))
                assert words[0].endswith("/weedpy"), unit
                found.append(words[1:])
    return found


def invocations() -> list[tuple[str, list[str]]]:
    """(where, [command, args...]) for every weedpy run in deploy/."""
    runs = [("Dockerfile", argv) for argv in _dockerfile_invocations()]
    runs += [
        (f"docker-compose.yml:{name}", [str(a) for a in s["command"]])
        for name, s in compose()["services"].items()
        if s.get("image", "").startswith("weedpy") and "command" in s
    ]
    runs += [
        (f"kubernetes:{d['metadata']['name']}", c["args"])
        for d in kubernetes_docs()
        if d["kind"] == "StatefulSet"
        for c in d["spec"]["template"]["spec"]["containers"]
    ]
    runs += [("systemd", argv) for argv in _systemd_invocations()]
    return runs


def _help_flags(command: str) -> set[str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main([command, "-h"]) == 0
    return set(re.findall(r"^\s+-(\S+)", out.getvalue(), re.M))


def test_deploy_files_run_known_commands() -> None:
    runs = invocations()
    assert {argv[0] for _, argv in runs} == {"server", "master", "volume"}
    assert len(runs) >= 9


@pytest.mark.parametrize("command", ["master", "volume", "server"])
def test_every_flag_in_deploy_exists(command: str) -> None:
    if command not in COMMANDS:
        pytest.skip(f"`weedpy {command}` is not a registered command yet")
    known = _help_flags(command)
    for where, argv in invocations():
        if argv[0] != command:
            continue
        for arg in argv[1:]:
            assert arg.startswith("-"), f"{where}: positional argument {arg!r}"
            name = arg.lstrip("-").partition("=")[0]
            assert name in known, f"{where}: weedpy {command} has no flag -{name}"


# Every metric the dashboard queries is checked against live scrapes of both servers in
# tests/functional/test_metrics.py.


# ---- compose: built here, reachable from the host ---------------------------------------------


def _flags(argv: list[Any]) -> dict[str, str]:
    return {str(a).lstrip("-").partition("=")[0]: str(a).partition("=")[2] for a in argv[1:]}


def _weedpy_services() -> dict[str, dict[str, Any]]:
    return {
        n: s for n, s in compose()["services"].items() if s.get("image", "").startswith("weedpy")
    }


def test_compose_builds_every_weedpy_image_from_the_dockerfile() -> None:
    services = _weedpy_services()
    assert len(services) == 4
    for name, service in services.items():
        build = service["build"]
        context = (DEPLOY / build["context"]).resolve()
        assert context == ROOT, name
        assert (context / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile", name
        assert service["pull_policy"] == "build", name  # never pulled from a registry


def test_compose_volume_servers_are_reachable_from_the_host() -> None:
    services = compose()["services"]
    master = _flags(services["master"]["command"])
    assert f"{master['port']}:{master['port']}" in services["master"]["ports"]
    host_ports = set()
    for name, service in _weedpy_services().items():
        if service["command"][0] != "volume":
            continue
        flags = _flags(service["command"])
        port = flags["port"]
        # Published unchanged, so one port names the server inside and outside the network.
        assert service["ports"] == [f"{port}:{port}"], name
        assert flags["publicUrl"] == f"localhost:{port}", name
        assert flags["ip"] == name and flags["ip.bind"] == "0.0.0.0", name
        assert flags["master"] == f"master:{master['port']}", name
        assert f"localhost:{port}/healthz" in " ".join(service["healthcheck"]["test"]), name
        host_ports.add(port)
    assert len(host_ports) == 3
    scrape = load_yaml("prometheus/prometheus-compose.yml")[0]["scrape_configs"]
    targets = {t for job in scrape for c in job["static_configs"] for t in c["targets"]}
    assert targets == {f"master:{master['port']}"} | {
        f"volume{i}:{p}" for i, p in enumerate(sorted(host_ports), 1)
    }


# ---- kubernetes: one node works by default -----------------------------------------------------


def test_kubernetes_default_replication_fits_one_node_and_the_override_is_documented() -> None:
    [master] = [
        d
        for d in kubernetes_docs()
        if d["kind"] == "StatefulSet" and "master" in d["metadata"]["name"]
    ]
    args = master["spec"]["template"]["spec"]["containers"][0]["args"]
    replication = _flags(args)["defaultReplication"]
    assert ReplicaPlacement.parse(replication).copy_count == 1
    text = (DEPLOY / "kubernetes" / "master.yaml").read_text()
    patch = re.search(
        r'"path": "/spec/template/spec/containers/0/args/(\d+)", "value": "([^"]+)"', text
    )
    assert patch, "master.yaml documents how to switch to rack replication"
    assert args[int(patch.group(1))].startswith("-defaultReplication=")
    assert patch.group(2) == "-defaultReplication=010"
    assert ReplicaPlacement.parse("010").diff_rack == 1


# ---- systemd: the defaults reach each other, the units are hardened ---------------------------


def _unit(name: str) -> tuple[dict[str, str], list[str]]:
    """(Environment defaults, ExecStart argv with them substituted) of a unit."""
    env: dict[str, str] = {}
    argv: list[str] = []
    for line in (DEPLOY / "systemd" / name).read_text().splitlines():
        if line.startswith("Environment="):
            for pair in shlex.split(line.removeprefix("Environment=")):
                key, _, value = pair.partition("=")
                env[key] = value
        elif line.startswith("ExecStart="):
            text = re.sub(
                r"\$\{(\w+)\}", lambda m: env[m.group(1)], line.removeprefix("ExecStart=")
            )
            argv = shlex.split(text)
    assert argv, name
    return env, argv


def _master_defaults() -> MasterOptions:
    _, argv = _unit("weedpy-master.service")
    values, _ = master_cmd.flag_set().parse(argv[2:])
    return master_options(values)


def _volume_defaults() -> VolumeOptions:
    _, argv = _unit("weedpy-volume.service")
    values, _ = volume_cmd.flag_set().parse(argv[2:])
    return volume_options(values)


def test_systemd_defaults_reach_each_other() -> None:
    master, volume = _master_defaults(), _volume_defaults()
    # The volume server calls the master at localhost; the master listens there too.
    [address] = volume.masters
    host, _, port = address.rpartition(":")
    assert int(port) == master.port
    assert host in ("localhost", "127.0.0.1")
    assert master.listen_ip in ("0.0.0.0", "127.0.0.1")
    # The master calls back on the volume server's advertised -ip, whatever this host's
    # address turns out to be: the volume server listens on every interface.
    assert volume.listen_host == "0.0.0.0"


@pytest.mark.parametrize("unit", ["weedpy-master.service", "weedpy-volume.service"])
def test_systemd_units_are_hardened(unit: str) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
    done = subprocess.run(
        [analyze, "security", "--offline=true", "--no-pager", str(DEPLOY / "systemd" / unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout)
    assert match, done.stdout[-2000:] + done.stderr[-2000:]
    assert float(match.group(1)) < 5.0, done.stdout
