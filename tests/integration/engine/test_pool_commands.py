"""Pools, replicas and bdevs driven through mayastor-client against a real io-engine.

Each test runs the command under test with ``-o json`` and checks both what it printed
and what it did. The setup and the checks of the effect go straight to the io-engine's
gRPC API (`EngineApi`), so they do not lean on the client being tested, and the data a
shared replica holds is read back through our NVMe/TCP initiator.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mayastor.api.v1 import bdev_pb2, bdev_pb2_grpc, common_pb2, replica_pb2
from mayastor.bdev import NvmfDevice
from mayastor.cli.output import message_to_dict
from mayastor.cluster.processes import EngineProcess
from mayastor.nvmf.host import ControllerOptions
from tests.integration.conftest import make_sparse_file
from tests.support.engine_api import RPC_TIMEOUT, EngineApi

IO_ENGINE_NQN = "nqn.2019-05.io.openebs:node-name:tester"
R1 = "00000000-0000-4000-8000-0000000000a1"
R2 = "00000000-0000-4000-8000-0000000000a2"


@pytest.fixture
def disk(tmp_path: Path) -> Path:
    return make_sparse_file(tmp_path / "disk.img", 64 << 20)


@pytest.fixture
def api(engine: EngineProcess) -> Iterator[EngineApi]:
    api = EngineApi(engine.endpoint)
    yield api
    api.close()


@pytest.fixture
def pool(engine: EngineProcess, api: EngineApi, disk: Path) -> EngineProcess:
    """Pool p1 (4 MiB clusters) with r1, thick 16 MiB, and r2, thin 8 MiB."""
    api.create_pool("p1", str(disk), 4 << 20)
    api.create_replica("p1", "r1", R1, 16 << 20, thin=False)
    api.create_replica("p1", "r2", R2, 8 << 20, thin=True)
    return engine


def cli_json(engine: EngineProcess, *args: str) -> Any:
    return json.loads(engine.client("-o", "json", *args, check=True).stdout)


def pools(api: EngineApi) -> dict[str, dict[str, Any]]:
    return {name: message_to_dict(p) for name, p in api.list_pools().items()}


def replicas(api: EngineApi) -> dict[str, dict[str, Any]]:
    return {r.name: message_to_dict(r) for r in api.list_replicas().values()}


def share(api: EngineApi, uuid: str) -> str:
    request = replica_pb2.ShareReplicaRequest(uuid=uuid, share=common_pb2.NVMF)
    reply: replica_pb2.Replica = api.replicas.ShareReplica(request, timeout=RPC_TIMEOUT)
    return reply.uri


def bdev_names(api: EngineApi) -> list[str]:
    stub = bdev_pb2_grpc.BdevRpcStub(api.channel)
    reply = stub.ListBdevs(bdev_pb2.ListBdevOptions(), timeout=RPC_TIMEOUT)
    return [b.name for b in reply.bdevs]


async def _open(uri: str) -> NvmfDevice:
    return await NvmfDevice.open(uri, options=ControllerOptions(hostnqn=IO_ENGINE_NQN))


def write_at(uri: str, offset: int, data: bytes) -> None:
    async def run() -> None:
        device = await _open(uri)
        try:
            await device.write(offset // device.block_size, data)
            await device.flush()
        finally:
            await device.close()

    asyncio.run(run())


def read_at(uri: str, offset: int, size: int) -> bytes:
    async def run() -> bytes:
        device = await _open(uri)
        try:
            bs = device.block_size
            return bytes(await device.read(offset // bs, size // bs))
        finally:
            await device.close()

    return asyncio.run(run())


# ----------------------------------------------------------------------------- export/import


def test_an_exported_pool_is_no_longer_listed_nor_its_replicas(
    pool: EngineProcess, api: EngineApi
) -> None:
    assert pool.client("-o", "json", "pool", "export", "p1", check=True).stdout == ""
    assert pools(api) == {}
    assert replicas(api) == {}


def test_pool_import_brings_back_the_pool_and_its_replicas_as_they_were(
    pool: EngineProcess, api: EngineApi, disk: Path
) -> None:
    pool_before, replicas_before = pools(api)["p1"], replicas(api)
    pool.client("pool", "export", "p1", check=True)
    imported = cli_json(pool, "pool", "import", "p1", str(disk))
    assert imported == pool_before
    assert pools(api) == {"p1": pool_before}
    assert replicas(api) == replicas_before
    assert {(r["name"], r["uuid"], r["size"]) for r in replicas_before.values()} == {
        ("r1", R1, 16 << 20),
        ("r2", R2, 8 << 20),
    }


def test_data_written_to_a_shared_replica_reads_back_after_export_and_import(
    pool: EngineProcess, api: EngineApi, disk: Path
) -> None:
    uri = share(api, R1)
    data = os.urandom(64 << 10)
    write_at(uri, 1 << 20, data)
    pool.client("pool", "export", "p1", check=True)
    imported = cli_json(pool, "pool", "import", "p1", str(disk))
    assert imported["state"] == "POOL_ONLINE"
    assert replicas(api)["r1"]["uri"] == uri  # shared again, at the same address
    assert read_at(uri, 1 << 20, len(data)) == data


def test_importing_a_disk_that_holds_no_pool_is_refused(
    engine: EngineProcess, api: EngineApi, disk: Path
) -> None:
    result = engine.client("-o", "json", "pool", "import", "p1", str(disk))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    assert pools(api) == {}


# ----------------------------------------------------------------------------- grow


def test_pool_grow_takes_the_space_the_disk_gained(
    pool: EngineProcess, api: EngineApi, disk: Path
) -> None:
    os.truncate(disk, 192 << 20)
    reply = cli_json(pool, "pool", "grow", "p1")
    before, after = reply["previous_pool"], reply["current_pool"]
    assert (before["disk_capacity"], after["disk_capacity"]) == (64 << 20, 192 << 20)
    assert after["capacity"] - before["capacity"] == 128 << 20
    assert after["uuid"] == before["uuid"]
    assert pools(api)["p1"] == after
    api.create_replica("p1", "big", "00000000-0000-4000-8000-0000000000b1", 96 << 20, thin=False)


def test_pool_grow_on_a_disk_that_did_not_grow_says_so_and_changes_nothing(
    pool: EngineProcess, api: EngineApi
) -> None:
    before = pools(api)["p1"]
    out = pool.client("pool", "grow", "p1", check=True).stdout
    assert out.strip() == "pool p1 did not grow: its disk has no new space"
    reply = cli_json(pool, "pool", "grow", "p1")
    assert reply["previous_pool"] == reply["current_pool"] == before
    assert pools(api)["p1"] == before


# ----------------------------------------------------------------------------- resize


def test_replica_resize_grows_a_thick_replica_and_takes_its_clusters(
    pool: EngineProcess, api: EngineApi
) -> None:
    used_before = pools(api)["p1"]["used"]
    resized = cli_json(pool, "replica", "resize", "p1", "r1", "24MiB")
    assert resized["size"] == 24 << 20
    assert resized["usage"]["allocated_bytes"] == 24 << 20
    assert replicas(api)["r1"] == resized
    assert pools(api)["p1"]["used"] - used_before == 8 << 20


def test_a_grown_shared_replica_serves_blocks_past_its_old_end(
    pool: EngineProcess, api: EngineApi
) -> None:
    uri = share(api, R1)
    pool.client("replica", "resize", "p1", "r1", "20", check=True)
    write_at(uri, 16 << 20, b"\xa5" * 4096)
    assert read_at(uri, 16 << 20, 4096) == b"\xa5" * 4096


def test_a_shrink_that_would_lose_allocated_data_is_refused_and_changes_nothing(
    pool: EngineProcess, api: EngineApi
) -> None:
    uri = share(api, R1)
    data = os.urandom(16 << 10)
    write_at(uri, 12 << 20, data)
    replicas_before, pool_before = replicas(api), pools(api)["p1"]
    result = pool.client("-o", "json", "replica", "resize", "p1", "r1", "8MiB")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: failed_precondition: cannot shrink lvol 'r1'")
    assert "allocated and would be lost" in result.stderr
    assert replicas(api) == replicas_before
    assert pools(api)["p1"] == pool_before
    assert read_at(uri, 12 << 20, len(data)) == data


# ----------------------------------------------------------------------------- bdevs, endpoint


def test_bdev_destroy_removes_the_bdev(engine: EngineProcess, api: EngineApi) -> None:
    created = cli_json(engine, "bdev", "create", "malloc:///m0?size_mb=8")
    assert (created["name"], created["num_blocks"] * created["blk_size"]) == ("m0", 8 << 20)
    assert bdev_names(api) == ["m0"]
    assert engine.client("-o", "json", "bdev", "destroy", "m0", check=True).stdout == ""
    assert bdev_names(api) == []
    again = engine.client("bdev", "destroy", "m0")
    assert again.returncode == 1
    assert "not_found" in again.stderr


def test_client_without_bind_talks_to_the_endpoint_in_mayastor_endpoint(
    pool: EngineProcess,
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mayastor.cli.client", "-o", "json", "pool", "list"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MAYASTOR_ENDPOINT": pool.endpoint},
        check=True,
    )
    assert [p["name"] for p in json.loads(result.stdout)] == ["p1"]
