"""Out of space below the pool: a pool on a 10 GiB sparse file that lives on a 1 GiB
ext4 file system (a loop device mounted under the test's folder).

A thick replica larger than the room left fails with resource_exhausted and gives back
what it had allocated, the pool stays online and a replica that fits is created, before
and after an io-engine restart; the pool's metadata area is reserved at create, so
metadata writes go on in a full file system; the pool says the disk is larger than the
room under it, at create and in `pool list`.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mayastor.api.v1 import pool_pb2
from mayastor.cluster.processes import EngineProcess
from tests.integration.conftest import make_sparse_file
from tests.support.engine_api import EngineApi

FS_BYTES = 1 << 30
POOL_FILE_BYTES = 10 << 30
SLACK = 8 << 20
"""What the file system may differ by after a failed create (its own bookkeeping)."""


@dataclass
class SmallFs:
    mount: Path
    device: str

    def free(self) -> int:
        st = os.statvfs(self.mount)
        return st.f_bavail * st.f_frsize

    def fill(self) -> Path:
        """A file that takes every free block of the file system."""
        filler = self.mount / "filler"
        with open(filler, "wb") as fh:
            chunk = self.free()
            while chunk >= 4096:
                try:
                    os.posix_fallocate(fh.fileno(), os.fstat(fh.fileno()).st_size, chunk)
                except OSError:
                    chunk //= 2
        return filler


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[SmallFs]:
    """A 1 GiB ext4 file system mounted at tmp_path/fs; unmounted and detached afterwards
    (request it before `engines`, so the io-engines stop first)."""
    backing = make_sparse_file(tmp_path / "fs.img", FS_BYTES)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(backing)], check=True)
    mount = tmp_path / "fs"
    mount.mkdir()
    device = subprocess.run(
        ["losetup", "--find", "--show", str(backing)], check=True, capture_output=True, text=True
    ).stdout.strip()
    try:
        subprocess.run(["mount", device, str(mount)], check=True)
        yield SmallFs(mount, device)
    finally:
        subprocess.run(["umount", str(mount)], check=False, capture_output=True)
        subprocess.run(["losetup", "-d", device], check=False, capture_output=True)


@dataclass
class Setup:
    fs: SmallFs
    engine: EngineProcess
    disk: Path

    def pool(self) -> pool_pb2.Pool:
        with contextlib.closing(EngineApi(self.engine.endpoint)) as api:
            return api.list_pools()["p"]

    def restart(self) -> None:
        """Stop the io-engine and start it again with pool p imported at start."""
        self.engine.stop()
        self.engine.pools = [f"p={self.disk}"]
        self.engine.start()


@pytest.fixture
def setup(small_fs: SmallFs, engines: Callable[..., EngineProcess]) -> Setup:
    """An io-engine with pool p on a 10 GiB sparse file in the 1 GiB file system."""
    disk = make_sparse_file(small_fs.mount / "pool.img", POOL_FILE_BYTES)
    engine = engines()
    with contextlib.closing(EngineApi(engine.endpoint)) as api:
        api.create_pool("p", str(disk), 4 << 20)
    return Setup(small_fs, engine, disk)


def fails_and_gives_back(setup: Setup, name: str) -> None:
    """`replica create p NAME --size=2048` (thick) is refused, and the space comes back."""
    free = setup.fs.free()
    result = setup.engine.client("replica", "create", "p", name, "--size=2048")
    assert result.returncode == 1, result.stdout
    assert "resource_exhausted" in result.stderr
    assert "given back" in result.stderr
    assert setup.fs.free() >= free - SLACK
    assert setup.pool().state == pool_pb2.POOL_ONLINE


def test_a_thick_replica_larger_than_the_room_fails_and_the_space_comes_back(
    setup: Setup,
) -> None:
    fails_and_gives_back(setup, "big")
    setup.engine.client("replica", "create", "p", "fits", "--size=100", check=True)
    assert setup.pool().used == 100 << 20


def test_after_a_restart_the_pool_is_online_and_behaves_the_same(setup: Setup) -> None:
    fails_and_gives_back(setup, "big")
    setup.restart()
    assert setup.pool().state == pool_pb2.POOL_ONLINE
    fails_and_gives_back(setup, "big-again")
    setup.engine.client("replica", "create", "p", "fits", "--size=100", check=True)


def test_metadata_writes_go_on_in_a_full_file_system(setup: Setup) -> None:
    setup.fs.fill()
    assert setup.fs.free() < 4 << 20
    with contextlib.closing(EngineApi(setup.engine.endpoint)) as api:
        for n in range(8):
            api.create_replica("p", f"thin{n}", str(uuid.uuid4()), 64 << 20, thin=True)
        api.destroy_replica(next(iter(api.list_replicas())))
    setup.restart()
    assert setup.pool().state == pool_pb2.POOL_ONLINE
    with contextlib.closing(EngineApi(setup.engine.endpoint)) as api:
        api.create_replica("p", "after", str(uuid.uuid4()), 64 << 20, thin=True)
        assert len(api.list_replicas()) == 8


def test_a_disk_file_larger_than_the_room_under_it_is_reported(setup: Setup) -> None:
    (warning,) = setup.pool().warnings
    assert str(setup.disk) in warning
    assert "sparse file of 10.0 GiB" in warning
    listed = setup.engine.client("pool", "list", check=True).stdout
    assert f"warning: pool p: disk {setup.disk} is a sparse file" in listed
    assert "sparse file" in setup.engine.log_path.read_text()


def test_a_pool_whose_file_fits_in_its_file_system_has_no_warning(
    small_fs: SmallFs, engines: Callable[..., EngineProcess]
) -> None:
    disk = make_sparse_file(small_fs.mount / "small.img", 256 << 20)
    engine = engines()
    created = engine.client("pool", "create", "p", str(disk), check=True)
    assert "warning" not in created.stderr
    listed = engine.client("-o", "json", "pool", "list", check=True).stdout
    assert json.loads(listed)[0]["warnings"] == []
