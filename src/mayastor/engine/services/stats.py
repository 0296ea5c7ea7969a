"""StatsRpc: I/O counters of pools (their disks) and replicas, and their reset."""

from __future__ import annotations

import grpc
from google.protobuf.empty_pb2 import Empty

from mayastor.api.v1 import stats_pb2, stats_pb2_grpc
from mayastor.bdev import IoStats
from mayastor.engine.grpc_errors import ErrorMappingServicer
from mayastor.engine.registry import Registry

TICK_RATE = 1_000_000_000  # our latencies are counted in nanoseconds


def io_stats_message(name: str, stats: IoStats) -> stats_pb2.IoStats:
    return stats_pb2.IoStats(
        name=name,
        num_read_ops=stats.num_read_ops,
        bytes_read=stats.bytes_read,
        num_write_ops=stats.num_write_ops,
        bytes_written=stats.bytes_written,
        num_unmap_ops=stats.num_unmap_ops,
        bytes_unmapped=stats.bytes_unmapped,
        read_latency_ticks=stats.read_latency_ns,
        write_latency_ticks=stats.write_latency_ns,
        unmap_latency_ticks=stats.unmap_latency_ns,
        max_read_latency_ticks=stats.max_read_latency_ns,
        max_write_latency_ticks=stats.max_write_latency_ns,
        tick_rate=TICK_RATE,
    )


class StatsService(ErrorMappingServicer, stats_pb2_grpc.StatsRpcServicer):
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def GetPoolIoStats(
        self, request: stats_pb2.ListStatsOption, context: grpc.aio.ServicerContext
    ) -> stats_pb2.PoolIoStatsResponse:
        pools = sorted(self.registry.pools.values(), key=lambda p: p.name)
        if request.HasField("name"):
            pools = [p for p in pools if p.name == request.name]
        return stats_pb2.PoolIoStatsResponse(
            stats=[io_stats_message(p.name, p.base.stats) for p in pools]
        )

    async def GetReplicaIoStats(
        self, request: stats_pb2.ListStatsOption, context: grpc.aio.ServicerContext
    ) -> stats_pb2.ReplicaIoStatsResponse:
        replicas = sorted(self.registry.replicas(), key=lambda r: (r.pool.name, r.name))
        if request.HasField("name"):
            replicas = [r for r in replicas if r.name == request.name]
        return stats_pb2.ReplicaIoStatsResponse(
            stats=[
                stats_pb2.ReplicaIoStats(
                    entity_id=r.properties.entity_id or "",
                    stats=io_stats_message(r.name, r.stats),
                    uuid=str(r.uuid),
                    pool_name=r.pool.name,
                )
                for r in replicas
            ]
        )

    async def ResetIoStats(self, request: Empty, context: grpc.aio.ServicerContext) -> Empty:
        for entry in self.registry.bdevs.values():
            entry.device.stats.reset()
        for pool in self.registry.pools.values():
            pool.base.stats.reset()
            for lvol in pool.lvols():
                lvol.stats.reset()
        return Empty()
