"""Volumes: create, destroy, scale and resize; and settling what a crash interrupted.

Every entry point takes the volume's lock, settles an operation a crashed core agent
left behind, then records its own operation in the volume's spec before its first
step. `settle_volume` knows, for each operation, whether to finish it (destroy,
unpublish, removing a replica, resize) or undo it (create, publish, adding a
replica); the reconciler calls it for every volume that carries an operation.
"""

from __future__ import annotations

import logging
import uuid as uuid_mod
from collections.abc import Awaitable, Callable

from mayastor.api.v1 import nexus_pb2
from mayastor.control.cluster import Cluster
from mayastor.control.models import CreateVolumeBody, PublishVolumeBody
from mayastor.control.operations.replicas import (
    child_uri,
    create_replica,
    destroy_replica,
    destroy_replicas,
    new_replica_spec,
    place_for,
    pool_views,
)
from mayastor.control.operations.targets import (
    destroy_target,
    finish_unpublish,
    publish_volume,
    undo_publish,
    undo_recreate,
    undo_republish,
    unpublish_volume,
)
from mayastor.control.specs import (
    OperationRecord,
    ReplicaSpec,
    SpecStatus,
    VolumePolicy,
    VolumeSpec,
)
from mayastor.errors import (
    Conflict,
    FailedPrecondition,
    InvalidArgument,
    MayastorError,
    NotFound,
    Unavailable,
)

log = logging.getLogger(__name__)


def _get(cluster: Cluster, volume_uuid: uuid_mod.UUID) -> VolumeSpec:
    spec = cluster.specs.get(VolumeSpec, str(volume_uuid))
    if spec is None:
        raise NotFound(f"volume {volume_uuid} not found")
    return spec


def _check_usable(spec: VolumeSpec) -> None:
    if spec.status is SpecStatus.DELETING:
        raise Conflict(f"volume {spec.uuid} is being deleted")
    if spec.status is not SpecStatus.CREATED:
        raise Conflict(f"volume {spec.uuid} is still being created")


# ============================================================================ create / destroy


def _same_request(spec: VolumeSpec, body: CreateVolumeBody) -> bool:
    return (
        spec.size == body.size
        and spec.num_replicas == body.replicas
        and spec.thin == body.thin
        and spec.policy.self_heal == body.policy.self_heal
        and spec.topology == body.topology
        and (spec.labels or {}) == (body.labels or {})
    )


async def create_volume(
    cluster: Cluster, volume_uuid: uuid_mod.UUID, body: CreateVolumeBody
) -> VolumeSpec:
    """Place and create the volume's replicas; the same request again changes nothing.

    Raises:
        InvalidArgument: size or replica count of 0.
        Conflict: the volume exists with other settings, or is being deleted.
        FailedPrecondition: not enough nodes or pools (nothing is created).
        Whatever the io-engines raise (what was made is removed again).
    """
    if body.size == 0:
        raise InvalidArgument("a volume's size must be more than 0 bytes")
    if body.replicas == 0:
        raise InvalidArgument("a volume needs at least 1 replica")
    async with cluster.locks.hold("volume", str(volume_uuid)):
        existing = cluster.specs.get(VolumeSpec, str(volume_uuid))
        if existing is not None:
            existing = await settle_volume(cluster, existing)
        if existing is not None:
            if existing.status is SpecStatus.DELETING:
                raise Conflict(f"volume {volume_uuid} is being deleted")
            if not _same_request(existing, body):
                raise Conflict(
                    f"volume {volume_uuid} exists with other settings "
                    f"({existing.size} bytes, {existing.num_replicas} replica(s), "
                    f"thin={existing.thin})"
                )
            return existing
        spec = VolumeSpec(
            uuid=volume_uuid,
            size=body.size,
            num_replicas=body.replicas,
            status=SpecStatus.CREATING,
            policy=VolumePolicy(self_heal=body.policy.self_heal),
            thin=body.thin,
            topology=body.topology,
            labels=body.labels,
            affinity_group=body.affinity_group,
            max_snapshots=body.max_snapshots,
        )
        pools = place_for(cluster, spec, body.replicas)
        replicas = [new_replica_spec(spec, pool) for pool in pools]
        spec.operation = OperationRecord(
            operation="Create", args={"replicas": [str(r.uuid) for r in replicas]}
        )
        await cluster.specs.save(spec)
        try:
            for replica in replicas:
                await create_replica(cluster, replica)
        except MayastorError:
            await undo_create(cluster, spec)
            raise
        spec.status = SpecStatus.CREATED
        spec.operation = None
        await cluster.specs.save(spec)
        log.info(
            "volume %s created: %d bytes, %d replica(s) in pools %s",
            volume_uuid,
            spec.size,
            len(replicas),
            ", ".join(f"{p.id}@{p.node}" for p in pools),
        )
        return spec


async def undo_create(cluster: Cluster, spec: VolumeSpec) -> None:
    """Remove what an unfinished create made: its replicas, then its spec."""
    await destroy_replicas(cluster, cluster.specs.replicas_of(spec))
    await cluster.specs.remove(spec)
    log.info("volume %s: an unfinished create is undone", spec.uuid)


async def destroy_volume(cluster: Cluster, volume_uuid: uuid_mod.UUID) -> None:
    """Unpublish the volume and destroy every replica; forget its spec.

    A replica whose node is offline is destroyed when the node comes back.

    Raises:
        NotFound: no such volume.
    """
    async with cluster.locks.hold("volume", str(volume_uuid)):
        spec = _get(cluster, volume_uuid)
        settled = await settle_volume(cluster, spec)
        if settled is None:
            return
        spec = settled
        spec.status = SpecStatus.DELETING
        spec.operation = OperationRecord(operation="Destroy")
        await cluster.specs.save(spec)
        await finish_destroy(cluster, spec)


async def finish_destroy(cluster: Cluster, spec: VolumeSpec) -> None:
    for nexus in cluster.specs.nexuses_of(spec):
        await destroy_target(cluster, nexus, force=True)
    await destroy_replicas(cluster, cluster.specs.replicas_of(spec))
    for nexus_uuid in {spec.health_info_id, spec.target.nexus if spec.target else None}:
        if nexus_uuid is not None:
            await cluster.forget_nexus_info(nexus_uuid)
    await cluster.specs.remove(spec)
    log.info("volume %s destroyed", spec.uuid)


# ============================================================================ publish


async def publish(
    cluster: Cluster, volume_uuid: uuid_mod.UUID, body: PublishVolumeBody
) -> VolumeSpec:
    async with cluster.locks.hold("volume", str(volume_uuid)):
        spec = await _usable(cluster, volume_uuid)
        return await publish_volume(cluster, spec, body)


async def unpublish(cluster: Cluster, volume_uuid: uuid_mod.UUID, *, force: bool) -> VolumeSpec:
    async with cluster.locks.hold("volume", str(volume_uuid)):
        spec = await _usable(cluster, volume_uuid)
        return await unpublish_volume(cluster, spec, force=force)


async def _usable(cluster: Cluster, volume_uuid: uuid_mod.UUID) -> VolumeSpec:
    spec = await settle_volume(cluster, _get(cluster, volume_uuid))
    if spec is None:
        raise NotFound(f"volume {volume_uuid} not found")
    _check_usable(spec)
    return spec


# ============================================================================ scale


def _child_states(cluster: Cluster, spec: VolumeSpec) -> dict[str, nexus_pb2.Child]:
    if spec.target is None or spec.target.nexus is None:
        return {}
    nexus = cluster.engine_nexus(spec.target.node, spec.target.nexus)
    return {c.uuid: c for c in nexus.children} if nexus is not None else {}


def replica_to_remove(cluster: Cluster, spec: VolumeSpec) -> ReplicaSpec:
    """The replica scaling down takes: an unusable or unhealthy one first, never the last
    healthy one; among healthy ones, one away from the target on the busiest pool.

    Raises:
        FailedPrecondition: every replica left is the last healthy one.
    """
    replicas = cluster.specs.replicas_of(spec)
    children = _child_states(cluster, spec)
    published = bool(children)
    busy = {v.id: (v.replicas, -v.free) for v in pool_views(cluster)}

    def health(replica: ReplicaSpec) -> int:
        if not cluster.nodes.online(replica.node):
            return 0
        if cluster.engine_replica(replica.node, replica.uuid) is None:
            return 0
        child = children.get(str(replica.uuid))
        if published and child is None:
            return 1
        if child is not None and child.state == nexus_pb2.CHILD_STATE_FAULTED:
            return 1
        if child is not None and child.state == nexus_pb2.CHILD_STATE_DEGRADED:
            return 2
        return 3

    target_node = spec.target.node if spec.target else None
    ranked = sorted(
        replicas,
        key=lambda r: (
            health(r),
            r.node == target_node,
            tuple(-x for x in busy.get(r.pool, (0, 0))),
            str(r.uuid),
        ),
    )
    victim = ranked[0]
    if health(victim) == 3 and sum(1 for r in replicas if health(r) == 3) < 2:
        raise FailedPrecondition(
            f"volume {spec.uuid}: cannot remove {victim.uuid}, its last healthy replica"
        )
    return victim


async def scale_volume(cluster: Cluster, volume_uuid: uuid_mod.UUID, count: int) -> VolumeSpec:
    """Set the number of replicas: new ones are placed, created and (when published)
    added to the nexus and rebuilt; removed ones leave the nexus and are destroyed.

    The count is desired state: it is written first, then the replicas follow one
    step at a time (`converge_replica_count`), and the reconciler finishes what a
    crash interrupted.

    Raises:
        InvalidArgument: a count below 1.
        FailedPrecondition: no pool for the new replicas (nothing is changed).
    """
    if count < 1:
        raise InvalidArgument(f"a volume needs at least 1 replica, not {count}")
    async with cluster.locks.hold("volume", str(volume_uuid)):
        spec = await _usable(cluster, volume_uuid)
        current = len(cluster.specs.replicas_of(spec))
        if count > current:
            place_for(cluster, spec, count - current)
        if spec.num_replicas != count:
            spec.num_replicas = count
            await cluster.specs.save(spec)
        await converge_replica_count(cluster, spec)
        log.info("volume %s now has %d replica(s)", spec.uuid, count)
        return spec


async def converge_replica_count(cluster: Cluster, spec: VolumeSpec) -> None:
    """Add or remove replicas, one step each, until the volume has `num_replicas`
    (the caller holds the volume's lock).

    Raises:
        FailedPrecondition: no pool for a new replica; removing the last healthy one.
    """
    while len(cluster.specs.replicas_of(spec)) < spec.num_replicas:
        await _add_replica(cluster, spec)
    while len(cluster.specs.replicas_of(spec)) > spec.num_replicas:
        await _remove_replica(cluster, spec, replica_to_remove(cluster, spec))


async def retire_replica(cluster: Cluster, spec: VolumeSpec, replica: ReplicaSpec) -> None:
    """Take a replica out of the volume for good (it leaves the nexus and is destroyed, or
    is destroyed once its node is back); the count stays, so a new one is made next."""
    await _remove_replica(cluster, spec, replica)


async def _end_replica_step(cluster: Cluster, spec: VolumeSpec) -> None:
    spec.operation = None
    await cluster.specs.save(spec)


async def _add_replica(cluster: Cluster, spec: VolumeSpec) -> None:
    (pool,) = place_for(cluster, spec, 1)
    replica = new_replica_spec(spec, pool)
    spec.operation = OperationRecord(operation="SetReplica", args={"add": str(replica.uuid)})
    await cluster.specs.save(spec)
    try:
        await create_replica(cluster, replica)
        await _join_target(cluster, spec, replica)
    except MayastorError:
        await undo_add_replica(cluster, spec)
        raise
    await _end_replica_step(cluster, spec)


async def _join_target(cluster: Cluster, spec: VolumeSpec, replica: ReplicaSpec) -> None:
    target = spec.target
    if target is None or target.nexus is None:
        return
    uri = await child_uri(cluster, replica, target.node)
    await cluster.engine(target.node).add_child(str(target.nexus), uri)
    log.info("volume %s: replica %s added to its nexus, rebuilding", spec.uuid, replica.uuid)
    await cluster.nodes.poll(target.node)


async def undo_add_replica(cluster: Cluster, spec: VolumeSpec) -> None:
    op = spec.operation
    added = cluster.specs.get(ReplicaSpec, op.args["add"]) if op and "add" in op.args else None
    if added is not None:
        await _leave_target(cluster, spec, added)
        await destroy_replica(cluster, added)
    await _end_replica_step(cluster, spec)


async def _leave_target(cluster: Cluster, spec: VolumeSpec, replica: ReplicaSpec) -> None:
    target = spec.target
    if target is None or target.nexus is None or not cluster.nodes.online(target.node):
        return
    nexus = cluster.engine_nexus(target.node, target.nexus)
    if nexus is None:
        return
    for child in nexus.children:
        if child.uuid == str(replica.uuid):
            try:
                await cluster.engine(target.node).remove_child(str(target.nexus), child.uri)
            except NotFound:
                pass
            log.info("volume %s: replica %s removed from its nexus", spec.uuid, replica.uuid)
    await cluster.nodes.poll(target.node)


async def _remove_replica(cluster: Cluster, spec: VolumeSpec, replica: ReplicaSpec) -> None:
    spec.operation = OperationRecord(operation="SetReplica", args={"remove": str(replica.uuid)})
    await cluster.specs.save(spec)
    await finish_remove_replica(cluster, spec)


async def finish_remove_replica(cluster: Cluster, spec: VolumeSpec) -> None:
    op = spec.operation
    replica = cluster.specs.get(ReplicaSpec, op.args["remove"]) if op else None
    if replica is not None:
        await _leave_target(cluster, spec, replica)
        await destroy_replica(cluster, replica)
    await _end_replica_step(cluster, spec)


# ============================================================================ resize


async def resize_volume(cluster: Cluster, volume_uuid: uuid_mod.UUID, size: int) -> VolumeSpec:
    """Grow the volume: every replica, then the nexus; the spec last.

    Raises:
        InvalidArgument: a smaller size (shrinking is not supported).
        FailedPrecondition: a pool has no room for the growth (nothing is changed).
        Unavailable: a replica's node is offline.
    """
    async with cluster.locks.hold("volume", str(volume_uuid)):
        spec = await _usable(cluster, volume_uuid)
        if size == spec.size:
            return spec
        if size < spec.size:
            raise InvalidArgument(
                f"volume {volume_uuid} is {spec.size} bytes; it can grow, not shrink to {size}"
            )
        replicas = cluster.specs.replicas_of(spec)
        views = {v.id: v for v in pool_views(cluster)}
        for replica in replicas:
            if not cluster.nodes.online(replica.node):
                raise Unavailable(f"node {replica.node} of replica {replica.uuid} is offline")
            view = views.get(replica.pool)
            growth = size - spec.size
            if view is not None and not spec.thin and view.free < growth:
                raise FailedPrecondition(
                    f"pool {replica.pool} has {view.free} bytes free; replica {replica.uuid} "
                    f"needs {growth} more"
                )
        spec.operation = OperationRecord(operation="Resize", args={"size": size})
        await cluster.specs.save(spec)
        try:
            await finish_resize(cluster, spec)
        except MayastorError:
            spec.operation = None
            await cluster.specs.save(spec)
            raise
        return spec


async def finish_resize(cluster: Cluster, spec: VolumeSpec) -> None:
    """Grow every replica, then the nexus, then record the size (each step repeatable).

    A replica that grew when a later step failed stays larger: harmless.
    """
    op = spec.operation
    assert op is not None
    size = int(op.args["size"])
    for replica in cluster.specs.replicas_of(spec):
        if replica.size < size:
            await cluster.engine(replica.node).resize_replica(str(replica.uuid), size)
            replica.size = size
            await cluster.specs.save(replica)
    if spec.target is not None and spec.target.nexus is not None:
        await cluster.engine(spec.target.node).resize_nexus(str(spec.target.nexus), size)
    spec.size = size
    spec.operation = None
    await cluster.specs.save(spec)
    log.info("volume %s resized to %d bytes", spec.uuid, size)
    for node in {r.node for r in cluster.specs.replicas_of(spec)}:
        await cluster.nodes.poll(node)


# ============================================================================ settling

_Settle = Callable[[Cluster, VolumeSpec], Awaitable[None]]


async def _settle_set_replica(cluster: Cluster, spec: VolumeSpec) -> None:
    assert spec.operation is not None
    if "add" in spec.operation.args:
        await undo_add_replica(cluster, spec)
    else:
        await finish_remove_replica(cluster, spec)


async def _settle_resize(cluster: Cluster, spec: VolumeSpec) -> None:
    try:
        await finish_resize(cluster, spec)
    except (Unavailable, FailedPrecondition) as exc:
        log.warning("volume %s: an unfinished resize is dropped: %s", spec.uuid, exc)
        spec.operation = None
        await cluster.specs.save(spec)


_SETTLE: dict[str, _Settle] = {
    "Create": undo_create,
    "Destroy": finish_destroy,
    "Publish": undo_publish,
    "Republish": undo_republish,
    "RecreateTarget": undo_recreate,
    "Unpublish": finish_unpublish,
    "SetReplica": _settle_set_replica,
    "Resize": _settle_resize,
}


async def settle_volume(cluster: Cluster, spec: VolumeSpec) -> VolumeSpec | None:
    """Finish or undo the operation a crashed core agent left on `spec` (the caller holds
    the volume's lock). Returns the volume's spec afterwards, or None if it is gone."""
    if spec.operation is None and spec.status is SpecStatus.CREATED:
        return spec
    operation = (
        spec.operation.operation
        if spec.operation
        else ("Create" if spec.status is SpecStatus.CREATING else "Destroy")
    )
    log.info("volume %s: settling an unfinished %s", spec.uuid, operation)
    settle = _SETTLE.get(operation)
    if settle is None:
        log.error("volume %s: unknown operation %r left behind; dropped", spec.uuid, operation)
        spec.operation = None
        await cluster.specs.save(spec)
    else:
        await settle(cluster, spec)
    return cluster.specs.get(VolumeSpec, str(spec.uuid))
