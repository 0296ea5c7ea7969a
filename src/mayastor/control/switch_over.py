"""Target switch-over: a published volume whose target is lost gets one on another node.

Two things start it:

* the target's node has been Offline (no registration within the deadline, its gRPC
  API does not answer, or it said goodbye) for `wait` seconds: the reconciler moves
  every target off it (an io-engine that restarts within the wait gets its nexuses
  made again where they were, see `mayastor.control.healing`);
* an application node reports that its path to a volume's target failed (its ha-node
  agent ``POST``s to ``/v0/app-nodes/{id}/failed-paths``): the core moves that
  volume's target at once and answers with the new path, which the agent connects.

The new target is a new nexus under the same subsystem NQN with the next controller
ID range and the same namespace identifiers, so the host's native NVMe multipath takes
it as another path of the same device and resumes the I/O it queued
(`mayastor.control.operations.targets`). A report about a path that is no longer the
volume's target (it moved already, say because another app node reported first) is
answered with the current path and changes nothing.

A volume whose target cannot move (no other node can take it, no current replica can
be reached) stays as it is; that is logged once per reason and tried again on each
pass.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid as uuid_mod
from collections.abc import Callable
from urllib.parse import urlsplit

from mayastor.control.cluster import Cluster
from mayastor.control.events import EventCategory
from mayastor.control.nodes import NodeStatus
from mayastor.control.operations.targets import move_target, trusted_replicas
from mayastor.control.specs import NQN_PREFIX, AppNodeSpec, SpecStatus, VolumeSpec
from mayastor.errors import FailedPrecondition, InvalidArgument, MayastorError, NotFound

log = logging.getLogger(__name__)


def volume_of_nqn(nqn: str) -> uuid_mod.UUID:
    """The volume whose target is subsystem `nqn` (``nqn.2019-05.io.openebs:<uuid>``).

    Raises:
        InvalidArgument: not a volume target's NQN.
    """
    prefix = f"{NQN_PREFIX}:"
    if not nqn.startswith(prefix):
        raise InvalidArgument(f"{nqn!r} is not the NQN of a volume target ({prefix}<uuid>)")
    try:
        return uuid_mod.UUID(nqn.removeprefix(prefix))
    except ValueError:
        raise InvalidArgument(f"{nqn!r} is not the NQN of a volume target") from None


def target_address(uri: str) -> str:
    """``HOST:PORT`` of an ``nvmf://HOST:PORT/NQN`` URI ("" when it has none)."""
    parts = urlsplit(uri)
    try:
        port = parts.port
    except ValueError:
        return ""
    if not parts.hostname or port is None:
        return ""
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{port}"


def current_target_uri(cluster: Cluster, volume: VolumeSpec) -> str:
    """The ``nvmf://`` URI of the volume's target as its io-engine last reported it."""
    target = volume.target
    if target is None or target.nexus is None:
        return ""
    nexus = cluster.engine_nexus(target.node, target.nexus)
    return nexus.device_uri if nexus is not None else ""


class TargetSwitchOver:
    """Moves targets off lost nodes and answers app nodes' failed-path reports.

    Args:
        cluster: the cluster.
        enabled: False leaves targets on Offline nodes where they are (reports from
            app nodes are still served).
        wait: seconds a node stays Offline before its targets move.
        wake: called when a node's wait is over (the reconciler's `poke`), so the move
            does not wait for the next periodic pass.
        clock: monotonic seconds.
    """

    def __init__(
        self,
        cluster: Cluster,
        *,
        enabled: bool = True,
        wait: float = 5.0,
        wake: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cluster = cluster
        self.enabled = enabled
        self.wait = wait
        self.wake = wake
        self._clock = clock
        self._refused: dict[str, str] = {}
        self._offline_since: dict[str, float] = {}

    # ------------------------------------------------------------------ the pass

    async def move_lost_targets(self) -> bool:
        """Move the target of every published volume whose node is Offline; True when
        there was such a volume."""
        if not self.enabled:
            return False
        work = False
        cluster = self.cluster
        offline = {
            v.target.node
            for v in cluster.specs.view(VolumeSpec)
            if v.target is not None and cluster.nodes.status(v.target.node) is NodeStatus.OFFLINE
        }
        now = self._clock()
        for node in set(self._offline_since) - offline:
            del self._offline_since[node]
        lost = set()
        for node in offline:
            since = self._offline_since.setdefault(node, now)
            if now - since >= self.wait:
                lost.add(node)
            else:
                work = True
                self._wake_in(self.wait - (now - since))
        for stored in cluster.specs.view(VolumeSpec):
            if stored.target is None or stored.target.node not in lost:
                continue
            work = True
            async with cluster.locks.try_hold("volume", str(stored.uuid)) as held:
                volume = cluster.specs.get(VolumeSpec, str(stored.uuid)) if held else None
                if volume is None or volume.operation is not None or volume.target is None:
                    continue
                if cluster.nodes.status(volume.target.node) is not NodeStatus.OFFLINE:
                    continue
                await self._move(
                    volume,
                    f"its node {volume.target.node} has been offline for {self.wait:g} s",
                )
        for key in set(self._refused) - {
            str(v.uuid) for v in cluster.specs.view(VolumeSpec) if v.target is not None
        }:
            del self._refused[key]
        return work

    def _wake_in(self, seconds: float) -> None:
        if self.wake is not None:
            asyncio.get_running_loop().call_later(max(seconds, 0.0), self.wake)

    async def _current_replica_reachable(self, volume: VolumeSpec) -> None:
        """Check that a replica known to be current can be reached before moving: a
        move that finds none is undone and would leave the volume unpublished, where
        waiting keeps it published until the replica's node is back.

        Raises:
            FailedPrecondition: no reachable replica is known to be current.
        """
        cluster = self.cluster
        present = [
            r
            for r in cluster.specs.replicas_of(volume)
            if r.status is SpecStatus.CREATED
            and cluster.nodes.online(r.node)
            and cluster.engine_replica(r.node, r.uuid) is not None
        ]
        health = await cluster.nexus_health(volume.health_info_id)
        trusted_replicas(volume, present, health, target_node="")

    async def _move(self, volume: VolumeSpec, why: str) -> VolumeSpec | None:
        if volume.target is not None:
            # a dead io-engine is known Offline at once, so its nexus is not waited for
            await self.cluster.nodes.poll(volume.target.node)
        try:
            await self._current_replica_reachable(volume)
            moved = await move_target(self.cluster, volume, why)
        except MayastorError as exc:
            if self._refused.get(str(volume.uuid)) != str(exc):
                self.cluster.emit(
                    EventCategory.TARGET,
                    "SwitchOverFailed",
                    str(volume.uuid),
                    f"the target of volume {volume.uuid} cannot move ({why}): {exc}",
                    node=volume.target.node if volume.target else None,
                )
                self._refused[str(volume.uuid)] = str(exc)
            return None
        self._refused.pop(str(volume.uuid), None)
        assert moved.target is not None
        self.cluster.emit(
            EventCategory.TARGET,
            "SwitchedOver",
            str(volume.uuid),
            f"volume {volume.uuid} is served from node {moved.target.node} now ({why})",
            node=moved.target.node,
        )
        return moved

    # ------------------------------------------------------------------ reports

    async def path_failed(self, app_node: str, nqn: str, address: str) -> str:
        """An app node's path to the target `nqn` at `address` (``HOST:PORT`` as the
        app node dialled it; "" when unknown) failed: move the target unless it moved
        already; returns the URI of the volume's target now.

        Raises:
            InvalidArgument: not a volume target's NQN.
            NotFound: no such volume, or the app node is not registered.
            FailedPrecondition: the volume is not published, or its target cannot move.
        """
        cluster = self.cluster
        if cluster.specs.get(AppNodeSpec, app_node) is None:
            raise NotFound(f"app node {app_node} is not registered")
        volume_uuid = volume_of_nqn(nqn)
        async with cluster.locks.hold("volume", str(volume_uuid)):
            volume = cluster.specs.get(VolumeSpec, str(volume_uuid))
            if volume is None:
                raise NotFound(f"volume {volume_uuid} not found")
            if volume.target is None:
                raise FailedPrecondition(f"volume {volume_uuid} is not published")
            current = current_target_uri(cluster, volume)
            if current and address and target_address(current) != address:
                log.info(
                    "volume %s: app node %s reports %s failed, but the target is at %s now",
                    volume_uuid,
                    app_node,
                    address,
                    current,
                )
                return current
            cluster.emit(
                EventCategory.TARGET,
                "PathFailed",
                str(volume_uuid),
                f"app node {app_node} lost its path {address or '(address not given)'} to "
                f"volume {volume_uuid} on node {volume.target.node}",
                node=volume.target.node,
            )
            moved = await self._move(volume, f"app node {app_node} lost its path to it")
            if moved is None:
                raise FailedPrecondition(
                    f"the target of volume {volume_uuid} cannot move: "
                    f"{self._refused.get(str(volume_uuid), 'see the events')}"
                )
            uri = current_target_uri(cluster, moved)
            if not uri:
                raise FailedPrecondition(
                    f"volume {volume_uuid}: its new target does not report a URI yet"
                )
            return uri
