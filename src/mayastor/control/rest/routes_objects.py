"""Replicas, nexuses and specs: what the io-engines hold and what the store keeps."""

from __future__ import annotations

import uuid as uuid_mod
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from mayastor.control.cluster import Cluster
from mayastor.control.events import Event, EventCategory
from mayastor.control.models import Child, Nexus, Replica, Specs
from mayastor.control.rest._deps import cluster_of
from mayastor.control.rest.app import ERROR_RESPONSES
from mayastor.control.specs import NexusSpec, PoolSpec, ReplicaSpec, VolumeSpec
from mayastor.control.views import nexus_views, replica_views
from mayastor.errors import NotFound

router = APIRouter(responses=ERROR_RESPONSES)
ClusterDep = Annotated[Cluster, Depends(cluster_of)]


@router.get(
    "/replicas", operation_id="get_replicas", response_model_exclude_none=True, tags=["Replicas"]
)
async def get_replicas(cluster: ClusterDep) -> list[Replica]:
    return replica_views(cluster)


@router.get(
    "/replicas/{id}",
    operation_id="get_replica",
    response_model_exclude_none=True,
    tags=["Replicas"],
)
async def get_replica(cluster: ClusterDep, id: uuid_mod.UUID) -> Replica:
    for replica in replica_views(cluster):
        if replica.uuid == id:
            return replica
    raise NotFound(f"replica {id} not found")


@router.get(
    "/nexuses", operation_id="get_nexuses", response_model_exclude_none=True, tags=["Nexuses"]
)
async def get_nexuses(cluster: ClusterDep) -> list[Nexus]:
    return nexus_views(cluster)


def _nexus(cluster: Cluster, nexus_id: uuid_mod.UUID, node: str | None = None) -> Nexus:
    for nexus in nexus_views(cluster, node=node):
        if nexus.uuid == nexus_id:
            return nexus
    raise NotFound(f"nexus {nexus_id} not found" + (f" on node {node}" if node else ""))


@router.get(
    "/nexuses/{nexus_id}",
    operation_id="get_nexus",
    response_model_exclude_none=True,
    tags=["Nexuses"],
)
async def get_nexus(cluster: ClusterDep, nexus_id: uuid_mod.UUID) -> Nexus:
    return _nexus(cluster, nexus_id)


@router.get(
    "/nexuses/{nexus_id}/children",
    operation_id="get_nexus_children",
    response_model_exclude_none=True,
    tags=["Children"],
)
async def get_nexus_children(cluster: ClusterDep, nexus_id: uuid_mod.UUID) -> list[Child]:
    return _nexus(cluster, nexus_id).children


@router.get(
    "/nodes/{node_id}/nexuses/{nexus_id}",
    operation_id="get_node_nexus",
    response_model_exclude_none=True,
    tags=["Nexuses"],
)
async def get_node_nexus(cluster: ClusterDep, node_id: str, nexus_id: uuid_mod.UUID) -> Nexus:
    return _nexus(cluster, nexus_id, node_id)


@router.get("/events", operation_id="get_events", response_model_exclude_none=True, tags=["Events"])
async def get_events(
    cluster: ClusterDep,
    category: EventCategory | None = None,
    target: str | None = None,
    max_entries: Annotated[int, Query(ge=0, le=10_000)] = 0,
) -> list[Event]:
    """Events kept by the core agent, oldest first (the last `max_entries` when set)."""
    if cluster.events is None:
        return []
    found = cluster.events.recent(category=category, target=target)
    return found[-max_entries:] if max_entries else found


@router.get("/specs", operation_id="get_specs", response_model_exclude_none=True, tags=["Specs"])
async def get_specs(cluster: ClusterDep) -> Specs:
    return Specs(
        nexuses=cluster.specs.all(NexusSpec),
        pools=cluster.specs.all(PoolSpec),
        replicas=cluster.specs.all(ReplicaSpec),
        volumes=cluster.specs.all(VolumeSpec),
    )
