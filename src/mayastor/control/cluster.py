"""The cluster as the core agent sees it: specs, nodes, and what operations share.

`Cluster` is handed to every operation and reconciler. It holds the spec registry
(desired state), the node registry (registrations and polled actual state), the
commitment limits, the per-object locks that serialise operations on one object, and
the nexus-info records in the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid as uuid_mod
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from mayastor.api.store_keys import SUPERSEDED_BY
from mayastor.api.v1 import nexus_pb2, pool_pb2, replica_pb2
from mayastor.control.engine_client import EngineClient
from mayastor.control.events import EventCategory, EventLog
from mayastor.control.nodes import NodeRegistry
from mayastor.control.placement import CommitmentLimits
from mayastor.control.spec_registry import SpecRegistry
from mayastor.control.specs import NodeSpec, ReplicaSpec, VolumeSpec
from mayastor.control.store import ClusterStore, RevisionMismatch, StoreKeys
from mayastor.errors import Conflict, CorruptMetadata

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NexusHealth:
    """What a nexus's info record says about its children (Mayastor's NexusInfo)."""

    clean_shutdown: bool
    healthy: frozenset[uuid_mod.UUID]
    known: frozenset[uuid_mod.UUID]

    @classmethod
    def parse(cls, data: bytes, where: str) -> NexusHealth:
        try:
            doc = json.loads(data)
            children = doc["children"]
            healthy = frozenset(uuid_mod.UUID(c["uuid"]) for c in children if c["healthy"] is True)
            known = frozenset(uuid_mod.UUID(c["uuid"]) for c in children)
            clean = doc["clean_shutdown"]
            if not isinstance(clean, bool):
                raise ValueError("clean_shutdown is not a boolean")
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptMetadata(f"nexus info {where} is not valid: {exc}") from exc
        return cls(clean_shutdown=clean, healthy=healthy, known=known)


class ResourceLocks:
    """One lock per object, so two operations never change one object at once.

    Args:
        wait: seconds an operation waits for another on the same object before it is
            refused with Conflict.
    """

    def __init__(self, wait: float = 30.0) -> None:
        self.wait = wait
        self._locks: dict[str, asyncio.Lock] = {}

    def busy(self, kind: str, object_id: str) -> bool:
        lock = self._locks.get(f"{kind}/{object_id}")
        return lock is not None and lock.locked()

    @contextlib.asynccontextmanager
    async def hold(self, kind: str, object_id: str) -> AsyncIterator[None]:
        key = f"{kind}/{object_id}"
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with asyncio.timeout(self.wait):
                await lock.acquire()
        except TimeoutError:
            raise Conflict(
                f"{kind} {object_id} is busy with another operation; try again later"
            ) from None
        try:
            yield
        finally:
            lock.release()

    @contextlib.asynccontextmanager
    async def try_hold(self, kind: str, object_id: str) -> AsyncIterator[bool]:
        """Hold the lock if it is free now; yields whether it was taken."""
        key = f"{kind}/{object_id}"
        lock = self._locks.setdefault(key, asyncio.Lock())
        if lock.locked():
            yield False
            return
        await lock.acquire()
        try:
            yield True
        finally:
            lock.release()


@dataclass
class Cluster:
    """What every operation and reconciler works on."""

    store: ClusterStore
    keys: StoreKeys
    specs: SpecRegistry
    nodes: NodeRegistry
    limits: CommitmentLimits = field(default_factory=CommitmentLimits)
    locks: ResourceLocks = field(default_factory=ResourceLocks)
    events: EventLog | None = None
    """Where events go (None: logged only, as in tests of one operation)."""
    reconcile_soon: Callable[[], None] = lambda: None
    """Asks the reconciler for a pass now (a request it serves was accepted, a drain)."""
    dhchap: bool = False
    """Every replica and nexus is shared with the DH-HMAC-CHAP secrets of the nodes that
    connect to it (`mayastor.control.node_secrets`)."""

    def emit(
        self,
        category: EventCategory,
        action: str,
        target: str,
        message: str,
        *,
        node: str | None = None,
    ) -> None:
        """Record an event (or only log it when the cluster keeps none)."""
        if self.events is not None:
            self.events.emit(category, action, target, message, node=node)
        else:
            log.info("%s %s %s: %s", category.value, action, target, message)

    # ------------------------------------------------------------------ actual state

    def engine(self, node: str) -> EngineClient:
        """The client of an Online node (NotFound, Unavailable otherwise)."""
        return self.nodes.client(node)

    def engine_pool(self, node: str, pool: str) -> pool_pb2.Pool | None:
        record = self.nodes.record(node)
        if record is None:
            return None
        return record.pool_by_name.get(pool)

    def engine_replica(
        self, node: str, replica_uuid: uuid_mod.UUID | str
    ) -> replica_pb2.Replica | None:
        record = self.nodes.record(node)
        if record is None:
            return None
        return record.replica_by_uuid.get(str(replica_uuid))

    def engine_nexus(self, node: str, nexus_uuid: uuid_mod.UUID | str) -> nexus_pb2.Nexus | None:
        record = self.nodes.record(node)
        if record is None:
            return None
        return record.nexus_by_uuid.get(str(nexus_uuid))

    def node_spec(self, node: str) -> NodeSpec | None:
        return self.specs.get(NodeSpec, node)

    def local_uri(self, replica: ReplicaSpec) -> str:
        """How a nexus on the replica's own node opens it: in-process."""
        return f"bdev:///{replica.name}?uuid={replica.uuid}"

    # ------------------------------------------------------------------ nexus info

    def nexus_info_key(self, nexus_uuid: uuid_mod.UUID | str) -> str:
        return self.keys.nexus_info(nexus_uuid)

    async def nexus_health(self, nexus_uuid: uuid_mod.UUID | None) -> NexusHealth | None:
        """What the nexus info of `nexus_uuid` says, or None when there is none (or only
        the mark of a nexus superseded before it stored any)."""
        if nexus_uuid is None:
            return None
        key = self.nexus_info_key(nexus_uuid)
        entry = await self.store.get(key)
        if entry is None or _is_mark_only(entry.value):
            return None
        return NexusHealth.parse(entry.value, key)

    async def forget_nexus_info(self, nexus_uuid: uuid_mod.UUID | str) -> None:
        await self.store.delete(self.nexus_info_key(nexus_uuid))

    async def supersede_nexus_info(
        self, nexus_uuid: uuid_mod.UUID | str, by: uuid_mod.UUID | str
    ) -> None:
        """Mark the nexus info of a nexus replaced while it cannot be reached (see
        `mark_superseded`); the mark stays until the old nexus is collected."""
        await mark_superseded(self.store, self.nexus_info_key(nexus_uuid), by)

    async def nexus_info_superseded(self, nexus_uuid: uuid_mod.UUID | str) -> bool:
        """Whether the nexus info of `nexus_uuid` carries the superseded mark."""
        entry = await self.store.get(self.nexus_info_key(nexus_uuid))
        return entry is not None and is_superseded(entry.value)

    async def forget_superseded_nexus_info(self, nexus_uuid: uuid_mod.UUID | str) -> None:
        """Remove the record of a superseded nexus once it is destroyed on its node,
        unless a volume still reads its health from it (a switch-over that was undone:
        the next publish trusts the replicas by it)."""
        if any(str(v.health_info_id) == str(nexus_uuid) for v in self.specs.view(VolumeSpec)):
            return
        if await self.nexus_info_superseded(nexus_uuid):
            await self.forget_nexus_info(nexus_uuid)

    async def release_nexus_info(self, nexus_uuid: uuid_mod.UUID | str) -> None:
        """Forget the nexus info of a nexus no longer needed, unless it is marked
        superseded (its nexus may still run; the mark goes when it is collected)."""
        if not await self.nexus_info_superseded(nexus_uuid):
            await self.forget_nexus_info(nexus_uuid)


_MARK_ATTEMPTS = 5


async def mark_superseded(store: ClusterStore, key: str, by: uuid_mod.UUID | str) -> None:
    """Mark the nexus info at `key` superseded by nexus `by`: from now on the store
    refuses the old nexus's writes (through the core agent, or in etcd, where the
    io-engine finds the record changed under it), so the old nexus cannot retire the
    children it lost and go on with the rest: it is fenced instead. What the record
    says is kept for the next nexus to read.

    Raises:
        Conflict: the record kept changing under the mark.
    """
    for _ in range(_MARK_ATTEMPTS):
        entry = await store.get(key)
        doc = _json_object(entry.value) if entry is not None else {}
        doc[SUPERSEDED_BY] = str(by)
        try:
            await store.put(key, json.dumps(doc).encode(), revision=entry.revision if entry else 0)
            return
        except RevisionMismatch:
            continue  # the old nexus wrote in between: mark what it wrote
    raise Conflict(f"nexus info {key} kept changing; it could not be marked superseded")


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def is_superseded(data: bytes) -> bool:
    """Whether a stored nexus info record carries the superseded mark."""
    return bool(_json_object(data).get(SUPERSEDED_BY))


def _is_mark_only(data: bytes) -> bool:
    doc = _json_object(data)
    return SUPERSEDED_BY in doc and "children" not in doc
