"""Growing a nexus once its children hold the new size."""

from __future__ import annotations

import pytest

from mayastor.errors import FailedPrecondition, InvalidArgument
from mayastor.nexus import ChildState
from tests.conformance.block_device import pattern
from tests.unit.nexus.conftest import IO_APIS, MakeNexus
from tests.unit.nexus.faulty import Shelf

BIG0, BIG1 = (f"malloc:///big{i}?size_mb=4" for i in range(2))
MIB = 1 << 20


@pytest.fixture(params=IO_APIS)
def io_api(request: pytest.FixtureRequest) -> str:
    """Every test here runs with awaited and with submitted I/O."""
    return str(request.param)


async def test_a_nexus_grows_into_children_that_hold_the_new_size(make_nexus: MakeNexus) -> None:
    nexus = await make_nexus([BIG0, BIG1], size=2 * MIB)
    await nexus.resize(4 * MIB)
    assert nexus.size == 4 * MIB
    last = nexus.num_blocks - 1
    await nexus.write(last, pattern(512, seed=7))
    assert bytes(await nexus.read(last, 1)) == pattern(512, seed=7)


async def test_growing_past_a_child_is_refused_and_changes_nothing(make_nexus: MakeNexus) -> None:
    nexus = await make_nexus([BIG0, "malloc:///small?size_mb=2"], size=2 * MIB)
    with pytest.raises(InvalidArgument, match="resize it first"):
        await nexus.resize(4 * MIB)
    assert nexus.size == 2 * MIB
    assert not nexus.paused


async def test_shrinking_and_partial_blocks_are_refused(make_nexus: MakeNexus) -> None:
    nexus = await make_nexus([BIG0, BIG1], size=2 * MIB)
    with pytest.raises(InvalidArgument, match="cannot shrink"):
        await nexus.resize(MIB)
    with pytest.raises(InvalidArgument, match="whole number"):
        await nexus.resize(3 * MIB + 100)
    assert nexus.size == 2 * MIB


async def test_a_child_away_during_the_resize_is_rebuilt_over_the_new_range(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    nexus = await make_nexus([BIG0, BIG1], size=2 * MIB)
    await nexus.offline_child(BIG1)
    await nexus.resize(4 * MIB)
    last = nexus.num_blocks - 1
    await nexus.write(last, pattern(512, seed=3))
    await nexus.online_child(BIG1)
    record = await nexus.wait_rebuild(BIG1)
    assert record.is_partial
    assert nexus.child(BIG1).state is ChildState.ONLINE
    assert bytes(await shelf.disks["big1"].read(last, 1)) == pattern(512, seed=3)


async def test_resize_is_refused_while_a_rebuild_runs(make_nexus: MakeNexus, shelf: Shelf) -> None:
    nexus = await make_nexus([BIG0], size=2 * MIB)
    shelf.add("slow", num_blocks=8192)
    await nexus.add_child("bdev:///slow", norebuild=True)
    await nexus.start_rebuild("bdev:///slow")
    nexus.pause_rebuild("bdev:///slow")
    with pytest.raises(FailedPrecondition, match="rebuild is running"):
        await nexus.resize(4 * MIB)
    nexus.resume_rebuild("bdev:///slow")
    await nexus.wait_rebuild("bdev:///slow")
    await nexus.resize(4 * MIB)
    assert nexus.size == 4 * MIB
