"""What a CSI call can be refused with, and the one table that gives each its gRPC code.

The CSI specification says, call by call, which gRPC status code each failure must
carry (missing argument: INVALID_ARGUMENT; unknown volume: NOT_FOUND; a call already
in flight for the volume: ABORTED; ...). The controller and the node plugin raise one
of the classes below, named after the code they stand for, and `grpc_status_of` maps
it once, at the edge (`mayastor.csi.server`). Errors keep the volume, the step that
failed and the device when there is one, so the log line says all three.
"""

from __future__ import annotations

import grpc


class CsiError(Exception):
    """A call refused, for a reason the CO can act on.

    Args:
        message: what happened, for an operator.
        volume: the volume the call was about, when known.
        step: the step that failed (``nvme connect``, ``mkfs.xfs``, ``mount``, ...).
        device: the block device involved (``/dev/nvme1n1``), when there is one.
    """

    def __init__(
        self,
        message: str,
        *,
        volume: str | None = None,
        step: str | None = None,
        device: str | None = None,
    ) -> None:
        self.message = message
        self.volume = volume
        self.step = step
        self.device = device
        super().__init__(self.describe())

    def describe(self) -> str:
        """``volume V: step S on DEVICE failed: MESSAGE``, leaving out what is unknown."""
        where = []
        if self.volume:
            where.append(f"volume {self.volume}")
        if self.step:
            on = f" on {self.device}" if self.device else ""
            where.append(f"{self.step}{on} failed")
        elif self.device:
            where.append(f"device {self.device}")
        return ": ".join([*where, self.message])


class InvalidArgument(CsiError):
    """A required field is missing, or a field (a parameter, a capability) is not valid."""


class NotFound(CsiError):
    """The volume (or node) named in the call does not exist."""


class AlreadyExists(CsiError):
    """The volume exists (or is staged, or published there) with other settings."""


class FailedPrecondition(CsiError):
    """The call cannot be done in the present state: published elsewhere, not staged, in use."""


class ResourceExhausted(CsiError):
    """No room: not enough pools or nodes for the volume where it may go."""


class OutOfRange(CsiError):
    """The capacity range cannot be met."""


class Aborted(CsiError):
    """Another call for the same volume is in flight, or a list token is stale."""


class Unavailable(CsiError):
    """Something the call needs cannot be reached now (the REST API, a target)."""


class Unimplemented(CsiError):
    """The call is not offered (snapshots)."""


class Internal(CsiError):
    """A step failed in a way none of the others describes (a tool's failure)."""


GRPC_STATUS: dict[type[CsiError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    OutOfRange: grpc.StatusCode.OUT_OF_RANGE,
    Aborted: grpc.StatusCode.ABORTED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    Unimplemented: grpc.StatusCode.UNIMPLEMENTED,
    Internal: grpc.StatusCode.INTERNAL,
    CsiError: grpc.StatusCode.INTERNAL,
}


def grpc_status_of(exc: CsiError) -> grpc.StatusCode:
    """The status code for `exc`: the entry of its nearest class in `GRPC_STATUS`."""
    for klass in type(exc).__mro__:
        code = GRPC_STATUS.get(klass)
        if code is not None:
            return code
    return grpc.StatusCode.INTERNAL
