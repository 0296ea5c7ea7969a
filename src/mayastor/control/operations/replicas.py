"""A volume's replicas: placed, created, shared with its target's node, destroyed.

Each replica's spec is written before the io-engine is asked (Creating, Deleting),
so a replica never exists on an io-engine without a spec that accounts for it.
Replicas carry the volume's uuid as their entity id: the mark of a replica the
control plane made, which lets orphans be recognised.
"""

from __future__ import annotations

import logging
import uuid as uuid_mod
from collections.abc import Iterable

from mayastor.api.v1 import common_pb2, pool_pb2
from mayastor.control.cluster import Cluster
from mayastor.control.node_secrets import host_secrets
from mayastor.control.placement import PoolView, place_replicas
from mayastor.control.specs import (
    NodeSpec,
    OperationRecord,
    PoolSpec,
    Protocol,
    ReplicaOwners,
    ReplicaSpec,
    SpecStatus,
    VolumeSpec,
    node_nqn,
)
from mayastor.errors import MayastorError, NotFound, Unavailable

log = logging.getLogger(__name__)


def affinity_peers(cluster: Cluster, volume: VolumeSpec) -> set[str]:
    """The other volumes of `volume`'s affinity group (uuids; empty without a group)."""
    if volume.affinity_group is None:
        return set()
    group = volume.affinity_group.id
    return {
        str(v.uuid)
        for v in cluster.specs.view(VolumeSpec)
        if v.affinity_group is not None and v.affinity_group.id == group and v.uuid != volume.uuid
    }


def pool_views(cluster: Cluster, volume: VolumeSpec | None = None) -> list[PoolView]:
    """Every managed, created pool as placement sees it now (for `volume`: with the
    replicas of its affinity group counted per node)."""
    counts: dict[str, int] = {}
    group_counts: dict[str, int] = {}
    peers = affinity_peers(cluster, volume) if volume is not None else set()
    for replica in cluster.specs.view(ReplicaSpec):
        counts[replica.pool] = counts.get(replica.pool, 0) + 1
        if replica.owners.volume is not None and str(replica.owners.volume) in peers:
            group_counts[replica.node] = group_counts.get(replica.node, 0) + 1
    views = []
    for spec in cluster.specs.all(PoolSpec):
        if spec.status is not SpecStatus.CREATED:
            continue
        node = cluster.specs.get(NodeSpec, spec.node)
        online = cluster.nodes.online(spec.node)
        found = cluster.engine_pool(spec.node, spec.id) if online else None
        views.append(
            PoolView(
                id=spec.id,
                node=spec.node,
                capacity=found.capacity if found else 0,
                used=found.used if found else 0,
                committed=found.committed if found else 0,
                replicas=counts.get(spec.id, 0),
                cluster_size=max(1, found.cluster_size) if found else 1,
                online=found is not None and found.state == pool_pb2.POOL_ONLINE,
                node_online=online,
                node_cordoned=node.cordoned if node else False,
                node_labels=dict(node.labels) if node else {},
                labels=dict(spec.labels),
                group_replicas=group_counts.get(spec.node, 0),
            )
        )
    return views


def place_for(cluster: Cluster, volume: VolumeSpec, count: int) -> list[PoolView]:
    """Pools for `count` more replicas of `volume`, away from the nodes it uses.

    Raises:
        FailedPrecondition: not enough suitable pools.
    """
    existing = cluster.specs.replicas_of(volume)
    views = pool_views(cluster, volume)
    by_id = {v.id: v for v in views}
    chosen = [
        (by_id[r.pool].node_labels, by_id[r.pool].labels) for r in existing if r.pool in by_id
    ]
    return place_replicas(
        views,
        count=count,
        size=volume.size,
        thin=volume.thin,
        topology=volume.topology,
        exclude_nodes={r.node for r in existing},
        chosen_labels=chosen,
        limits=cluster.limits,
    )


def new_replica_spec(volume: VolumeSpec, pool: PoolView) -> ReplicaSpec:
    replica_uuid = uuid_mod.uuid4()
    return ReplicaSpec(
        uuid=replica_uuid,
        name=str(replica_uuid),
        size=volume.size,
        pool=pool.id,
        node=pool.node,
        thin=volume.thin,
        status=SpecStatus.CREATING,
        owners=ReplicaOwners(volume=volume.uuid),
        operation=OperationRecord(operation="Create"),
    )


async def create_replica(cluster: Cluster, spec: ReplicaSpec) -> ReplicaSpec:
    """Write the spec (Creating), make the replica, mark it Created.

    Raises:
        Whatever the io-engine or the store raise. The spec is left Creating for the
        caller (or the reconciler) to undo.
    """
    await cluster.specs.save(spec)
    await cluster.engine(spec.node).create_replica(
        name=spec.name,
        uuid=str(spec.uuid),
        pool=spec.pool,
        size=spec.size,
        thin=spec.thin,
        entity_id=str(spec.owners.volume or ""),
    )
    spec.status = SpecStatus.CREATED
    spec.operation = None
    await cluster.specs.save(spec)
    log.info("replica %s created in pool %s on node %s", spec.uuid, spec.pool, spec.node)
    await cluster.nodes.poll(spec.node)
    return spec


async def destroy_replica(cluster: Cluster, spec: ReplicaSpec) -> bool:
    """Mark the spec Deleting, destroy the replica, forget the spec.

    Returns:
        False when its node is offline: the spec stays Deleting and the reconciler
        finishes once the node is back.
    """
    if spec.status is not SpecStatus.DELETING:
        spec.status = SpecStatus.DELETING
        spec.operation = OperationRecord(operation="Destroy")
        await cluster.specs.save(spec)
    try:
        await cluster.engine(spec.node).destroy_replica(str(spec.uuid))
    except NotFound:
        pass
    except Unavailable as exc:
        log.warning(
            "replica %s: node %s is away, it is destroyed later: %s", spec.uuid, spec.node, exc
        )
        return False
    await cluster.specs.remove(spec)
    log.info("replica %s destroyed on node %s", spec.uuid, spec.node)
    await cluster.nodes.poll(spec.node)
    return True


async def destroy_replicas(cluster: Cluster, specs: Iterable[ReplicaSpec]) -> None:
    """Destroy each replica; one that fails with an error of the io-engine is logged."""
    for spec in specs:
        try:
            await destroy_replica(cluster, spec)
        except MayastorError as exc:
            log.error("replica %s could not be destroyed: %s", spec.uuid, exc)


async def child_uri(cluster: Cluster, replica: ReplicaSpec, target_node: str) -> str:
    """How a nexus on `target_node` reaches `replica`: in-process when local, else over
    NVMe/TCP, shared only with `target_node`'s host NQN (and, with ``--dhchap``, its
    secret)."""
    if replica.node == target_node:
        if replica.share is not Protocol.NONE:
            await unshare_replica(cluster, replica)
        return cluster.local_uri(replica)
    host = node_nqn(target_node)
    secrets = await host_secrets(cluster, [target_node])
    shared = await cluster.engine(replica.node).share_replica(str(replica.uuid), [host], secrets)
    if replica.share is not Protocol.NVMF or replica.allowed_hosts != [host]:
        replica.share = Protocol.NVMF
        replica.allowed_hosts = [host]
        await cluster.specs.save(replica)
    return shared.uri


async def unshare_replica(cluster: Cluster, replica: ReplicaSpec) -> None:
    """Stop sharing a replica (its node must be Online; NotFound is fine)."""
    try:
        await cluster.engine(replica.node).unshare_replica(str(replica.uuid))
    except NotFound:
        pass
    if replica.share is not Protocol.NONE or replica.allowed_hosts:
        replica.share = Protocol.NONE
        replica.allowed_hosts = []
        await cluster.specs.save(replica)


def is_shared(cluster: Cluster, replica: ReplicaSpec) -> bool:
    """Whether the io-engine shares the replica now (as last polled)."""
    found = cluster.engine_replica(replica.node, replica.uuid)
    return found is not None and found.share == common_pb2.NVMF
