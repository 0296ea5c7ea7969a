"""The core agent's `/metrics`: volume, replica, node and rebuild states for Prometheus.

``volume_status`` (0 Unknown, 1 Online, 2 Degraded, 3 Faulted, 4 Shutdown),
``volume_replicas`` (the count the spec asks for) and ``volume_replicas_in_sync``;
``replica_state`` per replica of a volume (its child's state: 0 Unknown, 1 Online,
2 Degraded, 3 Faulted); ``rebuild_progress_percent`` of each child being rebuilt and
``rebuilds_running``; ``node_status`` (0 Unknown, 1 Online, 2 Offline). Made from the
same views as the REST API at each scrape.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from mayastor.control.cluster import Cluster
from mayastor.control.models import ChildState, VolumeStatus
from mayastor.control.specs import VolumeSpec
from mayastor.control.views import node_names, node_view, volume_view

VOLUME_STATUS = {
    VolumeStatus.UNKNOWN: 0,
    VolumeStatus.ONLINE: 1,
    VolumeStatus.DEGRADED: 2,
    VolumeStatus.FAULTED: 3,
    VolumeStatus.SHUTDOWN: 4,
}
CHILD_STATE = {ChildState.ONLINE: 1, ChildState.DEGRADED: 2, ChildState.FAULTED: 3}
NODE_STATUS = {"Online": 1, "Offline": 2}


class ClusterCollector(Collector):
    """Metric families of the cluster as the core agent sees it."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def collect(self) -> Iterator[GaugeMetricFamily]:
        status = GaugeMetricFamily(
            "volume_status",
            "volume status: 0 Unknown, 1 Online, 2 Degraded, 3 Faulted, 4 Shutdown",
            labels=["volume"],
        )
        wanted = GaugeMetricFamily(
            "volume_replicas", "replicas the volume's spec asks for", labels=["volume"]
        )
        in_sync = GaugeMetricFamily(
            "volume_replicas_in_sync", "replicas holding every write now", labels=["volume"]
        )
        replica = GaugeMetricFamily(
            "replica_state",
            "state of a volume's replica in its nexus: 0 Unknown, 1 Online, 2 Degraded "
            "(rebuilding), 3 Faulted",
            labels=["volume", "replica", "node", "pool"],
        )
        progress = GaugeMetricFamily(
            "rebuild_progress_percent",
            "progress of the rebuild of a replica",
            labels=["volume", "replica"],
        )
        running = 0
        for spec in self.cluster.specs.view(VolumeSpec):
            volume = str(spec.uuid)
            state = volume_view(self.cluster, spec).state
            status.add_metric([volume], VOLUME_STATUS[state.status])
            wanted.add_metric([volume], spec.num_replicas)
            synced = 0
            for replica_id, child in sorted(state.replica_topology.items()):
                value = CHILD_STATE.get(child.child_status, 0) if child.child_status else 0
                synced += child.child_status is ChildState.ONLINE
                replica.add_metric([volume, replica_id, child.node or "", child.pool or ""], value)
                if child.rebuild_progress is not None:
                    running += 1
                    progress.add_metric([volume, replica_id], child.rebuild_progress)
            if state.target is None:
                synced = sum(1 for c in state.replica_topology.values() if c.state == "Online")
            in_sync.add_metric([volume], synced)
        yield from (status, wanted, in_sync, replica, progress)
        rebuilds = GaugeMetricFamily("rebuilds_running", "rebuilds running in the cluster")
        rebuilds.add_metric([], running)
        yield rebuilds
        nodes = GaugeMetricFamily(
            "node_status", "node status: 0 Unknown, 1 Online, 2 Offline", labels=["node"]
        )
        for name in node_names(self.cluster):
            node_state = node_view(self.cluster, name).state
            nodes.add_metric(
                [name], NODE_STATUS.get(node_state.status.value, 0) if node_state else 0
            )
        yield nodes


def cluster_metrics(cluster: Cluster) -> bytes:
    """The text exposition of the cluster's metrics now."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ClusterCollector(cluster))
    return generate_latest(registry)
