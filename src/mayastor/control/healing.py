"""Self-healing: what the reconciler does for volumes that lost a replica or their nexus.

For every published volume:

* a faulted child whose replica is reachable again is brought back online (a partial
  rebuild when the nexus logged what it missed, else a full one);
* a child faulted for longer than `faulted_child_wait` (its node never came back, or
  it keeps failing) is retired: it leaves the nexus, its replica is destroyed (or will
  be, once its node is back), and a new replica is placed on another node and rebuilt
  in full; so is a child the nexus still counts Online whose node has been Offline for
  as long (an idle volume: no I/O went to the child to fault it);
* a replica of the volume that is no child of its nexus (its node was away when the
  nexus was made, say after a switch-over) joins it and is rebuilt in full once its
  node is back, or is replaced after `faulted_child_wait`;
* a nexus whose io-engine restarted (the node is back, the nexus is not) is made again
  on the same node from the nexus info in the store: only the children marked healthy
  are trusted (after an unclean stop, one of them), the others are rebuilt; so is a
  volume's nexus found fenced (another nexus, one no spec names, took its replicas):
  it is destroyed and the new one takes the replicas back;

and for every volume, the replica count follows `num_replicas` (an interrupted scale is
finished). Volumes whose `policy.self_heal` is false keep faulted children as they are.
At most `max_rebuilds` rebuilds run in the cluster at once. Every action is logged with
its reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from mayastor.api.v1 import nexus_pb2
from mayastor.control.cluster import Cluster
from mayastor.control.events import EventCategory
from mayastor.control.operations.replicas import child_uri
from mayastor.control.operations.targets import recreate_target
from mayastor.control.operations.volumes import converge_replica_count, retire_replica
from mayastor.control.specs import ReplicaSpec, SpecStatus, VolumeSpec
from mayastor.errors import FailedPrecondition, MayastorError, NotFound

log = logging.getLogger(__name__)

_NOT_HEALED = (nexus_pb2.CHILD_STATE_REASON_BY_CLIENT, nexus_pb2.CHILD_STATE_REASON_NO_SPACE)
"""Faults an operator chose or that a rebuild cannot mend: left alone."""


class VolumeHealer:
    """The self-healing rules, run by the reconciler on each pass.

    Args:
        cluster: what to heal.
        faulted_child_wait: seconds a faulted child may stay faulted before it is replaced.
        max_rebuilds: rebuilds that may run at once in the cluster (None: no limit).
        clock: monotonic seconds.
    """

    def __init__(
        self,
        cluster: Cluster,
        *,
        faulted_child_wait: float = 600.0,
        max_rebuilds: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cluster = cluster
        self.faulted_child_wait = faulted_child_wait
        self.max_rebuilds = max_rebuilds
        self._clock = clock
        self._faulted_since: dict[tuple[str, str], float] = {}
        self._refused: dict[str, str] = {}

    def rebuilds_running(self) -> int:
        """Children being rebuilt now, over every nexus the io-engines reported."""
        count = 0
        for name in self.cluster.nodes.names():
            record = self.cluster.nodes.record(name)
            if record is None or not self.cluster.nodes.online(name):
                continue
            for nexus in record.nexuses:
                count += sum(1 for c in nexus.children if c.state == nexus_pb2.CHILD_STATE_DEGRADED)
        return count

    def _may_rebuild(self) -> bool:
        return self.max_rebuilds is None or self.rebuilds_running() < self.max_rebuilds

    def _waiting_since(self, key: tuple[str, str]) -> float:
        """When the child or replica `key` (volume, uuid) started waiting to be replaced;
        the first time, a reconcile pass is asked for just after the wait ends, so the
        replacement does not wait for the next periodic pass too."""
        if key not in self._faulted_since:
            self._faulted_since[key] = self._clock()
            asyncio.get_running_loop().call_later(
                self.faulted_child_wait + 0.5, self.cluster.reconcile_soon
            )
        return self._faulted_since[key]

    # ------------------------------------------------------------------ the pass

    async def heal(self) -> bool:
        """One pass over every volume; True when it found something to do."""
        work = False
        seen: set[tuple[str, str]] = set()
        for stored in self.cluster.specs.view(VolumeSpec):
            if stored.operation is not None or stored.status is not SpecStatus.CREATED:
                continue
            async with self.cluster.locks.try_hold("volume", str(stored.uuid)) as held:
                if not held:
                    continue
                volume = self.cluster.specs.get(VolumeSpec, str(stored.uuid))
                if volume is None or volume.operation is not None:
                    continue
                try:
                    work = await self._heal_volume(volume, seen) or work
                except MayastorError as exc:
                    log.warning("volume %s: healing stopped: %s", volume.uuid, exc)
                    work = True
        for key in set(self._faulted_since) - seen:
            del self._faulted_since[key]
        return work

    async def _heal_volume(self, volume: VolumeSpec, seen: set[tuple[str, str]]) -> bool:
        cluster = self.cluster
        target = volume.target
        if target is not None and target.nexus is not None and cluster.nodes.online(target.node):
            if cluster.engine_nexus(target.node, target.nexus) is None:
                await cluster.nodes.poll(target.node)
            found = cluster.engine_nexus(target.node, target.nexus)
            if found is not None and found.fenced:
                cluster.emit(
                    EventCategory.TARGET,
                    "Fenced",
                    str(volume.uuid),
                    f"the nexus {target.nexus} of volume {volume.uuid} on node {target.node} "
                    f"is fenced ({found.fence_reason}): making a new one that takes the "
                    "replicas back",
                    node=target.node,
                )
                try:
                    await cluster.engine(target.node).destroy_nexus(str(target.nexus))
                except NotFound:
                    pass
                await recreate_target(cluster, volume)
                return True
            if found is None:
                cluster.emit(
                    EventCategory.TARGET,
                    "Recreating",
                    str(volume.uuid),
                    f"the nexus of volume {volume.uuid} is gone from node {target.node} (its "
                    "io-engine restarted, or a move off it failed half way): making it again",
                    node=target.node,
                )
                await recreate_target(cluster, volume)
                return True
            if volume.policy.self_heal and await self._heal_children(volume, seen):
                return True
            if volume.policy.self_heal and await self._rejoin_replicas(volume, seen):
                return True
        return await self._follow_count(volume)

    async def _heal_children(self, volume: VolumeSpec, seen: set[tuple[str, str]]) -> bool:
        cluster = self.cluster
        target = volume.target
        assert target is not None
        assert target.nexus is not None
        nexus = cluster.engine_nexus(target.node, target.nexus)
        if nexus is None:
            return False
        for child in nexus.children:
            replica = cluster.specs.get(ReplicaSpec, child.uuid)
            lost = (
                child.state == nexus_pb2.CHILD_STATE_ONLINE
                and replica is not None
                and replica.node != target.node
                and not cluster.nodes.online(replica.node)
            )
            faulted = child.state == nexus_pb2.CHILD_STATE_FAULTED
            if not (lost or faulted) or child.state_reason in _NOT_HEALED:
                continue
            key = (str(volume.uuid), child.uuid)
            seen.add(key)
            since = self._waiting_since(key)
            if replica is None:
                continue
            if self._clock() - since > self.faulted_child_wait:
                cluster.emit(
                    EventCategory.REPLICA,
                    "Replacing",
                    str(volume.uuid),
                    f"replica {replica.uuid} on {replica.node} has been "
                    f"{'faulted' if faulted else 'on an Offline node'} for over "
                    f"{self.faulted_child_wait:g} s: replacing it with a new one",
                    node=replica.node,
                )
                await retire_replica(cluster, volume, replica)
                self._faulted_since.pop(key, None)
                cluster.reconcile_soon()  # the next pass places the new replica
                return True
            reachable = cluster.nodes.online(replica.node) and (
                cluster.engine_replica(replica.node, replica.uuid) is not None
            )
            if lost or not reachable or not self._may_rebuild():
                continue
            cluster.emit(
                EventCategory.REPLICA,
                "Reattaching",
                str(volume.uuid),
                f"replica {replica.uuid} on {replica.node} is reachable again: bringing its "
                "child online",
                node=replica.node,
            )
            try:
                await cluster.engine(target.node).child_online(str(target.nexus), child.uri)
            except MayastorError as exc:
                log.warning("volume %s: child %s stays faulted: %s", volume.uuid, child.uri, exc)
            await cluster.nodes.poll(target.node)
            return True
        return False

    async def _rejoin_replicas(self, volume: VolumeSpec, seen: set[tuple[str, str]]) -> bool:
        cluster = self.cluster
        target = volume.target
        assert target is not None
        assert target.nexus is not None
        nexus = cluster.engine_nexus(target.node, target.nexus)
        if nexus is None:
            return False
        children = {c.uuid for c in nexus.children}
        for replica in cluster.specs.replicas_of(volume):
            if replica.status is not SpecStatus.CREATED or str(replica.uuid) in children:
                continue
            key = (str(volume.uuid), str(replica.uuid))
            seen.add(key)
            since = self._waiting_since(key)
            if self._clock() - since > self.faulted_child_wait:
                cluster.emit(
                    EventCategory.REPLICA,
                    "Replacing",
                    str(volume.uuid),
                    f"replica {replica.uuid} on {replica.node} has been out of the nexus for "
                    f"over {self.faulted_child_wait:g} s: replacing it with a new one",
                    node=replica.node,
                )
                await retire_replica(cluster, volume, replica)
                self._faulted_since.pop(key, None)
                cluster.reconcile_soon()  # the next pass places the new replica
                return True
            reachable = cluster.nodes.online(replica.node) and (
                cluster.engine_replica(replica.node, replica.uuid) is not None
            )
            if not reachable or not self._may_rebuild():
                continue
            cluster.emit(
                EventCategory.REPLICA,
                "Rejoining",
                str(volume.uuid),
                f"replica {replica.uuid} on {replica.node} is reachable again but no child of "
                "the volume's nexus (made while it was away): adding it, to be rebuilt in full",
                node=replica.node,
            )
            uri = await child_uri(cluster, replica, target.node)
            try:
                await cluster.engine(target.node).add_child(str(target.nexus), uri)
            except MayastorError as exc:
                log.warning("volume %s: replica %s stays out: %s", volume.uuid, replica.uuid, exc)
            await cluster.nodes.poll(target.node)
            return True
        return False

    async def _follow_count(self, volume: VolumeSpec) -> bool:
        have = len(self.cluster.specs.replicas_of(volume))
        if have == volume.num_replicas:
            self._refused.pop(str(volume.uuid), None)
            return False
        if have < volume.num_replicas and volume.target is not None and not self._may_rebuild():
            return True
        try:
            await converge_replica_count(self.cluster, volume)
        except FailedPrecondition as exc:
            if self._refused.get(str(volume.uuid)) != str(exc):
                log.warning(
                    "volume %s has %d of %d replica(s) and cannot get more now: %s",
                    volume.uuid,
                    have,
                    volume.num_replicas,
                    exc,
                )
                self._refused[str(volume.uuid)] = str(exc)
            return True
        self.cluster.emit(
            EventCategory.VOLUME,
            "ReplicaCountRestored",
            str(volume.uuid),
            f"volume {volume.uuid} has {len(self.cluster.specs.replicas_of(volume))} "
            "replica(s) again, as its spec asks",
        )
        return True
