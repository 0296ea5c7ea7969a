"""Nodes: the spec kept for each io-engine, its labels, and cordons.

A cordoned node (one or more cordon labels) gets no new replica and no new target;
what it holds already stays. The spec is made when a node first registers, and
follows its endpoint and host NQN when they change.
"""

from __future__ import annotations

import logging

from mayastor.api.v1 import registration_pb2
from mayastor.control.cluster import Cluster
from mayastor.control.events import EventCategory
from mayastor.control.names import check_label
from mayastor.control.specs import CordonDrainState, NodeSpec
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


def _labels(spec: NodeSpec) -> tuple[list[str], list[str], bool]:
    state = spec.cordondrainstate
    if state is None:
        return [], [], False
    return state.cordon_labels, state.drain_labels, state.drainedstate is not None


async def cordon_node(cluster: Cluster, node: str, label: str) -> NodeSpec:
    """Cordon a node under `label` (several labels may hold one cordon)."""
    check_label(label)
    async with cluster.locks.hold("node", node):
        spec = _spec(cluster, node)
        cordon, drain, drained = _labels(spec)
        if label in cordon:
            return spec
        spec.cordondrainstate = CordonDrainState.of([*cordon, label], drain, drained=drained)
        await cluster.specs.save(spec)
        log.info("node %s cordoned (%s)", node, label)
        return spec


async def drain_node(cluster: Cluster, node: str, label: str) -> NodeSpec:
    """Cordon the node and move every volume target off it (the reconciler does the
    moving, `drain_step`); the node is Drained once none is left.

    Raises:
        NotFound: no such node.
    """
    check_label(label)
    async with cluster.locks.hold("node", node):
        spec = _spec(cluster, node)
        cordon, drain, _ = _labels(spec)
        if label in drain:
            return spec
        spec.cordondrainstate = CordonDrainState.of(cordon, [*drain, label])
        await cluster.specs.save(spec)
        cluster.emit(EventCategory.NODE, "Draining", node, f"node {node} is draining ({label})")
        return spec


async def uncordon_node(cluster: Cluster, node: str, label: str) -> NodeSpec:
    """Take the cordon or drain `label` off; the node is schedulable once none is left.

    Raises:
        NotFound: no such node, or it has no cordon or drain of that label.
    """
    check_label(label)
    async with cluster.locks.hold("node", node):
        spec = _spec(cluster, node)
        cordon, drain, drained = _labels(spec)
        if label not in cordon and label not in drain:
            raise NotFound(
                f"node {node} has no cordon or drain labelled {label!r} "
                f"(cordons {cordon}, drains {drain})"
            )
        cordon = [c for c in cordon if c != label]
        drain = [d for d in drain if d != label]
        spec.cordondrainstate = CordonDrainState.of(cordon, drain, drained=drained)
        await cluster.specs.save(spec)
        log.info("node %s: cordon %s removed", node, label)
        return spec


async def mark_drained(cluster: Cluster, node: str) -> None:
    """A draining node whose targets are all gone becomes Drained."""
    async with cluster.locks.hold("node", node):
        spec = _spec(cluster, node)
        cordon, drain, drained = _labels(spec)
        if not drain or drained:
            return
        spec.cordondrainstate = CordonDrainState.of(cordon, drain, drained=True)
        await cluster.specs.save(spec)
        cluster.emit(EventCategory.NODE, "Drained", node, f"node {node} holds no target any more")
