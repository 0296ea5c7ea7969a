"""Target switch-over on real processes: a lost target node, an app node's failed path.

The volume's frontend is our own initiator here (the kernel's multipath is in the
interop tests); what these tests check is the control plane's side: the target moves
to another node with a new controller ID range under the same NQN and namespace, every
acknowledged write is readable through it, the replicas are reserved by the new nexus
(the old one is fenced), and the old node's nexus and replica are dealt with when it
comes back.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import uuid
from collections.abc import Callable

import pytest

from mayastor.bdev import NvmfDevice
from mayastor.control.operations.targets import cntlid_range
from mayastor.control.specs import node_nqn
from mayastor.nvmf.host import ControllerOptions
from tests.support.agreement import fire
from tests.support.cluster import FAST_CORE_FLAGS, TestCluster
from tests.support.polling import wait_for
from tests.support.volume_io import (
    frontend_nqn,
    read_at,
    reservation_probe,
    write_at,
    write_once,
)

pytestmark = pytest.mark.slow

MIB = 1 << 20
APP = frontend_nqn("app-1")
QUICK = (*FAST_CORE_FLAGS, "--switch-over-wait", "1s")


def address_of(uri: str) -> str:
    return uri.removeprefix("nvmf://").split("/", 1)[0]


def identity(uri: str) -> tuple[uuid.UUID, int]:
    """The namespace uuid (NGUID) the target at `uri` reports and the controller ID it
    gives the app node, read through our initiator."""

    async def run() -> tuple[uuid.UUID, int]:
        device = await NvmfDevice.open(uri, options=ControllerOptions(hostnqn=APP))
        try:
            return uuid.UUID(bytes=device.namespace.nguid), device.controller.cntlid
        finally:
            await device.close()

    return asyncio.run(run())


def test_a_target_whose_node_dies_moves_to_another_node_with_every_write(
    make_cluster: Callable[..., TestCluster],
) -> None:
    cluster = make_cluster(core_flags=QUICK)
    volume, uri = cluster.new_volume(replicas=2, target="node-1")
    data = os.urandom(2 * MIB)
    write_at(uri, APP, 3 * MIB, data)
    cluster.engines["node-1"].kill()
    wait_for(
        lambda: cluster.target_node(volume) not in (None, "node-1"),
        "the target moved off node-1",
        60,
    )
    moved = cluster.volume(volume)["state"]["target"]["deviceUri"]
    assert moved.endswith(f"/nqn.2019-05.io.openebs:{volume}")
    assert address_of(moved) != address_of(uri)
    assert read_at(moved, APP, 3 * MIB, len(data)) == data
    actions = [e["action"] for e in cluster.rest.get("/events", target=volume)]
    assert "SwitchedOver" in actions


def test_a_target_that_cannot_move_for_want_of_a_current_replica_stays_published(
    make_cluster: Callable[..., TestCluster],
) -> None:
    cluster = make_cluster(core_flags=QUICK)
    volume, uri = cluster.new_volume(replicas=1, target="node-1")
    assert cluster.replica_nodes(volume) == ["node-1"]
    data = os.urandom(MIB)
    write_at(uri, APP, 0, data)
    cluster.engines["node-1"].kill()
    wait_for(
        lambda: (
            "SwitchOverFailed" in [e["action"] for e in cluster.rest.get("/events", target=volume)]
        ),
        "a switch-over tried and refused",
        60,
    )
    assert cluster.target_node(volume) == "node-1"
    cluster.engines["node-1"].start()
    wait_for(lambda: cluster.volume_status(volume) == "Online", "the volume Online again", 60)
    assert cluster.target_node(volume) == "node-1"
    assert read_at(cluster.volume(volume)["state"]["target"]["deviceUri"], APP, 0, MIB) == data


MOVE_TO_NODE_3 = {
    "protocol": "nvmf",
    "publish_context": {},
    "frontend_node": "app-1",
    "node": "node-3",
}
"""The body of ``PUT /volumes/{id}/target`` that moves a target to node-3."""


def published_on_node_1_with_data(
    make_cluster: Callable[..., TestCluster],
) -> tuple[TestCluster, str, bytes]:
    """A cluster, a volume published on node-1 and the MiB written at its start."""
    cluster = make_cluster(core_flags=QUICK)
    volume, uri = cluster.new_volume(replicas=2, target="node-1")
    data = os.urandom(MIB)
    write_at(uri, APP, 0, data)
    return cluster, volume, data


def assert_online_on_node_1_with(cluster: TestCluster, volume: str, data: bytes) -> None:
    wait_for(lambda: cluster.volume_status(volume) == "Online", "the volume Online again", 60)
    assert cluster.target_node(volume) == "node-1"
    assert read_at(cluster.volume(volume)["state"]["target"]["deviceUri"], APP, 0, MIB) == data


def test_a_move_that_fails_half_way_keeps_the_volume_published_and_its_target_is_made_again(
    make_cluster: Callable[..., TestCluster],
) -> None:
    cluster, volume, data = published_on_node_1_with_data(make_cluster)
    # node-3 still counts as Online when the move starts, so the old nexus is taken
    # down first; then node-3 does not answer and the new one cannot be made there.
    cluster.engines["node-3"].pause()
    try:
        status, reply = cluster.rest.call("PUT", f"/volumes/{volume}/target", MOVE_TO_NODE_3)
        assert status >= 400, reply
        assert cluster.target_node(volume) == "node-1"
    finally:
        cluster.engines["node-3"].resume()
    wait_for(
        lambda: "Recreating" in [e["action"] for e in cluster.rest.get("/events", target=volume)],
        "the target made again on node-1",
        60,
    )
    assert_online_on_node_1_with(cluster, volume, data)


def nexuses_on(cluster: TestCluster, node: str) -> list[object]:
    out = cluster.engines[node].client("-o", "json", "nexus", "list", check=True).stdout
    found: list[object] = json.loads(out) if out.strip() else []
    return found


def test_a_move_cut_short_by_a_core_agent_crash_keeps_the_volume_published(
    make_cluster: Callable[..., TestCluster],
) -> None:
    cluster, volume, data = published_on_node_1_with_data(make_cluster)
    # As above, but the core agent is killed while it waits for node-3: the old nexus
    # is gone and the operation record is all the restarted core agent has.
    cluster.engines["node-3"].pause()
    try:
        caller = threading.Thread(
            target=fire,
            args=(cluster.core.rest_url, "PUT", f"/volumes/{volume}/target", MOVE_TO_NODE_3),
        )
        caller.start()
        wait_for(lambda: not nexuses_on(cluster, "node-1"), "the old nexus taken down", 30)
        assert caller.is_alive(), "the move ended before the core agent could be killed"
        cluster.core.kill()
        caller.join()
    finally:
        cluster.engines["node-3"].resume()
    cluster.core.start()
    assert_online_on_node_1_with(cluster, volume, data)


def test_every_target_of_a_volume_reports_one_namespace_with_new_controller_ids(
    make_cluster: Callable[..., TestCluster],
) -> None:
    cluster = make_cluster(core_flags=QUICK)
    volume, uri = cluster.new_volume(replicas=2, target="node-1")
    first_namespace, first_cntlid = identity(uri)
    assert first_namespace == uuid.UUID(volume)
    assert cntlid_range(1)[0] <= first_cntlid <= cntlid_range(1)[1]
    cluster.engines["node-1"].kill()
    wait_for(lambda: cluster.target_node(volume) not in (None, "node-1"), "target moved", 60)
    moved = cluster.volume(volume)["state"]["target"]["deviceUri"]
    namespace, cntlid = identity(moved)
    assert namespace == uuid.UUID(volume)
    assert cntlid_range(2)[0] <= cntlid <= cntlid_range(2)[1]
    assert cntlid_range(1)[1] < cntlid_range(2)[0]


def test_an_app_nodes_failed_path_moves_the_target_and_answers_the_new_path(
    cluster: TestCluster,
) -> None:
    volume, uri = cluster.new_volume(replicas=2, target="node-1")
    data = os.urandom(MIB)
    write_at(uri, APP, 0, data)
    cluster.rest.put("/app-nodes/app-1", {"endpoint": "10.0.0.5:50055"})
    report = {"target_nqn": f"nqn.2019-05.io.openebs:{volume}", "address": address_of(uri)}
    answer = cluster.rest.call("POST", "/app-nodes/app-1/failed-paths", report)
    assert answer[0] == 200, answer
    new_uri = answer[1]["uri"]
    assert cluster.target_node(volume) != "node-1"
    assert new_uri == cluster.volume(volume)["state"]["target"]["deviceUri"]
    assert read_at(new_uri, APP, 0, MIB) == data
    assert "PathFailed" in [e["action"] for e in cluster.rest.get("/events", target=volume)]


def test_a_report_about_a_path_that_moved_already_changes_nothing(cluster: TestCluster) -> None:
    volume, uri = cluster.new_volume(replicas=2, target="node-1")
    cluster.rest.put("/app-nodes/app-1", {"endpoint": "10.0.0.5:50055"})
    report = {"target_nqn": f"nqn.2019-05.io.openebs:{volume}", "address": address_of(uri)}
    first = cluster.rest.call("POST", "/app-nodes/app-1/failed-paths", report)[1]["uri"]
    nexus = cluster.volume(volume)["spec"]["target"]["nexus"]
    second = cluster.rest.call("POST", "/app-nodes/app-1/failed-paths", report)
    assert second == (200, {"target_nqn": report["target_nqn"], "uri": first})
    assert cluster.volume(volume)["spec"]["target"]["nexus"] == nexus


@pytest.mark.parametrize(
    ("app_node", "body", "status"),
    [
        ("app-9", {"target_nqn": "nqn.2019-05.io.openebs:" + str(uuid.uuid4())}, 404),
        ("app-1", {"target_nqn": "nqn.2019-05.io.openebs:not-a-uuid"}, 400),
        ("app-1", {"target_nqn": "nqn.2019-05.io.openebs:" + str(uuid.uuid4())}, 404),
        ("app-1", {"target_nqn": "nqn.2019-05.io.openebs:x", "address": "no port"}, 400),
        ("app-1", {"address": "127.0.0.1:1"}, 400),
    ],
)
def test_a_bad_failed_path_report_is_refused_and_changes_nothing(
    cluster: TestCluster, app_node: str, body: dict[str, str], status: int
) -> None:
    volume, _ = cluster.new_volume(replicas=1, target="node-1")
    cluster.rest.put("/app-nodes/app-1", {"endpoint": "10.0.0.5:50055"})
    code, error = cluster.rest.call("POST", f"/app-nodes/{app_node}/failed-paths", body)
    assert code == status, error
    assert error["message"]
    assert cluster.target_node(volume) == "node-1"


def test_a_report_for_an_unpublished_volume_is_refused(cluster: TestCluster) -> None:
    volume, _ = cluster.new_volume(replicas=1, target="node-1")
    cluster.rest.delete(f"/volumes/{volume}/target")
    cluster.rest.put("/app-nodes/app-1", {"endpoint": "10.0.0.5:50055"})
    body = {"target_nqn": f"nqn.2019-05.io.openebs:{volume}"}
    code, error = cluster.rest.call("POST", "/app-nodes/app-1/failed-paths", body)
    assert (code, error["kind"]) == (412, "FailedPrecondition")


def test_app_nodes_register_list_and_deregister(cluster: TestCluster) -> None:
    cluster.rest.put("/app-nodes/app-2", {"endpoint": "10.0.0.6:50055", "labels": {"a": "b"}})
    cluster.rest.put("/app-nodes/app-1", {"endpoint": "10.0.0.5:50055"})
    listed = cluster.rest.get("/app-nodes")["entries"]
    assert [n["id"] for n in listed] == ["app-1", "app-2"]
    assert cluster.rest.get("/app-nodes/app-2")["spec"]["labels"] == {"a": "b"}
    cluster.rest.delete("/app-nodes/app-2")
    assert cluster.rest.call("GET", "/app-nodes/app-2")[0] == 404
    assert cluster.rest.call("DELETE", "/app-nodes/app-2")[0] == 404


def test_with_switch_over_off_a_target_stays_on_its_offline_node(
    make_cluster: Callable[..., TestCluster],
) -> None:
    cluster = make_cluster(core_flags=(*QUICK, "--no-switch-over"))
    volume, _ = cluster.new_volume(replicas=2, target="node-1")
    cluster.engines["node-1"].kill()
    wait_for(lambda: cluster.node_status("node-1") == "Offline", "node-1 offline", 30)
    time.sleep(4)
    assert cluster.target_node(volume) == "node-1"


def test_the_old_target_node_back_loses_its_nexus_and_its_replica_rejoins(
    make_cluster: Callable[..., TestCluster],
) -> None:
    cluster = make_cluster(core_flags=QUICK)
    volume, _ = cluster.new_volume(replicas=3, target="node-1")
    assert "node-1" in cluster.replica_nodes(volume)
    old_nexus = cluster.volume(volume)["spec"]["target"]["nexus"]
    engine = cluster.engines["node-1"]
    engine.kill()
    wait_for(lambda: cluster.target_node(volume) not in (None, "node-1"), "target moved", 60)
    moved = cluster.volume(volume)["state"]["target"]["deviceUri"]
    data = os.urandom(MIB)
    write_at(moved, APP, 5 * MIB, data)
    engine.start()
    wait_for(
        lambda: (
            cluster.volume_status(volume) == "Online"
            and len(cluster.volume(volume)["state"]["target"]["children"]) == 3
        ),
        "node-1's replica back in the nexus and rebuilt",
        90,
    )
    assert all(n["uuid"] != old_nexus for n in cluster.rest.get("/nexuses"))
    assert "Rejoining" in [e["action"] for e in cluster.rest.get("/events", target=volume)]
    assert read_at(moved, APP, 5 * MIB, MIB) == data


def test_a_target_moved_off_a_stopped_node_fences_the_old_nexus_which_is_then_collected(
    make_cluster: Callable[..., TestCluster],
) -> None:
    cluster = make_cluster(core_flags=QUICK)
    volume, old_uri = cluster.new_volume(replicas=3, target="node-1")
    old_nexus = cluster.volume(volume)["spec"]["target"]["nexus"]
    engine = cluster.engines["node-1"]
    engine.pause()
    try:
        wait_for(lambda: cluster.target_node(volume) not in (None, "node-1"), "target moved", 60)
        new_node = cluster.target_node(volume)
        assert new_node is not None
        new_nexus = cluster.volume(volume)["spec"]["target"]["nexus"]
        specs = {n["uuid"]: n for n in cluster.rest.get("/specs")["nexuses"]}
        key = specs[new_nexus]["nvmf_config"]["reservation_key"]
        topology = cluster.volume(volume)["state"]["replica_topology"]
        remote = next(r for r, t in topology.items() if t["node"] not in ("node-1", new_node))
        replica_uri = cluster.rest.get(f"/replicas/{remote}")["uri"]
        # The replica is the new nexus's: any other host, the old nexus included, is refused.
        assert reservation_probe(replica_uri, node_nqn(new_node)) == (key, "reservation conflict")
    finally:
        engine.resume()
    data = os.urandom(MIB)
    write_at(cluster.volume(volume)["state"]["target"]["deviceUri"], APP, 0, data)
    outcomes = write_once(old_uri, APP, [(0, b"\xee" * MIB)])
    wait_for(
        lambda: all(n["uuid"] != old_nexus for n in cluster.rest.get("/nexuses")),
        "the old nexus collected on node-1",
        60,
    )
    assert "acknowledged" not in outcomes, outcomes
    assert read_at(cluster.volume(volume)["state"]["target"]["deviceUri"], APP, 0, MIB) == data
