"""Replicas shared over NVMe/TCP: URIs, allow-lists, restarts, and remote bdevs."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from mayastor.bdev import NvmfDevice
from mayastor.cluster.processes import EngineProcess
from mayastor.errors import ConnectInvalidParameters, ConnectRefused
from mayastor.nvmf.host import ControllerOptions
from tests.integration.conftest import make_sparse_file

TESTER = "nqn.2019-05.io.openebs:node-name:tester"
APP_HOST = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-00000000a11c"


@pytest.fixture
def replica(engine: EngineProcess, tmp_path: Path) -> EngineProcess:
    disk = make_sparse_file(tmp_path / "disk.img", 128 << 20)
    engine.client("pool", "create", "p1", str(disk), check=True)
    engine.client("replica", "create", "p1", "r1", "--size=16", check=True)
    return engine


def replica_json(engine: EngineProcess) -> dict[str, object]:
    (found,) = json.loads(engine.client("-o", "json", "replica", "list", check=True).stdout)
    return found  # type: ignore[no-any-return]


def write_then_read(uri: str, hostnqn: str, data: bytes) -> bytes:
    async def run() -> bytes:
        device = await NvmfDevice.open(uri, options=ControllerOptions(hostnqn=hostnqn))
        try:
            await device.write(0, data)
            await device.flush()
            return bytes(await device.read(0, len(data) // device.block_size))
        finally:
            await device.close()

    return asyncio.run(run())


def test_share_prints_the_replica_uri_and_listings_show_it(replica: EngineProcess) -> None:
    uri = replica.client("replica", "share", "p1", "r1", check=True).stdout.strip()
    uuid = replica_json(replica)["uuid"]
    assert uri == (
        f"nvmf://127.0.0.1:{replica.replica_port}/nqn.2019-05.io.openebs:{uuid}?uuid={uuid}"
    )
    shown = replica_json(replica)
    assert shown["share"] == "NVMF"
    assert shown["uri"] == uri


def test_an_allowed_host_reads_and_writes_the_shared_replica(replica: EngineProcess) -> None:
    uri = replica.client(
        "replica", "share", "p1", "r1", "--allowed-host", APP_HOST, check=True
    ).stdout.strip()
    data = os.urandom(8192)
    assert write_then_read(uri, APP_HOST, data) == data
    assert replica_json(replica)["allowed_hosts"] == [APP_HOST]


def test_a_host_not_on_the_allow_list_is_refused(replica: EngineProcess) -> None:
    uri = replica.client(
        "replica", "share", "p1", "r1", "--allowed-host", APP_HOST, check=True
    ).stdout.strip()
    with pytest.raises(ConnectRefused):
        write_then_read(uri, TESTER, bytes(512))


def test_without_an_allow_list_only_io_engines_may_connect(replica: EngineProcess) -> None:
    uri = replica.client("replica", "share", "p1", "r1", check=True).stdout.strip()
    assert write_then_read(uri, TESTER, b"\x07" * 512) == b"\x07" * 512
    with pytest.raises(ConnectRefused):
        write_then_read(uri, APP_HOST, bytes(512))


def test_share_and_allow_list_come_back_after_a_restart(
    replica: EngineProcess, tmp_path: Path
) -> None:
    uri = replica.client(
        "replica", "share", "p1", "r1", "--allowed-host", APP_HOST, check=True
    ).stdout.strip()
    replica.stop()
    replica.pools = [f"p1={tmp_path / 'disk.img'}"]
    replica.start()
    assert replica_json(replica)["uri"] == uri
    assert write_then_read(uri, APP_HOST, b"\x05" * 4096) == b"\x05" * 4096


def test_unshare_stops_the_export(replica: EngineProcess) -> None:
    uri = replica.client("replica", "share", "p1", "r1", check=True).stdout.strip()
    out = replica.client("replica", "unshare", "p1", "r1", check=True).stdout.strip()
    assert out.startswith("bdev:///r1?uuid=")
    assert replica_json(replica)["share"] == "NONE"
    with pytest.raises(ConnectInvalidParameters):
        write_then_read(uri, TESTER, bytes(512))


def test_a_shared_replica_can_be_destroyed(replica: EngineProcess) -> None:
    replica.client("replica", "share", "p1", "r1", check=True)
    replica.client("replica", "destroy", "p1", "r1", check=True)
    assert "No replicas" in replica.client("replica", "list").stdout


def test_another_io_engine_brings_a_shared_replica_in_as_a_bdev(
    replica: EngineProcess, engines: Callable[..., EngineProcess]
) -> None:
    uri = replica.client("replica", "share", "p1", "r1", check=True).stdout.strip()
    other = engines("node-2")
    name = other.client("bdev", "create", uri, check=True).stdout.strip()
    (bdev,) = json.loads(other.client("-o", "json", "bdev", "list", check=True).stdout)
    assert bdev["name"] == name
    assert bdev["driver"] == "nvmf"
    assert bdev["num_blocks"] * bdev["blk_size"] == 16 << 20
    assert bdev["uuid"] == replica_json(replica)["uuid"]
    other.client("bdev", "destroy", name, check=True)
