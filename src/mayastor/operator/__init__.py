"""The DiskPool operator: Kubernetes ``DiskPool`` resources (``openebs.io/v1beta2``) kept
in step with the core agent's pools.

A `DiskPool` names a node and one disk; the operator creates the pool there through the
core agent's REST API (``PUT /v0/nodes/{node}/pools/{name}``), mirrors the pool's state
into the resource's status, and destroys the pool when the resource is deleted (refused,
with the finalizer kept, while replicas live on it). It reaches the control plane only
through REST (`mayastor.restclient`) and Kubernetes only through kopf; it keeps no state
of its own beyond what the resource and the core agent hold, so it can be restarted at
any moment.

`parse_spec` and `pool_status` are the pure parts; `DiskPoolReconciler` decides what to
do (and knows nothing of kopf); `mayastor.operator.handlers` wires it into kopf and
`mayastor.operator.main` is the ``mayastor-operator-diskpool`` command.
"""

from mayastor.operator._reconciler import DiskPoolReconciler, Outcome, PoolEvent
from mayastor.operator._spec import (
    API_GROUP,
    API_VERSION,
    FINALIZER,
    KIND,
    PLURAL,
    DiskPoolSpec,
    SpecError,
    parse_spec,
)
from mayastor.operator._status import CrState, PoolStatus, pool_status

__all__ = [
    "API_GROUP",
    "API_VERSION",
    "FINALIZER",
    "KIND",
    "PLURAL",
    "CrState",
    "DiskPoolReconciler",
    "DiskPoolSpec",
    "Outcome",
    "PoolEvent",
    "PoolStatus",
    "SpecError",
    "parse_spec",
    "pool_status",
]
