"""The io-engine process: restarts, SIGTERM, side-by-side instances, --help."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from mayastor.demo.processes import EngineProcess
from tests.integration.conftest import make_sparse_file


def test_pools_and_replicas_come_back_after_a_restart(
    engines: Callable[..., EngineProcess], tmp_path: Path
) -> None:
    disk = make_sparse_file(tmp_path / "disk.img", 64 << 20)
    engine = engines("node-a")
    assert engine.client("pool", "create", "p1", str(disk)).returncode == 0
    assert engine.client("replica", "create", "p1", "r1", "--size=8").returncode == 0
    engine.stop()
    engine.pools = [f"p1={disk}"]
    engine.start()
    listing = engine.client("replica", "list").stdout
    assert "r1" in listing
    assert "p1" in listing


def test_sigterm_exports_every_pool_and_exits_cleanly(
    engines: Callable[..., EngineProcess], tmp_path: Path
) -> None:
    disk = make_sparse_file(tmp_path / "disk.img", 64 << 20)
    engine = engines("node-a", pools=[f"p1={disk}"])
    assert engine.stop() == 0
    log = engine.log_path.read_text()
    assert "pool p1 exported" in log
    assert "every pool exported" in log


def test_two_io_engines_run_side_by_side(
    engines: Callable[..., EngineProcess], tmp_path: Path
) -> None:
    a = engines("node-a")
    b = engines("node-b")
    for engine, name in ((a, "pa"), (b, "pb")):
        disk = make_sparse_file(tmp_path / f"{name}.img", 64 << 20)
        assert engine.client("pool", "create", name, str(disk)).returncode == 0
    assert "pa" in a.client("pool", "list").stdout
    assert "pb" not in a.client("pool", "list").stdout
    assert "pb" in b.client("pool", "list").stdout


def test_an_endpoint_already_in_use_is_a_clear_start_error(
    engines: Callable[..., EngineProcess], tmp_path: Path
) -> None:
    first = engines("node-a")
    second = EngineProcess("node-b", tmp_path, grpc_port=first.grpc_port)
    result = subprocess.run(second.argv(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"cannot listen for gRPC on {first.endpoint}" in result.stderr


def test_io_engine_help_names_every_flag() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mayastor.engine.main", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for flag in (
        "--node-name",
        "--grpc-endpoint",
        "--nvmf-address",
        "--replica-port",
        "--nexus-port",
        "--pool",
        "--log-level",
    ):
        assert flag in out


def test_client_that_cannot_reach_an_io_engine_says_so(tmp_path: Path) -> None:
    nobody = EngineProcess("nobody", tmp_path)
    result = nobody.client("--timeout", "2", "pool", "list")
    assert result.returncode == 3
    assert "cannot reach the io-engine" in result.stderr
