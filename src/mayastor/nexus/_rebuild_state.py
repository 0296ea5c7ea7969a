"""The rebuild job state machine as one `(state, event) -> state` table.

A job is created (Init), runs, may be paused and resumed, and ends Stopped (by an
operator or a reconfiguration), Failed (a source or destination I/O failed) or
Completed (every segment copied). A pair that is not in the table is refused with
`FailedPrecondition`, which is what an operator sees when pausing a finished job.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from mayastor.errors import FailedPrecondition


class RebuildState(enum.Enum):
    """Where a rebuild job is."""

    INIT = "init"  # created, not started
    RUNNING = "running"  # copying segments
    PAUSED = "paused"  # no new segment starts; the ones in flight finish
    STOPPED = "stopped"  # ended on request, not complete
    FAILED = "failed"  # ended by an I/O error on the source or the destination
    COMPLETED = "completed"  # every segment copied

    @property
    def done(self) -> bool:
        """True once the job has ended, whichever way."""
        return self in (RebuildState.STOPPED, RebuildState.FAILED, RebuildState.COMPLETED)


class RebuildEvent(enum.Enum):
    """What can happen to a rebuild job."""

    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"
    FAIL = "fail"
    COMPLETE = "complete"


_S = RebuildState
_E = RebuildEvent

REBUILD_TRANSITIONS: Mapping[tuple[RebuildState, RebuildEvent], RebuildState] = {
    (_S.INIT, _E.START): _S.RUNNING,
    (_S.INIT, _E.STOP): _S.STOPPED,
    (_S.INIT, _E.FAIL): _S.FAILED,
    (_S.RUNNING, _E.PAUSE): _S.PAUSED,
    (_S.RUNNING, _E.RESUME): _S.RUNNING,
    (_S.RUNNING, _E.STOP): _S.STOPPED,
    (_S.RUNNING, _E.FAIL): _S.FAILED,
    (_S.RUNNING, _E.COMPLETE): _S.COMPLETED,
    (_S.PAUSED, _E.PAUSE): _S.PAUSED,
    (_S.PAUSED, _E.RESUME): _S.RUNNING,
    (_S.PAUSED, _E.STOP): _S.STOPPED,
    # A segment in flight when the job was paused may still fail, or be the last one.
    (_S.PAUSED, _E.FAIL): _S.FAILED,
    (_S.PAUSED, _E.COMPLETE): _S.COMPLETED,
}


def next_rebuild_state(what: str, state: RebuildState, event: RebuildEvent) -> RebuildState:
    """The state that `event` leads to from `state`.

    Args:
        what: the job (e.g. its destination), for the error message.
        state: where it is.
        event: what happened.

    Returns:
        the next state.

    Raises:
        FailedPrecondition: the table has no such transition.
    """
    try:
        return REBUILD_TRANSITIONS[state, event]
    except KeyError:
        raise FailedPrecondition(
            f"rebuild of {what}: cannot {event.value} a job that is {state.value}"
        ) from None
