"""An lvol meets the BlockDevice contract: thick and thin, 512- and 4096-byte blocks."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mayastor.bdev import MallocDevice
from mayastor.lvs import Lvol, Pool
from tests.conformance.block_device import BlockDeviceConformance

MIB = 1 << 20


async def _lvol(block_size: int, thin: bool) -> AsyncIterator[Lvol]:
    base = MallocDevice("base", num_blocks=24 * MIB // block_size, block_size=block_size)
    pool = await Pool.create(base, "conf", disk="malloc:///base", cluster_size=MIB)
    # 3 MiB + 1 block: I/O crosses cluster boundaries and the last cluster is partial
    lvol = await pool.create_lvol("lv", 3 * MIB + block_size, thin=thin)
    yield lvol
    await pool.export()
    assert base.closed


class TestThickLvol512(BlockDeviceConformance):
    @pytest.fixture
    async def device(self) -> AsyncIterator[Lvol]:
        async for lvol in _lvol(512, thin=False):
            yield lvol


class TestThinLvol512(BlockDeviceConformance):
    @pytest.fixture
    async def device(self) -> AsyncIterator[Lvol]:
        async for lvol in _lvol(512, thin=True):
            yield lvol


class TestThickLvol4096(BlockDeviceConformance):
    @pytest.fixture
    async def device(self) -> AsyncIterator[Lvol]:
        async for lvol in _lvol(4096, thin=False):
            yield lvol


class TestThinLvol4096(BlockDeviceConformance):
    @pytest.fixture
    async def device(self) -> AsyncIterator[Lvol]:
        async for lvol in _lvol(4096, thin=True):
            yield lvol
