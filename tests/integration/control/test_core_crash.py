"""The core agent SIGKILLed at seeded random moments of operations, then restarted.

Each round starts one operation (create, publish, republish, scale, resize, unpublish
or destroy) through REST, waits until the store shows the operation under way, kills
the core agent a random 0-12 ms later (an operation takes 10-20 ms inside the core agent
here, so most kills land inside one; the test checks that enough did), starts
it again and waits for the reconciler: the specs and what the io-engines hold must
agree again, with no orphan replica, share or nexus and no volume missing a replica.
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from tests.support.agreement import Workload, disagreements, engine_state, fire
from tests.support.cluster import TestCluster
from tests.support.polling import wait_for

pytestmark = pytest.mark.slow

SEED = 20261204
ROUNDS = 20


def wait_for_operation_under_way(store: Path, caller: threading.Thread) -> None:
    """Until a spec in the store records an operation (or the call is over)."""
    query = (
        "SELECT count(*) FROM kv WHERE CAST(value AS TEXT) LIKE '%\"operation\"%' "
        "OR CAST(value AS TEXT) LIKE '%\"Creating\"%' "
        "OR CAST(value AS TEXT) LIKE '%\"Deleting\"%'"
    )
    deadline = time.monotonic() + 5
    with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as db:
        while caller.is_alive() and time.monotonic() < deadline:
            if db.execute(query).fetchone()[0]:
                return
            time.sleep(0.0005)


def test_specs_and_io_engines_agree_after_the_core_agent_is_killed_mid_operation(
    cluster: TestCluster,
) -> None:
    rng = random.Random(SEED)
    workload = Workload(rng)
    for round_no in range(ROUNDS):
        method, path, body = workload.next_call(cluster)
        caller = threading.Thread(target=fire, args=(cluster.core.rest_url, method, path, body))
        caller.start()
        wait_for_operation_under_way(Path(cluster.core.store), caller)
        caller.join(rng.uniform(0.0, 0.012))
        cluster.core.kill()
        caller.join()
        cluster.core.start()
        last: list[str] = []

        def settled(last: list[str] = last) -> bool:
            last[:] = disagreements(cluster)
            return not last

        try:
            wait_for(settled, f"round {round_no}: specs and io-engines agree", 60)
        except AssertionError:
            raise AssertionError(f"round {round_no} ({method} {path}): {last}") from None
        cluster.wait_nodes_online(list(cluster.engines))
    for volume in cluster.rest.get("/volumes")["entries"]:
        cluster.rest.delete(f"/volumes/{volume['spec']['uuid']}")
    wait_for(
        lambda: all(h == {"replica": [], "nexus": []} for h in engine_state(cluster).values()),
        "every io-engine empty after the volumes are destroyed",
        30,
    )
    assert disagreements(cluster) == []
    interrupted = cluster.core.log_path.read_text().count("settling an unfinished")
    assert interrupted >= 3, f"only {interrupted} of {ROUNDS} kills landed inside an operation"
