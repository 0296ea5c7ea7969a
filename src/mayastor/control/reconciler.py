"""The reconciler: moves what io-engines hold towards the specs, one pass at a time.

A pass, in order:

1. volumes carrying an operation a crashed core agent left are settled (finished or
   undone, see `operations.volumes.settle_volume`);
2. targets on Offline nodes move to another node (`mayastor.control.switch_over`);
3. pools: unfinished creates and destroys are resolved, and pools missing on a node
   that restarted are imported again;
4. replicas left Deleting (their node was away) are destroyed; replicas left Creating
   by no operation are removed;
5. nexuses without a volume target (left by a crash or a forced unpublish) are
   destroyed;
6. orphans on the io-engines are collected: a nexus no spec knows (an old target back
   from a partition, fenced by its successor: an event says so), a replica made by
   the control plane (it has an entity id) that no spec knows, a share no target needs;
7. volumes are healed (`mayastor.control.healing`): faulted children brought back or,
   after a wait, replaced; a nexus lost with its io-engine made again; the replica
   count kept to the spec;
8. draining nodes: every volume target on them moves to another node; a node with
   none left is Drained.

Each action is logged with its reason. A pass skips objects an operation holds (their
lock is busy) and nodes that are offline; it runs every `busy_period` seconds while it
found work, every `idle_period` seconds otherwise, and at once when `poke` is called
(a node registered, restarted or came back).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from mayastor.api.v1 import common_pb2, nexus_pb2
from mayastor.control.cluster import Cluster
from mayastor.control.events import EventCategory
from mayastor.control.healing import VolumeHealer
from mayastor.control.operations.nodes import mark_drained
from mayastor.control.operations.pools import reconcile_pool
from mayastor.control.operations.replicas import destroy_replica
from mayastor.control.operations.targets import destroy_target, move_target
from mayastor.control.operations.volumes import settle_volume
from mayastor.control.specs import (
    NexusSpec,
    NodeSpec,
    PoolSpec,
    Protocol,
    ReplicaSpec,
    SpecStatus,
    VolumeSpec,
)
from mayastor.control.switch_over import TargetSwitchOver
from mayastor.errors import MayastorError, NotFound

log = logging.getLogger(__name__)


class Reconciler:
    """Runs reconcile passes over a `Cluster`.

    Args:
        cluster: what to reconcile.
        busy_period: seconds between passes while there is work.
        idle_period: seconds between passes when the last found nothing to do.
        healer: the self-healing rules (default ones when None).
        switch_over: moves targets off Offline nodes (default: enabled).
    """

    def __init__(
        self,
        cluster: Cluster,
        *,
        busy_period: float = 10.0,
        idle_period: float = 30.0,
        healer: VolumeHealer | None = None,
        switch_over: TargetSwitchOver | None = None,
    ) -> None:
        self.cluster = cluster
        self.healer = healer or VolumeHealer(cluster)
        self.switch_over = switch_over or TargetSwitchOver(cluster)
        self.busy_period = busy_period
        self.idle_period = idle_period
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.passes = 0
        self._pass_lock = asyncio.Lock()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="reconciler")

    def poke(self) -> None:
        """Run a pass soon (something changed)."""
        self._wake.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        busy = True
        while True:
            self._wake.clear()  # before the pass: a poke during it asks for another
            try:
                busy = await self.reconcile()
            except MayastorError as exc:
                log.warning("reconcile pass stopped: %s", exc)
                busy = True
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.busy_period if busy else self.idle_period):
                    await self._wake.wait()

    async def reconcile(self) -> bool:
        """One pass; returns True when it found something to do."""
        async with self._pass_lock:
            self.passes += 1
            work = False
            for step in (
                self._settle_volumes,
                self.switch_over.move_lost_targets,
                self._reconcile_pools,
                self._reconcile_replicas,
                self._reconcile_nexuses,
                self._collect_orphans,
                self.healer.heal,
                self._drain_nodes,
            ):
                try:
                    work = await step() or work
                except MayastorError as exc:
                    log.warning("reconcile: %s: %s", step.__name__.strip("_"), exc)
                    work = True
            return work

    # ------------------------------------------------------------------ steps

    async def _settle_volumes(self) -> bool:
        work = False
        for spec in self.cluster.specs.view(VolumeSpec):
            if spec.operation is None and spec.status is SpecStatus.CREATED:
                continue
            async with self.cluster.locks.try_hold("volume", str(spec.uuid)) as held:
                if not held:
                    continue
                fresh = self.cluster.specs.get(VolumeSpec, str(spec.uuid))
                if fresh is not None:
                    work = True
                    await settle_volume(self.cluster, fresh)
        return work

    async def _reconcile_pools(self) -> bool:
        work = False
        for spec in self.cluster.specs.all(PoolSpec):
            if not self.cluster.nodes.online(spec.node):
                continue
            missing = self.cluster.engine_pool(spec.node, spec.id) is None
            if spec.status is SpecStatus.CREATED and not missing:
                continue
            async with self.cluster.locks.try_hold("pool", spec.id) as held:
                if held:
                    work = True
                    await reconcile_pool(self.cluster, spec)
        return work

    def _operation_replicas(self) -> set[str]:
        """Replicas some volume's operation is about (an undo or finish will see to them)."""
        named: set[str] = set()
        for volume in self.cluster.specs.view(VolumeSpec):
            op = volume.operation
            if op is None:
                continue
            for key in ("add", "remove"):
                if key in op.args:
                    named.add(str(op.args[key]))
            named.update(str(u) for u in op.args.get("replicas", []))
            if volume.status is SpecStatus.CREATING:
                named.update(str(r.uuid) for r in self.cluster.specs.replicas_of(volume))
        return named

    async def _reconcile_replicas(self) -> bool:
        work = False
        busy = self._operation_replicas()
        for stored in self.cluster.specs.view(ReplicaSpec):
            if stored.status is SpecStatus.CREATED or str(stored.uuid) in busy:
                continue
            spec = stored.model_copy(deep=True)
            if not self.cluster.nodes.online(spec.node):
                continue
            owner = str(spec.owners.volume) if spec.owners.volume else None
            if owner is not None and self.cluster.locks.busy("volume", owner):
                continue
            work = True
            log.info(
                "replica %s was left %s: destroying it",
                spec.uuid,
                spec.status.value.lower(),
            )
            await destroy_replica(self.cluster, spec)
        return work

    async def _reconcile_nexuses(self) -> bool:
        work = False
        for nexus in self.cluster.specs.all(NexusSpec):
            owner = str(nexus.owner) if nexus.owner else ""
            volume = self.cluster.specs.get(VolumeSpec, owner) if owner else None
            if self.cluster.locks.busy("volume", owner):
                continue
            if volume is not None and volume.operation is not None:
                continue
            wanted = (
                volume is not None
                and volume.target is not None
                and volume.target.nexus == nexus.uuid
                and nexus.status is SpecStatus.CREATED
            )
            if wanted:
                continue
            work = True
            log.info(
                "nexus %s on node %s is no volume's target: removing it", nexus.uuid, nexus.node
            )
            await destroy_target(self.cluster, nexus, force=True)
        return work

    async def _collect_orphans(self) -> bool:
        work = False
        cluster = self.cluster
        known_nexuses = {str(n.uuid) for n in cluster.specs.view(NexusSpec)}
        replicas = {str(r.uuid): r for r in cluster.specs.view(ReplicaSpec)}
        pending = {
            str(v.operation.args.get("nexus"))
            for v in cluster.specs.view(VolumeSpec)
            if v.operation is not None and v.operation.args.get("nexus")
        }
        for name in cluster.nodes.names():
            if not cluster.nodes.online(name):
                continue
            record = cluster.nodes.record(name)
            assert record is not None
            for nexus in list(record.nexuses):
                if nexus.uuid in known_nexuses or nexus.uuid in pending:
                    continue
                if cluster.locks.busy("volume", nexus.name):
                    continue
                work = True
                self._announce_superseded(name, nexus)
                log.info(
                    "orphan nexus %s (%s) on node %s: destroying it", nexus.uuid, nexus.name, name
                )
                try:
                    await cluster.engine(name).destroy_nexus(nexus.uuid)
                except NotFound:
                    pass
                await cluster.forget_superseded_nexus_info(nexus.uuid)
            for replica in list(record.replicas):
                spec = replicas.get(replica.uuid)
                if spec is None:
                    if not replica.entity_id or cluster.locks.busy("volume", replica.entity_id):
                        continue
                    work = True
                    log.info(
                        "orphan replica %s (volume %s) on node %s: destroying it",
                        replica.uuid,
                        replica.entity_id,
                        name,
                    )
                    try:
                        await cluster.engine(name).destroy_replica(replica.uuid)
                    except NotFound:
                        pass
                    continue
                if replica.share == common_pb2.NVMF and self._share_unneeded(spec):
                    work = True
                    log.info("replica %s is shared but no target uses it: unsharing", replica.uuid)
                    try:
                        await cluster.engine(name).unshare_replica(replica.uuid)
                    except NotFound:
                        pass
                    if spec.share is not Protocol.NONE:
                        unshared = spec.model_copy(deep=True)
                        unshared.share = Protocol.NONE
                        unshared.allowed_hosts = []
                        await cluster.specs.save(unshared)
            if work:
                await cluster.nodes.poll(name)
        return work

    def _announce_superseded(self, node: str, nexus: nexus_pb2.Nexus) -> None:
        """Tell the operator that an old target of a volume is about to be destroyed.

        A target node that was cut off comes back with the nexus the volume was moved
        away from. Whether that nexus has found out it was fenced by then is a race (its
        nexus-info write may still wait for the store), so the event says which: fenced
        (`FencedTargetCollected`) or not yet (`SupersededTargetCollected`). Neither has
        acknowledged a write since the move: a write that retires a child waits for
        that nexus-info write, which the store refuses. An orphan nexus of a deleted
        volume gets neither event."""
        cluster = self.cluster
        if nexus.fenced:
            cluster.emit(
                EventCategory.TARGET,
                "FencedTargetCollected",
                nexus.name,
                f"nexus {nexus.uuid} of volume {nexus.name} on node {node} is fenced "
                f"({nexus.fence_reason}): it is no target any more, destroying it",
                node=node,
            )
            return
        volume = cluster.specs.get(VolumeSpec, nexus.name)
        target = volume.target if volume is not None else None
        if target is None or target.nexus is None or str(target.nexus) == nexus.uuid:
            return
        cluster.emit(
            EventCategory.TARGET,
            "SupersededTargetCollected",
            nexus.name,
            f"nexus {nexus.uuid} of volume {nexus.name} on node {node} was replaced by nexus "
            f"{target.nexus} on node {target.node} and has not found out yet: "
            "destroying it",
            node=node,
        )

    async def _drain_nodes(self) -> bool:
        """Move every target off a draining node; mark it Drained once none is left."""
        work = False
        cluster = self.cluster
        for node in cluster.specs.view(NodeSpec):
            state = node.cordondrainstate
            if state is None or not state.draining:
                continue
            work = True
            remaining = 0
            for stored in cluster.specs.view(VolumeSpec):
                if stored.target is None or stored.target.node != node.id:
                    continue
                remaining += 1
                async with cluster.locks.try_hold("volume", str(stored.uuid)) as held:
                    volume = cluster.specs.get(VolumeSpec, str(stored.uuid)) if held else None
                    if volume is None or volume.operation is not None or volume.target is None:
                        continue
                    try:
                        await move_target(cluster, volume, f"node {node.id} is draining")
                        remaining -= 1
                    except MayastorError as exc:
                        log.warning("drain of %s: volume %s stays: %s", node.id, volume.uuid, exc)
            if remaining == 0:
                await mark_drained(cluster, node.id)
        return work

    def _share_unneeded(self, replica: ReplicaSpec) -> bool:
        owner = str(replica.owners.volume) if replica.owners.volume else None
        if owner is None or self.cluster.locks.busy("volume", owner):
            return False
        volume = self.cluster.specs.get(VolumeSpec, owner)
        if volume is None or volume.operation is not None:
            return False
        return volume.target is None or volume.target.node == replica.node
