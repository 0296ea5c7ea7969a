"""Nexuses over local replicas, driven through mayastor-client against a real io-engine."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from mayastor.demo.processes import EngineProcess
from tests.integration.conftest import make_sparse_file

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


def wait_for(condition: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


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
    wait_for(lambda: children(pool)["bdev:///r2"]["state"] == "CHILD_STATE_ONLINE")
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
    wait_for(lambda: children(pool)["bdev:///r2"]["state"] == "CHILD_STATE_ONLINE")
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
    wait_for(lambda: children(pool)["bdev:///r2"]["state"] == "CHILD_STATE_ONLINE")
    history = json.loads(pool.client("-o", "json", "rebuild", "history", NEXUS, check=True).stdout)
    assert [(r["child_uri"], r["src_uri"], r["is_partial"]) for r in history] == [
        ("bdev:///r2", "bdev:///r1", False)
    ]


def test_rebuild_commands_need_a_known_child(pool: EngineProcess) -> None:
    pool.client("nexus", "create", NEXUS, "16", "bdev:///r1", check=True)
    result = pool.client("rebuild", "state", NEXUS, "bdev:///nope")
    assert result.returncode == 1
    assert "not_found" in result.stderr
