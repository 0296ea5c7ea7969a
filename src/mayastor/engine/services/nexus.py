"""NexusRpc: nexuses, their children and their rebuilds."""

from __future__ import annotations

import grpc
from google.protobuf.empty_pb2 import Empty
from google.protobuf.timestamp_pb2 import Timestamp

from mayastor.api.v1 import common_pb2, nexus_pb2, nexus_pb2_grpc
from mayastor.bdev import ReservationType
from mayastor.engine.grpc_errors import ErrorMappingServicer
from mayastor.engine.host_secrets import host_keys_from
from mayastor.engine.nexuses import Nexuses
from mayastor.errors import InvalidArgument
from mayastor.nexus import (
    ChildState,
    FaultReason,
    Nexus,
    NexusState,
    PreemptPolicy,
    RebuildState,
    ReservationPolicy,
)

_NEXUS_STATE = {
    NexusState.INIT: nexus_pb2.NEXUS_UNKNOWN,
    NexusState.ONLINE: nexus_pb2.NEXUS_ONLINE,
    NexusState.DEGRADED: nexus_pb2.NEXUS_DEGRADED,
    NexusState.FAULTED: nexus_pb2.NEXUS_FAULTED,
    NexusState.FENCED: nexus_pb2.NEXUS_FAULTED,  # with `fenced` set
    NexusState.SHUTTING_DOWN: nexus_pb2.NEXUS_SHUTTING_DOWN,
    NexusState.SHUTDOWN: nexus_pb2.NEXUS_SHUTDOWN,
}
_CHILD_STATE = {
    ChildState.ONLINE: nexus_pb2.CHILD_STATE_ONLINE,
    ChildState.DEGRADED: nexus_pb2.CHILD_STATE_DEGRADED,
    ChildState.FAULTED: nexus_pb2.CHILD_STATE_FAULTED,
}
_REASON = {
    None: nexus_pb2.CHILD_STATE_REASON_NONE,
    FaultReason.IO_ERROR: nexus_pb2.CHILD_STATE_REASON_IO_FAILURE,
    FaultReason.TIMED_OUT: nexus_pb2.CHILD_STATE_REASON_TIMED_OUT,
    FaultReason.CANT_OPEN: nexus_pb2.CHILD_STATE_REASON_CANNOT_OPEN,
    FaultReason.OUT_OF_SYNC: nexus_pb2.CHILD_STATE_REASON_OUT_OF_SYNC,
    FaultReason.NO_SPACE: nexus_pb2.CHILD_STATE_REASON_NO_SPACE,
    FaultReason.BY_CLIENT: nexus_pb2.CHILD_STATE_REASON_BY_CLIENT,
    FaultReason.OFFLINE: nexus_pb2.CHILD_STATE_REASON_OFFLINE,
    FaultReason.REBUILD_FAILED: nexus_pb2.CHILD_STATE_REASON_REBUILD_FAILED,
}
_JOB_STATE = {
    RebuildState.INIT: nexus_pb2.Init,
    RebuildState.RUNNING: nexus_pb2.Rebuilding,
    RebuildState.PAUSED: nexus_pb2.Paused,
    RebuildState.STOPPED: nexus_pb2.Stopped,
    RebuildState.FAILED: nexus_pb2.Failed,
    RebuildState.COMPLETED: nexus_pb2.Completed,
}


def _timestamp(seconds: float | None) -> Timestamp | None:
    if seconds is None:
        return None
    stamp = Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


_PREEMPTION = {
    nexus_pb2.ArgKey: PreemptPolicy.ARG_KEY,
    nexus_pb2.Holder: PreemptPolicy.HOLDER,
}


def reservation_policy(request: nexus_pb2.CreateNexusRequest) -> ReservationPolicy | None:
    """The fencing asked for by a CreateNexusRequest: None without a reservation key.

    Raises:
        InvalidArgument: a reserved type, an unknown policy, or a preempt key equal to
            the key.
    """
    if not request.resvKey:
        if request.preemptKey:
            raise InvalidArgument("preemptKey needs a resvKey (the nexus's own key)")
        return None
    rtype = ReservationType.EXCLUSIVE_ACCESS
    if request.HasField("resv_type"):
        try:
            rtype = ReservationType(request.resv_type)
        except ValueError:
            raise InvalidArgument(
                f"resv_type {request.resv_type} is not a reservation type (1 to 6)"
            ) from None
    preempt = _PREEMPTION.get(request.preempt_policy)
    if preempt is None:
        raise InvalidArgument(f"preempt_policy {request.preempt_policy} is unknown")
    return ReservationPolicy(
        request.resvKey, preempt_key=request.preemptKey, rtype=rtype, preempt=preempt
    )


def nexus_message(
    nexus: Nexus,
    device_uri: str = "",
    allowed_hosts: list[str] | None = None,
    ana_state: int | None = None,
    host_authentication: bool = False,
) -> nexus_pb2.Nexus:
    children = nexus.children
    return nexus_pb2.Nexus(
        name=nexus.name,
        uuid=str(nexus.uuid),
        size=nexus.size,
        state=_NEXUS_STATE[nexus.state],
        children=[
            nexus_pb2.Child(
                uri=c.uri,
                state=_CHILD_STATE[c.state],
                state_reason=_REASON[c.reason],
                rebuild_progress=-1 if c.rebuild_progress is None else c.rebuild_progress,
                has_io_log=c.partial_rebuild,
                healthy=c.healthy,
                uuid=str(c.uuid),
            )
            for c in children
        ],
        device_uri=device_uri,
        rebuilds=sum(1 for c in children if c.rebuild_progress is not None),
        allowed_hosts=allowed_hosts or [],
        ana_state=None if ana_state is None else nexus_pb2.NvmeAnaState.ValueType(ana_state),
        fenced=nexus.fenced is not None,
        fence_reason=nexus.fenced or "",
        host_authentication=host_authentication,
    )


class NexusService(ErrorMappingServicer, nexus_pb2_grpc.NexusRpcServicer):
    def __init__(self, nexuses: Nexuses) -> None:
        self.nexuses = nexuses

    def message(self, nexus: Nexus) -> nexus_pb2.Nexus:
        ana = self.nexuses.ana_state(nexus)
        return nexus_message(
            nexus,
            self.nexuses.published_uri(nexus),
            self.nexuses.allowed_hosts(nexus),
            None if ana is None else int(ana),
            self.nexuses.authenticates(nexus),
        )

    async def CreateNexus(
        self, request: nexus_pb2.CreateNexusRequest, context: grpc.aio.ServicerContext
    ) -> nexus_pb2.CreateNexusResponse:
        if not request.children:
            raise InvalidArgument("a nexus needs at least one child URI")
        cntlids = None
        if request.minCntlId or request.maxCntlId:
            cntlids = (request.minCntlId or 1, request.maxCntlId or 0xFFEF)
        nexus = await self.nexuses.create(
            request.name or request.uuid,
            request.uuid,
            request.size,
            list(request.children),
            cntlid_range=cntlids,
            reservation=reservation_policy(request),
        )
        return nexus_pb2.CreateNexusResponse(nexus=self.message(nexus))

    async def DestroyNexus(
        self, request: nexus_pb2.DestroyNexusRequest, context: grpc.aio.ServicerContext
    ) -> Empty:
        await self.nexuses.destroy(request.uuid)
        return Empty()

    async def ResizeNexus(
        self, request: nexus_pb2.ResizeNexusRequest, context: grpc.aio.ServicerContext
    ) -> nexus_pb2.ResizeNexusResponse:
        nexus = await self.nexuses.resize(request.uuid, request.requested_size)
        return nexus_pb2.ResizeNexusResponse(nexus=self.message(nexus))

    async def ListNexus(
        self, request: nexus_pb2.ListNexusOptions, context: grpc.aio.ServicerContext
    ) -> nexus_pb2.ListNexusResponse:
        found = self.nexuses.by_name()
        if request.HasField("name"):
            found = [n for n in found if n.name == request.name.value]
        if request.HasField("uuid"):
            found = [n for n in found if str(n.uuid) == request.uuid.value]
        return nexus_pb2.ListNexusResponse(nexus_list=[self.message(n) for n in found])

    async def AddChildNexus(
        self, request: nexus_pb2.AddChildNexusRequest, context: grpc.aio.ServicerContext
    ) -> nexus_pb2.AddChildNexusResponse:
        nexus = await self.nexuses.add_child(request.uuid, request.uri, request.norebuild)
        return nexus_pb2.AddChildNexusResponse(nexus=self.message(nexus))

    async def RemoveChildNexus(
        self, request: nexus_pb2.RemoveChildNexusRequest, context: grpc.aio.ServicerContext
    ) -> nexus_pb2.RemoveChildNexusResponse:
        nexus = await self.nexuses.remove_child(request.uuid, request.uri)
        return nexus_pb2.RemoveChildNexusResponse(nexus=self.message(nexus))

    async def FaultNexusChild(
        self, request: nexus_pb2.FaultNexusChildRequest, context: grpc.aio.ServicerContext
    ) -> nexus_pb2.FaultNexusChildResponse:
        nexus = await self.nexuses.fault_child(request.uuid, request.uri)
        return nexus_pb2.FaultNexusChildResponse(nexus=self.message(nexus))

    async def ShutdownNexus(
        self, request: nexus_pb2.ShutdownNexusRequest, context: grpc.aio.ServicerContext
    ) -> nexus_pb2.ShutdownNexusResponse:
        nexus = await self.nexuses.shutdown(request.uuid)
        return nexus_pb2.ShutdownNexusResponse(nexus=self.message(nexus))

    async def ChildOperation(
        self, request: nexus_pb2.ChildOperationRequest, context: grpc.aio.ServicerContext
    ) -> nexus_pb2.ChildOperationResponse:
        uuid, uri = request.nexus_uuid, request.uri
        if request.action == nexus_pb2.Offline:
            nexus = await self.nexuses.offline_child(uuid, uri)
        elif request.action == nexus_pb2.Online:
            nexus = await self.nexuses.online_child(uuid, uri)
        elif request.action in (nexus_pb2.FaultIOError, nexus_pb2.OfflinePermanent):
            nexus = await self.nexuses.fault_child(uuid, uri)
        else:
            raise InvalidArgument(f"unknown child action {request.action}")
        return nexus_pb2.ChildOperationResponse(nexus=self.message(nexus))

    async def StartRebuild(
        self, request: nexus_pb2.StartRebuildRequest, context: grpc.aio.ServicerContext
    ) -> nexus_pb2.StartRebuildResponse:
        nexus = self.nexuses.find(request.nexus_uuid)
        await nexus.start_rebuild(request.uri)
        return nexus_pb2.StartRebuildResponse(nexus=self.message(nexus))

    async def StopRebuild(
        self, request: nexus_pb2.StopRebuildRequest, context: grpc.aio.ServicerContext
    ) -> nexus_pb2.StopRebuildResponse:
        nexus = self.nexuses.find(request.nexus_uuid)
        await nexus.stop_rebuild(request.uri)
        return nexus_pb2.StopRebuildResponse(nexus=self.message(nexus))

    async def PauseRebuild(
        self, request: nexus_pb2.PauseRebuildRequest, context: grpc.aio.ServicerContext
    ) -> nexus_pb2.PauseRebuildResponse:
        nexus = self.nexuses.find(request.nexus_uuid)
        nexus.pause_rebuild(request.uri)
        return nexus_pb2.PauseRebuildResponse(nexus=self.message(nexus))

    async def ResumeRebuild(
        self, request: nexus_pb2.ResumeRebuildRequest, context: grpc.aio.ServicerContext
    ) -> nexus_pb2.ResumeRebuildResponse:
        nexus = self.nexuses.find(request.nexus_uuid)
        nexus.resume_rebuild(request.uri)
        return nexus_pb2.ResumeRebuildResponse(nexus=self.message(nexus))

    async def GetRebuildState(
        self, request: nexus_pb2.RebuildStateRequest, context: grpc.aio.ServicerContext
    ) -> nexus_pb2.RebuildStateResponse:
        nexus = self.nexuses.find(request.nexus_uuid)
        return nexus_pb2.RebuildStateResponse(state=nexus.rebuild_state(request.uri).value)

    async def GetRebuildStats(
        self, request: nexus_pb2.RebuildStatsRequest, context: grpc.aio.ServicerContext
    ) -> nexus_pb2.RebuildStatsResponse:
        stats = self.nexuses.find(request.nexus_uuid).rebuild_stats(request.uri)
        return nexus_pb2.RebuildStatsResponse(
            blocks_total=stats.blocks_total,
            blocks_recovered=stats.blocks_recovered,
            progress=stats.progress,
            blocks_per_task=stats.segment_size_blks,
            block_size=stats.block_size,
            tasks_total=stats.tasks_total,
            tasks_active=stats.tasks_active,
            blocks_transferred=stats.blocks_transferred,
            blocks_remaining=stats.blocks_remaining,
            is_partial=stats.is_partial,
            start_time=_timestamp(stats.start_time),
            mb_per_s=stats.mb_per_s,
        )

    async def GetRebuildHistory(
        self, request: nexus_pb2.RebuildHistoryRequest, context: grpc.aio.ServicerContext
    ) -> nexus_pb2.RebuildHistoryResponse:
        nexus = self.nexuses.find(request.uuid)
        return nexus_pb2.RebuildHistoryResponse(
            uuid=str(nexus.uuid),
            name=nexus.name,
            records=[
                nexus_pb2.RebuildHistoryRecord(
                    child_uri=r.child_uri,
                    src_uri=r.source_uri,
                    state=_JOB_STATE[r.state],
                    blocks_total=r.blocks_total,
                    blocks_recovered=r.blocks_recovered,
                    blocks_transferred=r.blocks_transferred,
                    block_size=nexus.block_size,
                    is_partial=r.is_partial,
                    start_time=_timestamp(r.start_time),
                    end_time=_timestamp(r.end_time),
                    reason=r.reason or "",
                )
                for r in nexus.rebuild_history()
            ],
        )

    async def PublishNexus(
        self, request: nexus_pb2.PublishNexusRequest, context: grpc.aio.ServicerContext
    ) -> nexus_pb2.PublishNexusResponse:
        if request.share not in (common_pb2.NVMF, common_pb2.NONE):
            raise InvalidArgument("a nexus is published over NVMe/TCP only (share=NVMF)")
        keys = host_keys_from(request.host_secrets)
        nexus = await self.nexuses.publish(request.uuid, list(request.allowed_hosts), keys)
        return nexus_pb2.PublishNexusResponse(nexus=self.message(nexus))

    async def UnpublishNexus(
        self, request: nexus_pb2.UnpublishNexusRequest, context: grpc.aio.ServicerContext
    ) -> nexus_pb2.UnpublishNexusResponse:
        nexus = await self.nexuses.unpublish(request.uuid)
        return nexus_pb2.UnpublishNexusResponse(nexus=self.message(nexus))
