"""The DiskPool operator between an emulated Kubernetes API and a real control plane.

Everything but the Kubernetes API server is real: the core agent and two io-engines on
loopback, pools on sparse files, and the ``mayastor-operator-diskpool`` command. The
DiskPools are created and deleted through the API as kubectl would; what happened is
read back from the resources, their Events, the REST API and the io-engines themselves.
"""

from __future__ import annotations

import time
import uuid

import pytest

from tests.integration.operator.conftest import OperatorEnv, OperatorProcess
from tests.support.k8s_access import OPERATOR, Grant
from tests.support.polling import wait_for

pytestmark = pytest.mark.slow


def test_a_new_diskpool_creates_its_pool_on_the_node_and_reports_it_online_with_its_capacity(
    env: OperatorEnv,
) -> None:
    disk = env.disk("dp-new")
    env.create(env.diskpool("dp-new", "node-1", [str(disk)], labels={"tier": "fast"}))

    status = env.wait_status("dp-new", cr_state="Created", pool_status="Online")

    code, pool = env.rest_pool("dp-new")
    assert code == 200
    assert pool["spec"]["node"] == "node-1"
    assert pool["spec"]["disks"] == [str(disk)]
    assert pool["spec"]["labels"] == {"tier": "fast"}
    assert "dp-new" in env.engine_pools("node-1")
    assert status["capacity"] == pool["state"]["capacity"] > 0
    assert status["used"] == pool["state"]["used"]
    assert status["available"] == status["capacity"] - status["used"]
    assert status["message"] == ""
    obj = env.get("dp-new")
    assert obj is not None
    assert obj["metadata"]["finalizers"] == ["openebs.io/diskpool-protection"]
    [created] = env.events("dp-new", "Created")
    assert created["type"] == "Normal"
    assert f"on node node-1 over {disk}" in created["message"]

    # The pool's labels follow spec.topology.labelled.
    reply = env.api.patch(
        "openebs.io/v1beta2",
        "diskpools",
        "dp-new",
        {"spec": {"topology": {"labelled": {"tier": "slow", "zone": "a"}}}},
    )
    assert reply.status_code == 200, reply.text
    wait_for(
        lambda: env.rest_pool("dp-new")[1]["spec"]["labels"] == {"tier": "slow", "zone": "a"},
        "pool labels tier=slow, zone=a",
        30,
    )
    env.delete("dp-new")
    env.wait_gone("dp-new")


def test_deleting_a_diskpool_destroys_its_pool_and_removes_the_finalizer(
    env: OperatorEnv,
) -> None:
    disk = env.disk("dp-delete")
    env.create(env.diskpool("dp-delete", "node-2", [str(disk)]))
    env.wait_status("dp-delete", cr_state="Created", pool_status="Online")
    assert "dp-delete" in env.engine_pools("node-2")

    env.delete("dp-delete")

    env.wait_gone("dp-delete")
    assert env.rest_pool("dp-delete")[0] == 404
    assert "dp-delete" not in env.engine_pools("node-2")
    [deleted] = env.events("dp-delete", "Deleted")
    assert deleted["message"] == "pool dp-delete destroyed on node node-2"


def test_deletion_is_refused_while_a_volume_has_a_replica_on_the_pool_and_ends_once_it_is_gone(
    env: OperatorEnv,
) -> None:
    disk = env.disk("dp-busy")
    env.create(env.diskpool("dp-busy", "node-1", [str(disk)], labels={"only": "busy"}))
    env.wait_status("dp-busy", cr_state="Created", pool_status="Online")
    volume = str(uuid.uuid4())
    env.rest.put(
        f"/volumes/{volume}",
        {
            "size": 8 << 20,
            "replicas": 1,
            "thin": False,
            "policy": {"self_heal": True},
            "topology": {"pool_topology": {"labelled": {"inclusion": {"only": "busy"}}}},
        },
    )
    replicas = env.rest.get(f"/volumes/{volume}")["state"]["replica_topology"]
    assert [r["pool"] for r in replicas.values()] == ["dp-busy"]

    env.delete("dp-busy")

    status = env.wait_status("dp-busy", cr_state="Terminating")
    wait_for(lambda: env.events("dp-busy", "DeleteRefused"), "a DeleteRefused Event", 30)
    status = env.status("dp-busy")
    assert "not destroyed" in status["message"]
    assert volume in status["message"]
    [refused] = env.events("dp-busy", "DeleteRefused")
    assert refused["type"] == "Warning"
    assert volume in refused["message"]
    obj = env.get("dp-busy")
    assert obj is not None
    assert obj["metadata"].get("deletionTimestamp")
    assert obj["metadata"]["finalizers"] == ["openebs.io/diskpool-protection"]
    code, pool = env.rest_pool("dp-busy")
    assert code == 200
    assert pool["state"]["status"] == "Online"
    assert "dp-busy" in env.engine_pools("node-1")
    time.sleep(3)  # refused again at every retry (1 s apart), but said once
    assert len(env.events("dp-busy", "DeleteRefused")) == 1

    env.rest.delete(f"/volumes/{volume}")

    env.wait_gone("dp-busy")
    assert env.rest_pool("dp-busy")[0] == 404
    assert "dp-busy" not in env.engine_pools("node-1")


def test_a_missing_disk_is_an_event_and_a_status_and_creates_nothing_until_the_disk_is_there(
    env: OperatorEnv,
) -> None:
    disk = env.cluster.workdir / "dp-later.img"
    env.create(env.diskpool("dp-later", "node-2", [str(disk)]))

    wait_for(lambda: env.events("dp-later", "CreateFailed"), "a CreateFailed Event", 30)
    status = env.status("dp-later")
    assert status["cr_state"] == "Creating"
    assert status["pool_status"] == "Unknown"
    assert str(disk) in status["message"]
    assert "no such file" in status["message"]
    assert env.rest_pool("dp-later")[0] == 404
    assert "dp-later" not in env.engine_pools("node-2")
    specs = env.rest.get("/specs")
    assert all(p["id"] != "dp-later" for p in specs.get("pools", []))
    time.sleep(3)  # tried again every second, reported once; the operator runs on
    assert len(env.events("dp-later", "CreateFailed")) == 1
    assert env.operator.running

    env.disk("dp-later")

    status = env.wait_status("dp-later", cr_state="Created", pool_status="Online")
    assert status["message"] == ""
    env.delete("dp-later")
    env.wait_gone("dp-later")


def test_a_disk_holding_another_pool_is_refused_and_that_pool_is_left_alone(
    env: OperatorEnv,
) -> None:
    taken = str(env.cluster.disk("node-1"))
    env.create(env.diskpool("dp-taken", "node-1", [taken]))

    wait_for(lambda: env.events("dp-taken", "CreateFailed"), "a CreateFailed Event", 30)
    status = env.status("dp-taken")
    assert status["cr_state"] == "Creating"
    assert "pool-node-1" in status["message"]
    assert env.rest_pool("dp-taken")[0] == 404

    env.delete("dp-taken")

    env.wait_gone("dp-taken")
    code, pool = env.rest_pool("pool-node-1")
    assert code == 200
    assert pool["state"]["status"] == "Online"


def test_a_spec_the_schema_refuses_is_reported_and_never_stops_the_operator(
    env: OperatorEnv,
) -> None:
    bad = env.diskpool("dp-two", "node-1", [str(env.disk("dp-two-a")), str(env.disk("dp-two-b"))])
    assert env.api.create(bad, "diskpools").status_code == 422  # the API server refuses it

    with env.api.unchecked():  # as an API server with an older CRD would take it
        env.create(bad)

    wait_for(lambda: env.events("dp-two", "InvalidSpec"), "an InvalidSpec Event", 30)
    status = env.status("dp-two")
    assert status["cr_state"] == "Creating"
    assert "spec.disks: must hold exactly one disk, not 2" in status["message"]
    assert env.rest_pool("dp-two")[0] == 404
    assert env.operator.running
    env.delete("dp-two")
    env.wait_gone("dp-two")


def test_the_status_follows_the_pool_while_its_node_is_away_and_back(own_env: OperatorEnv) -> None:
    disk = own_env.disk("dp-away")
    own_env.create(own_env.diskpool("dp-away", "node-2", [str(disk)]))
    online = own_env.wait_status("dp-away", cr_state="Created", pool_status="Online")

    own_env.cluster.engines["node-2"].kill()
    try:
        away = own_env.wait_status("dp-away", pool_status="Unknown")
        assert away["cr_state"] == "Created"
        assert away["capacity"] == online["capacity"]  # last seen, not zero
        wait_for(lambda: own_env.events("dp-away", "PoolUnknown"), "a PoolUnknown Event", 30)
    finally:
        own_env.cluster.add_engine("node-2")

    own_env.wait_status("dp-away", pool_status="Online", timeout=60)
    wait_for(lambda: own_env.events("dp-away", "PoolOnline"), "a PoolOnline Event", 30)
    own_env.delete("dp-away")
    own_env.wait_gone("dp-away")


def test_restarts_of_the_operator_and_of_the_core_agent_lose_nothing(own_env: OperatorEnv) -> None:
    own_env.operator.kill()
    disk = own_env.disk("dp-restart")
    own_env.create(own_env.diskpool("dp-restart", "node-1", [str(disk)]))
    own_env.operator.start()
    own_env.wait_status("dp-restart", cr_state="Created", pool_status="Online")

    own_env.cluster.core.kill()
    try:
        away = own_env.wait_status("dp-restart", pool_status="Unknown")
        assert "control plane did not answer" in away["message"]
        own_env.delete("dp-restart")
        wait_for(lambda: own_env.events("dp-restart", "DeletePending"), "a DeletePending Event", 30)
        assert own_env.get("dp-restart") is not None  # the finalizer holds it
    finally:
        own_env.cluster.core.start()

    own_env.wait_gone("dp-restart", timeout=60)
    assert own_env.rest_pool("dp-restart")[0] == 404
    assert "dp-restart" not in own_env.engine_pools("node-1")


def test_the_operator_calls_only_what_its_role_grants(env: OperatorEnv) -> None:
    """The chart's Role for the operator is tests.support.k8s_access.OPERATOR
    (tests/deploy/test_rbac.py); here is what the operator really asks of the API."""
    disk = env.disk("dp-rbac")
    env.create(env.diskpool("dp-rbac", "node-2", [str(disk)]))
    env.wait_status("dp-rbac", cr_state="Created")
    env.delete("dp-rbac")
    env.wait_gone("dp-rbac")

    used = {
        Grant(call.group, call.resource, call.verb, call.namespace is not None)
        for call in env.api.calls(user_agent="kopf/")
    }
    assert all(call.namespace in (None, "mayastor") for call in env.api.calls("kopf/"))
    assert used == set(OPERATOR)


def test_a_stopped_operator_exits_cleanly(env: OperatorEnv) -> None:
    spare = OperatorProcess(
        env.workdir / "spare", rest_url=env.cluster.core.rest_url, kubeconfig=env.api.kubeconfig
    )
    spare.start()
    assert spare.stop(timeout=30) == 0
