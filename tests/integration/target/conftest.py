"""Fixtures of the live target tests: a target on 127.0.0.1 (a free port) serving a
malloc device, and a way to make more of each. Everything is closed at the end."""

from __future__ import annotations

import asyncio
import uuid as uuid_mod
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from mayastor.bdev import Buffer, MallocDevice
from mayastor.target import NvmfTarget, TargetConfig, openebs_nqn

FAST = TargetConfig(keep_alive_check_interval=0.05, drain_timeout=5.0)
"""Keep-alive checks often enough for short KATOs in tests."""


@dataclass
class Served:
    """A target serving one device."""

    target: NvmfTarget
    device: MallocDevice
    nqn: str
    port: int


class SlowDevice(MallocDevice):
    """A malloc device whose writes take `delay` seconds (I/O in flight on demand)."""

    delay = 0.3

    async def _write(self, lba: int, data: Buffer) -> None:
        await asyncio.sleep(self.delay)
        await super()._write(lba, data)


@pytest.fixture
async def target() -> AsyncIterator[NvmfTarget]:
    made = NvmfTarget("127.0.0.1", config=FAST)
    yield made
    await made.close()


@pytest.fixture
async def devices() -> AsyncIterator[Callable[..., MallocDevice]]:
    made: list[MallocDevice] = []

    def make(
        size_mb: int = 8, block_size: int = 512, cls: type[MallocDevice] = MallocDevice
    ) -> MallocDevice:
        device = cls(f"m{len(made)}", (size_mb << 20) // block_size, block_size, uuid_mod.uuid4())
        made.append(device)
        return device

    yield make
    for device in made:
        await device.close()


@pytest.fixture
async def served(target: NvmfTarget, devices: Callable[..., MallocDevice]) -> Served:
    port = await target.listen(0)
    device = devices()
    nqn = openebs_nqn(device.uuid)
    target.add_subsystem(nqn, device, port=port)
    return Served(target, device, nqn, port)
