"""``mayastor-client rebuild stop|pause|resume|state|stats`` on a rebuild that is running.

The rebuilt child is a replica of the same io-engine reached over NVMe/TCP through a
`FaultProxy` that delays every chunk it forwards, so the copy takes many seconds and is
still under way when the command under test arrives; the delay is lifted when a test
wants the rebuild to finish. The replicas are several times what a rebuild keeps in
flight (16 extents of 1 MiB), so a pause has copies left to hold. The setup and the
checks of the effect use the gRPC API directly; only the command under test goes
through mayastor-client.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from mayastor.api.v1 import common_pb2, nexus_pb2, nexus_pb2_grpc, replica_pb2
from mayastor.cli.output import message_to_dict
from mayastor.cluster.processes import EngineProcess
from tests.integration.conftest import make_sparse_file
from tests.support.engine_api import RPC_TIMEOUT, EngineApi
from tests.support.fault_proxy import FaultProxy
from tests.support.polling import wait_for

NEXUS = str(uuid.UUID(int=2))
SIZE = 64 << 20
BLOCK = 512
DELAY = 0.01
"""Seconds the proxy holds each chunk (of 64 KiB at most): the 64 MiB copy then takes
several seconds, what is in flight at a pause about one."""


@dataclass
class Rebuilding:
    """A nexus over local r1 whose child `uri` (r2, through the proxy) is being rebuilt."""

    engine: EngineProcess
    nexus: nexus_pb2_grpc.NexusRpcStub
    proxy: FaultProxy
    uri: str

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.engine.client("-o", "json", *args, check=True).stdout)

    def rebuild(self, action: str) -> None:
        """Start, pause, resume or stop the rebuild over gRPC."""
        call, request = {
            "start": (self.nexus.StartRebuild, nexus_pb2.StartRebuildRequest),
            "pause": (self.nexus.PauseRebuild, nexus_pb2.PauseRebuildRequest),
        }[action]
        call(request(nexus_uuid=NEXUS, uri=self.uri), timeout=RPC_TIMEOUT)

    def state(self) -> str:
        request = nexus_pb2.RebuildStateRequest(nexus_uuid=NEXUS, uri=self.uri)
        reply = self.nexus.GetRebuildState(request, timeout=RPC_TIMEOUT)
        return str(reply.state)

    def stats(self) -> dict[str, Any]:
        request = nexus_pb2.RebuildStatsRequest(nexus_uuid=NEXUS, uri=self.uri)
        return message_to_dict(self.nexus.GetRebuildStats(request, timeout=RPC_TIMEOUT))

    def child(self) -> dict[str, Any]:
        reply = self.nexus.ListNexus(nexus_pb2.ListNexusOptions(), timeout=RPC_TIMEOUT)
        (nexus,) = reply.nexus_list
        return {c.uri: message_to_dict(c) for c in nexus.children}[self.uri]

    def history(self) -> list[dict[str, Any]]:
        request = nexus_pb2.RebuildHistoryRequest(uuid=NEXUS)
        reply = self.nexus.GetRebuildHistory(request, timeout=RPC_TIMEOUT)
        return [message_to_dict(r) for r in reply.records]


@pytest.fixture
def rebuilding(engine: EngineProcess, tmp_path: Path) -> Iterator[Rebuilding]:
    """A nexus with a slow full rebuild of its second child, started and running."""
    api = EngineApi(engine.endpoint)
    nexus = nexus_pb2_grpc.NexusRpcStub(api.channel)
    disk = make_sparse_file(tmp_path / "disk.img", 3 * SIZE)
    api.create_pool("p1", str(disk), 4 << 20)
    api.create_replica("p1", "r1", str(uuid.UUID(int=0xB1)), SIZE, thin=False)
    r2 = api.create_replica("p1", "r2", str(uuid.UUID(int=0xB2)), SIZE, thin=False)
    shared = api.replicas.ShareReplica(
        replica_pb2.ShareReplicaRequest(uuid=r2.uuid, share=common_pb2.NVMF), timeout=RPC_TIMEOUT
    )
    proxy = FaultProxy("127.0.0.1", engine.replica_port).start()
    try:
        uri = shared.uri.replace(f":{engine.replica_port}/", f":{proxy.port}/")
        assert uri != shared.uri
        nexus.CreateNexus(
            nexus_pb2.CreateNexusRequest(
                name=NEXUS, uuid=NEXUS, size=SIZE, children=["bdev:///r1"]
            ),
            timeout=RPC_TIMEOUT,
        )
        nexus.AddChildNexus(
            nexus_pb2.AddChildNexusRequest(uuid=NEXUS, uri=uri, norebuild=True),
            timeout=RPC_TIMEOUT,
        )
        proxy.set_delay(DELAY)
        setup = Rebuilding(engine, nexus, proxy, uri)
        setup.rebuild("start")
        yield setup
        nexus.DestroyNexus(nexus_pb2.DestroyNexusRequest(uuid=NEXUS), timeout=RPC_TIMEOUT)
    finally:
        proxy.stop()
        api.close()


def drained(rebuilding: Rebuilding) -> None:
    """Wait for the segments in flight when the rebuild was paused to finish."""
    wait_for(lambda: rebuilding.stats()["tasks_active"] == 0, "no rebuild segment in flight")


def test_rebuild_pause_holds_a_running_rebuild(rebuilding: Rebuilding) -> None:
    assert rebuilding.state() == "running"
    shown = rebuilding.cli_json("rebuild", "pause", NEXUS, rebuilding.uri)
    (child,) = [c for c in shown["children"] if c["uri"] == rebuilding.uri]
    assert child["state"] == "CHILD_STATE_DEGRADED"
    assert 0 <= child["rebuild_progress"] < 100
    assert rebuilding.state() == "paused"
    drained(rebuilding)
    held = rebuilding.stats()["blocks_recovered"]
    rebuilding.proxy.set_delay(0)  # nothing holds the copy back now but the pause
    assert rebuilding.cli_json("rebuild", "state", NEXUS, rebuilding.uri) == {"state": "paused"}
    assert rebuilding.stats()["blocks_recovered"] == held < SIZE // BLOCK
    assert rebuilding.child()["state"] == "CHILD_STATE_DEGRADED"


def test_rebuild_state_of_a_paused_rebuild_is_paused(rebuilding: Rebuilding) -> None:
    rebuilding.rebuild("pause")
    assert rebuilding.cli_json("rebuild", "state", NEXUS, rebuilding.uri) == {"state": "paused"}
    out = rebuilding.engine.client("rebuild", "state", NEXUS, rebuilding.uri, check=True)
    assert out.stdout.strip() == "paused"


def test_rebuild_stats_of_a_paused_rebuild_add_up(rebuilding: Rebuilding) -> None:
    rebuilding.rebuild("pause")
    drained(rebuilding)
    stats = rebuilding.cli_json("rebuild", "stats", NEXUS, rebuilding.uri)
    now = rebuilding.stats()
    del stats["mb_per_s"], now["mb_per_s"]  # an average over the job's life, pauses too
    assert stats == now  # paused: nothing moves between the two reads
    assert stats["blocks_total"] == SIZE // BLOCK
    assert stats["block_size"] == BLOCK
    assert 0 <= stats["progress"] < 100
    assert stats["blocks_recovered"] + stats["blocks_remaining"] == stats["blocks_total"]
    assert stats["progress"] == stats["blocks_recovered"] * 100 // stats["blocks_total"]
    assert stats["blocks_transferred"] == stats["blocks_recovered"]  # a full rebuild
    assert stats["is_partial"] is False
    assert stats["tasks_active"] == 0
    assert stats["tasks_total"] >= 1


def test_rebuild_stop_ends_a_running_rebuild_and_leaves_the_child_out_of_sync(
    rebuilding: Rebuilding,
) -> None:
    assert rebuilding.state() == "running"
    shown = rebuilding.cli_json("rebuild", "stop", NEXUS, rebuilding.uri)
    assert shown["rebuilds"] == 0
    (child,) = [c for c in shown["children"] if c["uri"] == rebuilding.uri]
    assert (child["state"], child["state_reason"]) == (
        "CHILD_STATE_FAULTED",
        "CHILD_STATE_REASON_OUT_OF_SYNC",
    )
    assert rebuilding.child()["state_reason"] == "CHILD_STATE_REASON_OUT_OF_SYNC"
    with pytest.raises(grpc.RpcError) as gone:
        rebuilding.state()
    assert gone.value.code() is grpc.StatusCode.NOT_FOUND
    (record,) = rebuilding.history()
    assert (record["state"], record["reason"]) == ("Stopped", "stopped by request")
    assert record["blocks_recovered"] < record["blocks_total"]


def test_rebuild_resume_lets_a_paused_rebuild_complete(rebuilding: Rebuilding) -> None:
    rebuilding.rebuild("pause")
    rebuilding.proxy.set_delay(0)
    shown = rebuilding.cli_json("rebuild", "resume", NEXUS, rebuilding.uri)
    (child,) = [c for c in shown["children"] if c["uri"] == rebuilding.uri]
    assert child["state"] in ("CHILD_STATE_DEGRADED", "CHILD_STATE_ONLINE")
    wait_for(lambda: rebuilding.child()["state"] == "CHILD_STATE_ONLINE", "the child online")
    assert rebuilding.child()["healthy"] is True
    (record,) = rebuilding.history()
    assert (record["state"], record["is_partial"]) == ("Completed", False)
    assert record["blocks_recovered"] == record["blocks_total"] == SIZE // BLOCK
