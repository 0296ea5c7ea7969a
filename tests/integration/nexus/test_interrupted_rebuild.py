"""A rebuild cut short: its destination or its source dies while it copies.

The nexus is bigger here than in the other failure tests, and each rebuild is paused
as soon as it starts, so the kill lands while segments remain to be copied. A rebuild
that did not finish leaves its destination with no usable record of what it lacks, so
when that child comes back it is rebuilt in full; the survivors keep serving I/O and no
acknowledged write is lost.
"""

from __future__ import annotations

import pytest

from tests.integration.nexus.conftest import LOAD_UNITS, NEXUS_UUID, Cluster
from tests.support.polling import wait_for
from tests.support.verified_writes import BackgroundLoad

SIZE_MIB = 96


@pytest.fixture
def nexus_size_mib() -> int:
    return SIZE_MIB


def start_paused_rebuild(cluster: Cluster, uri: str) -> None:
    """Fault `uri` and bring it online again: a full rebuild, paused before it ends."""
    cluster.nexus("child", "fault", NEXUS_UUID, uri)
    cluster.nexus("child", "online", NEXUS_UUID, uri)
    cluster.a.engine.client("rebuild", "pause", NEXUS_UUID, uri, check=True)
    assert cluster.child(uri)["state"] == "CHILD_STATE_DEGRADED"


def test_a_rebuild_whose_destination_dies_fails_and_is_done_again_in_full(
    published_nexus: Cluster,
) -> None:
    cluster = published_nexus
    rc = cluster.c.replica_uri
    load = BackgroundLoad(cluster.nexus_uri, units=LOAD_UNITS).start()
    try:
        load.wait_for_progress(100)
        start_paused_rebuild(cluster, rc)
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
    published_nexus: Cluster,
) -> None:
    cluster = published_nexus
    ra, rb, rc = cluster.children
    load = BackgroundLoad(cluster.nexus_uri, units=LOAD_UNITS).start()
    try:
        load.wait_for_progress(100)
        start_paused_rebuild(cluster, ra)  # from rb: no local source, so the first Online
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
