"""A remote replica's io-engine killed under load: the nexus goes on, then heals.

Three io-engines on loopback, a three-way nexus on node-a (replica ra local, rb on
node-b and rc on node-c over NVMe/TCP), published, with `BackgroundLoad` writing to it
and recording every acknowledged write.
"""

from __future__ import annotations

from tests.integration.nexus.conftest import (
    LOAD_UNITS,
    NEXUS_SIZE_MIB,
    NEXUS_UUID,
    Cluster,
)
from tests.support.polling import wait_for
from tests.support.verified_writes import BackgroundLoad

UNIT_BLOCKS = 8


def start_load(cluster: Cluster) -> BackgroundLoad:
    load = BackgroundLoad(cluster.nexus_uri, units=LOAD_UNITS, unit_blocks=UNIT_BLOCKS)
    load.start()
    load.wait_for_progress(200)
    return load


def test_a_killed_remote_replica_is_faulted_and_comes_back_with_a_partial_rebuild(
    published_nexus: Cluster,
) -> None:
    cluster = published_nexus
    rb = cluster.b.replica_uri
    load = start_load(cluster)
    try:
        cluster.b.engine.kill()
        wait_for(lambda: cluster.child_is(rb, "faulted"), "rb faulted after its engine died")
        faulted = cluster.child(rb)
        assert faulted["state_reason"] == "CHILD_STATE_REASON_TIMED_OUT"
        assert faulted["healthy"] is False
        assert faulted["has_io_log"] is True
        load.wait_for_progress(300)  # I/O goes on over ra and rc

        cluster.b.restart()
        cluster.nexus("child", "online", NEXUS_UUID, rb)
        wait_for(cluster.all_online, "every child online after the rebuild")
        load.wait_for_progress(200)
    finally:
        ledger = load.stop()

    assert (ledger.failed, load.errors) == (0, [])  # the writes went on over ra and rc
    (record,) = cluster.history()
    assert (record["child_uri"], record["state"], record["is_partial"]) == (
        rb,
        "Completed",
        True,
    )
    transferred = record["blocks_transferred"] * record["block_size"]
    written_region = LOAD_UNITS * ledger.unit_bytes
    assert 0 < transferred <= written_region < NEXUS_SIZE_MIB << 20
    cluster.assert_every_acknowledged_write_on_every_replica(ledger)


def test_a_child_replaced_by_a_new_replica_under_load_gets_a_full_rebuild(
    published_nexus: Cluster,
) -> None:
    cluster = published_nexus
    old = cluster.c.replica_uri
    load = start_load(cluster)
    try:
        cluster.nexus("remove", NEXUS_UUID, old)
        load.wait_for_progress(100)
        new = cluster.c.create_replica("rc2", share=True)
        cluster.children = [cluster.a.replica_uri, cluster.b.replica_uri, new]
        cluster.nexus("add", NEXUS_UUID, new)
        wait_for(cluster.all_online, "the new child online after its rebuild")
        load.wait_for_progress(200)
    finally:
        ledger = load.stop()

    (record,) = cluster.history()
    assert (record["child_uri"], record["state"], record["is_partial"]) == (
        new,
        "Completed",
        False,
    )
    assert record["blocks_transferred"] * record["block_size"] == NEXUS_SIZE_MIB << 20
    cluster.assert_every_acknowledged_write_on_every_replica(ledger)


def test_a_rebuild_reads_from_the_local_child_even_when_a_remote_one_is_listed_first(
    cluster: Cluster,
) -> None:
    ra, rb, rc = cluster.children
    cluster.children = [rb, ra, rc]
    cluster.create_nexus()
    cluster.nexus("child", "fault", NEXUS_UUID, rc)
    cluster.nexus("child", "online", NEXUS_UUID, rc)
    wait_for(cluster.all_online, "rc online after its rebuild")
    (record,) = cluster.history()
    assert (record["child_uri"], record["src_uri"], record["state"]) == (rc, ra, "Completed")
