"""What each component of the Helm chart asks of the Kubernetes API, as RBAC rules.

The DiskPool operator's entry is checked against the requests it really makes to the
emulated API server (tests/integration/operator); the CSI sidecars' entries are what
their upstream deployments document for the features the chart turns on (no snapshots,
no volume attributes classes). Every other component (io-engine, core agent, CSI node
plugin, node-driver-registrar, ha-node agent, etcd, NATS) never calls the Kubernetes
API. tests/deploy/test_rbac.py checks that the chart grants each ServiceAccount exactly
what the containers that run under it need: everything here, nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Grant:
    """One verb on one resource, in the release's namespace or cluster-wide."""

    group: str  # "" for the core API
    resource: str  # plural, "pods/status" for a subresource
    verb: str
    namespaced: bool  # True: a Role in the release's namespace; False: a ClusterRole


def _grants(group: str, resource: str, verbs: str, *, namespaced: bool) -> set[Grant]:
    return {Grant(group, resource, verb, namespaced) for verb in verbs.split()}


OPERATOR = (
    _grants("openebs.io", "diskpools", "list watch patch", namespaced=True)
    | _grants("openebs.io", "diskpools/status", "patch", namespaced=True)
    | _grants("", "events", "create", namespaced=True)
)
"""mayastor-operator-diskpool (kopf, namespaced, no peering, no scanning): watches the
DiskPools, patches their finalizer and annotations and their status, posts Events."""

LEADER_ELECTION = _grants(
    "coordination.k8s.io", "leases", "get watch list create update", namespaced=True
)
"""What each CSI sidecar needs when it runs with --leader-election (controller replicas > 1)."""

CSI_PROVISIONER = (
    _grants("", "persistentvolumes", "get list watch create delete", namespaced=False)
    | _grants("", "persistentvolumeclaims", "get list watch update", namespaced=False)
    | _grants("storage.k8s.io", "storageclasses", "get list watch", namespaced=False)
    | _grants("", "events", "list watch create update patch", namespaced=False)
    | _grants("storage.k8s.io", "csinodes", "get list watch", namespaced=False)
    | _grants("", "nodes", "get list watch", namespaced=False)
    | _grants("storage.k8s.io", "volumeattachments", "get list watch", namespaced=False)
)
"""external-provisioner v5 (kubernetes-csi/external-provisioner deploy/kubernetes/rbac.yaml),
with topology and --extra-create-metadata, without snapshots."""

CSI_ATTACHER = (
    _grants("", "persistentvolumes", "get list watch patch", namespaced=False)
    | _grants("storage.k8s.io", "csinodes", "get list watch", namespaced=False)
    | _grants("storage.k8s.io", "volumeattachments", "get list watch patch", namespaced=False)
    | _grants("storage.k8s.io", "volumeattachments/status", "patch", namespaced=False)
)
"""external-attacher v4 (kubernetes-csi/external-attacher deploy/kubernetes/rbac.yaml)."""

CSI_RESIZER = (
    _grants("", "persistentvolumes", "get list watch patch", namespaced=False)
    | _grants("", "persistentvolumeclaims", "get list watch", namespaced=False)
    | _grants("", "pods", "get list watch", namespaced=False)
    | _grants("", "persistentvolumeclaims/status", "patch", namespaced=False)
    | _grants("", "events", "list watch create update patch", namespaced=False)
)
"""external-resizer v1 (kubernetes-csi/external-resizer deploy/kubernetes/rbac.yaml)."""

CSI_CONTROLLER = CSI_PROVISIONER | CSI_ATTACHER | CSI_RESIZER
"""The CSI controller pod: mayastor-csi-controller itself talks only to the REST API."""

NONE: frozenset[Grant] = frozenset()

NEEDS: dict[str, frozenset[Grant]] = {
    "operator-diskpool": frozenset(OPERATOR),
    "csi-controller": frozenset(CSI_CONTROLLER),
    "csi-node": NONE,
    "io-engine": NONE,
    "agent-core": NONE,
    "ha-node": NONE,
    "etcd": NONE,
    "nats": NONE,
}
"""Component (the chart's ``app.kubernetes.io/component`` label) -> what it needs."""
