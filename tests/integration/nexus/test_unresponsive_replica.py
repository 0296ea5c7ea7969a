"""A remote replica that stops answering is timed out and retired; I/O goes on.

node-a runs with ``--child-io-timeout 2``: a child I/O unanswered that long retires the
child (Faulted, timed out) and the write completes on the others. Once the replica
answers again, bringing it online copies only what it missed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.integration.nexus.conftest import (
    LOAD_UNITS,
    NEXUS_SIZE_MIB,
    NEXUS_UUID,
    Cluster,
)
from tests.support.fault_proxy import FaultProxy
from tests.support.polling import wait_for
from tests.support.verified_writes import BackgroundLoad


def stall_and_recover(
    cluster: Cluster, child: str, stall: Callable[[], None], recover: Callable[[], None]
) -> None:
    """Under load: stall the child's replica, see it retired and I/O go on, recover it,
    bring it online, and check the partial rebuild and every acknowledged write.

    No write of the load fails: each one stalled at most about the child I/O timeout,
    well within the load's own 10 s command timeout.
    """
    load = BackgroundLoad(cluster.nexus_uri, units=LOAD_UNITS)
    load.start()
    try:
        load.wait_for_progress(200)
        stall()
        wait_for(lambda: cluster.child_is(child, "faulted", "timed_out"), "child timed out")
        retired_at = time.monotonic()
        load.wait_for_progress(300)
        assert load.acknowledged_since(retired_at) >= 300
        assert cluster.child(child)["has_io_log"] is True

        recover()
        cluster.nexus("child", "online", NEXUS_UUID, child)
        wait_for(cluster.all_online, "every child online after the rebuild")
        load.wait_for_progress(200)
    finally:
        ledger = load.stop()

    assert (ledger.failed, load.errors) == (0, [])
    (record,) = cluster.history()
    assert (record["child_uri"], record["state"], record["is_partial"]) == (
        child,
        "Completed",
        True,
    )
    transferred = record["blocks_transferred"] * record["block_size"]
    assert 0 < transferred <= LOAD_UNITS * ledger.unit_bytes < NEXUS_SIZE_MIB << 20
    cluster.assert_every_acknowledged_write_on_every_replica(ledger)


def test_a_stopped_replica_engine_is_timed_out_retired_and_partially_rebuilt_when_continued(
    published_nexus: Cluster,
) -> None:
    engine = published_nexus.b.engine
    stall_and_recover(published_nexus, published_nexus.b.replica_uri, engine.pause, engine.resume)


def test_a_blackholed_replica_is_timed_out_retired_and_partially_rebuilt_when_restored(
    proxied_nexus: tuple[Cluster, FaultProxy],
) -> None:
    cluster, proxy = proxied_nexus
    stall_and_recover(cluster, cluster.children[1], proxy.blackhole, proxy.restore)


def test_a_nexus_whose_last_healthy_child_lost_its_link_for_a_moment_serves_io_again(
    proxied_nexus: tuple[Cluster, FaultProxy],
) -> None:
    cluster, proxy = proxied_nexus
    ra, rb, rc = cluster.children
    load = BackgroundLoad(cluster.nexus_uri, units=LOAD_UNITS)
    load.start()
    try:
        load.wait_for_progress(100)
        cluster.nexus("child", "fault", NEXUS_UUID, ra)
        cluster.nexus("child", "fault", NEXUS_UUID, rc)
        load.wait_for_progress(100)
        failed = len(load.errors)
        proxy.cut()
        wait_for(lambda: len(load.errors) > failed, "writes failing while the link is cut")
        proxy.restore()
        load.wait_for_progress(300)  # through the same nexus, once rb answers again
        assert cluster.child_is(rb, "online")
        assert cluster.child(rb)["healthy"] is True
    finally:
        ledger = load.stop()
    assert ledger.failed > 0
    assert cluster.verify_nexus(ledger) == []
