"""The controller's run-state table, what each state admits, and the reconnect clock."""

from __future__ import annotations

import pytest

from mayastor.nvmf.host import (
    ADMISSION,
    TRANSITIONS,
    Admission,
    ControllerEvent,
    ControllerState,
    ReconnectClock,
)

S, E = ControllerState, ControllerEvent


def clock(
    *, delay: float = 2.0, loss: float | None = 10.0, fast_fail: float | None = 5.0
) -> ReconnectClock:
    return ReconnectClock(
        lost_at=100.0,
        reconnect_delay=delay,
        ctrl_loss_timeout=loss,
        fast_io_fail_timeout=fast_fail,
    )


# ------------------------------------------------------------------ the table


def test_a_first_connect_that_fails_rolls_back_to_idle() -> None:
    assert TRANSITIONS[(S.IDLE, E.CONNECT)] is S.CONNECTING
    assert TRANSITIONS[(S.CONNECTING, E.CONNECT_FAILED)] is S.IDLE


def test_a_lost_path_reconnects_and_comes_back_live_or_fails_for_good() -> None:
    assert TRANSITIONS[(S.LIVE, E.PATH_LOST)] is S.RECONNECTING
    assert TRANSITIONS[(S.RECONNECTING, E.ESTABLISHED)] is S.LIVE
    assert TRANSITIONS[(S.RECONNECTING, E.LOSS_TIMEOUT)] is S.FAILED


def test_every_state_but_closing_and_closed_can_be_closed() -> None:
    closable = {state for (state, event) in TRANSITIONS if event is E.CLOSE}
    assert closable == set(S) - {S.CLOSING, S.CLOSED}
    assert all(TRANSITIONS[(state, E.CLOSE)] is S.CLOSING for state in closable)
    assert TRANSITIONS[(S.CLOSING, E.CLOSED)] is S.CLOSED


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (S.IDLE, E.PATH_LOST),
        (S.LIVE, E.CONNECT),
        (S.FAILED, E.ESTABLISHED),
        (S.CLOSED, E.CONNECT),
        (S.RECONNECTING, E.CONNECT_FAILED),
    ],
)
def test_pairs_outside_the_table_are_not_allowed(
    state: ControllerState, event: ControllerEvent
) -> None:
    assert (state, event) not in TRANSITIONS


def test_nothing_leaves_closed() -> None:
    assert [key for key in TRANSITIONS if key[0] is S.CLOSED] == []


def test_only_a_live_controller_sends_and_only_a_reconnecting_one_makes_calls_wait() -> None:
    assert ADMISSION == {
        S.IDLE: Admission.NOT_CONNECTED,
        S.CONNECTING: Admission.NOT_CONNECTED,
        S.LIVE: Admission.GO,
        S.RECONNECTING: Admission.WAIT,
        S.FAILED: Admission.PATH_LOST,
        S.CLOSING: Admission.CLOSED,
        S.CLOSED: Admission.CLOSED,
    }


# ------------------------------------------------------------------ the reconnect clock


def test_attempts_come_reconnect_delay_apart_from_the_loss() -> None:
    c = clock(delay=2.0, loss=10.0)
    assert c.delay_before_next_attempt(100.0) == 2.0
    c.attempt_started(102.0)
    assert c.delay_before_next_attempt(102.5) == 1.5
    assert c.next_attempt_at() == 104.0


def test_an_attempt_that_took_longer_than_the_delay_is_followed_at_once() -> None:
    c = clock(delay=2.0, loss=None)
    c.attempt_started(102.0)
    assert c.delay_before_next_attempt(107.0) == 0.0


def test_no_attempt_starts_after_ctrl_loss_timeout() -> None:
    c = clock(delay=2.0, loss=5.0)
    starts = []
    now = 100.0
    while (delay := c.delay_before_next_attempt(now)) is not None:
        now += delay
        c.attempt_started(now)
        starts.append(now)
    assert starts == [102.0, 104.0]
    assert c.attempts == 2


def test_ctrl_loss_timeout_zero_gives_up_without_an_attempt() -> None:
    assert clock(loss=0.0).delay_before_next_attempt(100.0) is None


def test_without_ctrl_loss_timeout_attempts_never_end() -> None:
    c = clock(delay=1.0, loss=None)
    for step in range(1000):
        c.attempt_started(101.0 + step)
    assert c.delay_before_next_attempt(1100.0) == 1.0
    assert c.give_up_at is None


def test_calls_wait_until_fast_io_fail_timeout_after_the_loss() -> None:
    c = clock(fast_fail=5.0, loss=10.0)
    assert c.io_wait_until() == 105.0
    assert not c.io_fails_at_once(104.9)
    assert c.io_fails_at_once(105.0)


def test_fast_io_fail_zero_fails_calls_at_once() -> None:
    assert clock(fast_fail=0.0).io_fails_at_once(100.0)


def test_without_fast_io_fail_calls_wait_until_we_give_up() -> None:
    c = clock(fast_fail=None, loss=10.0)
    assert c.io_wait_until() == 110.0
    assert not c.io_fails_at_once(109.0)


def test_calls_never_wait_past_giving_up() -> None:
    assert clock(fast_fail=30.0, loss=10.0).io_wait_until() == 110.0


def test_calls_wait_for_ever_when_nothing_limits_them() -> None:
    c = clock(fast_fail=None, loss=None)
    assert c.io_wait_until() is None
    assert not c.io_fails_at_once(1e12)


def test_an_attempt_is_bounded_by_the_connect_timeout_and_by_giving_up() -> None:
    c = clock(loss=10.0)
    assert c.attempt_deadline(102.0, connect_timeout=3.0) == 105.0
    assert c.attempt_deadline(108.0, connect_timeout=3.0) == 110.0
    assert clock(loss=None).attempt_deadline(108.0, connect_timeout=3.0) == 111.0
