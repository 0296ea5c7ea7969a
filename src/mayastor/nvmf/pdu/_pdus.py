"""The PDUs of the NVMe/TCP transport (TP 8000, NVMe-oF 1.1 section 7.4) and their layouts.

One frozen dataclass per PDU type, with the `struct.Struct` of its header beside it.
Every header starts with the 8-byte common header (type, flags, hlen, pdo, plen); all
integers are little-endian. The 64-byte SQE and the 16-byte CQE travel as bytes: this
module knows nothing of the NVMe command set.

Payload fields (`data`, `sqe`, `cqe`, `error_data`) accept any bytes-like object when
a PDU is built for sending; PDUs that come out of the reader hold read-only
memoryviews over immutable received bytes, so they stay valid for as long as they
are referenced.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import ClassVar

Buffer = bytes | bytearray | memoryview
"""A bytes-like payload, sent or received without copying."""


class PduType(enum.IntEnum):
    """The PDU-type byte of the common header."""

    IC_REQ = 0x00  # host -> controller, first PDU of a connection
    IC_RESP = 0x01  # controller -> host, answer to IC_REQ
    H2C_TERM_REQ = 0x02  # host terminates the connection
    C2H_TERM_REQ = 0x03  # controller terminates the connection
    CAPSULE_CMD = 0x04  # a command (64-byte SQE), maybe with in-capsule data
    CAPSULE_RESP = 0x05  # a completion (16-byte CQE)
    H2C_DATA = 0x06  # write data, sent in answer to an R2T
    C2H_DATA = 0x07  # read data
    R2T = 0x09  # the controller is ready for a range of write data


class PduFlags(enum.IntFlag):
    """The flags byte of the common header."""

    HDGSTF = 0x01  # a header digest follows the header
    DDGSTF = 0x02  # a data digest follows the data
    LAST_PDU = 0x04  # H2CData/C2HData: last data PDU of the command
    SUCCESS = 0x08  # C2HData: command succeeded, no CapsuleResp follows (needs LAST_PDU)


class Role(enum.Enum):
    """Which end of the connection a reader or writer serves."""

    HOST = "host"  # the initiator: sends ICReq, CapsuleCmd, H2CData, H2CTermReq
    CONTROLLER = "controller"  # the target: sends ICResp, CapsuleResp, C2HData, R2T, C2HTermReq


PFV_1_0 = 0
"""The only PDU format version (ICReq/ICResp PFV)."""
COMMON_HEADER_LEN = 8
DIGEST_LEN = 4
SQE_LEN = 64
CQE_LEN = 16
MAX_PDA = 31
"""HPDA/CPDA are 0-based counts of dwords: alignment is (PDA + 1) * 4 bytes, at most 128."""
MIN_MAXH2CDATA = 4096
"""An ICResp must allow at least this many bytes per H2CData PDU."""
MAX_TERM_ERROR_DATA = 128
"""A termination PDU carries at most this many bytes of the offending header."""

DIGEST = struct.Struct("<I")
"""A header or data digest: CRC32C, little-endian."""
COMMON_HEADER = struct.Struct("<BBBBI")
"""type, flags, hlen, pdo, plen."""
IC_HEADER = struct.Struct("<BBBBIHBBI112x")
"""ICReq/ICResp: common header, pfv, hpda|cpda, digest bits, maxr2t|maxh2cdata; 128 bytes."""
TERM_HEADER = struct.Struct("<BBBBIHI10x")
"""H2CTermReq/C2HTermReq: common header, fes, fei (at byte 10); 24 bytes."""
CAPSULE_CMD_HEADER = struct.Struct("<BBBBI64s")
"""CapsuleCmd: common header, SQE; 72 bytes."""
CAPSULE_RESP_HEADER = struct.Struct("<BBBBI16s")
"""CapsuleResp: common header, CQE; 24 bytes."""
H2C_DATA_HEADER = struct.Struct("<BBBBIHHII4x")
"""H2CData: common header, cccid, ttag, datao, datal; 24 bytes."""
C2H_DATA_HEADER = struct.Struct("<BBBBIH2xII4x")
"""C2HData: common header, cccid, (reserved), datao, datal; 24 bytes."""
R2T_HEADER = struct.Struct("<BBBBIHHII4x")
"""R2T: common header, cccid, ttag, r2to, r2tl; 24 bytes."""

HDGST_ENABLE = 0x01
"""ICReq/ICResp digest byte: header digests on."""
DDGST_ENABLE = 0x02
"""ICReq/ICResp digest byte: data digests on."""


@dataclass(frozen=True, slots=True)
class ICReq:
    """Initialize Connection Request: the host's first PDU.

    Attributes:
        pfv: PDU format version, 0.
        hpda: host PDU data alignment asked of the controller for C2H data, in dwords,
            0-based (0..31).
        hdgst_enable: the host asks for header digests.
        ddgst_enable: the host asks for data digests.
        maxr2t: most R2Ts the host accepts outstanding per command, 0-based.
    """

    pfv: int = PFV_1_0
    hpda: int = 0
    hdgst_enable: bool = False
    ddgst_enable: bool = False
    maxr2t: int = 0

    type: ClassVar[PduType] = PduType.IC_REQ
    hlen: ClassVar[int] = IC_HEADER.size


@dataclass(frozen=True, slots=True)
class ICResp:
    """Initialize Connection Response: the controller's answer to ICReq.

    Attributes:
        pfv: PDU format version, 0.
        cpda: controller PDU data alignment asked of the host for H2C data, in
            dwords, 0-based (0..31).
        hdgst_enable: header digests are on for this connection.
        ddgst_enable: data digests are on for this connection.
        maxh2cdata: most data bytes the host may put in one H2CData PDU (a multiple
            of 4, at least 4096).
    """

    pfv: int = PFV_1_0
    cpda: int = 0
    hdgst_enable: bool = False
    ddgst_enable: bool = False
    maxh2cdata: int = 0x20000

    type: ClassVar[PduType] = PduType.IC_RESP
    hlen: ClassVar[int] = IC_HEADER.size


@dataclass(frozen=True, slots=True)
class H2CTermReq:
    """The host terminates the connection after a fatal transport error.

    Attributes:
        fes: fatal error status (`FatalErrorStatus`, kept as an int so that an
            unknown value from a peer can still be reported).
        fei: fatal error information (a byte offset for header field errors).
        error_data: the header of the PDU that caused the error, at most 128 bytes.
    """

    fes: int
    fei: int = 0
    error_data: Buffer = b""

    type: ClassVar[PduType] = PduType.H2C_TERM_REQ
    hlen: ClassVar[int] = TERM_HEADER.size


@dataclass(frozen=True, slots=True)
class C2HTermReq:
    """The controller terminates the connection after a fatal transport error.

    Attributes:
        fes: fatal error status (see `H2CTermReq`).
        fei: fatal error information.
        error_data: the header of the PDU that caused the error, at most 128 bytes.
    """

    fes: int
    fei: int = 0
    error_data: Buffer = b""

    type: ClassVar[PduType] = PduType.C2H_TERM_REQ
    hlen: ClassVar[int] = TERM_HEADER.size


@dataclass(frozen=True, slots=True)
class CapsuleCmd:
    """A command capsule: the 64-byte SQE and any in-capsule data.

    Attributes:
        sqe: the submission queue entry, exactly 64 bytes.
        data: in-capsule data (empty when the data moves by R2T/H2CData or C2HData).
    """

    sqe: Buffer
    data: Buffer = b""

    type: ClassVar[PduType] = PduType.CAPSULE_CMD
    hlen: ClassVar[int] = CAPSULE_CMD_HEADER.size


@dataclass(frozen=True, slots=True)
class CapsuleResp:
    """A response capsule: the 16-byte CQE.

    Attributes:
        cqe: the completion queue entry, exactly 16 bytes.
    """

    cqe: Buffer

    type: ClassVar[PduType] = PduType.CAPSULE_RESP
    hlen: ClassVar[int] = CAPSULE_RESP_HEADER.size


@dataclass(frozen=True, slots=True)
class H2CData:
    """Write data from host to controller, in answer to an R2T.

    Attributes:
        cccid: command capsule CID of the command the data belongs to.
        ttag: transfer tag from the R2T.
        offset: where the data goes, from the start of the command's data (DATAO).
        data: the data; its length is DATAL.
        last: LAST_PDU: the last H2CData PDU for this R2T.
    """

    cccid: int
    ttag: int
    offset: int
    data: Buffer
    last: bool = True

    type: ClassVar[PduType] = PduType.H2C_DATA
    hlen: ClassVar[int] = H2C_DATA_HEADER.size


@dataclass(frozen=True, slots=True)
class C2HData:
    """Read data from controller to host.

    Attributes:
        cccid: command capsule CID of the command the data belongs to.
        offset: where the data goes, from the start of the command's data (DATAO).
        data: the data; its length is DATAL.
        last: LAST_PDU: the last C2HData PDU of the command.
        success: SUCCESS: the command completed successfully and no CapsuleResp
            follows; only with `last`.
    """

    cccid: int
    offset: int
    data: Buffer
    last: bool = True
    success: bool = False

    type: ClassVar[PduType] = PduType.C2H_DATA
    hlen: ClassVar[int] = C2H_DATA_HEADER.size


@dataclass(frozen=True, slots=True)
class R2T:
    """Ready to Transfer: the controller asks for a range of a command's write data.

    Attributes:
        cccid: command capsule CID of the write.
        ttag: transfer tag the host echoes in its H2CData PDUs.
        offset: start of the requested range in the command's data (R2TO).
        length: bytes requested (R2TL), more than 0.
    """

    cccid: int
    ttag: int
    offset: int
    length: int

    type: ClassVar[PduType] = PduType.R2T
    hlen: ClassVar[int] = R2T_HEADER.size


Pdu = ICReq | ICResp | H2CTermReq | C2HTermReq | CapsuleCmd | CapsuleResp | H2CData | C2HData | R2T
"""Any NVMe/TCP PDU."""

SENDS: dict[Role, frozenset[PduType]] = {
    Role.HOST: frozenset(
        {PduType.IC_REQ, PduType.H2C_TERM_REQ, PduType.CAPSULE_CMD, PduType.H2C_DATA}
    ),
    Role.CONTROLLER: frozenset(
        {
            PduType.IC_RESP,
            PduType.C2H_TERM_REQ,
            PduType.CAPSULE_RESP,
            PduType.C2H_DATA,
            PduType.R2T,
        }
    ),
}
"""The PDU types each role sends; it receives the other role's."""


def alignment(pda: int) -> int:
    """The data alignment in bytes asked for by an HPDA or CPDA value (0-based dwords)."""
    return (pda + 1) * 4
