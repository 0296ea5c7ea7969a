"""The io-engine process: restarts, SIGTERM, side-by-side instances, --help."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mayastor.bdev import NvmfDevice
from mayastor.cluster.processes import EngineProcess
from mayastor.engine.config import build_parser, config_from_args
from mayastor.nvmf.host import ControllerOptions
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


# ----------------------------------------------------------------------------- flags


def test_parsed_defaults_are_mayastors_endpoint_and_ports() -> None:
    config = config_from_args([])
    assert config.grpc_endpoint == "127.0.0.1:10124"
    assert config.nvmf_address == "127.0.0.1"
    assert (config.replica_port, config.nexus_port) == (8420, 4421)
    assert config.log_level == "info"


def test_io_engine_help_shows_the_default_endpoint_and_ports() -> None:
    text = " ".join(build_parser().format_help().split())
    assert "(default: 127.0.0.1:10124)" in text
    assert "shared replicas (default: 8420)" in text
    assert "published nexuses (default: 4421)" in text
    assert "listen on (default: 127.0.0.1)" in text


def log_lines(engine: EngineProcess, level: str) -> list[str]:
    """Lines of the io-engine's log (its stderr) written at `level`."""
    return [line for line in engine.log_path.read_text().splitlines() if f" {level} " in line]


def test_log_level_debug_writes_debug_lines(engines: Callable[..., EngineProcess]) -> None:
    engine = engines("node-a", extra_args=["--log-level", "debug"])
    engine.client("pool", "list", check=True)
    engine.stop()
    assert log_lines(engine, "DEBUG")
    assert log_lines(engine, "INFO")


def test_log_level_warning_writes_errors_but_no_info_or_debug_lines(
    engines: Callable[..., EngineProcess], tmp_path: Path
) -> None:
    engine = engines(
        "node-a",
        pools=[f"gone={tmp_path / 'no-such-disk.img'}"],
        extra_args=["--log-level", "warning"],
    )
    disk = make_sparse_file(tmp_path / "disk.img", 64 << 20)
    engine.client("pool", "create", "p1", str(disk), check=True)  # logged at info
    engine.stop()
    (error,) = log_lines(engine, "ERROR")
    assert "pool gone" in error
    assert "could not be brought back" in error
    assert log_lines(engine, "INFO") == []
    assert log_lines(engine, "DEBUG") == []


def test_an_explicit_nvmf_address_is_where_replicas_are_served(
    engines: Callable[..., EngineProcess], tmp_path: Path
) -> None:
    engine = engines("node-a", extra_args=["--nvmf-address", "127.0.0.1"])
    disk = make_sparse_file(tmp_path / "disk.img", 64 << 20)
    engine.client("pool", "create", "p1", str(disk), check=True)
    created = json.loads(
        engine.client(
            "-o", "json", "replica", "create", "p1", "r1", "--size=8", "--share=nvmf", check=True
        ).stdout
    )
    assert created["uri"].startswith(f"nvmf://127.0.0.1:{engine.replica_port}/")

    async def first_block() -> bytes:
        device = await NvmfDevice.open(
            created["uri"], options=ControllerOptions(hostnqn=engine.hostnqn)
        )
        try:
            return bytes(await device.read(0, 1))
        finally:
            await device.close()

    assert asyncio.run(first_block()) == bytes(512)


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("not-an-ip", "target address 'not-an-ip' is not an IPv4 address"),
        ("192.0.2.1", "an address of this machine? (see --nvmf-address)"),  # TEST-NET-1
    ],
)
def test_an_nvmf_address_that_cannot_be_served_is_a_clear_start_error(
    tmp_path: Path, address: str, message: str
) -> None:
    engine = EngineProcess("node-a", tmp_path, extra_args=["--nvmf-address", address])
    result = subprocess.run(engine.argv(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def thread_policies(pid: int) -> set[int]:
    """The scheduling policies of the threads of process `pid`."""
    policies = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):
            policies.add(os.sched_getscheduler(int(task)))
    return policies


def test_cpu_policy_batch_puts_every_thread_of_the_io_engine_under_sched_batch(
    engines: Callable[..., EngineProcess],
) -> None:
    engine = engines("node-a", extra_args=["--cpu-policy", "batch"])
    engine.client("pool", "list", check=True)  # the gRPC server's threads are running
    assert engine.proc is not None
    assert thread_policies(engine.proc.pid) == {os.SCHED_BATCH}


def test_an_io_engine_runs_under_the_normal_policy_by_default(
    engines: Callable[..., EngineProcess],
) -> None:
    engine = engines("node-a")
    engine.client("pool", "list", check=True)
    assert engine.proc is not None
    assert thread_policies(engine.proc.pid) == {os.SCHED_OTHER}


def test_cpu_policy_normal_leaves_the_policy_the_io_engine_was_started_with(
    engines: Callable[..., EngineProcess],
) -> None:
    # A child takes the policy of the thread that forks it: start it under SCHED_BATCH.
    os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    try:
        engine = engines("node-a", extra_args=["--cpu-policy", "normal"])
    finally:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    engine.client("pool", "list", check=True)
    assert engine.proc is not None
    assert thread_policies(engine.proc.pid) == {os.SCHED_BATCH}
