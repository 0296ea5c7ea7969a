"""The controller's state table pair by pair, the CSTS each state shows, and the
keep-alive timer with time stepped as a number."""

from __future__ import annotations

import itertools

import pytest

from mayastor.nvmf.spec import ControllerStatus, ShutdownStatus
from mayastor.target._controller_state import (
    CONTROLLER_TABLE,
    CSTS_BY_STATE,
    ControllerAction,
    ControllerEvent,
    ControllerState,
    KeepAlive,
)
from mayastor.target._table import TransitionError

S, E, A = ControllerState, ControllerEvent, ControllerAction
LIVE = (S.DISABLED, S.READY, S.FAILED, S.SHUTTING_DOWN, S.SHUT_DOWN)
ENDINGS = (E.KEEP_ALIVE_EXPIRED, E.ADMIN_QUEUE_LOST, E.DELETE)

# By hand, from NVMe Base 1.4 section 7.6 (CC.EN, CC.SHN, CSTS) and 7.12 (keep alive).
Pair = tuple[ControllerState, ControllerEvent]
EXPECTED: dict[Pair, tuple[ControllerAction, ControllerState]] = {
    (S.DISABLED, E.ENABLE): (A.START, S.READY),
    (S.DISABLED, E.ENABLE_INVALID): (A.NONE, S.FAILED),
    (S.DISABLED, E.DISABLE): (A.NONE, S.DISABLED),
    (S.DISABLED, E.SHUTDOWN): (A.FLUSH, S.SHUTTING_DOWN),
    (S.DISABLED, E.SHUTDOWN_DONE): (A.NONE, S.DISABLED),
    (S.DISABLED, E.SHUTDOWN_FAILED): (A.NONE, S.DISABLED),
    (S.READY, E.SHUTDOWN_DONE): (A.NONE, S.READY),
    (S.READY, E.SHUTDOWN_FAILED): (A.NONE, S.READY),
    (S.FAILED, E.SHUTDOWN_DONE): (A.NONE, S.FAILED),
    (S.FAILED, E.SHUTDOWN_FAILED): (A.NONE, S.FAILED),
    (S.READY, E.ENABLE): (A.NONE, S.READY),
    (S.READY, E.DISABLE): (A.RESET, S.DISABLED),
    (S.READY, E.SHUTDOWN): (A.FLUSH, S.SHUTTING_DOWN),
    (S.FAILED, E.ENABLE): (A.NONE, S.FAILED),
    (S.FAILED, E.ENABLE_INVALID): (A.NONE, S.FAILED),
    (S.FAILED, E.DISABLE): (A.RESET, S.DISABLED),
    (S.FAILED, E.SHUTDOWN): (A.FLUSH, S.SHUTTING_DOWN),
    (S.SHUTTING_DOWN, E.SHUTDOWN): (A.NONE, S.SHUTTING_DOWN),
    (S.SHUTTING_DOWN, E.SHUTDOWN_DONE): (A.NONE, S.SHUT_DOWN),
    # A shutdown whose flush failed is not clean: CSTS.CFS, SHST not complete.
    (S.SHUTTING_DOWN, E.SHUTDOWN_FAILED): (A.NONE, S.FAILED),
    (S.SHUTTING_DOWN, E.DISABLE): (A.RESET, S.DISABLED),
    (S.SHUT_DOWN, E.SHUTDOWN): (A.NONE, S.SHUT_DOWN),
    (S.SHUT_DOWN, E.DISABLE): (A.RESET, S.DISABLED),
    **{(state, event): (A.FREE, S.FREED) for state in LIVE for event in ENDINGS},
    **{
        (S.FREED, event): (A.NONE, S.FREED)
        for event in (*ENDINGS, E.SHUTDOWN_DONE, E.SHUTDOWN_FAILED)
    },
}


@pytest.mark.parametrize(
    ("state", "event"), list(itertools.product(ControllerState, ControllerEvent)), ids=str
)
def test_every_pair_does_what_the_spec_says_or_is_refused(
    state: ControllerState, event: ControllerEvent
) -> None:
    expected = EXPECTED.get((state, event))
    if expected is None:
        with pytest.raises(TransitionError):
            CONTROLLER_TABLE.step(state, event)
    else:
        assert CONTROLLER_TABLE.step(state, event) == expected


def test_the_table_has_no_pair_the_spec_does_not_name() -> None:
    assert set(CONTROLLER_TABLE.transitions) == set(EXPECTED)


def test_enabling_a_controller_that_is_not_disabled_first_is_refused() -> None:
    for state in (S.SHUTTING_DOWN, S.SHUT_DOWN, S.FREED):
        with pytest.raises(TransitionError):
            CONTROLLER_TABLE.step(state, E.ENABLE)


@pytest.mark.parametrize(
    ("state", "rdy", "cfs", "shst"),
    [
        (S.DISABLED, False, False, ShutdownStatus.NORMAL),
        (S.READY, True, False, ShutdownStatus.NORMAL),
        (S.FAILED, False, True, ShutdownStatus.NORMAL),
        (S.SHUTTING_DOWN, False, False, ShutdownStatus.OCCURRING),
        (S.SHUT_DOWN, False, False, ShutdownStatus.COMPLETE),
    ],
)
def test_each_state_reports_its_csts(
    state: ControllerState, rdy: bool, cfs: bool, shst: ShutdownStatus
) -> None:
    csts = ControllerStatus.decode(CSTS_BY_STATE[state])
    assert (csts.rdy, csts.cfs, csts.shst) == (rdy, cfs, shst)


# ------------------------------------------------------------------ keep alive


def test_keep_alive_expires_exactly_kato_after_the_last_sign() -> None:
    timer = KeepAlive(5000, now=100.0)
    assert not timer.expired(104.999)
    assert timer.expired(105.0)


def test_a_keep_alive_command_restarts_the_timer() -> None:
    timer = KeepAlive(2000, now=0.0)
    timer.touch(1.5)
    assert not timer.expired(3.0)
    assert timer.expired(3.5)


def test_traffic_since_the_last_check_counts_as_a_sign_of_life() -> None:
    timer = KeepAlive(1000, now=0.0)
    timer.traffic = True
    assert not timer.expired(10.0)  # traffic seen: restarted at 10
    assert not timer.traffic
    assert not timer.expired(10.9)
    assert timer.expired(11.0)


def test_kato_zero_never_expires() -> None:
    timer = KeepAlive(0, now=0.0)
    assert timer.deadline() is None
    assert not timer.expired(1e9)


def test_a_new_kato_restarts_the_timer_with_the_new_length() -> None:
    timer = KeepAlive(1000, now=0.0)
    timer.set_timeout(10_000, now=5.0)
    assert timer.timeout_ms == 10_000
    assert timer.deadline() == 15.0
    assert not timer.expired(14.0)
    assert timer.expired(15.0)
