"""Nodes: the spec kept for each io-engine, its labels, and cordons.

A cordoned node (one or more cordon labels) gets no new replica and no new target;
what it holds already stays. The spec is made when a node first registers, and
follows its endpoint and host NQN when they change.
"""

from __future__ import annotations

import logging

from mayastor.api.v1 import registration_pb2
from mayastor.control.cluster import Cluster
from mayastor.control.names import check_label
from mayastor.control.specs import CordonDrainState, CordonedState, NodeSpec
from mayastor.errors import Conflict, NotFound

log = logging.getLogger(__name__)


async def record_node(cluster: Cluster, request: registration_pb2.RegisterNodeRequest) -> None:
    """Make or update the node's spec from a registration (a no-op when it is current)."""
    spec = cluster.node_spec(request.id)
    if spec is None:
        spec = NodeSpec(
            id=request.id,
            grpcEndpoint=request.grpc_endpoint,
            node_nqn=request.hostnqn,
            version=request.version or None,
        )
    elif (spec.grpcEndpoint, spec.node_nqn, spec.version) == (
        request.grpc_endpoint,
        request.hostnqn,
        request.version or None,
    ):
        return
    else:
        spec.grpcEndpoint = request.grpc_endpoint
        spec.node_nqn = request.hostnqn
        spec.version = request.version or None
    await cluster.specs.save(spec)


def _spec(cluster: Cluster, node: str) -> NodeSpec:
    spec = cluster.node_spec(node)
    if spec is None:
        raise NotFound(f"node {node!r} not found")
    return spec


async def set_node_label(
    cluster: Cluster, node: str, key: str, value: str, overwrite: bool
) -> NodeSpec:
    """Add a label to a node (used by topology rules).

    Raises:
        NotFound: no such node. Conflict: the key has another value and not `overwrite`.
    """
    check_label(key, value)
    async with cluster.locks.hold("node", node):
        spec = _spec(cluster, node)
        if spec.labels.get(key, value) != value and not overwrite:
            raise Conflict(
                f"node {node} has label {key}={spec.labels[key]}; overwrite to change it"
            )
        if spec.labels.get(key) != value:
            spec.labels[key] = value
            await cluster.specs.save(spec)
        return spec


async def remove_node_label(cluster: Cluster, node: str, key: str) -> NodeSpec:
    check_label(key)
    async with cluster.locks.hold("node", node):
        spec = _spec(cluster, node)
        if key in spec.labels:
            del spec.labels[key]
            await cluster.specs.save(spec)
        return spec


async def cordon_node(cluster: Cluster, node: str, label: str) -> NodeSpec:
    """Cordon a node under `label` (several labels may hold one cordon)."""
    check_label(label)
    async with cluster.locks.hold("node", node):
        spec = _spec(cluster, node)
        labels = spec.cordondrainstate.cordon_labels if spec.cordondrainstate else []
        if label in labels:
            return spec
        state = spec.cordondrainstate or CordonDrainState()
        if state.drainingstate is not None or state.drainedstate is not None:
            drain = state.drainingstate or state.drainedstate
            assert drain is not None
            drain.cordonlabels.append(label)
        else:
            state.cordonedstate = CordonedState(cordonlabels=[*labels, label])
        spec.cordondrainstate = state
        await cluster.specs.save(spec)
        log.info("node %s cordoned (%s)", node, label)
        return spec


async def uncordon_node(cluster: Cluster, node: str, label: str) -> NodeSpec:
    """Take the cordon `label` off; the node is schedulable once no label is left.

    Raises:
        NotFound: no such node, or it has no cordon of that label.
    """
    check_label(label)
    async with cluster.locks.hold("node", node):
        spec = _spec(cluster, node)
        state = spec.cordondrainstate
        labels = state.cordon_labels if state else []
        if label not in labels:
            raise NotFound(f"node {node} has no cordon labelled {label!r} (it has {labels})")
        assert state is not None
        for part in (state.cordonedstate, state.drainingstate, state.drainedstate):
            if part is not None and label in part.cordonlabels:
                part.cordonlabels.remove(label)
        if not state.cordon_labels and state.drainingstate is None and state.drainedstate is None:
            spec.cordondrainstate = None
        await cluster.specs.save(spec)
        log.info("node %s: cordon %s removed", node, label)
        return spec
