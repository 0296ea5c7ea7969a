"""Nodes: list, labels, cordons, block devices, and what each node holds."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from mayastor.control.cluster import Cluster
from mayastor.control.models import BlockDevice, Nexus, Node, Pool, Replica
from mayastor.control.names import LABEL_KEY_PATTERN, LABEL_VALUE_PATTERN
from mayastor.control.operations import nodes as node_ops
from mayastor.control.rest._deps import cluster_of
from mayastor.control.rest.app import ERROR_RESPONSES
from mayastor.control.views import (
    nexus_views,
    node_names,
    node_view,
    pool_views,
    replica_views,
)
from mayastor.errors import NotFound

router = APIRouter(tags=["Nodes"], responses=ERROR_RESPONSES)
ClusterDep = Annotated[Cluster, Depends(cluster_of)]
LabelKey = Annotated[str, Path(pattern=LABEL_KEY_PATTERN, description="[prefix/]name")]
LabelValue = Annotated[str, Path(pattern=LABEL_VALUE_PATTERN)]


def _known(cluster: Cluster, node: str) -> None:
    if node not in node_names(cluster):
        raise NotFound(f"node {node!r} not found")


@router.get("/nodes", operation_id="get_nodes", response_model_exclude_none=True)
async def get_nodes(cluster: ClusterDep, node_id: str | None = None) -> list[Node]:
    names = node_names(cluster)
    if node_id is not None:
        names = [n for n in names if n == node_id]
    return [node_view(cluster, name) for name in names]


@router.get("/nodes/{id}", operation_id="get_node", response_model_exclude_none=True)
async def get_node(cluster: ClusterDep, id: str) -> Node:
    _known(cluster, id)
    return node_view(cluster, id)


@router.put(
    "/nodes/{id}/cordon/{label}", operation_id="put_node_cordon", response_model_exclude_none=True
)
async def put_node_cordon(cluster: ClusterDep, id: str, label: LabelKey) -> Node:
    await node_ops.cordon_node(cluster, id, label)
    return node_view(cluster, id)


@router.delete(
    "/nodes/{id}/cordon/{label}",
    operation_id="delete_node_cordon",
    response_model_exclude_none=True,
)
async def delete_node_cordon(cluster: ClusterDep, id: str, label: LabelKey) -> Node:
    await node_ops.uncordon_node(cluster, id, label)
    return node_view(cluster, id)


@router.put(
    "/nodes/{id}/drain/{label}", operation_id="put_node_drain", response_model_exclude_none=True
)
async def put_node_drain(cluster: ClusterDep, id: str, label: LabelKey) -> Node:
    """Cordon the node and move every volume target off it; it is Drained once none is
    left (poll the node's cordondrainstate)."""
    await node_ops.drain_node(cluster, id, label)
    cluster.reconcile_soon()
    return node_view(cluster, id)


@router.put(
    "/nodes/{id}/label/{key:labelkey}={value}",
    operation_id="put_node_label",
    response_model_exclude_none=True,
)
async def put_node_label(
    cluster: ClusterDep, id: str, key: LabelKey, value: LabelValue, overwrite: bool = False
) -> Node:
    await node_ops.set_node_label(cluster, id, key, value, overwrite)
    return node_view(cluster, id)


@router.delete(
    "/nodes/{id}/label/{key:labelkey}",
    operation_id="delete_node_label",
    response_model_exclude_none=True,
)
async def delete_node_label(cluster: ClusterDep, id: str, key: LabelKey) -> Node:
    await node_ops.remove_node_label(cluster, id, key)
    return node_view(cluster, id)


@router.get(
    "/nodes/{id}/pools",
    operation_id="get_node_pools",
    response_model_exclude_none=True,
    tags=["Pools"],
)
async def get_node_pools(cluster: ClusterDep, id: str) -> list[Pool]:
    _known(cluster, id)
    return pool_views(cluster, node=id)


@router.get(
    "/nodes/{id}/replicas",
    operation_id="get_node_replicas",
    response_model_exclude_none=True,
    tags=["Replicas"],
)
async def get_node_replicas(cluster: ClusterDep, id: str) -> list[Replica]:
    _known(cluster, id)
    return replica_views(cluster, node=id)


@router.get(
    "/nodes/{id}/nexuses",
    operation_id="get_node_nexuses",
    response_model_exclude_none=True,
    tags=["Nexuses"],
)
async def get_node_nexuses(cluster: ClusterDep, id: str) -> list[Nexus]:
    _known(cluster, id)
    return nexus_views(cluster, node=id)


@router.get(
    "/nodes/{node}/block_devices",
    operation_id="get_node_block_devices",
    response_model_exclude_none=True,
    tags=["BlockDevices"],
)
async def get_node_block_devices(
    cluster: ClusterDep, node: str, all: Annotated[bool, Query()] = False
) -> list[BlockDevice]:
    _known(cluster, node)
    devices = await cluster.engine(node).block_devices(all)
    return [
        BlockDevice(
            available=d.available,
            devlinks=list(d.devlinks),
            devmajor=d.devmajor,
            devminor=d.devminor,
            devname=d.devname,
            devpath=d.devpath,
            devtype=d.devtype,
            model=d.model,
            size=d.size,
        )
        for d in devices
    ]
