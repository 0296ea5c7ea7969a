"""The run state of a controller connection, as tables, and the clock of a lost path.

A `Controller` is always in one `ControllerState`; it moves only along
`TRANSITIONS`, and what a call may do in each state is one lookup in `ADMISSION`, so
a call in the wrong state is refused the same way everywhere. `ReconnectClock` holds
the timing of a lost path (when to try again, when to stop trying, how long calls may
wait) with the time passed in as `now`: it is tested by stepping numbers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ControllerState(enum.Enum):
    """Where a controller connection is."""

    IDLE = "idle"  # made, or its first connect failed and was rolled back
    CONNECTING = "connecting"  # the first connect is running
    LIVE = "live"  # connected: I/O flows
    RECONNECTING = "reconnecting"  # the path was lost; trying again in the background
    FAILED = "failed"  # gave up reconnecting (ctrl_loss_timeout): every call fails
    CLOSING = "closing"  # close() is shutting the controller down
    CLOSED = "closed"  # closed: nothing more will happen


class ControllerEvent(enum.Enum):
    """What moves a controller from one state to the next."""

    CONNECT = "connect"  # the caller asks to connect
    ESTABLISHED = "established"  # admin and I/O queues are connected, controller enabled
    CONNECT_FAILED = "connect failed"  # the first connect failed: roll back
    PATH_LOST = "path lost"  # a queue connection dropped, or Keep Alive failed
    LOSS_TIMEOUT = "loss timeout"  # ctrl_loss_timeout passed without a reconnect
    CLOSE = "close"  # the caller closes the controller
    CLOSED = "closed"  # shutdown finished


_S, _E = ControllerState, ControllerEvent
TRANSITIONS: dict[tuple[ControllerState, ControllerEvent], ControllerState] = {
    (_S.IDLE, _E.CONNECT): _S.CONNECTING,
    (_S.CONNECTING, _E.ESTABLISHED): _S.LIVE,
    (_S.CONNECTING, _E.CONNECT_FAILED): _S.IDLE,
    (_S.LIVE, _E.PATH_LOST): _S.RECONNECTING,
    (_S.RECONNECTING, _E.ESTABLISHED): _S.LIVE,
    (_S.RECONNECTING, _E.LOSS_TIMEOUT): _S.FAILED,
    (_S.IDLE, _E.CLOSE): _S.CLOSING,
    (_S.CONNECTING, _E.CLOSE): _S.CLOSING,
    (_S.LIVE, _E.CLOSE): _S.CLOSING,
    (_S.RECONNECTING, _E.CLOSE): _S.CLOSING,
    (_S.FAILED, _E.CLOSE): _S.CLOSING,
    (_S.CLOSING, _E.CLOSED): _S.CLOSED,
}
"""(state, event) -> next state; a pair that is not here is refused."""


class Admission(enum.Enum):
    """What happens to a command (I/O or admin) asked for in a given state."""

    GO = "go"  # send it
    WAIT = "wait"  # wait for the path to come back, within the clock's limit
    NOT_CONNECTED = "not connected"  # refused: FailedPrecondition (connect first)
    PATH_LOST = "path lost"  # refused: PathGone (we gave up reconnecting)
    CLOSED = "closed"  # refused: DeviceNotReady


ADMISSION: dict[ControllerState, Admission] = {
    _S.IDLE: Admission.NOT_CONNECTED,
    _S.CONNECTING: Admission.NOT_CONNECTED,
    _S.LIVE: Admission.GO,
    _S.RECONNECTING: Admission.WAIT,
    _S.FAILED: Admission.PATH_LOST,
    _S.CLOSING: Admission.CLOSED,
    _S.CLOSED: Admission.CLOSED,
}
"""State -> what a command asked for in it gets."""


def next_state(state: ControllerState, event: ControllerEvent) -> ControllerState | None:
    """The state `event` leads to from `state`, or None when the table forbids it."""
    return TRANSITIONS.get((state, event))


@dataclass(slots=True)
class ReconnectClock:
    """The timing of one lost path, from the moment it was lost until it is back.

    Attempts come `reconnect_delay` seconds apart (measured from the start of the
    previous one, the first from the loss); none starts after `ctrl_loss_timeout`
    has passed. Calls may wait for the path until `fast_io_fail_timeout` after the
    loss, and never past the moment we give up.

    Attributes:
        lost_at: when the path was lost.
        reconnect_delay: seconds between attempts (more than 0).
        ctrl_loss_timeout: seconds after the loss to give up; None for never.
        fast_io_fail_timeout: seconds after the loss that calls may wait; None to
            wait until we give up, 0 to fail at once.
        last_attempt: when the latest attempt started, None before the first.
        attempts: attempts started so far.
    """

    lost_at: float
    reconnect_delay: float
    ctrl_loss_timeout: float | None
    fast_io_fail_timeout: float | None
    last_attempt: float | None = None
    attempts: int = 0

    @property
    def give_up_at(self) -> float | None:
        """When we stop trying (None: never)."""
        if self.ctrl_loss_timeout is None:
            return None
        return self.lost_at + self.ctrl_loss_timeout

    def next_attempt_at(self) -> float | None:
        """When the next attempt is due, or None when there is none left to make."""
        start = self.lost_at if self.last_attempt is None else self.last_attempt
        due = start + self.reconnect_delay
        give_up = self.give_up_at
        if give_up is not None and due > give_up:
            return None
        return due

    def delay_before_next_attempt(self, now: float) -> float | None:
        """Seconds to wait from `now` before the next attempt (0 if overdue), or None
        when it is time to give up."""
        due = self.next_attempt_at()
        if due is None:
            return None
        return max(0.0, due - now)

    def attempt_started(self, now: float) -> None:
        """Record that an attempt starts at `now`."""
        self.last_attempt = now
        self.attempts += 1

    def attempt_deadline(self, now: float, connect_timeout: float) -> float:
        """When an attempt starting at `now` must be over: `connect_timeout` later, and
        not after we give up."""
        deadline = now + connect_timeout
        give_up = self.give_up_at
        return deadline if give_up is None else min(deadline, max(now, give_up))

    def io_wait_until(self) -> float | None:
        """Until when a call may wait for the path (None: until it is back)."""
        limits = [self.give_up_at]
        if self.fast_io_fail_timeout is not None:
            limits.append(self.lost_at + self.fast_io_fail_timeout)
        known = [limit for limit in limits if limit is not None]
        return min(known) if known else None

    def io_fails_at_once(self, now: float) -> bool:
        """True when a call made at `now` must fail rather than wait."""
        until = self.io_wait_until()
        return until is not None and now >= until
