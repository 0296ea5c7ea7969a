"""The Helm chart deploy/helm/mayastor: lint, render, validate, and what it deploys.

Every value set of `MATRIX` renders into manifests that kubernetes-validate accepts in
strict mode (unknown fields are errors) for the oldest Kubernetes the chart supports and
the newest the validator knows; the flags the chart gives our programs are accepted by
their own command-line parsers; bad values fail with a message naming them.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from mayastor.control.main import config_from_args as core_config
from mayastor.csi.controller_main import build_parser as csi_controller_parser
from mayastor.csi.ha_node_main import build_parser as ha_node_parser
from mayastor.csi.node_main import build_parser as csi_node_parser
from mayastor.engine.config import config_from_args as engine_config
from mayastor.operator.main import build_parser as operator_parser
from tests.deploy.chart import (
    CHART,
    MATRIX,
    NAMESPACE,
    container,
    containers,
    find,
    helm,
    render,
    set_args,
    template,
    tool,
)

KUBERNETES_VERSIONS = ("1.27.0", "1.37.0")
"""The oldest the chart's kubeVersion allows, and the newest kubernetes-validate knows."""


@pytest.mark.parametrize("name", list(MATRIX))
def test_helm_lint_strict_passes(name: str) -> None:
    result = helm("lint", "--strict", str(CHART), *set_args(MATRIX[name]))
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", list(MATRIX))
def test_the_rendered_chart_passes_kubernetes_validate_strict(name: str, version: str) -> None:
    manifests = template(MATRIX[name], crds=True)
    result = subprocess.run(
        [tool("kubernetes-validate"), "--strict", "-k", version, "-"],
        input=manifests,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = result.stdout.splitlines()
    passed = [line for line in lines if line.startswith("INFO") and " passed " in line]
    other = [line for line in lines if not (line.startswith("INFO") and " passed " in line)]
    # Only the ServiceMonitor has no schema there (it is the Prometheus operator's CRD).
    unvalidated = [line for line in other if "kind ServiceMonitor" not in line]
    assert result.returncode == 0, result.stdout + result.stderr
    assert not unvalidated, result.stdout
    documents = [d for d in yaml.safe_load_all(manifests) if d]
    assert len(passed) == len([d for d in documents if d["kind"] != "ServiceMonitor"])


def test_the_defaults_deploy_every_part_with_its_storage_node_and_kubelet_settings() -> None:
    objects = render()
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    for expected in [
        ("DaemonSet", "mayastor-io-engine"),
        ("Deployment", "mayastor-agent-core"),
        ("Service", "mayastor-api-rest"),
        ("Service", "mayastor-agent-core"),
        ("Deployment", "mayastor-csi-controller"),
        ("DaemonSet", "mayastor-csi-node"),
        ("DaemonSet", "mayastor-agent-ha-node"),
        ("Deployment", "mayastor-operator-diskpool"),
        ("StatefulSet", "mayastor-etcd"),
        ("CSIDriver", "io.openebs.csi-mayastor"),
        ("StorageClass", "mayastor-single-replica"),
        ("StorageClass", "mayastor-3"),
    ]:
        assert expected in kinds
    assert not any(kind in ("ServiceMonitor",) or "nats" in name for kind, name in kinds)

    engine = find(objects, "DaemonSet", "mayastor-io-engine")
    pod = engine["spec"]["template"]["spec"]
    assert pod["nodeSelector"]["openebs.io/engine"] == "mayastor"
    assert pod["hostNetwork"] is True
    io = container(engine, "io-engine")
    assert io["securityContext"]["privileged"] is True
    assert not any("hugepages" in key for part in io["resources"].values() for key in part)
    assert {m["mountPath"] for m in io["volumeMounts"]} >= {"/dev"}

    service = find(objects, "Service", "mayastor-api-rest")
    assert service["spec"]["ports"][0]["port"] == 8081

    controller = find(objects, "Deployment", "mayastor-csi-controller")
    names = [c["name"] for c in containers(controller)]
    assert names == ["csi-provisioner", "csi-attacher", "csi-resizer", "csi-controller"]

    node = find(objects, "DaemonSet", "mayastor-csi-node")
    plugin = container(node, "csi-node")
    kubelet = next(m for m in plugin["volumeMounts"] if m["mountPath"] == "/var/lib/kubelet")
    assert kubelet["mountPropagation"] == "Bidirectional"
    assert container(node, "csi-driver-registrar")["args"][1] == (
        "--kubelet-registration-path=/var/lib/kubelet/plugins/io.openebs.csi-mayastor/csi.sock"
    )

    driver = find(objects, "CSIDriver", "io.openebs.csi-mayastor")
    assert driver["spec"]["attachRequired"] is True
    for name, repl in (("mayastor-single-replica", "1"), ("mayastor-3", "3")):
        klass = find(objects, "StorageClass", name)
        assert klass["provisioner"] == "io.openebs.csi-mayastor"
        assert klass["parameters"]["repl"] == repl
        assert klass["allowVolumeExpansion"] is True

    etcd = find(objects, "StatefulSet", "mayastor-etcd")
    assert etcd["spec"]["replicas"] == 3
    cluster = next(a for a in container(etcd, "etcd")["args"] if a.startswith("--initial-cluster="))
    assert cluster.count("=http://") == 3


def _args(obj: dict[str, Any], name: str) -> list[str]:
    return list(container(obj, name)["args"])


def test_each_value_set_changes_what_it_names() -> None:
    core = "mayastor-agent-core"

    ha_off = render(MATRIX["ha-off"])
    assert not any(o["metadata"]["name"] == "mayastor-agent-ha-node" for o in ha_off)
    assert "--no-switch-over" in _args(find(ha_off, "Deployment", core), "agent-core")

    external = render(MATRIX["external-etcd"])
    assert not any(o["kind"] == "StatefulSet" for o in external)
    store = "etcd://etcd-a.example.org:2379,etcd-b.example.org:2379"
    assert f"--store={store}" in _args(find(external, "Deployment", core), "agent-core")
    engine = _args(find(external, "DaemonSet", "mayastor-io-engine"), "io-engine")
    assert f"--ps-endpoint={store}" in engine

    nats = render(MATRIX["nats-on"])
    find(nats, "Deployment", "mayastor-nats")
    events = "--events=nats://mayastor-nats.mayastor.svc.cluster.local:4222"
    assert events in _args(find(nats, "Deployment", core), "agent-core")

    metrics = render(MATRIX["metrics-on"])
    monitor = find(metrics, "ServiceMonitor", "mayastor")
    assert {e["port"] for e in monitor["spec"]["endpoints"]} == {"rest", "metrics"}
    engine = _args(find(metrics, "DaemonSet", "mayastor-io-engine"), "io-engine")
    assert "--metrics-endpoint=$(MY_POD_IP):9502" in engine

    for objects, on in ((render(), True), (render(MATRIX["dhchap-off"]), False)):
        assert ("--dhchap" in _args(find(objects, "Deployment", core), "agent-core")) is on
        plugin = _args(find(objects, "DaemonSet", "mayastor-csi-node"), "csi-node")
        assert any(a.startswith("--rest-endpoint=http://") for a in plugin) is on

    two = render(MATRIX["two-csi-controllers"])
    provisioner = _args(find(two, "Deployment", "mayastor-csi-controller"), "csi-provisioner")
    assert "--leader-election" in provisioner


_PARSERS: dict[str, Callable[[list[str]], object]] = {
    "mayastor": lambda argv: engine_config(argv),
    "mayastor-agent-core": lambda argv: core_config(argv),
    "mayastor-csi-controller": lambda argv: csi_controller_parser().parse_args(argv),
    "mayastor-csi-node": lambda argv: csi_node_parser().parse_args(argv),
    "mayastor-ha-node": lambda argv: ha_node_parser().parse_args(argv),
    "mayastor-operator-diskpool": lambda argv: operator_parser().parse_args(argv),
}
_ENV = {"$(MY_NODE_NAME)": "worker-1", "$(MY_POD_IP)": "10.1.2.3", "$(POD_NAMESPACE)": NAMESPACE}


@pytest.mark.parametrize("name", list(MATRIX))
def test_our_programs_accept_every_flag_the_chart_gives_them(name: str) -> None:
    seen = set()
    for obj in render(MATRIX[name]):
        if obj["kind"] not in ("Deployment", "DaemonSet", "StatefulSet"):
            continue
        for found in containers(obj):
            command = found.get("command", [None])[0]
            if command not in _PARSERS:
                continue
            argv = list(found.get("args", []))
            for variable, value in _ENV.items():
                argv = [arg.replace(variable, value) for arg in argv]
            try:
                _PARSERS[command](argv)
            except SystemExit as exc:  # argparse's error
                raise AssertionError(f"{command} refuses {argv}") from exc
            seen.add(command)
    expected = set(_PARSERS) - ({"mayastor-ha-node"} if name == "ha-off" else set())
    assert seen == expected


def test_the_images_are_the_projects_own_at_the_charts_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    images = {
        c["image"]
        for obj in render()
        if obj["kind"] in ("Deployment", "DaemonSet")
        for c in containers(obj)
        if c.get("command", [""])[0].startswith("mayastor") or c["name"] == "nvme-tcp-check"
    }
    version = chart["appVersion"]
    assert images == {f"localhost/mayastor:{version}", f"localhost/mayastor-node:{version}"}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"etcd.replicaCount": "three"}, "/etcd/replicaCount': got string, want integer"),
        ({"io_engine.hugepages": "2Gi"}, "additional properties 'hugepages' not allowed"),
        ({"logLevel": "chatty"}, "/logLevel"),
        ({"storageClasses.fsType": "zfs"}, "/storageClasses/fsType"),
        ({"etcd.enabled": "false"}, "set etcd.externalEndpoints"),
        (
            {"etcd.enabled": "false", "etcd.externalEndpoints[0]": "http://e:2379"},
            "externalEndpoints",
        ),
        ({"metrics.serviceMonitor.enabled": "true"}, "needs metrics.enabled"),
        ({"agents.core.ports.rest": "70000"}, "/agents/core/ports/rest"),
    ],
)
def test_bad_values_are_refused_with_a_message_naming_them(
    values: dict[str, str], message: str
) -> None:
    result = helm("template", "x", str(CHART), *set_args(values), check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def _value_keys(value: Any, prefix: str = "") -> set[str]:
    keys: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else key
            keys.add(path)
            keys |= _value_keys(item, path)
    return keys


def _schema_keys(schema: dict[str, Any], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for key, item in schema.get("properties", {}).items():
        path = f"{prefix}.{key}" if prefix else key
        keys.add(path)
        keys |= _schema_keys(item, path)
    return keys


def test_every_value_is_documented_and_typed() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented = []
    for number, line in enumerate(lines):
        if re.match(r"^\s*[\w./-]+:", line) and not line.lstrip().startswith("#"):
            before = lines[number - 1].strip() if number else ""
            if not before.startswith("#"):
                undocumented.append(line.strip())
    assert not undocumented
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    value_keys = _value_keys(values)
    schema_keys = _schema_keys(schema)
    # Maps of the user's own (node selectors, resources) are typed as a whole.
    free = ("nodeSelector", "resources")
    assert {k for k in value_keys if not any(f".{f}." in f".{k}" for f in free)} == {
        k for k in schema_keys if not any(f".{f}." in f".{k}" for f in free)
    }
