"""Reconfiguration: pause and resume, adding, removing, faulting, offlining, shutting down."""

from __future__ import annotations

import asyncio
import uuid as uuid_mod

import pytest

from mayastor.errors import (
    AlreadyExists,
    DeviceNotReady,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    WriteFault,
)
from mayastor.nexus import (
    ChildState,
    FaultReason,
    MemoryNexusInfoStore,
    Nexus,
    NexusState,
    RebuildState,
)
from tests.conformance.block_device import pattern
from tests.unit.nexus.conftest import IO_APIS, MakeNexus
from tests.unit.nexus.faulty import RecordingStore, Shelf

C0, C1, C2 = (f"malloc:///c{i}?size_mb=2" for i in range(3))


@pytest.fixture(params=IO_APIS)
def io_api(request: pytest.FixtureRequest) -> str:
    """Every test here runs with awaited and with submitted I/O."""
    return str(request.param)


async def spin(times: int = 20) -> None:
    for _ in range(times):
        await asyncio.sleep(0)


async def test_pause_waits_for_the_io_in_flight_and_holds_new_io_until_resume(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    nexus = await make_nexus(2)
    held = shelf.handle(C0).hang("write")
    in_flight = asyncio.create_task(nexus.write(0, bytes(512)))
    await held.reached.wait()
    pausing = asyncio.create_task(nexus.pause())
    await spin()
    assert not pausing.done()
    held.release()
    await in_flight
    await pausing
    later = asyncio.create_task(nexus.write(1, bytes(512)))
    await spin()
    assert not later.done()
    nexus.resume()
    await later


async def test_pauses_nest(make_nexus: MakeNexus) -> None:
    nexus = await make_nexus(1)
    await nexus.pause()
    await nexus.pause()
    read = asyncio.create_task(nexus.read(0, 1))
    nexus.resume()
    await spin()
    assert not read.done()
    nexus.resume()
    await read
    assert not nexus.paused


async def test_resume_without_pause_is_refused(make_nexus: MakeNexus) -> None:
    nexus = await make_nexus(1)
    with pytest.raises(FailedPrecondition, match="not paused"):
        nexus.resume()


async def test_an_added_child_is_rebuilt_and_recorded_healthy(
    make_nexus: MakeNexus, shelf: Shelf, store: RecordingStore
) -> None:
    nexus = await make_nexus(2)
    await nexus.write(0, pattern(nexus.size, seed=1))
    status = await nexus.add_child(C2)
    assert status.state is ChildState.DEGRADED
    assert store.healthy(nexus.uuid)[status.uuid] is False
    assert nexus.state is NexusState.DEGRADED
    await nexus.wait_rebuild(C2)
    assert nexus.child(C2).state is ChildState.ONLINE
    assert store.healthy(nexus.uuid)[status.uuid] is True
    assert nexus.state.value == "online"
    assert bytes(await shelf.disks["c2"].read(0, 4096)) == pattern(nexus.size, seed=1)


async def test_adding_a_child_twice_is_refused(make_nexus: MakeNexus) -> None:
    nexus = await make_nexus(2)
    with pytest.raises(AlreadyExists):
        await nexus.add_child(C1)


async def test_adding_a_smaller_child_is_refused_and_closes_it(
    make_nexus: MakeNexus, shelf: Shelf, store: RecordingStore
) -> None:
    nexus = await make_nexus(2)
    small = "malloc:///small?size_mb=1"
    with pytest.raises(InvalidArgument, match="smaller"):
        await nexus.add_child(small)
    assert shelf.handle(small).closed
    assert len(nexus.children) == 2
    assert len(store.last(nexus.uuid).children) == 2


async def test_adding_a_child_with_another_childs_uuid_is_refused(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    same = uuid_mod.uuid4()
    nexus = await make_nexus([f"{C0}&uuid={same}"])
    with pytest.raises(InvalidArgument, match="same uuid"):
        await nexus.add_child(f"{C1}&uuid={same}")


async def test_a_removed_child_leaves_the_nexus_and_its_info_and_is_closed(
    make_nexus: MakeNexus, shelf: Shelf, store: RecordingStore
) -> None:
    nexus = await make_nexus(3)
    gone = nexus.child(C1).uuid
    await nexus.remove_child(C1)
    assert [c.uri for c in nexus.children] == [C0, C2]
    assert store.last(nexus.uuid).child(gone) is None
    assert shelf.handle(C1).closed
    await nexus.write(0, bytes(512))
    assert shelf.handle(C1).count("write") == 0


async def test_removing_the_last_healthy_child_is_refused(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    nexus = await make_nexus(2)
    shelf.handle(C1).fail("write", WriteFault("medium"))
    await nexus.write(0, bytes(512))
    with pytest.raises(FailedPrecondition, match="last healthy"):
        await nexus.remove_child(C0)
    await nexus.remove_child(C1)
    with pytest.raises(FailedPrecondition, match="last healthy"):
        await nexus.remove_child(C0)
    assert [c.uri for c in nexus.children] == [C0]


async def test_removing_a_rebuild_source_stops_that_rebuild(make_nexus: MakeNexus) -> None:
    nexus = await make_nexus(2)
    await nexus.add_child(C2, norebuild=True)
    await nexus.start_rebuild(C2)
    nexus.pause_rebuild(C2)
    await nexus.remove_child(C0)
    status = nexus.child(C2)
    assert (status.state, status.reason) == (ChildState.FAULTED, FaultReason.OUT_OF_SYNC)
    assert nexus.rebuild_history()[-1].state is RebuildState.STOPPED


async def test_a_child_faulted_by_the_client_is_recorded_and_closed(
    make_nexus: MakeNexus, shelf: Shelf, store: RecordingStore
) -> None:
    nexus = await make_nexus(2)
    await nexus.fault_child(C1)
    status = nexus.child(C1)
    assert (status.state, status.reason) == (ChildState.FAULTED, FaultReason.BY_CLIENT)
    assert not status.partial_rebuild
    assert store.healthy(nexus.uuid)[status.uuid] is False
    assert shelf.handle(C1).closed
    with pytest.raises(FailedPrecondition, match="last healthy"):
        await nexus.fault_child(C0)


async def test_an_offline_child_is_closed_and_comes_back_online(
    make_nexus: MakeNexus, shelf: Shelf, store: RecordingStore
) -> None:
    nexus = await make_nexus(2)
    await nexus.offline_child(C1)
    status = nexus.child(C1)
    assert (status.state, status.reason) == (ChildState.FAULTED, FaultReason.OFFLINE)
    assert store.healthy(nexus.uuid)[status.uuid] is False
    assert shelf.handle(C1).closed
    await nexus.write(0, pattern(512, seed=1))
    await nexus.online_child(C1)
    await nexus.wait_rebuild(C1)
    assert nexus.child(C1).state is ChildState.ONLINE
    assert bytes(await shelf.disks["c1"].read(0, 1)) == pattern(512, seed=1)


async def test_taking_the_last_healthy_child_offline_is_refused(make_nexus: MakeNexus) -> None:
    nexus = await make_nexus(2)
    await nexus.fault_child(C1)
    with pytest.raises(FailedPrecondition, match="last healthy"):
        await nexus.offline_child(C0)
    assert nexus.child(C0).state is ChildState.ONLINE


async def test_bringing_an_online_child_online_changes_nothing(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    nexus = await make_nexus(2)
    status = await nexus.online_child(C1)
    assert status.state is ChildState.ONLINE
    assert len(shelf.handles[C1]) == 1


async def test_a_child_that_cannot_be_reopened_is_faulted_cant_open(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    nexus = await make_nexus(2)
    await nexus.offline_child(C1)
    shelf.refuse[C1] = NotFound("disk gone")
    with pytest.raises(NotFound):
        await nexus.online_child(C1)
    status = nexus.child(C1)
    assert (status.state, status.reason) == (ChildState.FAULTED, FaultReason.CANT_OPEN)


async def test_child_operations_on_an_unknown_child_are_refused(make_nexus: MakeNexus) -> None:
    nexus = await make_nexus(2)
    for operation in (nexus.remove_child, nexus.fault_child, nexus.offline_child):
        with pytest.raises(NotFound, match="no child"):
            await operation("malloc:///nope")


async def test_shutdown_refuses_io_records_a_clean_shutdown_and_keeps_the_children(
    make_nexus: MakeNexus, shelf: Shelf, store: RecordingStore
) -> None:
    nexus = await make_nexus(2)
    await nexus.write(0, bytes(512))
    await nexus.shutdown()
    await nexus.shutdown()
    assert nexus.state is NexusState.SHUTDOWN
    with pytest.raises(DeviceNotReady):
        await nexus.write(0, bytes(512))
    assert store.last(nexus.uuid).clean_shutdown is True
    assert not shelf.handle(C0).closed
    assert [c.state for c in nexus.children] == [ChildState.ONLINE] * 2


async def test_io_held_by_a_pause_is_refused_when_the_nexus_shuts_down(
    make_nexus: MakeNexus,
) -> None:
    nexus = await make_nexus(1)
    await nexus.pause()
    held = asyncio.create_task(nexus.read(0, 1))
    await spin()
    await nexus.shutdown()
    with pytest.raises(DeviceNotReady):
        await held
    nexus.resume()


async def test_destroy_closes_the_children_and_deletes_the_info(
    make_nexus: MakeNexus, shelf: Shelf, store: RecordingStore
) -> None:
    nexus = await make_nexus(3)
    await nexus.destroy()
    assert await store.get(nexus.uuid) is None
    assert not shelf.open_handles()
    assert nexus.closed


async def test_two_nexuses_live_side_by_side_in_one_process() -> None:
    shelves = [Shelf(), Shelf()]
    nexuses = [
        await Nexus.create(
            "same-name",
            uuid_mod.uuid4(),
            1 << 20,
            [C0, C1],
            opener=shelf,
            store=MemoryNexusInfoStore(),
        )
        for shelf in shelves
    ]
    await nexuses[0].write(0, pattern(512, seed=1))
    await nexuses[1].fault_child(C1)
    assert bytes(await nexuses[1].read(0, 1)) == bytes(512)
    assert nexuses[0].state is NexusState.ONLINE
    assert nexuses[1].state is NexusState.DEGRADED
    for nexus, shelf in zip(nexuses, shelves, strict=True):
        await nexus.destroy()
        await shelf.close()


async def test_a_child_taken_offline_while_rebuilding_needs_a_full_rebuild(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    nexus = await make_nexus(2)
    await nexus.add_child(C2, norebuild=True)
    await nexus.start_rebuild(C2)
    nexus.pause_rebuild(C2)
    await nexus.offline_child(C2)
    status = nexus.child(C2)
    assert (status.state, status.reason) == (ChildState.FAULTED, FaultReason.OFFLINE)
    assert not status.partial_rebuild
    await nexus.online_child(C2)
    record = await nexus.wait_rebuild(C2)
    assert not record.is_partial
    assert nexus.child(C2).state is ChildState.ONLINE
