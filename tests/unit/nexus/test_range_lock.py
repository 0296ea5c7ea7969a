"""Range locks: shared front-end writes, exclusive rebuild copies, fair and cancellable."""

from __future__ import annotations

import asyncio

import pytest

from mayastor.nexus import RangeLock


async def spin(times: int = 5) -> None:
    for _ in range(times):
        await asyncio.sleep(0)


async def test_shared_holders_of_one_range_do_not_wait_for_each_other() -> None:
    lock = RangeLock()
    tokens = [await lock.acquire(0, 16, exclusive=False) for _ in range(3)]
    assert lock.held == 3
    for token in tokens:
        lock.release(token)
    assert lock.held == 0


async def test_an_exclusive_request_waits_for_the_shared_holders_it_overlaps() -> None:
    lock = RangeLock()
    shared = await lock.acquire(10, 4, exclusive=False)
    copy = asyncio.create_task(lock.acquire(8, 4, exclusive=True))
    await spin()
    assert not copy.done()
    lock.release(shared)
    lock.release(await copy)


async def test_a_shared_request_waits_for_an_exclusive_holder() -> None:
    lock = RangeLock()
    copy = await lock.acquire(0, 128, exclusive=True)
    write = asyncio.create_task(lock.acquire(127, 1, exclusive=False))
    await spin()
    assert not write.done()
    lock.release(copy)
    lock.release(await write)


async def test_ranges_that_do_not_overlap_never_wait() -> None:
    lock = RangeLock()
    copy = await lock.acquire(0, 128, exclusive=True)
    write = await lock.acquire(128, 8, exclusive=False)
    other_copy = await lock.acquire(136, 128, exclusive=True)
    for token in (copy, write, other_copy):
        lock.release(token)


async def test_a_waiting_exclusive_request_is_not_overtaken_by_later_shared_ones() -> None:
    lock = RangeLock()
    first = await lock.acquire(0, 8, exclusive=False)
    copy = asyncio.create_task(lock.acquire(0, 8, exclusive=True))
    await spin()
    later = asyncio.create_task(lock.acquire(4, 1, exclusive=False))
    await spin()
    assert not later.done()
    lock.release(first)
    copy_token = await copy
    await spin()
    assert not later.done()
    lock.release(copy_token)
    lock.release(await later)


async def test_a_cancelled_waiter_gives_up_its_place() -> None:
    lock = RangeLock()
    first = await lock.acquire(0, 8, exclusive=False)
    copy = asyncio.create_task(lock.acquire(0, 8, exclusive=True))
    await spin()
    later = asyncio.create_task(lock.acquire(0, 8, exclusive=False))
    await spin()
    copy.cancel()
    with pytest.raises(asyncio.CancelledError):
        await copy
    lock.release(await later)
    lock.release(first)
    assert (lock.held, lock.waiting) == (0, 0)


async def test_an_empty_range_never_waits() -> None:
    lock = RangeLock()
    copy = await lock.acquire(0, 8, exclusive=True)
    lock.release(await lock.acquire(4, 0, exclusive=True))
    lock.release(copy)
