"""The life of one NVMe/TCP connection (a queue pair) on the target, as a table.

A connection starts waiting for the host's ICReq, then for a Fabrics Connect, and
becomes either the admin queue of a new controller or an I/O queue of an existing one;
when its subsystem holds a DH-HMAC-CHAP secret for the host, it first passes through
an authenticating state in which only Authentication Send and Receive are served.
It ends when the host terminates it, breaks the protocol, its controller goes away,
the TCP connection closes, or it times out (no ICReq or Connect in time, or write
data it owes stopped coming). Commands other than a successful Connect, and write data,
leave the state as it is.

The table says what to do on the way (`QueueAction`); the queue pair does it. This
module knows nothing of sockets, controllers or time.
"""

from __future__ import annotations

import enum

from mayastor.target._table import StateTable


class QueueState(enum.Enum):
    """Where a connection is."""

    AWAIT_IC_REQ = "await ICReq"  # TCP connected, nothing received yet
    AWAIT_CONNECT = "await Connect"  # IC exchange done; only Connect is served
    ADMIN = "admin"  # the admin queue of a controller
    IO = "io"  # an I/O queue of a controller
    AUTH_ADMIN = "authenticating admin"  # admin queue; only authentication is served
    AUTH_IO = "authenticating io"  # I/O queue; only authentication is served
    CLOSED = "closed"  # done; nothing more is read or sent


class QueueEvent(enum.Enum):
    """What can happen to a connection."""

    IC_REQ = "ICReq"  # the host's ICReq arrived
    CONNECT_ADMIN = "connect admin"  # a Connect for queue 0 succeeded
    CONNECT_IO = "connect io"  # a Connect for an I/O queue succeeded
    CONNECT_ADMIN_AUTH = "connect admin, authenticate"  # ... and the host must authenticate
    CONNECT_IO_AUTH = "connect io, authenticate"
    AUTHENTICATED = "authenticated"  # the host proved its secret
    AUTH_FAILED = "authentication failed"  # the transaction failed; Failure1 was sent
    COMMAND = "command"  # any other command capsule (answered, maybe with an error)
    DATA = "data"  # an H2CData PDU
    TERMINATE = "terminate"  # the host sent H2CTermReq
    PROTOCOL_ERROR = "protocol error"  # the host broke the transport protocol
    CONTROLLER_GONE = "controller gone"  # our controller was freed or reset
    TRANSPORT_CLOSED = "transport closed"  # the TCP connection is gone
    TIMEOUT = "timeout"  # no ICReq or Connect in time, or owed write data stopped coming


class QueueAction(enum.Enum):
    """What the queue pair does when it takes a transition."""

    NONE = "none"
    ANSWER_IC = "answer IC"  # send ICResp, apply the negotiated digests and alignment
    TERMINATE = "terminate"  # send C2HTermReq, close the transport, leave the controller
    CLOSE = "close"  # close the transport, leave the controller
    DETACH = "detach"  # the transport is gone: leave the controller


_S, _E, _A = QueueState, QueueEvent, QueueAction
_CONNECTED = (_S.ADMIN, _S.IO, _S.AUTH_ADMIN, _S.AUTH_IO)

QUEUE_TRANSITIONS: dict[tuple[QueueState, QueueEvent], tuple[QueueAction, QueueState]] = {
    (_S.AWAIT_IC_REQ, _E.IC_REQ): (_A.ANSWER_IC, _S.AWAIT_CONNECT),
    (_S.AWAIT_CONNECT, _E.CONNECT_ADMIN): (_A.NONE, _S.ADMIN),
    (_S.AWAIT_CONNECT, _E.CONNECT_IO): (_A.NONE, _S.IO),
    (_S.AWAIT_CONNECT, _E.CONNECT_ADMIN_AUTH): (_A.NONE, _S.AUTH_ADMIN),
    (_S.AWAIT_CONNECT, _E.CONNECT_IO_AUTH): (_A.NONE, _S.AUTH_IO),
    (_S.AUTH_ADMIN, _E.AUTHENTICATED): (_A.NONE, _S.ADMIN),
    (_S.AUTH_IO, _E.AUTHENTICATED): (_A.NONE, _S.IO),
    # Re-authentication of a queue that already passed keeps it where it is.
    (_S.ADMIN, _E.AUTHENTICATED): (_A.NONE, _S.ADMIN),
    (_S.IO, _E.AUTHENTICATED): (_A.NONE, _S.IO),
    **{(state, _E.AUTH_FAILED): (_A.CLOSE, _S.CLOSED) for state in _CONNECTED},
    (_S.AWAIT_CONNECT, _E.COMMAND): (_A.NONE, _S.AWAIT_CONNECT),
    (_S.AWAIT_CONNECT, _E.DATA): (_A.NONE, _S.AWAIT_CONNECT),
    **{(state, _E.COMMAND): (_A.NONE, state) for state in _CONNECTED},
    **{(state, _E.DATA): (_A.NONE, state) for state in _CONNECTED},
    **{(state, _E.CONTROLLER_GONE): (_A.CLOSE, _S.CLOSED) for state in _CONNECTED},
    **{
        (state, _E.PROTOCOL_ERROR): (_A.TERMINATE, _S.CLOSED)
        for state in (_S.AWAIT_IC_REQ, _S.AWAIT_CONNECT, *_CONNECTED)
    },
    **{
        (state, _E.TERMINATE): (_A.CLOSE, _S.CLOSED)
        for state in (_S.AWAIT_IC_REQ, _S.AWAIT_CONNECT, *_CONNECTED)
    },
    **{
        (state, _E.TIMEOUT): (_A.CLOSE, _S.CLOSED)
        for state in (_S.AWAIT_IC_REQ, _S.AWAIT_CONNECT, *_CONNECTED)
    },
    **{
        (state, _E.TRANSPORT_CLOSED): (_A.DETACH, _S.CLOSED)
        for state in (_S.AWAIT_IC_REQ, _S.AWAIT_CONNECT, *_CONNECTED)
    },
    # Late news about a connection that is already closed changes nothing.
    **{
        (_S.CLOSED, event): (_A.NONE, _S.CLOSED)
        for event in (
            _E.TERMINATE,
            _E.PROTOCOL_ERROR,
            _E.CONTROLLER_GONE,
            _E.TRANSPORT_CLOSED,
            _E.TIMEOUT,
        )
    },
}
"""(state, event) -> (action, next state); a pair not here is a protocol error."""

QUEUE_TABLE: StateTable[QueueState, QueueEvent, QueueAction] = StateTable(
    "queue pair", QUEUE_TRANSITIONS
)
