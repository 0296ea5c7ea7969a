"""A volume's life through the REST API, on three real io-engines and a core agent.

Data goes in and out through our initiator connected as the frontend node's host NQN;
at the end of the tests that change replicas, the io-engines are stopped and every
replica is read from its pool's disk to show the replicas hold the same bytes.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest

from mayastor.errors import ConnectRefused
from tests.support.cluster import TestCluster
from tests.support.offline_pool import replica_images
from tests.support.polling import wait_for
from tests.support.volume_io import connect_error, frontend_nqn, read_at, size_of, write_at

pytestmark = pytest.mark.slow

VOLUME = str(uuid.UUID(int=0xA11CE))
MIB = 1 << 20
APP = frontend_nqn("app-1")


def create(cluster: TestCluster, replicas: int = 3, size: int = 32 * MIB, **extra: Any) -> Any:
    body = {"size": size, "replicas": replicas, "thin": False, "policy": {"self_heal": True}}
    body.update(extra)
    return cluster.rest.put(f"/volumes/{VOLUME}", body)


def publish(cluster: TestCluster, node: str | None = None, frontend: str = "app-1") -> str:
    body: dict[str, Any] = {"protocol": "nvmf", "publish_context": {}, "frontend_node": frontend}
    if node is not None:
        body["node"] = node
    volume = cluster.rest.put(f"/volumes/{VOLUME}/target", body)
    return str(volume["state"]["target"]["deviceUri"])


def status(cluster: TestCluster) -> str:
    return str(cluster.volume(VOLUME)["state"]["status"])


def engine_objects(cluster: TestCluster) -> dict[str, tuple[list[str], list[str]]]:
    """Replicas and nexuses each io-engine lists now (straight from its gRPC API)."""
    found = {}
    for name, engine in cluster.engines.items():
        replicas = [r["uuid"] for r in _client_json(engine, "replica", "list")]
        nexuses = [n["uuid"] for n in _client_json(engine, "nexus", "list")]
        found[name] = (replicas, nexuses)
    return found


def _client_json(engine: Any, *args: str) -> list[dict[str, Any]]:
    import json

    out = engine.client("-o", "json", *args, check=True).stdout
    return list(json.loads(out)) if out.strip() else []


def assert_replicas_identical(cluster: TestCluster, size: int) -> None:
    replica_ids = set(cluster.volume(VOLUME)["state"]["replica_topology"])
    cluster.close()
    images = {}
    for name in cluster.engines:
        for replica, data in replica_images(cluster.disk(name)).items():
            if replica in replica_ids:
                images[replica] = data[:size]
    assert set(images) == replica_ids
    assert len(set(images.values())) == 1, "the replicas differ"


def test_replicas_go_to_three_different_nodes(cluster: TestCluster) -> None:
    created = create(cluster)
    assert created["spec"]["status"] == "Created"
    nodes = [r["node"] for r in created["state"]["replica_topology"].values()]
    assert sorted(nodes) == ["node-1", "node-2", "node-3"]
    assert created["state"]["status"] == "Online"


def test_the_same_create_again_succeeds_and_a_different_one_is_a_conflict(
    cluster: TestCluster,
) -> None:
    first = create(cluster)
    again = create(cluster)
    assert again["state"]["replica_topology"].keys() == first["state"]["replica_topology"].keys()
    status_code, body = cluster.rest.call(
        "PUT",
        f"/volumes/{VOLUME}",
        {"size": 64 * MIB, "replicas": 3, "thin": False, "policy": {"self_heal": True}},
    )
    assert status_code == 409
    assert body["kind"] == "Conflict"
    assert cluster.volume(VOLUME)["spec"]["size"] == 32 * MIB


def test_a_published_volume_takes_io_from_its_frontend_only(cluster: TestCluster) -> None:
    create(cluster)
    uri = publish(cluster)
    assert uri.endswith(f"nqn.2019-05.io.openebs:{VOLUME}")
    data = os.urandom(64 * 1024)
    write_at(uri, APP, 0, data)
    assert read_at(uri, APP, 0, len(data)) == data
    refused = connect_error(uri, frontend_nqn("app-2"))
    assert isinstance(refused, ConnectRefused)
    target = cluster.volume(VOLUME)["spec"]["target"]
    assert target["frontend_nodes"] == [{"name": "app-1", "nqn": APP}]


def test_publishing_twice_is_the_same_target(cluster: TestCluster) -> None:
    create(cluster)
    first = publish(cluster)
    nexus = cluster.volume(VOLUME)["spec"]["target"]["nexus"]
    assert publish(cluster) == first
    assert cluster.volume(VOLUME)["spec"]["target"]["nexus"] == nexus


def test_a_volume_published_again_on_another_node_still_holds_its_data(
    cluster: TestCluster,
) -> None:
    create(cluster)
    uri = publish(cluster, node="node-1")
    data = os.urandom(256 * 1024)
    write_at(uri, APP, 4 * MIB, data)
    cluster.rest.delete(f"/volumes/{VOLUME}/target")
    assert "target" not in cluster.volume(VOLUME)["spec"]
    moved = publish(cluster, node="node-2")
    assert f":{cluster.engines['node-2'].nexus_port}/" in moved
    assert read_at(moved, APP, 4 * MIB, len(data)) == data
    objects = engine_objects(cluster)
    assert objects["node-1"][1] == []
    assert len(objects["node-2"][1]) == 1


def test_publishing_on_another_node_moves_the_target(cluster: TestCluster) -> None:
    create(cluster)
    uri = publish(cluster, node="node-1")
    data = os.urandom(64 * 1024)
    write_at(uri, APP, 0, data)
    moved = publish(cluster, node="node-3")
    assert cluster.volume(VOLUME)["spec"]["target"]["node"] == "node-3"
    assert read_at(moved, APP, 0, len(data)) == data
    assert engine_objects(cluster)["node-1"][1] == []


def test_expanding_grows_the_replicas_and_the_published_volume(cluster: TestCluster) -> None:
    create(cluster)
    uri = publish(cluster)
    data = os.urandom(64 * 1024)
    write_at(uri, APP, 0, data)
    grown = cluster.rest.put(f"/volumes/{VOLUME}/size", {"size": 48 * MIB})
    assert grown["spec"]["size"] == 48 * MIB
    assert grown["state"]["target"]["size"] == 48 * MIB
    assert size_of(uri, APP) == 48 * MIB
    write_at(uri, APP, 47 * MIB, data)
    assert read_at(uri, APP, 0, len(data)) == data
    assert read_at(uri, APP, 47 * MIB, len(data)) == data
    status_code, body = cluster.rest.call("PUT", f"/volumes/{VOLUME}/size", {"size": 16 * MIB})
    assert (status_code, body["kind"]) == (400, "InvalidArgument")


def test_scaling_down_and_up_rebuilds_a_new_replica_identical_to_the_others(
    cluster: TestCluster,
) -> None:
    create(cluster)
    uri = publish(cluster, node="node-1")
    data = os.urandom(MIB)
    write_at(uri, APP, 2 * MIB, data)
    down = cluster.rest.put(f"/volumes/{VOLUME}/replica_count/2")
    assert down["spec"]["num_replicas"] == 2
    assert len(down["state"]["replica_topology"]) == 2
    assert "node-1" in {r["node"] for r in down["state"]["replica_topology"].values()}
    up = cluster.rest.put(f"/volumes/{VOLUME}/replica_count/3")
    assert len(up["state"]["replica_topology"]) == 3
    wait_for(lambda: status(cluster) == "Online", "the new replica rebuilt", 60)
    assert read_at(uri, APP, 2 * MIB, len(data)) == data
    assert_replicas_identical(cluster, 32 * MIB)


def test_scaling_to_zero_replicas_is_refused(cluster: TestCluster) -> None:
    create(cluster)
    status_code, body = cluster.rest.call("PUT", f"/volumes/{VOLUME}/replica_count/0")
    assert (status_code, body["kind"]) == (400, "InvalidArgument")
    assert len(cluster.volume(VOLUME)["state"]["replica_topology"]) == 3


def test_destroying_a_published_volume_leaves_nothing_on_any_io_engine(
    cluster: TestCluster,
) -> None:
    create(cluster)
    publish(cluster)
    cluster.rest.delete(f"/volumes/{VOLUME}")
    assert cluster.rest.call("GET", f"/volumes/{VOLUME}")[0] == 404
    assert engine_objects(cluster) == {name: ([], []) for name in cluster.engines}
    specs = cluster.rest.get("/specs")
    assert (specs["volumes"], specs["replicas"], specs["nexuses"]) == ([], [], [])


def test_a_volume_whose_replica_node_restarts_is_degraded_then_online_again(
    cluster: TestCluster,
) -> None:
    create(cluster)
    uri = publish(cluster, node="node-1")
    before = os.urandom(MIB)
    write_at(uri, APP, 0, before)
    victim = cluster.engines["node-3"]
    victim.kill()
    during = os.urandom(MIB)
    write_at(uri, APP, 8 * MIB, during)
    wait_for(lambda: status(cluster) == "Degraded", "the volume seen Degraded", 30)
    victim.start()
    wait_for(lambda: status(cluster) == "Online", "the volume Online again", 60)
    assert read_at(uri, APP, 0, MIB) == before
    assert read_at(uri, APP, 8 * MIB, MIB) == during
    history = cluster.rest.get(f"/volumes/{VOLUME}/rebuild-history")
    assert any(r["isPartial"] for r in history["records"])
    assert_replicas_identical(cluster, 32 * MIB)


def test_unpublishing_from_an_offline_node_needs_force(cluster: TestCluster) -> None:
    create(cluster)
    publish(cluster, node="node-2")
    cluster.engines["node-2"].kill()
    wait_for(lambda: cluster.node_status("node-2") == "Offline", "node-2 offline", 30)
    status_code, body = cluster.rest.call("DELETE", f"/volumes/{VOLUME}/target")
    assert (status_code, body["kind"]) == (503, "Unavailable")
    assert cluster.volume(VOLUME)["spec"]["target"]["node"] == "node-2"
    forced = cluster.rest.delete(f"/volumes/{VOLUME}/target", force="true")
    assert "target" not in forced["spec"]


def test_a_replica_that_missed_writes_is_not_trusted_when_the_target_moves(
    cluster: TestCluster,
) -> None:
    created = create(cluster, policy={"self_heal": False})
    uri = publish(cluster, node="node-1")
    victim = next(
        r for r, t in created["state"]["replica_topology"].items() if t["node"] == "node-3"
    )
    cluster.engines["node-3"].kill()
    missed = os.urandom(MIB)
    write_at(uri, APP, 4 * MIB, missed)
    wait_for(lambda: status(cluster) == "Degraded", "the child retired", 30)
    cluster.engines["node-3"].start()
    cluster.wait_nodes_online(["node-3"])
    cluster.rest.delete(f"/volumes/{VOLUME}/target")
    moved = publish(cluster, node="node-2")
    wait_for(lambda: status(cluster) == "Online", "the stale replica rebuilt", 60)
    assert cluster.volume(VOLUME)["spec"]["target"]["node"] == "node-2"
    records = cluster.rest.get(f"/volumes/{VOLUME}/rebuild-history")["records"]
    rebuilt = [r for r in records if victim in r["childUri"]]
    assert rebuilt, records
    assert not rebuilt[-1]["isPartial"], "a new nexus copies the stale replica in full"
    assert read_at(moved, APP, 4 * MIB, MIB) == missed
    assert_replicas_identical(cluster, 32 * MIB)
