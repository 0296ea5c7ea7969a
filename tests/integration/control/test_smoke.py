"""A volume's first steps through REST on a cluster of real processes."""

from __future__ import annotations

import uuid

from tests.support.cluster import TestCluster

VOLUME = str(uuid.UUID(int=0x5EED))


def test_a_three_replica_volume_is_placed_on_three_nodes_and_published(
    cluster: TestCluster,
) -> None:
    body = {"size": 32 << 20, "replicas": 3, "thin": False, "policy": {"self_heal": True}}
    created = cluster.rest.put(f"/volumes/{VOLUME}", body)
    nodes = {r["node"] for r in created["state"]["replica_topology"].values()}
    assert nodes == {"node-1", "node-2", "node-3"}
    published = cluster.rest.put(
        f"/volumes/{VOLUME}/target",
        {"protocol": "nvmf", "publish_context": {}, "frontend_node": "app-1"},
    )
    assert published["state"]["status"] == "Online"
    assert published["state"]["target"]["deviceUri"].endswith(f"nqn.2019-05.io.openebs:{VOLUME}")
