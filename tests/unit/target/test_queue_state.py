"""The queue pair's state table, pair by pair: what is allowed, what it leads to, and
that every other pair is refused."""

from __future__ import annotations

import itertools

import pytest

from mayastor.target._queue_state import QUEUE_TABLE, QueueAction, QueueEvent, QueueState
from mayastor.target._table import TransitionError

S, E, A = QueueState, QueueEvent, QueueAction

# Written out by hand from the protocol (TP 8000): the IC exchange, then Connect, then
# commands; every live connection can be terminated, break the protocol or lose its
# transport; a connected one also loses its controller; a closed one ignores late news.
EXPECTED: dict[tuple[QueueState, QueueEvent], tuple[QueueAction, QueueState]] = {
    (S.AWAIT_IC_REQ, E.IC_REQ): (A.ANSWER_IC, S.AWAIT_CONNECT),
    (S.AWAIT_IC_REQ, E.TERMINATE): (A.CLOSE, S.CLOSED),
    (S.AWAIT_IC_REQ, E.PROTOCOL_ERROR): (A.TERMINATE, S.CLOSED),
    (S.AWAIT_IC_REQ, E.TRANSPORT_CLOSED): (A.DETACH, S.CLOSED),
    (S.AWAIT_CONNECT, E.CONNECT_ADMIN): (A.NONE, S.ADMIN),
    (S.AWAIT_CONNECT, E.CONNECT_IO): (A.NONE, S.IO),
    (S.AWAIT_CONNECT, E.COMMAND): (A.NONE, S.AWAIT_CONNECT),
    (S.AWAIT_CONNECT, E.DATA): (A.NONE, S.AWAIT_CONNECT),
    (S.AWAIT_CONNECT, E.TERMINATE): (A.CLOSE, S.CLOSED),
    (S.AWAIT_CONNECT, E.PROTOCOL_ERROR): (A.TERMINATE, S.CLOSED),
    (S.AWAIT_CONNECT, E.TRANSPORT_CLOSED): (A.DETACH, S.CLOSED),
    (S.ADMIN, E.COMMAND): (A.NONE, S.ADMIN),
    (S.ADMIN, E.DATA): (A.NONE, S.ADMIN),
    (S.ADMIN, E.TERMINATE): (A.CLOSE, S.CLOSED),
    (S.ADMIN, E.PROTOCOL_ERROR): (A.TERMINATE, S.CLOSED),
    (S.ADMIN, E.CONTROLLER_GONE): (A.CLOSE, S.CLOSED),
    (S.ADMIN, E.TRANSPORT_CLOSED): (A.DETACH, S.CLOSED),
    (S.IO, E.COMMAND): (A.NONE, S.IO),
    (S.IO, E.DATA): (A.NONE, S.IO),
    (S.IO, E.TERMINATE): (A.CLOSE, S.CLOSED),
    (S.IO, E.PROTOCOL_ERROR): (A.TERMINATE, S.CLOSED),
    (S.IO, E.CONTROLLER_GONE): (A.CLOSE, S.CLOSED),
    (S.IO, E.TRANSPORT_CLOSED): (A.DETACH, S.CLOSED),
    # In-band authentication (NVMe Base 2.0): a queue whose host must authenticate
    # waits in an authenticating state, serves commands (only Authentication
    # Send/Receive get through), becomes admin or I/O once authenticated, and is
    # closed when the transaction fails; a queue that already passed may do it again.
    (S.AWAIT_CONNECT, E.CONNECT_ADMIN_AUTH): (A.NONE, S.AUTH_ADMIN),
    (S.AWAIT_CONNECT, E.CONNECT_IO_AUTH): (A.NONE, S.AUTH_IO),
    (S.AUTH_ADMIN, E.AUTHENTICATED): (A.NONE, S.ADMIN),
    (S.AUTH_IO, E.AUTHENTICATED): (A.NONE, S.IO),
    (S.ADMIN, E.AUTHENTICATED): (A.NONE, S.ADMIN),
    (S.IO, E.AUTHENTICATED): (A.NONE, S.IO),
    **{
        (state, event): result
        for state in (S.ADMIN, S.IO, S.AUTH_ADMIN, S.AUTH_IO)
        for event, result in (
            (E.AUTH_FAILED, (A.CLOSE, S.CLOSED)),
            (E.COMMAND, (A.NONE, state)),
            (E.DATA, (A.NONE, state)),
            (E.TERMINATE, (A.CLOSE, S.CLOSED)),
            (E.PROTOCOL_ERROR, (A.TERMINATE, S.CLOSED)),
            (E.CONTROLLER_GONE, (A.CLOSE, S.CLOSED)),
            (E.TRANSPORT_CLOSED, (A.DETACH, S.CLOSED)),
        )
    },
    (S.CLOSED, E.TERMINATE): (A.NONE, S.CLOSED),
    (S.CLOSED, E.PROTOCOL_ERROR): (A.NONE, S.CLOSED),
    (S.CLOSED, E.CONTROLLER_GONE): (A.NONE, S.CLOSED),
    (S.CLOSED, E.TRANSPORT_CLOSED): (A.NONE, S.CLOSED),
    # Timeouts (no ICReq or Connect in time, owed write data that stopped) just close.
    (S.AWAIT_IC_REQ, E.TIMEOUT): (A.CLOSE, S.CLOSED),
    (S.AWAIT_CONNECT, E.TIMEOUT): (A.CLOSE, S.CLOSED),
    (S.ADMIN, E.TIMEOUT): (A.CLOSE, S.CLOSED),
    (S.IO, E.TIMEOUT): (A.CLOSE, S.CLOSED),
    (S.AUTH_ADMIN, E.TIMEOUT): (A.CLOSE, S.CLOSED),
    (S.AUTH_IO, E.TIMEOUT): (A.CLOSE, S.CLOSED),
    (S.CLOSED, E.TIMEOUT): (A.NONE, S.CLOSED),
}

ALL_PAIRS = list(itertools.product(QueueState, QueueEvent))


@pytest.mark.parametrize(("state", "event"), ALL_PAIRS, ids=lambda v: v.name)
def test_every_pair_does_what_the_protocol_says_or_is_refused(
    state: QueueState, event: QueueEvent
) -> None:
    expected = EXPECTED.get((state, event))
    if expected is None:
        with pytest.raises(TransitionError) as info:
            QUEUE_TABLE.step(state, event)
        assert info.value.state is state
        assert info.value.event is event
    else:
        assert QUEUE_TABLE.step(state, event) == expected


def test_the_table_has_no_pair_the_protocol_does_not_name() -> None:
    assert set(QUEUE_TABLE.transitions) == set(EXPECTED)


def test_a_second_icreq_is_refused_in_every_later_state() -> None:
    for state in (S.AWAIT_CONNECT, S.ADMIN, S.IO, S.AUTH_ADMIN, S.AUTH_IO, S.CLOSED):
        with pytest.raises(TransitionError):
            QUEUE_TABLE.step(state, E.IC_REQ)


def test_commands_before_the_ic_exchange_are_refused() -> None:
    with pytest.raises(TransitionError):
        QUEUE_TABLE.step(S.AWAIT_IC_REQ, E.COMMAND)
    with pytest.raises(TransitionError):
        QUEUE_TABLE.step(S.AWAIT_IC_REQ, E.DATA)
