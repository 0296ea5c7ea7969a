"""A volume's life through kubectl-mayastor on a real cluster, checked against REST.

Create (three replicas on three nodes), read it back in every format, publish (the
URI printed), scale 3 -> 2 -> 3 (the new replica rebuilt, the rebuild in its history),
unpublish, delete.
"""

from __future__ import annotations

import uuid

import pytest

from tests.integration.kubectl.conftest import Kubectl
from tests.support.cluster import TestCluster
from tests.support.polling import wait_for

pytestmark = pytest.mark.slow

MIB = 1 << 20
VOLUME = str(uuid.UUID(int=0xC0FFEE))


def status_of(cluster: TestCluster, volume: str) -> str:
    return str(cluster.volume(volume)["state"]["status"])


def test_a_volumes_life_through_kubectl_mayastor(cluster: TestCluster, kubectl: Kubectl) -> None:
    created = kubectl.ok("create", "volume", VOLUME, "--size", "32MiB", "--replicas", "3")
    assert created.out == f"volume {VOLUME} created: 32MiB, 3 thick replica(s), Online\n"
    volume = cluster.volume(VOLUME)
    assert volume["spec"]["size"] == 32 * MIB
    assert {r["node"] for r in volume["state"]["replica_topology"].values()} == {
        "node-1",
        "node-2",
        "node-3",
    }

    [row] = kubectl.ok("get", "volume", VOLUME).table()
    assert row == {
        "ID": VOLUME,
        "REPLICAS": "3",
        "TARGET-NODE": "<none>",
        "ACCESSIBILITY": "<none>",
        "STATUS": "Online",
        "SIZE": "32MiB",
        "THIN-PROVISIONED": "false",
        "ALLOCATED": "32MiB",
    }
    assert kubectl.ok("get", "volume", VOLUME, "-o", "json").json() == cluster.volume(VOLUME)
    assert kubectl.ok("-o", "yaml", "get", "volume", VOLUME).yaml() == cluster.volume(VOLUME)

    published = kubectl.ok("publish", "volume", VOLUME, "--frontend-node", "app-1")
    uri = cluster.volume(VOLUME)["state"]["target"]["deviceUri"]
    assert published.out == f"{uri}\n"
    assert uri.startswith("nvmf://127.0.0.1:")
    assert uri.endswith(f"/nqn.2019-05.io.openebs:{VOLUME}")
    [row] = kubectl.ok("get", "volumes").table()
    assert (row["TARGET-NODE"], row["ACCESSIBILITY"]) == (
        cluster.volume(VOLUME)["spec"]["target"]["node"],
        "nvmf",
    )

    topology = kubectl.ok("get", "volume-replica-topology", VOLUME).table()
    assert sorted(r["ID"] for r in topology) == sorted(volume["state"]["replica_topology"])
    assert {r["CHILD-STATUS"] for r in topology} == {"Online"}
    assert {r["CAPACITY"] for r in topology} == {"32MiB"}

    scaled = kubectl.ok("scale", "volume", VOLUME, "2")
    assert scaled.out.startswith(f"volume {VOLUME} scaled to 2 replica(s)")
    assert len(kubectl.ok("get", "volume-replica-topology", VOLUME).table()) == 2
    kept = set(cluster.volume(VOLUME)["state"]["replica_topology"])

    kubectl.ok("scale", "volume", VOLUME, "3")
    wait_for(lambda: status_of(cluster, VOLUME) == "Online", "the third replica rebuilt", 60)
    topology = kubectl.ok("get", "volume-replica-topology", VOLUME, "-o", "json").json()
    assert len(topology) == 3
    [added] = set(topology) - kept

    history = kubectl.ok("get", "rebuild-history", VOLUME).table()
    assert history, "a rebuild of the added replica"
    assert history[0]["DST"] == added
    assert history[0]["SRC"] in kept
    assert (history[0]["STATE"], history[0]["TOTAL"]) == ("Completed", "32MiB")
    assert kubectl.ok("get", "rebuild-history", VOLUME, "-o", "json").json() == (
        cluster.rest.get(f"/volumes/{VOLUME}/rebuild-history")
    )

    assert kubectl.ok("unpublish", "volume", VOLUME).out == f"volume {VOLUME} unpublished\n"
    assert "target" not in cluster.volume(VOLUME)["spec"]

    assert kubectl.ok("delete", "volume", VOLUME).out == f"volume {VOLUME} deleted\n"
    assert cluster.rest.call("GET", f"/volumes/{VOLUME}")[0] == 404
    assert cluster.rest.get("/replicas") == []
    gone = kubectl.refused("get", "volume", VOLUME)
    assert gone.err == f"error: NotFound: volume {VOLUME} not found\n"


def test_create_volume_without_an_id_makes_one_and_says_which(
    cluster: TestCluster, kubectl: Kubectl
) -> None:
    created = kubectl.ok("create", "volume", "--size", "8MiB", "--replicas", "1", "-o", "json")
    volume_id = created.json()["spec"]["uuid"]
    assert uuid.UUID(volume_id)
    assert cluster.volume(volume_id)["spec"]["num_replicas"] == 1


def test_create_volume_sends_thin_self_heal_and_labels(
    cluster: TestCluster, kubectl: Kubectl
) -> None:
    kubectl.ok(
        "create", "volume", VOLUME, "--size", "16MiB", "--replicas", "2", "--thin",
        "--no-self-heal", "--label", "app=db",
    )  # fmt: skip
    spec = cluster.volume(VOLUME)["spec"]
    assert (spec["thin"], spec["policy"], spec["labels"]) == (
        True,
        {"self_heal": False},
        {"app": "db"},
    )
    [row] = kubectl.ok("get", "volumes").table()
    assert (row["THIN-PROVISIONED"], row["ALLOCATED"]) == ("true", "0B")


def test_a_volume_is_placed_only_in_pools_with_the_pool_label_asked_for(
    cluster: TestCluster, kubectl: Kubectl
) -> None:
    for pool in ("pool-node-1", "pool-node-3"):
        kubectl.ok("label", "pool", pool, "tier=fast")
    refused = kubectl.refused(
        "create", "volume", "--size", "8MiB", "--replicas", "3", "--pool-label", "tier=fast"
    )
    assert refused.err.startswith("error: FailedPrecondition: not enough suitable pools")
    kubectl.ok(
        "create", "volume", VOLUME, "--size", "8MiB", "--replicas", "2", "--pool-label", "tier"
    )
    topology = kubectl.ok("get", "volume-replica-topology", VOLUME).table()
    assert sorted(r["POOL"] for r in topology) == ["pool-node-1", "pool-node-3"]


def test_a_volume_is_placed_only_on_nodes_with_the_node_label_asked_for(
    cluster: TestCluster, kubectl: Kubectl
) -> None:
    kubectl.ok("label", "node", "node-2", "zone=b")
    kubectl.ok(
        "create", "volume", VOLUME, "--size", "8MiB", "--replicas", "1", "--node-label", "zone=b"
    )
    [row] = kubectl.ok("get", "volume-replica-topology", VOLUME).table()
    assert row["NODE"] == "node-2"


def test_publish_puts_the_target_on_the_node_asked_for(
    cluster: TestCluster, kubectl: Kubectl
) -> None:
    kubectl.ok("create", "volume", VOLUME, "--size", "8MiB", "--replicas", "3")
    kubectl.ok("publish", "volume", VOLUME, "--node", "node-2", "--frontend-node", "app-1")
    target = cluster.volume(VOLUME)["spec"]["target"]
    assert target["node"] == "node-2"
    assert [f["name"] for f in target["frontend_nodes"]] == ["app-1"]
    [row] = kubectl.ok("get", "volumes").table()
    assert row["TARGET-NODE"] == "node-2"


def test_every_volumes_replica_topology_is_listed_as_a_tree(
    cluster: TestCluster, kubectl: Kubectl
) -> None:
    second = str(uuid.UUID(int=0xBEEF))
    kubectl.ok("create", "volume", VOLUME, "--size", "8MiB", "--replicas", "3")
    kubectl.ok("create", "volume", second, "--size", "8MiB", "--replicas", "2")
    rows = kubectl.ok("get", "volume-replica-topologies").table()
    assert [r["VOLUME-ID"] for r in rows] == [second, "└─", VOLUME, "├─", "└─"]
    as_json = kubectl.ok("get", "volume-replica-topologies", "-o", "json").json()
    assert as_json == {v: cluster.volume(v)["state"]["replica_topology"] for v in (second, VOLUME)}


def test_scale_beyond_the_nodes_there_are_is_refused(
    cluster: TestCluster, kubectl: Kubectl
) -> None:
    kubectl.ok("create", "volume", VOLUME, "--size", "8MiB", "--replicas", "3")
    refused = kubectl.refused("scale", "volume", VOLUME, "4")
    assert refused.err.startswith("error: FailedPrecondition: ")
    assert cluster.volume(VOLUME)["spec"]["num_replicas"] == 3


def test_a_volume_larger_than_any_pool_is_refused(cluster: TestCluster, kubectl: Kubectl) -> None:
    refused = kubectl.refused("create", "volume", "--size", "1GiB", "--replicas", "1")
    assert refused.err.startswith("error: FailedPrecondition: ")
    assert cluster.rest.get("/volumes")["entries"] == []
