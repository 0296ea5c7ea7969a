"""The errors of the NVMe/TCP codec.

Three kinds, by whose fault it is:

* `PduError`: the peer broke the protocol. Fatal for the connection: the caller sends
  a termination PDU built from `fes`, `fei` and `header`, then closes.
* `DataDigestError`: a PDU arrived whole and well formed but its data digest does not
  match. Not fatal at the transport level (TP 8000): the command it belongs to
  completes with a transient transport error and the connection goes on.
* `PduUsageError`: we asked the writer for something the protocol cannot carry (an
  SQE that is not 64 bytes, a field out of range, a PDU our role never sends).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mayastor.nvmf.pdu._pdus import C2HData, CapsuleCmd, H2CData

MAX_ERROR_DATA = 128
"""At most this many bytes of the offending PDU header go into a termination PDU."""


class FatalErrorStatus(enum.IntEnum):
    """FES of a termination PDU (NVMe/TCP TP 8000, H2CTermReq/C2HTermReq)."""

    INVALID_HEADER_FIELD = 0x01  # FEI: byte offset of the field in the PDU header
    PDU_SEQUENCE_ERROR = 0x02  # a PDU that is not allowed at this point
    HEADER_DIGEST_ERROR = 0x03  # the header digest does not match
    DATA_OUT_OF_RANGE = 0x04  # data outside the command's buffer or the R2T's window
    DATA_LIMIT_EXCEEDED = 0x05  # more data than allowed (also: R2T limit exceeded)
    UNSUPPORTED_PARAMETER = 0x06  # FEI: byte offset of a valid but unsupported field


R2T_LIMIT_EXCEEDED = FatalErrorStatus.DATA_LIMIT_EXCEEDED
"""The spec gives FES 05h both names; this one reads better where R2Ts are counted."""


class PduError(Exception):
    """The peer broke the NVMe/TCP protocol; the connection must be terminated.

    Attributes:
        fes: the fatal error status for the termination PDU.
        fei: the fatal error information: for `INVALID_HEADER_FIELD` and
            `UNSUPPORTED_PARAMETER` the byte offset of the offending field from the
            start of the PDU, otherwise 0.
        header: up to 128 bytes of the offending PDU header, as received, for the
            termination PDU's error data (empty when the error was not caused by one
            PDU, e.g. raised by the caller's own sequencing).
    """

    def __init__(
        self, fes: FatalErrorStatus, message: str, *, fei: int = 0, header: bytes = b""
    ) -> None:
        super().__init__(message)
        self.fes = fes
        self.fei = fei
        self.header = bytes(header[:MAX_ERROR_DATA])

    def __repr__(self) -> str:
        return f"PduError({self.fes.name}, fei={self.fei}, {self.args[0]!r})"


class DataDigestError(Exception):
    """A PDU's data digest does not match its data: the data cannot be trusted.

    The PDU was consumed and the reader goes on with the next one; the command the PDU
    belongs to should complete with `TRANSIENT_TRANSPORT_ERROR`.

    Attributes:
        pdu: the decoded PDU (its data is the corrupted payload).
        expected: the CRC32C computed over the received data.
        received: the digest that came with it.
    """

    def __init__(self, pdu: CapsuleCmd | H2CData | C2HData, expected: int, received: int) -> None:
        super().__init__(
            f"data digest mismatch in {type(pdu).__name__}: "
            f"computed {expected:#010x}, received {received:#010x}"
        )
        self.pdu = pdu
        self.expected = expected
        self.received = received


class PduUsageError(ValueError):
    """The caller asked the codec for something the NVMe/TCP protocol cannot carry."""
