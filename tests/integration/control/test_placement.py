"""Where the core agent puts replicas, and what it refuses, on real io-engines.

A refusal must be a clear 412 that creates nothing: no spec, no replica on any
io-engine.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.cluster import TestCluster

pytestmark = pytest.mark.slow

MIB = 1 << 20


def volume_body(size: int, replicas: int, *, thin: bool = False, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "size": size,
        "replicas": replicas,
        "thin": thin,
        "policy": {"self_heal": True},
    }
    body.update(extra)
    return body


def replica_nodes(volume: Any) -> list[str]:
    return sorted(r["node"] for r in volume["state"]["replica_topology"].values())


def assert_nothing_created(cluster: TestCluster) -> None:
    specs = cluster.rest.get("/specs")
    assert (specs["volumes"], specs["replicas"]) == ([], [])
    assert cluster.rest.get("/replicas") == []


def refused(cluster: TestCluster, body: dict[str, Any]) -> dict[str, Any]:
    status, reply = cluster.rest.call("PUT", f"/volumes/{uuid.uuid4()}", body)
    assert status == 412, reply
    assert reply["kind"] == "FailedPrecondition"
    return dict(reply)


def test_replicas_of_one_volume_never_share_a_node(
    make_cluster: Callable[..., TestCluster],
) -> None:
    cluster = make_cluster(nodes=4)
    counts: dict[str, int] = {}
    for _ in range(6):
        volume = cluster.rest.put(f"/volumes/{uuid.uuid4()}", volume_body(8 * MIB, 3))
        nodes = replica_nodes(volume)
        assert len(set(nodes)) == 3
        for node in nodes:
            counts[node] = counts.get(node, 0) + 1
    assert sorted(counts.values()) == [4, 4, 5, 5], "replicas spread over the pools"


def test_more_replicas_than_nodes_is_refused_and_creates_nothing(
    make_cluster: Callable[..., TestCluster],
) -> None:
    cluster = make_cluster(nodes=2)
    reply = refused(cluster, volume_body(8 * MIB, 3))
    assert "need 3 pools on different nodes, 2 found" in reply["message"]
    assert_nothing_created(cluster)


def test_a_volume_larger_than_the_pools_is_refused_and_creates_nothing(
    cluster: TestCluster,
) -> None:
    reply = refused(cluster, volume_body(512 * MIB, 2))
    assert "bytes free" in reply["message"]
    assert_nothing_created(cluster)


def test_a_cordoned_node_gets_no_replica(cluster: TestCluster) -> None:
    cluster.rest.put("/nodes/node-2/cordon/maintenance")
    volume = cluster.rest.put(f"/volumes/{uuid.uuid4()}", volume_body(8 * MIB, 2))
    assert replica_nodes(volume) == ["node-1", "node-3"]
    reply = refused(cluster, volume_body(8 * MIB, 3))
    assert "node node-2 is cordoned" in reply["message"]
    cluster.rest.delete("/nodes/node-2/cordon/maintenance")
    cluster.rest.put(f"/volumes/{uuid.uuid4()}", volume_body(8 * MIB, 3))


def test_node_labels_in_the_topology_choose_the_nodes(cluster: TestCluster) -> None:
    for node, zone in (("node-1", "a"), ("node-2", "a"), ("node-3", "b")):
        cluster.rest.put(f"/nodes/{node}/label/zone={zone}")
    topology = {"node_topology": {"labelled": {"inclusion": {"zone": "a"}, "exclusion": {}}}}
    volume = cluster.rest.put(
        f"/volumes/{uuid.uuid4()}", volume_body(8 * MIB, 2, topology=topology)
    )
    assert replica_nodes(volume) == ["node-1", "node-2"]
    reply = refused(cluster, volume_body(8 * MIB, 3, topology=topology))
    assert "label zone=b, not a" in reply["message"]


def test_exclusion_keeps_replicas_in_different_zones(cluster: TestCluster) -> None:
    for node, zone in (("node-1", "a"), ("node-2", "a"), ("node-3", "b")):
        cluster.rest.put(f"/nodes/{node}/label/zone={zone}")
    topology = {"node_topology": {"labelled": {"inclusion": {}, "exclusion": {"zone": ""}}}}
    volume = cluster.rest.put(
        f"/volumes/{uuid.uuid4()}", volume_body(8 * MIB, 2, topology=topology)
    )
    nodes = replica_nodes(volume)
    assert "node-3" in nodes
    refused(cluster, volume_body(8 * MIB, 3, topology=topology))


def test_pool_labels_in_the_topology_choose_the_pools(cluster: TestCluster) -> None:
    cluster.rest.put("/pools/pool-node-3/label/class=fast")
    topology = {"pool_topology": {"labelled": {"inclusion": {"class": "fast"}, "exclusion": {}}}}
    volume = cluster.rest.put(
        f"/volumes/{uuid.uuid4()}", volume_body(8 * MIB, 1, topology=topology)
    )
    assert replica_nodes(volume) == ["node-3"]
    refused(cluster, volume_body(8 * MIB, 2, topology=topology))


def test_thin_volumes_may_overcommit_a_pool_up_to_its_commitment_limit(
    cluster: TestCluster,
) -> None:
    capacity = cluster.rest.get("/pools/pool-node-1")["state"]["capacity"]
    big = (capacity * 2) // MIB * MIB
    cluster.rest.put(f"/volumes/{uuid.uuid4()}", volume_body(big, 3, thin=True))
    reply = refused(cluster, volume_body(big, 1, thin=True))
    assert "thin commitment" in reply["message"]
    status, _ = cluster.rest.call("PUT", f"/volumes/{uuid.uuid4()}", volume_body(big, 1))
    assert status == 412, "a thick volume needs the space now"


def test_a_thin_volume_uses_no_space_until_written(cluster: TestCluster) -> None:
    volume = cluster.rest.put(f"/volumes/{uuid.uuid4()}", volume_body(64 * MIB, 3, thin=True))
    assert volume["spec"]["thin"] is True
    for replica in cluster.rest.get("/replicas"):
        assert replica["thin"] is True
        assert replica["space"]["allocated_bytes"] == 0


def test_the_volumes_of_an_affinity_group_spread_over_the_nodes(cluster: TestCluster) -> None:
    pinned = {"node_topology": {"explicit": {"allowed_nodes": ["node-2", "node-3"]}}}
    for _ in range(2):
        cluster.rest.put(f"/volumes/{uuid.uuid4()}", volume_body(8 * MIB, 2, topology=pinned))
    group = {"id": "default/data-web"}
    first = cluster.rest.put(
        f"/volumes/{uuid.uuid4()}", volume_body(8 * MIB, 1, affinity_group=group)
    )
    assert replica_nodes(first) == ["node-1"]
    second = cluster.rest.put(
        f"/volumes/{uuid.uuid4()}", volume_body(8 * MIB, 1, affinity_group=group)
    )
    assert replica_nodes(second) != ["node-1"]
    lone = cluster.rest.put(f"/volumes/{uuid.uuid4()}", volume_body(8 * MIB, 1))
    assert replica_nodes(lone) == ["node-1"]
