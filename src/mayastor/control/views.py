"""Actual state as the REST API shows it, built from specs and what io-engines report.

Nothing here changes anything: each function reads the spec registry and the node
registry (the last poll of every io-engine) and returns the models of
`mayastor.control.models`. A volume's status comes from its nexus when it is
published, else from its replicas: Online with every replica present and in sync,
Degraded with fewer, Faulted with none usable, Unknown while its target's node cannot
be reached.
"""

from __future__ import annotations

import uuid as uuid_mod
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from mayastor.api.v1 import common_pb2, nexus_pb2, pool_pb2, replica_pb2
from mayastor.control.cluster import Cluster
from mayastor.control.models import (
    Child,
    ChildState,
    ChildStateReason,
    Nexus,
    NexusState,
    Node,
    NodeState,
    NodeStatus,
    Pool,
    PoolState,
    PoolStatus,
    RebuildJobState,
    RebuildRecord,
    Replica,
    ReplicaSpaceUsage,
    ReplicaState,
    ReplicaTopology,
    ReplicaUsage,
    Volume,
    VolumeState,
    VolumeStatus,
    VolumeUsage,
)
from mayastor.control.specs import NodeSpec, PoolSpec, Protocol, ReplicaSpec, VolumeSpec

_POOL_STATUS = {
    pool_pb2.POOL_ONLINE: PoolStatus.ONLINE,
    pool_pb2.POOL_DEGRADED: PoolStatus.DEGRADED,
    pool_pb2.POOL_FAULTED: PoolStatus.FAULTED,
}
_CHILD_STATE = {
    nexus_pb2.CHILD_STATE_ONLINE: ChildState.ONLINE,
    nexus_pb2.CHILD_STATE_DEGRADED: ChildState.DEGRADED,
    nexus_pb2.CHILD_STATE_FAULTED: ChildState.FAULTED,
}
_CHILD_REASON = {
    nexus_pb2.CHILD_STATE_REASON_CANNOT_OPEN: ChildStateReason.CANNOT_OPEN,
    nexus_pb2.CHILD_STATE_REASON_REBUILD_FAILED: ChildStateReason.REBUILD_FAILED,
    nexus_pb2.CHILD_STATE_REASON_IO_FAILURE: ChildStateReason.IO_FAILURE,
    nexus_pb2.CHILD_STATE_REASON_BY_CLIENT: ChildStateReason.BY_CLIENT,
    nexus_pb2.CHILD_STATE_REASON_OUT_OF_SYNC: ChildStateReason.OUT_OF_SYNC,
    nexus_pb2.CHILD_STATE_REASON_NO_SPACE: ChildStateReason.OUT_OF_SPACE,
    nexus_pb2.CHILD_STATE_REASON_TIMED_OUT: ChildStateReason.TIMED_OUT,
    nexus_pb2.CHILD_STATE_REASON_OFFLINE: ChildStateReason.OFFLINE,
}
_NEXUS_STATE = {
    nexus_pb2.NEXUS_ONLINE: NexusState.ONLINE,
    nexus_pb2.NEXUS_DEGRADED: NexusState.DEGRADED,
    nexus_pb2.NEXUS_FAULTED: NexusState.FAULTED,
    nexus_pb2.NEXUS_SHUTTING_DOWN: NexusState.SHUTTING_DOWN,
    nexus_pb2.NEXUS_SHUTDOWN: NexusState.SHUTDOWN,
}
_JOB_STATE = {
    nexus_pb2.Init: RebuildJobState.INIT,
    nexus_pb2.Rebuilding: RebuildJobState.REBUILDING,
    nexus_pb2.Stopped: RebuildJobState.STOPPED,
    nexus_pb2.Paused: RebuildJobState.PAUSED,
    nexus_pb2.Failed: RebuildJobState.FAILED,
    nexus_pb2.Completed: RebuildJobState.COMPLETED,
}


# ============================================================================ nodes


def node_view(cluster: Cluster, name: str) -> Node:
    spec = cluster.specs.get(NodeSpec, name)
    record = cluster.nodes.record(name)
    state = None
    if record is not None:
        state = NodeState(
            id=name,
            grpcEndpoint=record.endpoint,
            status=NodeStatus(cluster.nodes.status(name).value),
            node_nqn=record.hostnqn,
            version=record.version or None,
        )
    elif spec is not None:
        state = NodeState(
            id=name,
            grpcEndpoint=spec.grpcEndpoint,
            status=NodeStatus.UNKNOWN,
            node_nqn=spec.node_nqn,
        )
    return Node(id=name, spec=spec, state=state)


def node_names(cluster: Cluster) -> list[str]:
    return sorted({s.id for s in cluster.specs.all(NodeSpec)} | set(cluster.nodes.names()))


# ============================================================================ pools


def pool_state(node: str, pool: pool_pb2.Pool) -> PoolState:
    return PoolState(
        id=pool.name,
        node=node,
        status=_POOL_STATUS.get(pool.state, PoolStatus.UNKNOWN),
        disks=list(pool.disks),
        capacity=pool.capacity,
        used=pool.used,
        committed=pool.committed,
    )


def pool_view(cluster: Cluster, spec: PoolSpec | None, node: str, pool_id: str) -> Pool:
    found = cluster.engine_pool(node, pool_id) if cluster.nodes.online(node) else None
    state = pool_state(node, found) if found is not None else None
    if state is None and spec is not None:
        state = PoolState(
            id=pool_id, node=node, status=PoolStatus.UNKNOWN, disks=spec.disks, capacity=0, used=0
        )
    return Pool(id=pool_id, spec=spec, state=state)


def pool_views(cluster: Cluster, node: str | None = None) -> list[Pool]:
    """Every pool with a spec, and the unmanaged ones the io-engines report."""
    seen: set[tuple[str, str]] = set()
    views = []
    for spec in cluster.specs.all(PoolSpec):
        if node is None or spec.node == node:
            views.append(pool_view(cluster, spec, spec.node, spec.id))
            seen.add((spec.node, spec.id))
    for name in cluster.nodes.names():
        if (node is not None and name != node) or not cluster.nodes.online(name):
            continue
        record = cluster.nodes.record(name)
        assert record is not None
        views.extend(
            Pool(id=pool.name, state=pool_state(name, pool))
            for pool in record.pools
            if (name, pool.name) not in seen
        )
    return sorted(views, key=lambda p: p.id)


# ============================================================================ replicas


def replica_model(node: str, replica: replica_pb2.Replica, pool_online: bool = True) -> Replica:
    usage = replica.usage
    return Replica(
        uuid=uuid_mod.UUID(replica.uuid),
        node=node,
        pool=replica.poolname,
        poolUuid=uuid_mod.UUID(replica.pooluuid) if replica.pooluuid else None,
        share=Protocol.NVMF if replica.share == common_pb2.NVMF else Protocol.NONE,
        size=replica.size,
        space=ReplicaSpaceUsage(
            capacity_bytes=usage.capacity_bytes,
            allocated_bytes=usage.allocated_bytes,
            cluster_size=usage.cluster_size,
            clusters=usage.num_clusters,
            allocated_clusters=usage.num_allocated_clusters,
        ),
        state=ReplicaState.ONLINE if pool_online else ReplicaState.DEGRADED,
        thin=replica.thin,
        uri=replica.uri,
        allowed_hosts=list(replica.allowed_hosts),
    )


def replica_views(
    cluster: Cluster, node: str | None = None, pool: str | None = None
) -> list[Replica]:
    """Replicas the io-engines report, and those with a spec whose node is away."""
    views: dict[str, Replica] = {}
    for name in cluster.nodes.names():
        if (node is not None and name != node) or not cluster.nodes.online(name):
            continue
        record = cluster.nodes.record(name)
        assert record is not None
        online_pools = {p.name for p in record.pools if p.state == pool_pb2.POOL_ONLINE}
        for replica in record.replicas:
            if pool is None or replica.poolname == pool:
                views[replica.uuid] = replica_model(name, replica, replica.poolname in online_pools)
    for spec in cluster.specs.view(ReplicaSpec):
        if str(spec.uuid) in views:
            continue
        if (node is not None and spec.node != node) or (pool is not None and spec.pool != pool):
            continue
        views[str(spec.uuid)] = Replica(
            uuid=spec.uuid,
            node=spec.node,
            pool=spec.pool,
            share=spec.share,
            size=spec.size,
            state=ReplicaState.UNKNOWN
            if not cluster.nodes.online(spec.node)
            else ReplicaState.FAULTED,
            thin=spec.thin,
            uri="",
        )
    return sorted(views.values(), key=lambda r: str(r.uuid))


# ============================================================================ nexuses


def nexus_model(node: str, nexus: nexus_pb2.Nexus) -> Nexus:
    return Nexus(
        uuid=uuid_mod.UUID(nexus.uuid),
        node=node,
        size=nexus.size,
        state=_NEXUS_STATE.get(nexus.state, NexusState.UNKNOWN),
        children=[
            Child(
                uri=c.uri,
                state=_CHILD_STATE.get(c.state, ChildState.UNKNOWN),
                state_reason=_CHILD_REASON.get(c.state_reason),
                rebuildProgress=c.rebuild_progress if 0 <= c.rebuild_progress <= 100 else None,
            )
            for c in nexus.children
        ],
        deviceUri=nexus.device_uri,
        rebuilds=nexus.rebuilds,
        protocol=Protocol.NVMF if nexus.device_uri else Protocol.NONE,
        fenced=nexus.fenced,
        fence_reason=nexus.fence_reason or None,
    )


def nexus_views(cluster: Cluster, node: str | None = None) -> list[Nexus]:
    views: list[Nexus] = []
    for name in cluster.nodes.names():
        if (node is not None and name != node) or not cluster.nodes.online(name):
            continue
        record = cluster.nodes.record(name)
        assert record is not None
        views.extend(nexus_model(name, n) for n in record.nexuses)
    return sorted(views, key=lambda n: str(n.uuid))


# ============================================================================ volumes


def _volume_status(
    spec: VolumeSpec, nexus: Nexus | None, target_reachable: bool, in_sync: int
) -> VolumeStatus:
    if spec.target is not None and (not target_reachable or nexus is None):
        return VolumeStatus.UNKNOWN
    if nexus is not None:
        status = {
            NexusState.ONLINE: VolumeStatus.ONLINE,
            NexusState.DEGRADED: VolumeStatus.DEGRADED,
            NexusState.FAULTED: VolumeStatus.FAULTED,
            NexusState.SHUTDOWN: VolumeStatus.SHUTDOWN,
            NexusState.SHUTTING_DOWN: VolumeStatus.SHUTDOWN,
        }.get(nexus.state, VolumeStatus.UNKNOWN)
        if status is VolumeStatus.ONLINE and in_sync < spec.num_replicas:
            return VolumeStatus.DEGRADED
        return status
    if in_sync == 0:
        return VolumeStatus.FAULTED
    if in_sync < spec.num_replicas:
        return VolumeStatus.DEGRADED
    return VolumeStatus.ONLINE


def volume_view(cluster: Cluster, spec: VolumeSpec) -> Volume:
    """The volume's spec and its state now (see the module docstring for the status)."""
    found_nexus = None
    target_reachable = True
    if spec.target is not None and spec.target.nexus is not None:
        target_reachable = cluster.nodes.online(spec.target.node)
        if target_reachable:
            found_nexus = cluster.engine_nexus(spec.target.node, spec.target.nexus)
    nexus = nexus_model(spec.target.node, found_nexus) if found_nexus and spec.target else None
    children = {c.uuid: c for c in found_nexus.children} if found_nexus else {}
    topology: dict[str, ReplicaTopology] = {}
    in_sync = 0
    allocations: list[int] = []
    for replica in cluster.specs.replicas_of(spec):
        online = cluster.nodes.online(replica.node)
        found = cluster.engine_replica(replica.node, replica.uuid) if online else None
        if not online:
            state = ReplicaState.UNKNOWN
        elif found is None:
            state = ReplicaState.FAULTED
        else:
            state = ReplicaState.ONLINE
        entry = ReplicaTopology(node=replica.node, pool=replica.pool, state=state)
        if found is not None:
            entry.usage = ReplicaUsage(
                capacity=found.usage.capacity_bytes, allocated=found.usage.allocated_bytes
            )
            allocations.append(found.usage.allocated_bytes)
        child = children.get(str(replica.uuid))
        if child is not None:
            entry.child_status = _CHILD_STATE.get(child.state, ChildState.UNKNOWN)
            entry.child_status_reason = _CHILD_REASON.get(child.state_reason)
            if 0 <= child.rebuild_progress <= 100:
                entry.rebuild_progress = child.rebuild_progress
            if child.state == nexus_pb2.CHILD_STATE_ONLINE and state is ReplicaState.ONLINE:
                in_sync += 1
        elif nexus is None and state is ReplicaState.ONLINE:
            in_sync += 1
        topology[str(replica.uuid)] = entry
    volume_state = VolumeState(
        uuid=spec.uuid,
        size=nexus.size if nexus is not None else spec.size,
        status=_volume_status(spec, nexus, target_reachable, in_sync),
        target=nexus,
        replica_topology=topology,
        usage=VolumeUsage(
            capacity=spec.size,
            allocated=max(allocations, default=0),
            allocated_replica=max(allocations, default=0),
            total_allocated=sum(allocations),
            total_allocated_replicas=sum(allocations),
        ),
    )
    return Volume(spec=spec, state=volume_state)


def rebuild_records(history: nexus_pb2.RebuildHistoryResponse) -> list[RebuildRecord]:
    def when(stamp: Timestamp) -> datetime:
        return datetime.fromtimestamp(stamp.ToNanoseconds() / 1e9, tz=UTC)

    return [
        RebuildRecord(
            childUri=r.child_uri,
            srcUri=r.src_uri,
            rebuildJobState=_JOB_STATE.get(r.state, RebuildJobState.INIT),
            blocksTotal=r.blocks_total,
            blocksRecovered=r.blocks_recovered,
            blocksTransferred=r.blocks_transferred,
            blocksRemaining=max(0, r.blocks_total - r.blocks_recovered),
            blockSize=r.block_size,
            isPartial=r.is_partial,
            startTime=when(r.start_time),
            endTime=when(r.end_time),
        )
        for r in history.records
    ]
