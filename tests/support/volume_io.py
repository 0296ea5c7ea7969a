"""Synchronous I/O to a published volume through our initiator, for control-plane tests."""

from __future__ import annotations

import asyncio

from mayastor.bdev import NvmfDevice
from mayastor.errors import DeviceError
from mayastor.nvmf.host import ControllerOptions


def frontend_nqn(node: str) -> str:
    """The host NQN the control plane allows for a frontend node."""
    return f"nqn.2019-05.io.openebs:node-name:{node}"


async def _open(uri: str, hostnqn: str) -> NvmfDevice:
    return await NvmfDevice.open(uri, options=ControllerOptions(hostnqn=hostnqn))


def write_at(uri: str, hostnqn: str, offset: int, data: bytes) -> None:
    """Write `data` (whole blocks) at byte `offset` and flush."""

    async def run() -> None:
        device = await _open(uri, hostnqn)
        try:
            await device.write(offset // device.block_size, data)
            await device.flush()
        finally:
            await device.close()

    asyncio.run(run())


def read_at(uri: str, hostnqn: str, offset: int, length: int) -> bytes:
    async def run() -> bytes:
        device = await _open(uri, hostnqn)
        try:
            return bytes(
                await device.read(offset // device.block_size, length // device.block_size)
            )
        finally:
            await device.close()

    return asyncio.run(run())


def size_of(uri: str, hostnqn: str) -> int:
    """The size in bytes a host sees when it connects now."""

    async def run() -> int:
        device = await _open(uri, hostnqn)
        try:
            return device.size
        finally:
            await device.close()

    return asyncio.run(run())


def connect_error(uri: str, hostnqn: str) -> DeviceError | None:
    """The error a connection as `hostnqn` gets, or None when it is let in."""
    try:
        size_of(uri, hostnqn)
    except DeviceError as exc:
        return exc
    return None
