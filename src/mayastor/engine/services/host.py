"""HostRpc: what this io-engine is, and the block devices of its machine."""

from __future__ import annotations

import asyncio
import os

import grpc
from google.protobuf.empty_pb2 import Empty

from mayastor import __version__
from mayastor.api.v1 import host_pb2, host_pb2_grpc
from mayastor.engine.block_devices import list_block_devices
from mayastor.engine.config import EngineConfig
from mayastor.engine.grpc_errors import ErrorMappingServicer
from mayastor.engine.registry import Registry


class HostService(ErrorMappingServicer, host_pb2_grpc.HostRpcServicer):
    def __init__(self, config: EngineConfig, registry: Registry) -> None:
        self.config = config
        self.registry = registry

    async def ListNvmfControllers(
        self, request: Empty, context: grpc.aio.ServicerContext
    ) -> host_pb2.ListNvmfControllersResponse:
        target = self.registry.target
        return host_pb2.ListNvmfControllersResponse(
            controllers=[
                host_pb2.NvmfController(
                    subnqn=sub.nqn,
                    cntlid=c.cntlid,
                    hostnqn=c.hostnqn,
                    queues=c.queues,
                    keep_alive_ms=c.keep_alive_ms,
                    state=c.state,
                    header_digest=c.header_digest,
                    data_digest=c.data_digest,
                    peer=c.peer,
                )
                for sub in target.subsystems()
                for c in target.controllers(sub.nqn)
            ]
        )

    async def GetMayastorInfo(
        self, request: Empty, context: grpc.aio.ServicerContext
    ) -> host_pb2.MayastorInfoResponse:
        cfg = self.config
        return host_pb2.MayastorInfoResponse(
            version=__version__,
            supportedFeatures=host_pb2.MayastorFeatures(asymmetricNamespaceAccess=False),
            registration_info=host_pb2.RegisterRequest(
                id=cfg.node_name, grpc_endpoint=cfg.grpc_endpoint, hostnqn=cfg.hostnqn
            ),
            pid=os.getpid(),
            nvmf_address=cfg.nvmf_address,
            replica_port=cfg.replica_port,
            nexus_port=cfg.nexus_port,
        )

    async def ListBlockDevices(
        self, request: host_pb2.ListBlockDevicesRequest, context: grpc.aio.ServicerContext
    ) -> host_pb2.ListBlockDevicesResponse:
        claimed = {e.device.name for e in self.registry.bdevs.values() if e.claimed_by}
        devices = await asyncio.to_thread(list_block_devices, claimed, request.all)
        return host_pb2.ListBlockDevicesResponse(
            devices=[
                host_pb2.BlockDevice(
                    devname=d.devname,
                    devtype=d.devtype,
                    devmajor=d.devmajor,
                    devminor=d.devminor,
                    model=d.model,
                    devpath=d.devpath,
                    size=d.size_sectors,
                    partition=host_pb2.BlockDevice.Partition(
                        parent=d.parent, number=d.partition_number
                    ),
                    filesystem=host_pb2.BlockDevice.Filesystem(mountpoints=d.mountpoints),
                    available=d.available,
                )
                for d in devices
            ]
        )
