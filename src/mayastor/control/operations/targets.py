"""A volume's target: a nexus on one node over its replicas, published to its frontends.

Publishing makes a new nexus (a new uuid each time) named after the volume, so its
subsystem NQN, ``nqn.2019-05.io.openebs:<volume uuid>``, is the same on every node.
Which replicas it may trust comes from the nexus info of the volume's previous nexus
(`VolumeSpec.health_info_id`): only those marked healthy, only one of them after an
unclean stop, every replica when the volume never had a nexus. The nexus is made over
the trusted replicas; the others are added and rebuilt. Remote replicas are shared
with the target node's host NQN only, and the nexus is published only to the host
NQNs of the frontend nodes.

Each new target of a volume hands out controller IDs from the next of 15 ranges
(`cntlid_range`): a host that still knows the old target (the kernel keeps a dead path
while it tries to reconnect) sees the new one as another path of the same subsystem,
and the namespace is the same on both (its uuid is the volume's), so native NVMe
multipath moves the I/O over. Moving a target off an offline node (switch-over) leaves
the old nexus to be destroyed when its node is back; its replicas are shared again to
the new node only, so the old nexus cannot reach them, and its nexus info is marked
superseded (`Cluster.supersede_nexus_info`), so it cannot retire them and go on with
its local replica alone.

Every nexus holds an NVMe reservation on its replicas (fencing, after Mayastor's core
agent): Exclusive Access under a key of its own (`reservation_key`: nonzero, new with
each target generation), preempting whichever host holds a replica (the Holder
policy), so once a new target is made an old nexus that still runs (its node was cut
off, not dead) gets a reservation conflict from every replica the new one took and is
fenced: it serves no more I/O and its subsystem turns ANA Inaccessible. A nexus found
fenced or faulted right after it was made (a stray older creation took the replicas
back in between) is undone like any failed step, and the caller tries again.

A first publish is undone when interrupted (the volume ends unpublished; the caller
retries). A move of a published volume's target that fails half way, or is cut short by
a crash of the core agent, keeps the volume published where it was (healing makes its
nexus again there, or the next switch-over moves it). Unpublish is finished.
"""

from __future__ import annotations

import logging
import uuid as uuid_mod
from typing import Any

from mayastor.api.v1 import nexus_pb2
from mayastor.control.cluster import Cluster, NexusHealth
from mayastor.control.engine_client import NexusReservation
from mayastor.control.events import EventCategory
from mayastor.control.models import PublishVolumeBody
from mayastor.control.node_secrets import host_secrets
from mayastor.control.operations.replicas import affinity_peers, child_uri, unshare_replica
from mayastor.control.placement import NodeView, choose_target_node
from mayastor.control.specs import (
    NexusNvmfConfig,
    NexusSpec,
    NodeAccessInfo,
    NodeSpec,
    OperationRecord,
    Protocol,
    ReplicaSpec,
    SpecStatus,
    VolumeSpec,
    VolumeTarget,
    node_nqn,
)
from mayastor.errors import Conflict, FailedPrecondition, MayastorError, NotFound, Unavailable

log = logging.getLogger(__name__)


_KEY_GENERATION_SHIFT = 48
_KEY_GENERATIONS = 0xFFFF


def reservation_key(nexus_uuid: uuid_mod.UUID, generation: int) -> int:
    """The reservation key of a volume's nexus: the target generation (mod 2^16) over
    the low 48 bits of the nexus uuid (Mayastor's core takes the uuid's low 64 bits), so
    the targets of one volume never share a key, and never 0 (no reservation)."""
    key = (generation & _KEY_GENERATIONS) << _KEY_GENERATION_SHIFT
    key |= nexus_uuid.int & ((1 << _KEY_GENERATION_SHIFT) - 1)
    return key or 1


def reservation_of(nexus: NexusSpec | None) -> int:
    """The reservation key `nexus` holds (0: none, or no such nexus)."""
    if nexus is None or nexus.nvmf_config is None:
        return 0
    return nexus.nvmf_config.reservation_key


CNTLID_SPAN = 0x0FFF
"""Controller IDs per target generation; 15 ranges fit below FFEFh."""
CNTLID_RANGES = 15


def cntlid_range(generation: int) -> tuple[int, int]:
    """The controller IDs the volume's target of this generation hands out (inclusive)."""
    index = generation % CNTLID_RANGES
    return index * CNTLID_SPAN + 1, (index + 1) * CNTLID_SPAN


def frontend_nodes(body: PublishVolumeBody) -> list[NodeAccessInfo]:
    if not body.frontend_node:
        return []
    return [NodeAccessInfo(name=body.frontend_node, nqn=node_nqn(body.frontend_node))]


def target_node_for(cluster: Cluster, volume: VolumeSpec, requested: str | None) -> str:
    nexus_counts: dict[str, int] = {}
    group_counts: dict[str, int] = {}
    peers = affinity_peers(cluster, volume)
    for nexus in cluster.specs.view(NexusSpec):
        nexus_counts[nexus.node] = nexus_counts.get(nexus.node, 0) + 1
        if nexus.owner is not None and str(nexus.owner) in peers:
            group_counts[nexus.node] = group_counts.get(nexus.node, 0) + 1
    names = {s.id for s in cluster.specs.all(NodeSpec)} | set(cluster.nodes.names())
    views = []
    for name in names:
        spec = cluster.specs.get(NodeSpec, name)
        views.append(
            NodeView(
                name=name,
                online=cluster.nodes.online(name),
                cordoned=spec.cordoned if spec else False,
                nexuses=nexus_counts.get(name, 0),
                group_targets=group_counts.get(name, 0),
            )
        )
    replica_nodes = [r.node for r in cluster.specs.replicas_of(volume)]
    return choose_target_node(views, replica_nodes=replica_nodes, requested=requested)


def trusted_replicas(
    volume: VolumeSpec,
    present: list[ReplicaSpec],
    health: NexusHealth | None,
    target_node: str,
) -> list[ReplicaSpec]:
    """The replicas a new nexus may read from as current.

    Raises:
        FailedPrecondition: none of the present replicas is known to be current.
    """
    if health is None:
        trusted = list(present)
    else:
        trusted = [r for r in present if r.uuid in health.healthy]
        if not health.clean_shutdown and trusted:
            trusted.sort(key=lambda r: (r.node != target_node, str(r.uuid)))
            trusted = trusted[:1]
    if not trusted:
        healthy = sorted(str(u) for u in health.healthy) if health else []
        raise FailedPrecondition(
            f"volume {volume.uuid}: no reachable replica is known to hold its current data "
            f"(healthy by the last nexus: {', '.join(healthy) or 'none'}); bring those "
            "replicas' nodes back"
        )
    return trusted


async def create_target(
    cluster: Cluster,
    volume: VolumeSpec,
    node: str,
    nexus_uuid: uuid_mod.UUID,
    frontends: list[NodeAccessInfo],
    *,
    replaces: int = 0,
) -> NexusSpec:
    """Make and publish a nexus for `volume` on `node`, holding the reservation of its
    replicas (`replaces`: the key of the target it replaces, 0 for none); the volume
    spec is not touched (the caller has saved it with the target generation this nexus
    is for).

    Raises:
        FailedPrecondition: no current replica can be reached, or the new nexus is
            faulted.
        Conflict: the new nexus was fenced as soon as it was made.
        Whatever the io-engines or the store raise; the caller undoes.
    """
    replicas = [r for r in cluster.specs.replicas_of(volume) if r.status is SpecStatus.CREATED]
    for name in {r.node for r in replicas} | {node}:
        if cluster.nodes.online(name):
            await cluster.nodes.poll(name)
    present = [
        r
        for r in replicas
        if cluster.nodes.online(r.node) and cluster.engine_replica(r.node, r.uuid) is not None
    ]
    health = await cluster.nexus_health(volume.health_info_id)
    trusted = trusted_replicas(volume, present, health, node)
    engine = cluster.engine(node)
    uris = {r.uuid: await child_uri(cluster, r, node) for r in present}
    reservation = NexusReservation(
        key=reservation_key(nexus_uuid, volume.target_generation), preempt_key=replaces
    )
    nexus = NexusSpec(
        uuid=nexus_uuid,
        name=str(volume.uuid),
        node=node,
        children=[uris[r.uuid] for r in trusted],
        size=volume.size,
        status=SpecStatus.CREATING,
        owner=volume.uuid,
        allowed_hosts=[f.nqn for f in frontends],
        operation=OperationRecord(operation="Create"),
        nvmf_config=NexusNvmfConfig(
            reservation_key=reservation.key, preempt_reservation_key=replaces or None
        ),
    )
    await cluster.specs.save(nexus)
    created = await engine.create_nexus(
        name=nexus.name,
        uuid=str(nexus_uuid),
        size=volume.size,
        children=nexus.children,
        cntlid_range=cntlid_range(volume.target_generation),
        reservation=reservation,
    )
    check_usable(volume, created)
    log.info(
        "volume %s: nexus %s created on node %s over %s",
        volume.uuid,
        nexus_uuid,
        node,
        ", ".join(str(r.uuid) for r in trusted),
    )
    for replica in present:
        if replica in trusted:
            continue
        try:
            await engine.add_child(str(nexus_uuid), uris[replica.uuid])
        except MayastorError as exc:
            log.warning(
                "volume %s: replica %s could not join the nexus: %s", volume.uuid, replica.uuid, exc
            )
            continue
        nexus.children.append(uris[replica.uuid])
        log.info(
            "volume %s: replica %s added to nexus %s, to be rebuilt (not known current)",
            volume.uuid,
            replica.uuid,
            nexus_uuid,
        )
    await engine.publish_nexus(
        str(nexus_uuid), nexus.allowed_hosts, await host_secrets(cluster, _names(frontends))
    )
    await cluster.nodes.poll(node)
    check_usable(volume, cluster.engine_nexus(node, nexus_uuid))
    nexus.status = SpecStatus.CREATED
    nexus.share = Protocol.NVMF
    nexus.operation = None
    await cluster.specs.save(nexus)
    return nexus


def check_usable(volume: VolumeSpec, nexus: nexus_pb2.Nexus | None) -> None:
    """Refuse a nexus just made that cannot serve: gone, fenced, or faulted.

    Raises:
        Unavailable: its node no longer reports it.
        Conflict: it is fenced (another nexus took the replicas since).
        FailedPrecondition: it is faulted.
    """
    if nexus is None:
        raise Unavailable(f"volume {volume.uuid}: its new nexus is not reported by its node")
    if nexus.fenced:
        raise Conflict(
            f"volume {volume.uuid}: the new nexus {nexus.uuid} was fenced as soon as it was "
            f"made ({nexus.fence_reason}); another nexus took the replicas over"
        )
    if nexus.state == nexus_pb2.NEXUS_FAULTED:
        raise FailedPrecondition(
            f"volume {volume.uuid}: the new nexus {nexus.uuid} is faulted (no child serves)"
        )


async def destroy_target(cluster: Cluster, nexus: NexusSpec, *, force: bool = False) -> None:
    """Unpublish, shut down and destroy a nexus; stop sharing the replicas it used.

    A clean shutdown records that every healthy child is current, for the next nexus.

    Raises:
        Unavailable: the nexus's node is offline and not `force` (nothing changed).
    """
    online = cluster.nodes.online(nexus.node)
    if not online and not force:
        raise Unavailable(
            f"node {nexus.node} of the target is offline; unpublish with force to forget "
            "the target (its nexus is removed when the node comes back)"
        )
    if online:
        engine = cluster.engine(nexus.node)
        try:
            await engine.unpublish_nexus(str(nexus.uuid))
            await engine.shutdown_nexus(str(nexus.uuid))
            await engine.destroy_nexus(str(nexus.uuid))
        except NotFound:
            pass
        except Unavailable:
            if not force:
                raise
            log.warning(
                "node %s does not answer: nexus %s is removed when it is back",
                nexus.node,
                nexus.uuid,
            )
        else:
            log.info("nexus %s destroyed on node %s", nexus.uuid, nexus.node)
        await cluster.nodes.poll(nexus.node)
    if nexus.owner is not None:
        for replica in cluster.specs.replicas_of(str(nexus.owner)):
            if replica.share is not Protocol.NONE and cluster.nodes.online(replica.node):
                try:
                    await unshare_replica(cluster, replica)
                except MayastorError as exc:
                    log.warning("replica %s could not be unshared: %s", replica.uuid, exc)
    await cluster.specs.remove(nexus)


async def _take_down(cluster: Cluster, nexus: NexusSpec, by: uuid_mod.UUID) -> None:
    """Destroy a volume's old nexus before the new one `by` is made; one on a node that
    is offline or does not answer is left to be collected when the node is back, its
    nexus info marked superseded first (so that it cannot retire the children it lost
    and go on with its local one: it is fenced instead)."""
    if cluster.nodes.online(nexus.node):
        try:
            await destroy_target(cluster, nexus)
            return
        except Unavailable as exc:
            log.warning("nexus %s is left on its node for now: %s", nexus.uuid, exc)
    await cluster.supersede_nexus_info(nexus.uuid, by)
    await destroy_target(cluster, nexus, force=True)


def _same_frontends(target: VolumeTarget, frontends: list[NodeAccessInfo]) -> bool:
    return sorted(f.nqn for f in target.frontend_nodes) == sorted(f.nqn for f in frontends)


async def publish_volume(
    cluster: Cluster, volume: VolumeSpec, body: PublishVolumeBody
) -> VolumeSpec:
    """Publish `volume` (see the module docstring); the caller holds its lock.

    The same request again changes nothing; another node moves the target; other
    frontends replace the allow-list.

    Raises:
        FailedPrecondition: no node can take the target, or no current replica.
        Unavailable: a node needed is offline.
    """
    frontends = frontend_nodes(body)
    target = volume.target
    if target is not None and body.node in (None, target.node) and not body.republish:
        if not _same_frontends(target, frontends):
            await _change_frontends(cluster, volume, frontends)
        return volume
    node = target_node_for(cluster, volume, body.node)
    nexus_uuid = uuid_mod.uuid4()
    previous = target.nexus if target is not None else None
    replaces = reservation_of(cluster.specs.get(NexusSpec, str(previous))) if previous else 0
    old_specs = [n.model_copy(deep=True) for n in cluster.specs.nexuses_of(volume)]
    args: dict[str, Any] = {"node": node, "nexus": str(nexus_uuid), "previous": str(previous or "")}
    if target is not None:
        # what `undo_republish` needs to keep the volume where it was after a crash
        args["target"] = target.model_dump(mode="json")
        args["nexuses"] = [spec.model_dump(mode="json") for spec in old_specs]
    volume.operation = OperationRecord(
        operation="Republish" if target is not None else "Publish", args=args
    )
    volume.target_generation += 1
    await cluster.specs.save(volume)
    try:
        if target is not None:
            for nexus in cluster.specs.nexuses_of(volume):
                await _take_down(cluster, nexus, nexus_uuid)
            volume.target = None
        await create_target(cluster, volume, node, nexus_uuid, frontends, replaces=replaces)
    except MayastorError:
        if target is None:
            await undo_publish(cluster, volume)
        else:
            await _undo_move(cluster, volume, target, old_specs)
        raise
    old_health = volume.health_info_id
    volume.target = VolumeTarget(
        node=node,
        nexus=nexus_uuid,
        frontend_nodes=frontends,
        publish_context=dict(body.publish_context),
    )
    volume.health_info_id = nexus_uuid
    volume.operation = None
    await cluster.specs.save(volume)
    if old_health is not None and old_health != nexus_uuid:
        try:
            await cluster.release_nexus_info(old_health)
        except MayastorError as exc:
            log.warning("old nexus info %s is left behind: %s", old_health, exc)
    log.info(
        "volume %s published on node %s for %s",
        volume.uuid,
        node,
        [f.name for f in frontends] or "any host",
    )
    return volume


def _names(frontends: list[NodeAccessInfo]) -> list[str]:
    return [f.name for f in frontends]


async def _change_frontends(
    cluster: Cluster, volume: VolumeSpec, frontends: list[NodeAccessInfo]
) -> None:
    target = volume.target
    assert target is not None
    assert target.nexus is not None
    hosts = [f.nqn for f in frontends]
    secrets = await host_secrets(cluster, _names(frontends))
    await cluster.engine(target.node).publish_nexus(str(target.nexus), hosts, secrets)
    nexus = cluster.specs.get(NexusSpec, str(target.nexus))
    if nexus is not None:
        nexus.allowed_hosts = hosts
        await cluster.specs.save(nexus)
    target.frontend_nodes = frontends
    await cluster.specs.save(volume)
    log.info("volume %s: target now published for %s", volume.uuid, hosts or "any host")


async def undo_publish(cluster: Cluster, volume: VolumeSpec) -> None:
    """Take down every nexus the volume has or was getting; it ends unpublished."""
    await _take_down_attempt(cluster, volume)
    volume.target = None
    volume.operation = None
    await cluster.specs.save(volume)
    log.info("volume %s: an unfinished publish is undone; the volume is unpublished", volume.uuid)


async def undo_republish(cluster: Cluster, volume: VolumeSpec) -> None:
    """Settle a move of a published volume's target that a crashed core agent left
    unfinished: as a move that failed half way (`_undo_move`), from the old target and
    nexus records the operation kept; a record without them is undone as a publish."""
    op = volume.operation
    old_target = op.args.get("target") if op is not None else None
    if op is None or not old_target:
        await undo_publish(cluster, volume)
        return
    target = VolumeTarget.model_validate(old_target)
    old_specs = [NexusSpec.model_validate(doc) for doc in op.args.get("nexuses", [])]
    await _undo_move(cluster, volume, target, old_specs)


async def _undo_move(
    cluster: Cluster, volume: VolumeSpec, target: VolumeTarget, old_specs: list[NexusSpec]
) -> None:
    """A move of a published volume's target failed: take down what the attempt made
    and keep the volume published where it was, old nexus records included.

    Unpublishing it instead would leave its frontends without a target for good, and
    nothing asks for a new one (a switch-over moves only published volumes). Kept as it
    was, the volume is moved again by the next switch-over pass while its old node is
    offline, or has its nexus made again there by healing once the node is back; the
    old records carry the reservation key the next target takes the replicas over
    from. The old nexus stays superseded: it never serves again."""
    await _take_down_attempt(cluster, volume)
    for spec in old_specs:
        await cluster.specs.save(spec)
    volume.target = target
    volume.operation = None
    await cluster.specs.save(volume)
    log.warning(
        "volume %s: the move of its target is undone; it stays published on node %s "
        "and is tried again",
        volume.uuid,
        target.node,
    )


async def _take_down_attempt(cluster: Cluster, volume: VolumeSpec) -> None:
    """Destroy every nexus the volume has or was getting (its operation's `nexus`)."""
    op = volume.operation
    wanted = op.args.get("nexus") if op is not None else None
    for nexus in cluster.specs.nexuses_of(volume):
        await destroy_target(cluster, nexus, force=True)
    if wanted:
        node = op.args.get("node") if op else None
        if node and cluster.nodes.online(node):
            try:
                await cluster.engine(node).destroy_nexus(wanted)
            except NotFound:
                pass
        if str(volume.health_info_id) != wanted:
            await cluster.forget_nexus_info(wanted)


async def move_target(cluster: Cluster, volume: VolumeSpec, why: str) -> VolumeSpec:
    """Move a published volume's target to another node (the caller holds its lock).

    Raises:
        FailedPrecondition: no other node can take it.
    """
    target = volume.target
    assert target is not None
    node = target_node_for(cluster, volume, None)
    if node == target.node:
        raise FailedPrecondition(f"volume {volume.uuid}: no other node can take its target")
    cluster.emit(
        EventCategory.TARGET,
        "Moving",
        str(volume.uuid),
        f"the target of volume {volume.uuid} moves from {target.node} to {node}: {why}",
        node=target.node,
    )
    frontend = target.frontend_nodes[0].name if target.frontend_nodes else None
    body = PublishVolumeBody(
        protocol=target.protocol,
        publish_context=dict(target.publish_context),
        node=node,
        frontend_node=frontend,
    )
    return await publish_volume(cluster, volume, body)


async def recreate_target(cluster: Cluster, volume: VolumeSpec) -> VolumeSpec:
    """Make the volume's nexus again on its target node, whose io-engine lost it (the
    caller holds the volume's lock): a new nexus under the same NQN, so the frontends'
    connections come back; which replicas it trusts comes from the lost nexus's info.

    Interrupted, it is undone (`undo_recreate`) and done again on the next pass.
    """
    target = volume.target
    assert target is not None
    nexus_uuid = uuid_mod.uuid4()
    previous = target.nexus
    volume.operation = OperationRecord(
        operation="RecreateTarget",
        args={"node": target.node, "nexus": str(nexus_uuid), "previous": str(previous or "")},
    )
    volume.target_generation += 1
    await cluster.specs.save(volume)
    replaces = 0
    for stale in cluster.specs.nexuses_of(volume):
        replaces = replaces or reservation_of(stale)
        await cluster.specs.remove(stale)
    try:
        await create_target(
            cluster, volume, target.node, nexus_uuid, target.frontend_nodes, replaces=replaces
        )
    except MayastorError:
        await undo_recreate(cluster, volume)
        raise
    target.nexus = nexus_uuid
    volume.health_info_id = nexus_uuid
    volume.operation = None
    await cluster.specs.save(volume)
    if previous is not None:
        try:
            await cluster.forget_nexus_info(previous)
        except MayastorError as exc:
            log.warning("old nexus info %s is left behind: %s", previous, exc)
    log.info("volume %s: nexus %s made again on node %s", volume.uuid, nexus_uuid, target.node)
    return volume


async def undo_recreate(cluster: Cluster, volume: VolumeSpec) -> None:
    """Remove what an interrupted `recreate_target` made; the target stays as recorded."""
    op = volume.operation
    wanted = op.args.get("nexus") if op is not None else None
    node = op.args.get("node") if op is not None else None
    for nexus in cluster.specs.nexuses_of(volume):
        if str(nexus.uuid) == wanted:
            await cluster.specs.remove(nexus)
    if wanted and node and cluster.nodes.online(node):
        try:
            await cluster.engine(node).destroy_nexus(wanted)
        except NotFound:
            pass
    if wanted and str(volume.health_info_id) != wanted:
        await cluster.forget_nexus_info(wanted)
    volume.operation = None
    await cluster.specs.save(volume)


async def unpublish_volume(
    cluster: Cluster, volume: VolumeSpec, *, force: bool = False
) -> VolumeSpec:
    """Take the volume's target down (the caller holds its lock); idempotent.

    Raises:
        Unavailable: the target's node is offline and not `force`.
    """
    if volume.target is None:
        return volume
    if not force and not cluster.nodes.online(volume.target.node):
        raise Unavailable(
            f"node {volume.target.node} of volume {volume.uuid}'s target is offline; "
            "unpublish with force=true to forget the target"
        )
    volume.operation = OperationRecord(operation="Unpublish", args={"force": force})
    await cluster.specs.save(volume)
    await finish_unpublish(cluster, volume)
    return volume


async def finish_unpublish(cluster: Cluster, volume: VolumeSpec) -> None:
    force = bool(volume.operation.args.get("force")) if volume.operation else True
    for nexus in cluster.specs.nexuses_of(volume):
        await destroy_target(cluster, nexus, force=force)
    volume.target = None
    volume.operation = None
    await cluster.specs.save(volume)
    log.info("volume %s unpublished", volume.uuid)
