"""The rebuild job's copy: extents of consecutive segments, several in flight at once.

The job is driven directly, over two fault-injecting malloc disks and the range lock a
nexus's front-end writes hold (shared), so that each test can say which reads and
writes the copy made and what a front-end write racing it sees.
"""

from __future__ import annotations

import asyncio

from mayastor.bdev import MallocDevice
from mayastor.errors import UnrecoveredReadError
from mayastor.nexus import RebuildState
from mayastor.nexus._range_lock import RangeLock
from mayastor.nexus._rebuild import RebuildJob
from mayastor.nexus._segment_map import SegmentMap
from tests.conformance.block_device import pattern
from tests.unit.nexus.faulty import FaultyDevice

SEG = 8
"""Blocks per segment (4 KiB of 512-byte blocks)."""
BS = 512


class Pair:
    """A filled source, a zeroed destination and the range lock, for one job."""

    def __init__(self, num_blocks: int) -> None:
        self.num_blocks = num_blocks
        self.source = FaultyDevice(MallocDevice("src", num_blocks), "bdev:///src")
        self.destination = FaultyDevice(MallocDevice("dst", num_blocks), "bdev:///dst")
        self.lock = RangeLock()

    async def fill(self) -> None:
        await self.source.inner.write(0, pattern(self.num_blocks * BS, seed=1))

    def job(
        self, *, tasks: int = 4, extent: int | None = 4, segments: SegmentMap | None = None
    ) -> RebuildJob:
        """A job over the pair; `extent` None leaves the extent size to the job."""
        return RebuildJob(
            source=self.source,
            destination=self.destination,
            source_uri="bdev:///src",
            destination_uri="bdev:///dst",
            num_blocks=self.num_blocks,
            segment_blocks=SEG,
            tasks=tasks,
            range_lock=self.lock,
            segments=segments,
            extent_segments=extent,
        )

    def reads(self) -> list[tuple[int, int]]:
        return [(lba, n) for op, lba, n in self.source.calls if op == "read"]

    async def same(self) -> bool:
        a = await self.source.inner.read(0, self.num_blocks)
        b = await self.destination.inner.read(0, self.num_blocks)
        return bytes(a) == bytes(b)

    async def front_end_write(self, lba: int, data: bytes) -> None:
        """A nexus write while the job runs: shared lock, then both children."""
        token = await self.lock.acquire(lba, len(data) // BS, exclusive=False)
        try:
            await self.source.inner.write(lba, data)
            await self.destination.inner.write(lba, data)
        finally:
            self.lock.release(token)


async def spin(times: int = 50) -> None:
    for _ in range(times):
        await asyncio.sleep(0)


async def test_consecutive_segments_are_copied_by_one_read_and_one_write_per_extent() -> None:
    pair = Pair(10 * SEG)
    await pair.fill()
    job = pair.job(tasks=1, extent=4)
    job.start()
    assert await job.wait() is RebuildState.COMPLETED
    assert pair.reads() == [(0, 4 * SEG), (4 * SEG, 4 * SEG), (8 * SEG, 2 * SEG)]
    assert pair.destination.count("write") == 3
    assert await pair.same()


async def test_the_last_short_segment_is_copied_up_to_the_end_and_no_further() -> None:
    pair = Pair(5 * SEG + 3)
    await pair.fill()
    job = pair.job(tasks=2, extent=2)
    job.start()
    assert await job.wait() is RebuildState.COMPLETED
    assert sorted(pair.reads()) == [(0, 2 * SEG), (2 * SEG, 2 * SEG), (4 * SEG, SEG + 3)]
    stats = job.stats()
    assert (stats.blocks_transferred, stats.blocks_recovered, stats.progress) == (
        5 * SEG + 3, 5 * SEG + 3, 100,
    )  # fmt: skip
    assert await pair.same()


async def test_a_partial_rebuild_of_the_last_short_segment_copies_only_its_blocks() -> None:
    pair = Pair(3 * SEG + 3)
    await pair.fill()
    missed = SegmentMap(4)
    missed.add_range(3, 1)
    job = pair.job(segments=missed)
    job.start()
    assert await job.wait() is RebuildState.COMPLETED
    assert pair.reads() == [(3 * SEG, 3)]
    stats = job.stats()
    assert (stats.blocks_transferred, stats.blocks_recovered) == (3, 3 * SEG + 3)
    tail = await pair.destination.inner.read(3 * SEG, 3)
    assert bytes(tail) == bytes(await pair.source.inner.read(3 * SEG, 3))
    assert bytes(await pair.destination.inner.read(0, 3 * SEG)) == bytes(3 * SEG * BS)


async def test_a_partial_rebuild_copies_each_run_of_missed_segments_as_extents() -> None:
    pair = Pair(16 * SEG)
    await pair.fill()
    missed = SegmentMap(16)
    for first, count in ((1, 6), (9, 1), (12, 2)):
        missed.add_range(first, count)
    job = pair.job(tasks=1, extent=4, segments=missed)
    job.start()
    assert await job.wait() is RebuildState.COMPLETED
    assert pair.reads() == [
        (1 * SEG, 4 * SEG), (5 * SEG, 2 * SEG), (9 * SEG, SEG), (12 * SEG, 2 * SEG),
    ]  # fmt: skip


async def test_one_failing_extent_of_four_in_flight_fails_the_job_and_frees_all_locks() -> None:
    pair = Pair(16 * SEG)
    await pair.fill()
    held = pair.destination.hang("write")  # every other extent in flight waits on its write
    failing = pair.source.hang("read", lba=8 * SEG, nblocks=SEG, error=UnrecoveredReadError("bad"))
    job = pair.job(tasks=4, extent=4)
    job.start()
    await failing.reached.wait()
    while pair.destination.count("write") < 3:
        await asyncio.sleep(0)
    assert pair.lock.held == 4  # four extents in flight, each under its lock
    failing.release()  # the third extent's read fails while the others wait on writes
    assert await job.wait() is RebuildState.FAILED
    assert job.reason is not None
    assert "source" in job.reason
    assert isinstance(job.error, UnrecoveredReadError)
    assert (pair.lock.held, pair.lock.waiting) == (0, 0)
    assert job.stats().tasks_active == 0
    assert job.stats().blocks_recovered < pair.num_blocks
    assert pair.lock.try_acquire(0, pair.num_blocks, exclusive=False) is not None
    held.release()
    await spin()
    assert pair.destination.count("write") == 3  # nothing more was started after the failure


async def test_a_front_end_write_holding_a_segment_splits_the_extent_around_it() -> None:
    pair = Pair(8 * SEG)
    await pair.fill()
    token = await pair.lock.acquire(2 * SEG, SEG, exclusive=False)  # a write in flight
    job = pair.job(tasks=2, extent=8)
    job.start()
    while job.stats().blocks_recovered < 7 * SEG:
        await asyncio.sleep(0)
    await spin()
    assert job.state is RebuildState.RUNNING
    assert sorted(pair.reads()) == [(0, 2 * SEG), (3 * SEG, 5 * SEG)]
    new = pattern(SEG * BS, seed=9)
    await pair.source.inner.write(2 * SEG, new)
    await pair.destination.inner.write(2 * SEG, new)
    pair.lock.release(token)
    assert await job.wait() is RebuildState.COMPLETED
    assert pair.reads()[-1] == (2 * SEG, SEG)
    assert await pair.same()


async def test_a_front_end_write_racing_an_extent_in_flight_lands_after_its_copy() -> None:
    pair = Pair(8 * SEG)
    await pair.fill()
    held = pair.destination.hang("write", lba=0, nblocks=4 * SEG)
    job = pair.job(tasks=1, extent=4)
    job.start()
    await held.reached.wait()  # the old data of segments 0-3 is read, not yet written
    new = pattern(SEG * BS, seed=5)
    racing = asyncio.create_task(pair.front_end_write(2 * SEG, new))
    beside = asyncio.create_task(pair.front_end_write(5 * SEG, new))  # an extent not in flight
    await spin()
    assert beside.done()
    assert not racing.done()
    held.release()
    await racing
    assert await job.wait() is RebuildState.COMPLETED
    assert bytes(await pair.destination.inner.read(2 * SEG, SEG)) == new
    assert bytes(await pair.destination.inner.read(5 * SEG, SEG)) == new
    assert await pair.same()


async def test_a_stopped_job_abandons_its_extents_in_flight_and_frees_their_locks() -> None:
    pair = Pair(16 * SEG)
    await pair.fill()
    held = pair.destination.hang("write")
    job = pair.job(tasks=3, extent=2)
    job.start()
    while pair.destination.count("write") < 3:
        await asyncio.sleep(0)
    await job.stop("operator")
    assert job.state is RebuildState.STOPPED
    assert (pair.lock.held, pair.lock.waiting, job.stats().tasks_active) == (0, 0, 0)
    held.release()
    await spin()
    assert pair.destination.count("write") == 3
    assert job.stats().blocks_recovered == 0


async def test_an_extent_holds_as_many_segments_as_fit_in_a_mebibyte_by_default() -> None:
    pair = Pair(3 * 256 * SEG // 2)  # one and a half MiB of 4 KiB segments
    await pair.fill()
    job = pair.job(tasks=1, extent=None)
    job.start()
    assert await job.wait() is RebuildState.COMPLETED
    assert pair.reads() == [(0, 256 * SEG), (256 * SEG, 128 * SEG)]
    assert await pair.same()
