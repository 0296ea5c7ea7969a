"""The nexus I/O path: fan-out, acknowledgement, round-robin reads, retiring children."""

from __future__ import annotations

import asyncio

import pytest

from mayastor.errors import (
    DeviceError,
    DeviceNotReady,
    InternalDeviceError,
    IoTimeout,
    NoSpace,
    PathError,
    PathGone,
    PathLost,
    Unavailable,
    UnrecoveredReadError,
    WriteFault,
)
from mayastor.nexus import ChildInfo, ChildState, FaultReason, NexusInfo, NexusState
from tests.conformance.block_device import pattern
from tests.unit.nexus.conftest import IO_APIS, MakeNexus
from tests.unit.nexus.faulty import RecordingStore, Shelf

C0, C1, C2 = (f"malloc:///c{i}?size_mb=2" for i in range(3))


@pytest.fixture(params=IO_APIS)
def io_api(request: pytest.FixtureRequest) -> str:
    """Every test here runs with awaited and with submitted I/O."""
    return str(request.param)


async def spin(times: int = 20) -> None:
    """Let every task that can run, run."""
    for _ in range(times):
        await asyncio.sleep(0)


async def test_write_is_acknowledged_only_after_every_healthy_child_completed(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    nexus = await make_nexus(3)
    held = shelf.handle(C1).hang("write")
    data = pattern(8 * 512, seed=1)
    write = asyncio.create_task(nexus.write(16, data))
    await held.reached.wait()
    await spin()
    assert not write.done()
    assert bytes(await shelf.disks["c0"].read(16, 8)) == data
    assert bytes(await shelf.disks["c2"].read(16, 8)) == data
    held.release()
    await write
    assert bytes(await shelf.disks["c1"].read(16, 8)) == data


async def test_reads_go_round_robin_over_online_children(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    nexus = await make_nexus(3)
    for _ in range(9):
        await nexus.read(0, 1)
    assert [shelf.handle(uri).count("read") for uri in (C0, C1, C2)] == [3, 3, 3]


async def test_reads_never_go_to_a_degraded_child(make_nexus: MakeNexus, shelf: Shelf) -> None:
    nexus = await make_nexus(2)
    await nexus.add_child(C2, norebuild=True)
    await nexus.start_rebuild(C2)
    nexus.pause_rebuild(C2)
    assert nexus.child(C2).state is ChildState.DEGRADED
    for _ in range(10):
        await nexus.read(0, 1)
    assert shelf.handle(C2).count("read") == 0
    assert shelf.handle(C0).count("read") + shelf.handle(C1).count("read") >= 10


async def test_a_degraded_child_takes_every_write(make_nexus: MakeNexus, shelf: Shelf) -> None:
    nexus = await make_nexus(2)
    await nexus.add_child(C2, norebuild=True)
    await nexus.start_rebuild(C2)
    nexus.pause_rebuild(C2)
    data = pattern(512, seed=2)
    await nexus.write(100, data)
    assert bytes(await shelf.disks["c2"].read(100, 1)) == data


async def test_a_failed_read_is_retried_on_another_child_and_the_child_retired(
    make_nexus: MakeNexus, shelf: Shelf, store: RecordingStore
) -> None:
    nexus = await make_nexus(2)
    data = pattern(4 * 512, seed=3)
    await nexus.write(0, data)
    shelf.handle(C0).fail("read", UnrecoveredReadError("bad sector"))
    assert bytes(await nexus.read(0, 4)) == data
    assert shelf.handle(C0).count("read") == 1
    assert shelf.handle(C1).count("read") == 1
    status = nexus.child(C0)
    assert (status.state, status.reason) == (ChildState.FAULTED, FaultReason.IO_ERROR)
    assert store.healthy(nexus.uuid)[status.uuid] is False
    assert nexus.state is NexusState.DEGRADED


async def test_a_read_fails_only_when_no_child_returns_the_data(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    nexus = await make_nexus(2)
    shelf.handle(C0).fail("read", UnrecoveredReadError("bad sector"))
    shelf.handle(C1).fail("read", UnrecoveredReadError("bad sector too"))
    with pytest.raises(UnrecoveredReadError, match="too"):
        await nexus.read(0, 1)
    assert nexus.child(C1).state is ChildState.ONLINE


async def test_a_failed_write_retires_the_child_and_completes_on_the_others(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    nexus = await make_nexus(3)
    shelf.handle(C1).fail("write", WriteFault("medium failed"))
    data = pattern(2 * 512, seed=4)
    await nexus.write(7, data)
    assert bytes(await shelf.disks["c0"].read(7, 2)) == data
    assert bytes(await shelf.disks["c2"].read(7, 2)) == data
    status = nexus.child(C1)
    assert (status.state, status.reason) == (ChildState.FAULTED, FaultReason.IO_ERROR)
    assert nexus.state is NexusState.DEGRADED
    await nexus.write(7, pattern(2 * 512, seed=5))
    assert shelf.handle(C1).count("write") == 1


async def test_children_ending_a_write_in_any_order_acknowledge_it_once_after_the_last(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    nexus = await make_nexus(3)
    first, second = shelf.handle(C0).hang("write"), shelf.handle(C2).hang("write")
    data = pattern(4 * 512, seed=31)
    write = asyncio.create_task(nexus.write(40, data))
    await first.reached.wait()
    await second.reached.wait()
    second.release()
    await spin()
    assert not write.done()
    first.release()
    await write
    for name in ("c0", "c1", "c2"):
        assert bytes(await shelf.disks[name].read(40, 4)) == data
    assert [c.state for c in nexus.children] == [ChildState.ONLINE] * 3


async def test_a_child_failing_while_another_still_writes_is_retired_and_the_write_waits(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    nexus = await make_nexus(3)
    held = shelf.handle(C0).hang("write")
    shelf.handle(C1).fail("write", WriteFault("medium failed"))
    data = pattern(2 * 512, seed=32)
    write = asyncio.create_task(nexus.write(50, data))
    await held.reached.wait()
    await spin()
    assert not write.done()
    held.release()
    await write
    assert nexus.child(C1).state is ChildState.FAULTED
    assert [nexus.child(c).state for c in (C0, C2)] == [ChildState.ONLINE] * 2
    assert bytes(await shelf.disks["c0"].read(50, 2)) == data
    assert bytes(await shelf.disks["c2"].read(50, 2)) == data


async def test_a_write_that_retires_a_child_returns_only_after_the_store_recorded_it(
    make_nexus: MakeNexus, shelf: Shelf, store: RecordingStore
) -> None:
    nexus = await make_nexus(2)
    child_uuid = nexus.child(C1).uuid
    shelf.handle(C1).fail("write", WriteFault("medium failed"))
    store.gate = asyncio.Event()
    write = asyncio.create_task(nexus.write(0, pattern(512, seed=6)))
    await spin()
    assert not write.done()
    store.gate.set()
    await write
    store.note("write returned")
    puts = [(i, e[1]) for i, e in enumerate(store.events) if isinstance(e[1], NexusInfo)]
    recorded, info = puts[-1]
    assert info.child(child_uuid) == ChildInfo(child_uuid, healthy=False)
    assert recorded < store.events.index(("note", "write returned"))


async def test_a_write_is_refused_when_the_retirement_cannot_be_recorded(
    make_nexus: MakeNexus, shelf: Shelf, store: RecordingStore
) -> None:
    nexus = await make_nexus(2)
    shelf.handle(C1).fail("write", WriteFault("medium failed"))
    store.fail_with = Unavailable("store down")
    with pytest.raises(InternalDeviceError, match="cannot record"):
        await nexus.write(0, pattern(512, seed=7))
    with pytest.raises(InternalDeviceError, match="cannot record"):
        await nexus.write(1, pattern(512, seed=8))
    store.fail_with = None
    await nexus.write(1, pattern(512, seed=8))
    assert store.healthy(nexus.uuid)[nexus.child(C1).uuid] is False


async def test_concurrent_failures_share_one_store_write(
    make_nexus: MakeNexus, shelf: Shelf, store: RecordingStore
) -> None:
    nexus = await make_nexus(3)
    first = shelf.handle(C1).hang("write", lba=0, nblocks=1, error=WriteFault("c1 failed"))
    second = shelf.handle(C2).hang("write", lba=8, nblocks=1, error=WriteFault("c2 failed"))
    puts = store.puts
    writes = asyncio.gather(nexus.write(0, bytes(512)), nexus.write(8, bytes(512)))
    await first.reached.wait()
    await second.reached.wait()
    first.release()
    second.release()
    await writes
    assert store.puts - puts == 1
    assert [c.state for c in nexus.children] == [
        ChildState.ONLINE,
        ChildState.FAULTED,
        ChildState.FAULTED,
    ]


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (NoSpace("pool full"), FaultReason.NO_SPACE),
        (IoTimeout("no answer"), FaultReason.TIMED_OUT),
        (PathLost("connection gone"), FaultReason.TIMED_OUT),
        (PathError("path failed"), FaultReason.TIMED_OUT),
        (WriteFault("medium"), FaultReason.IO_ERROR),
        (InternalDeviceError("driver"), FaultReason.IO_ERROR),
    ],
)
async def test_a_retired_child_carries_the_reason_of_its_error(
    make_nexus: MakeNexus, shelf: Shelf, error: DeviceError, reason: FaultReason
) -> None:
    nexus = await make_nexus(2)
    shelf.handle(C0).fail("write", error)
    await nexus.write(0, bytes(512))
    assert nexus.child(C0).reason is reason


async def test_the_last_healthy_child_is_never_marked_unhealthy(
    make_nexus: MakeNexus, shelf: Shelf, store: RecordingStore
) -> None:
    nexus = await make_nexus(2)
    shelf.handle(C0).fail("write", WriteFault("first"))
    await nexus.write(0, bytes(512))
    shelf.handle(C1).fail("write", WriteFault("second"))
    with pytest.raises(WriteFault, match="second"):
        await nexus.write(0, bytes(512))
    last = nexus.child(C1)
    assert last.state is ChildState.ONLINE
    assert store.healthy(nexus.uuid)[last.uuid] is True
    assert nexus.state is NexusState.DEGRADED
    await nexus.write(0, bytes(512))


async def test_a_write_that_no_online_child_took_fails_even_if_a_rebuilding_one_did(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    nexus = await make_nexus(1)
    await nexus.add_child(C1, norebuild=True)
    await nexus.start_rebuild(C1)
    nexus.pause_rebuild(C1)
    shelf.handle(C0).fail("write", WriteFault("only in-sync child"))
    with pytest.raises(WriteFault):
        await nexus.write(0, bytes(512))
    assert nexus.child(C0).state is ChildState.ONLINE


async def test_losing_the_last_healthy_child_faults_the_nexus_and_keeps_it_recorded_healthy(
    make_nexus: MakeNexus, shelf: Shelf, store: RecordingStore
) -> None:
    nexus = await make_nexus(1)
    shelf.handle(C0).fail("write", PathGone("gave up reconnecting"))
    with pytest.raises(PathGone):
        await nexus.write(0, bytes(512))
    assert nexus.state is NexusState.FAULTED
    with pytest.raises(DeviceNotReady, match="faulted"):
        await nexus.read(0, 1)
    assert store.healthy(nexus.uuid)[nexus.child(C0).uuid] is True


async def test_a_lost_path_to_the_last_healthy_child_fails_the_io_and_the_nexus_goes_on(
    make_nexus: MakeNexus, shelf: Shelf, store: RecordingStore
) -> None:
    nexus = await make_nexus(2)
    shelf.handle(C1).fail("write", WriteFault("first"))
    await nexus.write(0, bytes(512))
    shelf.handle(C0).fail("write", PathLost("connection lost; reconnecting"))
    with pytest.raises(PathLost):
        await nexus.write(0, pattern(512, seed=12))
    assert nexus.state is NexusState.DEGRADED
    assert nexus.child(C0).state is ChildState.ONLINE
    assert store.healthy(nexus.uuid)[nexus.child(C0).uuid] is True
    await nexus.write(0, pattern(512, seed=13))  # the path is back
    assert bytes(await nexus.read(0, 1)) == pattern(512, seed=13)


async def test_flush_unmap_and_write_zeroes_reach_every_child(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    nexus = await make_nexus(3)
    await nexus.write(0, pattern(64 * 512, seed=9))
    await nexus.flush()
    await nexus.unmap(0, 16)
    await nexus.write_zeroes(16, 16)
    for uri in (C0, C1, C2):
        handle = shelf.handle(uri)
        assert [handle.count(op) for op in ("flush", "unmap", "write_zeroes")] == [1, 1, 1]
    for name in ("c0", "c1", "c2"):
        data = bytes(await shelf.disks[name].read(0, 64))
        assert data[: 32 * 512] == bytes(32 * 512)
        assert data[32 * 512 :] == pattern(64 * 512, seed=9)[32 * 512 :]


async def test_a_failed_flush_retires_the_child(make_nexus: MakeNexus, shelf: Shelf) -> None:
    nexus = await make_nexus(2)
    shelf.handle(C1).fail("flush", InternalDeviceError("fsync failed"))
    await nexus.flush()
    assert nexus.child(C1).state is ChildState.FAULTED
    assert not nexus.child(C1).partial_rebuild


async def test_children_get_the_callers_buffer_as_one_memoryview_not_copies(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    nexus = await make_nexus(3)
    data = bytearray(pattern(4 * 512, seed=10))
    await nexus.write(0, data)
    received = [shelf.handle(uri).buffers[-1] for uri in (C0, C1, C2)]
    assert all(isinstance(b, memoryview) and b.obj is data for b in received)
    assert received[0] is received[1] is received[2]


async def test_a_retired_child_is_closed(make_nexus: MakeNexus, shelf: Shelf) -> None:
    nexus = await make_nexus(2)
    shelf.handle(C1).fail("write", WriteFault("medium"))
    await nexus.write(0, bytes(512))
    await spin()
    assert shelf.handle(C1).closed
    assert not shelf.handle(C0).closed


async def test_io_in_flight_when_the_last_child_is_lost_is_refused_not_lost(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    nexus = await make_nexus(1)
    held = shelf.handle(C0).hang("read")
    read = asyncio.create_task(nexus.read(0, 1))
    await held.reached.wait()
    shelf.handle(C0).fail("write", DeviceNotReady("closed under us"))
    with pytest.raises(DeviceNotReady):
        await nexus.write(0, bytes(512))
    assert nexus.state is NexusState.FAULTED
    with pytest.raises(DeviceNotReady):
        await nexus.write(0, bytes(512))
    held.release()
    assert bytes(await read) == bytes(512)


@pytest.mark.parametrize("io_api", ["awaited"])  # a submitted I/O is never cancelled
async def test_a_cancelled_write_still_lands_on_every_child_so_mirrors_never_differ(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    nexus = await make_nexus(2)
    held = shelf.handle(C1).hang("write")
    data = pattern(4 * 512, seed=11)
    write = asyncio.create_task(nexus.write(32, data))
    await held.reached.wait()
    write.cancel()
    await spin()
    assert not write.done()
    held.release()
    with pytest.raises(asyncio.CancelledError):
        await write
    assert bytes(await shelf.disks["c0"].read(32, 4)) == data
    assert bytes(await shelf.disks["c1"].read(32, 4)) == data
    assert [c.state for c in nexus.children] == [ChildState.ONLINE] * 2


@pytest.mark.parametrize("io_api", ["awaited"])  # the nexus's own submit API, called here
async def test_a_submitted_write_to_in_process_children_is_acknowledged_before_submit_returns(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    nexus = await make_nexus(3)
    ended: list[object] = []
    data = pattern(2 * 512, seed=21)
    nexus.submit_write(6, data, lambda ctx, _data, error: ended.append((ctx, error)), "w")
    assert ended == [("w", None)]
    read: list[object] = []
    nexus.submit_read(6, 2, lambda _ctx, got, error: read.append((bytes(got or b""), error)), None)
    assert read == [(data, None)]
    for name in ("c0", "c1", "c2"):
        assert bytes(await shelf.disks[name].read(6, 2)) == data


@pytest.mark.parametrize("io_api", ["awaited"])  # the nexus's own submit API, called here
async def test_a_submitted_write_outside_the_nexus_or_of_part_of_a_block_ends_with_its_error(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    nexus = await make_nexus(2)
    ended: list[tuple[object, DeviceError | None]] = []

    def done(ctx: object, _data: object, error: DeviceError | None) -> None:
        ended.append((ctx, error))

    nexus.submit_write(nexus.num_blocks - 1, pattern(2 * 512, seed=3), done, "past the end")
    nexus.submit_write(0, pattern(700, seed=4), done, "part of a block")
    nexus.submit_write(-1, pattern(512, seed=5), done, "negative")
    await spin()
    assert [(ctx, type(error).__name__) for ctx, error in ended] == [
        ("past the end", "LbaOutOfRange"),
        ("part of a block", "InvalidField"),
        ("negative", "LbaOutOfRange"),
    ]
    assert nexus.stats.num_write_ops == 0
    for name in ("c0", "c1"):
        assert bytes(await shelf.disks[name].read(0, 1)) == bytes(512)


@pytest.mark.parametrize("io_api", ["awaited"])  # the nexus's own submit API, called here
async def test_a_submitted_write_is_counted_once_in_the_nexus_stats(
    make_nexus: MakeNexus,
) -> None:
    nexus = await make_nexus(3)
    ended: list[object] = []
    nexus.submit_write(8, pattern(4 * 512, seed=6), lambda *_: ended.append(1), None)
    await spin()
    assert ended == [1]
    assert (nexus.stats.num_write_ops, nexus.stats.bytes_written) == (1, 4 * 512)
