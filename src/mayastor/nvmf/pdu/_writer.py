"""The NVMe/TCP PDU writer: PDU fields in, wire bytes out, without copying payloads.

Each `encode_*` method returns a list of bytes-like parts for
`transport.writelines(...)`: the header (with its header digest and any padding up
to the PDO the peer asked for), then the caller's payload object itself (not
copied), then the data digest. The writer knows the negotiated digests and the
peer's data alignment; it refuses, with `PduUsageError`, anything the protocol cannot
carry, so a bug on our side never reaches the wire as a malformed PDU.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from crc32c import crc32c

from mayastor.nvmf.pdu._errors import FatalErrorStatus, PduUsageError
from mayastor.nvmf.pdu._pdus import (
    C2H_DATA_HEADER,
    CAPSULE_CMD_HEADER,
    CAPSULE_RESP_HEADER,
    CQE_LEN,
    DDGST_ENABLE,
    DIGEST,
    DIGEST_LEN,
    H2C_DATA_HEADER,
    HDGST_ENABLE,
    IC_HEADER,
    MAX_PDA,
    MAX_TERM_ERROR_DATA,
    MIN_MAXH2CDATA,
    PFV_1_0,
    R2T,
    R2T_HEADER,
    SENDS,
    SQE_LEN,
    TERM_HEADER,
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

Parts = list[Buffer]
"""What an encoder returns: header, then payload and data digest when there is data."""

_HDGSTF = int(PduFlags.HDGSTF)
_DDGSTF = int(PduFlags.DDGSTF)
_LAST = int(PduFlags.LAST_PDU)
_SUCCESS = int(PduFlags.SUCCESS)
_DATA_HLEN = H2C_DATA_HEADER.size
# Type bytes as plain ints: hashing and packing an IntEnum member is slow on hot paths.
_T_IC_REQ = int(PduType.IC_REQ)
_T_IC_RESP = int(PduType.IC_RESP)
_T_CAPSULE_CMD = int(PduType.CAPSULE_CMD)
_T_CAPSULE_RESP = int(PduType.CAPSULE_RESP)
_T_H2C_DATA = int(PduType.H2C_DATA)
_T_C2H_DATA = int(PduType.C2H_DATA)
_T_R2T = int(PduType.R2T)


def _nbytes(data: Buffer) -> int:
    if type(data) is memoryview:
        if not data.contiguous:
            raise PduUsageError("a payload must be a contiguous buffer")
        return data.nbytes
    return len(data)


def _out_of_range(pdu: str, exc: struct.error) -> PduUsageError:
    """The error of a field that does not fit its PDU, caused by `exc` (set here: the
    compiled module cannot say ``raise ... from exc``, see `mayastor.errors.caused_by`)."""
    error = PduUsageError(f"{pdu} field out of range: {exc}")
    error.__cause__ = exc
    return error


class PduWriter:
    """Encodes the PDUs one end of a connection sends.

    Args:
        role: the end we are; a writer refuses PDU types its role never sends.
        header_digest, data_digest, pda: as for `configure`.
        max_h2c_data: the MAXH2CDATA the controller announced (host role); larger
            H2CData payloads are refused. None until known.
    """

    __slots__ = ("_ddgst", "_hdgst", "_pdo", "_role", "_sends", "max_h2c_data")

    def __init__(
        self,
        role: Role,
        *,
        header_digest: bool = False,
        data_digest: bool = False,
        pda: int = 0,
        max_h2c_data: int | None = None,
    ) -> None:
        self._role = role
        self._sends = frozenset(int(t) for t in SENDS[role])
        self.max_h2c_data = max_h2c_data
        self._hdgst = 0
        self._ddgst = 0
        self._pdo: dict[int, int] = {}
        self.configure(header_digest=header_digest, data_digest=data_digest, pda=pda)

    def configure(
        self, *, header_digest: bool = False, data_digest: bool = False, pda: int = 0
    ) -> None:
        """Set what the IC exchange negotiated for this connection.

        Args:
            header_digest: add a header digest to every capsule, data and R2T PDU.
            data_digest: add a data digest after every non-empty payload.
            pda: the data alignment the peer asked of us (its HPDA when we are the
                controller, its CPDA when we are the host), 0-based dwords.

        Raises:
            PduUsageError: `pda` is outside 0..31.
        """
        if not 0 <= pda <= MAX_PDA:
            raise PduUsageError(f"PDU data alignment {pda} is outside 0..{MAX_PDA}")
        self._hdgst = DIGEST_LEN if header_digest else 0
        self._ddgst = DIGEST_LEN if data_digest else 0
        align = alignment(pda)
        self._pdo = {
            hlen: -(-(hlen + self._hdgst) // align) * align
            for hlen in (CAPSULE_CMD_HEADER.size, _DATA_HLEN)
        }

    @property
    def role(self) -> Role:
        return self._role

    def encode(self, pdu: Pdu) -> Parts:
        """Encode any PDU object (see the `encode_*` methods for each type's rules).

        Raises:
            PduUsageError: our role does not send this PDU, or a field is invalid.
        """
        return _ENCODERS[pdu.type](self, pdu)

    def _check_sends(self, ptype: int) -> None:
        if ptype not in self._sends:
            raise PduUsageError(f"a {self._role.value} does not send {PduType(ptype).name}")

    def _frame(
        self, layout: struct.Struct, ptype: int, flags: int, data: Buffer, *fields: Any
    ) -> Parts:
        """Pack a capsule/data/R2T header around `data`, with digests and padding."""
        dlen = _nbytes(data)
        hlen = layout.size
        hdgst = self._hdgst
        if hdgst:
            flags |= _HDGSTF
        if dlen:
            pdo = self._pdo[hlen]
            ddgst = self._ddgst
            if ddgst:
                flags |= _DDGSTF
            plen = pdo + dlen + ddgst
        else:
            pdo = 0
            plen = hlen + hdgst
        try:
            header = layout.pack(ptype, flags, hlen, pdo, plen, *fields)
        except struct.error as exc:
            raise _out_of_range(PduType(ptype).name, exc)
        if hdgst:
            header += DIGEST.pack(crc32c(header))
        if not dlen:
            return [header]
        pad = pdo - hlen - hdgst
        if pad:
            header += bytes(pad)
        if self._ddgst:
            return [header, data, DIGEST.pack(crc32c(data))]
        return [header, data]

    def encode_ic_req(
        self,
        *,
        hpda: int = 0,
        hdgst_enable: bool = False,
        ddgst_enable: bool = False,
        maxr2t: int = 0,
        pfv: int = PFV_1_0,
    ) -> Parts:
        """ICReq: the host's first PDU; never carries digests.

        Args:
            hpda: the alignment we ask of the controller's data PDUs (0..31).
            hdgst_enable, ddgst_enable: the digests we ask for.
            maxr2t: most outstanding R2Ts per command we accept, 0-based.
            pfv: PDU format version (0; other values only to test a peer).

        Raises:
            PduUsageError: not a host, or a field out of range.
        """
        self._check_sends(_T_IC_REQ)
        return [self._ic(_T_IC_REQ, pfv, hpda, hdgst_enable, ddgst_enable, maxr2t)]

    def encode_ic_resp(
        self,
        *,
        cpda: int = 0,
        hdgst_enable: bool = False,
        ddgst_enable: bool = False,
        maxh2cdata: int = 0x20000,
        pfv: int = PFV_1_0,
    ) -> Parts:
        """ICResp: the controller's answer to ICReq; never carries digests.

        Args:
            cpda: the alignment we ask of the host's data PDUs (0..31).
            hdgst_enable, ddgst_enable: the digests in force from now on.
            maxh2cdata: most data bytes per H2CData PDU (multiple of 4, >= 4096).
            pfv: PDU format version (0; other values only to test a peer).

        Raises:
            PduUsageError: not a controller, or a field out of range.
        """
        self._check_sends(_T_IC_RESP)
        if maxh2cdata < MIN_MAXH2CDATA or maxh2cdata % 4:
            raise PduUsageError(f"MAXH2CDATA {maxh2cdata} is not a multiple of 4 >= 4096")
        return [self._ic(_T_IC_RESP, pfv, cpda, hdgst_enable, ddgst_enable, maxh2cdata)]

    def _ic(self, ptype: int, pfv: int, pda: int, hdgst: bool, ddgst: bool, value: int) -> bytes:
        if not 0 <= pda <= MAX_PDA:
            raise PduUsageError(f"PDU data alignment {pda} is outside 0..{MAX_PDA}")
        dgst = (HDGST_ENABLE if hdgst else 0) | (DDGST_ENABLE if ddgst else 0)
        size = IC_HEADER.size
        try:
            return IC_HEADER.pack(ptype, 0, size, 0, size, pfv, pda, dgst, value)
        except struct.error as exc:
            raise _out_of_range(PduType(ptype).name, exc)

    def encode_term_req(
        self, fes: FatalErrorStatus | int, fei: int = 0, error_data: Buffer = b""
    ) -> Parts:
        """H2CTermReq (host) or C2HTermReq (controller); never carries digests.

        Args:
            fes: the fatal error status (usually `PduError.fes`).
            fei: the fatal error information (usually `PduError.fei`).
            error_data: the offending PDU header (usually `PduError.header`), at most
                128 bytes.

        Raises:
            PduUsageError: `error_data` is longer than 128 bytes or a field is out
                of range.
        """
        ptype = PduType.H2C_TERM_REQ if self._role is Role.HOST else PduType.C2H_TERM_REQ
        size = _nbytes(error_data)
        if size > MAX_TERM_ERROR_DATA:
            raise PduUsageError(f"termination error data of {size} bytes is over 128")
        hlen = TERM_HEADER.size
        try:
            header = TERM_HEADER.pack(ptype, 0, hlen, 0, hlen + size, fes, fei)
        except struct.error as exc:
            raise _out_of_range(ptype.name, exc)
        return [header, error_data] if size else [header]

    def encode_capsule_cmd(self, sqe: Buffer, data: Buffer = b"") -> Parts:
        """CapsuleCmd: a command and its in-capsule data (if any).

        Args:
            sqe: the 64-byte submission queue entry.
            data: in-capsule data; empty when data moves by R2T or C2HData.

        Raises:
            PduUsageError: not a host, or `sqe` is not 64 bytes.
        """
        self._check_sends(_T_CAPSULE_CMD)
        if _nbytes(sqe) != SQE_LEN:
            raise PduUsageError(f"an SQE is {SQE_LEN} bytes, not {_nbytes(sqe)}")
        return self._frame(CAPSULE_CMD_HEADER, _T_CAPSULE_CMD, 0, data, bytes(sqe))

    def encode_capsule_resp(self, cqe: Buffer) -> Parts:
        """CapsuleResp: a completion.

        Args:
            cqe: the 16-byte completion queue entry.

        Raises:
            PduUsageError: not a controller, or `cqe` is not 16 bytes.
        """
        self._check_sends(_T_CAPSULE_RESP)
        if _nbytes(cqe) != CQE_LEN:
            raise PduUsageError(f"a CQE is {CQE_LEN} bytes, not {_nbytes(cqe)}")
        return self._frame(CAPSULE_RESP_HEADER, _T_CAPSULE_RESP, 0, b"", bytes(cqe))

    def encode_h2c_data(
        self, cccid: int, ttag: int, offset: int, data: Buffer, *, last: bool = True
    ) -> Parts:
        """H2CData: write data in answer to an R2T.

        Args:
            cccid: CID of the write command.
            ttag: the R2T's transfer tag.
            offset: offset of `data` in the command's data.
            data: the data, 1 byte to `max_h2c_data` bytes.
            last: the last H2CData PDU for this R2T.

        Raises:
            PduUsageError: not a host, empty data, data over `max_h2c_data`, or a
                field out of range.
        """
        self._check_sends(_T_H2C_DATA)
        size = _nbytes(data)
        if not size:
            raise PduUsageError("an H2CData PDU carries at least one byte")
        if self.max_h2c_data is not None and size > self.max_h2c_data:
            raise PduUsageError(f"H2CData of {size} bytes is over MAXH2CDATA {self.max_h2c_data}")
        flags = _LAST if last else 0
        return self._frame(H2C_DATA_HEADER, _T_H2C_DATA, flags, data, cccid, ttag, offset, size)

    def encode_c2h_data(
        self,
        cccid: int,
        offset: int,
        data: Buffer,
        *,
        last: bool = True,
        success: bool = False,
    ) -> Parts:
        """C2HData: read data.

        Args:
            cccid: CID of the read command.
            offset: offset of `data` in the command's data.
            data: the data, at least one byte.
            last: the last C2HData PDU of the command.
            success: the command succeeded and no CapsuleResp will follow (only with
                `last`).

        Raises:
            PduUsageError: not a controller, empty data, `success` without `last`, or
                a field out of range.
        """
        self._check_sends(_T_C2H_DATA)
        size = _nbytes(data)
        if not size:
            raise PduUsageError("a C2HData PDU carries at least one byte")
        if success and not last:
            raise PduUsageError("C2HData SUCCESS needs LAST_PDU")
        flags = (_LAST if last else 0) | (_SUCCESS if success else 0)
        return self._frame(C2H_DATA_HEADER, _T_C2H_DATA, flags, data, cccid, offset, size)

    def encode_r2t(self, cccid: int, ttag: int, offset: int, length: int) -> Parts:
        """R2T: ask the host for `length` bytes of a write's data from `offset`.

        Raises:
            PduUsageError: not a controller, `length` is 0, or a field out of range.
        """
        self._check_sends(_T_R2T)
        if length <= 0:
            raise PduUsageError(f"an R2T asks for at least one byte, not {length}")
        return self._frame(R2T_HEADER, _T_R2T, 0, b"", cccid, ttag, offset, length)


def _encode_ic_req(w: PduWriter, p: Any) -> Parts:
    pdu: ICReq = p
    return w.encode_ic_req(
        hpda=pdu.hpda,
        hdgst_enable=pdu.hdgst_enable,
        ddgst_enable=pdu.ddgst_enable,
        maxr2t=pdu.maxr2t,
        pfv=pdu.pfv,
    )


def _encode_ic_resp(w: PduWriter, p: Any) -> Parts:
    pdu: ICResp = p
    return w.encode_ic_resp(
        cpda=pdu.cpda,
        hdgst_enable=pdu.hdgst_enable,
        ddgst_enable=pdu.ddgst_enable,
        maxh2cdata=pdu.maxh2cdata,
        pfv=pdu.pfv,
    )


def _encode_term(w: PduWriter, p: Any) -> Parts:
    pdu: H2CTermReq | C2HTermReq = p
    w._check_sends(pdu.type)
    return w.encode_term_req(pdu.fes, pdu.fei, pdu.error_data)


def _encode_capsule_cmd(w: PduWriter, p: Any) -> Parts:
    pdu: CapsuleCmd = p
    return w.encode_capsule_cmd(pdu.sqe, pdu.data)


def _encode_capsule_resp(w: PduWriter, p: Any) -> Parts:
    pdu: CapsuleResp = p
    return w.encode_capsule_resp(pdu.cqe)


def _encode_h2c_data(w: PduWriter, p: Any) -> Parts:
    pdu: H2CData = p
    return w.encode_h2c_data(pdu.cccid, pdu.ttag, pdu.offset, pdu.data, last=pdu.last)


def _encode_c2h_data(w: PduWriter, p: Any) -> Parts:
    pdu: C2HData = p
    return w.encode_c2h_data(pdu.cccid, pdu.offset, pdu.data, last=pdu.last, success=pdu.success)


def _encode_r2t(w: PduWriter, p: Any) -> Parts:
    pdu: R2T = p
    return w.encode_r2t(pdu.cccid, pdu.ttag, pdu.offset, pdu.length)


_ENCODERS: dict[PduType, Callable[[PduWriter, Any], Parts]] = {
    PduType.IC_REQ: _encode_ic_req,
    PduType.IC_RESP: _encode_ic_resp,
    PduType.H2C_TERM_REQ: _encode_term,
    PduType.C2H_TERM_REQ: _encode_term,
    PduType.CAPSULE_CMD: _encode_capsule_cmd,
    PduType.CAPSULE_RESP: _encode_capsule_resp,
    PduType.H2C_DATA: _encode_h2c_data,
    PduType.C2H_DATA: _encode_c2h_data,
    PduType.R2T: _encode_r2t,
}
"""PDU type -> encoder: the dispatch table of `PduWriter.encode`."""
