"""A thin synchronous client of one io-engine's pool and replica services, for tests."""

from __future__ import annotations

import grpc

from mayastor.api.v1 import common_pb2, pool_pb2, pool_pb2_grpc, replica_pb2, replica_pb2_grpc

RPC_TIMEOUT = 60.0


class EngineApi:
    """The pool and replica gRPC services of one io-engine, over one channel."""

    def __init__(self, endpoint: str) -> None:
        self.channel = grpc.insecure_channel(endpoint)
        self.pools = pool_pb2_grpc.PoolRpcStub(self.channel)
        self.replicas = replica_pb2_grpc.ReplicaRpcStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def list_replicas(self) -> dict[str, replica_pb2.Replica]:
        reply = self.replicas.ListReplicas(replica_pb2.ListReplicaOptions(), timeout=RPC_TIMEOUT)
        return {r.uuid: r for r in reply.replicas}

    def list_pools(self) -> dict[str, pool_pb2.Pool]:
        reply = self.pools.ListPools(pool_pb2.ListPoolOptions(), timeout=RPC_TIMEOUT)
        return {p.name: p for p in reply.pools}

    def create_pool(self, name: str, disk: str, cluster_size: int) -> None:
        self.pools.CreatePool(
            pool_pb2.CreatePoolRequest(name=name, disks=[disk], cluster_size=cluster_size),
            timeout=RPC_TIMEOUT,
        )

    def create_replica(
        self,
        pool: str,
        name: str,
        uuid: str,
        size: int,
        thin: bool,
        *,
        share_with: str | None = None,
    ) -> replica_pb2.Replica:
        request = replica_pb2.CreateReplicaRequest(
            name=name, uuid=uuid, pooluuid=pool, size=size, thin=thin
        )
        if share_with is not None:
            request.share = common_pb2.NVMF
            request.allowed_hosts.append(share_with)
        reply: replica_pb2.Replica = self.replicas.CreateReplica(request, timeout=RPC_TIMEOUT)
        return reply

    def destroy_replica(self, uuid: str) -> None:
        self.replicas.DestroyReplica(
            replica_pb2.DestroyReplicaRequest(uuid=uuid), timeout=RPC_TIMEOUT
        )

    def resize_replica(self, uuid: str, size: int) -> None:
        self.replicas.ResizeReplica(
            replica_pb2.ResizeReplicaRequest(uuid=uuid, requested_size=size), timeout=RPC_TIMEOUT
        )
