"""HostRpc tells what the io-engine is and which disks are free; stats list pools and replicas."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import grpc
from google.protobuf.empty_pb2 import Empty

from mayastor.api.v1 import host_pb2, host_pb2_grpc
from mayastor.cluster.processes import EngineProcess
from tests.integration.conftest import make_sparse_file


def test_mayastor_info_names_the_node_and_its_endpoints(engine: EngineProcess) -> None:
    with grpc.insecure_channel(engine.endpoint) as channel:
        info = host_pb2_grpc.HostRpcStub(channel).GetMayastorInfo(Empty(), timeout=10)
    assert info.registration_info.id == engine.node_name
    assert info.registration_info.grpc_endpoint == engine.endpoint
    assert info.registration_info.hostnqn == engine.hostnqn
    assert info.replica_port == engine.replica_port
    assert info.nexus_port == engine.nexus_port
    assert info.version


def _devices(engine: EngineProcess, include_all: bool) -> dict[str, host_pb2.BlockDevice]:
    with grpc.insecure_channel(engine.endpoint) as channel:
        reply = host_pb2_grpc.HostRpcStub(channel).ListBlockDevices(
            host_pb2.ListBlockDevicesRequest(all=include_all), timeout=10
        )
    return {d.devpath: d for d in reply.devices}


def test_a_loop_device_is_available_until_a_pool_claims_it(
    engine: EngineProcess, loop_device: Callable[[int], str]
) -> None:
    dev = loop_device(64 << 20)
    listed = _devices(engine, include_all=False)
    assert dev in listed
    assert listed[dev].size == (64 << 20) // 512
    assert listed[dev].devtype == "disk"
    assert engine.client("pool", "create", "p1", dev).returncode == 0
    assert dev not in _devices(engine, include_all=False)
    claimed = _devices(engine, include_all=True)[dev]
    assert not claimed.available


def test_stats_list_every_pool_and_replica_and_reset(engine: EngineProcess, tmp_path: Path) -> None:
    disk = make_sparse_file(tmp_path / "disk.img", 64 << 20)
    engine.client("pool", "create", "p1", str(disk), check=True)
    engine.client("replica", "create", "p1", "r1", "--size=8", check=True)
    pools = json.loads(engine.client("-o", "json", "stats", "pools", check=True).stdout)
    assert [p["name"] for p in pools] == ["p1"]
    assert pools[0]["num_write_ops"] > 0  # the pool's metadata writes
    assert pools[0]["tick_rate"] == 1_000_000_000
    replicas = json.loads(engine.client("-o", "json", "stats", "replicas", check=True).stdout)
    assert [(r["pool_name"], r["stats"]["name"]) for r in replicas] == [("p1", "r1")]
    assert "I/O counters reset" in engine.client("stats", "--reset", check=True).stdout
    pools = json.loads(engine.client("-o", "json", "stats", "pools", check=True).stdout)
    assert pools[0]["num_write_ops"] == 0
