"""Why a queue connection of our initiator ended: the causes behind `PathLost`.

Callers never catch these: an I/O that was in flight when its connection ended fails
with `mayastor.errors.PathLost` (a failed connect with `Unavailable`), and the
exception of this module that says what happened is its ``__cause__``. They say whose
fault it was, so an operator reading a log can tell a target that hung up from one
that broke the protocol from a network that went away.
"""

from __future__ import annotations

from mayastor.errors import MayastorError
from mayastor.nvmf.pdu import FatalErrorStatus


class TransportError(MayastorError):
    """A queue connection ended or cannot go on; every command on it is lost."""


class ConnectionClosed(TransportError):
    """The TCP connection was closed or reset (the target went away, or the network)."""


class TargetTerminated(TransportError):
    """The target sent a C2HTermReq: it says that we broke the protocol.

    Attributes:
        fes: the fatal error status the target gave (`FatalErrorStatus` when known).
        fei: the fatal error information (a byte offset for header field errors).
        error_data: the header of our PDU that the target refused, as it sent it back.
    """

    def __init__(self, fes: int, fei: int, error_data: bytes) -> None:
        try:
            what = FatalErrorStatus(fes).name
        except ValueError:
            what = f"unknown FES {fes:#x}"
        super().__init__(f"the target terminated the connection: {what} (FEI {fei})")
        self.fes = fes
        self.fei = fei
        self.error_data = error_data


class TargetProtocolError(TransportError):
    """The target broke the NVMe/TCP protocol; we sent it an H2CTermReq and hung up.

    Attributes:
        fes: the fatal error status we sent.
        fei: the fatal error information we sent.
    """

    def __init__(self, message: str, fes: int, fei: int = 0) -> None:
        super().__init__(message)
        self.fes = fes
        self.fei = fei


class KeepAliveFailed(TransportError):
    """The controller did not answer a Keep Alive in time (or refused it)."""
