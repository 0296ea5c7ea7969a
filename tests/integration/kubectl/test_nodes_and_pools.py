"""Nodes and pools through kubectl-mayastor on a real cluster: get, label, cordon,
create and delete pools."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.kubectl.conftest import Kubectl
from tests.support.cluster import TestCluster

pytestmark = pytest.mark.slow

MIB = 1 << 20
VOLUME = str(uuid.UUID(int=0xD0D0))


def test_get_nodes_lists_every_node_with_its_endpoint_status_and_version(
    cluster: TestCluster, kubectl: Kubectl
) -> None:
    rows = kubectl.ok("get", "nodes").table()
    assert rows == [
        {
            "ID": name,
            "GRPC ENDPOINT": engine.endpoint,
            "STATUS": "Online",
            "CORDONED": "false",
            "VERSION": "0.1.0",
        }
        for name, engine in sorted(cluster.engines.items())
    ]


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_get_node_in_json_or_yaml_is_the_apis_node(
    cluster: TestCluster, kubectl: Kubectl, fmt: str
) -> None:
    run = kubectl.ok("-o", fmt, "get", "node", "node-2")
    assert (run.json() if fmt == "json" else run.yaml()) == cluster.rest.get("/nodes/node-2")


def test_get_nodes_in_json_is_the_apis_list(cluster: TestCluster, kubectl: Kubectl) -> None:
    assert kubectl.ok("get", "nodes", "-o", "json").json() == cluster.rest.get("/nodes")


def test_get_pools_shows_capacity_and_use_in_binary_units(
    cluster: TestCluster, kubectl: Kubectl
) -> None:
    cluster.rest.put(
        f"/volumes/{VOLUME}",
        {"size": 32 * MIB, "replicas": 1, "thin": False, "policy": {"self_heal": True}},
    )
    rows = {r["ID"]: r for r in kubectl.ok("get", "pools").table()}
    assert sorted(rows) == ["pool-node-1", "pool-node-2", "pool-node-3"]
    pool = cluster.rest.get("/pools/pool-node-1")["state"]
    assert rows["pool-node-1"]["DISKS"] == ", ".join(pool["disks"])
    assert rows["pool-node-1"]["CAPACITY"] == "252MiB" == f"{pool['capacity'] // MIB}MiB"
    assert (rows["pool-node-1"]["MANAGED"], rows["pool-node-1"]["NODE"]) == ("true", "node-1")
    used = {r["ALLOCATED"] for r in rows.values()}
    assert used == {"0B", "32MiB"}
    [holder] = [r for r in rows.values() if r["ALLOCATED"] == "32MiB"]
    assert (holder["AVAILABLE"], holder["COMMITTED"]) == ("220MiB", "32MiB")


def test_get_pools_of_one_node(cluster: TestCluster, kubectl: Kubectl) -> None:
    rows = kubectl.ok("get", "pools", "--node", "node-3").table()
    assert [r["ID"] for r in rows] == ["pool-node-3"]


def test_get_pool_in_yaml_carries_exact_bytes(cluster: TestCluster, kubectl: Kubectl) -> None:
    pool = kubectl.ok("get", "pool", "pool-node-2", "-o", "yaml").yaml()
    assert pool == cluster.rest.get("/pools/pool-node-2")
    assert pool["state"]["capacity"] == 252 * MIB


def test_create_pool_then_delete_pool(cluster: TestCluster, kubectl: Kubectl) -> None:
    disk = cluster.workdir / "extra.img"
    with open(disk, "wb") as fh:
        fh.truncate(64 * MIB)
    created = kubectl.ok(
        "create", "pool", "pool-extra", "--node", "node-1", "--disk", str(disk),
        "--label", "tier=slow",
    )  # fmt: skip
    assert created.out == "pool pool-extra created on node node-1 (Online)\n"
    [row] = kubectl.ok("get", "pool", "pool-extra").table()
    assert (row["NODE"], row["STATUS"], row["CAPACITY"], row["DISKS"]) == (
        "node-1",
        "Online",
        "60MiB",
        str(disk),
    )
    assert cluster.rest.get("/pools/pool-extra")["spec"]["labels"] == {"tier": "slow"}

    assert kubectl.ok("delete", "pool", "pool-extra").out == "pool pool-extra deleted\n"
    assert kubectl.refused("get", "pool", "pool-extra").err.startswith("error: NotFound: ")


def test_create_pool_on_a_missing_disk_is_refused(cluster: TestCluster, kubectl: Kubectl) -> None:
    refused = kubectl.refused(
        "create", "pool", "pool-x", "--node", "node-1", "--disk", "/nonexistent/disk"
    )
    assert "/nonexistent/disk" in refused.err
    assert cluster.rest.call("GET", "/pools/pool-x")[0] == 404


def test_delete_pool_that_holds_a_replica_is_refused_as_in_use(
    cluster: TestCluster, kubectl: Kubectl
) -> None:
    kubectl.ok("create", "volume", VOLUME, "--size", "8MiB", "--replicas", "3")
    refused = kubectl.refused("delete", "pool", "pool-node-1")
    assert refused.err.startswith("error: InUse: pool pool-node-1 holds 1 replica(s)")


def test_label_node_sets_and_removes_a_label(cluster: TestCluster, kubectl: Kubectl) -> None:
    labelled = kubectl.ok("label", "node", "node-1", "zone=a", "tier=fast")
    assert labelled.out == "node node-1 labelled; its labels: tier=fast, zone=a\n"
    assert cluster.rest.get("/nodes/node-1")["spec"]["labels"] == {"zone": "a", "tier": "fast"}
    unlabelled = kubectl.ok("label", "node", "node-1", "zone-", "-o", "json")
    assert unlabelled.json()["spec"]["labels"] == {"tier": "fast"}
    assert cluster.rest.get("/nodes/node-1")["spec"]["labels"] == {"tier": "fast"}


def test_label_node_with_another_value_needs_overwrite(
    cluster: TestCluster, kubectl: Kubectl
) -> None:
    kubectl.ok("label", "node", "node-1", "zone=a")
    refused = kubectl.refused("label", "node", "node-1", "zone=b")
    assert refused.err.startswith("error: Conflict: ")
    assert cluster.rest.get("/nodes/node-1")["spec"]["labels"] == {"zone": "a"}
    kubectl.ok("label", "node", "node-1", "zone=b", "--overwrite")
    assert cluster.rest.get("/nodes/node-1")["spec"]["labels"] == {"zone": "b"}


def test_label_pool_sets_and_removes_a_label(cluster: TestCluster, kubectl: Kubectl) -> None:
    labelled = kubectl.ok("label", "pool", "pool-node-2", "zone=b", "-o", "yaml")
    assert labelled.yaml()["spec"]["labels"] == {"zone": "b"}
    assert cluster.rest.get("/pools/pool-node-2")["spec"]["labels"] == {"zone": "b"}
    unlabelled = kubectl.ok("label", "pool", "pool-node-2", "zone-")
    assert unlabelled.out == "pool pool-node-2 labelled; its labels: <none>\n"
    assert cluster.rest.get("/pools/pool-node-2")["spec"]["labels"] == {}


def test_label_an_unknown_node_is_refused_as_not_found(
    cluster: TestCluster, kubectl: Kubectl
) -> None:
    assert kubectl.refused("label", "node", "node-9", "a=b").err.startswith("error: NotFound: ")


def test_a_label_key_with_a_dns_prefix_can_be_set_and_removed(
    cluster: TestCluster, kubectl: Kubectl
) -> None:
    kubectl.ok("label", "node", "node-1", "openebs.io/zone=a")
    assert cluster.rest.get("/nodes/node-1")["spec"]["labels"] == {"openebs.io/zone": "a"}
    kubectl.ok("label", "pool", "pool-node-1", "openebs.io/class=fast")
    assert cluster.rest.get("/pools/pool-node-1")["spec"]["labels"] == {"openebs.io/class": "fast"}
    kubectl.ok("label", "node", "node-1", "openebs.io/zone-")
    assert cluster.rest.get("/nodes/node-1")["spec"]["labels"] == {}


def test_a_cordoned_node_gets_no_new_replica(cluster: TestCluster, kubectl: Kubectl) -> None:
    assert kubectl.ok("cordon", "node", "node-1", "maintenance").out == (
        "node node-1 cordoned; its cordon labels: maintenance\n"
    )
    kubectl.ok("cordon", "node", "node-2", "maintenance")
    rows = {r["ID"]: r["CORDONED"] for r in kubectl.ok("get", "nodes").table()}
    assert rows == {
        "node-1": "true (maintenance)",
        "node-2": "true (maintenance)",
        "node-3": "false",
    }

    refused = kubectl.refused("create", "volume", VOLUME, "--size", "8MiB", "--replicas", "3")
    assert refused.err.startswith("error: FailedPrecondition: not enough suitable pools")
    assert "node node-1 is cordoned" in refused.err
    assert cluster.rest.call("GET", f"/volumes/{VOLUME}")[0] == 404

    kubectl.ok("create", "volume", VOLUME, "--size", "8MiB", "--replicas", "1")
    [row] = kubectl.ok("get", "volume-replica-topology", VOLUME).table()
    assert row["NODE"] == "node-3"


def test_uncordon_makes_a_node_take_replicas_again(cluster: TestCluster, kubectl: Kubectl) -> None:
    for node in ("node-1", "node-2"):
        kubectl.ok("cordon", "node", node, "maintenance")
    for node in ("node-1", "node-2"):
        assert kubectl.ok("uncordon", "node", node, "maintenance").out == (
            f"node {node} uncordoned\n"
        )
    assert {r["CORDONED"] for r in kubectl.ok("get", "nodes").table()} == {"false"}
    kubectl.ok("create", "volume", VOLUME, "--size", "8MiB", "--replicas", "3")


def test_a_node_with_two_cordons_stays_cordoned_until_both_are_removed(
    cluster: TestCluster, kubectl: Kubectl
) -> None:
    kubectl.ok("cordon", "node", "node-1", "disk")
    kubectl.ok("cordon", "node", "node-1", "kernel")
    assert kubectl.ok("uncordon", "node", "node-1", "disk").out == (
        "cordon disk removed; node node-1 stays cordoned by: kernel\n"
    )
    [row] = kubectl.ok("get", "node", "node-1").table()
    assert row["CORDONED"] == "true (kernel)"


def test_uncordon_with_a_label_the_node_lacks_is_refused(
    cluster: TestCluster, kubectl: Kubectl
) -> None:
    refused = kubectl.refused("uncordon", "node", "node-1", "never-set")
    assert refused.err.startswith("error: NotFound: ")
