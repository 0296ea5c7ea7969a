"""The committed gRPC modules are what the .proto files compile to."""

from __future__ import annotations

from pathlib import Path

import pytest

from mayastor.api._compile import PROTO_DIR, compile_protos


@pytest.mark.slow
def test_generated_modules_match_the_proto_files(tmp_path: Path) -> None:
    generated = compile_protos(tmp_path)
    assert generated, "protoc produced nothing"
    stale = [
        p.name
        for p in generated
        if not (PROTO_DIR / p.name).exists() or (PROTO_DIR / p.name).read_bytes() != p.read_bytes()
    ]
    assert not stale, f"run `python -m mayastor.api._compile`: stale {stale}"


def test_every_service_of_the_api_is_generated() -> None:
    from mayastor.api.v1 import (
        bdev_pb2_grpc,
        host_pb2_grpc,
        pool_pb2_grpc,
        replica_pb2_grpc,
        stats_pb2_grpc,
    )

    for module, service in [
        (pool_pb2_grpc, "PoolRpc"),
        (replica_pb2_grpc, "ReplicaRpc"),
        (bdev_pb2_grpc, "BdevRpc"),
        (host_pb2_grpc, "HostRpc"),
        (stats_pb2_grpc, "StatsRpc"),
    ]:
        assert hasattr(module, f"{service}Servicer")
        assert hasattr(module, f"{service}Stub")
