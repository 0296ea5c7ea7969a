"""The nexus state machine: Mayastor's nexus states as one `(state, event) -> state` table.

The nexus reports Online while every child is in sync, Degraded while at least one
is not (faulted, or being rebuilt) but one in-sync child still serves I/O, and
Faulted when its last in-sync child is gone for good; Faulted is final until the
nexus is shut down and created again. Fenced is final too: a child answered with a
reservation conflict, so another nexus has taken the volume over. Shutdown is two
steps so that I/O in flight can drain while the state already refuses new I/O. A
pair that is not in the table is refused with `FailedPrecondition`; nothing here
does I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from mayastor.errors import FailedPrecondition


class NexusState(enum.Enum):
    """Where a nexus is in its life."""

    INIT = "init"  # being created; children are being opened
    ONLINE = "online"  # every child in sync
    DEGRADED = "degraded"  # serving, but at least one child is not in sync
    FAULTED = "faulted"  # no in-sync child can serve; I/O is refused
    FENCED = "fenced"  # superseded by another nexus (a child's reservation conflict)
    SHUTTING_DOWN = "shutting_down"  # refusing new I/O, draining the I/O in flight
    SHUTDOWN = "shutdown"  # stopped; children still held, state kept

    @property
    def serves_io(self) -> bool:
        """True in the states that accept front-end I/O."""
        return self in (NexusState.ONLINE, NexusState.DEGRADED)


class NexusEvent(enum.Enum):
    """What can happen to a nexus."""

    ALL_CHILDREN_IN_SYNC = "all_children_in_sync"  # the children's states changed: all Online
    REDUNDANCY_LOST = "redundancy_lost"  # ... at least one Online, not all
    LAST_CHILD_LOST = "last_child_lost"  # the last Online child cannot serve any more
    SUPERSEDED = "superseded"  # a child answered with a reservation conflict
    SHUTDOWN_STARTED = "shutdown_started"
    SHUTDOWN_DONE = "shutdown_done"


_S = NexusState
_E = NexusEvent

NEXUS_TRANSITIONS: Mapping[tuple[NexusState, NexusEvent], NexusState] = {
    (_S.INIT, _E.ALL_CHILDREN_IN_SYNC): _S.ONLINE,
    (_S.INIT, _E.REDUNDANCY_LOST): _S.DEGRADED,
    (_S.ONLINE, _E.ALL_CHILDREN_IN_SYNC): _S.ONLINE,
    (_S.ONLINE, _E.REDUNDANCY_LOST): _S.DEGRADED,
    (_S.ONLINE, _E.LAST_CHILD_LOST): _S.FAULTED,
    (_S.ONLINE, _E.SHUTDOWN_STARTED): _S.SHUTTING_DOWN,
    (_S.DEGRADED, _E.ALL_CHILDREN_IN_SYNC): _S.ONLINE,
    (_S.DEGRADED, _E.REDUNDANCY_LOST): _S.DEGRADED,
    (_S.DEGRADED, _E.LAST_CHILD_LOST): _S.FAULTED,
    (_S.DEGRADED, _E.SHUTDOWN_STARTED): _S.SHUTTING_DOWN,
    # A faulted nexus stays faulted whatever its children do, until it is shut down.
    (_S.FAULTED, _E.ALL_CHILDREN_IN_SYNC): _S.FAULTED,
    (_S.FAULTED, _E.REDUNDANCY_LOST): _S.FAULTED,
    (_S.FAULTED, _E.LAST_CHILD_LOST): _S.FAULTED,
    (_S.FAULTED, _E.SHUTDOWN_STARTED): _S.SHUTTING_DOWN,
    # Another nexus took the children over: nothing serves I/O here again, whatever
    # the children do, until the nexus is shut down (fencing is final).
    (_S.ONLINE, _E.SUPERSEDED): _S.FENCED,
    (_S.DEGRADED, _E.SUPERSEDED): _S.FENCED,
    (_S.FAULTED, _E.SUPERSEDED): _S.FENCED,
    (_S.FENCED, _E.SUPERSEDED): _S.FENCED,
    (_S.FENCED, _E.ALL_CHILDREN_IN_SYNC): _S.FENCED,
    (_S.FENCED, _E.REDUNDANCY_LOST): _S.FENCED,
    (_S.FENCED, _E.LAST_CHILD_LOST): _S.FENCED,
    (_S.FENCED, _E.SHUTDOWN_STARTED): _S.SHUTTING_DOWN,
    (_S.SHUTTING_DOWN, _E.SUPERSEDED): _S.SHUTTING_DOWN,
    # I/O that drains during shutdown may still retire children.
    (_S.SHUTTING_DOWN, _E.ALL_CHILDREN_IN_SYNC): _S.SHUTTING_DOWN,
    (_S.SHUTTING_DOWN, _E.REDUNDANCY_LOST): _S.SHUTTING_DOWN,
    (_S.SHUTTING_DOWN, _E.LAST_CHILD_LOST): _S.SHUTTING_DOWN,
    (_S.SHUTTING_DOWN, _E.SHUTDOWN_DONE): _S.SHUTDOWN,
}


def next_nexus_state(name: str, state: NexusState, event: NexusEvent) -> NexusState:
    """The state that `event` leads to from `state`.

    Args:
        name: the nexus, for the error message.
        state: where it is.
        event: what happened.

    Returns:
        the next state.

    Raises:
        FailedPrecondition: the table has no such transition.
    """
    try:
        return NEXUS_TRANSITIONS[state, event]
    except KeyError:
        raise FailedPrecondition(
            f"nexus {name!r}: {event.value} is not possible while it is {state.value}"
        ) from None
