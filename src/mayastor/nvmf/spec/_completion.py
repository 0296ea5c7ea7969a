"""The 16-byte completion queue entry (NVMe Base 1.4 Figure 121).

DW0 and DW1 are command specific (e.g. the Connect CNTLID, a Property Get value, an
async event), DW2 holds SQHD and SQID, DW3 the CID and, in its upper half, the phase
tag (bit 16) and the status field (bits 31:17, `NvmeStatus.field`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from mayastor.nvmf.spec._errors import SpecError
from mayastor.nvmf.spec._layout import Buffer
from mayastor.nvmf.spec.status import SUCCESS, NvmeStatus

CQE_SIZE = 16
_CQE = struct.Struct("<IIHHHH")


def encode_completion(
    cid: int,
    status_field: int = 0,
    *,
    sqhd: int = 0,
    dw0: int = 0,
    dw1: int = 0,
    sqid: int = 0,
    phase: bool = False,
) -> bytes:
    """A CQE straight from its fields, for the per-I/O path.

    Args:
        cid: the completed command's identifier.
        status_field: `NvmeStatus.field` (0 for success).
        sqhd: submission queue head pointer.
        dw0, dw1: command-specific results.
        sqid: submission queue identifier.
        phase: the phase tag.

    Raises:
        SpecError: a field does not fit.
    """
    try:
        return _CQE.pack(dw0, dw1, sqhd, sqid, cid, status_field << 1 | phase)
    except struct.error as exc:
        raise SpecError(f"completion field out of range: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Completion:
    """A completion queue entry.

    Attributes:
        cid: command identifier of the completed command.
        status: the status (without the phase tag).
        dw0, dw1: command-specific results.
        sqhd: submission queue head pointer.
        sqid: submission queue identifier.
        phase: the phase tag (not used over Fabrics).
    """

    cid: int
    status: NvmeStatus = SUCCESS
    dw0: int = 0
    dw1: int = 0
    sqhd: int = 0
    sqid: int = 0
    phase: bool = False

    @property
    def result64(self) -> int:
        """DW0 and DW1 as one 64-bit value (a Property Get of an 8-byte property)."""
        return self.dw0 | self.dw1 << 32

    def encode(self) -> bytes:
        """The 16-byte CQE.

        Raises:
            SpecError: a field does not fit.
        """
        return encode_completion(
            self.cid,
            self.status.field,
            sqhd=self.sqhd,
            dw0=self.dw0,
            dw1=self.dw1,
            sqid=self.sqid,
            phase=self.phase,
        )

    @classmethod
    def decode(cls, raw: Buffer) -> Completion:
        """Read a 16-byte CQE.

        Raises:
            SpecError: not 16 bytes.
        """
        try:
            dw0, dw1, sqhd, sqid, cid, status = _CQE.unpack(raw)
        except struct.error as exc:
            raise SpecError(f"a CQE is {CQE_SIZE} bytes, got {memoryview(raw).nbytes}") from exc
        return cls(cid, NvmeStatus.from_field(status >> 1), dw0, dw1, sqhd, sqid, bool(status & 1))
