"""The io-engine hosting the nexus killed under load, restarted, the nexus created again.

The nexus info (which children hold every acknowledged write) is in node-a's state
folder; creating the nexus again with the same uuid and children must trust only the
children it names healthy, rebuild the rest, and lose no acknowledged write.
"""

from __future__ import annotations

from tests.integration.nexus.conftest import (
    LOAD_UNITS,
    NEXUS_SIZE_MIB,
    NEXUS_UUID,
    Cluster,
)
from tests.support.polling import wait_for
from tests.support.verified_writes import TESTER_NQN, BackgroundLoad


def test_a_nexus_created_again_after_its_engine_was_killed_trusts_only_healthy_children(
    published_nexus: Cluster,
) -> None:
    cluster = published_nexus
    ra, rb, rc = cluster.children
    load = BackgroundLoad(cluster.nexus_uri, units=LOAD_UNITS)
    load.start()
    try:
        load.wait_for_progress(200)
        # The local child goes stale: a nexus that preferred a local child over the
        # record of health would serve what it missed.
        cluster.nexus("child", "fault", NEXUS_UUID, ra)
        assert cluster.child(ra)["healthy"] is False
        load.wait_for_progress(300)
        cluster.a.engine.kill()

        cluster.a.restart()
        created = cluster.create_nexus()
        online = [c["uri"] for c in created["children"] if c["state"] == "CHILD_STATE_ONLINE"]
        # Killed, so not shut down cleanly: one healthy child is the truth, never the
        # stale one; the others are rebuilt from it.
        (trusted,) = online
        assert trusted in (rb, rc)
        published = cluster.nexus("publish", NEXUS_UUID, "--allowed-host", TESTER_NQN)
        assert published["device_uri"] == cluster.nexus_uri
        wait_for(cluster.all_online, "every child online after the rebuilds")
        load.wait_for_progress(200)  # the writer reconnected by itself
    finally:
        ledger = load.stop()

    history = cluster.history()
    assert sorted((r["child_uri"], r["src_uri"], r["state"], r["is_partial"]) for r in history) == [
        (uri, trusted, "Completed", False) for uri in sorted({ra, rb, rc} - {trusted})
    ]
    copied = [r["blocks_transferred"] * r["block_size"] for r in history]
    assert copied == [NEXUS_SIZE_MIB << 20] * 2
    assert ledger.failed > 0  # the kill cut writes short: their blocks may hold either
    cluster.assert_every_acknowledged_write_on_every_replica(ledger)


def test_a_nexus_created_again_after_a_clean_shutdown_trusts_every_child(
    published_nexus: Cluster,
) -> None:
    cluster = published_nexus
    load = BackgroundLoad(cluster.nexus_uri, units=LOAD_UNITS).start()
    try:
        load.wait_for_progress(200)
    finally:
        ledger = load.stop()
    cluster.a.engine.stop()  # SIGTERM: the nexus is shut down and its info marked clean

    cluster.a.restart()
    created = cluster.create_nexus()
    assert [(c["state"], c["healthy"]) for c in created["children"]] == [
        ("CHILD_STATE_ONLINE", True)
    ] * 3
    cluster.nexus("publish", NEXUS_UUID, "--allowed-host", TESTER_NQN)
    assert cluster.history() == []
    assert cluster.verify_nexus(ledger) == []
