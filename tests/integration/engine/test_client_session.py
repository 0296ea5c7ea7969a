"""Mayastor's README session works as written, against a loop device and a plain file."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from mayastor.cluster.processes import EngineProcess
from tests.integration.conftest import make_sparse_file

DISK_SIZE = 100 << 20


@pytest.fixture(params=["loop device", "file"])
def disk(request: pytest.FixtureRequest, tmp_path: Path, loop_device: Callable[[int], str]) -> str:
    if request.param == "loop device":
        return loop_device(DISK_SIZE)
    return str(make_sparse_file(tmp_path / "disk.img", DISK_SIZE))


def ok(engine: EngineProcess, *args: str) -> str:
    result = engine.client(*args)
    assert result.returncode == 0, f"{args}: {result.stderr}"
    return result.stdout


def test_readme_session_works_as_written(engine: EngineProcess, disk: str) -> None:
    assert ok(engine, "pool", "create", "tpool", disk) == ""
    pools = ok(engine, "pool", "list")
    assert pools.splitlines()[0].split()[:5] == ["NAME", "UUID", "STATE", "CAPACITY", "USED"]
    row = pools.splitlines()[1].split()
    assert row[0] == "tpool"
    assert row[2] == "online"
    assert " ".join(row[3:5]) == "96.0 MiB"
    ok(engine, "replica", "create", "tpool", "replica1", "--size=10")
    ok(engine, "replica", "create", "tpool", "replica2", "--size=1000", "--thin")
    replicas = ok(engine, "replica", "list").splitlines()
    assert replicas[0].split()[:6] == ["POOL", "NAME", "UUID", "THIN", "SHARE", "SIZE"]
    rows = {line.split()[1]: line.split() for line in replicas[1:]}
    assert rows["replica1"][3] == "false"
    assert rows["replica2"][3] == "true"
    assert " ".join(rows["replica2"][5:7]) == "1000.0 MiB"
    ok(engine, "replica", "destroy", "tpool", "replica1")
    ok(engine, "replica", "destroy", "tpool", "replica2")
    assert ok(engine, "replica", "list").strip() == "No replicas have been created"
    ok(engine, "pool", "destroy", "tpool")
    assert ok(engine, "pool", "list").strip() == "No pools have been created"


def test_json_output_carries_every_field(engine: EngineProcess, tmp_path: Path) -> None:
    disk = str(make_sparse_file(tmp_path / "disk.img", DISK_SIZE))
    ok(engine, "pool", "create", "tpool", disk)
    ok(engine, "replica", "create", "tpool", "r1", "--size=8", "--thin")
    (pool,) = json.loads(ok(engine, "-o", "json", "pool", "list"))
    assert pool["name"] == "tpool"
    assert pool["disks"] == [disk]
    assert pool["state"] == "POOL_ONLINE"
    assert pool["capacity"] == 96 << 20
    assert pool["committed"] >= 8 << 20
    assert pool["cluster_size"] == 4 << 20
    (replica,) = json.loads(ok(engine, "-o", "json", "replica", "list"))
    assert replica["thin"] is True
    assert replica["usage"]["allocated_bytes"] == 0
    assert replica["uri"].startswith("bdev:///r1?uuid=")
    assert replica["share"] == "NONE"
