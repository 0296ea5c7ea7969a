"""Pools: created (or imported) on a node, labelled, destroyed; brought back after restarts.

The spec is written as Creating before the io-engine is asked, and as Created once it
answered; a core agent killed in between leaves a Creating spec that the reconciler
resolves by asking the io-engine whether the pool is there.
"""

from __future__ import annotations

import logging

from mayastor.control.cluster import Cluster
from mayastor.control.models import CreatePoolBody
from mayastor.control.names import check_label, check_name
from mayastor.control.specs import OperationRecord, PoolSpec, ReplicaSpec, SpecStatus
from mayastor.errors import (
    Conflict,
    InUse,
    MayastorError,
    NotFound,
    Unavailable,
)

log = logging.getLogger(__name__)


def _check_node_known(cluster: Cluster, node: str) -> None:
    if cluster.nodes.record(node) is None and cluster.node_spec(node) is None:
        raise NotFound(f"node {node!r} is not known (no io-engine of that name registered)")


async def create_pool(cluster: Cluster, node: str, pool_id: str, body: CreatePoolBody) -> PoolSpec:
    """Create the pool on `node`, or import it when its disk holds it; persist its spec.

    The same request again succeeds and changes nothing.

    Raises:
        InvalidArgument: a bad name, disk or label.
        NotFound: the node is not known.
        Unavailable: the node is offline.
        Conflict: a pool of that name exists with other settings.
        Whatever the io-engine refuses with (a disk holding another pool, ...).
    """
    check_name("pool", pool_id)
    labels = dict(body.labels or {})
    for key, value in labels.items():
        check_label(key, value)
    disks = list(body.disks)
    async with cluster.locks.hold("pool", pool_id):
        existing = cluster.specs.get(PoolSpec, pool_id)
        if existing is not None:
            if existing.node != node or existing.disks != disks:
                raise Conflict(
                    f"pool {pool_id} exists on node {existing.node} over {existing.disks}; "
                    f"it cannot be made on node {node} over {disks}"
                )
            if existing.labels != labels and body.labels is not None:
                raise Conflict(f"pool {pool_id} exists with labels {existing.labels}")
            if existing.status is SpecStatus.CREATED:
                return existing
            if existing.status is SpecStatus.DELETING:
                raise Conflict(f"pool {pool_id} is being deleted")
        _check_node_known(cluster, node)
        engine = cluster.engine(node)
        spec = existing or PoolSpec(
            node=node,
            id=pool_id,
            disks=disks,
            labels=labels,
            status=SpecStatus.CREATING,
            operation=OperationRecord(operation="Create"),
        )
        if existing is None:
            await cluster.specs.save(spec)
        try:
            await engine.create_pool(pool_id, disks)
        except Unavailable:
            raise  # the reconciler asks the node once it is back
        except MayastorError:
            await cluster.specs.remove(spec)
            raise
        spec.status = SpecStatus.CREATED
        spec.operation = None
        await cluster.specs.save(spec)
        log.info("pool %s created on node %s over %s", pool_id, node, ", ".join(disks))
        await cluster.nodes.poll(node)
        return spec


async def destroy_pool(cluster: Cluster, pool_id: str, node: str | None = None) -> None:
    """Destroy a pool and forget its spec; refused while replicas live on it.

    Raises:
        NotFound: no such pool (on that node).
        InUse: replicas live on it.
        Unavailable: its node is offline (nothing is changed).
    """
    async with cluster.locks.hold("pool", pool_id):
        spec = cluster.specs.get(PoolSpec, pool_id)
        if spec is None or (node is not None and spec.node != node):
            raise NotFound(f"pool {pool_id!r} not found" + (f" on node {node}" if node else ""))
        users = [r for r in cluster.specs.view(ReplicaSpec) if r.pool == pool_id]
        record = await cluster.nodes.poll(spec.node)
        unmanaged = [
            r.uuid
            for r in (record.replicas if record is not None else [])
            if r.poolname == pool_id and not any(str(u.uuid) == r.uuid for u in users)
        ]
        if users or unmanaged:
            owners = sorted(
                {str(r.owners.volume) for r in users if r.owners.volume} | set(unmanaged)
            )
            raise InUse(
                f"pool {pool_id} holds {len(users) + len(unmanaged)} replica(s) "
                f"({', '.join(owners)}); delete them first"
            )
        engine = cluster.engine(spec.node)
        spec.status = SpecStatus.DELETING
        spec.operation = OperationRecord(operation="Destroy")
        await cluster.specs.save(spec)
        try:
            await engine.destroy_pool(pool_id)
        except NotFound:
            pass
        await cluster.specs.remove(spec)
        log.info("pool %s destroyed on node %s", pool_id, spec.node)
        await cluster.nodes.poll(spec.node)


async def set_pool_label(
    cluster: Cluster, pool_id: str, key: str, value: str, overwrite: bool
) -> PoolSpec:
    """Add a label to a pool's spec.

    Raises:
        NotFound: no such pool. Conflict: the key has another value and not `overwrite`.
    """
    check_label(key, value)
    async with cluster.locks.hold("pool", pool_id):
        spec = cluster.specs.get(PoolSpec, pool_id)
        if spec is None:
            raise NotFound(f"pool {pool_id!r} not found")
        if spec.labels.get(key, value) != value and not overwrite:
            raise Conflict(
                f"pool {pool_id} has label {key}={spec.labels[key]}; overwrite to change it"
            )
        if spec.labels.get(key) != value:
            spec.labels[key] = value
            await cluster.specs.save(spec)
        return spec


async def remove_pool_label(cluster: Cluster, pool_id: str, key: str) -> PoolSpec:
    """Remove a label from a pool's spec (nothing to do when it has none)."""
    check_label(key)
    async with cluster.locks.hold("pool", pool_id):
        spec = cluster.specs.get(PoolSpec, pool_id)
        if spec is None:
            raise NotFound(f"pool {pool_id!r} not found")
        if key in spec.labels:
            del spec.labels[key]
            await cluster.specs.save(spec)
        return spec


async def reconcile_pool(cluster: Cluster, spec: PoolSpec) -> None:
    """Bring a pool's spec and its node together (the node is Online).

    Creating: Created if the io-engine has it, else the spec goes. Created but missing
    (the io-engine restarted): imported from its disk. Deleting: destroyed.
    """
    engine = cluster.engine(spec.node)
    present = cluster.engine_pool(spec.node, spec.id) is not None
    if spec.status is SpecStatus.CREATING:
        if present:
            spec.status = SpecStatus.CREATED
            spec.operation = None
            await cluster.specs.save(spec)
            log.info("pool %s: an interrupted create had finished on node %s", spec.id, spec.node)
        else:
            await cluster.specs.remove(spec)
            log.info(
                "pool %s: an interrupted create is undone (not on node %s)", spec.id, spec.node
            )
    elif spec.status is SpecStatus.CREATED and not present:
        log.info("pool %s missing on node %s: importing it from %s", spec.id, spec.node, spec.disks)
        try:
            await engine.import_pool(spec.id, spec.disks)
        except MayastorError as exc:
            log.error("pool %s could not be imported on node %s: %s", spec.id, spec.node, exc)
            return
        await cluster.nodes.poll(spec.node)
    elif spec.status is SpecStatus.DELETING:
        try:
            await engine.destroy_pool(spec.id)
        except NotFound:
            pass
        await cluster.specs.remove(spec)
        log.info("pool %s: an interrupted destroy is finished", spec.id)
