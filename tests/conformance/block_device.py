"""The BlockDevice conformance suite (DESIGN.md section 5).

Every device kind runs it by subclassing `BlockDeviceConformance` in its own test
module and providing an async `device` fixture that yields an open device of at
least 1 MiB whose blocks read as zeroes; the suite closes nothing it did not open.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import pytest

from mayastor.bdev import BLOCK_SIZES, BlockDevice, Buffer, IoDone
from mayastor.errors import DeviceError, DeviceNotReady, InvalidField, LbaOutOfRange


def pattern(nbytes: int, seed: int) -> bytes:
    """Deterministic, block-distinct bytes: a failed read shows where it went wrong."""
    unit = seed.to_bytes(4, "little") * 4
    out = bytearray(unit * (nbytes // len(unit) + 1))[:nbytes]
    for off in range(0, nbytes, 512):
        out[off : off + 8] = (seed * 1_000_003 + off).to_bytes(8, "little")
    return bytes(out)


class BlockDeviceConformance:
    """Behaviours every BlockDevice shares; subclasses supply the `device` fixture."""

    async def test_geometry_is_sane(self, device: BlockDevice) -> None:
        assert device.block_size in BLOCK_SIZES
        assert device.num_blocks * device.block_size >= 1 << 20
        assert device.size == device.num_blocks * device.block_size
        assert device.name

    async def test_read_returns_exactly_the_requested_bytes(self, device: BlockDevice) -> None:
        for nblocks in (1, 2, 7, 64):
            data = await device.read(0, nblocks)
            assert len(data) == nblocks * device.block_size

    async def test_unwritten_blocks_read_as_zeroes(self, device: BlockDevice) -> None:
        data = await device.read(device.num_blocks - 8, 8)
        assert bytes(data) == bytes(8 * device.block_size)

    async def test_written_blocks_read_back(self, device: BlockDevice) -> None:
        data = pattern(4 * device.block_size, seed=1)
        await device.write(3, data)
        assert bytes(await device.read(3, 4)) == data

    async def test_writes_of_many_sizes_and_places_read_back(self, device: BlockDevice) -> None:
        bs = device.block_size
        places = [(0, 1), (1, 3), (17, 64), (200, 256), (device.num_blocks - 9, 9)]
        for seed, (lba, nblocks) in enumerate(places, start=10):
            data = pattern(nblocks * bs, seed)
            await device.write(lba, data)
            assert bytes(await device.read(lba, nblocks)) == data, (lba, nblocks)

    async def test_last_block_is_addressable(self, device: BlockDevice) -> None:
        data = pattern(device.block_size, seed=5)
        await device.write(device.num_blocks - 1, data)
        assert bytes(await device.read(device.num_blocks - 1, 1)) == data

    async def test_write_takes_a_memoryview_slice(self, device: BlockDevice) -> None:
        bs = device.block_size
        backing = bytearray(pattern(6 * bs, seed=7))
        await device.write(40, memoryview(backing)[bs : 4 * bs])
        assert bytes(await device.read(40, 3)) == bytes(backing[bs : 4 * bs])

    async def test_caller_may_reuse_its_buffer_after_write_returns(
        self, device: BlockDevice
    ) -> None:
        bs = device.block_size
        buf = bytearray(pattern(2 * bs, seed=8))
        expected = bytes(buf)
        await device.write(50, buf)
        buf[:] = bytes(len(buf))
        assert bytes(await device.read(50, 2)) == expected

    async def test_read_result_does_not_change_with_later_writes(self, device: BlockDevice) -> None:
        bs = device.block_size
        first = pattern(bs, seed=9)
        await device.write(60, first)
        got = await device.read(60, 1)
        await device.write(60, pattern(bs, seed=10))
        assert bytes(got) == first

    async def test_many_concurrent_writes_to_distinct_ranges_all_land(
        self, device: BlockDevice
    ) -> None:
        bs = device.block_size
        count = 64
        datas = [pattern(2 * bs, seed=100 + i) for i in range(count)]
        await asyncio.gather(*(device.write(2 * i, d) for i, d in enumerate(datas)))
        reads = await asyncio.gather(*(device.read(2 * i, 2) for i in range(count)))
        assert [bytes(r) for r in reads] == datas

    async def test_write_past_the_end_is_refused_and_changes_nothing(
        self, device: BlockDevice
    ) -> None:
        bs = device.block_size
        last = device.num_blocks - 1
        before = bytes(await device.read(last, 1))
        with pytest.raises(LbaOutOfRange) as info:
            await device.write(last, pattern(2 * bs, seed=11))
        assert info.value.lba == last
        assert bytes(await device.read(last, 1)) == before

    async def test_read_past_the_end_is_refused(self, device: BlockDevice) -> None:
        with pytest.raises(LbaOutOfRange):
            await device.read(device.num_blocks, 1)
        with pytest.raises(LbaOutOfRange):
            await device.read(-1, 1)

    async def test_write_of_a_partial_block_is_refused(self, device: BlockDevice) -> None:
        with pytest.raises(InvalidField):
            await device.write(0, b"x" * (device.block_size + 1))

    async def test_write_zeroes_makes_the_range_read_as_zeroes(self, device: BlockDevice) -> None:
        bs = device.block_size
        await device.write(100, pattern(16 * bs, seed=12))
        await device.write_zeroes(104, 8)
        data = bytes(await device.read(100, 16))
        assert data[: 4 * bs] == pattern(16 * bs, seed=12)[: 4 * bs]
        assert data[4 * bs : 12 * bs] == bytes(8 * bs)
        assert data[12 * bs :] == pattern(16 * bs, seed=12)[12 * bs :]

    async def test_unmap_makes_the_range_read_as_zeroes(self, device: BlockDevice) -> None:
        bs = device.block_size
        await device.write(300, pattern(32 * bs, seed=13))
        await device.unmap(300, 32)
        assert bytes(await device.read(300, 32)) == bytes(32 * bs)

    async def test_flush_after_writes_succeeds(self, device: BlockDevice) -> None:
        await device.write(0, pattern(device.block_size, seed=14))
        await device.flush()
        assert device.stats.num_flush_ops >= 1

    async def test_byte_offsets_address_the_same_blocks(self, device: BlockDevice) -> None:
        bs = device.block_size
        data = os.urandom(2 * bs)
        await device.write_at(8 * bs, data)
        assert bytes(await device.read(8, 2)) == data
        assert bytes(await device.read_at(8 * bs, 2 * bs)) == data
        with pytest.raises(InvalidField):
            await device.read_at(1, bs)

    async def test_stats_count_operations_and_bytes(self, device: BlockDevice) -> None:
        bs = device.block_size
        before = device.stats.snapshot()
        await device.write(0, bytes(4 * bs))
        await device.read(0, 2)
        await device.read(0, 1)
        after = device.stats
        assert after.num_write_ops - before.num_write_ops == 1
        assert after.bytes_written - before.bytes_written == 4 * bs
        assert after.num_read_ops - before.num_read_ops == 2
        assert after.bytes_read - before.bytes_read == 3 * bs
        assert after.read_latency_ns > before.read_latency_ns

    async def test_close_waits_for_io_in_flight(self, device: BlockDevice) -> None:
        bs = device.block_size
        data = pattern(64 * bs, seed=15)
        writes = [asyncio.ensure_future(device.write(64 * i, data)) for i in range(8)]
        await asyncio.sleep(0)
        await device.close()
        assert all(w.done() for w in writes)
        for w in writes:
            w.result()

    async def test_io_after_close_is_refused_and_close_is_idempotent(
        self, device: BlockDevice
    ) -> None:
        await device.close()
        await device.close()
        assert device.closed
        with pytest.raises(DeviceNotReady):
            await device.read(0, 1)
        with pytest.raises(DeviceNotReady):
            await device.write(0, bytes(device.block_size))

    # ------------------------------------------------------------ submitted by callback

    async def test_submitted_writes_and_reads_complete_once_with_the_data(
        self, device: BlockDevice
    ) -> None:
        bs = device.block_size
        places = [(0, 1), (9, 8), (130, 64), (device.num_blocks - 3, 3)]
        datas = [pattern(n * bs, seed=200 + i) for i, (_, n) in enumerate(places)]
        written = await submitted(
            lambda done, ctx: device.submit_write(places[ctx][0], datas[ctx], done, ctx),
            len(places),
        )
        assert written == dict.fromkeys(range(len(places)), (None, None))
        read = await submitted(
            lambda done, ctx: device.submit_read(places[ctx][0], places[ctx][1], done, ctx),
            len(places),
        )
        assert {i: (bytes(d), e) for i, (d, e) in read.items() if d is not None} == {
            i: (datas[i], None) for i in range(len(places))
        }

    async def test_submitted_io_outside_the_device_is_reported_to_the_callback(
        self, device: BlockDevice
    ) -> None:
        bs = device.block_size
        read = await submitted(lambda done, ctx: device.submit_read(device.num_blocks, 1, done, 0))
        write = await submitted(
            lambda done, ctx: device.submit_write(device.num_blocks - 1, bytes(2 * bs), done, 0)
        )
        partial = await submitted(lambda done, ctx: device.submit_write(0, b"x" * 7, done, 0))
        assert isinstance(read[0][1], LbaOutOfRange)
        assert isinstance(write[0][1], LbaOutOfRange)
        assert isinstance(partial[0][1], InvalidField)

    async def test_submitted_io_is_counted_like_awaited_io(self, device: BlockDevice) -> None:
        bs = device.block_size
        before = device.stats.snapshot()
        await submitted(lambda done, ctx: device.submit_write(0, bytes(4 * bs), done, ctx))
        await submitted(lambda done, ctx: device.submit_read(0, 2, done, ctx))
        after = device.stats
        assert after.num_write_ops - before.num_write_ops == 1
        assert after.bytes_written - before.bytes_written == 4 * bs
        assert after.num_read_ops - before.num_read_ops == 1
        assert after.bytes_read - before.bytes_read == 2 * bs

    async def test_close_waits_for_submitted_io(self, device: BlockDevice) -> None:
        bs = device.block_size
        data = pattern(64 * bs, seed=16)
        ended: dict[int, DeviceError | None] = {}

        def done(ctx: int, _data: Buffer | None, error: DeviceError | None) -> None:
            ended[ctx] = error

        for i in range(8):
            device.submit_write(64 * i, data, done, i)
        await device.close()
        assert ended == dict.fromkeys(range(8))

    async def test_submitted_io_on_a_closed_device_is_refused(self, device: BlockDevice) -> None:
        await device.close()
        read = await submitted(lambda done, ctx: device.submit_read(0, 1, done, ctx))
        assert isinstance(read[0][1], DeviceNotReady)


async def submitted(
    start: Callable[[IoDone, int], None], count: int = 1
) -> dict[int, tuple[Buffer | None, DeviceError | None]]:
    """Submit `count` I/Os with contexts 0.. and wait until each has completed, once."""
    results: dict[int, tuple[Buffer | None, DeviceError | None]] = {}
    finished = asyncio.Event()

    def done(ctx: int, data: Buffer | None, error: DeviceError | None) -> None:
        assert ctx not in results, f"I/O {ctx} completed twice"
        results[ctx] = (data, error)
        if len(results) == count:
            finished.set()

    for ctx in range(count):
        start(done, ctx)
    await asyncio.wait_for(finished.wait(), 30)
    return results
