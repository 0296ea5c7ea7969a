"""Pools and nodes through REST: registration, liveness, pools that come back, labels.

The registration tests run the core agent on a real etcd, as a cluster would.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from mayastor.cluster.processes import EtcdProcess
from tests.support.cluster import TestCluster
from tests.support.polling import wait_for

pytestmark = pytest.mark.slow

MIB = 1 << 20
NODE_DEADLINE = 10.0


def pool_status(cluster: TestCluster, pool: str) -> str | None:
    status, body = cluster.rest.call("GET", f"/pools/{pool}")
    return body["state"]["status"] if status == 200 and "state" in body else None


def test_io_engines_register_and_a_killed_one_is_offline_within_the_deadline(
    etcd: EtcdProcess, make_cluster: Callable[..., TestCluster]
) -> None:
    cluster = make_cluster(store=etcd.url)
    nodes = cluster.rest.get("/nodes")
    assert [(n["id"], n["state"]["status"]) for n in nodes] == [
        ("node-1", "Online"),
        ("node-2", "Online"),
        ("node-3", "Online"),
    ]
    assert nodes[0]["spec"]["node_nqn"] == "nqn.2019-05.io.openebs:node-name:node-1"
    cluster.engines["node-2"].kill()
    killed = time.monotonic()
    wait_for(lambda: cluster.node_status("node-2") == "Offline", "node-2 offline", 30)
    assert time.monotonic() - killed <= NODE_DEADLINE + 2
    assert pool_status(cluster, "pool-node-2") == "Unknown"


def test_a_restarted_io_engine_is_online_again_with_its_pool(
    etcd: EtcdProcess, make_cluster: Callable[..., TestCluster]
) -> None:
    cluster = make_cluster(store=etcd.url)
    cluster.rest.put(
        f"/volumes/{uuid.uuid4()}",
        {"size": 8 * MIB, "replicas": 3, "thin": False, "policy": {"self_heal": True}},
    )
    engine = cluster.engines["node-3"]
    engine.kill()
    wait_for(lambda: cluster.node_status("node-3") == "Offline", "node-3 offline", 30)
    engine.start()
    wait_for(lambda: cluster.node_status("node-3") == "Online", "node-3 online", 30)
    wait_for(lambda: pool_status(cluster, "pool-node-3") == "Online", "its pool imported", 30)
    replicas = cluster.rest.get("/nodes/node-3/replicas")
    assert len(replicas) == 1
    assert replicas[0]["state"] == "Online"


def test_a_stopped_io_engine_says_goodbye_and_is_offline_at_once(cluster: TestCluster) -> None:
    cluster.engines["node-1"].stop()
    assert cluster.node_status("node-1") == "Offline"


def test_the_same_pool_again_is_accepted_and_another_disk_is_a_conflict(
    cluster: TestCluster, tmp_path: Path
) -> None:
    again = cluster.create_pool("node-1")
    assert again["spec"]["status"] == "Created"
    other = tmp_path / "other.img"
    other.write_bytes(b"")
    status, body = cluster.rest.call(
        "PUT", "/nodes/node-1/pools/pool-node-1", {"disks": [str(other)]}
    )
    assert (status, body["kind"]) == (409, "Conflict")


def test_a_pool_on_a_disk_holding_another_pool_is_refused_and_nothing_is_kept(
    cluster: TestCluster,
) -> None:
    disk = str(cluster.disk("node-1"))
    status, body = cluster.rest.call("PUT", "/nodes/node-1/pools/intruder", {"disks": [disk]})
    assert 400 <= status < 500, body
    assert "pool-node-1" in body["message"]
    assert cluster.rest.call("GET", "/pools/intruder")[0] == 404
    assert pool_status(cluster, "pool-node-1") == "Online"


def test_pools_on_unknown_or_offline_nodes_and_bad_names_are_refused(
    cluster: TestCluster,
) -> None:
    body = {"disks": [str(cluster.disk("node-1"))]}
    status, reply = cluster.rest.call("PUT", "/nodes/nowhere/pools/p", body)
    assert (status, reply["kind"]) == (404, "NotFound")
    status, reply = cluster.rest.call("PUT", "/nodes/node-1/pools/bad name!", body)
    assert (status, reply["kind"]) == (400, "InvalidArgument")
    cluster.engines["node-2"].kill()
    wait_for(lambda: cluster.node_status("node-2") == "Offline", "node-2 offline", 30)
    status, reply = cluster.rest.call("PUT", "/nodes/node-2/pools/p2", body)
    assert (status, reply["kind"]) == (503, "Unavailable")
    assert cluster.rest.call("GET", "/pools/p2")[0] == 404


def test_a_pool_holding_replicas_cannot_be_deleted_until_they_are_gone(
    cluster: TestCluster,
) -> None:
    volume = str(uuid.uuid4())
    cluster.rest.put(
        f"/volumes/{volume}",
        {"size": 8 * MIB, "replicas": 3, "thin": False, "policy": {"self_heal": True}},
    )
    status, body = cluster.rest.call("DELETE", "/pools/pool-node-1")
    assert (status, body["kind"]) == (409, "InUse")
    assert volume in body["message"]
    assert pool_status(cluster, "pool-node-1") == "Online"
    cluster.rest.delete(f"/volumes/{volume}")
    cluster.rest.delete("/nodes/node-1/pools/pool-node-1")
    assert cluster.rest.call("GET", "/pools/pool-node-1")[0] == 404
    listed = cluster.engines["node-1"].client("pool", "list", check=True).stdout
    assert "pool-node-1" not in listed


def test_labels_on_nodes_and_pools_are_kept_and_changed_only_with_overwrite(
    cluster: TestCluster,
) -> None:
    node = cluster.rest.put("/nodes/node-1/label/zone=a")
    assert node["spec"]["labels"] == {"zone": "a"}
    status, body = cluster.rest.call("PUT", "/nodes/node-1/label/zone=b")
    assert (status, body["kind"]) == (409, "Conflict")
    assert cluster.rest.put("/nodes/node-1/label/zone=b", overwrite="true")["spec"]["labels"] == {
        "zone": "b"
    }
    assert cluster.rest.delete("/nodes/node-1/label/zone")["spec"]["labels"] == {}
    pool = cluster.rest.put("/pools/pool-node-2/label/class=fast")
    assert pool["spec"]["labels"] == {"class": "fast"}
    assert cluster.rest.delete("/pools/pool-node-2/label/class")["spec"]["labels"] == {}
    status, body = cluster.rest.call("PUT", "/nodes/node-1/label/bad key=x")
    assert status == 400


def test_labels_survive_a_restart_of_the_core_agent(cluster: TestCluster) -> None:
    cluster.rest.put("/nodes/node-1/label/zone=a")
    cluster.rest.put("/nodes/node-1/cordon/maintenance")
    cluster.core.stop()
    cluster.core.start()
    node = cluster.rest.get("/nodes/node-1")
    assert node["spec"]["labels"] == {"zone": "a"}
    assert node["spec"]["cordondrainstate"]["cordonedstate"]["cordonlabels"] == ["maintenance"]
