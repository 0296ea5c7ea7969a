"""The bounded, adaptive busy-poll of an event loop (`mayastor.nvmf.poll`), on a real
loop with a clock the test moves: a spin starts only from `expect`, ends when the
bytes awaited arrive or its budget is spent, never runs at budget 0, and a connection
whose answers keep coming later than the budget rests (but for probes)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from mayastor.nvmf import poll
from mayastor.nvmf.poll import MISSES_TO_REST, PROBE_EVERY, BoundedPoll, Waiter


class Clock:
    """Seconds the test sets."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def turns(count: int = 20) -> None:
    """Let the loop run `count` iterations."""
    for _ in range(count):
        await asyncio.sleep(0)


def made(budget_us: float = 50) -> tuple[BoundedPoll, Clock]:
    clock = Clock()
    return BoundedPoll(asyncio.get_running_loop(), budget_us, clock=clock), clock


def late_answer(waiter: Waiter, clock: Clock) -> None:
    """An expect whose answer comes a second later: a miss."""
    waiter.expect()
    clock.now += 1.0
    waiter.arrived()


def rest(waiter: Waiter, clock: Clock) -> None:
    """Enough late answers in a row to send the connection to rest."""
    for _ in range(MISSES_TO_REST):
        late_answer(waiter, clock)


def answer_quickly_until_the_probe(waiter: Waiter) -> None:
    """The expects of a resting connection before its next probe, answered at once."""
    for _ in range(PROBE_EVERY - 1):
        waiter.expect()
        waiter.arrived()


async def test_without_expect_the_poll_never_turns() -> None:
    p, _ = made()
    p.waiter()
    await turns()
    assert not p.spinning
    assert (p.turns, p.hits, p.misses) == (0, 0, 0)


async def test_expect_keeps_the_loop_turning_until_the_budget_is_spent() -> None:
    p, clock = made(budget_us=50)
    w = p.waiter()
    w.expect()
    await turns(10)
    assert p.spinning
    assert p.turns >= 9
    clock.now += 49e-6
    await turns(3)
    assert p.spinning
    clock.now += 2e-6
    await turns(3)
    assert not p.spinning
    spent = p.turns
    await turns()
    assert p.turns == spent


async def test_the_bytes_awaited_end_the_spin_as_a_hit() -> None:
    p, clock = made()
    w = p.waiter()
    w.expect()
    await turns(3)
    clock.now += 20e-6
    w.arrived()
    assert not p.spinning
    assert p.hits == 1
    assert p.misses == 0
    spent = p.turns
    await turns()
    assert p.turns <= spent + 1


async def test_the_spin_lasts_while_another_connection_still_waits() -> None:
    p, _ = made()
    first, second = p.waiter(), p.waiter()
    first.expect()
    second.expect()
    first.arrived()
    assert p.spinning
    second.arrived()
    assert not p.spinning


async def test_a_closed_connection_waits_no_more() -> None:
    p, _ = made()
    w = p.waiter()
    w.expect()
    w.close()
    assert not p.spinning
    w.arrived()
    assert (p.hits, p.misses) == (0, 0)


async def test_bytes_later_than_the_budget_are_a_miss() -> None:
    p, clock = made(budget_us=50)
    w = p.waiter()
    late_answer(w, clock)
    assert (p.hits, p.misses) == (0, 1)


async def test_bytes_nobody_waited_for_count_nothing() -> None:
    p, _ = made()
    p.waiter().arrived()
    assert (p.hits, p.misses) == (0, 0)
    assert not p.spinning


async def test_a_budget_of_zero_turns_the_poll_off() -> None:
    p, _ = made(budget_us=0)
    w = p.waiter()
    w.expect()
    await turns()
    assert not p.spinning
    assert not w.waiting
    assert p.turns == 0


async def test_setting_the_budget_to_zero_ends_a_spin() -> None:
    p, _ = made()
    p.waiter().expect()
    await turns(3)
    p.budget_us = 0
    assert not p.spinning
    spent = p.turns
    await turns()
    assert p.turns <= spent + 1


async def test_a_second_expect_extends_the_spin_with_one_callback() -> None:
    p, clock = made(budget_us=50)
    w = p.waiter()
    w.expect()
    clock.now += 40e-6
    w.expect()
    w.expect()
    clock.now += 40e-6
    await turns(5)
    assert p.spinning
    assert 4 <= p.turns <= 5


async def test_misses_in_a_row_make_a_connection_rest_and_probe_now_and_then() -> None:
    p, clock = made()
    w = p.waiter()
    for _ in range(MISSES_TO_REST):
        assert not w.resting
        late_answer(w, clock)
    assert w.resting
    for _ in range(PROBE_EVERY - 1):
        w.expect()
        assert not p.spinning
    w.expect()
    assert p.spinning


async def test_a_resting_connection_leaves_the_others_spinning() -> None:
    p, clock = made()
    slow, quick = p.waiter(), p.waiter()
    rest(slow, clock)
    slow.expect()
    assert not p.spinning
    quick.expect()
    assert p.spinning


async def test_a_quick_answer_while_resting_does_not_end_the_rest() -> None:
    p, clock = made()
    w = p.waiter()
    rest(w, clock)
    w.expect()
    assert not p.spinning
    clock.now += 10e-6
    w.arrived()
    assert w.resting


async def test_a_probe_answered_within_the_budget_ends_the_rest() -> None:
    p, clock = made()
    w = p.waiter()
    rest(w, clock)
    answer_quickly_until_the_probe(w)
    w.expect()
    assert p.spinning
    clock.now += 10e-6
    w.arrived()
    assert not w.resting
    w.expect()
    assert p.spinning


async def test_a_probe_answered_late_keeps_the_rest() -> None:
    p, clock = made()
    w = p.waiter()
    rest(w, clock)
    answer_quickly_until_the_probe(w)
    late_answer(w, clock)
    assert w.resting


async def test_a_hit_between_misses_keeps_the_connection_spinning() -> None:
    p, clock = made()
    w = p.waiter()
    for _ in range(3):
        for _ in range(MISSES_TO_REST - 1):
            late_answer(w, clock)
        w.expect()
        w.arrived()
    assert not w.resting


async def test_a_new_budget_ends_a_rest() -> None:
    p, clock = made()
    w = p.waiter()
    rest(w, clock)
    p.budget_us = 80
    assert not w.resting
    w.expect()
    assert p.spinning


async def test_a_negative_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        made(budget_us=-1)
    with pytest.raises(ValueError, match="negative"):
        poll.configure(-5)


@pytest.fixture
def restored() -> Iterator[None]:
    yield
    poll.configure(poll.DEFAULT_BUDGET_US)


@pytest.mark.usefixtures("restored")
async def test_configure_sets_the_budget_of_the_loops_poll_and_of_later_ones() -> None:
    loop = asyncio.get_running_loop()
    assert poll.for_loop(loop) is poll.for_loop(loop)
    poll.configure(7)
    assert poll.for_loop(loop).budget_us == pytest.approx(7)
    other = asyncio.new_event_loop()
    try:
        assert poll.for_loop(other).budget_us == pytest.approx(7)
    finally:
        other.close()
