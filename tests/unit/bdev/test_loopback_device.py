"""A loopback handle reaches its device in-process, and closing it leaves the device open."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mayastor.bdev import MallocDevice
from mayastor.bdev.loopback import LoopbackDevice
from tests.conformance.block_device import BlockDeviceConformance


class TestLoopbackConformance(BlockDeviceConformance):
    @pytest.fixture
    async def device(self) -> AsyncIterator[LoopbackDevice]:
        inner = MallocDevice("inner", num_blocks=4096, block_size=512)
        handle = LoopbackDevice(inner)
        yield handle
        await handle.close()
        await inner.close()


async def test_closing_the_handle_leaves_the_device_open_and_tells_its_owner() -> None:
    inner = MallocDevice("inner", num_blocks=64)
    released: list[str] = []

    async def release() -> None:
        released.append("released")

    handle = LoopbackDevice(inner, on_close=release)
    await handle.write(0, b"\x01" * 512)
    await handle.close()
    assert released == ["released"]
    assert not inner.closed
    assert bytes(await inner.read(0, 1)) == b"\x01" * 512
    await inner.close()
