"""Our initiator and the loop's bounded poll (`mayastor.nvmf.poll`): a command in
flight keeps the loop polling until its answer comes or the budget is spent; with
nothing in flight, or a budget of 0, the loop is left to sleep."""

from __future__ import annotations

import asyncio

from mayastor.bdev import Buffer, NvmfDevice
from mayastor.errors import DeviceError
from tests.integration.nvmf_host.conftest import Served, options
from tests.integration.nvmf_host.proxy import FaultProxy
from tests.support.poll_budget import SetBudget, budget_fixture  # noqa: F401 (fixture)


async def read_once(dev: NvmfDevice) -> asyncio.Future[DeviceError | None]:
    """Submit one read; the future holds its error (None: it succeeded)."""
    ended: asyncio.Future[DeviceError | None] = asyncio.get_running_loop().create_future()

    def done(_: object, data: Buffer | None, error: DeviceError | None) -> None:
        ended.set_result(error)

    dev.submit_read(0, 8, done, None)
    return ended


async def test_a_command_in_flight_polls_until_the_budget_is_spent_and_a_late_answer_misses(
    served: Served, proxy: FaultProxy, budget: SetBudget
) -> None:
    dev = await NvmfDevice.open(served.uri(proxy.port), options=options(io_queues=1))
    try:
        p = budget(2000)
        misses = p.misses
        proxy.freeze()
        ended = await read_once(dev)
        assert p.spinning
        await asyncio.sleep(0.05)
        assert not p.spinning
        proxy.thaw()
        assert await ended is None
        assert p.misses > misses
    finally:
        await dev.close()


async def test_the_answer_ends_the_spin_as_a_hit(served: Served, budget: SetBudget) -> None:
    dev = await NvmfDevice.open(served.uri(), options=options(io_queues=1))
    try:
        p = budget(1_000_000)
        (queue,) = dev.controller.io_queues
        hits = p.hits
        ended = await read_once(dev)
        assert queue.polling
        assert p.spinning
        assert await ended is None
        assert not queue.polling
        assert p.hits > hits
    finally:
        await dev.close()


async def test_with_nothing_in_flight_the_loop_does_not_poll(
    served: Served, budget: SetBudget
) -> None:
    p = budget(2000)
    dev = await NvmfDevice.open(served.uri(), options=options(io_queues=1))
    try:
        for _ in range(3):
            assert await (await read_once(dev)) is None
        await asyncio.sleep(0.02)
        turns = p.turns
        await asyncio.sleep(0.05)
        assert p.turns == turns
        assert not p.spinning
    finally:
        await dev.close()


async def test_a_budget_of_zero_never_polls(served: Served, budget: SetBudget) -> None:
    p = budget(0)
    before = (p.turns, p.hits, p.misses)
    dev = await NvmfDevice.open(served.uri(), options=options(io_queues=1))
    try:
        for _ in range(3):
            assert await (await read_once(dev)) is None
        assert (p.turns, p.hits, p.misses) == before
    finally:
        await dev.close()
