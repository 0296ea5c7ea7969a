"""The core agent's gRPC API for io-engines: registration and nexus info.

Errors become gRPC status codes here, in one place: a store that cannot be reached is
UNAVAILABLE (the io-engine tries again), bad input INVALID_ARGUMENT.
"""

from __future__ import annotations

import logging
import uuid as uuid_mod
from collections.abc import Awaitable, Callable

import grpc
from google.protobuf.empty_pb2 import Empty

from mayastor.api.v1 import registration_pb2, registration_pb2_grpc
from mayastor.control.cluster import Cluster, NexusHealth, is_superseded
from mayastor.control.node_secrets import node_secret
from mayastor.control.operations.nodes import record_node
from mayastor.errors import (
    CorruptMetadata,
    InvalidArgument,
    MayastorError,
    StoreUnavailable,
    Superseded,
    Unavailable,
)

log = logging.getLogger(__name__)

_CODES: tuple[tuple[type[MayastorError], grpc.StatusCode], ...] = (
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (CorruptMetadata, grpc.StatusCode.INVALID_ARGUMENT),
    (Superseded, grpc.StatusCode.FAILED_PRECONDITION),
)


async def _abort(context: grpc.aio.ServicerContext, exc: MayastorError) -> None:
    for klass, code in _CODES:
        if isinstance(exc, klass):
            await context.abort(code, str(exc))
    await context.abort(grpc.StatusCode.INTERNAL, str(exc))


def _uuid(text: str) -> uuid_mod.UUID:
    try:
        return uuid_mod.UUID(text)
    except ValueError:
        raise InvalidArgument(f"{text!r} is not a uuid") from None


class RegistrationService(registration_pb2_grpc.RegistrationServicer):
    """Register and Deregister: keep the node registry, and the node specs, current.

    Args:
        on_change: awaited after a registration that made a node known, restarted or
            brought it back (the agent pokes its reconciler).
    """

    def __init__(self, cluster: Cluster, on_change: Callable[[], Awaitable[None]]) -> None:
        self.cluster = cluster
        self.on_change = on_change

    async def Register(
        self, request: registration_pb2.RegisterNodeRequest, context: grpc.aio.ServicerContext
    ) -> registration_pb2.RegisterNodeResponse:
        if not request.id or not request.grpc_endpoint or not request.instance_uuid:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "a registration needs the node name, its gRPC endpoint and instance uuid",
            )
        before = self.cluster.nodes.record(request.id)
        instance = before.instance_uuid if before else None
        await self.cluster.nodes.register(request)
        try:
            await record_node(self.cluster, request)
        except StoreUnavailable as exc:
            log.warning("node %s: its spec is saved on a later registration: %s", request.id, exc)
        if instance != request.instance_uuid:
            await self.on_change()
        keys = self.cluster.keys
        try:
            secret = await node_secret(self.cluster, request.id)
        except MayastorError as exc:
            log.warning("node %s: its DH-HMAC-CHAP secret is sent later: %s", request.id, exc)
            secret = None
        return registration_pb2.RegisterNodeResponse(
            cluster_id=keys.cluster_id, namespace=keys.namespace, dhchap_secret=secret or ""
        )

    async def Deregister(
        self, request: registration_pb2.DeregisterNodeRequest, context: grpc.aio.ServicerContext
    ) -> Empty:
        await self.cluster.nodes.deregister(request.id, request.instance_uuid)
        return Empty()


class NexusInfoService(registration_pb2_grpc.NexusInfoStoreServicer):
    """Nexus info in the cluster store, for io-engines that do not reach it directly.

    The record of a nexus the core marked superseded (its volume got a newer target
    while it could not be reached) is not written again: the put is refused with
    FAILED_PRECONDITION and the nexus fences itself.
    """

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    async def _put_unless_superseded(
        self, nexus_uuid: uuid_mod.UUID, key: str, value: bytes
    ) -> None:
        entry = await self.cluster.store.get(key)
        revision = entry.revision if entry is not None else 0
        if entry is not None and is_superseded(entry.value):
            raise Superseded(
                f"nexus {nexus_uuid} was replaced by a newer target of its volume; its "
                "nexus info is not written again"
            )
        await self.cluster.store.put(key, value, revision=revision)

    async def GetNexusInfo(
        self, request: registration_pb2.NexusInfoKey, context: grpc.aio.ServicerContext
    ) -> registration_pb2.NexusInfoValue:
        try:
            key = self.cluster.nexus_info_key(_uuid(request.nexus_uuid))
            entry = await self.cluster.store.get(key)
        except MayastorError as exc:
            await _abort(context, exc)
            raise
        if entry is None:
            return registration_pb2.NexusInfoValue(found=False)
        return registration_pb2.NexusInfoValue(found=True, json=entry.value)

    async def PutNexusInfo(
        self, request: registration_pb2.PutNexusInfoRequest, context: grpc.aio.ServicerContext
    ) -> Empty:
        try:
            nexus_uuid = _uuid(request.nexus_uuid)
            key = self.cluster.nexus_info_key(nexus_uuid)
            NexusHealth.parse(request.json, f"sent for {key}")
            await self._put_unless_superseded(nexus_uuid, key, request.json)
        except MayastorError as exc:
            log.warning("nexus info of %s not stored: %s", request.nexus_uuid, exc)
            await _abort(context, exc)
            raise
        return Empty()
