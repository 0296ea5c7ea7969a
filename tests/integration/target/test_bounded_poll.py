"""The target and the loop's bounded poll (`mayastor.nvmf.poll`): having answered, a
connection keeps the loop polling for the host's next command until it comes or the
budget is spent; an idle target leaves the loop to sleep. The host here is the tests'
raw client, which does not use the poll."""

from __future__ import annotations

import asyncio

from tests.integration.target.conftest import Served
from tests.integration.target.nvme_client import HostController
from tests.support.poll_budget import SetBudget, budget_fixture  # noqa: F401 (fixture)


async def test_an_answer_polls_for_the_next_command_which_ends_the_spin(
    served: Served, budget: SetBudget
) -> None:
    ctrl = await HostController.connect("127.0.0.1", served.port, served.nqn)
    try:
        p = budget(1_000_000)
        assert (await ctrl.io[0].read(0, 8, 512)).ok
        assert p.spinning
        hits = p.hits
        assert (await ctrl.io[0].read(8, 8, 512)).ok
        assert p.hits == hits + 1
    finally:
        await ctrl.close()


async def test_when_no_command_follows_the_target_stops_polling_and_counts_a_miss(
    served: Served, budget: SetBudget
) -> None:
    ctrl = await HostController.connect("127.0.0.1", served.port, served.nqn)
    try:
        p = budget(2000)
        misses = p.misses
        assert (await ctrl.io[0].read(0, 8, 512)).ok
        assert p.spinning
        await asyncio.sleep(0.05)
        assert not p.spinning
        turns = p.turns
        await asyncio.sleep(0.05)
        assert p.turns == turns
        assert (await ctrl.io[0].read(8, 8, 512)).ok
        assert p.misses > misses
    finally:
        await ctrl.close()


async def test_a_budget_of_zero_leaves_the_target_sleeping(
    served: Served, budget: SetBudget
) -> None:
    p = budget(0)
    before = (p.turns, p.hits, p.misses)
    ctrl = await HostController.connect("127.0.0.1", served.port, served.nqn)
    try:
        for lba in range(0, 24, 8):
            assert (await ctrl.io[0].read(lba, 8, 512)).ok
        assert (p.turns, p.hits, p.misses) == before
    finally:
        await ctrl.close()
