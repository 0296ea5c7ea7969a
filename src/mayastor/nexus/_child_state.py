"""The nexus child state machine: Mayastor's child states as one table.

A child is Online (in sync: it takes writes and serves reads), Degraded (being
rebuilt: it takes writes, serves no reads) or Faulted with a reason (it takes no
I/O). Events with a fixed reason carry it in the table; a child retired by a failed
I/O gets the reason that `reason_for_error` derives from the error. A pair that is
not in the table is refused with `FailedPrecondition`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from mayastor.errors import FailedPrecondition, IoTimeout, NoSpace, PathError


class ChildState(enum.Enum):
    """The state of one child of a nexus."""

    ONLINE = "online"  # in sync: takes writes, serves reads
    DEGRADED = "degraded"  # being rebuilt: takes writes, serves no reads
    FAULTED = "faulted"  # out of the I/O path; see its FaultReason

    @property
    def takes_writes(self) -> bool:
        return self is not ChildState.FAULTED


class FaultReason(enum.Enum):
    """Why a child is Faulted."""

    IO_ERROR = "io_error"  # an I/O failed on it (media, transport, internal error)
    TIMED_OUT = "timed_out"  # it did not answer in time, or its path was lost
    CANT_OPEN = "cant_open"  # it could not be opened
    OUT_OF_SYNC = "out_of_sync"  # its data is not current: it needs a full rebuild
    NO_SPACE = "no_space"  # a thin replica ran out of space in its pool
    BY_CLIENT = "by_client"  # an operator faulted it
    OFFLINE = "offline"  # an operator took it offline (eligible for a partial rebuild)
    REBUILD_FAILED = "rebuild_failed"  # the rebuild into it failed


class ChildEvent(enum.Enum):
    """What can happen to a child."""

    IO_FAILED = "io_failed"  # retired by a failed I/O; reason from the error
    FAULTED_BY_CLIENT = "faulted_by_client"
    TAKEN_OFFLINE = "taken_offline"
    OPEN_FAILED = "open_failed"  # reopening it (to bring it online) failed
    REBUILD_STARTED = "rebuild_started"  # joins the write path as a rebuild destination
    REBUILD_COMPLETED = "rebuild_completed"  # recorded healthy; serves reads from now on
    REBUILD_FAILED = "rebuild_failed"
    REBUILD_STOPPED = "rebuild_stopped"  # stopped by an operator or by a reconfiguration


_S = ChildState
_E = ChildEvent
_R = FaultReason

CHILD_TRANSITIONS: Mapping[tuple[ChildState, ChildEvent], tuple[ChildState, FaultReason | None]] = {
    (_S.ONLINE, _E.IO_FAILED): (_S.FAULTED, None),
    (_S.DEGRADED, _E.IO_FAILED): (_S.FAULTED, None),
    (_S.ONLINE, _E.FAULTED_BY_CLIENT): (_S.FAULTED, _R.BY_CLIENT),
    (_S.DEGRADED, _E.FAULTED_BY_CLIENT): (_S.FAULTED, _R.BY_CLIENT),
    (_S.FAULTED, _E.FAULTED_BY_CLIENT): (_S.FAULTED, _R.BY_CLIENT),
    (_S.ONLINE, _E.TAKEN_OFFLINE): (_S.FAULTED, _R.OFFLINE),
    (_S.DEGRADED, _E.TAKEN_OFFLINE): (_S.FAULTED, _R.OFFLINE),
    (_S.FAULTED, _E.TAKEN_OFFLINE): (_S.FAULTED, _R.OFFLINE),
    (_S.FAULTED, _E.OPEN_FAILED): (_S.FAULTED, _R.CANT_OPEN),
    (_S.FAULTED, _E.REBUILD_STARTED): (_S.DEGRADED, None),
    (_S.DEGRADED, _E.REBUILD_COMPLETED): (_S.ONLINE, None),
    (_S.DEGRADED, _E.REBUILD_FAILED): (_S.FAULTED, _R.REBUILD_FAILED),
    (_S.DEGRADED, _E.REBUILD_STOPPED): (_S.FAULTED, _R.OUT_OF_SYNC),
}
"""(state, event) -> (next state, fault reason); None as reason: no reason (not
faulted) or, for IO_FAILED, the reason derived from the error."""


def next_child_state(
    uri: str, state: ChildState, event: ChildEvent
) -> tuple[ChildState, FaultReason | None]:
    """The state (and fault reason) that `event` leads to from `state`.

    Args:
        uri: the child, for the error message.
        state: where it is.
        event: what happened.

    Returns:
        the next state and its fault reason (None where the table fixes none).

    Raises:
        FailedPrecondition: the table has no such transition.
    """
    try:
        return CHILD_TRANSITIONS[state, event]
    except KeyError:
        raise FailedPrecondition(
            f"nexus child {uri!r}: {event.value} is not possible while it is {state.value}"
        ) from None


def reason_for_error(error: BaseException) -> FaultReason:
    """The fault reason of a child retired by `error`.

    NoSpace gives NO_SPACE; IoTimeout gives TIMED_OUT; any other PathError (the path to
    a remote child failed or was lost; the child itself may be fine) also gives
    TIMED_OUT, because from the nexus both look the same: the child stopped answering
    within the initiator's time. Both keep a dirty-segment log, so the child can come
    back with a partial rebuild. Everything else is IO_ERROR.

    Args:
        error: what the child's I/O raised.

    Returns:
        the reason to record.
    """
    if isinstance(error, NoSpace):
        return FaultReason.NO_SPACE
    if isinstance(error, IoTimeout | PathError):
        return FaultReason.TIMED_OUT
    return FaultReason.IO_ERROR


PARTIAL_REBUILD_REASONS = frozenset({FaultReason.TIMED_OUT, FaultReason.OFFLINE})
"""Reasons after which the nexus keeps a log of the segments the child missed."""
