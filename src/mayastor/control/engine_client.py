"""The core agent's client of one io-engine: its gRPC API, with errors mapped back.

The io-engine refuses with gRPC status codes (see `mayastor.engine.grpc_errors`); here
they become the product's errors again, so an operation can tell "not there" from
"cannot reach the node" and the REST API answers 404 or 503 accordingly.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import grpc
from google.protobuf.empty_pb2 import Empty

from mayastor.api.v1 import (
    common_pb2,
    host_pb2,
    host_pb2_grpc,
    nexus_pb2,
    nexus_pb2_grpc,
    pool_pb2,
    pool_pb2_grpc,
    replica_pb2,
    replica_pb2_grpc,
)
from mayastor.credentials import grpc_tls
from mayastor.credentials.grpc_tls import GrpcTls
from mayastor.errors import (
    AlreadyExists,
    Conflict,
    FailedPrecondition,
    InvalidArgument,
    MayastorError,
    NotFound,
    ResourceExhausted,
    Unavailable,
)

log = logging.getLogger(__name__)

_T = TypeVar("_T")

_ERRORS: dict[grpc.StatusCode, type[MayastorError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: Unavailable,
    grpc.StatusCode.ABORTED: Conflict,
    grpc.StatusCode.PERMISSION_DENIED: FailedPrecondition,
    grpc.StatusCode.DATA_LOSS: FailedPrecondition,
}

DEFAULT_TIMEOUT = 30.0
LIST_TIMEOUT = 5.0
"""Listings answer at once from memory; one that takes longer means the node is stuck."""

_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
]
"""A node that comes back is reached within a second, not after gRPC's long backoff."""


@dataclass(frozen=True)
class NexusReservation:
    """The NVMe reservation a volume's nexus holds on its replicas (Mayastor's
    NexusNvmfConfig as its core agent fills it: Exclusive Access, preempting whichever
    other host holds a replica).

    Attributes:
        key: the nexus's reservation key (nonzero).
        preempt_key: the key of the volume's previous target, when it replaces one (0:
            none); the Holder policy preempts whoever holds a replica, so it is a record
            of what is replaced more than a condition.
    """

    key: int
    preempt_key: int = 0


class EngineError(MayastorError):
    """An io-engine failed in a way that fits no usage error (gRPC INTERNAL, ...)."""


class EngineClient:
    """The gRPC API of one io-engine.

    Args:
        node: the node's name, for messages.
        endpoint: its gRPC endpoint.
        timeout: seconds allowed for each call (a rebuild start or a pool import may
            take a while; a dead node is found by its connection failing).
    """

    def __init__(
        self,
        node: str,
        endpoint: str,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        tls: GrpcTls | None = None,
    ) -> None:
        self.node = node
        self.endpoint = endpoint
        self.timeout = timeout
        self._channel = grpc_tls.aio_channel(endpoint, tls, options=_CHANNEL_OPTIONS)
        self.host = host_pb2_grpc.HostRpcStub(self._channel)
        self.pools = pool_pb2_grpc.PoolRpcStub(self._channel)
        self.replicas = replica_pb2_grpc.ReplicaRpcStub(self._channel)
        self.nexus = nexus_pb2_grpc.NexusRpcStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def _call(self, what: str, call: Callable[[], Awaitable[_T]]) -> _T:
        try:
            return await call()
        except grpc.aio.AioRpcError as exc:
            klass = _ERRORS.get(exc.code(), EngineError)
            message = exc.details() or exc.code().name
            if klass is Unavailable:
                message = f"node {self.node} ({self.endpoint}) cannot be reached: {message}"
            else:
                message = f"node {self.node}: {what}: {message}"
            raise klass(message) from exc

    # ------------------------------------------------------------------ host

    async def info(self) -> host_pb2.MayastorInfoResponse:
        return await self._call(
            "info", lambda: self.host.GetMayastorInfo(Empty(), timeout=self.timeout)
        )

    async def block_devices(self, all_devices: bool) -> list[host_pb2.BlockDevice]:
        request = host_pb2.ListBlockDevicesRequest(all=all_devices)
        reply = await self._call(
            "list block devices", lambda: self.host.ListBlockDevices(request, timeout=self.timeout)
        )
        return list(reply.devices)

    # ------------------------------------------------------------------ pools

    async def list_pools(self) -> list[pool_pb2.Pool]:
        reply = await self._call(
            "list pools",
            lambda: self.pools.ListPools(pool_pb2.ListPoolOptions(), timeout=LIST_TIMEOUT),
        )
        return list(reply.pools)

    async def create_pool(self, name: str, disks: Sequence[str]) -> pool_pb2.Pool:
        request = pool_pb2.CreatePoolRequest(name=name, disks=list(disks))
        return await self._call(
            f"create pool {name}", lambda: self.pools.CreatePool(request, timeout=self.timeout)
        )

    async def import_pool(self, name: str, disks: Sequence[str]) -> pool_pb2.Pool:
        request = pool_pb2.ImportPoolRequest(name=name, disks=list(disks))
        return await self._call(
            f"import pool {name}", lambda: self.pools.ImportPool(request, timeout=self.timeout)
        )

    async def destroy_pool(self, name: str) -> None:
        request = pool_pb2.DestroyPoolRequest(name=name)
        await self._call(
            f"destroy pool {name}", lambda: self.pools.DestroyPool(request, timeout=self.timeout)
        )

    # ------------------------------------------------------------------ replicas

    async def list_replicas(self) -> list[replica_pb2.Replica]:
        reply = await self._call(
            "list replicas",
            lambda: self.replicas.ListReplicas(
                replica_pb2.ListReplicaOptions(), timeout=LIST_TIMEOUT
            ),
        )
        return list(reply.replicas)

    async def create_replica(
        self, *, name: str, uuid: str, pool: str, size: int, thin: bool, entity_id: str
    ) -> replica_pb2.Replica:
        request = replica_pb2.CreateReplicaRequest(
            name=name, uuid=uuid, pooluuid=pool, size=size, thin=thin, entity_id=entity_id
        )
        return await self._call(
            f"create replica {uuid}",
            lambda: self.replicas.CreateReplica(request, timeout=self.timeout),
        )

    async def destroy_replica(self, uuid: str) -> None:
        request = replica_pb2.DestroyReplicaRequest(uuid=uuid)
        await self._call(
            f"destroy replica {uuid}",
            lambda: self.replicas.DestroyReplica(request, timeout=self.timeout),
        )

    async def share_replica(
        self,
        uuid: str,
        allowed_hosts: Sequence[str],
        host_secrets: Sequence[common_pb2.HostSecret] = (),
    ) -> replica_pb2.Replica:
        """Share over NVMe/TCP for `allowed_hosts`; with `host_secrets` each host must
        prove its DH-HMAC-CHAP secret (sharing again replaces both)."""
        request = replica_pb2.ShareReplicaRequest(
            uuid=uuid,
            share=common_pb2.NVMF,
            allowed_hosts=list(allowed_hosts),
            host_secrets=list(host_secrets),
        )
        return await self._call(
            f"share replica {uuid}",
            lambda: self.replicas.ShareReplica(request, timeout=self.timeout),
        )

    async def unshare_replica(self, uuid: str) -> replica_pb2.Replica:
        request = replica_pb2.UnshareReplicaRequest(uuid=uuid)
        return await self._call(
            f"unshare replica {uuid}",
            lambda: self.replicas.UnshareReplica(request, timeout=self.timeout),
        )

    async def resize_replica(self, uuid: str, size: int) -> replica_pb2.Replica:
        request = replica_pb2.ResizeReplicaRequest(uuid=uuid, requested_size=size)
        return await self._call(
            f"resize replica {uuid}",
            lambda: self.replicas.ResizeReplica(request, timeout=self.timeout),
        )

    # ------------------------------------------------------------------ nexuses

    async def list_nexuses(self) -> list[nexus_pb2.Nexus]:
        reply = await self._call(
            "list nexuses",
            lambda: self.nexus.ListNexus(nexus_pb2.ListNexusOptions(), timeout=LIST_TIMEOUT),
        )
        return list(reply.nexus_list)

    async def create_nexus(
        self,
        *,
        name: str,
        uuid: str,
        size: int,
        children: Sequence[str],
        cntlid_range: tuple[int, int] | None = None,
        reservation: NexusReservation | None = None,
    ) -> nexus_pb2.Nexus:
        """Create a nexus; with `reservation` it holds an NVMe reservation on every
        child (fencing any older nexus of the volume)."""
        low, high = cntlid_range or (0, 0)
        request = nexus_pb2.CreateNexusRequest(
            name=name,
            uuid=uuid,
            size=size,
            children=list(children),
            minCntlId=low,
            maxCntlId=high,
        )
        if reservation is not None:
            request.resvKey = reservation.key
            request.preemptKey = reservation.preempt_key
            request.resv_type = nexus_pb2.ExclusiveAccess
            request.preempt_policy = nexus_pb2.Holder
        reply = await self._call(
            f"create nexus {uuid}", lambda: self.nexus.CreateNexus(request, timeout=self.timeout)
        )
        nexus: nexus_pb2.Nexus = reply.nexus
        return nexus

    async def destroy_nexus(self, uuid: str) -> None:
        request = nexus_pb2.DestroyNexusRequest(uuid=uuid)
        await self._call(
            f"destroy nexus {uuid}", lambda: self.nexus.DestroyNexus(request, timeout=self.timeout)
        )

    async def shutdown_nexus(self, uuid: str) -> nexus_pb2.Nexus:
        request = nexus_pb2.ShutdownNexusRequest(uuid=uuid)
        reply = await self._call(
            f"shut down nexus {uuid}",
            lambda: self.nexus.ShutdownNexus(request, timeout=self.timeout),
        )
        nexus: nexus_pb2.Nexus = reply.nexus
        return nexus

    async def publish_nexus(
        self,
        uuid: str,
        allowed_hosts: Sequence[str],
        host_secrets: Sequence[common_pb2.HostSecret] = (),
    ) -> nexus_pb2.Nexus:
        """Publish over NVMe/TCP for `allowed_hosts` (and `host_secrets`, as for
        `share_replica`)."""
        request = nexus_pb2.PublishNexusRequest(
            uuid=uuid,
            share=common_pb2.NVMF,
            allowed_hosts=list(allowed_hosts),
            host_secrets=list(host_secrets),
        )
        reply = await self._call(
            f"publish nexus {uuid}", lambda: self.nexus.PublishNexus(request, timeout=self.timeout)
        )
        nexus: nexus_pb2.Nexus = reply.nexus
        return nexus

    async def unpublish_nexus(self, uuid: str) -> nexus_pb2.Nexus:
        request = nexus_pb2.UnpublishNexusRequest(uuid=uuid)
        reply = await self._call(
            f"unpublish nexus {uuid}",
            lambda: self.nexus.UnpublishNexus(request, timeout=self.timeout),
        )
        nexus: nexus_pb2.Nexus = reply.nexus
        return nexus

    async def add_child(self, uuid: str, uri: str, norebuild: bool = False) -> nexus_pb2.Nexus:
        request = nexus_pb2.AddChildNexusRequest(uuid=uuid, uri=uri, norebuild=norebuild)
        reply = await self._call(
            f"add child {uri} to nexus {uuid}",
            lambda: self.nexus.AddChildNexus(request, timeout=self.timeout),
        )
        nexus: nexus_pb2.Nexus = reply.nexus
        return nexus

    async def remove_child(self, uuid: str, uri: str) -> nexus_pb2.Nexus:
        request = nexus_pb2.RemoveChildNexusRequest(uuid=uuid, uri=uri)
        reply = await self._call(
            f"remove child {uri} from nexus {uuid}",
            lambda: self.nexus.RemoveChildNexus(request, timeout=self.timeout),
        )
        nexus: nexus_pb2.Nexus = reply.nexus
        return nexus

    async def child_online(self, uuid: str, uri: str) -> nexus_pb2.Nexus:
        request = nexus_pb2.ChildOperationRequest(nexus_uuid=uuid, uri=uri, action=nexus_pb2.Online)
        reply = await self._call(
            f"bring child {uri} of nexus {uuid} online",
            lambda: self.nexus.ChildOperation(request, timeout=self.timeout),
        )
        nexus: nexus_pb2.Nexus = reply.nexus
        return nexus

    async def resize_nexus(self, uuid: str, size: int) -> nexus_pb2.Nexus:
        request = nexus_pb2.ResizeNexusRequest(uuid=uuid, requested_size=size)
        reply = await self._call(
            f"resize nexus {uuid}", lambda: self.nexus.ResizeNexus(request, timeout=self.timeout)
        )
        nexus: nexus_pb2.Nexus = reply.nexus
        return nexus

    async def rebuild_history(self, uuid: str) -> nexus_pb2.RebuildHistoryResponse:
        request = nexus_pb2.RebuildHistoryRequest(uuid=uuid)
        return await self._call(
            f"rebuild history of nexus {uuid}",
            lambda: self.nexus.GetRebuildHistory(request, timeout=self.timeout),
        )
