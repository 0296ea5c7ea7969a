"""Creating a nexus: refusals, and which children are trusted from the stored info."""

from __future__ import annotations

import uuid as uuid_mod
from typing import Any

import pytest

from mayastor.errors import FailedPrecondition, InvalidArgument, NotFound
from mayastor.nexus import ChildInfo, ChildState, FaultReason, Nexus, NexusInfo, NexusState
from tests.conformance.block_device import pattern
from tests.unit.nexus.conftest import MakeNexus
from tests.unit.nexus.faulty import RecordingStore, Shelf

C0, C1, C2 = (f"malloc:///c{i}?size_mb=2" for i in range(3))


async def test_a_child_smaller_than_the_nexus_is_refused_and_nothing_stays_open(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    small = "malloc:///small?size_mb=1"
    with pytest.raises(InvalidArgument) as info:
        await make_nexus([C0, small])
    message = str(info.value)
    assert small in message
    assert "1048576" in message
    assert "2097152" in message
    assert not shelf.open_handles()


async def test_children_with_different_block_sizes_are_refused(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    with pytest.raises(InvalidArgument, match="block sizes differ"):
        await make_nexus([C0, "malloc:///big?size_mb=2&blk_size=4096"])
    assert not shelf.open_handles()


async def test_a_child_that_cannot_be_opened_fails_the_create_and_closes_the_others(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    with pytest.raises(NotFound):
        await make_nexus([C0, "bdev:///nowhere", C2])
    assert len(shelf.opened) == 3
    assert not shelf.open_handles()


async def test_a_size_that_is_not_a_whole_number_of_blocks_is_refused(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    with pytest.raises(InvalidArgument, match="whole number"):
        await make_nexus(2, size=(1 << 20) + 100)
    assert not shelf.open_handles()


@pytest.mark.parametrize("children", [[], [C0, C0]])
async def test_no_children_or_a_child_named_twice_is_refused(
    make_nexus: MakeNexus, shelf: Shelf, children: list[str]
) -> None:
    with pytest.raises(InvalidArgument):
        await make_nexus(children)
    assert not shelf.opened


async def test_two_children_with_one_uuid_are_refused(make_nexus: MakeNexus, shelf: Shelf) -> None:
    same = uuid_mod.uuid4()
    with pytest.raises(InvalidArgument, match="same uuid"):
        await make_nexus([f"{C0}&uuid={same}", f"{C1}&uuid={same}"])
    assert not shelf.open_handles()


async def test_create_records_every_child_healthy_and_the_shutdown_unclean(
    make_nexus: MakeNexus, store: RecordingStore
) -> None:
    nexus = await make_nexus(3)
    info = store.last(nexus.uuid)
    assert info.clean_shutdown is False
    assert [c.uuid for c in info.children] == [c.uuid for c in nexus.children]
    assert all(c.healthy for c in info.children)
    assert nexus.state is NexusState.ONLINE


async def test_a_child_uuid_comes_from_its_uri_when_given(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    given = uuid_mod.uuid4()
    shelf.add("r0")
    nexus = await make_nexus([f"bdev:///r0?uuid={given}", C1], size=1 << 20)
    assert nexus.children[0].uuid == given


async def _recreate(
    shelf: Shelf,
    store: RecordingStore,
    nexus_uuid: uuid_mod.UUID,
    uris: list[str],
    **options: Any,
) -> Nexus:
    return await Nexus.create(
        "again",
        nexus_uuid,
        2 << 20,
        uris,
        opener=shelf,
        store=store,
        **options,
    )


async def test_a_child_stored_unhealthy_joins_out_of_sync_and_is_rebuilt(
    shelf: Shelf, store: RecordingStore
) -> None:
    nexus_uuid = uuid_mod.uuid4()
    first = await _recreate(shelf, store, nexus_uuid, [C0, C1])
    await first.write(0, pattern(64 * 512, seed=1))
    await first.fault_child(C1)
    await first.write(0, pattern(64 * 512, seed=2))
    await first.close()

    again = await _recreate(shelf, store, nexus_uuid, [C0, C1], auto_rebuild=False)
    status = again.child(C1)
    assert (status.state, status.reason) == (ChildState.FAULTED, FaultReason.OUT_OF_SYNC)
    assert again.state is NexusState.DEGRADED
    await again.start_rebuild(C1)
    record = await again.wait_rebuild(C1)
    assert record.is_partial is False
    assert again.child(C1).state is ChildState.ONLINE
    assert bytes(await shelf.disks["c1"].read(0, 64)) == pattern(64 * 512, seed=2)
    await again.destroy()


async def test_unhealthy_children_are_rebuilt_on_create_by_default(
    shelf: Shelf, store: RecordingStore
) -> None:
    nexus_uuid = uuid_mod.uuid4()
    c0, c1 = uuid_mod.uuid4(), uuid_mod.uuid4()
    uris = [f"{C0}&uuid={c0}", f"{C1}&uuid={c1}"]
    await store.put(nexus_uuid, NexusInfo(True, (ChildInfo(c0, True), ChildInfo(c1, False))))
    shelf.add("c0")
    await shelf.disks["c0"].write(5, pattern(512, seed=3))
    nexus = await _recreate(shelf, store, nexus_uuid, uris)
    assert nexus.child(uris[1]).state is ChildState.DEGRADED
    await nexus.wait_rebuild(uris[1])
    assert nexus.child(uris[1]).state is ChildState.ONLINE
    assert bytes(await shelf.disks["c1"].read(5, 1)) == pattern(512, seed=3)
    assert store.last(nexus_uuid).child(c1) == ChildInfo(c1, True)
    await nexus.destroy()


async def test_after_an_unclean_shutdown_one_local_child_is_trusted_and_the_rest_rebuilt(
    shelf: Shelf, store: RecordingStore
) -> None:
    nexus_uuid = uuid_mod.uuid4()
    for name in ("r0", "r1", "r2"):
        shelf.add(name)
    uris = ["nvmf://127.0.0.1:8420/r0", "bdev:///r1", "nvmf://127.0.0.1:8420/r2"]
    first = await _recreate(shelf, store, nexus_uuid, uris)
    assert store.last(nexus_uuid).clean_shutdown is False
    # A crash: the children were left differing where writes were in flight.
    await shelf.disks["r1"].write(9, pattern(512, seed=4))
    await shelf.disks["r0"].write(9, pattern(512, seed=5))
    again = await _recreate(shelf, store, nexus_uuid, uris, auto_rebuild=False)
    states = [(c.uri, c.state, c.reason) for c in again.children]
    assert states == [
        (uris[0], ChildState.FAULTED, FaultReason.OUT_OF_SYNC),
        (uris[1], ChildState.ONLINE, None),
        (uris[2], ChildState.FAULTED, FaultReason.OUT_OF_SYNC),
    ]
    assert bytes(await again.read(9, 1)) == pattern(512, seed=4)
    await again.destroy()
    await first.close()


async def test_after_a_clean_shutdown_every_healthy_child_is_trusted(
    shelf: Shelf, store: RecordingStore
) -> None:
    nexus_uuid = uuid_mod.uuid4()
    first = await _recreate(shelf, store, nexus_uuid, [C0, C1, C2])
    await first.shutdown()
    assert store.last(nexus_uuid).clean_shutdown is True
    await first.close()
    again = await _recreate(shelf, store, nexus_uuid, [C0, C1, C2])
    assert [c.state for c in again.children] == [ChildState.ONLINE] * 3
    await again.destroy()


async def test_stored_info_that_names_no_child_healthy_refuses_the_create(
    shelf: Shelf, store: RecordingStore
) -> None:
    nexus_uuid = uuid_mod.uuid4()
    await store.put(nexus_uuid, NexusInfo(True, (ChildInfo(uuid_mod.uuid4(), True),)))
    with pytest.raises(FailedPrecondition, match="healthy"):
        await _recreate(shelf, store, nexus_uuid, [C0, C1])
    assert not shelf.open_handles()
