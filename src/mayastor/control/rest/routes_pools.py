"""Pools: create or import on a node, list, label, destroy."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from mayastor.control.cluster import Cluster
from mayastor.control.models import CreatePoolBody, Pool, Replica
from mayastor.control.names import LABEL_KEY_PATTERN, LABEL_VALUE_PATTERN, NAME_PATTERN
from mayastor.control.operations import pools as pool_ops
from mayastor.control.rest._deps import cluster_of
from mayastor.control.rest.app import ERROR_RESPONSES
from mayastor.control.specs import PoolSpec
from mayastor.control.views import pool_view, pool_views, replica_views
from mayastor.errors import NotFound

router = APIRouter(tags=["Pools"], responses=ERROR_RESPONSES)
ClusterDep = Annotated[Cluster, Depends(cluster_of)]
PoolName = Annotated[str, Path(pattern=NAME_PATTERN, max_length=255)]
LabelKey = Annotated[str, Path(pattern=LABEL_KEY_PATTERN, description="[prefix/]name")]
LabelValue = Annotated[str, Path(pattern=LABEL_VALUE_PATTERN)]


def _find(cluster: Cluster, pool_id: str, node: str | None = None) -> Pool:
    for pool in pool_views(cluster, node=node):
        if pool.id == pool_id:
            return pool
    raise NotFound(f"pool {pool_id!r} not found" + (f" on node {node}" if node else ""))


@router.get("/pools", operation_id="get_pools", response_model_exclude_none=True)
async def get_pools(cluster: ClusterDep) -> list[Pool]:
    return pool_views(cluster)


@router.get("/pools/{pool_id}", operation_id="get_pool", response_model_exclude_none=True)
async def get_pool(cluster: ClusterDep, pool_id: str) -> Pool:
    return _find(cluster, pool_id)


@router.delete("/pools/{pool_id}", operation_id="del_pool", status_code=204)
async def del_pool(cluster: ClusterDep, pool_id: str) -> Response:
    await pool_ops.destroy_pool(cluster, pool_id)
    return Response(status_code=204)


@router.get(
    "/nodes/{node_id}/pools/{pool_id}",
    operation_id="get_node_pool",
    response_model_exclude_none=True,
)
async def get_node_pool(cluster: ClusterDep, node_id: str, pool_id: str) -> Pool:
    return _find(cluster, pool_id, node_id)


@router.put(
    "/nodes/{node_id}/pools/{pool_id}",
    operation_id="put_node_pool",
    response_model_exclude_none=True,
)
async def put_node_pool(
    cluster: ClusterDep, node_id: str, pool_id: PoolName, body: CreatePoolBody
) -> Pool:
    spec = await pool_ops.create_pool(cluster, node_id, pool_id, body)
    return pool_view(cluster, spec, spec.node, spec.id)


@router.delete("/nodes/{node_id}/pools/{pool_id}", operation_id="del_node_pool", status_code=204)
async def del_node_pool(cluster: ClusterDep, node_id: str, pool_id: str) -> Response:
    await pool_ops.destroy_pool(cluster, pool_id, node=node_id)
    return Response(status_code=204)


@router.get(
    "/nodes/{node_id}/pools/{pool_id}/replicas",
    operation_id="get_node_pool_replicas",
    response_model_exclude_none=True,
    tags=["Replicas"],
)
async def get_node_pool_replicas(cluster: ClusterDep, node_id: str, pool_id: str) -> list[Replica]:
    _find(cluster, pool_id, node_id)
    return replica_views(cluster, node=node_id, pool=pool_id)


@router.put(
    "/pools/{pool_id}/label/{key:labelkey}={value}",
    operation_id="put_pool_label",
    response_model_exclude_none=True,
)
async def put_pool_label(
    cluster: ClusterDep, pool_id: str, key: LabelKey, value: LabelValue, overwrite: bool = False
) -> Pool:
    spec = await pool_ops.set_pool_label(cluster, pool_id, key, value, overwrite)
    return pool_view(cluster, spec, spec.node, spec.id)


@router.delete(
    "/pools/{id}/label/{key:labelkey}",
    operation_id="del_pool_label",
    response_model_exclude_none=True,
)
async def del_pool_label(cluster: ClusterDep, id: str, key: LabelKey) -> Pool:
    spec: PoolSpec = await pool_ops.remove_pool_label(cluster, id, key)
    return pool_view(cluster, spec, spec.node, spec.id)
