"""A rebuild cut short: its destination or its source dies while it copies.

The nexus is bigger here than in the other failure tests, its remote children are
reached through proxies that hold every chunk back while a rebuild is started, and each
rebuild is paused as soon as it starts, so the kill lands while segments remain to be
copied (a rebuild runs at hundreds of MB/s otherwise). A rebuild that did not finish
leaves its destination with no usable record of what it lacks, so when that child
comes back it is rebuilt in full; the survivors keep serving I/O and no acknowledged
write is lost.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.nexus.conftest import LOAD_UNITS, NEXUS_UUID, Cluster
from tests.support.fault_proxy import FaultProxy
from tests.support.polling import wait_for
from tests.support.verified_writes import TESTER_NQN, BackgroundLoad

SIZE_MIB = 96
HOLD = 0.02
"""Seconds each proxy holds a chunk while a rebuild is started and paused."""


@pytest.fixture
def nexus_size_mib() -> int:
    return SIZE_MIB


@pytest.fixture
def proxied(cluster: Cluster) -> Iterator[tuple[Cluster, list[FaultProxy]]]:
    """The published nexus with its children on node-b and node-c behind proxies."""
    with (
        FaultProxy("127.0.0.1", cluster.b.engine.replica_port) as pb,
        FaultProxy("127.0.0.1", cluster.c.engine.replica_port) as pc,
    ):
        for index, (node, proxy) in enumerate(((cluster.b, pb), (cluster.c, pc)), start=1):
            direct = f"127.0.0.1:{node.engine.replica_port}/"
            cluster.children[index] = node.replica_uri.replace(direct, f"127.0.0.1:{proxy.port}/")
        cluster.create_nexus()
        published = cluster.nexus("publish", NEXUS_UUID, "--allowed-host", TESTER_NQN)
        cluster.nexus_uri = published["device_uri"]
        yield cluster, [pb, pc]


def start_paused_rebuild(cluster: Cluster, proxies: list[FaultProxy], uri: str) -> None:
    """Fault `uri` and bring it online again: a full rebuild, paused before it ends."""
    for proxy in proxies:
        proxy.set_delay(HOLD)
    cluster.nexus("child", "fault", NEXUS_UUID, uri)
    cluster.nexus("child", "online", NEXUS_UUID, uri)
    cluster.a.engine.client("rebuild", "pause", NEXUS_UUID, uri, check=True)
    for proxy in proxies:
        proxy.set_delay(0)
    assert cluster.child(uri)["state"] == "CHILD_STATE_DEGRADED"


def test_a_rebuild_whose_destination_dies_fails_and_is_done_again_in_full(
    proxied: tuple[Cluster, list[FaultProxy]],
) -> None:
    cluster, proxies = proxied
    rc = cluster.children[2]
    load = BackgroundLoad(cluster.nexus_uri, units=LOAD_UNITS).start()
    try:
        load.wait_for_progress(100)
        start_paused_rebuild(cluster, proxies, rc)
        cluster.c.engine.kill()
        wait_for(lambda: cluster.child_is(rc, "faulted"), "rc faulted after its engine died")
        load.wait_for_progress(200)

        cluster.c.restart()
        cluster.nexus("child", "online", NEXUS_UUID, rc)
        wait_for(cluster.all_online, "rc online after its second rebuild")
    finally:
        ledger = load.stop()

    failed, completed = cluster.history()
    assert (failed["child_uri"], failed["state"]) == (rc, "Failed")
    assert failed["reason"].startswith(f"destination {rc} faulted")
    assert failed["blocks_transferred"] < failed["blocks_total"]
    assert (completed["child_uri"], completed["state"], completed["is_partial"]) == (
        rc,
        "Completed",
        False,
    )
    assert completed["blocks_transferred"] == completed["blocks_total"]
    cluster.assert_every_acknowledged_write_on_every_replica(ledger)


def test_a_rebuild_whose_source_dies_fails_and_the_child_is_rebuilt_from_a_survivor(
    proxied: tuple[Cluster, list[FaultProxy]],
) -> None:
    cluster, proxies = proxied
    ra, rb, rc = cluster.children
    load = BackgroundLoad(cluster.nexus_uri, units=LOAD_UNITS).start()
    try:
        load.wait_for_progress(100)
        start_paused_rebuild(cluster, proxies, ra)  # from rb: no local source, the first Online
        cluster.b.engine.kill()  # the writes time out on rb, which fails the paused rebuild
        wait_for(
            lambda: cluster.child_is(ra, "faulted", "rebuild_failed"),
            "ra faulted when its rebuild lost the source",
        )
        assert cluster.child_is(rb, "faulted", "timed_out")
        assert cluster.child_is(rc, "online")
        load.wait_for_progress(200)  # one child left, still serving

        cluster.b.restart()
        cluster.nexus("child", "online", NEXUS_UUID, rb)
        cluster.nexus("child", "online", NEXUS_UUID, ra)
        wait_for(cluster.all_online, "every child online after the rebuilds")
    finally:
        ledger = load.stop()

    history = cluster.history()
    assert (history[0]["child_uri"], history[0]["state"]) == (ra, "Failed")
    assert (history[0]["src_uri"], history[0]["reason"]) == (rb, f"source {rb} faulted (timed_out)")
    rebuilt_again = [r for r in history[1:] if r["child_uri"] == ra]
    assert [(r["state"], r["is_partial"]) for r in rebuilt_again] == [("Completed", False)]
    cluster.assert_every_acknowledged_write_on_every_replica(ledger)
