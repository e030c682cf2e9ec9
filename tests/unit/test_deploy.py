"""deploy/ checked without a container engine: files parse, flags exist, metrics exist."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from seaweed_py.cli.main import COMMANDS, main

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
