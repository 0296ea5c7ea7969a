"""Real backing stores for the file drivers: files, loop devices, small file systems."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

MiB = 1 << 20


def sparse_file(path: Path, size: int) -> Path:
    with open(path, "wb") as fh:
        fh.truncate(size)
    return path


def run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def attach_loop(tmp_path: Path) -> Iterator[Callable[..., tuple[str, Path]]]:
    """Factory: (loop device, backing file) over a fresh sparse file; detached afterwards."""
    attached: list[str] = []

    def attach(size: int = 4 * MiB, sector_size: int | None = None) -> tuple[str, Path]:
        backing = sparse_file(tmp_path / f"loop{len(attached)}.img", size)
        extra = ["--sector-size", str(sector_size)] if sector_size else []
        device = run("losetup", "--find", "--show", *extra, str(backing))
        attached.append(device)
        return device, backing

    try:
        yield attach
    finally:
        for device in attached:
            subprocess.run(["losetup", "-d", device], check=False, capture_output=True)


def _mounted(fstype: str, options: str | None = None) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"bdev-{fstype}-") as where:
        argv = ["mount", "-t", fstype, *(["-o", options] if options else []), "none", where]
        run(*argv)
        try:
            yield Path(where)
        finally:
            subprocess.run(["umount", "-l", where], check=False, capture_output=True)


@pytest.fixture
def ramfs_dir() -> Iterator[Path]:
    """A ramfs mount: a file system that refuses O_DIRECT."""
    yield from _mounted("ramfs")


@pytest.fixture
def small_tmpfs() -> Iterator[Path]:
    """A 1 MiB tmpfs: a sparse file on it runs out of space."""
    yield from _mounted("tmpfs", "size=1m")


@pytest.fixture
def shm_dir() -> Iterator[Path]:
    """A folder on /dev/shm (tmpfs), removed afterwards."""
    with tempfile.TemporaryDirectory(dir="/dev/shm", prefix="bdev-") as where:
        yield Path(where)
