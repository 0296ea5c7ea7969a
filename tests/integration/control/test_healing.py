"""Self-healing on real processes: replicas replaced after the wait, nexuses made again.

Published volumes take writes through our initiator, connected as their frontend; the
tests kill io-engines and check that the core agent heals the volumes with every
written byte intact and, at the end, the replicas identical on disk.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pytest

from tests.support.cluster import FAST_CORE_FLAGS, TestCluster
from tests.support.polling import wait_for
from tests.support.volume_io import frontend_nqn, read_at, write_at

pytestmark = pytest.mark.slow

MIB = 1 << 20
APP = frontend_nqn("app-1")


def assert_replicas_identical(cluster: TestCluster, volumes: dict[str, int]) -> None:
    for volume, contents in cluster.stop_and_read_replicas(volumes).items():
        assert len(contents) == 1, f"the replicas of {volume} differ"


def kill_a_replica_node(
    make_cluster: Callable[..., TestCluster],
) -> tuple[TestCluster, str, str, str, bytes]:
    """Four nodes (``--faulted-child-wait 3s``), a volume published on node-1 with a MiB
    written at 0, then SIGKILL of a node holding one of its replicas: the cluster, the
    volume, its URI, the node killed and the data written."""
    cluster = make_cluster(nodes=4, core_flags=(*FAST_CORE_FLAGS, "--faulted-child-wait", "3s"))
    volume, uri = cluster.new_volume()
    lost = next(n for n in cluster.replica_nodes(volume) if n != "node-1")
    data = os.urandom(MIB)
    write_at(uri, APP, 0, data)
    cluster.engines[lost].kill()
    return cluster, volume, uri, lost, data


def test_a_replica_whose_node_stays_down_is_replaced_after_the_wait_and_rebuilt(
    make_cluster: Callable[..., TestCluster],
) -> None:
    cluster, volume, uri, lost, before = kill_a_replica_node(make_cluster)
    during = os.urandom(MIB)
    write_at(uri, APP, 4 * MIB, during)
    wait_for(
        lambda: (
            lost not in cluster.replica_nodes(volume) and cluster.volume_status(volume) == "Online"
        ),
        f"the replica on {lost} replaced and rebuilt",
        90,
    )
    nodes = cluster.replica_nodes(volume)
    assert len(nodes) == 3
    assert len(set(nodes)) == 3
    assert cluster.volume(volume)["spec"]["num_replicas"] == 3
    assert read_at(uri, APP, 0, MIB) == before
    assert read_at(uri, APP, 4 * MIB, MIB) == during
    assert "replacing it" in cluster.core.log_tail(200)
    del cluster.engines[lost]
    assert_replicas_identical(cluster, {volume: 32 * MIB})


def test_a_replica_of_an_idle_volume_whose_node_stays_down_is_replaced_after_the_wait(
    make_cluster: Callable[..., TestCluster],
) -> None:
    cluster, volume, uri, lost, data = kill_a_replica_node(make_cluster)
    wait_for(
        lambda: (
            lost not in cluster.replica_nodes(volume) and cluster.volume_status(volume) == "Online"
        ),
        f"the replica on {lost} replaced while no I/O touched its child",
        90,
    )
    assert "on an Offline node for over 3 s: replacing it" in cluster.core.log_tail(200)
    assert read_at(uri, APP, 0, MIB) == data
    del cluster.engines[lost]
    assert_replicas_identical(cluster, {volume: 32 * MIB})


def test_a_replica_is_replaced_once_the_wait_is_over_not_at_the_next_reconcile_pass(
    make_cluster: Callable[..., TestCluster],
) -> None:
    hourly = ("--poll-period", "500ms", "--reconcile-period", "1h", "--reconcile-idle-period", "1h")
    cluster = make_cluster(nodes=4, core_flags=(*hourly, "--faulted-child-wait", "3s"))
    volume, _ = cluster.new_volume()
    lost = next(n for n in cluster.replica_nodes(volume) if n != "node-1")
    cluster.engines[lost].kill()
    wait_for(
        lambda: (
            lost not in cluster.replica_nodes(volume) and cluster.volume_status(volume) == "Online"
        ),
        f"the replica on {lost} replaced",
        60,
    )


def test_a_nexus_lost_with_its_io_engine_is_made_again_on_the_same_node(
    make_cluster: Callable[..., TestCluster],
) -> None:
    cluster = make_cluster(core_flags=(*FAST_CORE_FLAGS, "--switch-over-wait", "60s"))
    volume, uri = cluster.new_volume(target="node-1")
    first_nexus = cluster.volume(volume)["spec"]["target"]["nexus"]
    data = os.urandom(2 * MIB)
    write_at(uri, APP, MIB, data)
    engine = cluster.engines["node-1"]
    engine.kill()
    engine.start()
    wait_for(
        lambda: cluster.volume(volume)["spec"]["target"]["nexus"] != first_nexus,
        "a new nexus made on node-1",
        60,
    )
    wait_for(lambda: cluster.volume_status(volume) == "Online", "the volume Online again", 90)
    assert cluster.volume(volume)["state"]["target"]["deviceUri"] == uri
    assert read_at(uri, APP, MIB, len(data)) == data
    assert_replicas_identical(cluster, {volume: 32 * MIB})


def test_a_replica_back_within_the_wait_gets_a_partial_rebuild(
    make_cluster: Callable[..., TestCluster],
) -> None:
    cluster = make_cluster(core_flags=(*FAST_CORE_FLAGS, "--faulted-child-wait", "10m"))
    volume, uri = cluster.new_volume()
    lost = next(n for n in cluster.replica_nodes(volume) if n != "node-1")
    write_at(uri, APP, 0, os.urandom(4 * MIB))
    engine = cluster.engines[lost]
    engine.kill()
    during = os.urandom(MIB)
    write_at(uri, APP, 8 * MIB, during)
    wait_for(lambda: cluster.volume_status(volume) == "Degraded", "the volume Degraded", 30)
    engine.start()
    wait_for(lambda: cluster.volume_status(volume) == "Online", "the volume Online again", 90)
    assert lost in cluster.replica_nodes(volume)
    records = cluster.rest.get(f"/volumes/{volume}/rebuild-history")["records"]
    assert [r["isPartial"] for r in records] == [True]
    assert records[0]["blocksTransferred"] < records[0]["blocksTotal"]
    assert read_at(uri, APP, 8 * MIB, MIB) == during
    assert_replicas_identical(cluster, {volume: 32 * MIB})


def test_a_volume_without_self_heal_keeps_its_faulted_child(
    make_cluster: Callable[..., TestCluster],
) -> None:
    cluster = make_cluster(nodes=4, core_flags=(*FAST_CORE_FLAGS, "--faulted-child-wait", "1s"))
    volume, uri = cluster.new_volume(self_heal=False)
    lost = next(n for n in cluster.replica_nodes(volume) if n != "node-1")
    cluster.engines[lost].kill()
    write_at(uri, APP, 0, os.urandom(MIB))
    wait_for(lambda: cluster.volume_status(volume) == "Degraded", "the volume Degraded", 30)
    time.sleep(5)
    assert lost in cluster.replica_nodes(volume)
    assert cluster.volume_status(volume) == "Degraded"
    assert "replacing it" not in cluster.core.log_tail(200)


def test_no_more_rebuilds_run_at_once_than_the_limit(
    make_cluster: Callable[..., TestCluster],
) -> None:
    flags = (*FAST_CORE_FLAGS, "--faulted-child-wait", "2s", "--max-rebuilds", "1")
    cluster = make_cluster(nodes=4, core_flags=flags, disk_size=512 << 20)
    first, uri1 = cluster.new_volume(size=96 * MIB)
    second, uri2 = cluster.new_volume(size=96 * MIB)
    lost = next(
        n
        for n in cluster.replica_nodes(first)
        if n != "node-1" and n in cluster.replica_nodes(second)
    )
    cluster.engines[lost].kill()
    write_at(uri1, APP, 0, os.urandom(MIB))
    write_at(uri2, APP, 0, os.urandom(MIB))
    most = 0
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        running = 0
        for nexus in cluster.rest.get("/nexuses"):
            running += sum(1 for c in nexus["children"] if c["state"] == "Degraded")
        most = max(most, running)
        done = all(
            lost not in cluster.replica_nodes(v) and cluster.volume_status(v) == "Online"
            for v in (first, second)
        )
        if done:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the replicas were not replaced in time")
    assert most == 1, f"{most} rebuilds ran at once"
