"""The demo's application: writes and reads a published volume through our initiator."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

from mayastor.bdev import NvmfDevice
from mayastor.nvmf.host import ControllerOptions


async def _open(uri: str, hostnqn: str) -> NvmfDevice:
    return await NvmfDevice.open(uri, options=ControllerOptions(hostnqn=hostnqn, io_timeout=30.0))


def write_chunks(uri: str, hostnqn: str, chunks: Mapping[int, bytes]) -> None:
    """Write each chunk at its byte offset, then flush (the writes are then durable)."""

    async def run() -> None:
        device = await _open(uri, hostnqn)
        try:
            for offset, data in chunks.items():
                await device.write(offset // device.block_size, data)
            await device.flush()
        finally:
            await device.close()

    asyncio.run(run())


def read_chunks(uri: str, hostnqn: str, offsets: Iterable[int], size: int) -> dict[int, bytes]:
    """Read `size` bytes at each offset."""

    async def run() -> dict[int, bytes]:
        device = await _open(uri, hostnqn)
        try:
            blocks = size // device.block_size
            return {
                offset: bytes(await device.read(offset // device.block_size, blocks))
                for offset in offsets
            }
        finally:
            await device.close()

    return asyncio.run(run())
