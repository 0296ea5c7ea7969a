"""An io-engine where io_uring is refused (as in many containers) says so and serves on.

The io-engine runs under a seccomp filter that fails io_uring_setup with EPERM, the way
Docker's default profile does; `uring://` devices are refused with the reason, and the
same files work through `aio://`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from mayastor.cluster.processes import EngineProcess
from tests.integration.conftest import make_sparse_file
from tests.support.seccomp import deny_io_uring

REFUSAL = "io_uring is not available: io_uring is not permitted here (io_uring_setup: EPERM)"


@pytest.fixture
def engine_without_uring(engines: Callable[..., EngineProcess]) -> EngineProcess:
    return engines(preexec=deny_io_uring)


def listed(engine: EngineProcess, what: str) -> list[str]:
    found = json.loads(engine.client("-o", "json", what, "list", check=True).stdout)
    return [entry["name"] for entry in found]


def test_a_uring_bdev_is_refused_with_the_reason_and_nothing_is_created(
    engine_without_uring: EngineProcess, tmp_path: Path
) -> None:
    disk = make_sparse_file(tmp_path / "disk.img", 64 << 20)
    before = listed(engine_without_uring, "bdev")
    result = engine_without_uring.client("bdev", "create", f"uring://{disk}")
    assert result.returncode == 1
    assert f"failed_precondition: {REFUSAL}" in result.stderr
    assert listed(engine_without_uring, "bdev") == before


def test_a_pool_on_a_uring_disk_is_refused_and_the_same_file_serves_through_aio(
    engine_without_uring: EngineProcess, tmp_path: Path
) -> None:
    disk = make_sparse_file(tmp_path / "disk.img", 64 << 20)
    refused = engine_without_uring.client("pool", "create", "p", f"uring://{disk}")
    assert refused.returncode == 1
    assert REFUSAL in refused.stderr
    engine_without_uring.client("pool", "create", "p", f"aio://{disk}", check=True)
    engine_without_uring.client("replica", "create", "p", "r", "--size=8", check=True)
    assert listed(engine_without_uring, "pool") == ["p"]


def test_a_pool_on_a_bare_path_serves_through_aio_and_the_log_says_why(
    engine_without_uring: EngineProcess, tmp_path: Path
) -> None:
    disk = make_sparse_file(tmp_path / "disk.img", 64 << 20)
    engine_without_uring.client("pool", "create", "p", str(disk), check=True)
    engine_without_uring.client("replica", "create", "p", "r", "--size=8", check=True)
    bdevs = json.loads(engine_without_uring.client("-o", "json", "bdev", "list", check=True).stdout)
    assert [b["driver"] for b in bdevs if b["name"] == str(disk)] == ["aio"]
    assert f"bare paths open with aio, not uring: {REFUSAL}" in engine_without_uring.log_tail(200)
