"""What every route needs: the cluster the application serves."""

from __future__ import annotations

from fastapi import Request

from mayastor.control.cluster import Cluster


def cluster_of(request: Request) -> Cluster:
    cluster: Cluster = request.app.state.cluster
    return cluster
