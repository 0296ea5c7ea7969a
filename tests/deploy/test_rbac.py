"""The chart's RBAC: each ServiceAccount may do what the containers under it call, and
nothing more (tests.support.k8s_access lists those calls; the operator's are checked
against its real requests in tests/integration/operator).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from tests.deploy.chart import MATRIX, NAMESPACE, render
from tests.support.k8s_access import LEADER_ELECTION, NEEDS, Grant


def _grants_by_account(objects: list[dict[str, Any]]) -> dict[str, set[Grant]]:
    """ServiceAccount name -> every grant its bindings give it."""
    roles: dict[tuple[str, str], set[Grant]] = {}
    for obj in objects:
        if obj["kind"] in ("Role", "ClusterRole"):
            namespaced = obj["kind"] == "Role"
            grants = set()
            for rule in obj.get("rules", []):
                assert "nonResourceURLs" not in rule, obj["metadata"]["name"]
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        for verb in rule["verbs"]:
                            assert "*" not in (group, resource, verb), obj["metadata"]["name"]
                            grants.add(Grant(group, resource, verb, namespaced))
            roles[obj["kind"], obj["metadata"]["name"]] = grants
    accounts: dict[str, set[Grant]] = defaultdict(set)
    for obj in objects:
        if obj["kind"] in ("RoleBinding", "ClusterRoleBinding"):
            ref = obj["roleRef"]
            if obj["kind"] == "ClusterRoleBinding":
                assert ref["kind"] == "ClusterRole"
            for subject in obj["subjects"]:
                assert subject["kind"] == "ServiceAccount"
                assert subject["namespace"] == NAMESPACE
                accounts[subject["name"]] |= roles[ref["kind"], ref["name"]]
    return accounts


@pytest.mark.parametrize("name", list(MATRIX))
def test_each_service_account_is_granted_exactly_what_its_containers_call(name: str) -> None:
    objects = render(MATRIX[name])
    granted = _grants_by_account(objects)
    accounts = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ServiceAccount"}
    seen = set()
    for obj in objects:
        if obj["kind"] not in ("Deployment", "DaemonSet", "StatefulSet"):
            continue
        component = obj["metadata"]["labels"]["app.kubernetes.io/component"]
        pod = obj["spec"]["template"]["spec"]
        account = pod["serviceAccountName"]
        need = set(NEEDS[component])
        if component == "csi-controller" and obj["spec"]["replicas"] > 1:
            need |= LEADER_ELECTION
        assert granted.get(account, set()) == need, (component, account)
        token = pod.get(
            "automountServiceAccountToken",
            accounts[account].get("automountServiceAccountToken", True),
        )
        assert token is bool(need), f"{component} mounts a token: {token}"
        seen.add(component)
    # Every component of the table was looked at (those the values turn on).
    expected = set(NEEDS)
    if name == "ha-off":
        expected.discard("ha-node")
    if name == "external-etcd":
        expected.discard("etcd")
    if name != "nats-on":
        expected.discard("nats")
    assert seen == expected
    # No binding names an account no pod runs under.
    pods_accounts = {
        o["spec"]["template"]["spec"]["serviceAccountName"]
        for o in objects
        if o["kind"] in ("Deployment", "DaemonSet", "StatefulSet")
    }
    assert set(granted) <= pods_accounts


def test_nothing_cluster_wide_is_granted_but_what_the_csi_sidecars_need() -> None:
    objects = render()
    cluster_roles = [o["metadata"]["name"] for o in objects if o["kind"] == "ClusterRole"]
    assert cluster_roles == ["mayastor-csi-controller"]
    operator = _grants_by_account(objects)["mayastor-operator-diskpool"]
    assert all(grant.namespaced for grant in operator)
