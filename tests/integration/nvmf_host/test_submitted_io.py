"""Reads and writes submitted to our initiator by callback (`submit_read`,
`submit_write`: what the target and the nexus use), against our target: more commands
than the queue holds, completions out of order, and a path that freezes or breaks.
Each callback is called exactly once, never inside the call that submitted it."""

from __future__ import annotations

import asyncio

from mayastor.bdev import Buffer, NvmfDevice
from mayastor.errors import DeviceError, IoTimeout, LbaOutOfRange, PathLost
from tests.conformance.block_device import pattern
from tests.integration.nvmf_host.conftest import Served, options
from tests.integration.nvmf_host.proxy import FaultProxy


class Callbacks:
    """Completions by context; a second completion of one context fails the test."""

    def __init__(self) -> None:
        self.ended: dict[int, tuple[Buffer | None, DeviceError | None]] = {}
        self.order: list[int] = []
        self.submitting = False
        self.changed = asyncio.Event()

    def __call__(self, ctx: int, data: Buffer | None, error: DeviceError | None) -> None:
        assert not self.submitting, "completed inside the call that submitted it"
        assert ctx not in self.ended, f"{ctx} completed twice"
        self.ended[ctx] = (data, error)
        self.order.append(ctx)
        self.changed.set()

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(30):
            while len(self.ended) < count:
                self.changed.clear()
                await self.changed.wait()


async def open_device(served: Served, port: int | None = None, **kwargs: object) -> NvmfDevice:
    return await NvmfDevice.open(served.uri(port), options=options(**kwargs))


async def test_more_submitted_commands_than_the_queue_holds_all_complete_once(
    served: Served,
) -> None:
    dev = await open_device(served, queue_size=4, io_queues=1)
    try:
        done = Callbacks()
        done.submitting = True
        for i in range(40):
            dev.submit_write(8 * i, pattern(4096, i), done, i)
        done.submitting = False
        await done.wait_for(40)
        assert all(error is None for _, error in done.ended.values())
        reads = Callbacks()
        reads.submitting = True
        for i in range(40):
            dev.submit_read(8 * i, 8, reads, i)
        reads.submitting = False
        await reads.wait_for(40)
        assert {i: bytes(data or b"") for i, (data, _) in reads.ended.items()} == {
            i: pattern(4096, i) for i in range(40)
        }
    finally:
        await dev.close()


async def test_a_failed_submitted_command_gets_its_status_as_an_error_with_its_range(
    served: Served,
) -> None:
    dev = await open_device(served)
    try:
        dev.num_blocks += 8  # the target still checks its own end
        done = Callbacks()
        dev.submit_read(dev.num_blocks - 8, 8, done, 0)
        await done.wait_for(1)
        _, error = done.ended[0]
        assert isinstance(error, LbaOutOfRange)
        assert (error.lba, error.nblocks) == (dev.num_blocks - 8, 8)
    finally:
        dev.num_blocks -= 8
        await dev.close()


async def test_submitted_commands_on_a_frozen_link_end_with_io_timeout(
    proxy: FaultProxy, served: Served
) -> None:
    dev = await open_device(served, proxy.port, io_timeout=0.3, keep_alive_timeout=0)
    try:
        proxy.freeze()
        done = Callbacks()
        for i in range(4):
            dev.submit_read(8 * i, 8, done, i)
        await done.wait_for(4)
        assert all(isinstance(error, IoTimeout) for _, error in done.ended.values())
        assert sorted(error.lba or 0 for _, error in done.ended.values() if error) == [0, 8, 16, 24]
        proxy.thaw()
        assert bytes(await dev.read(0, 1)) == bytes(512)
    finally:
        await dev.close()


async def test_submitted_commands_in_flight_and_waiting_when_the_link_is_cut_end_with_path_lost(
    proxy: FaultProxy, served: Served
) -> None:
    dev = await open_device(
        served, proxy.port, queue_size=4, io_queues=1, fast_io_fail_timeout=None
    )
    try:
        proxy.freeze()
        done = Callbacks()
        for i in range(12):  # 4 in flight, 8 in the backlog
            dev.submit_write(8 * i, pattern(4096, i), done, i)
        await asyncio.sleep(0.05)
        assert not done.ended
        await proxy.cut()
        proxy.thaw()
        await done.wait_for(12)
        assert all(isinstance(error, PathLost) for _, error in done.ended.values())
    finally:
        await dev.close()


async def test_submitted_reads_and_writes_are_counted_in_the_device_stats(served: Served) -> None:
    dev = await open_device(served)
    try:
        writes = Callbacks()
        for i in range(3):
            dev.submit_write(8 * i, pattern(4096, i), writes, i)
        await writes.wait_for(3)
        reads = Callbacks()
        dev.submit_read(0, 8, reads, 0)
        await reads.wait_for(1)
        stats = dev.stats
        assert (stats.num_write_ops, stats.bytes_written) == (3, 3 * 4096)
        assert (stats.num_read_ops, stats.bytes_read) == (1, 4096)
        assert bytes(reads.ended[0][0] or b"") == pattern(4096, 0)
    finally:
        await dev.close()


async def test_a_submitted_io_outside_the_device_or_of_part_of_a_block_never_reaches_the_target(
    served: Served,
) -> None:
    dev = await open_device(served)
    try:
        sent = sum(q.submitted for q in dev.controller.io_queues)
        ended: list[tuple[int, str]] = []

        def done(ctx: int, _data: Buffer | None, error: DeviceError | None) -> None:
            ended.append((ctx, type(error).__name__))

        dev.submit_write(dev.num_blocks - 1, pattern(8192, 1), done, 0)
        dev.submit_write(0, pattern(700, 2), done, 1)
        dev.submit_read(-1, 1, done, 2)
        dev.submit_read(dev.num_blocks, 1, done, 3)
        await asyncio.sleep(0)
        assert ended == [
            (0, "LbaOutOfRange"), (1, "InvalidField"), (2, "LbaOutOfRange"), (3, "LbaOutOfRange")
        ]  # fmt: skip
        assert sum(q.submitted for q in dev.controller.io_queues) == sent
    finally:
        await dev.close()
