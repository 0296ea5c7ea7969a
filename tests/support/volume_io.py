"""Synchronous I/O to a published volume through our initiator, for control-plane tests."""

from __future__ import annotations

import asyncio
import uuid

from mayastor.bdev import NvmfDevice
from mayastor.errors import DeviceError, MayastorError, ReservationConflict
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


def write_once(uri: str, hostnqn: str, writes: list[tuple[int, bytes]]) -> list[str]:
    """Try each write (and a flush) through `uri` once, with no reconnect and no waiting
    for a lost path; per write "acknowledged" or why not."""

    async def run() -> list[str]:
        options = ControllerOptions(
            hostnqn=hostnqn, io_timeout=5.0, ctrl_loss_timeout=0, fast_io_fail_timeout=0.0
        )
        try:
            device = await asyncio.wait_for(NvmfDevice.open(uri, options=options), 20)
        except (MayastorError, TimeoutError) as exc:
            return [f"cannot connect: {exc!r}"] * len(writes)
        outcomes = []
        try:
            for offset, data in writes:
                try:
                    await asyncio.wait_for(device.write(offset // device.block_size, data), 20)
                    await asyncio.wait_for(device.flush(), 20)
                except (MayastorError, TimeoutError) as exc:
                    outcomes.append(f"failed: {exc!r}")
                else:
                    outcomes.append("acknowledged")
        finally:
            await device.close()
        return outcomes

    return asyncio.run(run())


def reservation_probe(uri: str, hostnqn: str) -> tuple[int, str]:
    """Connect to a shared replica as a host of its own (`hostnqn`, a new host
    identifier): the key that holds its reservation (0: none) and what a write of one
    block gets ("acknowledged" or "reservation conflict")."""

    async def run() -> tuple[int, str]:
        options = ControllerOptions(hostnqn=hostnqn, hostid=uuid.uuid4())
        device = await NvmfDevice.open(uri, options=options)
        try:
            status = await device.reservation_report()
            try:
                await device.write(0, bytes(device.block_size))
            except ReservationConflict:
                outcome = "reservation conflict"
            else:
                outcome = "acknowledged"
            return (status.holders[0].rkey if status.holders else 0), outcome
        finally:
            await device.close()

    return asyncio.run(run())
