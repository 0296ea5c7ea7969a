"""The cluster store going away, and core agents taking over from each other.

With etcd down the REST API refuses changes with 503 and the reason, reads still
answer from the agent's memory, published volumes keep serving I/O (the data path
does not need the store), and once etcd is back everything converges. Two core agents
on one store: one acts, the other waits, and takes over within the lease period when
the first dies; a first agent that lost its lease while frozen stops when it wakes.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mayastor.api.store_keys import StoreKeys
from mayastor.cluster.processes import CoreAgentProcess, EtcdProcess
from mayastor.control.store import EtcdStore
from tests.support.agreement import Workload, disagreements
from tests.support.cluster import FAST_CORE_FLAGS, TestCluster
from tests.support.polling import wait_for
from tests.support.verified_writes import BackgroundLoad, verify_uri
from tests.support.volume_io import frontend_nqn

pytestmark = pytest.mark.slow

MIB = 1 << 20
LEASE_TTL = 3.0
BODY = {"size": 16 * MIB, "replicas": 3, "thin": False, "policy": {"self_heal": True}}


def published_volume(cluster: TestCluster) -> tuple[str, str]:
    volume = str(uuid.uuid4())
    cluster.rest.put(f"/volumes/{volume}", BODY)
    published = cluster.rest.put(
        f"/volumes/{volume}/target",
        {"protocol": "nvmf", "publish_context": {}, "frontend_node": "app-1"},
    )
    return volume, published["state"]["target"]["deviceUri"]


def test_with_etcd_down_changes_are_refused_reads_answer_and_io_goes_on(
    etcd: EtcdProcess, make_cluster: Callable[..., TestCluster]
) -> None:
    cluster = make_cluster(store=etcd.url)
    volume, uri = published_volume(cluster)
    load = BackgroundLoad(uri, units=256, depth=8, hostnqn=frontend_nqn("app-1"))
    load.start()
    ledger = load.ledger
    assert ledger is not None
    try:
        wait_for(lambda: ledger.acknowledged > 50, "writes flowing before the outage", 30)
        etcd.kill()
        refused_volume = str(uuid.uuid4())
        status, body = cluster.rest.call("PUT", f"/volumes/{refused_volume}", BODY)
        assert (status, body["kind"]) == (503, "Unavailable")
        assert f"127.0.0.1:{etcd.client_port}" in body["message"]
        status, body = cluster.rest.call("DELETE", f"/volumes/{volume}")
        assert status == 503
        assert cluster.volume(volume)["state"]["status"] == "Online"
        during = ledger.acknowledged
        wait_for(lambda: ledger.acknowledged > during + 200, "writes acknowledged", 30)
        etcd.start()
        wait_for(
            lambda: cluster.rest.call("PUT", f"/volumes/{uuid.uuid4()}", BODY)[0] == 200,
            "changes accepted again once etcd is back",
            60,
        )
    finally:
        load.stop()
    assert load.errors == [], "no write failed while etcd was away"
    assert cluster.rest.call("GET", f"/volumes/{refused_volume}")[0] == 404
    assert cluster.volume(volume)["state"]["status"] == "Online"
    mismatches = asyncio.run(verify_uri(ledger, uri, hostnqn=frontend_nqn("app-1")))
    assert mismatches == []
    cluster.rest.delete(f"/volumes/{volume}")


def test_with_no_core_agent_a_lost_replica_is_retired_through_etcd_and_io_goes_on(
    etcd: EtcdProcess, make_cluster: Callable[..., TestCluster]
) -> None:
    cluster = make_cluster(store=etcd.url)
    volume, uri = published_volume(cluster)
    spec = cluster.volume(volume)
    nexus = spec["spec"]["target"]["nexus"]
    victim = next(r for r, t in spec["state"]["replica_topology"].items() if t["node"] == "node-3")
    load = BackgroundLoad(uri, units=256, depth=8, hostnqn=frontend_nqn("app-1"))
    load.start()
    ledger = load.ledger
    assert ledger is not None
    try:
        wait_for(lambda: ledger.acknowledged > 50, "writes flowing", 30)
        cluster.core.kill()
        cluster.engines["node-3"].kill()
        during = ledger.acknowledged
        wait_for(lambda: ledger.acknowledged > during + 300, "writes acknowledged", 60)
    finally:
        load.stop()
    assert load.errors == [], "no write failed while the replica was retired"
    info = asyncio.run(_read_etcd(etcd.url, StoreKeys("mayastor").nexus_info(nexus)))
    healthy = {c["uuid"]: c["healthy"] for c in info["children"]}
    assert healthy[victim] is False
    assert sum(healthy.values()) == 2
    cluster.core.start()
    wait_for(lambda: cluster.volume(volume)["state"]["status"] == "Degraded", "Degraded", 30)
    mismatches = asyncio.run(verify_uri(ledger, uri, hostnqn=frontend_nqn("app-1")))
    assert mismatches == []


async def _read_etcd(url: str, key: str) -> Any:
    store = EtcdStore(url)
    try:
        entry = await store.get(key)
    finally:
        await store.close()
    assert entry is not None, f"no {key} in etcd"
    return json.loads(entry.value)


def _agent(
    workdir: Path, store: str, rest_port: int, grpc_port: int, name: str
) -> CoreAgentProcess:
    return CoreAgentProcess(
        workdir,
        store=store,
        rest_port=rest_port,
        grpc_port=grpc_port,
        extra_args=FAST_CORE_FLAGS,
        log_name=f"{name}.log",
    )


def _close_before_the_standby(cluster: TestCluster, standby: CoreAgentProcess) -> None:
    """Stop the io-engines while the standby, the only core agent left, still serves:
    a stopping io-engine records its nexus's clean shutdown with the core agent and,
    with none to answer, tries for its full deadline (15 s) first."""
    cluster.close()
    standby.stop()


@pytest.mark.parametrize("store_kind", ["etcd", "embedded"])
def test_a_second_core_agent_takes_over_within_the_lease_period(
    etcd: EtcdProcess,
    make_cluster: Callable[..., TestCluster],
    tmp_path: Path,
    store_kind: str,
) -> None:
    store = etcd.url if store_kind == "etcd" else None
    cluster = make_cluster(store=store)
    first = cluster.core
    volume, _ = published_volume(cluster)
    standby = _agent(tmp_path, first.store, first.rest_port, first.grpc_port, "standby")
    standby.start(wait_serving=False)
    try:
        time.sleep(2 * LEASE_TTL)
        assert standby.running
        assert "waiting for the lease" in standby.log_tail()
        assert "holds the lease" not in standby.log_tail()
        first.kill()
        killed = time.monotonic()
        standby.wait_serving(30)
        took = time.monotonic() - killed
        assert took <= LEASE_TTL + 5, f"took over after {took:.1f} s"
        assert "holds the lease" in standby.log_tail()
        cluster.wait_nodes_online(list(cluster.engines))
        assert cluster.volume(volume)["spec"]["target"]["node"]
        wait_for(lambda: cluster.volume(volume)["state"]["status"] == "Online", "volume Online", 30)
        cluster.rest.put(f"/volumes/{volume}/replica_count/2")
    finally:
        _close_before_the_standby(cluster, standby)


def test_an_agent_that_lost_its_lease_while_frozen_stops_when_it_wakes(
    etcd: EtcdProcess, make_cluster: Callable[..., TestCluster], tmp_path: Path
) -> None:
    cluster = make_cluster(store=etcd.url)
    first = cluster.core
    standby = _agent(tmp_path, etcd.url, first.rest_port, first.grpc_port, "standby")
    standby.start(wait_serving=False)
    try:
        first.pause()
        wait_for(lambda: "holds the lease" in standby.log_tail(), "the standby took the lease", 30)
        first.resume()
        assert first.proc is not None
        first.proc.wait(30)
        assert first.proc.returncode == 2
        assert "lease was lost" in first.log_tail()
        standby.wait_serving(60)
        cluster.wait_nodes_online(list(cluster.engines))
        cluster.rest.put(f"/volumes/{uuid.uuid4()}", BODY)
    finally:
        _close_before_the_standby(cluster, standby)


def test_etcd_killed_inside_operations_leaves_specs_and_io_engines_that_agree_once_back(
    etcd: EtcdProcess, make_cluster: Callable[..., TestCluster]
) -> None:
    cluster = make_cluster(store=etcd.url)
    rng = random.Random(20261205)
    workload = Workload(rng)
    answers: list[int] = []
    for round_no in range(8):
        method, path, body = workload.next_call(cluster)
        caller = threading.Thread(target=_answer, args=(cluster, method, path, body, answers))
        caller.start()
        caller.join(rng.uniform(0.0, 0.03))
        etcd.kill()
        caller.join()
        etcd.start()
        last: list[str] = []

        def settled(last: list[str] = last) -> bool:
            last[:] = disagreements(cluster)
            return not last

        try:
            wait_for(settled, f"round {round_no}: specs and io-engines agree", 60)
        except AssertionError:
            raise AssertionError(f"round {round_no} ({method} {path}): {last}") from None
    assert set(answers) <= {200, 204, 409, 412, 503}, answers
    assert 503 in answers, "some operation met etcd down"


def _answer(cluster: TestCluster, method: str, path: str, body: Any, answers: list[int]) -> None:
    answers.append(cluster.rest.call(method, path, body)[0])
