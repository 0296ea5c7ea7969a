"""Network partitions: io-engines in network namespaces of their own, links cut and restored.

Each io-engine runs in a namespace on a test bridge (tests/support/netns.py); cutting
its veth silences it both ways, as a pulled cable would: no reset, no refused
connection, just nothing. The volume's frontend is our own initiator in the root
namespace, writing through a `BackgroundLoad` that records every acknowledged write.
The checks: a replica cut off is retired within the child I/O timeout while the writes
go on, and comes back with a partial rebuild (or is replaced after the wait); a target
cut off is replaced by one on another node, and the old one, back on the network, is
fenced (its replicas are the new nexus's, and the store refuses its nexus info, so it
cannot go on with its local replica alone), acknowledges nothing and is collected; no
acknowledged write is lost and the replicas end identical on disk.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.agreement import disagreements
from tests.support.cluster import FAST_CORE_FLAGS, TestCluster
from tests.support.netns import TestNetwork
from tests.support.offline_pool import replica_images
from tests.support.polling import wait_for
from tests.support.verified_writes import BackgroundLoad, verify_uri
from tests.support.volume_io import frontend_nqn, read_at, write_at, write_once

pytestmark = [pytest.mark.slow, pytest.mark.needs_root]

MIB = 1 << 20
APP = frontend_nqn("app-1")
CHILD_IO_TIMEOUT = 2.0
RETIRE_MARGIN = 6.0
"""A child cut off is seen Faulted within the I/O timeout and this (the core's poll
of the target, a loaded machine)."""
ENGINE_FLAGS = ("--child-io-timeout", f"{CHILD_IO_TIMEOUT:g}", "--registration-interval", "1")


@pytest.fixture
def network() -> Iterator[TestNetwork]:
    with TestNetwork() as net:
        yield net


@pytest.fixture
def partitioned(
    network: TestNetwork, make_cluster: Callable[..., TestCluster]
) -> Callable[..., TestCluster]:
    """Clusters whose io-engines each run in a namespace of `network` (closed before it)."""

    def make(**options: Any) -> TestCluster:
        return make_cluster(network=network, engine_flags=ENGINE_FLAGS, **options)

    return make


def child_states(cluster: TestCluster, volume: str) -> dict[str, str | None]:
    """Each replica's node and its child state in the volume's nexus."""
    topology = cluster.volume(volume)["state"]["replica_topology"]
    return {r["node"]: r.get("child-status") for r in topology.values()}


def nexuses_on(cluster: TestCluster, node: str) -> set[str]:
    """The uuids of the nexuses the io-engine of `node` holds now (asked directly)."""
    out = cluster.engines[node].client("-o", "json", "nexus", "list", check=True).stdout
    return {n["uuid"] for n in json.loads(out)} if out.strip() else set()


def longest_gap(load: BackgroundLoad, since: float) -> float:
    """The longest time without an acknowledged write after `since` (monotonic)."""
    times = [since, *(t for t in load.completed_at if t > since)]
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


def read_replicas(cluster: TestCluster, volume: str, size: int) -> dict[str, bytes]:
    """Stop the cluster and read the first `size` bytes of each of the volume's replicas
    (by node) from the pool files."""
    where = {r: t["node"] for r, t in cluster.volume(volume)["state"]["replica_topology"].items()}
    cluster.close()
    images: dict[str, bytes] = {}
    for name in cluster.engines:
        images.update(replica_images(cluster.disk(name)))
    return {node: images[replica][:size] for replica, node in where.items()}


def test_a_replica_cut_off_is_retired_within_the_io_timeout_and_rejoins_with_a_partial_rebuild(
    partitioned: Callable[..., TestCluster], network: TestNetwork
) -> None:
    cluster = partitioned(core_flags=(*FAST_CORE_FLAGS, "--faulted-child-wait", "10m"))
    volume, uri = cluster.new_volume(size=16 * MIB, target="node-1")
    lost = next(n for n in cluster.replica_nodes(volume) if n != "node-1")
    load = BackgroundLoad(uri, units=512, depth=8, hostnqn=APP).start()
    try:
        load.wait_for_progress(100)
        cut_at = time.monotonic()
        network.cut(lost)
        wait_for(
            lambda: child_states(cluster, volume)[lost] == "Faulted",
            f"the child on {lost} retired",
            60,
        )
        retired_after = time.monotonic() - cut_at
        load.wait_for_progress(300)
        stall = longest_gap(load, cut_at)
        assert cluster.volume_status(volume) == "Degraded"
        network.restore(lost)
        wait_for(lambda: cluster.volume_status(volume) == "Online", "the volume Online again", 120)
        load.wait_for_progress(100)
    finally:
        ledger = load.stop()
    assert retired_after < CHILD_IO_TIMEOUT + RETIRE_MARGIN, f"retired after {retired_after:.1f} s"
    assert stall < CHILD_IO_TIMEOUT + RETIRE_MARGIN, f"writes stalled for {stall:.1f} s"
    assert load.errors == [], "no write failed while the replica was cut off"
    assert list(child_states(cluster, volume).values()) == ["Online"] * 3
    records = cluster.rest.get(f"/volumes/{volume}/rebuild-history")["records"]
    assert [r["isPartial"] for r in records] == [True]
    assert records[0]["blocksTransferred"] < records[0]["blocksTotal"]
    assert asyncio.run(verify_uri(ledger, uri, hostnqn=APP)) == []
    assert disagreements(cluster) == []
    assert len(set(read_replicas(cluster, volume, 16 * MIB).values())) == 1


def test_a_replica_cut_off_longer_than_the_wait_is_replaced_on_another_node(
    partitioned: Callable[..., TestCluster], network: TestNetwork
) -> None:
    cluster = partitioned(nodes=4, core_flags=(*FAST_CORE_FLAGS, "--faulted-child-wait", "3s"))
    volume, uri = cluster.new_volume(size=16 * MIB, target="node-1")
    lost = next(n for n in cluster.replica_nodes(volume) if n != "node-1")
    spare = next(n for n in cluster.engines if n not in cluster.replica_nodes(volume))
    load = BackgroundLoad(uri, units=512, depth=8, hostnqn=APP).start()
    try:
        load.wait_for_progress(100)
        network.cut(lost)
        wait_for(
            lambda: (
                lost not in cluster.replica_nodes(volume)
                and cluster.volume_status(volume) == "Online"
            ),
            f"the replica on {lost} replaced and rebuilt",
            120,
        )
        load.wait_for_progress(100)
        network.restore(lost)
        wait_for(lambda: cluster.node_status(lost) == "Online", f"{lost} back", 120)
        wait_for(lambda: disagreements(cluster) == [], "its old replica destroyed", 60)
    finally:
        ledger = load.stop()
    assert load.errors == []
    assert cluster.replica_nodes(volume) == sorted(n for n in cluster.engines if n != lost)
    assert spare in cluster.replica_nodes(volume)
    records = cluster.rest.get(f"/volumes/{volume}/rebuild-history")["records"]
    assert [r["isPartial"] for r in records] == [False]
    assert asyncio.run(verify_uri(ledger, uri, hostnqn=APP)) == []
    assert len(set(read_replicas(cluster, volume, 16 * MIB).values())) == 1


@pytest.mark.parametrize(
    "local_replica",
    [
        pytest.param(False, id="no-replica-on-the-old-target-node"),
        pytest.param(True, id="a-replica-on-the-old-target-node"),
    ],
)
def test_a_partitioned_old_target_that_comes_back_cannot_write_to_the_replicas_and_is_cleaned_up(
    partitioned: Callable[..., TestCluster], network: TestNetwork, local_replica: bool
) -> None:
    cluster = partitioned(nodes=4, core_flags=(*FAST_CORE_FLAGS, "--switch-over-wait", "1s"))
    size = 16 * MIB
    volume = "0d5c8e6a-7d43-4f0c-9b8e-5a1f3c2d4e6f"
    away = "node-4" if local_replica else "node-1"
    cluster.rest.put(f"/nodes/{away}/cordon/placement")
    cluster.rest.put(
        f"/volumes/{volume}",
        {"size": size, "replicas": 3, "thin": False, "policy": {"self_heal": True}},
    )
    cluster.rest.delete(f"/nodes/{away}/cordon/placement")
    old_uri = cluster.rest.put(
        f"/volumes/{volume}/target",
        {"protocol": "nvmf", "publish_context": {}, "frontend_node": "app-1", "node": "node-1"},
    )["state"]["target"]["deviceUri"]
    old_nexus = cluster.volume(volume)["spec"]["target"]["nexus"]
    assert ("node-1" in cluster.replica_nodes(volume)) is local_replica
    before = os.urandom(8 * MIB)
    write_at(old_uri, APP, 0, before)

    network.cut("node-1")
    wait_for(lambda: cluster.target_node(volume) != "node-1", "the target moved", 90)
    new_uri = cluster.volume(volume)["state"]["target"]["deviceUri"]
    new = os.urandom(MIB)
    write_at(new_uri, APP, 2 * MIB, new)
    network.restore("node-1")
    stale = b"\xee" * MIB
    outcomes = write_once(old_uri, APP, [(2 * MIB, stale), (6 * MIB, stale)])

    wait_for(lambda: cluster.node_status("node-1") == "Online", "node-1 back", 120)
    wait_for(
        lambda: old_nexus not in nexuses_on(cluster, "node-1"),
        "the old nexus destroyed on node-1",
        60,
    )
    wait_for(lambda: cluster.volume_status(volume) == "Online", "the volume Online", 120)
    wait_for(lambda: disagreements(cluster) == [], "specs and io-engines agree", 60)
    assert "acknowledged" not in outcomes, outcomes
    # Fenced or not by the time its node registers (a race: see the reconciler), the
    # old target is destroyed once, and said to be.
    collected = [
        e["message"]
        for e in cluster.rest.get("/events", target=volume)
        if e["action"] in ("FencedTargetCollected", "SupersededTargetCollected")
    ]
    assert len(collected) == 1, collected
    assert old_nexus in collected[0]
    expected = before[: 2 * MIB] + new + before[3 * MIB :] + bytes(size - len(before))
    assert read_at(new_uri, APP, 0, size) == expected
    replicas = read_replicas(cluster, volume, size)
    assert len(replicas) == 3
    assert {node: data == expected for node, data in replicas.items()} == dict.fromkeys(
        replicas, True
    )


def test_an_old_target_that_comes_back_unaware_it_was_replaced_is_collected_as_superseded(
    partitioned: Callable[..., TestCluster], network: TestNetwork
) -> None:
    # No I/O reaches the old nexus after the cut, so nothing makes it write its nexus
    # info and be fenced: its node registers again with it unfenced, and the reconciler
    # destroys it all the same, saying what it replaced it with.
    cluster = partitioned(nodes=4, core_flags=(*FAST_CORE_FLAGS, "--switch-over-wait", "1s"))
    volume = "5e0b2a61-93c4-4d7e-8f1a-2c6b9d0e7f31"
    cluster.rest.put("/nodes/node-1/cordon/placement")
    cluster.rest.put(
        f"/volumes/{volume}",
        {"size": 16 * MIB, "replicas": 3, "thin": False, "policy": {"self_heal": True}},
    )
    cluster.rest.delete("/nodes/node-1/cordon/placement")
    cluster.rest.put(
        f"/volumes/{volume}/target",
        {"protocol": "nvmf", "publish_context": {}, "frontend_node": "app-1", "node": "node-1"},
    )
    old_nexus = cluster.volume(volume)["spec"]["target"]["nexus"]

    network.cut("node-1")
    wait_for(lambda: cluster.target_node(volume) != "node-1", "the target moved", 90)
    new_target = cluster.volume(volume)["spec"]["target"]
    network.restore("node-1")
    wait_for(lambda: cluster.node_status("node-1") == "Online", "node-1 back", 120)
    wait_for(
        lambda: old_nexus not in nexuses_on(cluster, "node-1"),
        "the old nexus destroyed on node-1",
        60,
    )

    events = [
        e
        for e in cluster.rest.get("/events", target=volume)
        if e["action"] in ("FencedTargetCollected", "SupersededTargetCollected")
    ]
    assert [e["action"] for e in events] == ["SupersededTargetCollected"], events
    assert old_nexus in events[0]["message"]
    assert (
        f"replaced by nexus {new_target['nexus']} on node {new_target['node']}"
        in (events[0]["message"])
    )
