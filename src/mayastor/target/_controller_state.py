"""The life of a controller, as a table, and its keep-alive timer with time as an argument.

The host drives a controller through CC (Property Set): CC.EN 0 -> 1 makes it ready
(CSTS.RDY), CC.EN 1 -> 0 resets it (its I/O queues go), CC.SHN asks for a shutdown,
which completes (CSTS.SHST) once the device's volatile cache is flushed; a flush that
fails reports a controller fatal status (CSTS.CFS) instead, never a clean shutdown. A controller
is freed when its Keep Alive timeout expires, when its admin queue's connection is
lost, or when its subsystem is removed.

`CSTS_BY_STATE` gives the status register each state shows. This module knows nothing
of sockets, devices or the event loop: `KeepAlive` takes the time as an argument.
"""

from __future__ import annotations

import enum

from mayastor.nvmf.spec import ShutdownStatus
from mayastor.target._table import StateTable


class ControllerState(enum.Enum):
    """Where a controller is (the states CSTS reports)."""

    DISABLED = "disabled"  # CC.EN 0, CSTS.RDY 0: only Fabrics commands are served
    READY = "ready"  # CC.EN 1, CSTS.RDY 1: every command is served
    FAILED = "failed"  # a configuration we cannot run, or a failed shutdown: CSTS.CFS 1
    SHUTTING_DOWN = "shutting down"  # CC.SHN set, the flush is running: SHST 01b
    SHUT_DOWN = "shut down"  # the flush is done: SHST 10b
    FREED = "freed"  # gone: its queues are closed and its ID is free again


class ControllerEvent(enum.Enum):
    """What can happen to a controller."""

    ENABLE = "enable"  # CC written with EN 1 and a configuration we run
    ENABLE_INVALID = "enable invalid"  # CC written with EN 1 and, e.g., IOSQES not 6
    DISABLE = "disable"  # CC written with EN 0 (and no SHN)
    SHUTDOWN = "shutdown"  # CC written with SHN normal or abrupt
    SHUTDOWN_DONE = "shutdown done"  # the shutdown flush finished
    SHUTDOWN_FAILED = "shutdown failed"  # the shutdown flush failed: not a clean shutdown
    KEEP_ALIVE_EXPIRED = "keep alive expired"  # KATO passed without a sign of the host
    ADMIN_QUEUE_LOST = "admin queue lost"  # the admin queue's connection closed
    DELETE = "delete"  # the subsystem is being removed, or the target closed


class ControllerAction(enum.Enum):
    """What the owner of the controller does when it takes a transition."""

    NONE = "none"
    START = "start"  # becomes ready
    RESET = "reset"  # close the I/O queues, drop held Async Event Requests
    FLUSH = "flush"  # flush the device, then report SHUTDOWN_DONE
    FREE = "free"  # close every queue and forget the controller


_S, _E, _A = ControllerState, ControllerEvent, ControllerAction
_LIVE = (_S.DISABLED, _S.READY, _S.FAILED, _S.SHUTTING_DOWN, _S.SHUT_DOWN)
_ENDINGS = (_E.KEEP_ALIVE_EXPIRED, _E.ADMIN_QUEUE_LOST, _E.DELETE)

CONTROLLER_TRANSITIONS: dict[
    tuple[ControllerState, ControllerEvent], tuple[ControllerAction, ControllerState]
] = {
    (_S.DISABLED, _E.ENABLE): (_A.START, _S.READY),
    (_S.DISABLED, _E.ENABLE_INVALID): (_A.NONE, _S.FAILED),
    (_S.DISABLED, _E.DISABLE): (_A.NONE, _S.DISABLED),
    (_S.DISABLED, _E.SHUTDOWN): (_A.FLUSH, _S.SHUTTING_DOWN),
    (_S.DISABLED, _E.SHUTDOWN_DONE): (_A.NONE, _S.DISABLED),  # a reset overtook the flush
    (_S.DISABLED, _E.SHUTDOWN_FAILED): (_A.NONE, _S.DISABLED),
    # A reset and a new enable overtook the flush: its news is stale.
    **{
        (state, event): (_A.NONE, state)
        for state in (_S.READY, _S.FAILED)
        for event in (_E.SHUTDOWN_DONE, _E.SHUTDOWN_FAILED)
    },
    (_S.READY, _E.ENABLE): (_A.NONE, _S.READY),
    (_S.READY, _E.DISABLE): (_A.RESET, _S.DISABLED),
    (_S.READY, _E.SHUTDOWN): (_A.FLUSH, _S.SHUTTING_DOWN),
    (_S.FAILED, _E.ENABLE): (_A.NONE, _S.FAILED),
    (_S.FAILED, _E.ENABLE_INVALID): (_A.NONE, _S.FAILED),
    (_S.FAILED, _E.DISABLE): (_A.RESET, _S.DISABLED),
    (_S.FAILED, _E.SHUTDOWN): (_A.FLUSH, _S.SHUTTING_DOWN),
    (_S.SHUTTING_DOWN, _E.SHUTDOWN): (_A.NONE, _S.SHUTTING_DOWN),
    (_S.SHUTTING_DOWN, _E.SHUTDOWN_DONE): (_A.NONE, _S.SHUT_DOWN),
    (_S.SHUTTING_DOWN, _E.SHUTDOWN_FAILED): (_A.NONE, _S.FAILED),
    (_S.SHUTTING_DOWN, _E.DISABLE): (_A.RESET, _S.DISABLED),
    (_S.SHUT_DOWN, _E.SHUTDOWN): (_A.NONE, _S.SHUT_DOWN),
    (_S.SHUT_DOWN, _E.DISABLE): (_A.RESET, _S.DISABLED),
    **{(state, event): (_A.FREE, _S.FREED) for state in _LIVE for event in _ENDINGS},
    # A freed controller hears late news (a queue closing, a flush ending) and stays freed.
    **{
        (_S.FREED, event): (_A.NONE, _S.FREED)
        for event in (*_ENDINGS, _E.SHUTDOWN_DONE, _E.SHUTDOWN_FAILED)
    },
}
"""(state, event) -> (action, next state); a pair not here is a command sequence error."""

CONTROLLER_TABLE: StateTable[ControllerState, ControllerEvent, ControllerAction] = StateTable(
    "controller", CONTROLLER_TRANSITIONS
)

_RDY = 1 << 0
_CFS = 1 << 1
_SHST_SHIFT = 2

CSTS_BY_STATE: dict[ControllerState, int] = {
    _S.DISABLED: 0,
    _S.READY: _RDY,
    _S.FAILED: _CFS,
    _S.SHUTTING_DOWN: ShutdownStatus.OCCURRING << _SHST_SHIFT,
    _S.SHUT_DOWN: ShutdownStatus.COMPLETE << _SHST_SHIFT,
    _S.FREED: 0,
}
"""The CSTS value each state reports."""


class KeepAlive:
    """The Keep Alive timer of one controller (NVMe Base 1.4 section 7.12).

    The timer restarts on every Keep Alive command (`touch`) and, more leniently than
    the spec asks, on any other traffic from the host (`traffic` set by the I/O shell,
    folded in when the timer is checked), so that a busy host is never cut off.

    Args:
        timeout_ms: KATO in milliseconds; 0 disables the timer.
        now: the time the controller was created, in seconds.
    """

    __slots__ = ("last", "timeout", "traffic")

    def __init__(self, timeout_ms: int, now: float) -> None:
        self.timeout = timeout_ms / 1000
        self.last = now
        self.traffic = False

    @property
    def timeout_ms(self) -> int:
        return round(self.timeout * 1000)

    def set_timeout(self, timeout_ms: int, now: float) -> None:
        """A new KATO (Set Features); the timer restarts."""
        self.timeout = timeout_ms / 1000
        self.touch(now)

    def touch(self, now: float) -> None:
        """The host showed it is alive at `now` (a Keep Alive command)."""
        self.last = now
        self.traffic = False

    def deadline(self) -> float | None:
        """When the timer runs out without more news, or None when it is disabled."""
        return self.last + self.timeout if self.timeout else None

    def expired(self, now: float) -> bool:
        """True when KATO has passed since the last sign of the host.

        Traffic seen since the last check counts as a sign at `now`.
        """
        if not self.timeout:
            return False
        if self.traffic:
            self.touch(now)
            return False
        return now >= self.last + self.timeout
