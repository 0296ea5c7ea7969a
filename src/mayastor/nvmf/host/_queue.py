"""One queue connection of our initiator, sans I/O: commands in, bytes out, and back.

`HostQueue` is the host's half of one NVMe/TCP connection (TP 8000): the ICReq/ICResp
exchange, the Fabrics Connect that binds the connection to a queue, then commands,
many at a time, each under a command identifier of its own. It never touches a socket
or the event loop: the caller (`QueueConnection` in production, plain bytes in tests)
feeds it received bytes with `receive_data`, takes what to send with `data_to_send`,
and passes the time as an argument to `expire`.

What it does per command:

* builds the SQE with a free CID and an SGL descriptor that says where the data is:
  in the capsule when a write's data fits the queue's in-capsule size, else by
  R2T/H2CData (writes) or C2HData (reads);
* answers each R2T with H2CData PDUs of at most MAXH2CDATA bytes, slicing the
  caller's buffer (never copying it) until the command ends; up to `MAX_R2T` R2Ts of
  one command may be outstanding, answered in order;
* reassembles C2HData PDUs, in order, into the read's buffer; a read that arrives in
  one PDU is handed out as that PDU's memoryview, without a copy; a C2HData with the
  SUCCESS flag completes the command without a CapsuleResp;
* gives back, for each completion, the caller's token with the status and results.

A command whose deadline passed (`expire`) or whose caller stopped waiting
(`abandon`) is reported once and its CID stays reserved until the controller
completes it, so a late completion can never be taken for a newer command. The rest
of its write data is copied at that moment: the caller may reuse its buffer, and an
R2T that comes later still gets the data the command was issued with.

A target that breaks the protocol gets an H2CTermReq and the queue fails
(`error` says why); a C2HTermReq from the target fails it too. Either way every
command still waiting is lost: the caller collects their tokens with `close`.
"""

from __future__ import annotations

import enum
import struct
import uuid as uuid_mod
from collections.abc import Callable

from mayastor.errors import FailedPrecondition, InvalidArgument, ResourceExhausted, caused_by
from mayastor.nvmf.host._errors import TargetProtocolError, TargetTerminated, TransportError
from mayastor.nvmf.pdu import (
    R2T,
    Buffer,
    C2HData,
    C2HTermReq,
    CapsuleResp,
    DataDigestError,
    FatalErrorStatus,
    ICResp,
    Pdu,
    PduError,
    PduReader,
    PduWriter,
    Role,
)
from mayastor.nvmf.spec import (
    Command,
    Connect,
    ConnectData,
    FabricsCommandType,
    GenericStatus,
    NvmeStatus,
    StatusCodeType,
)

ADMIN_IN_CAPSULE_SIZE = 8192
"""In-capsule data every NVMe/TCP controller takes for admin and Fabrics commands (so a
Fabrics Connect always carries its 1024 bytes in the capsule)."""
MAX_DATA_LENGTH = 1 << 20
"""Largest PDU payload accepted from the target (the largest transfer we ask for)."""
MAX_R2T = 16
"""R2Ts a target may keep outstanding for one command (ICReq MAXR2T + 1): a large write
then moves in one round trip rather than one per MAXH2CDATA bytes."""

_SQE = struct.Struct("<BBHI16xQI3xBIIIIII")
"""opcode, flags, CID, NSID, (CDW2, CDW3, MPTR), SGL address, length, identifier,
CDW10..CDW15 (NVMe Base 1.4 Figure 105)."""
_PLAIN_CMD = struct.Struct("<BBBBIBBHI16xQI3xBIIIIII")
"""A whole CapsuleCmd header without digest or padding: the common header, then the SQE
as `_SQE` packs it."""
_CAPSULE_CMD = 0x04
_CMD_HLEN = 72
_COMMON = struct.Struct("<BBBBI")
"""PDU type, flags, HLEN, PDO, PLEN (TP 8000 common header)."""
_C2H_FIELDS = struct.Struct("<H2xII")
"""C2HData after the common header: CCCID, DATAO, DATAL."""
_CAPSULE_RESP = 0x05
_C2H_DATA = 0x07
_HLEN = 24
"""HLEN of CapsuleResp and C2HData (and C2HData's PDO when no padding is asked for)."""
_C2H_LAST = 0x04
_C2H_LAST_SUCCESS = 0x0C
_CQE = struct.Struct("<IIHHHH")
"""DW0, DW1, SQHD, SQID, CID, status and phase (NVMe Base 1.4 Figure 121)."""
_PSDT_SGL = 0x40
"""CDW0 byte 1: PSDT 01b, data described by SGLs (every NVMe/TCP command)."""
_SGL_IN_CAPSULE = 0x01
"""SGL identifier: Data Block descriptor, Offset subtype (data in the capsule)."""
_SGL_TRANSPORT = 0x5A
"""SGL identifier: Transport Data Block, transport-specific subtype (R2T or C2HData)."""
_FABRICS = 0x7F
_CATTR_DISABLE_SQ_FLOW_CONTROL = 0x04
_STATUS_DATA_TRANSFER_ERROR = NvmeStatus(
    StatusCodeType.GENERIC, GenericStatus.DATA_TRANSFER_ERROR
).field
_STATUS_TRANSIENT_TRANSPORT = NvmeStatus(
    StatusCodeType.GENERIC, GenericStatus.TRANSIENT_TRANSPORT_ERROR
).field
# Byte offsets in the PDU, reported as FEI when a field names something we do not know.
_FEI_CCCID = 8
_FEI_CQE_CID = 8 + 12

Token = object
"""What the caller attaches to a command and gets back with its completion."""
Completed = tuple[Token, int, int, int, Buffer | None]
"""One completion: (token, status field (0 is success), DW0, DW1, read data or None)."""


class QueueState(enum.Enum):
    """Where one queue connection is."""

    IDLE = "idle"  # made, nothing sent
    AWAIT_IC_RESP = "awaiting ICResp"  # ICReq sent
    CONNECTING = "connecting"  # transport up; only the Fabrics Connect may be sent
    LIVE = "live"  # connected to its queue: commands flow
    FAILED = "failed"  # the connection cannot go on (see `error`)
    CLOSED = "closed"  # the caller closed it; every command is gone


class QueueEvent(enum.Enum):
    """What moves a queue connection from one state to the next."""

    START = "start"  # the caller sends ICReq
    IC_RESP = "ICResp"  # the target accepted the connection
    CONNECTED = "connected"  # the Fabrics Connect succeeded
    CONNECT_REFUSED = "connect refused"  # the Fabrics Connect failed
    FATAL = "fatal"  # a protocol error, a termination, a refused ICResp
    CLOSE = "close"  # the caller is done with the connection


_S, _E = QueueState, QueueEvent
TRANSITIONS: dict[tuple[QueueState, QueueEvent], QueueState] = {
    (_S.IDLE, _E.START): _S.AWAIT_IC_RESP,
    (_S.AWAIT_IC_RESP, _E.IC_RESP): _S.CONNECTING,
    (_S.AWAIT_IC_RESP, _E.FATAL): _S.FAILED,
    (_S.CONNECTING, _E.CONNECTED): _S.LIVE,
    (_S.CONNECTING, _E.CONNECT_REFUSED): _S.FAILED,
    (_S.CONNECTING, _E.FATAL): _S.FAILED,
    (_S.LIVE, _E.FATAL): _S.FAILED,
    **{(state, _E.CLOSE): _S.CLOSED for state in QueueState},
}
"""(state, event) -> next state; a pair that is not here is refused."""

_SUBMITS: dict[QueueState, str] = {
    _S.CONNECTING: "connect",
    _S.LIVE: "any",
}
"""Which commands a state accepts: "connect" (only the Fabrics Connect) or "any"."""


_LIVE = QueueState.LIVE
_FAILED = QueueState.FAILED
_CLOSED = QueueState.CLOSED


class _Slot:
    """The state of one command identifier."""

    __slots__ = (
        "buf",
        "busy",
        "deadline",
        "digest_error",
        "in_capsule",
        "read_len",
        "received",
        "sent",
        "token",
        "write_data",
        "write_len",
        "zombie",
    )

    def __init__(self) -> None:
        self.busy = False
        self.token: Token | None = None
        self.deadline: float | None = None
        self.write_data: Buffer | None = None
        self.write_len = 0
        self.in_capsule = False
        self.sent = 0
        self.read_len = 0
        self.received = 0
        self.buf: Buffer | None = None
        self.digest_error = False
        self.zombie = False


class _Violation(Exception):
    """The target broke the protocol in a way the codec cannot see (a CID we never
    used, data outside a command's buffer)."""

    def __init__(self, message: str, fes: FatalErrorStatus, fei: int = 0) -> None:
        super().__init__(message)
        self.fes = fes
        self.fei = fei


def _nbytes(data: Buffer) -> int:
    return data.nbytes if type(data) is memoryview else len(data)


class HostQueue:
    """The host end of one NVMe/TCP queue connection; see the module docstring.

    Args:
        qid: the queue: 0 for the admin queue, 1.. for I/O queues.
        queue_size: commands in flight at most (Connect asks for SQSIZE one less).
        header_digest, data_digest: the digests to ask for in ICReq; a target that
            does not grant exactly these fails the connection.
        in_capsule_size: write data up to this many bytes goes in the capsule (the
            admin queue: 8192; an I/O queue: what IOCCSZ allows; 0 for never).
            Fabrics commands may always carry `ADMIN_IN_CAPSULE_SIZE`.
        max_data_length: largest data PDU accepted from the target.

    Raises:
        InvalidArgument: a size out of range.
    """

    def __init__(
        self,
        qid: int,
        *,
        queue_size: int,
        header_digest: bool = False,
        data_digest: bool = False,
        in_capsule_size: int = ADMIN_IN_CAPSULE_SIZE,
        max_data_length: int = MAX_DATA_LENGTH,
    ) -> None:
        if not 0 <= qid <= 0xFFFF:
            raise InvalidArgument(f"queue id {qid} is outside 0..65535")
        if not 2 <= queue_size <= 0x10000:
            raise InvalidArgument(f"queue size {queue_size} is outside 2..65536")
        if in_capsule_size < 0:
            raise InvalidArgument(f"in-capsule data size {in_capsule_size} is negative")
        self.qid = qid
        self.queue_size = queue_size
        self.header_digest = header_digest
        self.data_digest = data_digest
        self.in_capsule_size = in_capsule_size
        self._state = QueueState.IDLE
        self._reader = PduReader(Role.HOST, max_data_length=max_data_length)
        self._writer = PduWriter(Role.HOST)
        self._out: list[Buffer] = []
        self._slots = [_Slot() for _ in range(queue_size)]
        self._free = list(range(queue_size - 1, -1, -1))
        self._zombies = 0
        self._ic_token: Token | None = None
        self._ic_deadline: float | None = None
        self._connect_cid: int | None = None
        self.error: TransportError | None = None
        self.cntlid: int | None = None
        self.maxh2cdata = 0
        self._plain = False  # CapsuleCmd headers packed here (no digest, no padding)
        self._handlers: dict[type, Callable[[Pdu, list[Completed]], None]] = {
            ICResp: self._on_ic_resp,  # type: ignore[dict-item]
            CapsuleResp: self._on_capsule_resp,  # type: ignore[dict-item]
            C2HData: self._on_c2h_data,  # type: ignore[dict-item]
            R2T: self._on_r2t,  # type: ignore[dict-item]
            C2HTermReq: self._on_term_req,  # type: ignore[dict-item]
        }

    def __repr__(self) -> str:
        return (
            f"<HostQueue {self.qid} {self._state.value} in flight "
            f"{self.in_flight}/{self.queue_size}>"
        )

    # ------------------------------------------------------------------ state

    @property
    def state(self) -> QueueState:
        return self._state

    @property
    def free_slots(self) -> int:
        """Commands that can be submitted now."""
        return len(self._free)

    @property
    def in_flight(self) -> int:
        """Commands submitted and not yet completed (timed-out ones included)."""
        return self.queue_size - len(self._free)

    @property
    def zombies(self) -> int:
        """Commands reported timed out or abandoned that the target has not completed."""
        return self._zombies

    def _move(self, event: QueueEvent) -> None:
        nxt = TRANSITIONS.get((self._state, event))
        if nxt is None:
            raise FailedPrecondition(
                f"queue {self.qid}: {event.value} is not possible while {self._state.value}"
            )
        self._state = nxt

    def data_to_send(self) -> list[Buffer]:
        """The buffers to write to the socket now, in order (the list is handed over)."""
        out = self._out
        if out:
            self._out = []
        return out

    # ------------------------------------------------------------------ connecting

    def start(self, token: Token, deadline: float | None = None) -> None:
        """Send ICReq; `token` completes (status 0) when the target's ICResp is in.

        Args:
            token: handed back with the completion of the exchange.
            deadline: when `expire` gives the token back as timed out.

        Raises:
            FailedPrecondition: the queue was started before.
        """
        self._move(QueueEvent.START)
        self._ic_token = token
        self._ic_deadline = deadline
        self._out += self._writer.encode_ic_req(
            hpda=0,
            hdgst_enable=self.header_digest,
            ddgst_enable=self.data_digest,
            maxr2t=MAX_R2T - 1,
        )

    def connect(
        self,
        *,
        hostid: uuid_mod.UUID,
        cntlid: int,
        subnqn: str,
        hostnqn: str,
        kato_ms: int = 0,
        disable_sq_flow_control: bool = False,
        token: Token,
        deadline: float | None = None,
    ) -> int:
        """Send the Fabrics Connect that binds this connection to queue `qid`.

        Its completion (DW0 holds the controller ID) makes the queue live; a failed
        status fails the queue.

        Args:
            hostid, hostnqn: who we are.
            cntlid: `DYNAMIC_CNTLID` (0xFFFF) for the admin queue, the controller ID
                the admin queue got for I/O queues.
            subnqn: the subsystem to connect to.
            kato_ms: the keep alive timeout (admin queue only), 0 for none.
            disable_sq_flow_control: set CATTR bit 2 (no SQ head tracking; the
                target may then complete reads with C2HData SUCCESS).
            token, deadline: as for `submit`.

        Returns:
            the command's CID.

        Raises:
            FailedPrecondition: the ICResp is not in yet, or Connect was sent before.
            InvalidArgument: a name or value does not fit the Connect command.
        """
        if self._state is not QueueState.CONNECTING or self._connect_cid is not None:
            raise FailedPrecondition(
                f"queue {self.qid}: Fabrics Connect is only sent once, after ICResp "
                f"(the queue is {self._state.value})"
            )
        try:
            data = ConnectData(hostid, cntlid, subnqn, hostnqn).encode()
            cattr = _CATTR_DISABLE_SQ_FLOW_CONTROL if disable_sq_flow_control else 0
            cmd = Connect(self.qid, self.queue_size - 1, kato=kato_ms, cattr=cattr).to_command(0)
        except ValueError as exc:
            refusal = InvalidArgument(f"queue {self.qid}: cannot build Fabrics Connect: {exc}")
            raise caused_by(refusal, exc)
        cid = self.submit_command(cmd, data_out=data, token=token, deadline=deadline)
        self._connect_cid = cid
        return cid

    # ------------------------------------------------------------------ commands

    def submit(
        self,
        opcode: int,
        nsid: int,
        cdw10: int = 0,
        cdw11: int = 0,
        cdw12: int = 0,
        cdw13: int = 0,
        cdw14: int = 0,
        cdw15: int = 0,
        *,
        data_out: Buffer | None = None,
        read_length: int = 0,
        token: Token,
        deadline: float | None = None,
    ) -> int:
        """Send one command.

        Args:
            opcode, nsid, cdw10..cdw15: the command (for a Fabrics command, `nsid`
                holds FCTYPE in its low byte, as on the wire).
            data_out: the data of a write-like command; not copied, and not to be
                changed by the caller until the command completes (or is given up).
            read_length: bytes the command returns (a read-like command).
            token: handed back with the completion.
            deadline: when `expire` reports the command timed out; None for never.

        Returns:
            the command's CID.

        Raises:
            FailedPrecondition: the queue is not live (only the Connect may go out
                while connecting).
            ResourceExhausted: every CID is in use; wait for a completion.
            InvalidArgument: both write data and a read length, or empty write data.
        """
        if self._state is not _LIVE:
            self._check_submit(opcode, nsid)
        free = self._free
        if not free:
            raise ResourceExhausted(
                f"queue {self.qid}: all {self.queue_size} command identifiers are in use"
            )
        if data_out is not None:
            write_len = data_out.nbytes if type(data_out) is memoryview else len(data_out)
            if not write_len or read_length:
                raise InvalidArgument(
                    f"queue {self.qid}: a command carries data one way, at least one byte"
                )
        else:
            write_len = 0
        cid = free.pop()
        slot = self._slots[cid]
        slot.busy = True
        slot.token = token
        slot.deadline = deadline
        slot.read_len = read_length
        slot.received = 0
        slot.buf = None
        slot.digest_error = False
        slot.sent = 0
        if write_len:
            if write_len <= self.in_capsule_size or (
                opcode == _FABRICS and write_len <= ADMIN_IN_CAPSULE_SIZE
            ):
                slot.in_capsule = True
                slot.write_data = None
                slot.write_len = write_len
                slot.sent = write_len
                if self._plain:
                    assert data_out is not None
                    self._out += (
                        _PLAIN_CMD.pack(
                            _CAPSULE_CMD, 0, _CMD_HLEN, _CMD_HLEN, _CMD_HLEN + write_len,
                            opcode, _PSDT_SGL, cid, nsid, 0, write_len, _SGL_IN_CAPSULE,
                            cdw10, cdw11, cdw12, cdw13, cdw14, cdw15,
                        ),
                        data_out,
                    )  # fmt: skip
                    return cid
                sqe = _SQE.pack(
                    opcode,
                    _PSDT_SGL,
                    cid,
                    nsid,
                    0,
                    write_len,
                    _SGL_IN_CAPSULE,
                    cdw10,
                    cdw11,
                    cdw12,
                    cdw13,
                    cdw14,
                    cdw15,
                )
                self._out += self._writer.encode_capsule_cmd(sqe, data_out)  # type: ignore[arg-type]
                return cid
            slot.in_capsule = False
            slot.write_data = data_out
            slot.write_len = write_len
            length = write_len
        else:
            slot.in_capsule = False
            slot.write_data = None
            slot.write_len = 0
            length = read_length
        if self._plain:
            self._out.append(
                _PLAIN_CMD.pack(
                    _CAPSULE_CMD, 0, _CMD_HLEN, 0, _CMD_HLEN,
                    opcode, _PSDT_SGL, cid, nsid, 0, length, _SGL_TRANSPORT,
                    cdw10, cdw11, cdw12, cdw13, cdw14, cdw15,
                )
            )  # fmt: skip
            return cid
        sqe = _SQE.pack(
            opcode,
            _PSDT_SGL,
            cid,
            nsid,
            0,
            length,
            _SGL_TRANSPORT,
            cdw10,
            cdw11,
            cdw12,
            cdw13,
            cdw14,
            cdw15,
        )
        self._out += self._writer.encode_capsule_cmd(sqe)
        return cid

    def submit_io(
        self,
        opcode: int,
        nsid: int,
        cdw10: int,
        cdw11: int,
        cdw12: int,
        data_out: Buffer | None,
        read_length: int,
        token: Token,
        deadline: float,
        allowed: bool = True,
    ) -> bool:
        """`submit` for the data path: an I/O command on a live queue, or nothing.

        Returns:
            True if the command went out; False, with nothing done, if `allowed` is
            false, the queue is not live, or every command identifier is in use.

        Raises:
            InvalidArgument: as `submit`.
        """
        if not allowed or self._state is not _LIVE or not self._free:
            return False
        self.submit(
            opcode, nsid, cdw10, cdw11, cdw12,
            data_out=data_out, read_length=read_length, token=token, deadline=deadline,
        )  # fmt: skip
        return True

    def _check_submit(self, opcode: int, nsid: int) -> None:
        allowed = _SUBMITS.get(self._state)
        if allowed != "any" and not (
            allowed == "connect"
            and opcode == _FABRICS
            and nsid & 0xFF == FabricsCommandType.CONNECT
            and self._connect_cid is None
        ):
            raise FailedPrecondition(
                f"queue {self.qid} is {self._state.value}: it does not take this command now"
            )

    def submit_command(
        self,
        cmd: Command,
        *,
        data_out: Buffer | None = None,
        read_length: int = 0,
        token: Token,
        deadline: float | None = None,
    ) -> int:
        """`submit` for a command built with `mayastor.nvmf.spec` (its CID and SGL are
        ignored: the queue chooses them)."""
        return self.submit(
            cmd.opcode,
            cmd.nsid,
            cmd.cdw10,
            cmd.cdw11,
            cmd.cdw12,
            cmd.cdw13,
            cmd.cdw14,
            cmd.cdw15,
            data_out=data_out,
            read_length=read_length,
            token=token,
            deadline=deadline,
        )

    def expire(self, now: float) -> list[Token]:
        """Give up on every command whose deadline is at or before `now`.

        Each such command is reported once; its CID stays reserved until the target
        completes it. The ICReq exchange has a deadline too.

        Returns:
            the tokens of the commands given up, oldest CIDs first.
        """
        expired: list[Token] = []
        ic_deadline = self._ic_deadline
        if self._ic_token is not None and ic_deadline is not None and ic_deadline <= now:
            expired.append(self._ic_token)
            self._ic_token = None
        for slot in self._slots:
            if slot.busy and not slot.zombie and slot.deadline is not None and slot.deadline <= now:
                expired.append(slot.token)
                self._bury(slot)
        return expired

    def abandon(self, cid: int, token: Token) -> None:
        """The caller of command `cid` stopped waiting for it (its task was cancelled).

        Nothing is reported for it any more; its CID stays reserved until the target
        completes it. Nothing happens if `cid` no longer belongs to `token`.
        """
        if 0 <= cid < self.queue_size:
            slot = self._slots[cid]
            if slot.busy and not slot.zombie and slot.token is token:
                self._bury(slot)

    def _bury(self, slot: _Slot) -> None:
        slot.zombie = True
        slot.token = None
        self._zombies += 1
        data = slot.write_data
        if data is not None and slot.sent < slot.write_len:
            slot.write_data = bytes(data)

    def close(self) -> list[Token]:
        """Drop every command: the connection is gone or no longer wanted.

        Returns:
            the tokens of the commands (and of an unfinished ICReq exchange) that
            were still waiting; none of them will complete.
        """
        lost: list[Token] = []
        if self._ic_token is not None:
            lost.append(self._ic_token)
            self._ic_token = None
        for cid, slot in enumerate(self._slots):
            if slot.busy:
                if not slot.zombie:
                    lost.append(slot.token)
                self._release(cid, slot)
        self._zombies = 0
        self._out = []
        self._state = TRANSITIONS[(self._state, QueueEvent.CLOSE)]
        return lost

    def _release(self, cid: int, slot: _Slot) -> None:
        if slot.zombie:
            self._zombies -= 1
            slot.zombie = False
        slot.busy = False
        slot.token = None
        slot.write_data = None
        slot.buf = None
        self._free.append(cid)

    # ------------------------------------------------------------------ receiving

    def receive_data(self, data: Buffer) -> list[Completed]:
        """Take bytes from the target.

        Returns:
            the completions they finish, in the order the target sent them. After a
            fatal error (see `error`), the completions before it; the rest of the
            input is ignored.
        """
        done: list[Completed] = []
        if self._state is _FAILED or self._state is _CLOSED:
            return done
        reader = self._reader
        if self._plain and self._state is _LIVE and type(data) is bytes and not reader.buffered:
            try:
                at = self._receive_plain(data, done)
            except _Violation as plain_violation:
                self._fail_with_term_req(
                    str(plain_violation), plain_violation.fes, plain_violation.fei, b""
                )
                return done
            if at == len(data) or self._state is not _LIVE:
                return done
            reader.feed_from(data, at)
        else:
            reader.feed(data)
        handlers = self._handlers
        while True:
            try:
                pdu = reader.next_pdu()
                if pdu is None:
                    break
                handlers[type(pdu)](pdu, done)
            except DataDigestError as digest_error:
                self._on_data_digest_error(digest_error, done)
            except _Violation as violation:
                self._fail_with_term_req(str(violation), violation.fes, violation.fei, b"")
                break
            except PduError as pdu_error:
                self._fail_with_term_req(
                    f"the target broke the protocol: {pdu_error.args[0]}",
                    pdu_error.fes,
                    pdu_error.fei,
                    pdu_error.header,
                )
                break
            if self._state is _FAILED:
                break
        return done

    def _receive_plain(self, data: bytes, done: list[Completed]) -> int:
        """Take the whole CapsuleResp and C2HData PDUs at the start of `data` without
        the codec: no PDU objects, the header fields read straight from the bytes.

        Only PDUs in exactly the form a live queue without digests expects are taken
        (HLEN 24, PDO 24, PLEN consistent, known flags, data within the limit);
        anything else, and a PDU cut off at the end, is left to the codec, which
        checks it in full.

        Returns:
            how many bytes were taken.
        """
        end = len(data)
        at = 0
        limit = self._reader.max_data_length
        unpack_common = _COMMON.unpack_from
        view = memoryview(data)
        while end - at >= _HLEN:
            ptype, flags, hlen, pdo, plen = unpack_common(data, at)
            if hlen != _HLEN or at + plen > end:
                break
            if ptype == _CAPSULE_RESP:
                if flags or pdo or plen != _HLEN:
                    break
                dw0, dw1, _sqhd, _sqid, cid, status = _CQE.unpack_from(data, at + 8)
                self._on_cqe(dw0, dw1, cid, status, done)
            elif ptype == _C2H_DATA:
                if pdo != _HLEN or not (flags == _C2H_LAST_SUCCESS or flags & ~_C2H_LAST == 0):
                    break
                cid, offset, size = _C2H_FIELDS.unpack_from(data, at + 8)
                if not 0 < size <= limit or plen != _HLEN + size:
                    break
                start = at + _HLEN
                self._on_c2h(
                    cid, offset, view[start : start + size], size,
                    flags == _C2H_LAST_SUCCESS, done,
                )  # fmt: skip
            else:
                break
            at += plen
            if self._state is not _LIVE:
                break
        return at

    def _fail(self, error: TransportError) -> None:
        if self.error is None:
            self.error = error
        if self._state is not QueueState.FAILED and self._state is not QueueState.CLOSED:
            self._move(QueueEvent.FATAL)

    def _fail_with_term_req(self, message: str, fes: int, fei: int, header: bytes) -> None:
        self._out += self._writer.encode_term_req(fes, fei, header)
        self._fail(TargetProtocolError(f"queue {self.qid}: {message}", fes, fei))

    def _slot_for(self, cid: int, fei: int) -> _Slot:
        if cid < self.queue_size:
            slot = self._slots[cid]
            if slot.busy:
                return slot
        raise _Violation(
            f"queue {self.qid}: the target names command {cid}, which is not in flight",
            FatalErrorStatus.INVALID_HEADER_FIELD,
            fei,
        )

    def _on_ic_resp(self, pdu: ICResp, done: list[Completed]) -> None:
        if self._state is not QueueState.AWAIT_IC_RESP:
            raise _Violation(
                f"queue {self.qid}: ICResp while {self._state.value}",
                FatalErrorStatus.PDU_SEQUENCE_ERROR,
            )
        if (pdu.hdgst_enable, pdu.ddgst_enable) != (self.header_digest, self.data_digest):
            self._fail(
                TransportError(
                    f"queue {self.qid}: asked for header digest {self.header_digest} and "
                    f"data digest {self.data_digest}, the target set {pdu.hdgst_enable} "
                    f"and {pdu.ddgst_enable}"
                )
            )
            return
        self._reader.configure(header_digest=pdu.hdgst_enable, data_digest=pdu.ddgst_enable)
        self._writer.configure(
            header_digest=pdu.hdgst_enable, data_digest=pdu.ddgst_enable, pda=pdu.cpda
        )
        self._writer.max_h2c_data = pdu.maxh2cdata
        self.maxh2cdata = pdu.maxh2cdata
        # Without digests, and with in-capsule data right after the SQE, every command
        # is one struct: pack it here rather than through the codec each time.
        header = self._writer.encode_capsule_cmd(bytes(_SQE.size), b"\0\0\0\0")[0]
        self._plain = not pdu.hdgst_enable and not pdu.ddgst_enable and len(header) == _CMD_HLEN
        self._move(QueueEvent.IC_RESP)
        token = self._ic_token
        self._ic_token = None
        if token is not None:
            done.append((token, 0, 0, 0, None))

    def _on_capsule_resp(self, pdu: CapsuleResp, done: list[Completed]) -> None:
        dw0, dw1, _sqhd, _sqid, cid, status = _CQE.unpack(pdu.cqe)
        self._on_cqe(dw0, dw1, cid, status, done)

    def _on_cqe(self, dw0: int, dw1: int, cid: int, status: int, done: list[Completed]) -> None:
        slot = self._slots[cid] if cid < self.queue_size else None
        if slot is None or not slot.busy:
            slot = self._slot_for(cid, _FEI_CQE_CID)
        status >>= 1
        if not status:
            if slot.received != slot.read_len or slot.sent != slot.write_len:
                status = _STATUS_DATA_TRANSFER_ERROR
            elif slot.digest_error:
                status = _STATUS_TRANSIENT_TRANSPORT
        self._complete(cid, slot, status, dw0, dw1, done)

    def _complete(
        self, cid: int, slot: _Slot, status: int, dw0: int, dw1: int, done: list[Completed]
    ) -> None:
        if slot.zombie:
            self._release(cid, slot)
        else:
            done.append((slot.token, status, dw0, dw1, slot.buf if slot.read_len else None))
            # `_release` for a command still wanted, inline: once per completion.
            slot.busy = False
            slot.token = None
            slot.write_data = None
            slot.buf = None
            self._free.append(cid)
        if cid == self._connect_cid:
            self._connect_cid = -1
            if status:
                self._fail(
                    TransportError(
                        f"queue {self.qid}: Fabrics Connect failed: "
                        f"{NvmeStatus.from_field(status).describe()}"
                    )
                )
                return
            self.cntlid = dw0 & 0xFFFF
            self._move(QueueEvent.CONNECTED)

    def _on_c2h_data(self, pdu: C2HData, done: list[Completed]) -> None:
        data = pdu.data
        size = data.nbytes if type(data) is memoryview else len(data)
        self._on_c2h(pdu.cccid, pdu.offset, data, size, pdu.success, done)

    def _on_c2h(
        self, cid: int, offset: int, data: Buffer, size: int, success: bool, done: list[Completed]
    ) -> None:
        slot = self._slots[cid] if cid < self.queue_size else None
        if slot is None or not slot.busy:
            slot = self._slot_for(cid, _FEI_CCCID)
        if not slot.read_len or offset != slot.received or offset + size > slot.read_len:
            raise _Violation(
                f"queue {self.qid}: C2HData for command {cid} at bytes {offset}..{offset + size}"
                f" does not follow its {slot.received} of {slot.read_len} bytes",
                FatalErrorStatus.DATA_OUT_OF_RANGE,
            )
        if not slot.zombie:
            if size == slot.read_len:
                slot.buf = data
            else:
                buf = slot.buf
                if buf is None:
                    buf = slot.buf = bytearray(slot.read_len)
                buf[offset : offset + size] = data  # type: ignore[index]
        slot.received = offset + size
        if success:
            if slot.received != slot.read_len:
                raise _Violation(
                    f"queue {self.qid}: C2HData SUCCESS for command {cid} after "
                    f"{slot.received} of {slot.read_len} bytes",
                    FatalErrorStatus.DATA_OUT_OF_RANGE,
                )
            status = _STATUS_TRANSIENT_TRANSPORT if slot.digest_error else 0
            self._complete(cid, slot, status, 0, 0, done)

    def _on_data_digest_error(self, exc: DataDigestError, done: list[Completed]) -> None:
        pdu = exc.pdu
        if not isinstance(pdu, C2HData):
            return
        slot = self._slot_for(pdu.cccid, _FEI_CCCID)
        slot.digest_error = True
        self._on_c2h_data(pdu, done)

    def _on_r2t(self, pdu: R2T, done: list[Completed]) -> None:
        cid = pdu.cccid
        slot = self._slot_for(cid, _FEI_CCCID)
        offset, length = pdu.offset, pdu.length
        data = slot.write_data
        if data is None or offset != slot.sent or offset + length > slot.write_len:
            raise _Violation(
                f"queue {self.qid}: R2T for command {cid} asks for bytes {offset}.."
                f"{offset + length}, which do not follow its {slot.sent} of "
                f"{slot.write_len} bytes sent",
                FatalErrorStatus.DATA_OUT_OF_RANGE,
            )
        view = data if type(data) is memoryview else memoryview(data)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        step = self.maxh2cdata
        end = offset + length
        out = self._out
        encode = self._writer.encode_h2c_data
        ttag = pdu.ttag
        at = offset
        while at < end:
            chunk = min(step, end - at)
            out += encode(cid, ttag, at, view[at : at + chunk], last=at + chunk == end)
            at += chunk
        slot.sent = end
        if end == slot.write_len:
            slot.write_data = None

    def _on_term_req(self, pdu: C2HTermReq, done: list[Completed]) -> None:
        self._fail(TargetTerminated(pdu.fes, pdu.fei, bytes(pdu.error_data)))
