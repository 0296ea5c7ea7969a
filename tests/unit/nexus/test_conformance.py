"""A nexus of one, two and three children meets the BlockDevice contract."""

from __future__ import annotations

import uuid as uuid_mod
from collections.abc import AsyncIterator

import pytest

from mayastor.nexus import MemoryNexusInfoStore, Nexus
from tests.conformance.block_device import BlockDeviceConformance
from tests.unit.nexus.faulty import Shelf


async def _nexus(children: int, block_size: int) -> AsyncIterator[Nexus]:
    shelf = Shelf()
    uris = [f"malloc:///m{i}?size_mb=2&blk_size={block_size}" for i in range(children)]
    nexus = await Nexus.create(
        f"nexus{children}",
        uuid_mod.uuid4(),
        2 << 20,
        uris,
        opener=shelf,
        store=MemoryNexusInfoStore(),
    )
    yield nexus
    await nexus.destroy()
    assert not shelf.open_handles()
    await shelf.close()


class TestNexusOfOneChild(BlockDeviceConformance):
    @pytest.fixture
    async def device(self) -> AsyncIterator[Nexus]:
        async for nexus in _nexus(1, 512):
            yield nexus


class TestNexusOfTwoChildren(BlockDeviceConformance):
    @pytest.fixture
    async def device(self) -> AsyncIterator[Nexus]:
        async for nexus in _nexus(2, 512):
            yield nexus


class TestNexusOfThreeChildren(BlockDeviceConformance):
    @pytest.fixture
    async def device(self) -> AsyncIterator[Nexus]:
        async for nexus in _nexus(3, 512):
            yield nexus


class TestNexusOfThree4KiBChildren(BlockDeviceConformance):
    @pytest.fixture
    async def device(self) -> AsyncIterator[Nexus]:
        async for nexus in _nexus(3, 4096):
            yield nexus
