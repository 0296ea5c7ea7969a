"""ReplicaRpc: create, destroy, list, resize and (with the NVMe/TCP target) share replicas."""

from __future__ import annotations

import dataclasses

import grpc
from google.protobuf.empty_pb2 import Empty

from mayastor.api.v1 import common_pb2, replica_pb2, replica_pb2_grpc
from mayastor.engine.grpc_errors import ErrorMappingServicer
from mayastor.engine.host_secrets import host_keys_from
from mayastor.engine.registry import Registry
from mayastor.errors import InvalidArgument
from mayastor.lvs import Lvol, LvolProperties, ShareProtocol
from mayastor.target import openebs_nqn

_SHARE = {ShareProtocol.NONE: common_pb2.NONE, ShareProtocol.NVMF: common_pb2.NVMF}


class ReplicaService(ErrorMappingServicer, replica_pb2_grpc.ReplicaRpcServicer):
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def replica_message(self, lvol: Lvol) -> replica_pb2.Replica:
        props = lvol.properties
        message = replica_pb2.Replica(
            name=lvol.name,
            uuid=str(lvol.uuid),
            pooluuid=str(lvol.pool.uuid),
            size=lvol.size,
            thin=lvol.thin,
            share=_SHARE[props.share],
            uri=self.registry.replica_uri(lvol),
            poolname=lvol.pool.name,
            usage=replica_pb2.ReplicaSpaceUsage(
                capacity_bytes=lvol.size,
                allocated_bytes=lvol.allocated_bytes,
                cluster_size=lvol.pool.cluster_size,
                num_clusters=lvol.num_clusters,
                num_allocated_clusters=lvol.num_allocated_clusters,
            ),
            allowed_hosts=list(props.allowed_hosts),
            host_authentication=bool(self.registry.secrets.keys(openebs_nqn(lvol.uuid))),
        )
        if props.entity_id is not None:
            message.entity_id = props.entity_id
        return message

    async def CreateReplica(
        self, request: replica_pb2.CreateReplicaRequest, context: grpc.aio.ServicerContext
    ) -> replica_pb2.Replica:
        keys = host_keys_from(request.host_secrets)
        if keys and request.share != common_pb2.NVMF:
            raise InvalidArgument("host secrets are for a replica shared over NVMe/TCP")
        properties = LvolProperties(
            allowed_hosts=tuple(request.allowed_hosts),
            entity_id=request.entity_id if request.HasField("entity_id") else None,
        )
        lvol = await self.registry.create_replica(
            request.pooluuid,
            request.name,
            request.size,
            uuid=request.uuid or None,
            thin=request.thin,
            properties=properties,
        )
        if request.share == common_pb2.NVMF:
            await self.registry.share_replica(lvol, list(request.allowed_hosts), keys)
        return self.replica_message(lvol)

    async def DestroyReplica(
        self, request: replica_pb2.DestroyReplicaRequest, context: grpc.aio.ServicerContext
    ) -> Empty:
        pool = getattr(request, request.WhichOneof("pool") or "", None) or None
        if not request.uuid and not request.HasField("name"):
            raise InvalidArgument("give the replica's uuid or its name")
        replica = self.registry.find_replica(
            uuid=request.uuid or None,
            name=request.name if request.HasField("name") else None,
            pool=pool,
        )
        await self.registry.destroy_replica(replica)
        return Empty()

    async def ListReplicas(
        self, request: replica_pb2.ListReplicaOptions, context: grpc.aio.ServicerContext
    ) -> replica_pb2.ListReplicasResponse:
        replicas = self.registry.replicas()
        if request.HasField("poolname"):
            replicas = [r for r in replicas if r.pool.name == request.poolname.value]
        if request.HasField("pooluuid"):
            replicas = [r for r in replicas if str(r.pool.uuid) == request.pooluuid.value]
        if request.HasField("name"):
            replicas = [r for r in replicas if r.name == request.name.value]
        if request.HasField("uuid"):
            replicas = [r for r in replicas if str(r.uuid) == request.uuid.value]
        replicas.sort(key=lambda r: (r.pool.name, r.name))
        return replica_pb2.ListReplicasResponse(
            replicas=[self.replica_message(r) for r in replicas]
        )

    async def ResizeReplica(
        self, request: replica_pb2.ResizeReplicaRequest, context: grpc.aio.ServicerContext
    ) -> replica_pb2.Replica:
        replica = self.registry.find_replica(uuid=request.uuid)
        await self.registry.resize_replica(replica, request.requested_size)
        return self.replica_message(replica)

    async def SetReplicaEntityId(
        self, request: replica_pb2.SetReplicaEntityIdRequest, context: grpc.aio.ServicerContext
    ) -> replica_pb2.Replica:
        replica = self.registry.find_replica(uuid=request.uuid)
        properties = dataclasses.replace(replica.properties, entity_id=request.entity_id or None)
        await self.registry.set_replica_properties(replica, properties)
        return self.replica_message(replica)

    async def ShareReplica(
        self, request: replica_pb2.ShareReplicaRequest, context: grpc.aio.ServicerContext
    ) -> replica_pb2.Replica:
        if request.share != common_pb2.NVMF:
            raise InvalidArgument("replicas are shared over NVMe/TCP only (share=NVMF)")
        keys = host_keys_from(request.host_secrets)
        replica = self.registry.find_replica(uuid=request.uuid)
        await self.registry.share_replica(replica, list(request.allowed_hosts), keys)
        return self.replica_message(replica)

    async def UnshareReplica(
        self, request: replica_pb2.UnshareReplicaRequest, context: grpc.aio.ServicerContext
    ) -> replica_pb2.Replica:
        replica = self.registry.find_replica(uuid=request.uuid)
        await self.registry.unshare_replica(replica)
        return self.replica_message(replica)
