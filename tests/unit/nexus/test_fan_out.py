"""The write fan-out: children that complete at once run inline, the others in tasks.

Whatever mix of children completes without waiting, waits, or fails in either way,
a write completes on every child in the write path and is acknowledged only then.
"""

from __future__ import annotations

import asyncio

import pytest

from mayastor.bdev import Buffer
from mayastor.errors import IoTimeout, WriteFault
from mayastor.nexus import ChildState, FaultReason
from tests.conformance.block_device import pattern
from tests.unit.nexus.conftest import IO_APIS, MakeNexus
from tests.unit.nexus.faulty import Shelf

C0, C1, C2 = (f"malloc:///c{i}?size_mb=2" for i in range(3))


@pytest.fixture(params=IO_APIS)
def io_api(request: pytest.FixtureRequest) -> str:
    """Every test here runs with awaited and with submitted I/O."""
    return str(request.param)


async def spin(times: int = 20) -> None:
    """Let every task that can run, run."""
    for _ in range(times):
        await asyncio.sleep(0)


async def test_a_write_waits_for_the_first_child_when_only_it_has_to_wait(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    nexus = await make_nexus(3)
    held = shelf.handle(C0).hang("write")
    data = pattern(4 * 512, seed=3)
    write = asyncio.create_task(nexus.write(8, data))
    await held.reached.wait()
    await spin()
    assert not write.done()
    held.release()
    await write
    for name in ("c0", "c1", "c2"):
        assert bytes(await shelf.disks[name].read(8, 4)) == data


async def test_children_that_yield_to_the_loop_several_times_all_get_the_write(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    nexus = await make_nexus(3)
    shelf.handle(C0).slow("write", 0.0)
    shelf.handle(C2).slow("write", 0.001)
    data = pattern(2 * 512, seed=5)
    await nexus.write(40, data)
    for name in ("c0", "c1", "c2"):
        assert bytes(await shelf.disks[name].read(40, 2)) == data


async def test_a_child_failing_at_once_is_retired_while_one_that_waits_takes_the_write(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    nexus = await make_nexus(2)
    shelf.handle(C0).fail("write", WriteFault("media"))
    held = shelf.handle(C1).hang("write")
    data = pattern(512, seed=7)
    write = asyncio.create_task(nexus.write(3, data))
    await held.reached.wait()
    await spin()
    assert not write.done()
    held.release()
    await write
    assert [(c.state, c.reason) for c in nexus.children] == [
        (ChildState.FAULTED, FaultReason.IO_ERROR),
        (ChildState.ONLINE, None),
    ]
    assert bytes(await shelf.disks["c1"].read(3, 1)) == data


async def test_a_child_failing_after_a_wait_is_retired_and_the_write_succeeds(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    nexus = await make_nexus(2)
    held = shelf.handle(C1).hang("write", error=WriteFault("media"))
    data = pattern(512, seed=9)
    write = asyncio.create_task(nexus.write(5, data))
    await held.reached.wait()
    held.release()
    await write
    assert [c.state for c in nexus.children] == [ChildState.ONLINE, ChildState.FAULTED]
    assert bytes(await shelf.disks["c0"].read(5, 1)) == data


@pytest.mark.parametrize("io_api", ["awaited"])  # a submitted I/O is never cancelled
async def test_a_cancelled_write_waits_for_the_child_held_first_and_lands_everywhere(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    nexus = await make_nexus(3)
    held = shelf.handle(C0).hang("write")
    data = pattern(4 * 512, seed=13)
    write = asyncio.create_task(nexus.write(64, data))
    await held.reached.wait()
    write.cancel()
    await spin()
    assert not write.done()
    held.release()
    with pytest.raises(asyncio.CancelledError):
        await write
    for name in ("c0", "c1", "c2"):
        assert bytes(await shelf.disks[name].read(64, 4)) == data
    assert [c.state for c in nexus.children] == [ChildState.ONLINE] * 3


async def test_a_write_that_every_child_fails_at_once_fails_with_a_child_error(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    nexus = await make_nexus(2)
    shelf.handle(C0).fail("write", WriteFault("c0 media"))
    shelf.handle(C1).fail("write", WriteFault("c1 media"))
    with pytest.raises(WriteFault):
        await nexus.write(0, bytes(512))
    states = [c.state for c in nexus.children]
    assert states.count(ChildState.ONLINE) == 1


async def test_a_timeout_inside_a_remote_childs_write_fails_that_write_not_the_callers(
    make_nexus: MakeNexus, shelf: Shelf
) -> None:
    shelf.add("r1")
    remote = "nvmf://127.0.0.1/r1"
    nexus = await make_nexus([C0, remote])
    handle = shelf.handle(remote)

    async def write_that_times_out(lba: int, data: Buffer) -> None:
        try:
            async with asyncio.timeout(0.01):
                await asyncio.sleep(30)
        except TimeoutError:
            raise IoTimeout("no answer", device="r1") from None

    handle._write = write_that_times_out  # type: ignore[method-assign]
    data = pattern(512, seed=17)
    await nexus.write(9, data)
    assert [(c.state, c.reason) for c in nexus.children] == [
        (ChildState.ONLINE, None),
        (ChildState.FAULTED, FaultReason.TIMED_OUT),
    ]
    assert bytes(await shelf.disks["c0"].read(9, 1)) == data
