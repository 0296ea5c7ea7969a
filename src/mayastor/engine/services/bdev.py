"""BdevRpc: open, close and list block devices by URI."""

from __future__ import annotations

import grpc
from google.protobuf.empty_pb2 import Empty

from mayastor.api.v1 import bdev_pb2, bdev_pb2_grpc
from mayastor.engine.grpc_errors import ErrorMappingServicer
from mayastor.engine.registry import BdevEntry, Registry


def bdev_message(entry: BdevEntry) -> bdev_pb2.Bdev:
    device = entry.device
    return bdev_pb2.Bdev(
        name=device.name,
        uuid=str(device.uuid),
        num_blocks=device.num_blocks,
        blk_size=device.block_size,
        claimed=entry.claimed_by is not None,
        claimed_by=entry.claimed_by or "",
        product_name=device.product_name,
        uri=entry.uri,
        driver=device.driver,
    )


class BdevService(ErrorMappingServicer, bdev_pb2_grpc.BdevRpcServicer):
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def CreateBdev(
        self, request: bdev_pb2.CreateBdevRequest, context: grpc.aio.ServicerContext
    ) -> bdev_pb2.CreateBdevResponse:
        entry = await self.registry.create_bdev(request.uri)
        return bdev_pb2.CreateBdevResponse(bdev=bdev_message(entry))

    async def DestroyBdev(
        self, request: bdev_pb2.DestroyBdevRequest, context: grpc.aio.ServicerContext
    ) -> Empty:
        await self.registry.destroy_bdev(request.uri)
        return Empty()

    async def ListBdevs(
        self, request: bdev_pb2.ListBdevOptions, context: grpc.aio.ServicerContext
    ) -> bdev_pb2.ListBdevResponse:
        entries = sorted(self.registry.bdevs.values(), key=lambda e: e.device.name)
        if request.HasField("name"):
            entries = [e for e in entries if e.device.name == request.name.value]
        return bdev_pb2.ListBdevResponse(bdevs=[bdev_message(e) for e in entries])
