"""The aio and uring drivers meet the BlockDevice contract on files and loop devices.

uring classes are skipped only when the machine says io_uring is unavailable (the
sysctl, or io_uring_setup refused with ENOSYS/EPERM), with that reason; a ring that
can be set up but fails makes them fail.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from mayastor.bdev import AioDevice, BlockDevice, UringDevice, uring_unavailable_reason
from tests.conformance.block_device import BlockDeviceConformance
from tests.integration.bdev.conftest import MiB, sparse_file

URING_UNAVAILABLE = uring_unavailable_reason()
needs_uring = pytest.mark.skipif(URING_UNAVAILABLE is not None, reason=str(URING_UNAVAILABLE))


class TestAioFile512(BlockDeviceConformance):
    @pytest.fixture
    async def device(self, tmp_path: Path) -> AsyncIterator[BlockDevice]:
        dev = await AioDevice.open(str(sparse_file(tmp_path / "disk.img", 4 * MiB)))
        assert (dev.block_size, dev.direct) == (512, True)
        yield dev
        await dev.close()


class TestAioFile4096(BlockDeviceConformance):
    @pytest.fixture
    async def device(self, tmp_path: Path) -> AsyncIterator[BlockDevice]:
        path = sparse_file(tmp_path / "disk.img", 4 * MiB)
        dev = await AioDevice.open(str(path), block_size=4096)
        assert (dev.block_size, dev.direct) == (4096, True)
        yield dev
        await dev.close()


@pytest.mark.needs_root
class TestAioLoopDevice(BlockDeviceConformance):
    @pytest.fixture
    async def device(
        self, attach_loop: Callable[..., tuple[str, Path]]
    ) -> AsyncIterator[BlockDevice]:
        loop_dev, _ = attach_loop(4 * MiB)
        dev = await AioDevice.open(loop_dev, threads=8)
        assert dev.direct
        yield dev
        await dev.close()


class TestAioTmpfs(BlockDeviceConformance):
    @pytest.fixture
    async def device(self, shm_dir: Path) -> AsyncIterator[BlockDevice]:
        dev = await AioDevice.open(str(sparse_file(shm_dir / "disk.img", 2 * MiB)))
        yield dev
        await dev.close()


@pytest.mark.needs_root
class TestAioBufferedOnRamfs(BlockDeviceConformance):
    @pytest.fixture
    async def device(self, ramfs_dir: Path) -> AsyncIterator[BlockDevice]:
        dev = await AioDevice.open(str(sparse_file(ramfs_dir / "disk.img", 2 * MiB)))
        assert not dev.direct
        yield dev
        await dev.close()


@needs_uring
class TestUringFile512(BlockDeviceConformance):
    @pytest.fixture
    async def device(self, tmp_path: Path) -> AsyncIterator[BlockDevice]:
        dev = await UringDevice.open(str(sparse_file(tmp_path / "disk.img", 4 * MiB)))
        assert (dev.block_size, dev.direct) == (512, True)
        yield dev
        await dev.close()


@needs_uring
class TestUringFile4096(BlockDeviceConformance):
    @pytest.fixture
    async def device(self, tmp_path: Path) -> AsyncIterator[BlockDevice]:
        path = sparse_file(tmp_path / "disk.img", 4 * MiB)
        dev = await UringDevice.open(str(path), block_size=4096, entries=16)
        assert (dev.block_size, dev.direct) == (4096, True)
        yield dev
        await dev.close()


@needs_uring
@pytest.mark.needs_root
class TestUringLoopDevice(BlockDeviceConformance):
    @pytest.fixture
    async def device(
        self, attach_loop: Callable[..., tuple[str, Path]]
    ) -> AsyncIterator[BlockDevice]:
        loop_dev, _ = attach_loop(4 * MiB)
        dev = await UringDevice.open(loop_dev)
        assert dev.direct
        yield dev
        await dev.close()


@needs_uring
@pytest.mark.needs_root
class TestUringBufferedOnRamfs(BlockDeviceConformance):
    @pytest.fixture
    async def device(self, ramfs_dir: Path) -> AsyncIterator[BlockDevice]:
        dev = await UringDevice.open(str(sparse_file(ramfs_dir / "disk.img", 2 * MiB)))
        assert not dev.direct
        yield dev
        await dev.close()
