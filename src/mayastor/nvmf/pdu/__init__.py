"""The NVMe/TCP transport codec (TP 8000 / NVMe-oF 1.1 section 7.4), sans I/O.

Bytes in, PDU objects out, and back: `PduReader` (feed bytes, take whole PDUs) and
`PduWriter` (PDU fields in, a list of buffers for `transport.writelines` out), both
parameterised by `Role` so that the target (controller) and our initiator (host) use
the same code. Header and data digests (CRC32C) and PDU data alignment are negotiated
per connection and set on both with `configure`.

A peer that breaks the protocol raises `PduError`, which carries the FES, FEI and
offending header for the termination PDU. A data digest mismatch raises
`DataDigestError` with the PDU, for a transient transport error on that command.

This package imports nothing of ours, not even `mayastor.nvmf.spec`: SQEs and CQEs
travel through it as 64- and 16-byte buffers.
"""

from mayastor.nvmf.pdu._errors import (
    R2T_LIMIT_EXCEEDED,
    DataDigestError,
    FatalErrorStatus,
    PduError,
    PduUsageError,
)
from mayastor.nvmf.pdu._pdus import (
    COMMON_HEADER_LEN,
    CQE_LEN,
    DIGEST_LEN,
    MAX_PDA,
    MAX_TERM_ERROR_DATA,
    MIN_MAXH2CDATA,
    PFV_1_0,
    R2T,
    SQE_LEN,
    Buffer,
    C2HData,
    C2HTermReq,
    CapsuleCmd,
    CapsuleResp,
    H2CData,
    H2CTermReq,
    ICReq,
    ICResp,
    Pdu,
    PduFlags,
    PduType,
    Role,
    alignment,
)
from mayastor.nvmf.pdu._reader import DEFAULT_MAX_DATA_LENGTH, PduReader
from mayastor.nvmf.pdu._writer import Parts, PduWriter

__all__ = [
    "COMMON_HEADER_LEN",
    "CQE_LEN",
    "DEFAULT_MAX_DATA_LENGTH",
    "DIGEST_LEN",
    "MAX_PDA",
    "MAX_TERM_ERROR_DATA",
    "MIN_MAXH2CDATA",
    "PFV_1_0",
    "R2T",
    "R2T_LIMIT_EXCEEDED",
    "SQE_LEN",
    "Buffer",
    "C2HData",
    "C2HTermReq",
    "CapsuleCmd",
    "CapsuleResp",
    "DataDigestError",
    "FatalErrorStatus",
    "H2CData",
    "H2CTermReq",
    "ICReq",
    "ICResp",
    "Parts",
    "Pdu",
    "PduError",
    "PduFlags",
    "PduReader",
    "PduType",
    "PduUsageError",
    "PduWriter",
    "Role",
    "alignment",
]
