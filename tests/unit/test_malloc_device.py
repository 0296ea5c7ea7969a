"""The malloc device meets the BlockDevice contract."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mayastor.bdev import MallocDevice
from mayastor.errors import InvalidArgument
from tests.conformance.block_device import BlockDeviceConformance


class TestMallocConformance512(BlockDeviceConformance):
    @pytest.fixture
    async def device(self) -> AsyncIterator[MallocDevice]:
        dev = MallocDevice("m0", num_blocks=4096, block_size=512)
        yield dev
        await dev.close()


class TestMallocConformance4096(BlockDeviceConformance):
    @pytest.fixture
    async def device(self) -> AsyncIterator[MallocDevice]:
        dev = MallocDevice("m1", num_blocks=512, block_size=4096)
        yield dev
        await dev.close()


def test_block_size_other_than_512_or_4096_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="block size 1024"):
        MallocDevice("bad", num_blocks=8, block_size=1024)
