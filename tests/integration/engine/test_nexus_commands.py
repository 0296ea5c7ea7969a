"""Nexuses over local replicas, driven through mayastor-client against a real io-engine."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from mayastor.api.v1 import common_pb2, nexus_pb2, nexus_pb2_grpc, replica_pb2
from mayastor.bdev import NvmfDevice
from mayastor.cli.output import message_to_dict
from mayastor.cluster.processes import EngineProcess
from mayastor.errors import ConnectInvalidParameters, DeviceNotReady
from mayastor.nvmf.host import ControllerOptions
from tests.integration.conftest import make_sparse_file
from tests.support.engine_api import RPC_TIMEOUT, EngineApi
from tests.support.polling import wait_for
from tests.support.verified_writes import TESTER_NQN

NEXUS = str(uuid.UUID(int=1))


@pytest.fixture
def pool(engine: EngineProcess, tmp_path: Path) -> EngineProcess:
    disk = make_sparse_file(tmp_path / "disk.img", 256 << 20)
    engine.client("pool", "create", "p1", str(disk), check=True)
    for name in ("r1", "r2", "r3"):
        engine.client("replica", "create", "p1", name, "--size=16", check=True)
    return engine


def children(engine: EngineProcess) -> dict[str, dict[str, object]]:
    out = engine.client("-o", "json", "nexus", "list", check=True).stdout
    (nexus,) = json.loads(out)
    return {c["uri"]: c for c in nexus["children"]}


def test_nexus_over_two_local_replicas_is_online(pool: EngineProcess) -> None:
    out = pool.client("nexus", "create", NEXUS, "16", "bdev:///r1", "bdev:///r2", check=True)
    assert "online" in out.stdout
    listing = pool.client("nexus", "list", check=True).stdout.splitlines()
    assert listing[1].split()[:2] == [NEXUS, NEXUS]
    assert "online" in listing[1]
    kids = children(pool)
    assert [k["state"] for k in kids.values()] == ["CHILD_STATE_ONLINE"] * 2
    assert all(k["healthy"] for k in kids.values())


def test_a_replica_in_a_nexus_cannot_be_destroyed_until_the_nexus_is(pool: EngineProcess) -> None:
    pool.client("nexus", "create", NEXUS, "16", "bdev:///r1", "bdev:///r2", check=True)
    refused = pool.client("replica", "destroy", "p1", "r1")
    assert refused.returncode == 1
    assert "in use" in refused.stderr
    pool.client("nexus", "destroy", NEXUS, check=True)
    pool.client("replica", "destroy", "p1", "r1", check=True)


def test_a_child_smaller_than_the_nexus_is_refused(pool: EngineProcess) -> None:
    result = pool.client("nexus", "create", NEXUS, "32", "bdev:///r1")
    assert result.returncode == 1
    assert "invalid_argument" in result.stderr
    assert "No nexus found" in pool.client("nexus", "list").stdout
    pool.client("replica", "destroy", "p1", "r1", check=True)  # not left claimed


def test_added_child_is_rebuilt_and_recorded_in_the_history(pool: EngineProcess) -> None:
    pool.client("nexus", "create", NEXUS, "16", "bdev:///r1", check=True)
    pool.client("nexus", "add", NEXUS, "bdev:///r2", check=True)
    wait_for(lambda: children(pool)["bdev:///r2"]["state"] == "CHILD_STATE_ONLINE", "r2 online")
    history = json.loads(pool.client("-o", "json", "rebuild", "history", NEXUS, check=True).stdout)
    assert [(r["child_uri"], r["state"], r["is_partial"]) for r in history] == [
        ("bdev:///r2", "Completed", False)
    ]
    assert history[0]["blocks_transferred"] * history[0]["block_size"] == 16 << 20


def test_offline_child_comes_back_with_a_partial_rebuild(pool: EngineProcess) -> None:
    pool.client("nexus", "create", NEXUS, "16", "bdev:///r1", "bdev:///r2", check=True)
    out = pool.client("nexus", "child", "offline", NEXUS, "bdev:///r2", check=True).stdout
    assert "faulted (offline)" in out
    assert children(pool)["bdev:///r2"]["has_io_log"] is True
    pool.client("nexus", "child", "online", NEXUS, "bdev:///r2", check=True)
    wait_for(lambda: children(pool)["bdev:///r2"]["state"] == "CHILD_STATE_ONLINE", "r2 online")
    history = json.loads(pool.client("-o", "json", "rebuild", "history", NEXUS, check=True).stdout)
    assert history[-1]["is_partial"] is True
    assert history[-1]["blocks_transferred"] == 0  # nothing was written while it was away


def test_faulted_child_is_reported_with_its_reason(pool: EngineProcess) -> None:
    pool.client("nexus", "create", NEXUS, "16", "bdev:///r1", "bdev:///r2", check=True)
    pool.client("nexus", "child", "fault", NEXUS, "bdev:///r2", check=True)
    table = pool.client("nexus", "children", NEXUS, check=True).stdout
    assert "faulted (by_client)" in table
    assert children(pool)["bdev:///r2"]["healthy"] is False


def test_nexus_info_survives_a_restart_and_only_healthy_children_are_trusted(
    pool: EngineProcess, tmp_path: Path
) -> None:
    pool.client("nexus", "create", NEXUS, "16", "bdev:///r1", "bdev:///r2", check=True)
    pool.client("nexus", "child", "fault", NEXUS, "bdev:///r2", check=True)
    pool.stop()
    pool.pools = [f"p1={tmp_path / 'disk.img'}"]
    pool.start()
    pool.client("nexus", "create", NEXUS, "16", "bdev:///r1", "bdev:///r2", check=True)
    wait_for(lambda: children(pool)["bdev:///r2"]["state"] == "CHILD_STATE_ONLINE", "r2 online")
    history = json.loads(pool.client("-o", "json", "rebuild", "history", NEXUS, check=True).stdout)
    assert [(r["child_uri"], r["src_uri"], r["is_partial"]) for r in history] == [
        ("bdev:///r2", "bdev:///r1", False)
    ]


def test_rebuild_commands_need_a_known_child(pool: EngineProcess) -> None:
    pool.client("nexus", "create", NEXUS, "16", "bdev:///r1", check=True)
    result = pool.client("rebuild", "state", NEXUS, "bdev:///nope")
    assert result.returncode == 1
    assert "not_found" in result.stderr


# ----------------------------------------------------------------------------- more commands
# The tests below set up and check through the gRPC API (`EngineApi`, a NexusRpc stub),
# so only the command under test goes through mayastor-client.


@pytest.fixture
def api(engine: EngineProcess) -> Iterator[EngineApi]:
    api = EngineApi(engine.endpoint)
    yield api
    api.close()


@pytest.fixture
def replicas(engine: EngineProcess, api: EngineApi, tmp_path: Path) -> EngineProcess:
    """Pool p1 with thick 16 MiB replicas r1, r2, r3 (made over gRPC: quicker)."""
    disk = make_sparse_file(tmp_path / "disk.img", 128 << 20)
    api.create_pool("p1", str(disk), 4 << 20)
    for n, name in enumerate(("r1", "r2", "r3")):
        api.create_replica("p1", name, str(uuid.UUID(int=0xA0 + n)), 16 << 20, thin=False)
    return engine


def nexus_stub(api: EngineApi) -> nexus_pb2_grpc.NexusRpcStub:
    return nexus_pb2_grpc.NexusRpcStub(api.channel)


def list_nexus(api: EngineApi) -> list[dict[str, Any]]:
    reply = nexus_stub(api).ListNexus(nexus_pb2.ListNexusOptions(), timeout=RPC_TIMEOUT)
    return [message_to_dict(n) for n in reply.nexus_list]


def create_nexus(api: EngineApi, *children: str) -> None:
    request = nexus_pb2.CreateNexusRequest(
        name=NEXUS, uuid=NEXUS, size=16 << 20, children=list(children)
    )
    nexus_stub(api).CreateNexus(request, timeout=RPC_TIMEOUT)


def publish(api: EngineApi) -> str:
    request = nexus_pb2.PublishNexusRequest(uuid=NEXUS, share=common_pb2.NVMF)
    uri: str = nexus_stub(api).PublishNexus(request, timeout=RPC_TIMEOUT).nexus.device_uri
    return uri


def rebuild_history(api: EngineApi) -> list[dict[str, Any]]:
    request = nexus_pb2.RebuildHistoryRequest(uuid=NEXUS)
    reply = nexus_stub(api).GetRebuildHistory(request, timeout=RPC_TIMEOUT)
    return [message_to_dict(r) for r in reply.records]


def destroy_replica(api: EngineApi, name: str) -> None:
    api.replicas.DestroyReplica(
        replica_pb2.DestroyReplicaRequest(pool_name="p1", name=name), timeout=RPC_TIMEOUT
    )


def cli_json(engine: EngineProcess, *args: str) -> Any:
    return json.loads(engine.client("-o", "json", *args, check=True).stdout)


def test_nexus_create_takes_a_size_with_a_unit(replicas: EngineProcess, api: EngineApi) -> None:
    created = cli_json(replicas, "nexus", "create", NEXUS, "12MiB", "bdev:///r1", "bdev:///r2")
    assert created["size"] == 12 << 20
    assert created["state"] == "NEXUS_ONLINE"
    (listed,) = list_nexus(api)
    assert listed["size"] == 12 << 20


def test_nexus_shutdown_refuses_io_and_keeps_its_children(
    replicas: EngineProcess, api: EngineApi
) -> None:
    create_nexus(api, "bdev:///r1", "bdev:///r2")
    uri = publish(api)

    async def write_across_shutdown() -> dict[str, Any]:
        device = await NvmfDevice.open(uri, options=ControllerOptions(hostnqn=TESTER_NQN))
        try:
            await device.write(0, b"\x11" * 4096)
            result = await asyncio.to_thread(
                replicas.client, "-o", "json", "nexus", "shutdown", NEXUS
            )
            with pytest.raises(DeviceNotReady):
                await device.write(0, b"\x22" * 4096)
            with pytest.raises(DeviceNotReady):
                await device.read(0, 8)
            assert result.returncode == 0, result.stderr
            shown: dict[str, Any] = json.loads(result.stdout)
            return shown
        finally:
            await device.close()

    shown = asyncio.run(write_across_shutdown())
    assert shown["state"] == "NEXUS_SHUTDOWN"
    (listed,) = list_nexus(api)
    assert listed["state"] == "NEXUS_SHUTDOWN"
    assert [c["uri"] for c in listed["children"]] == ["bdev:///r1", "bdev:///r2"]
    with pytest.raises(grpc.RpcError) as refused:
        destroy_replica(api, "r1")  # still claimed by the nexus
    assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION


def test_a_shut_down_nexus_can_be_destroyed_and_its_replicas_freed(
    replicas: EngineProcess, api: EngineApi
) -> None:
    create_nexus(api, "bdev:///r1", "bdev:///r2")
    assert cli_json(replicas, "nexus", "shutdown", NEXUS)["state"] == "NEXUS_SHUTDOWN"
    assert replicas.client("-o", "json", "nexus", "destroy", NEXUS, check=True).stdout == ""
    assert list_nexus(api) == []
    destroy_replica(api, "r1")
    destroy_replica(api, "r2")
    assert sorted(r.name for r in api.list_replicas().values()) == ["r3"]


def test_nexus_unpublish_drops_the_device_uri_and_refuses_connections(
    replicas: EngineProcess, api: EngineApi
) -> None:
    create_nexus(api, "bdev:///r1")
    uri = publish(api)
    assert uri.startswith(f"nvmf://127.0.0.1:{replicas.nexus_port}/")
    shown = cli_json(replicas, "nexus", "unpublish", NEXUS)
    assert shown["device_uri"] == ""
    assert shown["state"] == "NEXUS_ONLINE"
    (listed,) = list_nexus(api)
    assert listed["device_uri"] == ""

    async def connect() -> None:
        device = await NvmfDevice.open(uri, options=ControllerOptions(hostnqn=TESTER_NQN))
        await device.close()

    with pytest.raises(ConnectInvalidParameters):
        asyncio.run(connect())


def test_a_child_added_with_norebuild_stays_out_of_sync_and_is_not_rebuilt(
    replicas: EngineProcess, api: EngineApi
) -> None:
    create_nexus(api, "bdev:///r1")
    shown = cli_json(replicas, "nexus", "add", NEXUS, "bdev:///r2", "--norebuild")
    assert shown["state"] == "NEXUS_DEGRADED"
    assert shown["rebuilds"] == 0
    added = {c["uri"]: c for c in shown["children"]}["bdev:///r2"]
    assert (added["state"], added["state_reason"], added["healthy"]) == (
        "CHILD_STATE_FAULTED",
        "CHILD_STATE_REASON_OUT_OF_SYNC",
        False,
    )
    assert "not being rebuilt" in replicas.client("rebuild", "state", NEXUS, "bdev:///r2").stderr
    assert rebuild_history(api) == []
    (listed,) = list_nexus(api)
    assert listed["children"][1]["state_reason"] == "CHILD_STATE_REASON_OUT_OF_SYNC"


def test_rebuild_start_rebuilds_a_child_added_with_norebuild_in_full(
    replicas: EngineProcess, api: EngineApi
) -> None:
    create_nexus(api, "bdev:///r1")
    replicas.client("nexus", "add", NEXUS, "bdev:///r2", "--norebuild", check=True)
    shown = cli_json(replicas, "rebuild", "start", NEXUS, "bdev:///r2")
    assert shown["rebuilds"] == 1
    assert {c["uri"]: c["state"] for c in shown["children"]}["bdev:///r2"] in (
        "CHILD_STATE_DEGRADED",
        "CHILD_STATE_ONLINE",  # it may already have finished
    )
    wait_for(lambda: list_nexus(api)[0]["state"] == "NEXUS_ONLINE", "nexus online")
    assert [c["state"] for c in list_nexus(api)[0]["children"]] == ["CHILD_STATE_ONLINE"] * 2
    assert [(r["child_uri"], r["state"], r["is_partial"]) for r in rebuild_history(api)] == [
        ("bdev:///r2", "Completed", False)
    ]
    (record,) = rebuild_history(api)
    assert record["blocks_transferred"] * record["block_size"] == 16 << 20


def test_nexus_resize_after_its_replicas_grew_is_seen_by_a_connected_host(
    replicas: EngineProcess, api: EngineApi
) -> None:
    create_nexus(api, "bdev:///r1", "bdev:///r2")
    uri = publish(api)
    refused = replicas.client("nexus", "resize", NEXUS, "32MiB")
    assert refused.returncode == 1
    assert "resize it first" in refused.stderr
    for name in ("r1", "r2"):
        replicas.client("replica", "resize", "p1", name, "32MiB", check=True)

    async def grow_while_connected() -> tuple[int, int, bytes]:
        device = await NvmfDevice.open(uri, options=ControllerOptions(hostnqn=TESTER_NQN))
        try:
            before = device.size
            result = await asyncio.to_thread(
                replicas.client, "-o", "json", "nexus", "resize", NEXUS, "32MiB"
            )
            assert result.returncode == 0, result.stderr
            after = await device.refresh_size()
            last = device.num_blocks - 1
            await device.write(last, b"\x5a" * 512)
            return before, after * device.block_size, bytes(await device.read(last, 1))
        finally:
            await device.close()

    before, after, data = asyncio.run(grow_while_connected())
    assert (before, after) == (16 << 20, 32 << 20)
    assert data == b"\x5a" * 512
    (listed,) = list_nexus(api)
    assert listed["size"] == 32 << 20
