"""PoolRpc: create, import, export, destroy, grow and list pools."""

from __future__ import annotations

import grpc
from google.protobuf.empty_pb2 import Empty

from mayastor.api.v1 import pool_pb2, pool_pb2_grpc
from mayastor.engine.grpc_errors import ErrorMappingServicer
from mayastor.engine.registry import Registry
from mayastor.lvs import Pool, PoolState

_STATE = {
    PoolState.ONLINE: pool_pb2.POOL_ONLINE,
    PoolState.DEGRADED: pool_pb2.POOL_DEGRADED,
    PoolState.FAULTED: pool_pb2.POOL_FAULTED,
}


def pool_message(pool: Pool) -> pool_pb2.Pool:
    md = pool.md_info
    return pool_pb2.Pool(
        uuid=str(pool.uuid),
        name=pool.name,
        disks=[pool.disk],
        state=_STATE.get(pool.state, pool_pb2.POOL_UNKNOWN),
        capacity=pool.capacity,
        used=pool.used,
        pooltype=pool_pb2.Lvs,
        committed=pool.committed,
        cluster_size=pool.cluster_size,
        page_size=pool.base.block_size,
        disk_capacity=pool.disk_capacity,
        md_info=pool_pb2.PoolMetadataInfo(
            md_page_size=md.page_size, md_pages=md.pages, md_used_pages=md.used_pages
        ),
        max_expandable_size=pool.max_expandable_size,
        warnings=[w for w in (pool.space_warning(),) if w],
    )


class PoolService(ErrorMappingServicer, pool_pb2_grpc.PoolRpcServicer):
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def CreatePool(
        self, request: pool_pb2.CreatePoolRequest, context: grpc.aio.ServicerContext
    ) -> pool_pb2.Pool:
        pool = await self.registry.create_pool(
            request.name,
            list(request.disks),
            uuid=request.uuid.value if request.HasField("uuid") else None,
            cluster_size=request.cluster_size if request.HasField("cluster_size") else None,
            max_expansion=(
                request.md_args.max_expansion
                if request.HasField("md_args") and request.md_args.HasField("max_expansion")
                else None
            ),
            force=request.force,
        )
        return pool_message(pool)

    async def ImportPool(
        self, request: pool_pb2.ImportPoolRequest, context: grpc.aio.ServicerContext
    ) -> pool_pb2.Pool:
        pool = await self.registry.import_pool(
            request.name,
            list(request.disks),
            uuid=request.uuid.value if request.HasField("uuid") else None,
        )
        return pool_message(pool)

    async def ExportPool(
        self, request: pool_pb2.ExportPoolRequest, context: grpc.aio.ServicerContext
    ) -> Empty:
        await self.registry.export_pool(_pool_key(request))
        return Empty()

    async def DestroyPool(
        self, request: pool_pb2.DestroyPoolRequest, context: grpc.aio.ServicerContext
    ) -> Empty:
        await self.registry.destroy_pool(_pool_key(request))
        return Empty()

    async def GrowPool(
        self, request: pool_pb2.GrowPoolRequest, context: grpc.aio.ServicerContext
    ) -> pool_pb2.GrowPoolResponse:
        before = pool_message(self.registry.find_pool(_pool_key(request)))
        _, pool = await self.registry.grow_pool(_pool_key(request))
        return pool_pb2.GrowPoolResponse(previous_pool=before, current_pool=pool_message(pool))

    async def ListPools(
        self, request: pool_pb2.ListPoolOptions, context: grpc.aio.ServicerContext
    ) -> pool_pb2.ListPoolsResponse:
        pools = sorted(self.registry.pools.values(), key=lambda p: p.name)
        if request.HasField("name"):
            pools = [p for p in pools if p.name == request.name.value]
        if request.HasField("uuid"):
            pools = [p for p in pools if str(p.uuid) == request.uuid.value]
        return pool_pb2.ListPoolsResponse(pools=[pool_message(p) for p in pools])


def _pool_key(
    request: pool_pb2.ExportPoolRequest | pool_pb2.DestroyPoolRequest | pool_pb2.GrowPoolRequest,
) -> str:
    return request.name or (request.uuid.value if request.HasField("uuid") else "")
