"""The io-engines the core agent knows: registrations, liveness and polled state.

A node is Online while it has registered within the deadline and the last poll of its
gRPC API did not fail to connect; Offline otherwise. What each io-engine holds (pools,
replicas, nexuses) is polled from it and kept here in memory only: actual state is
never persisted, so after a restart the core rebuilds it from the io-engines.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from mayastor.api.v1 import nexus_pb2, pool_pb2, registration_pb2, replica_pb2
from mayastor.control.engine_client import EngineClient
from mayastor.credentials.grpc_tls import GrpcTls
from mayastor.errors import MayastorError, NotFound, Unavailable

log = logging.getLogger(__name__)


class NodeStatus(enum.StrEnum):
    UNKNOWN = "Unknown"
    ONLINE = "Online"
    OFFLINE = "Offline"


@dataclass
class NodeRecord:
    """One io-engine as last registered and polled."""

    name: str
    endpoint: str
    hostnqn: str
    instance_uuid: str
    version: str
    nvmf_address: str
    replica_port: int
    nexus_port: int
    client: EngineClient
    last_seen: float
    deregistered: bool = False
    poll_failed: str | None = None
    polled_at: float | None = None
    pools: list[pool_pb2.Pool] = field(default_factory=list)
    replicas: list[replica_pb2.Replica] = field(default_factory=list)
    nexuses: list[nexus_pb2.Nexus] = field(default_factory=list)
    pool_by_name: dict[str, pool_pb2.Pool] = field(default_factory=dict)
    replica_by_uuid: dict[str, replica_pb2.Replica] = field(default_factory=dict)
    nexus_by_uuid: dict[str, nexus_pb2.Nexus] = field(default_factory=dict)

    def take(
        self,
        pools: list[pool_pb2.Pool],
        replicas: list[replica_pb2.Replica],
        nexuses: list[nexus_pb2.Nexus],
    ) -> None:
        """Keep what a poll read, indexed for lookups by name and uuid."""
        self.pools, self.replicas, self.nexuses = pools, replicas, nexuses
        self.pool_by_name = {p.name: p for p in pools}
        self.replica_by_uuid = {r.uuid: r for r in replicas}
        self.nexus_by_uuid = {n.uuid: n for n in nexuses}


NodeListener = Callable[[str, str], Awaitable[None]]
"""Called with (node name, what happened): "registered", "restarted", "online", "offline"."""


class NodeRegistry:
    """Registrations, liveness and the polled state of every io-engine.

    Args:
        deadline: seconds without a registration after which a node is Offline.
        poll_period: seconds between two polls of every Online node.
        clock: monotonic seconds.
    """

    def __init__(
        self,
        *,
        deadline: float = 10.0,
        poll_period: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        tls: GrpcTls | None = None,
    ) -> None:
        self.deadline = deadline
        self.tls = tls
        self.poll_period = poll_period
        self._clock = clock
        self._nodes: dict[str, NodeRecord] = {}
        self._listeners: list[NodeListener] = []
        self._last_status: dict[str, NodeStatus] = {}
        self._task: asyncio.Task[None] | None = None
        self._poll_locks: dict[str, asyncio.Lock] = {}

    # ------------------------------------------------------------------ queries

    def names(self) -> list[str]:
        return sorted(self._nodes)

    def record(self, name: str) -> NodeRecord | None:
        return self._nodes.get(name)

    def status(self, name: str) -> NodeStatus:
        """Online, Offline, or Unknown (not registered and read since this agent started)."""
        record = self._nodes.get(name)
        if record is None or (record.polled_at is None and record.poll_failed is None):
            return NodeStatus.UNKNOWN
        if record.deregistered or record.poll_failed is not None:
            return NodeStatus.OFFLINE
        if self._clock() - record.last_seen > self.deadline:
            return NodeStatus.OFFLINE
        return NodeStatus.ONLINE

    def online(self, name: str) -> bool:
        return self.status(name) is NodeStatus.ONLINE

    def client(self, name: str) -> EngineClient:
        """The gRPC client of an Online node.

        Raises:
            NotFound: the node never registered.
            Unavailable: it is Offline.
        """
        record = self._nodes.get(name)
        if record is None:
            raise NotFound(f"node {name!r} is not known (no io-engine of that name registered)")
        status = self.status(name)
        if status is not NodeStatus.ONLINE:
            why = f": {record.poll_failed}" if record.poll_failed else ""
            raise Unavailable(f"node {name} is {status.value.lower()}{why}")
        return record.client

    def add_listener(self, listener: NodeListener) -> None:
        self._listeners.append(listener)

    # ------------------------------------------------------------------ registration

    async def register(self, request: registration_pb2.RegisterNodeRequest) -> None:
        """Record a registration; tell the listeners of a new node or a restart."""
        now = self._clock()
        record = self._nodes.get(request.id)
        event: str | None = None
        if record is None or record.endpoint != request.grpc_endpoint:
            if record is not None:
                await record.client.close()
            record = NodeRecord(
                name=request.id,
                endpoint=request.grpc_endpoint,
                hostnqn=request.hostnqn,
                instance_uuid=request.instance_uuid,
                version=request.version,
                nvmf_address=request.nvmf_address,
                replica_port=request.replica_port,
                nexus_port=request.nexus_port,
                client=EngineClient(request.id, request.grpc_endpoint, tls=self.tls),
                last_seen=now,
            )
            self._nodes[request.id] = record
            event = "registered"
            log.info(
                "node %s registered: gRPC %s, NVMe/TCP %s:%d/%d, instance %s",
                request.id,
                request.grpc_endpoint,
                request.nvmf_address,
                request.replica_port,
                request.nexus_port,
                request.instance_uuid,
            )
        elif record.instance_uuid != request.instance_uuid:
            log.info(
                "node %s restarted (instance %s, was %s)",
                request.id,
                request.instance_uuid,
                record.instance_uuid,
            )
            await record.client.close()
            record.client = EngineClient(request.id, request.grpc_endpoint, tls=self.tls)
            record.instance_uuid = request.instance_uuid
            record.hostnqn = request.hostnqn
            record.version = request.version
            record.nvmf_address = request.nvmf_address
            record.replica_port = request.replica_port
            record.nexus_port = request.nexus_port
            event = "restarted"
        record.last_seen = now
        record.deregistered = False
        if event is not None:
            record.poll_failed = None
            await self.poll(request.id)
            await self._notify(request.id, event)
        await self._check_transition(request.id)

    async def deregister(self, name: str, instance_uuid: str) -> None:
        record = self._nodes.get(name)
        if record is None or record.instance_uuid != instance_uuid:
            return
        record.deregistered = True
        log.info("node %s deregistered (a clean stop)", name)
        await self._check_transition(name)

    async def _check_transition(self, name: str) -> None:
        status = self.status(name)
        before = self._last_status.get(name)
        if status is before:
            return
        self._last_status[name] = status
        if status is NodeStatus.ONLINE and before is not None:
            log.info("node %s is online", name)
            await self._notify(name, "online")
        elif status is NodeStatus.OFFLINE:
            record = self._nodes[name]
            reason = (
                "deregistered"
                if record.deregistered
                else record.poll_failed or f"no registration for {self.deadline:g} s"
            )
            log.warning("node %s is offline: %s", name, reason)
            await self._notify(name, "offline")

    async def _notify(self, name: str, event: str) -> None:
        for listener in self._listeners:
            try:
                await listener(name, event)
            except MayastorError as exc:
                log.warning("node %s %s: a listener failed: %s", name, event, exc)

    # ------------------------------------------------------------------ polling

    async def poll(self, name: str) -> NodeRecord | None:
        """Read what the io-engine holds now; a node that cannot be reached goes Offline."""
        record = self._nodes.get(name)
        if record is None:
            return None
        lock = self._poll_locks.setdefault(name, asyncio.Lock())
        async with lock:
            try:
                pools = await record.client.list_pools()
                replicas = await record.client.list_replicas()
                nexuses = await record.client.list_nexuses()
            except Unavailable as exc:
                if record.poll_failed is None:
                    log.debug("poll of node %s failed: %s", name, exc)
                record.poll_failed = "its gRPC API does not answer"
            except MayastorError as exc:
                log.warning("poll of node %s failed: %s", name, exc)
            else:
                record.take(pools, replicas, nexuses)
                record.polled_at = self._clock()
                record.poll_failed = None
        await self._check_transition(name)
        return record

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._poll_forever(), name="poller")

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.poll_period)
            await asyncio.gather(*(self._poll_if_alive(name) for name in list(self._nodes)))

    async def _poll_if_alive(self, name: str) -> None:
        """Poll a node that registered lately; one stuck node does not hold up the others."""
        record = self._nodes[name]
        if record.deregistered or self._clock() - record.last_seen > self.deadline:
            await self._check_transition(name)
        else:
            await self.poll(name)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for record in self._nodes.values():
            await record.client.close()
