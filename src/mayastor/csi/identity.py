"""The CSI Identity service: who the plugin is, what it offers, whether it can work now.

Both plugins serve it with the same name and capabilities (they are one driver to the
CO); they differ in what Probe checks: the controller that the core agent's REST API
answers, the node plugin that the kernel and the tools it needs are there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc
from google.protobuf.wrappers_pb2 import BoolValue

from mayastor import __version__
from mayastor.api.csi.v1 import csi_pb2, csi_pb2_grpc
from mayastor.csi._volumes import DRIVER_NAME
from mayastor.csi.errors import FailedPrecondition
from mayastor.csi.server import CsiServicer

Probe = Callable[[], Awaitable[list[str]]]
"""What the plugin lacks to work now (empty when it is ready)."""


class IdentityService(csi_pb2_grpc.IdentityServicer, CsiServicer):
    """The Identity service.

    Args:
        probe: what the plugin lacks now; Probe is FAILED_PRECONDITION naming it.
        role: ``controller`` or ``node``, in the plugin's manifest.
    """

    def __init__(self, probe: Probe, role: str) -> None:
        self.probe = probe
        self.role = role

    async def GetPluginInfo(
        self, request: csi_pb2.GetPluginInfoRequest, context: grpc.aio.ServicerContext
    ) -> csi_pb2.GetPluginInfoResponse:
        return csi_pb2.GetPluginInfoResponse(
            name=DRIVER_NAME, vendor_version=__version__, manifest={"role": self.role}
        )

    async def GetPluginCapabilities(
        self, request: csi_pb2.GetPluginCapabilitiesRequest, context: grpc.aio.ServicerContext
    ) -> csi_pb2.GetPluginCapabilitiesResponse:
        service = csi_pb2.PluginCapability.Service
        expansion = csi_pb2.PluginCapability.VolumeExpansion
        return csi_pb2.GetPluginCapabilitiesResponse(
            capabilities=[
                csi_pb2.PluginCapability(service=service(type=service.CONTROLLER_SERVICE)),
                csi_pb2.PluginCapability(
                    service=service(type=service.VOLUME_ACCESSIBILITY_CONSTRAINTS)
                ),
                csi_pb2.PluginCapability(volume_expansion=expansion(type=expansion.ONLINE)),
                csi_pb2.PluginCapability(volume_expansion=expansion(type=expansion.OFFLINE)),
            ]
        )

    async def Probe(
        self, request: csi_pb2.ProbeRequest, context: grpc.aio.ServicerContext
    ) -> csi_pb2.ProbeResponse:
        missing = await self.probe()
        if missing:
            raise FailedPrecondition(f"the {self.role} plugin is not ready: {'; '.join(missing)}")
        return csi_pb2.ProbeResponse(ready=BoolValue(value=True))
