"""Draining a node through kubectl-mayastor: its targets move, it takes no new work."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable

import pytest

from tests.support.cluster import TestCluster
from tests.support.polling import wait_for
from tests.support.volume_io import frontend_nqn, read_at, write_at

pytestmark = pytest.mark.slow

MIB = 1 << 20


def kubectl(cluster: TestCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mayastor.kubectl.main", "-r", cluster.core.rest_url, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def published(cluster: TestCluster, node: str) -> tuple[str, str]:
    volume = str(uuid.uuid4())
    body = {"size": 16 * MIB, "replicas": 2, "thin": False, "policy": {"self_heal": True}}
    cluster.rest.put(f"/volumes/{volume}", body)
    target = cluster.rest.put(
        f"/volumes/{volume}/target",
        {"protocol": "nvmf", "publish_context": {}, "node": node, "frontend_node": "app-1"},
    )
    return volume, target["state"]["target"]["deviceUri"]


def test_drain_moves_every_target_off_the_node_and_waits_for_it(cluster: TestCluster) -> None:
    first, uri = published(cluster, "node-1")
    second, _ = published(cluster, "node-1")
    data = os.urandom(MIB)
    write_at(uri, frontend_nqn("app-1"), 0, data)
    result = kubectl(cluster, "drain", "node", "node-1", "upgrade", "--drain-timeout", "60")
    assert result.returncode == 0, result.stderr
    assert "node node-1 drained" in result.stdout
    for volume in (first, second):
        assert cluster.volume(volume)["spec"]["target"]["node"] != "node-1"
    moved = cluster.volume(first)["state"]["target"]["deviceUri"]
    assert read_at(moved, frontend_nqn("app-1"), 0, MIB) == data
    nodes = kubectl(cluster, "get", "nodes").stdout
    assert "drained (upgrade)" in nodes
    events = [e["action"] for e in cluster.rest.get("/events", target="node-1")]
    assert events[-2:] == ["Draining", "Drained"]
    assert "Moving" in [e["action"] for e in cluster.rest.get("/events", target=first)]


def test_a_drain_starts_at_once_not_at_the_next_reconcile_pass(
    make_cluster: Callable[..., TestCluster],
) -> None:
    cluster = make_cluster(
        core_flags=(
            "--poll-period",
            "500ms",
            "--reconcile-period",
            "1h",
            "--reconcile-idle-period",
            "1h",
        )
    )
    volume, _ = published(cluster, "node-1")
    result = kubectl(cluster, "drain", "node", "node-1", "now", "--drain-timeout", "60")
    assert result.returncode == 0, result.stderr
    assert cluster.volume(volume)["spec"]["target"]["node"] != "node-1"


def test_a_drained_node_gets_no_new_target_until_uncordoned(cluster: TestCluster) -> None:
    assert kubectl(cluster, "drain", "node", "node-2", "maintenance").returncode == 0
    volume = str(uuid.uuid4())
    body = {"size": 16 * MIB, "replicas": 1, "thin": False, "policy": {"self_heal": True}}
    created = cluster.rest.put(f"/volumes/{volume}", body)
    assert [r["node"] for r in created["state"]["replica_topology"].values()] != ["node-2"]
    status, reply = cluster.rest.call(
        "PUT",
        f"/volumes/{volume}/target",
        {"protocol": "nvmf", "publish_context": {}, "node": "node-2"},
    )
    assert (status, reply["kind"]) == (412, "FailedPrecondition")
    assert kubectl(cluster, "uncordon", "node", "node-2", "maintenance").returncode == 0
    assert "cordondrainstate" not in cluster.rest.get("/nodes/node-2")["spec"]
    moved = cluster.rest.put(
        f"/volumes/{volume}/target",
        {"protocol": "nvmf", "publish_context": {}, "node": "node-2"},
    )
    assert moved["spec"]["target"]["node"] == "node-2"


def test_events_of_a_node_are_listed_by_kubectl(cluster: TestCluster) -> None:
    cluster.engines["node-3"].kill()
    wait_for(
        lambda: "Offline" in kubectl(cluster, "get", "events", "--node", "node-3").stdout,
        "node-3 going offline listed",
        30,
    )
    listed = kubectl(cluster, "get", "events", "--node", "node-3").stdout.splitlines()
    assert listed[0].split() == ["TIME", "CATEGORY", "ACTION", "TARGET", "MESSAGE"]
    assert all(" node-3 " in line for line in listed[1:])
