"""A sans-I/O NVMe/TCP PDU reader: bytes in, PDU objects out.

`feed` takes bytes as they arrive (split anywhere, or several PDUs at once);
`next_pdu` returns the next whole PDU or None when more bytes are needed. The reader
never touches a socket, so the target and the initiator drive it from
`asyncio.Protocol.data_received` and tests drive it with plain bytes.

Validation happens as early as the bytes allow: the 8-byte common header is checked
(type for our role, sequence, HLEN, flags against the negotiated digests, PDO, PLEN
against the data limit) before the rest of the PDU is waited for, so a bad length
cannot make us buffer more than `max_data_length` plus a header; the header digest
is checked as soon as the header is in, before the data is waited for.

Buffering: received chunks are kept as a queue of immutable `bytes`. A PDU that lies
in one chunk is decoded in place (its payload a memoryview of that chunk); one that
spans chunks is joined once. Every byte is copied at most once, so the cost is
amortised O(n) however the input is split. Payload memoryviews are read-only views of
immutable bytes: they stay valid as long as they are referenced (and keep their
chunk alive that long).
"""

from __future__ import annotations

import enum
import itertools
from collections import deque
from collections.abc import Callable
from typing import NamedTuple, cast

from crc32c import crc32c

from mayastor.nvmf.pdu._errors import (
    MAX_ERROR_DATA,
    DataDigestError,
    FatalErrorStatus,
    PduError,
    PduUsageError,
)
from mayastor.nvmf.pdu._pdus import (
    C2H_DATA_HEADER,
    COMMON_HEADER,
    COMMON_HEADER_LEN,
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

DEFAULT_MAX_DATA_LENGTH = 1 << 20
"""Payload limit of a new reader (1 MiB) until the caller sets its own."""

_INVALID = FatalErrorStatus.INVALID_HEADER_FIELD
_HDGSTF = int(PduFlags.HDGSTF)
_DDGSTF = int(PduFlags.DDGSTF)
_LAST = int(PduFlags.LAST_PDU)
_SUCCESS = int(PduFlags.SUCCESS)
_EMPTY = memoryview(b"")
_LAYOUT_CACHE_SIZE = 256
"""Common headers remembered with their layout; most connections repeat a handful."""
_unpack_common = COMMON_HEADER.unpack_from

# Byte offsets of header fields, reported as FEI.
_FEI_TYPE, _FEI_FLAGS, _FEI_HLEN, _FEI_PDO, _FEI_PLEN = 0, 1, 2, 3, 4
_FEI_PFV, _FEI_PDA, _FEI_MAXDATA = 8, 10, 12
_FEI_DATAL = 16


class _Category(enum.Enum):
    """What a PDU type means for the connection's sequence."""

    INITIALIZE = "initialize"  # ICReq / ICResp
    TERMINATE = "terminate"  # H2CTermReq / C2HTermReq
    TRANSFER = "transfer"  # capsules, data, R2T


class _State(enum.Enum):
    """Where the connection is, as far as the PDUs received tell."""

    AWAIT_IC = "await IC"  # nothing received yet: only the IC PDU (or a termination)
    READY = "ready"  # initialized: capsules and data flow
    CLOSED = "closed"  # the peer terminated: everything after is ignored


_TRANSITIONS: dict[tuple[_State, _Category], _State] = {
    (_State.AWAIT_IC, _Category.INITIALIZE): _State.READY,
    (_State.AWAIT_IC, _Category.TERMINATE): _State.CLOSED,
    (_State.READY, _Category.TRANSFER): _State.READY,
    (_State.READY, _Category.TERMINATE): _State.CLOSED,
}
"""(state, category of the PDU received) -> next state; a pair not here is a PDU sequence
error."""


class _Layout(NamedTuple):
    """Where things are in one PDU, worked out from its common header."""

    kind: _Kind
    next_state: _State
    flags: int
    hlen: int
    pdo: int
    plen: int
    hdgst: int  # header digest length, 0 or 4
    ddgst: int  # data digest length, 0 or 4
    dlen: int  # payload length


Decoder = Callable[[bytes, int, _Layout], Pdu]


class _Kind(NamedTuple):
    """What the reader knows of one PDU type."""

    type: PduType
    hlen: int
    category: _Category
    has_data: bool
    decode: Decoder


def _fail(field: int, message: str) -> PduError:
    return PduError(_INVALID, message, fei=field)


def _decode_ic_fields(buf: bytes, start: int) -> tuple[int, int, bool, bool, int]:
    _, _, _, _, _, pfv, pda, dgst, value = IC_HEADER.unpack_from(buf, start)
    if pfv != PFV_1_0:
        raise _fail(_FEI_PFV, f"unsupported PDU format version {pfv}")
    if pda > MAX_PDA:
        raise _fail(_FEI_PDA, f"PDU data alignment {pda} is above {MAX_PDA}")
    return pfv, pda, bool(dgst & HDGST_ENABLE), bool(dgst & DDGST_ENABLE), value


def _decode_ic_req(buf: bytes, start: int, lay: _Layout) -> Pdu:
    return ICReq(*_decode_ic_fields(buf, start))


def _decode_ic_resp(buf: bytes, start: int, lay: _Layout) -> Pdu:
    pfv, cpda, hdgst, ddgst, maxh2cdata = _decode_ic_fields(buf, start)
    if maxh2cdata < MIN_MAXH2CDATA or maxh2cdata % 4:
        raise _fail(_FEI_MAXDATA, f"MAXH2CDATA {maxh2cdata} is not a multiple of 4 >= 4096")
    return ICResp(pfv, cpda, hdgst, ddgst, maxh2cdata)


def _term_fields(buf: bytes, start: int, lay: _Layout) -> tuple[int, int, memoryview]:
    _, _, _, _, _, fes, fei = TERM_HEADER.unpack_from(buf, start)
    begin = start + lay.hlen
    error_data = memoryview(buf)[begin : begin + lay.dlen] if lay.dlen else _EMPTY
    return fes, fei, error_data


def _decode_h2c_term(buf: bytes, start: int, lay: _Layout) -> Pdu:
    return H2CTermReq(*_term_fields(buf, start, lay))


def _decode_c2h_term(buf: bytes, start: int, lay: _Layout) -> Pdu:
    return C2HTermReq(*_term_fields(buf, start, lay))


def _payload(buf: bytes, start: int, lay: _Layout) -> memoryview:
    if not lay.dlen:
        return _EMPTY
    begin = start + lay.pdo
    return memoryview(buf)[begin : begin + lay.dlen]


# A frozen dataclass's __init__ sets each field through object.__setattr__, which costs
# more than the rest of decoding; the hot PDU types are built by setting their slots.
_new = object.__new__


def _slot_setters(cls: type, *names: str) -> tuple[Callable[[object, object], None], ...]:
    return tuple(cls.__dict__[name].__set__ for name in names)


_CMD_SQE, _CMD_DATA = _slot_setters(CapsuleCmd, "sqe", "data")
_RESP_CQE = _slot_setters(CapsuleResp, "cqe")[0]
_H2C_CCCID, _H2C_TTAG, _H2C_OFFSET, _H2C_DATA, _H2C_LAST = _slot_setters(
    H2CData, "cccid", "ttag", "offset", "data", "last"
)
_C2H_CCCID, _C2H_OFFSET, _C2H_DATA, _C2H_LAST, _C2H_SUCCESS = _slot_setters(
    C2HData, "cccid", "offset", "data", "last", "success"
)


def _decode_capsule_cmd(buf: bytes, start: int, lay: _Layout) -> Pdu:
    begin = start + COMMON_HEADER_LEN
    view = memoryview(buf)
    pdu: CapsuleCmd = _new(CapsuleCmd)
    _CMD_SQE(pdu, view[begin : begin + SQE_LEN])
    dlen = lay.dlen
    if dlen:
        begin = start + lay.pdo
        _CMD_DATA(pdu, view[begin : begin + dlen])
    else:
        _CMD_DATA(pdu, _EMPTY)
    return pdu


def _decode_capsule_resp(buf: bytes, start: int, lay: _Layout) -> Pdu:
    begin = start + COMMON_HEADER_LEN
    pdu: CapsuleResp = _new(CapsuleResp)
    _RESP_CQE(pdu, memoryview(buf)[begin : begin + lay.hlen - COMMON_HEADER_LEN])
    return pdu


def _check_datal(datal: int, lay: _Layout) -> None:
    if datal != lay.dlen or not datal:
        raise _fail(_FEI_DATAL, f"DATAL {datal} does not match the {lay.dlen} data bytes sent")


def _decode_h2c_data(buf: bytes, start: int, lay: _Layout) -> Pdu:
    _, flags, _, _, _, cccid, ttag, datao, datal = H2C_DATA_HEADER.unpack_from(buf, start)
    _check_datal(datal, lay)
    pdu: H2CData = _new(H2CData)
    _H2C_CCCID(pdu, cccid)
    _H2C_TTAG(pdu, ttag)
    _H2C_OFFSET(pdu, datao)
    _H2C_DATA(pdu, _payload(buf, start, lay))
    _H2C_LAST(pdu, bool(flags & _LAST))
    return pdu


def _decode_c2h_data(buf: bytes, start: int, lay: _Layout) -> Pdu:
    _, flags, _, _, _, cccid, datao, datal = C2H_DATA_HEADER.unpack_from(buf, start)
    _check_datal(datal, lay)
    if flags & _SUCCESS and not flags & _LAST:
        raise _fail(_FEI_FLAGS, "C2HData has SUCCESS without LAST_PDU")
    pdu: C2HData = _new(C2HData)
    _C2H_CCCID(pdu, cccid)
    _C2H_OFFSET(pdu, datao)
    _C2H_DATA(pdu, _payload(buf, start, lay))
    _C2H_LAST(pdu, bool(flags & _LAST))
    _C2H_SUCCESS(pdu, bool(flags & _SUCCESS))
    return pdu


def _decode_r2t(buf: bytes, start: int, lay: _Layout) -> Pdu:
    _, _, _, _, _, cccid, ttag, r2to, r2tl = R2T_HEADER.unpack_from(buf, start)
    if not r2tl:
        raise _fail(_FEI_DATAL, "R2T asks for 0 bytes")
    return R2T(cccid, ttag, r2to, r2tl)


_KINDS: dict[PduType, _Kind] = {
    kind.type: kind
    for kind in (
        _Kind(PduType.IC_REQ, IC_HEADER.size, _Category.INITIALIZE, False, _decode_ic_req),
        _Kind(PduType.IC_RESP, IC_HEADER.size, _Category.INITIALIZE, False, _decode_ic_resp),
        _Kind(PduType.H2C_TERM_REQ, TERM_HEADER.size, _Category.TERMINATE, True, _decode_h2c_term),
        _Kind(PduType.C2H_TERM_REQ, TERM_HEADER.size, _Category.TERMINATE, True, _decode_c2h_term),
        _Kind(PduType.CAPSULE_CMD, 72, _Category.TRANSFER, True, _decode_capsule_cmd),
        _Kind(PduType.CAPSULE_RESP, 24, _Category.TRANSFER, False, _decode_capsule_resp),
        _Kind(PduType.H2C_DATA, H2C_DATA_HEADER.size, _Category.TRANSFER, True, _decode_h2c_data),
        _Kind(PduType.C2H_DATA, C2H_DATA_HEADER.size, _Category.TRANSFER, True, _decode_c2h_data),
        _Kind(PduType.R2T, R2T_HEADER.size, _Category.TRANSFER, False, _decode_r2t),
    )
}

_RECEIVES: dict[Role, dict[int, _Kind]] = {
    Role.CONTROLLER: {
        t: _KINDS[t]
        for t in (PduType.IC_REQ, PduType.H2C_TERM_REQ, PduType.CAPSULE_CMD, PduType.H2C_DATA)
    },
    Role.HOST: {
        t: _KINDS[t]
        for t in (
            PduType.IC_RESP,
            PduType.C2H_TERM_REQ,
            PduType.CAPSULE_RESP,
            PduType.C2H_DATA,
            PduType.R2T,
        )
    },
}
"""PDU types each role receives, by type byte: the dispatch table of the reader."""


def _describe_type(ptype: int) -> str:
    try:
        return PduType(ptype).name
    except ValueError:
        return f"unknown PDU type {ptype:#04x}"


class PduReader:
    """Turns the byte stream of one NVMe/TCP connection into PDUs.

    Args:
        role: the end we are: a `CONTROLLER` reads what hosts send, a `HOST` what
            controllers send.
        max_data_length: most payload bytes accepted in one PDU (set it from
            MAXH2CDATA and the in-capsule data size); a PDU announcing more is a
            fatal `DATA_LIMIT_EXCEEDED` before any of its data is buffered.
        header_digest, data_digest, pda: as for `configure`.

    Call `configure` as soon as the IC exchange has settled the digests (before the
    next `next_pdu`). After a `PduError` the reader is dead: every later `next_pdu`
    raises the same error. After a termination PDU from the peer, all further input
    is dropped and `next_pdu` returns None.
    """

    __slots__ = (
        "_align",
        "_chunks",
        "_ddgst",
        "_error",
        "_hdgst",
        "_header_checked",
        "_kinds",
        "_layouts",
        "_max_data_length",
        "_pending",
        "_pos",
        "_quick",
        "_role",
        "_size",
        "_state",
    )

    def __init__(
        self,
        role: Role,
        *,
        max_data_length: int = DEFAULT_MAX_DATA_LENGTH,
        header_digest: bool = False,
        data_digest: bool = False,
        pda: int = 0,
    ) -> None:
        self._role = role
        self._kinds = _RECEIVES[role]
        self._layouts: dict[tuple[int, int, int, int, int], _Layout] = {}
        self._quick: dict[tuple[int, int, int, int, int], _Layout] = {}
        self._max_data_length = max_data_length
        self._chunks: deque[bytes] = deque()
        self._pos = 0  # bytes of _chunks[0] already consumed
        self._size = 0  # unconsumed bytes in all chunks
        self._pending: _Layout | None = None
        self._header_checked = False
        self._state = _State.AWAIT_IC
        self._error: PduError | None = None
        self._hdgst = False
        self._ddgst = False
        self._align = 0
        self.configure(header_digest=header_digest, data_digest=data_digest, pda=pda)

    def configure(
        self, *, header_digest: bool = False, data_digest: bool = False, pda: int = 0
    ) -> None:
        """Set what the IC exchange negotiated for this connection.

        Args:
            header_digest: PDUs that may carry a header digest must carry one.
            data_digest: PDUs with data must carry a data digest.
            pda: the data alignment we asked of the peer (our HPDA as a host, our
                CPDA as a controller), 0-based dwords; 0 accepts any PDO.

        Raises:
            PduUsageError: `pda` is outside 0..31.
        """
        if not 0 <= pda <= MAX_PDA:
            raise PduUsageError(f"PDU data alignment {pda} is outside 0..{MAX_PDA}")
        self._hdgst = header_digest
        self._ddgst = data_digest
        self._align = alignment(pda) if pda else 0
        self._forget_layouts()

    @property
    def max_data_length(self) -> int:
        """Most payload bytes accepted in one PDU; more is `DATA_LIMIT_EXCEEDED`."""
        return self._max_data_length

    @max_data_length.setter
    def max_data_length(self, value: int) -> None:
        self._max_data_length = value
        self._forget_layouts()

    @property
    def role(self) -> Role:
        return self._role

    @property
    def buffered(self) -> int:
        """Bytes received and not yet returned as PDUs (a partial PDU at end of stream)."""
        return self._size

    @property
    def closed(self) -> bool:
        """True once the peer has sent a termination PDU."""
        return self._state is _State.CLOSED

    @property
    def needed(self) -> int:
        """Bytes still missing from the PDU begun in the buffer: to its common header
        while fewer than 8 bytes are in, then to its end (once `next_pdu` has seen its
        header); 0 when nothing is buffered.

        A caller that decodes whole PDUs itself while the buffer is empty feeds just
        this many bytes to finish the split one, then goes on in its own chunk.
        """
        size = self._size
        if not size:
            return 0
        lay = self._pending
        if lay is not None:
            return max(0, lay.plen - size)
        return max(0, COMMON_HEADER_LEN - size)

    def feed(self, data: Buffer, start: int = 0) -> None:
        """Add received bytes: `data` from offset `start` on.

        `bytes` are kept as they are (from `start` without a copy when nothing else is
        buffered); any other bytes-like object is copied once, because payloads
        handed out later must not change under the caller. Input after a protocol
        error or a termination PDU is dropped.

        Args:
            data: the next bytes of the stream, of any length.
            start: where in `data` the stream goes on (what comes before was consumed).
        """
        if self._state is _State.CLOSED or self._error is not None:
            return
        if type(data) is bytes:
            chunk = data
            if start:
                if self._size:
                    chunk = data[start:]
                elif start < len(data):
                    self._chunks.append(data)
                    self._pos = start
                    self._size = len(data) - start
                    return
                else:
                    return
        else:
            chunk = bytes(memoryview(data)[start:]) if start else bytes(data)
        if chunk:
            self._chunks.append(chunk)
            self._size += len(chunk)

    def feed_from(self, data: bytes, start: int) -> None:
        """`feed` of ``data[start:]``, without copying it when nothing is buffered (the
        caller has already consumed the first `start` bytes itself)."""
        if self._size or self._state is _State.CLOSED or self._error is not None:
            self.feed(data[start:])
            return
        if start < len(data):
            self._chunks.append(data)
            self._pos = start
            self._size = len(data) - start

    def next_pdu(self) -> Pdu | None:
        """The next whole PDU, or None when more bytes are needed.

        Returns:
            A PDU of one of the types our role receives, or None.

        Raises:
            PduError: the peer broke the protocol (fatal; raised again on every call).
            DataDigestError: a PDU's data digest does not match; the PDU was consumed
                and is attached, and the next call goes on with the following PDU.
        """
        if self._error is not None:
            raise self._error
        lay = self._pending
        if lay is None and self._size >= COMMON_HEADER_LEN:
            # The common case: a PDU seen before (digests off, same state) lying whole
            # in the first chunk is cut out and decoded in place, nothing else to check.
            first = self._chunks[0]
            start = self._pos
            if len(first) - start >= COMMON_HEADER_LEN:
                lay = self._quick.get(_unpack_common(first, start))
                if lay is not None:
                    end = start + lay.plen
                    if end <= len(first):
                        self._size -= lay.plen
                        if end == len(first):
                            self._chunks.popleft()
                            self._pos = 0
                        else:
                            self._pos = end
                        return self._decode(first, start, lay)
                    lay = None
        return self._next_pdu(lay)

    def _decode(self, buf: bytes, start: int, lay: _Layout) -> Pdu:
        try:
            return lay.kind.decode(buf, start, lay)
        except PduError as err:
            err.header = bytes(buf[start : start + min(lay.hlen, MAX_ERROR_DATA)])
            self._error = err
            raise

    def _next_pdu(self, lay: _Layout | None) -> Pdu | None:
        """`next_pdu` for every case: split PDUs, digests, new headers, state changes."""
        if lay is None:
            if self._size < COMMON_HEADER_LEN:
                return None
            first = self._chunks[0]
            if len(first) - self._pos >= COMMON_HEADER_LEN:
                header = _unpack_common(first, self._pos)
            else:
                header = _unpack_common(*self._view(COMMON_HEADER_LEN))
            lay = self._layouts.get(header)
            if lay is None:
                lay = self._new_layout(header)
            self._pending = lay
            self._header_checked = not lay.hdgst
        if not self._header_checked:
            if self._size < lay.hlen + lay.hdgst:
                return None
            self._check_header_digest(lay)
            self._header_checked = True
        if self._size < lay.plen:
            return None
        buf, start = self._take(lay.plen)
        self._pending = None
        pdu = self._decode(buf, start, lay)
        if lay.next_state is not self._state:
            self._enter(lay.next_state)
        if lay.ddgst:
            self._check_data_digest(pdu, buf, start, lay)
        return pdu

    # ------------------------------------------------------------------ internals

    def _enter(self, state: _State) -> None:
        self._state = state
        self._forget_layouts()
        if state is _State.CLOSED:
            self._chunks.clear()
            self._size = self._pos = 0

    def _new_layout(self, header: tuple[int, int, int, int, int]) -> _Layout:
        """Validate a common header not seen before and lay its PDU out."""
        try:
            lay = self._layout(*header)
        except PduError as err:
            hlen = header[2]
            available = min(self._size, max(hlen, COMMON_HEADER_LEN), MAX_ERROR_DATA)
            head, at = self._view(available)
            err.header = bytes(head[at : at + available])
            self._error = err
            raise
        if len(self._layouts) >= _LAYOUT_CACHE_SIZE:
            self._forget_layouts()
        self._layouts[header] = lay
        if not lay.hdgst and not lay.ddgst and lay.next_state is self._state:
            self._quick[header] = lay
        return lay

    def _forget_layouts(self) -> None:
        self._layouts.clear()
        self._quick.clear()

    def _layout(self, ptype: int, flags: int, hlen: int, pdo: int, plen: int) -> _Layout:
        kind = self._kinds.get(ptype)
        if kind is None:
            raise _fail(_FEI_TYPE, f"{_describe_type(ptype)} is not sent to a {self._role.value}")
        next_state = _TRANSITIONS.get((self._state, kind.category))
        if next_state is None:
            raise PduError(
                FatalErrorStatus.PDU_SEQUENCE_ERROR,
                f"{kind.type.name} is not allowed in state {self._state.value}",
            )
        if hlen != kind.hlen:
            raise _fail(_FEI_HLEN, f"{kind.type.name} with HLEN {hlen}, expected {kind.hlen}")
        category = kind.category
        if category is _Category.INITIALIZE:
            if plen != hlen:
                raise _fail(_FEI_PLEN, f"{kind.type.name} with PLEN {plen}, expected {hlen}")
            return _Layout(kind, next_state, flags, hlen, 0, plen, 0, 0, 0)
        if category is _Category.TERMINATE:
            if not hlen <= plen <= hlen + MAX_TERM_ERROR_DATA:
                raise _fail(_FEI_PLEN, f"{kind.type.name} with PLEN {plen}")
            return _Layout(kind, next_state, flags, hlen, hlen, plen, 0, 0, plen - hlen)
        hdgst = DIGEST_LEN if flags & _HDGSTF else 0
        if bool(hdgst) != self._hdgst:
            raise _fail(_FEI_FLAGS, f"{kind.type.name} HDGSTF does not match the negotiation")
        base = hlen + hdgst
        if plen == base:
            if flags & _DDGSTF:
                raise _fail(_FEI_FLAGS, f"{kind.type.name} has DDGSTF but no data")
            return _Layout(kind, next_state, flags, hlen, 0, plen, hdgst, 0, 0)
        if plen < base or not kind.has_data:
            raise _fail(_FEI_PLEN, f"{kind.type.name} with PLEN {plen}, expected {base}")
        ddgst = DIGEST_LEN if flags & _DDGSTF else 0
        if bool(ddgst) != self._ddgst:
            raise _fail(_FEI_FLAGS, f"{kind.type.name} DDGSTF does not match the negotiation")
        if pdo < base or (self._align and pdo % self._align):
            raise _fail(_FEI_PDO, f"{kind.type.name} with PDO {pdo}")
        dlen = plen - pdo - ddgst
        if dlen <= 0:
            raise _fail(_FEI_PDO, f"{kind.type.name} PDO {pdo} leaves no room for data")
        if dlen > self._max_data_length:
            raise PduError(
                FatalErrorStatus.DATA_LIMIT_EXCEEDED,
                f"{kind.type.name} carries {dlen} data bytes, limit {self._max_data_length}",
            )
        return _Layout(kind, next_state, flags, hlen, pdo, plen, hdgst, ddgst, dlen)

    def _check_header_digest(self, lay: _Layout) -> None:
        buf, start = self._view(lay.hlen + DIGEST_LEN)
        header = memoryview(buf)[start : start + lay.hlen]
        (received,) = DIGEST.unpack_from(buf, start + lay.hlen)
        expected = crc32c(header)
        if expected != received:
            err = PduError(
                FatalErrorStatus.HEADER_DIGEST_ERROR,
                f"{lay.kind.type.name} header digest {received:#010x}, computed {expected:#010x}",
                header=bytes(header[:MAX_ERROR_DATA]),
            )
            self._error = err
            raise err

    def _check_data_digest(self, pdu: Pdu, buf: bytes, start: int, lay: _Layout) -> None:
        begin = start + lay.pdo
        expected = crc32c(memoryview(buf)[begin : begin + lay.dlen])
        (received,) = DIGEST.unpack_from(buf, begin + lay.dlen)
        if expected != received:
            raise DataDigestError(cast(CapsuleCmd | H2CData | C2HData, pdu), expected, received)

    def _view(self, n: int) -> tuple[bytes, int]:
        """The first `n` buffered bytes as (buffer, offset), without consuming them."""
        first = self._chunks[0]
        if len(first) - self._pos >= n:
            return first, self._pos
        parts: list[Buffer] = [memoryview(first)[self._pos :]]
        need = n - (len(first) - self._pos)
        for chunk in itertools.islice(self._chunks, 1, None):
            if need <= 0:
                break
            parts.append(memoryview(chunk)[:need])
            need -= len(chunk)
        return b"".join(parts), 0

    def _take(self, n: int) -> tuple[bytes, int]:
        """Consume the first `n` buffered bytes; returns them as (buffer, offset)."""
        chunks = self._chunks
        first = chunks[0]
        pos = self._pos
        end = pos + n
        self._size -= n
        if end < len(first):
            self._pos = end
            return first, pos
        if end == len(first):
            chunks.popleft()
            self._pos = 0
            return first, pos
        parts: list[Buffer] = [memoryview(first)[pos:]]
        need = end - len(first)
        chunks.popleft()
        while need:
            chunk = chunks[0]
            if len(chunk) <= need:
                parts.append(chunk)
                need -= len(chunk)
                chunks.popleft()
                self._pos = 0
            else:
                parts.append(memoryview(chunk)[:need])
                self._pos = need
                need = 0
        return b"".join(parts), 0
