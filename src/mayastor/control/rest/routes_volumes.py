"""Volumes: create, list (paged), publish, unpublish, resize, scale, destroy."""

from __future__ import annotations

import uuid as uuid_mod
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from mayastor.control.cluster import Cluster
from mayastor.control.models import (
    CreateVolumeBody,
    PublishVolumeBody,
    RebuildHistory,
    ResizeVolumeBody,
    Volume,
    Volumes,
)
from mayastor.control.operations import volumes as volume_ops
from mayastor.control.rest._deps import cluster_of
from mayastor.control.rest.app import ERROR_RESPONSES
from mayastor.control.specs import VolumeSpec
from mayastor.control.views import rebuild_records, volume_view
from mayastor.errors import NotFound

router = APIRouter(tags=["Volumes"], responses=ERROR_RESPONSES)
ClusterDep = Annotated[Cluster, Depends(cluster_of)]
VolumeId = Annotated[uuid_mod.UUID, Path(description="the volume's uuid")]


def _view(cluster: Cluster, volume_id: uuid_mod.UUID) -> Volume:
    spec = cluster.specs.get(VolumeSpec, str(volume_id))
    if spec is None:
        raise NotFound(f"volume {volume_id} not found")
    return volume_view(cluster, spec)


@router.get("/volumes", operation_id="get_volumes", response_model_exclude_none=True)
async def get_volumes(
    cluster: ClusterDep,
    volume_id: uuid_mod.UUID | None = None,
    max_entries: Annotated[int, Query(ge=0, le=1 << 31)] = 0,
    starting_token: Annotated[int | None, Query(ge=0, le=1 << 62)] = None,
) -> Volumes:
    """Volumes in uuid order; with `max_entries`, a page and the token of the next one."""
    specs = cluster.specs.view(VolumeSpec)
    if volume_id is not None:
        specs = [s for s in specs if s.uuid == volume_id]
    start = starting_token or 0
    end = len(specs) if max_entries == 0 else start + max_entries
    page = specs[start:end]
    next_token = end if end < len(specs) else None
    return Volumes(entries=[volume_view(cluster, s) for s in page], next_token=next_token)


@router.get("/volumes/{volume_id}", operation_id="get_volume", response_model_exclude_none=True)
async def get_volume(cluster: ClusterDep, volume_id: VolumeId) -> Volume:
    return _view(cluster, volume_id)


@router.put("/volumes/{volume_id}", operation_id="put_volume", response_model_exclude_none=True)
async def put_volume(cluster: ClusterDep, volume_id: VolumeId, body: CreateVolumeBody) -> Volume:
    await volume_ops.create_volume(cluster, volume_id, body)
    return _view(cluster, volume_id)


@router.delete("/volumes/{volume_id}", operation_id="del_volume", status_code=204)
async def del_volume(cluster: ClusterDep, volume_id: VolumeId) -> Response:
    await volume_ops.destroy_volume(cluster, volume_id)
    return Response(status_code=204)


@router.put(
    "/volumes/{volume_id}/target",
    operation_id="put_volume_target",
    response_model_exclude_none=True,
)
async def put_volume_target(
    cluster: ClusterDep, volume_id: VolumeId, body: PublishVolumeBody
) -> Volume:
    await volume_ops.publish(cluster, volume_id, body)
    return _view(cluster, volume_id)


@router.delete(
    "/volumes/{volume_id}/target",
    operation_id="del_volume_target",
    response_model_exclude_none=True,
)
async def del_volume_target(
    cluster: ClusterDep, volume_id: VolumeId, force: bool = False
) -> Volume:
    await volume_ops.unpublish(cluster, volume_id, force=force)
    return _view(cluster, volume_id)


@router.put(
    "/volumes/{volume_id}/size", operation_id="put_volume_size", response_model_exclude_none=True
)
async def put_volume_size(
    cluster: ClusterDep, volume_id: VolumeId, body: ResizeVolumeBody
) -> Volume:
    await volume_ops.resize_volume(cluster, volume_id, body.size)
    return _view(cluster, volume_id)


@router.put(
    "/volumes/{volume_id}/replica_count/{replica_count}",
    operation_id="put_volume_replica_count",
    response_model_exclude_none=True,
)
async def put_volume_replica_count(
    cluster: ClusterDep,
    volume_id: VolumeId,
    replica_count: Annotated[int, Path(ge=1, le=255)],
) -> Volume:
    await volume_ops.scale_volume(cluster, volume_id, replica_count)
    return _view(cluster, volume_id)


@router.get("/volumes/{volume_id}/rebuild-history", operation_id="get_rebuild_history")
async def get_rebuild_history(cluster: ClusterDep, volume_id: VolumeId) -> RebuildHistory:
    spec = cluster.specs.get(VolumeSpec, str(volume_id))
    if spec is None:
        raise NotFound(f"volume {volume_id} not found")
    target = spec.target
    if target is None or target.nexus is None:
        return RebuildHistory(targetUuid=volume_id, records=[])
    history = await cluster.engine(target.node).rebuild_history(str(target.nexus))
    return RebuildHistory(targetUuid=target.nexus, records=rebuild_records(history))
