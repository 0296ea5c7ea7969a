"""The CSI Controller service: CSI calls turned into calls of the core agent's REST API.

The controller keeps nothing of its own: the volume's uuid comes from its CSI name
(`mayastor.csi._volumes`), its CSI name, size, replicas and placement live in the
core agent, and every call asks the REST API afresh, so any number of controllers
(or one restarted) answer alike. It reaches the control plane through REST only
(`mayastor.restclient.AsyncRestClient`).

- CreateVolume: a volume of the capacity range rounded up to whole 512-byte blocks,
  with the StorageClass's replicas, thin provisioning and label rules; the io-engine
  nodes its accessibility requirements name are preferred for its replicas (the
  volume is reachable over NVMe/TCP from every node, so every requisite topology is
  met and its accessible topology is left open). The same name again returns the same
  volume when it is compatible, ALREADY_EXISTS when not.
- ControllerPublishVolume: the volume's target published to the node's host NQN only;
  the publish context carries the target's URI (with the serving nexus's uuid) and
  the NVMe timeouts for the node plugin.
- The others map one to one onto REST calls; errors follow the CSI spec call by call.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

import grpc
from google.protobuf.wrappers_pb2 import Int64Value

from mayastor.api.csi.v1 import csi_pb2, csi_pb2_grpc
from mayastor.csi import _capabilities as caps
from mayastor.csi._locks import VolumeLocks
from mayastor.csi._parameters import NvmeSettings, VolumeParameters
from mayastor.csi._volumes import (
    NAME_LABEL,
    PUBLISH_URI,
    TOPOLOGY_KEY,
    check_name,
    parse_volume_id,
    size_for,
    volume_uuid_for_name,
    within,
)
from mayastor.csi.errors import (
    Aborted,
    AlreadyExists,
    CsiError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OutOfRange,
    ResourceExhausted,
    Unavailable,
    Unimplemented,
)
from mayastor.csi.server import CsiServicer
from mayastor.restclient import AsyncRestClient, RestClientError, RestError, RestUnreachable

log = logging.getLogger(__name__)

T = TypeVar("T")

REST_ERRORS: dict[int, type[CsiError]] = {
    400: InvalidArgument,
    404: NotFound,
    409: Aborted,
    412: FailedPrecondition,
    503: Unavailable,
    507: ResourceExhausted,
}
"""What a refusal of the REST API means to the CO, by HTTP status; a call can override."""

_NODE_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_")


def csi_error(
    exc: RestClientError,
    *,
    volume: str | None,
    step: str,
    overrides: Mapping[int, type[CsiError]] | None = None,
) -> CsiError:
    """The CSI error a failed REST call stands for: by status (`REST_ERRORS`, then
    `overrides`); no answer at all is UNAVAILABLE."""
    if isinstance(exc, RestUnreachable):
        return Unavailable(str(exc), volume=volume, step=step)
    assert isinstance(exc, RestError)
    table = {**REST_ERRORS, **(overrides or {})}
    klass = table.get(exc.status, Unavailable if exc.status >= 500 else InvalidArgument)
    return klass(f"{exc.kind}: {exc.message}", volume=volume, step=step)


async def _rest(
    call: Awaitable[T],
    *,
    volume: str | None,
    step: str,
    overrides: Mapping[int, type[CsiError]] | None = None,
) -> T:
    try:
        return await call
    except RestClientError as exc:
        raise csi_error(exc, volume=volume, step=step, overrides=overrides) from exc


def _volume_id(volume_id: str) -> str | None:
    """The volume uuid as text, or None when the id cannot be a Mayastor volume."""
    parsed = parse_volume_id(volume_id)
    return str(parsed) if parsed is not None else None


def _frontends(volume: Mapping[str, Any]) -> list[str]:
    """The nodes the volume's target is published to (empty when unpublished)."""
    target = volume.get("spec", {}).get("target") or {}
    return [str(f["name"]) for f in target.get("frontend_nodes", [])]


def _matches(term: Mapping[str, str], node: Mapping[str, Any]) -> bool:
    """Whether io-engine node `node` (REST ``Node``) lies in topology `term`: its name
    for `TOPOLOGY_KEY`, its labels for any other key."""
    labels = (node.get("spec") or {}).get("labels") or {}
    for key, value in term.items():
        if key == TOPOLOGY_KEY:
            if node.get("id") != value:
                return False
        elif labels.get(key) != value:
            return False
    return True


class ControllerService(csi_pb2_grpc.ControllerServicer, CsiServicer):
    """The Controller service over one core agent's REST API.

    Args:
        rest: the REST client (its URL is the ``--rest-endpoint``).
    """

    def __init__(self, rest: AsyncRestClient) -> None:
        self.rest = rest
        self.locks = VolumeLocks()

    async def missing(self) -> list[str]:
        """What keeps the controller from working (Probe): the REST API not answering."""
        try:
            await self.rest.get_nodes()
        except RestClientError as exc:
            return [f"the core agent's REST API does not answer: {exc}"]
        return []

    # ------------------------------------------------------------------ create / delete

    async def CreateVolume(
        self, request: csi_pb2.CreateVolumeRequest, context: grpc.aio.ServicerContext
    ) -> csi_pb2.CreateVolumeResponse:
        name = check_name(request.name)
        caps.check_all(request.volume_capabilities)
        if request.HasField("volume_content_source"):
            raise InvalidArgument(
                "volume_content_source is not supported: volumes from snapshots or clones "
                "need snapshots, which Mayastor here does not offer yet"
            )
        if request.mutable_parameters:
            raise InvalidArgument(
                "mutable_parameters are not supported (no ControllerModifyVolume)"
            )
        params = VolumeParameters.parse(request.parameters)
        capacity = request.capacity_range if request.HasField("capacity_range") else None
        size = size_for(capacity)
        volume = str(volume_uuid_for_name(name))
        with self.locks.hold(volume, "CreateVolume"):
            topology = await self._placement(request, params, volume)
            try:
                created = await self.rest.create_volume(
                    volume,
                    size=size,
                    replicas=params.replicas,
                    thin=params.thin,
                    topology=topology,
                    labels={NAME_LABEL: name},
                    affinity_group=params.affinity_group,
                )
            except RestError as exc:
                if exc.status != 409:
                    raise csi_error(
                        exc,
                        volume=volume,
                        step="create the volume",
                        overrides={412: ResourceExhausted},
                    ) from exc
                created = await self._existing(volume, name, capacity, params, exc)
            except RestUnreachable as exc:
                raise csi_error(exc, volume=volume, step="create the volume") from exc
        log.info(
            "volume %s (%s): %d bytes, %d replica(s)%s",
            volume,
            name,
            created["spec"]["size"],
            created["spec"]["num_replicas"],
            ", thin" if created["spec"]["thin"] else "",
        )
        return csi_pb2.CreateVolumeResponse(
            volume=csi_pb2.Volume(
                volume_id=volume,
                capacity_bytes=int(created["spec"]["size"]),
                volume_context=params.volume_context(),
            )
        )

    async def _placement(
        self, request: csi_pb2.CreateVolumeRequest, params: VolumeParameters, volume: str
    ) -> dict[str, Any] | None:
        """The volume's REST topology: the StorageClass's label rules, and the io-engine
        nodes its accessibility requirements name, in order, as preferred nodes.

        A volume is reachable over NVMe/TCP from every node, so every requisite topology
        is met wherever its replicas are; the requirements only say where they had best
        be (Kubernetes puts the pod's node first). Terms that name no io-engine node (an
        application node) add nothing."""
        topology = params.topology() or {}
        requirement = request.accessibility_requirements
        terms = [*requirement.preferred, *requirement.requisite]
        if not terms:
            return topology or None
        nodes = await _rest(self.rest.get_nodes(), volume=volume, step="list the nodes")
        preferred: list[str] = []
        for term in terms:
            for node in sorted(nodes, key=lambda n: str(n["id"])):
                node_id = str(node["id"])
                if _matches(term.segments, node) and node_id not in preferred:
                    preferred.append(node_id)
        if preferred:
            node_topology = topology.setdefault("node_topology", {})
            node_topology["explicit"] = {"preferred_nodes": preferred}
        return topology or None

    async def _existing(
        self,
        volume: str,
        name: str,
        capacity: csi_pb2.CapacityRange | None,
        params: VolumeParameters,
        conflict: RestError,
    ) -> Any:
        """The volume that made a create conflict, if it is compatible with the request.

        Raises:
            AlreadyExists: it differs in name, size range, replicas, thin or label rules.
            Aborted: it is being deleted.
        """
        existing = await _rest(self.rest.get_volume(volume), volume=volume, step="read the volume")
        spec = existing["spec"]
        if spec.get("status") == "Deleting":
            raise Aborted("the volume is being deleted; retry later", volume=volume) from None
        other_name = (spec.get("labels") or {}).get(NAME_LABEL)
        problems = []
        if other_name != name:
            problems.append(f"it was created as {other_name!r}")
        if not within(int(spec["size"]), capacity):
            problems.append(f"its {spec['size']} bytes are outside the capacity range")
        if int(spec["num_replicas"]) != params.replicas:
            problems.append(f"it has {spec['num_replicas']} replica(s), not {params.replicas}")
        if bool(spec["thin"]) != params.thin:
            problems.append(f"thin={spec['thin']}")
        labelled = (spec.get("topology") or {}).get("node_topology") or {}
        node_labels = (labelled.get("labelled") or {}).get("inclusion") or {}
        pool_labels = (
            ((spec.get("topology") or {}).get("pool_topology") or {}).get("labelled") or {}
        ).get("inclusion") or {}
        if node_labels != params.node_labels or pool_labels != params.pool_labels:
            problems.append("its placement labels differ")
        if problems:
            raise AlreadyExists(
                f"a volume exists under this name's uuid and is not compatible: "
                f"{'; '.join(problems)} ({conflict.message})",
                volume=volume,
            )
        return existing

    async def DeleteVolume(
        self, request: csi_pb2.DeleteVolumeRequest, context: grpc.aio.ServicerContext
    ) -> csi_pb2.DeleteVolumeResponse:
        volume = _volume_id(request.volume_id)
        if volume is None:
            return csi_pb2.DeleteVolumeResponse()
        with self.locks.hold(volume, "DeleteVolume"):
            try:
                existing = await self.rest.get_volume(volume)
            except RestError as exc:
                if exc.status == 404:
                    return csi_pb2.DeleteVolumeResponse()
                raise csi_error(exc, volume=volume, step="read the volume") from exc
            except RestUnreachable as exc:
                raise csi_error(exc, volume=volume, step="read the volume") from exc
            frontends = _frontends(existing)
            if frontends:
                raise FailedPrecondition(
                    f"published to node {', '.join(frontends)}; unpublish it first", volume=volume
                )
            try:
                await self.rest.delete_volume(volume)
            except RestError as exc:
                if exc.status != 404:
                    raise csi_error(exc, volume=volume, step="delete the volume") from exc
            except RestUnreachable as exc:
                raise csi_error(exc, volume=volume, step="delete the volume") from exc
        log.info("volume %s deleted", volume)
        return csi_pb2.DeleteVolumeResponse()

    # ------------------------------------------------------------------ publish

    async def ControllerPublishVolume(
        self, request: csi_pb2.ControllerPublishVolumeRequest, context: grpc.aio.ServicerContext
    ) -> csi_pb2.ControllerPublishVolumeResponse:
        if not request.volume_id:
            raise InvalidArgument("the volume id is required")
        if not request.node_id:
            raise InvalidArgument("the node id is required")
        if not request.HasField("volume_capability"):
            raise InvalidArgument("volume_capability is required")
        caps.check_present(request.volume_capability)
        reason = caps.unsupported(request.volume_capability)
        if reason is not None:
            raise InvalidArgument(reason)
        volume = _volume_id(request.volume_id)
        if volume is None:
            raise NotFound(f"volume {request.volume_id!r} does not exist (not a uuid)")
        node = request.node_id
        if len(node) > 253 or not set(node) <= _NODE_NAME_CHARS:
            raise NotFound(f"node {node!r} does not exist (not a node name)", volume=volume)
        settings = NvmeSettings.from_context(request.volume_context)
        with self.locks.hold(volume, "ControllerPublishVolume"):
            existing = await _rest(
                self.rest.get_volume(volume), volume=volume, step="read the volume"
            )
            frontends = _frontends(existing)
            others = [f for f in frontends if f != node]
            if others:
                raise FailedPrecondition(
                    f"published to node {', '.join(others)} already; a volume is attached to "
                    "one node at a time",
                    volume=volume,
                )
            published = existing
            target = existing.get("state", {}).get("target")
            if node not in frontends or not target or not target.get("deviceUri"):
                published = await _rest(
                    self.rest.publish_volume(
                        volume,
                        frontend_node=node,
                        node=self._local_target(existing, node),
                        publish_context=settings.context(),
                    ),
                    volume=volume,
                    step=f"publish the volume for node {node}",
                )
                target = published.get("state", {}).get("target")
            if not target or not target.get("deviceUri"):
                raise Unavailable(
                    "the volume's target has no URI yet (its node is not reachable?)",
                    volume=volume,
                )
        uri = str(target["deviceUri"])
        if "?" not in uri:
            uri += f"?uuid={volume}"  # what every nexus of the volume reports
        log.info("volume %s published for node %s: %s", volume, node, uri)
        return csi_pb2.ControllerPublishVolumeResponse(
            publish_context={PUBLISH_URI: uri, **settings.context()}
        )

    @staticmethod
    def _local_target(volume: Mapping[str, Any], node: str) -> str | None:
        """The node itself when it holds a replica (the nexus then reads it in-process),
        else None (the core agent picks)."""
        replicas = volume.get("state", {}).get("replica_topology", {}).values()
        return node if any(r.get("node") == node for r in replicas) else None

    async def ControllerUnpublishVolume(
        self, request: csi_pb2.ControllerUnpublishVolumeRequest, context: grpc.aio.ServicerContext
    ) -> csi_pb2.ControllerUnpublishVolumeResponse:
        if not request.volume_id:
            raise InvalidArgument("the volume id is required")
        volume = _volume_id(request.volume_id)
        if volume is None:
            return csi_pb2.ControllerUnpublishVolumeResponse()
        node = request.node_id
        with self.locks.hold(volume, "ControllerUnpublishVolume"):
            try:
                existing = await self.rest.get_volume(volume)
            except RestError as exc:
                if exc.status == 404:
                    return csi_pb2.ControllerUnpublishVolumeResponse()
                raise csi_error(exc, volume=volume, step="read the volume") from exc
            except RestUnreachable as exc:
                raise csi_error(exc, volume=volume, step="read the volume") from exc
            if existing["spec"].get("target") is None:
                return csi_pb2.ControllerUnpublishVolumeResponse()
            if node and node not in _frontends(existing):
                return csi_pb2.ControllerUnpublishVolumeResponse()
            try:
                await self.rest.unpublish_volume(volume)
            except RestError as exc:
                if exc.status == 404:
                    return csi_pb2.ControllerUnpublishVolumeResponse()
                if exc.status not in (412, 503):
                    raise csi_error(exc, volume=volume, step="unpublish the volume") from exc
                log.warning(
                    "volume %s: its target's node cannot be reached (%s); forgetting the target",
                    volume,
                    exc.message,
                )
                await _rest(
                    self.rest.unpublish_volume(volume, force=True),
                    volume=volume,
                    step="unpublish the volume (force)",
                )
            except RestUnreachable as exc:
                raise csi_error(exc, volume=volume, step="unpublish the volume") from exc
        log.info("volume %s unpublished%s", volume, f" from node {node}" if node else "")
        return csi_pb2.ControllerUnpublishVolumeResponse()

    # ------------------------------------------------------------------ queries

    async def ValidateVolumeCapabilities(
        self,
        request: csi_pb2.ValidateVolumeCapabilitiesRequest,
        context: grpc.aio.ServicerContext,
    ) -> csi_pb2.ValidateVolumeCapabilitiesResponse:
        if not request.volume_id:
            raise InvalidArgument("the volume id is required")
        if not request.volume_capabilities:
            raise InvalidArgument("volume_capabilities is required")
        for capability in request.volume_capabilities:
            caps.check_present(capability, "volume_capabilities")
        volume = _volume_id(request.volume_id)
        if volume is None:
            raise NotFound(f"volume {request.volume_id!r} does not exist (not a uuid)")
        await _rest(self.rest.get_volume(volume), volume=volume, step="read the volume")
        reasons = [r for c in request.volume_capabilities if (r := caps.unsupported(c))]
        if request.parameters:
            try:
                VolumeParameters.parse(request.parameters)
            except InvalidArgument as exc:
                reasons.append(exc.message)
        if request.mutable_parameters:
            reasons.append("mutable_parameters are not supported")
        if reasons:
            return csi_pb2.ValidateVolumeCapabilitiesResponse(message="; ".join(reasons))
        return csi_pb2.ValidateVolumeCapabilitiesResponse(
            confirmed=csi_pb2.ValidateVolumeCapabilitiesResponse.Confirmed(
                volume_context=request.volume_context,
                volume_capabilities=request.volume_capabilities,
                parameters=request.parameters,
            )
        )

    async def ListVolumes(
        self, request: csi_pb2.ListVolumesRequest, context: grpc.aio.ServicerContext
    ) -> csi_pb2.ListVolumesResponse:
        if request.max_entries < 0:
            raise InvalidArgument(f"max_entries {request.max_entries} is negative")
        start: int | None = None
        if request.starting_token:
            if not request.starting_token.isdigit():
                raise Aborted(f"starting_token {request.starting_token!r} is not one of ours")
            start = int(request.starting_token)
        page = await _rest(
            self.rest.get_volumes(max_entries=request.max_entries, starting_token=start),
            volume=None,
            step="list the volumes",
            overrides={400: Aborted},
        )
        entries = page.get("entries", [])
        if start and not entries:
            raise Aborted(f"starting_token {request.starting_token!r} is past the last volume")
        token = page.get("next_token")
        return csi_pb2.ListVolumesResponse(
            entries=[
                csi_pb2.ListVolumesResponse.Entry(
                    volume=csi_pb2.Volume(
                        volume_id=str(v["spec"]["uuid"]), capacity_bytes=int(v["spec"]["size"])
                    ),
                    status=csi_pb2.ListVolumesResponse.VolumeStatus(
                        published_node_ids=_frontends(v)
                    ),
                )
                for v in entries
            ],
            next_token=str(token) if token is not None else "",
        )

    async def GetCapacity(
        self, request: csi_pb2.GetCapacityRequest, context: grpc.aio.ServicerContext
    ) -> csi_pb2.GetCapacityResponse:
        params = VolumeParameters.parse(request.parameters)
        for capability in request.volume_capabilities:
            caps.check_present(capability, "volume_capabilities")
        if any(caps.unsupported(c) for c in request.volume_capabilities):
            return csi_pb2.GetCapacityResponse(available_capacity=0)
        nodes = await _rest(self.rest.get_nodes(), volume=None, step="list the nodes")
        pools = await _rest(self.rest.get_pools(), volume=None, step="list the pools")
        segments = dict(request.accessible_topology.segments)
        usable: dict[str, str] = {}
        for node in nodes:
            state = node.get("state") or {}
            labels = (node.get("spec") or {}).get("labels") or {}
            if state.get("status") != "Online" or not _matches(segments, node):
                continue
            if all(
                k in labels and (not v or labels[k] == v) for k, v in params.node_labels.items()
            ):
                usable[str(node["id"])] = ""
        free_by_node: dict[str, list[int]] = {}
        for pool in pools:
            state = pool.get("state") or {}
            labels = (pool.get("spec") or {}).get("labels") or {}
            if state.get("status") != "Online" or state.get("node") not in usable:
                continue
            if any(labels.get(k) != v for k, v in params.pool_labels.items()):
                continue
            free = max(0, int(state["capacity"]) - int(state["used"]))
            free_by_node.setdefault(str(state["node"]), []).append(free)
        available = sum(sum(f) for f in free_by_node.values())
        largest = sorted((max(f) for f in free_by_node.values()), reverse=True)
        biggest = largest[params.replicas - 1] if len(largest) >= params.replicas else 0
        biggest -= biggest % 512
        return csi_pb2.GetCapacityResponse(
            available_capacity=available,
            maximum_volume_size=Int64Value(value=biggest),
        )

    async def ControllerGetCapabilities(
        self, request: csi_pb2.ControllerGetCapabilitiesRequest, context: grpc.aio.ServicerContext
    ) -> csi_pb2.ControllerGetCapabilitiesResponse:
        rpc = csi_pb2.ControllerServiceCapability.RPC
        return csi_pb2.ControllerGetCapabilitiesResponse(
            capabilities=[
                csi_pb2.ControllerServiceCapability(rpc=rpc(type=kind))
                for kind in (
                    rpc.CREATE_DELETE_VOLUME,
                    rpc.PUBLISH_UNPUBLISH_VOLUME,
                    rpc.LIST_VOLUMES,
                    rpc.LIST_VOLUMES_PUBLISHED_NODES,
                    rpc.GET_CAPACITY,
                    rpc.EXPAND_VOLUME,
                    rpc.SINGLE_NODE_MULTI_WRITER,
                )
            ]
        )

    # ------------------------------------------------------------------ growth

    async def ControllerExpandVolume(
        self, request: csi_pb2.ControllerExpandVolumeRequest, context: grpc.aio.ServicerContext
    ) -> csi_pb2.ControllerExpandVolumeResponse:
        if not request.volume_id:
            raise InvalidArgument("the volume id is required")
        if not request.HasField("capacity_range"):
            raise InvalidArgument("capacity_range is required")
        block = False
        if request.HasField("volume_capability"):
            caps.check_present(request.volume_capability)
            reason = caps.unsupported(request.volume_capability)
            if reason is not None:
                raise InvalidArgument(reason)
            block = caps.is_block(request.volume_capability)
        size = size_for(request.capacity_range)
        volume = _volume_id(request.volume_id)
        if volume is None:
            raise NotFound(f"volume {request.volume_id!r} does not exist (not a uuid)")
        with self.locks.hold(volume, "ControllerExpandVolume"):
            existing = await _rest(
                self.rest.get_volume(volume), volume=volume, step="read the volume"
            )
            current = int(existing["spec"]["size"])
            limit = request.capacity_range.limit_bytes
            if limit and current > limit:
                raise OutOfRange(
                    f"the volume is {current} bytes already, more than limit_bytes {limit}; "
                    "volumes do not shrink",
                    volume=volume,
                )
            if current < size:
                await _rest(
                    self.rest.resize_volume(volume, size),
                    volume=volume,
                    step=f"grow the volume to {size} bytes",
                    overrides={412: ResourceExhausted},
                )
                log.info("volume %s grown from %d to %d bytes", volume, current, size)
                current = size
        return csi_pb2.ControllerExpandVolumeResponse(
            capacity_bytes=current, node_expansion_required=not block
        )

    # ------------------------------------------------------------------ not offered

    async def CreateSnapshot(
        self, request: csi_pb2.CreateSnapshotRequest, context: grpc.aio.ServicerContext
    ) -> csi_pb2.CreateSnapshotResponse:
        raise Unimplemented("snapshots are not offered")

    async def DeleteSnapshot(
        self, request: csi_pb2.DeleteSnapshotRequest, context: grpc.aio.ServicerContext
    ) -> csi_pb2.DeleteSnapshotResponse:
        raise Unimplemented("snapshots are not offered")

    async def ListSnapshots(
        self, request: csi_pb2.ListSnapshotsRequest, context: grpc.aio.ServicerContext
    ) -> csi_pb2.ListSnapshotsResponse:
        raise Unimplemented("snapshots are not offered")

    async def ControllerGetVolume(
        self, request: csi_pb2.ControllerGetVolumeRequest, context: grpc.aio.ServicerContext
    ) -> csi_pb2.ControllerGetVolumeResponse:
        raise Unimplemented("ControllerGetVolume is not offered")

    async def ControllerModifyVolume(
        self, request: csi_pb2.ControllerModifyVolumeRequest, context: grpc.aio.ServicerContext
    ) -> csi_pb2.ControllerModifyVolumeResponse:
        raise Unimplemented("ControllerModifyVolume is not offered")
