"""A fixture for tests of the bounded poll: set the process's budget for one test."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest

from mayastor.nvmf import poll
from mayastor.nvmf.poll import BoundedPoll

SetBudget = Callable[[float], BoundedPoll]
"""``set_budget(budget_us)``: configure the budget; the running loop's poll."""


@pytest.fixture(name="budget")
def budget_fixture() -> Iterator[SetBudget]:
    """Set the process's poll budget (microseconds) for one test; the default after."""

    def set_budget(budget_us: float) -> BoundedPoll:
        poll.configure(budget_us)
        return poll.for_loop(asyncio.get_running_loop())

    yield set_budget
    poll.configure(poll.DEFAULT_BUDGET_US)
