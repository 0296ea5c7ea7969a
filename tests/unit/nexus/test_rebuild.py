"""Rebuild: full and partial copies under front-end I/O, control, stats and history."""

from __future__ import annotations

import asyncio
import random

import pytest

from mayastor.errors import (
    FailedPrecondition,
    IoTimeout,
    NotFound,
    UnrecoveredReadError,
    WriteFault,
)
from mayastor.nexus import ChildState, FaultReason, Nexus, NexusState, RebuildState
from tests.conformance.block_device import pattern
from tests.unit.nexus.conftest import IO_APIS, MakeNexus
from tests.unit.nexus.faulty import Fault, RecordingStore, Shelf

C0, C1, C2 = (f"malloc:///c{i}?size_mb=2" for i in range(3))
SEGMENT = 64 * 1024
SEG_BLOCKS = SEGMENT // 512


@pytest.fixture(params=IO_APIS)
def io_api(request: pytest.FixtureRequest) -> str:
    """Every test here runs with awaited and with submitted I/O."""
    return str(request.param)


async def spin(times: int = 50) -> None:
    for _ in range(times):
        await asyncio.sleep(0)


async def same_contents(shelf: Shelf, a: str, b: str, nblocks: int = 4096) -> bool:
    return bytes(await shelf.disks[a].read(0, nblocks)) == bytes(
        await shelf.disks[b].read(0, nblocks)
    )


async def fill(nexus: Nexus, seed: int) -> None:
    await nexus.write(0, pattern(nexus.size, seed))


async def test_a_full_rebuild_makes_a_new_child_identical_while_a_writer_runs(
    make_nexus: MakeNexus, shelf: Shelf, store: RecordingStore
) -> None:
    nexus = await make_nexus(2, segment_size=4096, rebuild_tasks=8)
    await fill(nexus, seed=1)
    shelf.handle(C0).slow("read")  # a malloc disk never makes a task wait; real disks do
    acknowledged: dict[int, bytes] = {}
    during_rebuild = 0
    stop = asyncio.Event()
    rng = random.Random(7)

    async def writer() -> None:
        nonlocal during_rebuild
        seed = 100
        while not stop.is_set():
            lba = rng.randrange(0, nexus.num_blocks - 16)
            nblocks = rng.randrange(1, 16)
            data = pattern(nblocks * 512, seed)
            await nexus.write(lba, data)
            for i in range(nblocks):
                acknowledged[lba + i] = data[i * 512 : (i + 1) * 512]
            if any(c.state is ChildState.DEGRADED for c in nexus.children):
                during_rebuild += 1
            seed += 1
            await asyncio.sleep(0)

    writers = [asyncio.create_task(writer()) for _ in range(4)]
    await nexus.add_child(C2)
    record = await nexus.wait_rebuild(C2)
    stop.set()
    await asyncio.gather(*writers)
    assert record.state is RebuildState.COMPLETED
    assert during_rebuild > 10
    assert nexus.child(C2).state is ChildState.ONLINE
    assert nexus.state is NexusState.ONLINE
    assert await same_contents(shelf, "c0", "c2")
    for name in ("c0", "c1", "c2"):
        disk = shelf.disks[name]
        for lba, data in acknowledged.items():
            assert bytes(await disk.read(lba, 1)) == data, (name, lba)
    assert store.healthy(nexus.uuid)[nexus.child(C2).uuid] is True


async def test_a_rebuilt_child_is_recorded_healthy_before_it_serves_reads(
    make_nexus: MakeNexus, shelf: Shelf, store: RecordingStore
) -> None:
    nexus = await make_nexus(1)
    store.gate = asyncio.Event()
    adding = asyncio.create_task(nexus.add_child(C1))
    store.gate.set()
    await adding
    store.gate = asyncio.Event()
    while not store.waiting:
        await asyncio.sleep(0)
    await spin()
    assert nexus.child(C1).state is ChildState.DEGRADED
    store.gate.set()
    await nexus.wait_rebuild(C1)
    assert nexus.child(C1).state is ChildState.ONLINE
    assert store.healthy(nexus.uuid)[nexus.child(C1).uuid] is True


async def copy_holding(make_nexus: MakeNexus, shelf: Shelf, segment: int) -> tuple[Nexus, Fault]:
    """A nexus of C0 (filled) rebuilding C1, its copy holding the extent of `segment`
    and reading the old data until the returned hang is released."""
    nexus = await make_nexus(1)
    await fill(nexus, seed=1)
    held = shelf.handle(C0).hang("read", lba=segment, nblocks=SEG_BLOCKS)
    await nexus.add_child(C1)
    await held.reached.wait()
    return nexus, held


async def test_a_front_end_write_waits_for_the_copy_of_its_segment(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    segment = 5 * SEG_BLOCKS
    nexus, held = await copy_holding(make_nexus, shelf, segment)
    new = pattern(512, seed=2)
    write = asyncio.create_task(nexus.write(segment + 3, new))
    await spin()
    assert not write.done()
    assert bytes(await shelf.disks["c0"].read(segment + 3, 1)) != new
    held.release()
    await write
    await nexus.wait_rebuild(C1)
    assert bytes(await shelf.disks["c1"].read(segment + 3, 1)) == new
    assert await same_contents(shelf, "c0", "c1")


@pytest.mark.parametrize("io_api", ["awaited"])  # the nexus's own submit API, called here
async def test_a_submitted_write_beside_the_segment_being_copied_needs_no_wait(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    segment = 5 * SEG_BLOCKS
    nexus, held = await copy_holding(make_nexus, shelf, segment)
    await spin()  # every other extent is copied
    ended: list[tuple[str, object]] = []
    beside, inside = pattern(512, seed=4), pattern(512, seed=5)
    last = nexus.num_blocks - 1
    nexus.submit_write(last, beside, lambda c, _d, e: ended.append((c, e)), "b")
    nexus.submit_write(segment + 1, inside, lambda c, _d, e: ended.append((c, e)), "i")
    assert ended == [("b", None)]  # both in-process children took it inline
    await spin()
    assert ended == [("b", None)]
    assert bytes(await shelf.disks["c0"].read(segment + 1, 1)) != inside
    held.release()
    await nexus.wait_rebuild(C1)
    assert ended == [("b", None), ("i", None)]
    for name in ("c0", "c1"):
        assert bytes(await shelf.disks[name].read(last, 1)) == beside
        assert bytes(await shelf.disks[name].read(segment + 1, 1)) == inside


async def test_the_copy_of_a_segment_waits_for_the_writes_in_flight_on_it(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    nexus = await make_nexus(1)
    await fill(nexus, seed=1)
    await nexus.add_child(C1, norebuild=True)
    await nexus.start_rebuild(C1)
    nexus.pause_rebuild(C1)
    segment = 7 * SEG_BLOCKS
    held = shelf.handle(C0).hang("write", lba=segment, nblocks=SEG_BLOCKS)
    new = pattern(2 * 512, seed=3)
    write = asyncio.create_task(nexus.write(segment, new))
    await held.reached.wait()  # on the destination already, not yet on the source
    nexus.resume_rebuild(C1)
    while nexus.rebuild_stats(C1).blocks_recovered < nexus.num_blocks - SEG_BLOCKS:
        await asyncio.sleep(0)
    await spin()
    assert nexus.rebuild_state(C1) is RebuildState.RUNNING
    held.release()
    await write
    await nexus.wait_rebuild(C1)
    assert bytes(await shelf.disks["c1"].read(segment, 2)) == new
    assert await same_contents(shelf, "c0", "c1")


async def test_a_partial_rebuild_copies_only_the_segments_written_while_offline(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    nexus = await make_nexus(3)
    await fill(nexus, seed=1)
    await nexus.flush()
    await nexus.offline_child(C2)
    assert nexus.child(C2).reason is FaultReason.OFFLINE
    assert nexus.child(C2).partial_rebuild
    for segment in (1, 4, 30):
        await nexus.write(segment * SEG_BLOCKS + 2, pattern(3 * 512, seed=segment))
    await nexus.online_child(C2)
    record = await nexus.wait_rebuild(C2)
    assert record.is_partial
    assert record.blocks_transferred == 3 * SEG_BLOCKS
    assert record.blocks_recovered == nexus.num_blocks
    assert nexus.child(C2).state is ChildState.ONLINE
    assert await same_contents(shelf, "c0", "c2")


async def test_a_child_retired_by_a_timeout_comes_back_with_a_partial_rebuild(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    nexus = await make_nexus(3)
    await fill(nexus, seed=1)
    await nexus.flush()
    shelf.handle(C2).fail("write", IoTimeout("no answer"))
    await nexus.write(5 * SEG_BLOCKS, pattern(512, seed=2))  # retires c2
    await nexus.unmap(9 * SEG_BLOCKS, 4)
    await nexus.write_zeroes(20 * SEG_BLOCKS, 1)
    assert nexus.child(C2).reason is FaultReason.TIMED_OUT
    await nexus.online_child(C2)
    record = await nexus.wait_rebuild(C2)
    assert record.is_partial
    assert record.blocks_transferred == 3 * SEG_BLOCKS
    assert await same_contents(shelf, "c0", "c2")


async def test_writes_not_yet_flushed_when_a_child_timed_out_are_rebuilt_too(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    nexus = await make_nexus(2)
    await nexus.flush()
    await nexus.write(2 * SEG_BLOCKS, pattern(512, seed=1))  # acknowledged, not flushed
    shelf.handle(C1).fail("write", IoTimeout("no answer"))
    await nexus.write(6 * SEG_BLOCKS, pattern(512, seed=2))
    await nexus.flush()  # reaches c0 only
    await nexus.online_child(C1)
    record = await nexus.wait_rebuild(C1)
    assert record.is_partial
    assert record.blocks_transferred == 2 * SEG_BLOCKS


async def test_a_child_faulted_by_an_io_error_needs_a_full_rebuild(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    nexus = await make_nexus(2)
    shelf.handle(C1).fail("write", WriteFault("medium"))
    await nexus.write(0, pattern(512, seed=1))
    assert not nexus.child(C1).partial_rebuild
    await nexus.online_child(C1)
    record = await nexus.wait_rebuild(C1)
    assert not record.is_partial
    assert record.blocks_transferred == nexus.num_blocks


async def test_a_rebuild_can_be_paused_resumed_and_completes(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    nexus = await make_nexus(1, segment_size=4096)
    await nexus.add_child(C1, norebuild=True)
    await nexus.start_rebuild(C1)
    nexus.pause_rebuild(C1)
    await spin()
    assert nexus.rebuild_state(C1) is RebuildState.PAUSED
    assert nexus.rebuild_stats(C1).blocks_recovered == 0
    assert nexus.child(C1).rebuild_progress == 0
    nexus.resume_rebuild(C1)
    assert nexus.rebuild_state(C1) is RebuildState.RUNNING
    record = await nexus.wait_rebuild(C1)
    assert record.state is RebuildState.COMPLETED
    assert nexus.rebuild_history()[-1] == record


async def test_a_stopped_rebuild_leaves_the_child_out_of_sync_and_is_in_the_history(
    make_nexus: MakeNexus, shelf: Shelf, store: RecordingStore
) -> None:
    nexus = await make_nexus(1)
    await nexus.add_child(C1, norebuild=True)
    await nexus.start_rebuild(C1)
    nexus.pause_rebuild(C1)
    await nexus.stop_rebuild(C1)
    status = nexus.child(C1)
    assert (status.state, status.reason) == (ChildState.FAULTED, FaultReason.OUT_OF_SYNC)
    await spin()
    [record] = nexus.rebuild_history()
    assert (record.state, record.reason) == (RebuildState.STOPPED, "stopped by request")
    assert record.child_uri == C1
    assert record.source_uri == C0
    assert store.healthy(nexus.uuid)[status.uuid] is False
    with pytest.raises(NotFound):
        nexus.rebuild_state(C1)
    await nexus.start_rebuild(C1)
    assert (await nexus.wait_rebuild(C1)).state is RebuildState.COMPLETED


async def test_controlling_a_rebuild_that_is_not_running_is_refused(
    make_nexus: MakeNexus,
) -> None:
    nexus = await make_nexus(2)
    with pytest.raises(NotFound):
        nexus.pause_rebuild(C1)
    with pytest.raises(NotFound):
        nexus.rebuild_stats("malloc:///nope")
    await nexus.add_child(C2)
    await nexus.wait_rebuild(C2)
    with pytest.raises(NotFound, match="not being rebuilt"):
        nexus.resume_rebuild(C2)
    with pytest.raises(NotFound):
        await nexus.stop_rebuild(C2)
    with pytest.raises(FailedPrecondition, match="online"):
        await nexus.start_rebuild(C2)


async def test_a_rebuild_whose_source_fails_faults_the_destination(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    nexus = await make_nexus(1)
    shelf.handle(C0).fail("read", UnrecoveredReadError("bad sector"), lba=3 * SEG_BLOCKS, nblocks=1)
    await nexus.add_child(C1)
    record = await nexus.wait_rebuild(C1)
    assert record.state is RebuildState.FAILED
    assert record.reason is not None
    assert "source" in record.reason
    status = nexus.child(C1)
    assert (status.state, status.reason) == (ChildState.FAULTED, FaultReason.REBUILD_FAILED)
    assert nexus.child(C0).state is ChildState.ONLINE


async def test_a_rebuild_whose_destination_fails_faults_it(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    nexus = await make_nexus(1)
    shelf.prepare[C1] = lambda handle: handle.fail("write", WriteFault("medium"), times=None)
    await nexus.add_child(C1)
    record = await nexus.wait_rebuild(C1)
    assert record.state is RebuildState.FAILED
    assert record.reason is not None
    assert "destination" in record.reason
    assert nexus.child(C1).reason is FaultReason.REBUILD_FAILED


async def test_a_rebuild_whose_source_is_retired_never_completes(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    nexus = await make_nexus(2)
    await nexus.add_child(C2, norebuild=True)
    await nexus.start_rebuild(C2)
    nexus.pause_rebuild(C2)
    shelf.handle(C0).fail("write", WriteFault("source medium"))
    await nexus.write(0, bytes(512))
    assert nexus.child(C0).state is ChildState.FAULTED
    status = nexus.child(C2)
    assert (status.state, status.reason) == (ChildState.FAULTED, FaultReason.REBUILD_FAILED)
    await spin()
    assert nexus.rebuild_history()[-1].state is RebuildState.FAILED


async def test_rebuild_stats_report_progress_bytes_and_times(make_nexus: MakeNexus) -> None:
    ticks = iter(range(1000, 2000))
    nexus = await make_nexus(1, clock=lambda: float(next(ticks)))
    await nexus.add_child(C1, norebuild=True)
    await nexus.start_rebuild(C1)
    stats = nexus.rebuild_stats(C1)
    assert stats.blocks_total == nexus.num_blocks
    assert stats.progress == 0
    assert stats.segment_size_blks == SEG_BLOCKS
    assert stats.tasks_total == 16
    record = await nexus.wait_rebuild(C1)
    assert record.blocks_recovered == record.blocks_transferred == nexus.num_blocks
    assert record.start_time is not None
    assert record.end_time is not None
    assert record.end_time > record.start_time >= 1000


async def test_the_history_keeps_the_most_recent_rebuilds(make_nexus: MakeNexus) -> None:
    nexus = await make_nexus(2, history_size=2)
    for _ in range(3):
        await nexus.fault_child(C1)
        await nexus.online_child(C1)
        await nexus.wait_rebuild(C1)
    history = nexus.rebuild_history()
    assert len(history) == 2
    assert all(r.state is RebuildState.COMPLETED for r in history)


async def test_a_rebuild_starts_only_once_the_writes_in_flight_have_drained(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    nexus = await make_nexus(1)
    await nexus.add_child(C1, norebuild=True)
    segment = 3 * SEG_BLOCKS
    held = shelf.handle(C0).hang("write", lba=segment, nblocks=1)
    new = pattern(512, seed=4)
    write = asyncio.create_task(nexus.write(segment, new))
    await held.reached.wait()  # in flight before the new child took writes
    starting = asyncio.create_task(nexus.start_rebuild(C1))
    await spin()
    assert not starting.done()
    held.release()
    await write
    await starting
    await nexus.wait_rebuild(C1)
    assert bytes(await shelf.disks["c1"].read(segment, 1)) == new


async def test_a_child_that_missed_nothing_comes_back_without_copying(
    make_nexus: MakeNexus,
) -> None:
    nexus = await make_nexus(2)
    await nexus.offline_child(C1)
    await nexus.read(0, 8)
    await nexus.online_child(C1)
    record = await nexus.wait_rebuild(C1)
    assert (record.state, record.is_partial) == (RebuildState.COMPLETED, True)
    assert record.blocks_transferred == 0
    assert nexus.child(C1).state is ChildState.ONLINE
