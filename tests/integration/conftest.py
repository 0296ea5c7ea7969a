"""Fixtures for tests that run real io-engine processes, files and loop devices."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mayastor.cluster.processes import EngineProcess


def allowed_disks(folder: Path) -> list[str]:
    """--disk-allow patterns for an io-engine of a test: its folder, and block devices."""
    return [f"{folder.resolve()}/*", "/dev/*"]


def make_sparse_file(path: Path, size: int) -> Path:
    with open(path, "wb") as fh:
        fh.truncate(size)
    return path


@pytest.fixture
def loop_device(tmp_path: Path) -> Iterator[Callable[[int], str]]:
    """Factory: a loop device over a fresh sparse file of `size` bytes, detached afterwards."""
    attached: list[str] = []

    def attach(size: int) -> str:
        backing = make_sparse_file(tmp_path / f"loop{len(attached)}.img", size)
        dev = subprocess.run(
            ["losetup", "--find", "--show", str(backing)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        attached.append(dev)
        return dev

    yield attach
    for dev in attached:
        subprocess.run(["losetup", "-d", dev], check=False, capture_output=True)


@pytest.fixture
def engines(tmp_path: Path) -> Iterator[Callable[..., EngineProcess]]:
    """Factory of started io-engine processes; all are stopped at the end of the test.

    They may open disks anywhere under the test's folder and block devices
    (``--disk-allow``), unless the test passes `disk_allow` itself.
    """
    started: list[EngineProcess] = []

    def start(node_name: str = "node-1", **kwargs: object) -> EngineProcess:
        kwargs.setdefault("disk_allow", allowed_disks(tmp_path))
        engine = EngineProcess(node_name, tmp_path / "engines", **kwargs)  # type: ignore[arg-type]
        started.append(engine)
        engine.start()
        return engine

    yield start
    for engine in started:
        engine.stop()


@pytest.fixture
def engine(engines: Callable[..., EngineProcess]) -> EngineProcess:
    return engines()
