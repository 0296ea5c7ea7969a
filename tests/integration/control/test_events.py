"""Events of a fault, kept by the core agent and published on NATS in order."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest

from mayastor.cluster.processes import NatsProcess
from tests.support.cluster import FAST_CORE_FLAGS, TestCluster
from tests.support.polling import wait_for
from tests.support.volume_io import frontend_nqn, write_at

pytestmark = pytest.mark.slow

MIB = 1 << 20


class Subscriber:
    """A NATS subscriber in a thread of its own, keeping every event it receives."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.received: list[dict[str, Any]] = []
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        client = await nats.connect(servers=[self.url])

        async def keep(message: Any) -> None:
            self.received.append(json.loads(message.data))

        await client.subscribe("mayastor.events.>", cb=keep)
        await client.flush()
        self._ready.set()
        await self._stop.wait()
        await client.drain()

    def __enter__(self) -> Subscriber:
        self._thread.start()
        assert self._ready.wait(30), "the subscriber did not connect"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def actions(self, target: str | None = None) -> list[str]:
        return [e["action"] for e in self.received if target is None or e["target"] == target]


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsProcess]:
    process = NatsProcess(tmp_path / "nats")
    process.start()
    yield process
    process.stop()


def in_order(seen: list[str], wanted: list[str]) -> bool:
    """Whether `wanted` appears in `seen` in this order (others may come between)."""
    at = 0
    for action in seen:
        if at < len(wanted) and action == wanted[at]:
            at += 1
    return at == len(wanted)


def test_the_events_of_a_lost_and_healed_replica_reach_nats_in_order(
    make_cluster: Callable[..., TestCluster], nats_server: NatsProcess
) -> None:
    cluster = make_cluster(core_flags=(*FAST_CORE_FLAGS, "--events", nats_server.url))
    volume = str(uuid.uuid4())
    cluster.rest.put(
        f"/volumes/{volume}",
        {"size": 32 * MIB, "replicas": 3, "thin": False, "policy": {"self_heal": True}},
    )
    published = cluster.rest.put(
        f"/volumes/{volume}/target",
        {"protocol": "nvmf", "publish_context": {}, "frontend_node": "app-1", "node": "node-1"},
    )
    uri = published["state"]["target"]["deviceUri"]
    with Subscriber(nats_server.url) as subscriber:
        cluster.engines["node-3"].kill()
        write_at(uri, frontend_nqn("app-1"), 0, os.urandom(MIB))
        wait_for(lambda: "Degraded" in subscriber.actions(volume), "Degraded published", 30)
        cluster.engines["node-3"].start()
        wait_for(
            lambda: in_order(subscriber.actions(volume), ["Degraded", "Online"]),
            "Online published",
            60,
        )
    volume_events = subscriber.actions(volume)
    # The volume may show Degraded (its replica's node is gone) before the nexus
    # retires the child, or after: both orders are what happened.
    assert in_order(volume_events, ["ChildFaulted", "Reattaching", "RebuildFinished", "Online"]), (
        volume_events
    )
    assert in_order(volume_events, ["Degraded", "Reattaching"]), volume_events
    assert in_order(subscriber.actions("node-3"), ["Offline", "Restarted"])
    seqs = [e["seq"] for e in subscriber.received]
    assert seqs == sorted(seqs), "published in the order they happened"
    kept = cluster.rest.get("/events", target=volume)
    assert [e["action"] for e in kept][-len(volume_events) :] == volume_events
    faulted = next(e for e in kept if e["action"] == "ChildFaulted")
    assert "TimedOut" in faulted["message"] or "IoFailure" in faulted["message"]


def test_events_are_kept_across_a_restart_of_the_core_agent(cluster: TestCluster) -> None:
    cluster.engines["node-2"].kill()
    wait_for(
        lambda: any(e["action"] == "Offline" for e in cluster.rest.get("/events", target="node-2")),
        "node-2 offline recorded",
        30,
    )
    cluster.core.stop()
    cluster.core.start()
    kept = cluster.rest.get("/events", category="node")
    assert any(e["action"] == "Offline" and e["target"] == "node-2" for e in kept)
