"""Bad requests get a clear error and a non-zero exit, and change nothing on disk."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from mayastor.cluster.processes import EngineProcess
from tests.integration.conftest import make_sparse_file


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def pool_disk(engine: EngineProcess, tmp_path: Path) -> Path:
    disk = make_sparse_file(tmp_path / "disk.img", 64 << 20)
    assert engine.client("pool", "create", "tpool", str(disk)).returncode == 0
    assert engine.client("replica", "create", "tpool", "r1", "--size=8").returncode == 0
    return disk


def refused(engine: EngineProcess, *args: str) -> str:
    result = engine.client(*args)
    assert result.returncode == 1, f"{args} was not refused: {result.stdout}"
    assert result.stderr.startswith("error: ")
    return result.stderr


def test_unknown_uri_scheme_is_refused_and_changes_nothing(
    engine: EngineProcess, tmp_path: Path
) -> None:
    disk = make_sparse_file(tmp_path / "d.img", 64 << 20)
    before = digest(disk)
    message = refused(engine, "pool", "create", "p", f"iscsi://{disk}")
    assert "invalid_argument" in message
    assert "scheme 'iscsi'" in message
    assert "No pools" in engine.client("pool", "list").stdout
    assert digest(disk) == before


def test_unknown_uri_parameter_is_refused_and_named(engine: EngineProcess, tmp_path: Path) -> None:
    disk = make_sparse_file(tmp_path / "d.img", 64 << 20)
    before = digest(disk)
    message = refused(engine, "pool", "create", "p", f"aio://{disk}?blocksize=4096")
    assert "invalid_argument" in message
    assert "blocksize" in message
    assert "No pools" in engine.client("pool", "list").stdout
    assert digest(disk) == before


def test_missing_disk_is_refused(engine: EngineProcess, tmp_path: Path) -> None:
    message = refused(engine, "pool", "create", "p", str(tmp_path / "absent.img"))
    assert "absent.img" in message


def test_disk_holding_another_pool_is_refused_and_left_alone(
    engine: EngineProcess, pool_disk: Path
) -> None:
    engine.client("pool", "export", "tpool", check=True)
    before = digest(pool_disk)
    message = refused(engine, "pool", "create", "other", str(pool_disk))
    assert "failed_precondition" in message
    assert "tpool" in message
    assert digest(pool_disk) == before


def test_pool_name_taken_is_refused(engine: EngineProcess, pool_disk: Path, tmp_path: Path) -> None:
    other = make_sparse_file(tmp_path / "other.img", 64 << 20)
    before = digest(other)
    assert "already_exists" in refused(engine, "pool", "create", "tpool", str(other))
    assert digest(other) == before


def test_replica_name_taken_is_refused_and_changes_nothing(
    engine: EngineProcess, pool_disk: Path
) -> None:
    before = digest(pool_disk)
    assert "already_exists" in refused(engine, "replica", "create", "tpool", "r1", "--size=4")
    assert digest(pool_disk) == before


def test_replica_too_large_is_refused_and_changes_nothing(
    engine: EngineProcess, pool_disk: Path
) -> None:
    before = digest(pool_disk)
    message = refused(engine, "replica", "create", "tpool", "big", "--size=1024")
    assert "resource_exhausted" in message
    assert digest(pool_disk) == before


def test_destroying_a_missing_replica_is_refused(engine: EngineProcess, pool_disk: Path) -> None:
    before = digest(pool_disk)
    assert "not found" in refused(engine, "replica", "destroy", "tpool", "nope")
    assert digest(pool_disk) == before


def test_destroying_a_missing_pool_is_refused(engine: EngineProcess) -> None:
    assert "not_found" in refused(engine, "pool", "destroy", "nope")


def test_engine_keeps_serving_after_refusals(engine: EngineProcess, pool_disk: Path) -> None:
    refused(engine, "replica", "create", "tpool", "r1", "--size=4")
    refused(engine, "pool", "destroy", "nope")
    assert engine.client("replica", "create", "tpool", "r2", "--size=4").returncode == 0
