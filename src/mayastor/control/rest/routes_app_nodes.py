"""Application nodes: registration by their ha-node agents, and their failed paths."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from mayastor.control.cluster import Cluster
from mayastor.control.models import (
    AppNode,
    AppNodes,
    AppNodeState,
    AppNodeStatus,
    FailedPath,
    NodeDhchapSecret,
    RegisterAppNode,
    ReplacementPath,
)
from mayastor.control.names import NAME_PATTERN
from mayastor.control.node_secrets import node_secret
from mayastor.control.rest._deps import cluster_of
from mayastor.control.rest.app import ERROR_RESPONSES
from mayastor.control.specs import AppNodeSpec, node_nqn
from mayastor.control.switch_over import TargetSwitchOver
from mayastor.errors import FailedPrecondition, NotFound

router = APIRouter(tags=["AppNodes"], responses=ERROR_RESPONSES)
ClusterDep = Annotated[Cluster, Depends(cluster_of)]
AppNodeId = Annotated[str, Path(pattern=NAME_PATTERN, description="the app node's name")]


def _view(spec: AppNodeSpec) -> AppNode:
    return AppNode(
        id=spec.id,
        spec=spec,
        state=AppNodeState(id=spec.id, endpoint=spec.endpoint, status=AppNodeStatus.ONLINE),
    )


@router.get("/app-nodes", operation_id="get_app_nodes", response_model_exclude_none=True)
async def get_app_nodes(
    cluster: ClusterDep,
    max_entries: Annotated[int, Query(ge=0, le=1 << 31)] = 0,
    starting_token: Annotated[int | None, Query(ge=0, le=1 << 62)] = None,
) -> AppNodes:
    specs = cluster.specs.view(AppNodeSpec)
    start = starting_token or 0
    end = len(specs) if max_entries == 0 else start + max_entries
    next_token = end if end < len(specs) else None
    return AppNodes(entries=[_view(s) for s in specs[start:end]], next_token=next_token)


@router.get(
    "/app-nodes/{app_node_id}", operation_id="get_app_node", response_model_exclude_none=True
)
async def get_app_node(cluster: ClusterDep, app_node_id: AppNodeId) -> AppNode:
    spec = cluster.specs.get(AppNodeSpec, app_node_id)
    if spec is None:
        raise NotFound(f"app node {app_node_id} is not registered")
    return _view(spec)


@router.put("/app-nodes/{app_node_id}", operation_id="register_app_node", status_code=204)
async def register_app_node(
    cluster: ClusterDep, app_node_id: AppNodeId, body: RegisterAppNode
) -> Response:
    """Register (or register again, with a new endpoint or labels) an app node."""
    spec = AppNodeSpec(id=app_node_id, endpoint=body.endpoint, labels=body.labels or {})
    async with cluster.locks.hold("app-node", app_node_id):
        if cluster.specs.get(AppNodeSpec, app_node_id) != spec:
            await cluster.specs.save(spec)
    return Response(status_code=204)


@router.delete("/app-nodes/{app_node_id}", operation_id="deregister_app_node", status_code=204)
async def deregister_app_node(cluster: ClusterDep, app_node_id: AppNodeId) -> Response:
    async with cluster.locks.hold("app-node", app_node_id):
        spec = cluster.specs.get(AppNodeSpec, app_node_id)
        if spec is None:
            raise NotFound(f"app node {app_node_id} is not registered")
        await cluster.specs.remove(spec)
    return Response(status_code=204)


@router.post(
    "/app-nodes/{app_node_id}/failed-paths",
    operation_id="report_failed_path",
    response_model_exclude_none=True,
)
async def report_failed_path(
    cluster: ClusterDep, app_node_id: AppNodeId, body: FailedPath
) -> ReplacementPath:
    """The app node's path to a volume's target failed: the target moves to another node
    (unless it has already) and the answer is the path to connect now."""
    uri = await TargetSwitchOver(cluster).path_failed(
        app_node_id, body.target_nqn, body.address or ""
    )
    return ReplacementPath(target_nqn=body.target_nqn, uri=uri)


@router.post(
    "/app-nodes/{app_node_id}/dhchap-secret",
    operation_id="get_app_node_dhchap_secret",
    response_model_exclude_none=True,
)
async def get_app_node_dhchap_secret(
    cluster: ClusterDep, app_node_id: AppNodeId
) -> NodeDhchapSecret:
    """The app node's DH-HMAC-CHAP secret (made on first need), for its CSI node plugin.

    A POST, although it mostly reads: with REST tokens only an admin token may make it
    (a read-only token reads listings, never a secret). The CSI node plugin asks here
    rather than through CSI: CSI's secrets come from one Kubernetes Secret per
    StorageClass, not one per node, and a publish context is copied into the
    VolumeAttachment's status, where anyone who may read attachments sees it.
    """
    secret = await node_secret(cluster, app_node_id)
    if secret is None:
        raise FailedPrecondition(
            "the core agent does not authenticate hosts (start it with --dhchap)"
        )
    return NodeDhchapSecret(host_nqn=node_nqn(app_node_id), secret=secret)
