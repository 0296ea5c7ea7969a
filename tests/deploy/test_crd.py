"""The DiskPool CRD (deploy/helm/mayastor/crds/diskpools.openebs.io.yaml) and the examples.

The CRD is checked as an API server checks it (a structural schema), and its schema is
applied to DiskPools as an API server applies it on create (tests.support.crd_schema):
the examples in deploy/examples/ pass, and each bad DiskPool of the list is refused with
a reason naming the field. The other examples (a StorageClass, a PVC and its pod) pass
kubernetes-validate --strict.
"""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from mayastor.operator import API_GROUP, API_VERSION, KIND, PLURAL, CrState, PoolStatus
from tests.deploy.chart import EXAMPLES, crd, tool
from tests.support.crd_schema import CustomResourceSchema, structural_problems
from tests.support.kube_api import KubeApi


def _examples() -> list[dict[str, Any]]:
    found = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        found += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def _diskpool_examples() -> list[dict[str, Any]]:
    return [doc for doc in _examples() if doc["kind"] == KIND]


def _schema() -> CustomResourceSchema:
    return CustomResourceSchema(crd())


def test_the_crd_is_diskpool_v1beta2_with_short_name_dsp_and_a_status_subresource() -> None:
    definition = crd()
    assert definition["apiVersion"] == "apiextensions.k8s.io/v1"
    assert definition["metadata"]["name"] == f"{PLURAL}.{API_GROUP}"
    spec = definition["spec"]
    assert spec["group"] == API_GROUP
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == KIND
    assert spec["names"]["plural"] == PLURAL
    assert spec["names"]["shortNames"] == ["dsp"]
    [version] = spec["versions"]
    assert version["name"] == API_VERSION
    assert version["served"] is True
    assert version["storage"] is True
    assert version["subresources"] == {"status": {}}


def test_the_schema_is_structural() -> None:
    [version] = crd()["spec"]["versions"]
    assert structural_problems(version["schema"]["openAPIV3Schema"]) == []


def test_the_status_fields_are_the_operators_and_the_printer_columns_show_them() -> None:
    [version] = crd()["spec"]["versions"]
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert set(status) == {"cr_state", "pool_status", "capacity", "used", "available", "message"}
    assert status["cr_state"]["enum"] == [state.value for state in CrState]
    assert set(status["pool_status"]["enum"]) == {state.value for state in PoolStatus}
    for size in ("capacity", "used", "available"):
        assert status[size]["type"] == "integer"
        assert status[size]["format"] == "int64"
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns == {
        "Node": ".spec.node",
        "State": ".status.cr_state",
        "Pool_Status": ".status.pool_status",
        "Capacity": ".status.capacity",
        "Used": ".status.used",
        "Available": ".status.available",
        "Age": ".metadata.creationTimestamp",
    }


def test_the_schema_accepts_every_diskpool_example() -> None:
    examples = _diskpool_examples()
    assert len(examples) >= 2
    schema = _schema()
    for example in examples:
        assert schema.errors(example) == [], example["metadata"]["name"]


def test_the_schema_accepts_a_diskpool_with_the_status_the_operator_writes() -> None:
    pool = copy.deepcopy(_diskpool_examples()[0])
    pool["status"] = {
        "cr_state": "Created",
        "pool_status": "Online",
        "capacity": 1 << 40,
        "used": 0,
        "available": 1 << 40,
        "message": "",
    }
    assert _schema().errors(pool) == []


def _bad(change: dict[str, Any] | None = None, *, drop: str | None = None) -> dict[str, Any]:
    pool = copy.deepcopy(_diskpool_examples()[0])
    if drop is not None:
        del pool["spec"][drop]
    pool["spec"].update(change or {})
    return pool


_BAD_DISKPOOLS = {
    "no disks field": (_bad(drop="disks"), "'disks' is a required property"),
    "no disk in the list": (_bad({"disks": []}), "disks: [] should be non-empty"),
    "two disks": (_bad({"disks": ["/dev/sdb", "/dev/sdc"]}), "is too long"),
    "disks as a string": (_bad({"disks": "/dev/sdb"}), "disks: '/dev/sdb' is not of type 'array'"),
    "a disk as a number": (_bad({"disks": [7]}), "disks.0: 7 is not of type 'string'"),
    "an empty disk path": (_bad({"disks": [""]}), "disks.0: '' should be non-empty"),
    "no node": (_bad(drop="node"), "'node' is a required property"),
    "node as a number": (_bad({"node": 3}), "node: 3 is not of type 'string'"),
    "node not a name": (_bad({"node": "worker 1/"}), "node: 'worker 1/' does not match"),
    "topology as a list": (_bad({"topology": ["a"]}), "topology: ['a'] is not of type 'object'"),
    "a label value as a number": (
        _bad({"topology": {"labelled": {"tier": 1}}}),
        "topology.labelled.tier: 1 is not of type 'string'",
    ),
    "an unknown spec field": (_bad({"size": "10Gi"}), 'unknown field "spec.size"'),
    "an unknown topology field": (
        _bad({"topology": {"zone": "a"}}),
        'unknown field "spec.topology.zone"',
    ),
    "no spec": ({"apiVersion": "openebs.io/v1beta2", "kind": "DiskPool"}, "'spec' is a required"),
    "another version": (
        {**_bad(), "apiVersion": "openebs.io/v1alpha1"},
        "apiVersion: 'openebs.io/v1alpha1' is not openebs.io/v1beta2",
    ),
}


@pytest.mark.parametrize("case", list(_BAD_DISKPOOLS))
def test_the_schema_refuses_a_bad_diskpool_naming_the_field(case: str) -> None:
    pool, reason = _BAD_DISKPOOLS[case]
    errors = _schema().errors(pool)
    assert any(reason in error for error in errors), errors


def test_the_schema_refuses_a_status_outside_its_states_and_negative_sizes() -> None:
    pool = _bad()
    pool["status"] = {"cr_state": "Exploded", "pool_status": "Online", "used": -1}
    errors = _schema().errors(pool)
    assert any(e.startswith("status.cr_state: 'Exploded' is not one of") for e in errors)
    assert any(e.startswith("status.used: -1 is less than the minimum") for e in errors)


def test_the_other_examples_pass_kubernetes_validate_strict() -> None:
    others = [doc for doc in _examples() if doc["kind"] != KIND]
    assert {doc["kind"] for doc in others} == {"StorageClass", "PersistentVolumeClaim", "Pod"}
    result = subprocess.run(
        [tool("kubernetes-validate"), "--strict", "-k", "1.30.0", "-"],
        input=yaml.safe_dump_all(others),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(" passed ") == len(others), result.stdout


def _kubectl(
    api: KubeApi, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("kubectl"), "--kubeconfig", str(api.kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_kubectl_creates_the_examples_finds_them_as_dsp_and_is_refused_a_bad_one(
    tmp_path: Path,
) -> None:
    """kubectl (from the npm registry package) against the emulated API server serving
    the CRD, as a user applies the examples."""
    with KubeApi(tmp_path, [crd()]) as api:
        names = sorted(pool["metadata"]["name"] for pool in _diskpool_examples())
        for path in sorted(EXAMPLES.glob("diskpool*.yaml")):
            created = _kubectl(api, "create", "--validate=false", "-f", str(path))
            assert created.returncode == 0, created.stderr
        listed = _kubectl(api, "get", "dsp", "-o", "name")
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.split() == [f"diskpool.openebs.io/{name}" for name in names]

        bad, _ = _BAD_DISKPOOLS["two disks"]
        bad = {**bad, "metadata": {"name": "two-disks", "namespace": "mayastor"}}
        refused = _kubectl(api, "create", "--validate=false", "-f", "-", stdin=yaml.safe_dump(bad))
        assert refused.returncode != 0
        assert "is invalid" in refused.stderr
        assert "spec.disks" in refused.stderr
        assert api.get("openebs.io/v1beta2", PLURAL, "two-disks") is None
