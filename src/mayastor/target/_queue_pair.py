"""One NVMe/TCP connection of the target, without the socket (sans I/O).

Bytes from the host go into `QueuePair.receive`; they are cut into PDUs by the codec
(`PduReader`), and each PDU moves the connection through its state table
(`_queue_state`): the IC exchange (digests, data alignment, MAXH2CDATA), a Fabrics
Connect that creates a controller (admin queue) or joins one (I/O queue), then
commands. What goes back to the host leaves through `Link.send` as lists of buffers
for `transport.writelines`; work that waits for a device runs through `Link.spawn`.

The I/O path is kept short: an I/O command's SQE is unpacked with one precompiled
struct, in-capsule write data and single-PDU R2T data reach `device.write` as the
read-only memoryviews the codec made (no copy), read data goes from the device's
buffer straight into the C2HData parts, and with SQ flow control disabled a read
ends with the C2HData SUCCESS flag instead of a CapsuleResp.

Write data that does not fit in the capsule is asked for with R2Ts of at most
MAXH2CDATA bytes, never more outstanding for one command than the host's MAXR2T
allows. A command's whole transfer is reserved against the connection's and the
target's write-data budgets before its first R2T; a command that does not fit waits
(in order) until data comes in, and a connection that owes data and sends none for
`write_data_timeout` is closed. A connection that sends no ICReq, or no successful
Connect, in time is closed too (`expire`). A PDU that breaks the protocol gets a
C2HTermReq and the connection is closed; no other connection is touched.

A new admin command whose command ID is that of an Asynchronous Event Request the
controller still holds retires that request silently: the host has given it up
(SPDK's host does so when it detaches, then reads CC, sets CC.SHN and polls CSTS
with the freed IDs). A command ID in flight on an I/O queue is a conflict.
"""

from __future__ import annotations

import functools
import logging
import struct
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from mayastor.bdev import BlockDevice, Buffer, ReservationCell
from mayastor.errors import DeviceError
from mayastor.nvmf.auth import (
    SECP_DHCHAP,
    SPSP_DHCHAP,
    ControllerAuthentication,
)
from mayastor.nvmf.pdu import (
    CapsuleCmd,
    DataDigestError,
    FatalErrorStatus,
    H2CData,
    H2CTermReq,
    ICReq,
    Parts,
    PduError,
    PduFlags,
    PduReader,
    PduWriter,
    Role,
)
from mayastor.nvmf.spec import (
    DSM_RANGE_SIZE,
    DYNAMIC_CNTLID,
    NSID_ALL,
    Authentication,
    Command,
    Connect,
    ConnectData,
    FabricsCommandType,
    IoOpcode,
    SpecError,
    connect_invalid_parameter_dw0,
    connect_success_dw0,
    decode_dsm_ranges,
    validate_nqn,
)
from mayastor.target._admin import execute_admin, execute_fabrics
from mayastor.target._config import ADMIN_IN_CAPSULE_DATA
from mayastor.target._controller import Controller, release_controller
from mayastor.target._controller_state import ControllerAction, ControllerEvent
from mayastor.target._owed_writes import OwedWrites
from mayastor.target._queue_state import QUEUE_TABLE, QueueAction, QueueEvent, QueueState
from mayastor.target._reply import (
    AUTHENTICATION_REQUIRED,
    COMMAND_ID_CONFLICT,
    COMMAND_SEQUENCE_ERROR,
    CONNECT_CONTROLLER_BUSY,
    CONNECT_INCOMPATIBLE_FORMAT,
    CONNECT_INVALID_HOST,
    CONNECT_INVALID_PARAMETERS,
    INTERNAL_ERROR,
    INVALID_FIELD,
    INVALID_NAMESPACE,
    INVALID_OPCODE,
    LBA_OUT_OF_RANGE,
    SGL_LENGTH_INVALID,
    SGL_OFFSET_INVALID,
    SGL_TYPE_INVALID,
    TRANSIENT_TRANSPORT_ERROR,
    Reply,
)
from mayastor.target._reservations import (
    NO_HOST,
    RESERVATION_CONFLICT,
    RESERVATION_OPCODES,
    ReservationQueue,
)
from mayastor.target._subsystem import NSID, Subsystem, SubsystemRegistry
from mayastor.target._table import TransitionError

log = logging.getLogger(__name__)

_IO_SQE = struct.Struct("<BxHI16xQI3xBIII12x")
"""The fields of an I/O SQE: opcode, CID, NSID, SGL address, length and identifier,
CDW10-12."""
_CQE = struct.Struct("<IIHHHH")
"""A CQE: DW0, DW1, SQHD, SQID, CID, status field << 1."""
_RESP = struct.Struct("<8sIIHHHH")
"""A whole CapsuleResp without header digest: its common header, then the CQE."""
_C2H = struct.Struct("<BBBBIH2xII4x")
"""A C2HData header without digests or padding: type, flags, HLEN, PDO, PLEN, CID,
DATAO, DATAL."""
_C2H_TYPE = 0x07
_C2H_LAST = int(PduFlags.LAST_PDU)
_C2H_LAST_SUCCESS = int(PduFlags.LAST_PDU | PduFlags.SUCCESS)
_COMMON_HEADER_LEN = 8
_TRANSPORT_SGL = 0x5A
"""SGL identifier of a Transport Data Block (data by R2T/H2CData or C2HData)."""
_IN_CAPSULE_SGL = 0x01
"""SGL identifier of a Data Block with the Offset subtype (in-capsule data)."""
_FABRICS = 0x7F
_CLOSED = QueueState.CLOSED
_IO = QueueState.IO
_FUA = 1 << 30
_DEAC = 1 << 25
_DSM_DEALLOCATE = 1 << 2
_DSM_MAX_RANGES = 256
_WRITE_OPCODE = int(IoOpcode.WRITE)
_DSM_OPCODE = int(IoOpcode.DATASET_MANAGEMENT)
_AUTH_COMMANDS = (FabricsCommandType.AUTHENTICATION_SEND, FabricsCommandType.AUTHENTICATION_RECEIVE)
_AUTHENTICATING = (QueueState.AUTH_ADMIN, QueueState.AUTH_IO)
_MAX_AUTH_MESSAGE = 4096
"""Largest DH-HMAC-CHAP message we take or hold room for (an FFDHE8192 reply is 1168)."""
_NO_RESERVATIONS = ReservationCell()
"""The cell of a queue that serves no namespace (yet): never holds a reservation."""
_MAX_R2T = 16
"""R2Ts we keep outstanding for one command at most, whatever more the host allows."""
_FEI_TTAG = 10
"""Byte offset of TTAG in an H2CData header, for a termination's FEI."""

_INVALID_OPCODE = INVALID_OPCODE.field
_INVALID_FIELD = INVALID_FIELD.field
_INVALID_NAMESPACE = INVALID_NAMESPACE.field
_LBA_OUT_OF_RANGE = LBA_OUT_OF_RANGE.field
_SGL_LENGTH_INVALID = SGL_LENGTH_INVALID.field
_SGL_TYPE_INVALID = SGL_TYPE_INVALID.field
_SGL_OFFSET_INVALID = SGL_OFFSET_INVALID.field
_INTERNAL_ERROR = INTERNAL_ERROR.field
_RESERVATION_CONFLICT = RESERVATION_CONFLICT.field
_TRANSIENT = TRANSIENT_TRANSPORT_ERROR.field
_CID_CONFLICT = COMMAND_ID_CONFLICT.field
_INVALID_PARAMETERS = CONNECT_INVALID_PARAMETERS.field


class Link(Protocol):
    """What a queue pair needs from the I/O shell around it."""

    def send(self, parts: Parts) -> None:
        """Queue buffers for the host; the shell writes them out in batches, in order."""

    def close(self) -> None:
        """Write out what is queued, then close the connection."""

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` concurrently (device I/O); the shell waits for it before it goes."""


class _Transfer:
    """Host data a command is waiting for, asked for with R2Ts.

    The data goes into one buffer, unless a single H2CData PDU carries all of it, whose
    payload is then used as it is.
    """

    __slots__ = ("buffer", "cid", "corrupt", "length", "offered", "on_data", "received", "whole")

    def __init__(self, cid: int, length: int, on_data: Callable[[Buffer], None]) -> None:
        self.cid = cid
        self.length = length
        self.on_data = on_data
        self.offered = 0  # bytes asked for by R2Ts so far
        self.received = 0
        self.buffer: bytearray | None = None
        self.whole: Buffer | None = None
        self.corrupt = False  # a data digest failed: the command ends in an error


class _Window:
    """One outstanding R2T: where its data goes and how much has come."""

    __slots__ = ("end", "next", "transfer")

    def __init__(self, transfer: _Transfer, start: int, end: int) -> None:
        self.transfer = transfer
        self.next = start
        self.end = end


class QueuePair(ReservationQueue):
    """The protocol state of one connection; see the module docstring.

    Args:
        registry: the target's subsystems (Connect looks them up).
        link: the I/O shell's side (send, close, spawn).
        port: the local port the connection came in on.
        peer: the host's address, ``host:port``, for listings.
        now: the time the connection was accepted, in seconds (the ICReq timeout).
    """

    def __init__(
        self,
        registry: SubsystemRegistry,
        link: Link,
        *,
        port: int,
        peer: str = "",
        now: float = 0.0,
    ) -> None:
        config = registry.config
        self._registry = registry
        self._config = config
        self._link = link
        self._send = link.send
        self._spawn = link.spawn
        self.port = port
        self.peer = peer
        self.state = QueueState.AWAIT_IC_REQ
        self.qid = 0
        self.controller: Controller | None = None
        self.header_digest = False
        self.data_digest = False
        # Until a Connect succeeds nothing larger than an admin capsule's data is
        # legitimate, so a connection that never connects buffers little.
        self._reader = PduReader(Role.CONTROLLER, max_data_length=ADMIN_IN_CAPSULE_DATA)
        self._writer = PduWriter(Role.CONTROLLER)
        self._now = now
        self._born = now
        self._ic_at = now
        self._limits = registry.limits
        self._owed: OwedWrites[_Transfer] = OwedWrites(
            config,
            registry.write_budget,
            registry.limits,
            peer=peer,
            start=self._send_r2ts,
            stalled=functools.partial(self._step, QueueEvent.TIMEOUT),
        )
        self._device: BlockDevice | None = None
        self._queue_size = config.max_admin_queue_entries
        self._in_capsule_limit = max(config.in_capsule_data_size, ADMIN_IN_CAPSULE_DATA)
        self._max_transfer = config.max_data_transfer
        self._max_r2t = 1
        self._sqhd = 0
        self._sq_flow_control = True
        self._resp_header: bytes | None = None
        self._plain_c2h = False
        self._inflight: dict[int, int] = {}  # CID -> SLBA (0 without one)
        self._device_io = 0
        self.when_idle: Callable[[], None] | None = None
        self._windows: dict[int, _Window] = {}
        self._next_ttag = 0
        self._handlers: dict[type, Callable[[Any], None]] = {
            ICReq: self._on_ic_req,
            CapsuleCmd: self._on_capsule,
            H2CData: self._on_h2c_data,
            H2CTermReq: self._on_term_req,
        }
        self._io_handlers: dict[int, Callable[..., None]] = {
            IoOpcode.READ: self._read,
            IoOpcode.WRITE: self._write,
            IoOpcode.FLUSH: self._flush,
            IoOpcode.WRITE_ZEROES: self._write_zeroes,
            IoOpcode.DATASET_MANAGEMENT: self._dataset_management,
        }
        for opcode in RESERVATION_OPCODES:
            self._io_handlers[opcode] = functools.partial(self._reservation_command, opcode)
        self._resv = _NO_RESERVATIONS  # the namespace's, once an I/O queue is connected
        self._host = NO_HOST
        self._resv_cids: set[int] = set()
        self._auth: ControllerAuthentication | None = None

    def __repr__(self) -> str:
        return f"<QueuePair {self.peer} port={self.port} qid={self.qid} {self.state.value}>"

    @property
    def closed(self) -> bool:
        return self.state is QueueState.CLOSED

    @property
    def inflight(self) -> int:
        """Commands received and not yet completed (held AERs included)."""
        return len(self._inflight)

    @property
    def device_io(self) -> int:
        """Reads and writes submitted to the device that have not ended yet; `when_idle`
        is called each time this drops to 0."""
        return self._device_io

    # ------------------------------------------------------------------ input

    def receive(self, data: bytes, now: float) -> None:
        """Take bytes from the host and act on every whole PDU in them.

        Args:
            data: the next bytes of the stream.
            now: the time, in seconds (keep-alive).
        """
        if self.state is QueueState.CLOSED:
            return
        ctrl = self.controller
        if ctrl is not None:
            ctrl.keep_alive.traffic = True
        self._now = now
        reader = self._reader
        reader.feed(data)
        handlers = self._handlers
        while True:
            try:
                pdu = reader.next_pdu()
                if pdu is None:
                    return
                if type(pdu) is CapsuleCmd and self.state is _IO:
                    sqe = pdu.sqe
                    if sqe[0] != _FABRICS:
                        self._io_command(sqe, pdu.data)
                        continue
                handlers[type(pdu)](pdu)
            except PduError as err:
                self._step(QueueEvent.PROTOCOL_ERROR, err)
                return
            except DataDigestError as digest_error:
                self._data_digest_error(digest_error)
            if self.state is _CLOSED:
                return

    def transport_closed(self) -> None:
        """The TCP connection is gone (closed by either side)."""
        self._step(QueueEvent.TRANSPORT_CLOSED)

    def controller_gone(self) -> None:
        """Our controller was freed or reset: close this connection."""
        self._step(QueueEvent.CONTROLLER_GONE)

    def deadline(self) -> float | None:
        """When this connection is closed unless it makes progress: the ICReq timeout
        before the ICReq, the Connect timeout after it; None once connected."""
        if self.state is QueueState.AWAIT_IC_REQ:
            return self._born + self._config.ic_timeout
        if self.state is QueueState.AWAIT_CONNECT:
            return self._ic_at + self._config.connect_timeout
        return None

    def expire(self, now: float) -> float | None:
        """Close the connection if its `deadline` has passed at `now`.

        Returns:
            the deadline still ahead, or None (closed, or connected: no deadline).
        """
        deadline = self.deadline()
        if deadline is None or now < deadline:
            return deadline
        if self.state is QueueState.AWAIT_IC_REQ:
            self._limits.hit(
                "ic_timeout", now, "%s sent no ICReq in %s s; closed",
                self.peer, self._config.ic_timeout,
            )  # fmt: skip
        else:
            self._limits.hit(
                "connect_timeout", now, "%s sent no successful Connect in %s s; closed",
                self.peer, self._config.connect_timeout,
            )  # fmt: skip
        self._step(QueueEvent.TIMEOUT)
        return None

    @property
    def pending_write_bytes(self) -> int:
        """Write data asked for by R2T (or reserved for it) and not yet received."""
        return self._owed.reserved

    @property
    def waiting_transfers(self) -> int:
        """Commands whose data is not asked for yet: they wait for write-data budget."""
        return self._owed.waiting

    # ------------------------------------------------------------------ state

    def _step(self, event: QueueEvent, error: PduError | None = None) -> None:
        try:
            action, self.state = QUEUE_TABLE.step(self.state, event)
        except TransitionError as exc:
            raise PduError(
                FatalErrorStatus.PDU_SEQUENCE_ERROR, f"{event.value} in {self.state.value}"
            ) from exc
        if action is QueueAction.NONE or action is QueueAction.ANSWER_IC:
            return
        if action is QueueAction.TERMINATE and error is not None:
            self._send(self._writer.encode_term_req(error.fes, error.fei, error.header))
        for window in self._windows.values():
            self._inflight.pop(window.transfer.cid, None)  # their data will never come
        self._windows.clear()
        for transfer in self._owed.end():
            self._inflight.pop(transfer.cid, None)
        self._leave_controller()
        if action is not QueueAction.DETACH:
            self._link.close()

    def _leave_controller(self) -> None:
        ctrl = self.controller
        if ctrl is None:
            return
        self.controller = None
        if ctrl.admin is self:
            ctrl.admin = None
            if ctrl.handle(ControllerEvent.ADMIN_QUEUE_LOST) is ControllerAction.FREE:
                release_controller(ctrl)
        elif ctrl.io_queues.get(self.qid) is self:
            del ctrl.io_queues[self.qid]

    def _on_ic_req(self, pdu: ICReq) -> None:
        self._step(QueueEvent.IC_REQ)
        self._ic_at = self._now
        hdgst, ddgst = pdu.hdgst_enable, pdu.ddgst_enable
        self._send(
            self._writer.encode_ic_resp(
                cpda=0,
                hdgst_enable=hdgst,
                ddgst_enable=ddgst,
                maxh2cdata=self._config.max_h2c_data,
            )
        )
        self._reader.configure(header_digest=hdgst, data_digest=ddgst, pda=0)
        self._writer.configure(header_digest=hdgst, data_digest=ddgst, pda=pdu.hpda)
        self.header_digest, self.data_digest = hdgst, ddgst
        self._resp_header = None
        if not hdgst:
            # Without a header digest every CapsuleResp is the same common header and
            # then the CQE: take the header from the codec once, pack the rest per I/O.
            (frame,) = self._writer.encode_capsule_resp(bytes(_CQE.size))
            self._resp_header = bytes(frame[:_COMMON_HEADER_LEN])
        # Likewise a C2HData header is packed here when the codec would add no digest
        # and no padding (the host's alignment is met by the 24-byte header).
        header = self._writer.encode_c2h_data(0, 0, b"\0")[0]
        self._plain_c2h = not hdgst and not ddgst and len(header) == _C2H.size
        self._max_r2t = min(pdu.maxr2t + 1, _MAX_R2T)

    def _on_term_req(self, pdu: H2CTermReq) -> None:
        self._step(QueueEvent.TERMINATE)

    # ------------------------------------------------------------------ commands

    def _on_capsule(self, pdu: CapsuleCmd) -> None:
        if self.state is QueueState.IO:
            sqe = pdu.sqe
            if sqe[0] != _FABRICS:
                self._io_command(sqe, pdu.data)
                return
        else:
            self._step(QueueEvent.COMMAND)
        self._other_command(Command.decode(pdu.sqe), pdu.data)

    def _admit(self, cid: int) -> bool:
        """Count a new command in; False (answered) on a CID already in flight."""
        if self._sq_flow_control:
            self._sqhd = (self._sqhd + 1) % self._queue_size
        if cid in self._inflight:
            ctrl = self.controller
            if ctrl is None or ctrl.admin is not self or not ctrl.drop_async_event(cid):
                self._respond(cid, _CID_CONFLICT)
                return False
            del self._inflight[cid]
            log.debug("%s reused the ID %d of a held Async Event Request", self.peer, cid)
        if len(self._inflight) >= self._queue_size:
            raise PduError(
                FatalErrorStatus.PDU_SEQUENCE_ERROR,
                f"more than {self._queue_size} commands outstanding on queue {self.qid}",
            )
        return True

    def _other_command(self, cmd: Command, data: Buffer) -> None:
        """Anything but an I/O command on an I/O queue: Connect, admin, Fabrics."""
        if not self._admit(cmd.cid):
            return
        if cmd.is_fabrics and cmd.fctype == FabricsCommandType.CONNECT:
            if self.state is not QueueState.AWAIT_CONNECT:
                self._complete(cmd.cid, COMMAND_SEQUENCE_ERROR.field)
                return
            sgl = cmd.sgl
            self._host_data(
                cmd.cid,
                (sgl.identifier, sgl.address, sgl.length),
                data,
                (ConnectData.layout.size, ConnectData.layout.size),
                lambda payload: self._connect(cmd, payload),
            )
            return
        if cmd.is_fabrics and cmd.fctype in _AUTH_COMMANDS:
            self._authentication(cmd, data)
            return
        if self.state in _AUTHENTICATING:
            self._complete(cmd.cid, AUTHENTICATION_REQUIRED.field)
            return
        ctrl = self.controller
        if self.state is not QueueState.ADMIN or ctrl is None:
            status = INVALID_OPCODE if self.state is QueueState.IO else COMMAND_SEQUENCE_ERROR
            self._complete(cmd.cid, status.field)
            return
        if data:
            self._complete(cmd.cid, _SGL_LENGTH_INVALID)
            return
        if cmd.is_fabrics:
            self._answer(cmd, execute_fabrics(ctrl, cmd))
            return
        reply = execute_admin(ctrl, cmd, self._now)
        if reply is None:
            self._inflight[cmd.cid] = 0  # a held Asynchronous Event Request
            return
        self._answer(cmd, reply)

    def _answer(self, cmd: Command, reply: Reply) -> None:
        status = reply.status.field
        if reply.data is not None and not status:
            sgl = cmd.sgl
            size = min(len(reply.data), sgl.length)
            if not sgl.is_transport or not size:
                self._complete(cmd.cid, _SGL_LENGTH_INVALID)
                return
            self._send(self._writer.encode_c2h_data(cmd.cid, 0, memoryview(reply.data)[:size]))
        if status:
            self._complete(cmd.cid, status, dw0=reply.dw0, nsid=cmd.nsid)
        else:
            self._complete(cmd.cid, 0, reply.dw0, reply.dw1)
        if reply.then is not ControllerAction.NONE and self.controller is not None:
            self._carry_out(self.controller, reply.then)

    def _carry_out(self, ctrl: Controller, action: ControllerAction) -> None:
        if action is ControllerAction.RESET:
            for queue in list(ctrl.io_queues.values()):
                queue.controller_gone()
        elif action is ControllerAction.FLUSH:
            ctrl.shutdowns += 1
            self._spawn(_shutdown_flush(ctrl, ctrl.shutdowns))

    def complete_async_event(self, cid: int, dw0: int) -> None:
        """Complete a held Asynchronous Event Request with an event."""
        if self._inflight.pop(cid, None) is not None:
            self._respond(cid, 0, dw0)

    # ------------------------------------------------------------------ Connect

    def _connect(self, cmd: Command, data: Buffer) -> None:
        cid = cmd.cid
        connect = Connect.from_command(cmd)
        try:
            params = ConnectData.decode(data)
        except SpecError as exc:
            where = exc.offset if exc.offset is not None else ConnectData.layout.offset("subnqn")
            self._complete(cid, _INVALID_PARAMETERS, dw0=_in_data(where))
            return
        if connect.recfmt:
            self._complete(
                cid, CONNECT_INCOMPATIBLE_FORMAT.field, dw0=_in_sqe(Connect.RECFMT_OFFSET)
            )
            return
        sub = self._registry.find(params.subnqn, self.port)
        if sub is None:
            self._complete(cid, _INVALID_PARAMETERS, dw0=_in_data_field("subnqn"))
            return
        try:
            validate_nqn(params.hostnqn)
        except SpecError:
            self._complete(cid, _INVALID_PARAMETERS, dw0=_in_data_field("hostnqn"))
            return
        keys = sub.keys_for(params.hostnqn) if sub.requires_authentication else None
        if not sub.allows(params.hostnqn) or (sub.requires_authentication and keys is None):
            self._complete(cid, CONNECT_INVALID_HOST.field, dw0=_in_data_field("hostnqn"))
            return
        if keys is not None:
            self._auth = ControllerAuthentication(
                keys,
                hostnqn=params.hostnqn,
                subnqn=sub.nqn,
                seqnums=self._registry.auth_seqnums,
                hashes=self._config.dhchap_hashes,
                dhgroups=self._config.dhchap_dhgroups,
            )
        if connect.qid == 0:
            self._connect_admin(cid, connect, params, sub)
        else:
            self._connect_io(cid, connect, params, sub)

    def _connect_admin(
        self, cid: int, connect: Connect, params: ConnectData, sub: Subsystem
    ) -> None:
        config = self._config
        if not 1 <= connect.sqsize < config.max_admin_queue_entries:
            self._complete(cid, _INVALID_PARAMETERS, dw0=_in_sqe(Connect.SQSIZE_OFFSET))
            return
        if params.cntlid != DYNAMIC_CNTLID:
            self._complete(cid, _INVALID_PARAMETERS, dw0=_in_data_field("cntlid"))
            return
        if len(sub.controllers) >= config.max_controllers:
            self._limits.hit(
                "max_controllers", self._now, "%s has %d controllers; Connect of %s refused",
                sub.nqn, len(sub.controllers), params.hostnqn,
            )  # fmt: skip
            self._complete(cid, CONNECT_CONTROLLER_BUSY.field)
            return
        cntlid = sub.allocate_cntlid()
        if cntlid is None:
            self._complete(cid, CONNECT_CONTROLLER_BUSY.field)
            return
        kato = connect.kato
        if sub.is_discovery and not kato:
            kato = config.discovery_keep_alive_ms
        ctrl = Controller(
            self._registry,
            sub,
            cntlid,
            hostnqn=params.hostnqn,
            hostid=params.hostid,
            kato_ms=kato,
            now=self._now,
            admin=self,
        )
        ctrl.peer = self.peer
        ctrl.digests = (self.header_digest, self.data_digest)
        sub.controllers[cntlid] = ctrl
        self.controller = ctrl
        self._joined(0, connect)
        auth = self._auth is not None
        if auth:
            ctrl.authentication_deadline = self._now + self._config.authentication_timeout
        self._step(QueueEvent.CONNECT_ADMIN_AUTH if auth else QueueEvent.CONNECT_ADMIN)
        self._complete(cid, 0, connect_success_dw0(cntlid, authenticate=auth))

    def _connect_io(self, cid: int, connect: Connect, params: ConnectData, sub: Subsystem) -> None:
        ctrl = sub.controllers.get(params.cntlid)
        if ctrl is None or ctrl.hostnqn != params.hostnqn or ctrl.hostid != params.hostid:
            self._complete(cid, _INVALID_PARAMETERS, dw0=_in_data_field("cntlid"))
            return
        if sub.is_discovery or connect.qid > ctrl.granted_io_queues:
            self._limits.hit(
                "max_io_queues", self._now, "controller %d of %s has %d I/O queues; "
                "Connect of queue %d refused", ctrl.cntlid, sub.nqn, ctrl.granted_io_queues,
                connect.qid,
            )  # fmt: skip
            self._complete(cid, _INVALID_PARAMETERS, dw0=_in_sqe(Connect.QID_OFFSET))
            return
        if not ctrl.ready or connect.qid in ctrl.io_queues:
            self._complete(cid, COMMAND_SEQUENCE_ERROR.field)
            return
        if not 1 <= connect.sqsize < self._config.max_queue_entries:
            self._limits.hit(
                "max_queue_entries", self._now, "%s asked for %d entries, %d allowed; "
                "Connect refused", self.peer, connect.sqsize + 1, self._config.max_queue_entries,
            )  # fmt: skip
            self._complete(cid, _INVALID_PARAMETERS, dw0=_in_sqe(Connect.SQSIZE_OFFSET))
            return
        ctrl.io_queues[connect.qid] = self
        self.controller = ctrl
        self._device = sub.device
        self._resv = sub.reservations
        self._host = ctrl.hostid
        sub.reservations.attach(self)
        self._in_capsule_limit = self._config.in_capsule_data_size
        self._joined(connect.qid, connect)
        auth = self._auth is not None
        self._step(QueueEvent.CONNECT_IO_AUTH if auth else QueueEvent.CONNECT_IO)
        self._complete(cid, 0, connect_success_dw0(ctrl.cntlid, authenticate=auth))

    # ------------------------------------------------------------------ authentication

    def _authentication(self, cmd: Command, data: Buffer) -> None:
        """Authentication Send or Receive: one DH-HMAC-CHAP message in or out."""
        auth = self._auth
        if auth is None:
            self._complete(cmd.cid, COMMAND_SEQUENCE_ERROR.field)
            return
        req = Authentication.from_command(cmd)
        if (
            req.secp != SECP_DHCHAP
            or req.spsp0 != SPSP_DHCHAP
            or req.spsp1 != SPSP_DHCHAP
            or not 0 < req.length <= (_MAX_AUTH_MESSAGE if req.send else 0xFFFF)
        ):
            self._complete(cmd.cid, _INVALID_FIELD)
            return
        if req.send:
            sgl = cmd.sgl
            self._host_data(
                cmd.cid,
                (sgl.identifier, sgl.address, sgl.length),
                data,
                (req.length, req.length),
                lambda payload: self._auth_sent(auth, cmd.cid, bytes(payload)),
            )
            return
        if data:
            self._complete(cmd.cid, _SGL_LENGTH_INVALID)
            return
        message = auth.receive()
        if len(message) > req.length:
            self._complete(cmd.cid, _INVALID_FIELD)
            self._step(QueueEvent.AUTH_FAILED)
            return
        self._answer(cmd, Reply(data=message + bytes(req.length - len(message))))
        self._auth_moved(auth)

    def _auth_sent(self, auth: ControllerAuthentication, cid: int, payload: bytes) -> None:
        auth.send(payload)
        self._complete(cid, 0)
        self._auth_moved(auth)

    def _auth_moved(self, auth: ControllerAuthentication) -> None:
        if auth.over:
            ctrl = self.controller
            log.warning(
                "host %s failed DH-HMAC-CHAP on queue %d of %s (%s): closing the connection",
                ctrl.hostnqn if ctrl else "?",
                self.qid,
                ctrl.subsystem.nqn if ctrl else "?",
                auth.failure.name if auth.failure else "failed",
            )
            self._step(QueueEvent.AUTH_FAILED)
        elif auth.authenticated and self.state in _AUTHENTICATING:
            ctrl = self.controller
            if ctrl is not None and self.qid == 0:
                ctrl.authentication_deadline = None
                ctrl.keep_alive.touch(self._now)
            self._step(QueueEvent.AUTHENTICATED)

    def _joined(self, qid: int, connect: Connect) -> None:
        self._reader.max_data_length = self._config.max_pdu_data
        self.qid = qid
        self._queue_size = connect.queue_depth
        self._sq_flow_control = not connect.sq_flow_control_disabled
        self._sqhd = 1 % self._queue_size if self._sq_flow_control else 0

    # ------------------------------------------------------------------ host data

    def _host_data(
        self,
        cid: int,
        sgl: tuple[int, int, int],
        data: Buffer,
        need: tuple[int, int],
        then: Callable[[Buffer], None],
    ) -> None:
        """Get a command's host data, in the capsule or by R2T.

        Args:
            cid: the command.
            sgl: its SGL descriptor's identifier, address and length.
            data: the capsule's data.
            need: the least and the most bytes the SGL may describe (all of them are
                fetched).
            then: called with the data once it is all there.
        """
        sgl_id, address, sgl_len = sgl
        if not need[0] <= sgl_len <= need[1]:
            self._complete(cid, _SGL_LENGTH_INVALID)
        elif sgl_id == _IN_CAPSULE_SGL:
            if address:
                self._complete(cid, _SGL_OFFSET_INVALID)
            elif len(data) != sgl_len:
                self._complete(cid, _SGL_LENGTH_INVALID)
            else:
                then(data)
        elif sgl_id == _TRANSPORT_SGL and not data:
            self._inflight[cid] = 0
            self._start_transfer(cid, sgl_len, then)
        else:
            self._complete(cid, _SGL_TYPE_INVALID)

    def _start_transfer(self, cid: int, length: int, on_data: Callable[[Buffer], None]) -> None:
        self._owed.begin(_Transfer(cid, length, on_data), self._now)

    def _send_r2ts(self, transfer: _Transfer) -> None:
        for _ in range(self._max_r2t):
            if not self._ask_for_data(transfer):
                break

    def _ask_for_data(self, transfer: _Transfer) -> bool:
        """Send the next R2T of `transfer`; False when all of it has been asked for."""
        start = transfer.offered
        if start >= transfer.length:
            return False
        size = min(transfer.length - start, self._config.max_h2c_data)
        ttag = self._next_ttag
        while ttag in self._windows:
            ttag = (ttag + 1) & 0xFFFF
        self._next_ttag = (ttag + 1) & 0xFFFF
        self._windows[ttag] = _Window(transfer, start, start + size)
        transfer.offered = start + size
        self._send(self._writer.encode_r2t(transfer.cid, ttag, start, size))
        return True

    def _on_h2c_data(self, pdu: H2CData, corrupt: bool = False) -> None:
        if self.state is not QueueState.IO:
            self._step(QueueEvent.DATA)
        window = self._windows.get(pdu.ttag)
        if window is None or window.transfer.cid != pdu.cccid:
            raise PduError(
                FatalErrorStatus.INVALID_HEADER_FIELD,
                f"H2CData for CID {pdu.cccid} with unknown TTAG {pdu.ttag}",
                fei=_FEI_TTAG,
            )
        payload = pdu.data
        size = len(payload)
        self._owed.arrived(self._now)
        if pdu.offset != window.next or pdu.offset + size > window.end:
            raise PduError(
                FatalErrorStatus.DATA_OUT_OF_RANGE,
                f"H2CData bytes {pdu.offset}..{pdu.offset + size} outside the R2T window "
                f"{window.next}..{window.end}",
            )
        transfer = window.transfer
        transfer.corrupt |= corrupt
        if size == transfer.length:
            transfer.whole = payload
        else:
            if transfer.buffer is None:
                transfer.buffer = bytearray(transfer.length)
            transfer.buffer[pdu.offset : pdu.offset + size] = payload
        window.next += size
        transfer.received += size
        if window.next == window.end:
            del self._windows[pdu.ttag]
            self._ask_for_data(transfer)
        if transfer.received == transfer.length:
            self._owed.received(transfer.length)
            if transfer.corrupt:
                self._complete(transfer.cid, _TRANSIENT, nsid=NSID)
            else:
                data = transfer.whole if transfer.whole is not None else transfer.buffer
                assert data is not None
                transfer.on_data(data)

    def _data_digest_error(self, err: DataDigestError) -> None:
        pdu = err.pdu
        if isinstance(pdu, H2CData):
            self._on_h2c_data(pdu, corrupt=True)
        elif isinstance(pdu, CapsuleCmd):
            cid = int.from_bytes(pdu.sqe[2:4], "little")
            self._complete(cid, _TRANSIENT)

    # ------------------------------------------------------------------ completions

    def _respond(self, cid: int, status: int, dw0: int = 0, dw1: int = 0) -> None:
        self._send(self._capsule_resp(cid, status, dw0, dw1))

    def _capsule_resp(self, cid: int, status: int, dw0: int = 0, dw1: int = 0) -> Parts:
        header = self._resp_header
        if header is not None:
            return [_RESP.pack(header, dw0, dw1, self._sqhd, self.qid, cid, status << 1)]
        cqe = _CQE.pack(dw0, dw1, self._sqhd, self.qid, cid, status << 1)
        return self._writer.encode_capsule_resp(cqe)

    def _complete(
        self, cid: int, status: int = 0, dw0: int = 0, dw1: int = 0, *, lba: int = 0, nsid: int = 0
    ) -> None:
        """Complete a command: it leaves the in-flight set; an error goes to the error log."""
        self._inflight.pop(cid, None)
        self._respond(cid, status, dw0, dw1)
        if status:
            ctrl = self.controller
            if ctrl is not None:
                ctrl.record_error(self.qid, cid, status, lba=lba, nsid=nsid)

    # ------------------------------------------------------------------ I/O commands

    def _io_command(self, sqe: Buffer, data: Buffer) -> None:
        opcode, cid, nsid, sgl_addr, sgl_len, sgl_id, cdw10, cdw11, cdw12 = _IO_SQE.unpack(sqe)
        if self._sq_flow_control:
            self._sqhd = (self._sqhd + 1) % self._queue_size
        inflight = self._inflight
        if cid in inflight:
            self._respond(cid, _CID_CONFLICT)
            return
        if len(inflight) >= self._queue_size:
            raise PduError(
                FatalErrorStatus.PDU_SEQUENCE_ERROR,
                f"more than {self._queue_size} commands outstanding on queue {self.qid}",
            )
        handler = self._io_handlers.get(opcode)
        if handler is None:
            self._complete(cid, _INVALID_OPCODE, nsid=nsid)
            return
        if nsid != NSID and not (opcode == IoOpcode.FLUSH and nsid == NSID_ALL):
            self._complete(cid, _INVALID_NAMESPACE, nsid=nsid)
            return
        resv = self._resv
        if resv.rtype and not resv.allows(self._host, opcode):
            self._complete(cid, _RESERVATION_CONFLICT, lba=cdw10 | cdw11 << 32, nsid=nsid)
            return
        handler(cid, sgl_addr, sgl_len, sgl_id, cdw10 | cdw11 << 32, cdw12, data)

    def _check_range(self, cid: int, slba: int, nblocks: int, device: BlockDevice) -> bool:
        if slba + nblocks > device.num_blocks:
            self._complete(cid, _LBA_OUT_OF_RANGE, lba=slba, nsid=NSID)
            return False
        return True

    def _read(
        self, cid: int, addr: int, sgl_len: int, sgl_id: int, slba: int, cdw12: int, data: Buffer
    ) -> None:
        device = self._device
        assert device is not None
        nblocks = (cdw12 & 0xFFFF) + 1
        length = nblocks * device.block_size
        if sgl_id != _TRANSPORT_SGL or data:
            self._complete(cid, _SGL_TYPE_INVALID, nsid=NSID)
        elif sgl_len != length:
            self._complete(cid, _SGL_LENGTH_INVALID, nsid=NSID)
        elif length > self._max_transfer:
            self._complete(cid, _INVALID_FIELD, nsid=NSID)
        elif self._check_range(cid, slba, nblocks, device):
            self._inflight[cid] = slba
            self._device_io += 1
            device.submit_read(slba, nblocks, self._read_done, cid)

    def _device_io_ended(self) -> None:
        self._device_io -= 1
        if not self._device_io and self.when_idle is not None:
            self.when_idle()

    def _read_done(self, cid: int, data: Buffer | None, error: DeviceError | None) -> None:
        self._device_io_ended()
        if error is not None:
            self._complete(cid, error.status.field, lba=self._inflight.get(cid, 0), nsid=NSID)
            return
        assert data is not None
        del self._inflight[cid]
        if self._sq_flow_control:
            parts = self._c2h_data(cid, data, _C2H_LAST)
            parts += self._capsule_resp(cid, 0)
            self._send(parts)
        else:
            self._send(self._c2h_data(cid, data, _C2H_LAST_SUCCESS))

    def _c2h_data(self, cid: int, data: Buffer, flags: int) -> Parts:
        """The one C2HData PDU of a read: `flags` is LAST_PDU, maybe with SUCCESS."""
        if self._plain_c2h:
            size = data.nbytes if type(data) is memoryview else len(data)
            return [
                _C2H.pack(_C2H_TYPE, flags, _C2H.size, _C2H.size, _C2H.size + size, cid, 0, size),
                data,
            ]
        return self._writer.encode_c2h_data(cid, 0, data, success=flags == _C2H_LAST_SUCCESS)

    def _write(
        self, cid: int, addr: int, sgl_len: int, sgl_id: int, slba: int, cdw12: int, data: Buffer
    ) -> None:
        device = self._device
        assert device is not None
        nblocks = (cdw12 & 0xFFFF) + 1
        length = nblocks * device.block_size
        fua = bool(cdw12 & _FUA)
        if sgl_len != length:
            self._complete(cid, _SGL_LENGTH_INVALID, nsid=NSID)
        elif length > self._max_transfer:
            self._complete(cid, _INVALID_FIELD, nsid=NSID)
        elif not self._check_range(cid, slba, nblocks, device):
            pass
        elif sgl_id == _IN_CAPSULE_SGL:
            if addr:
                self._complete(cid, _SGL_OFFSET_INVALID, nsid=NSID)
            elif len(data) != length:
                self._complete(cid, _SGL_LENGTH_INVALID, nsid=NSID)
            elif length > self._in_capsule_limit:
                raise PduError(
                    FatalErrorStatus.DATA_LIMIT_EXCEEDED,
                    f"{length} bytes of in-capsule data, limit {self._in_capsule_limit}",
                )
            else:
                self._inflight[cid] = slba
                self._start_write(cid, device, slba, data, fua)
        elif sgl_id == _TRANSPORT_SGL and not data:
            self._inflight[cid] = slba
            self._start_transfer(
                cid, length, lambda payload: self._start_write(cid, device, slba, payload, fua)
            )
        else:
            self._complete(cid, _SGL_TYPE_INVALID, nsid=NSID)

    def _start_write(
        self, cid: int, device: BlockDevice, slba: int, data: Buffer, fua: bool
    ) -> None:
        resv = self._resv
        if resv.rtype and not resv.allows(self._host, _WRITE_OPCODE):
            # A reservation taken while the data was on its way.
            self._complete(cid, _RESERVATION_CONFLICT, lba=slba, nsid=NSID)
            return
        ctrl = self.controller
        if fua or (ctrl is not None and not ctrl.write_cache):
            self._spawn(self._run_write(cid, device, slba, data, fua))
            return
        self._device_io += 1
        device.submit_write(slba, data, self._write_done, cid)

    def _write_done(self, cid: int, data: Buffer | None, error: DeviceError | None) -> None:
        self._device_io_ended()
        if error is not None:
            self._complete(cid, error.status.field, lba=self._inflight.get(cid, 0), nsid=NSID)
        else:
            self._complete(cid, 0)

    async def _run_write(
        self, cid: int, device: BlockDevice, slba: int, data: Buffer, fua: bool
    ) -> None:
        try:
            await device.write(slba, data)
            ctrl = self.controller
            if fua or (ctrl is not None and not ctrl.write_cache):
                await device.flush()
        except DeviceError as exc:
            self._complete(cid, exc.status.field, lba=slba, nsid=NSID)
            return
        except Exception:
            log.exception("write of %d bytes at %d on %s failed", len(data), slba, device.name)
            self._complete(cid, _INTERNAL_ERROR, lba=slba, nsid=NSID)
            return
        self._complete(cid, 0)

    def _flush(
        self, cid: int, addr: int, sgl_len: int, sgl_id: int, slba: int, cdw12: int, data: Buffer
    ) -> None:
        device = self._device
        assert device is not None
        self._inflight[cid] = 0
        self._spawn(self._run(cid, device.flush()))

    def _write_zeroes(
        self, cid: int, addr: int, sgl_len: int, sgl_id: int, slba: int, cdw12: int, data: Buffer
    ) -> None:
        device = self._device
        assert device is not None
        nblocks = (cdw12 & 0xFFFF) + 1
        if data:
            self._complete(cid, _SGL_LENGTH_INVALID, nsid=NSID)
        elif self._check_range(cid, slba, nblocks, device):
            self._inflight[cid] = 0
            self._spawn(
                self._run_write_zeroes(cid, device, slba, nblocks, cdw12 & _DEAC, cdw12 & _FUA)
            )

    async def _run_write_zeroes(
        self, cid: int, device: BlockDevice, slba: int, nblocks: int, deac: int, fua: int
    ) -> None:
        if deac:
            await self._run(cid, device.unmap(slba, nblocks), slba, flush=bool(fua))
        else:
            await self._run(cid, device.write_zeroes(slba, nblocks), slba, flush=bool(fua))

    def _dataset_management(
        self, cid: int, addr: int, sgl_len: int, sgl_id: int, cdws: int, cdw12: int, data: Buffer
    ) -> None:
        # `cdws` is CDW10 | CDW11 << 32: NR in bits 7:0, the attributes from bit 32. The
        # buffer may be longer than NR + 1 ranges (Linux always sends room for 256).
        count = (cdws & 0xFF) + 1
        deallocate = bool((cdws >> 32) & _DSM_DEALLOCATE)
        self._host_data(
            cid,
            (sgl_id, addr, sgl_len),
            data,
            (count * DSM_RANGE_SIZE, _DSM_MAX_RANGES * DSM_RANGE_SIZE),
            lambda payload: self._deallocate(cid, payload, count, deallocate),
        )

    def _deallocate(self, cid: int, payload: Buffer, count: int, deallocate: bool) -> None:
        device = self._device
        assert device is not None
        self._inflight[cid] = 0
        resv = self._resv
        if resv.rtype and not resv.allows(self._host, _DSM_OPCODE):
            self._complete(cid, _RESERVATION_CONFLICT, nsid=NSID)
            return
        if not deallocate:
            self._complete(cid, 0)
            return
        ranges = [r for r in decode_dsm_ranges(payload, count) if r.nblocks]
        for r in ranges:
            if r.slba + r.nblocks > device.num_blocks:
                self._complete(cid, _LBA_OUT_OF_RANGE, lba=r.slba, nsid=NSID)
                return
        self._spawn(self._run_unmaps(cid, device, [(r.slba, r.nblocks) for r in ranges]))

    async def _run_unmaps(
        self, cid: int, device: BlockDevice, ranges: list[tuple[int, int]]
    ) -> None:
        for slba, nblocks in ranges:
            try:
                await device.unmap(slba, nblocks)
            except DeviceError as exc:
                self._complete(cid, exc.status.field, lba=slba, nsid=NSID)
                return
            except Exception:
                log.exception("unmap of %d blocks at %d on %s failed", nblocks, slba, device.name)
                self._complete(cid, _INTERNAL_ERROR, lba=slba, nsid=NSID)
                return
        self._complete(cid, 0)

    async def _run(
        self, cid: int, work: Coroutine[Any, Any, None], lba: int = 0, *, flush: bool = False
    ) -> None:
        device = self._device
        assert device is not None
        try:
            await work
            if flush:
                await device.flush()
        except DeviceError as exc:
            self._complete(cid, exc.status.field, lba=lba, nsid=NSID)
            return
        except Exception:
            log.exception("I/O command %d on %s failed", cid, device.name)
            self._complete(cid, _INTERNAL_ERROR, lba=lba, nsid=NSID)
            return
        self._complete(cid, 0)


def _in_data(offset: int) -> int:
    return connect_invalid_parameter_dw0(offset, in_data=True)


def _in_data_field(name: str) -> int:
    return _in_data(ConnectData.layout.offset(name))


def _in_sqe(offset: int) -> int:
    return connect_invalid_parameter_dw0(offset, in_data=False)


async def _shutdown_flush(ctrl: Controller, serial: int) -> None:
    """Flush the device for shutdown notification `serial`, then report the shutdown
    done, or failed (CSTS.CFS, never SHST complete) when the flush fails. The flush of
    a notification that a reset and a newer one overtook reports nothing: only the
    newest flush covers every write before the shutdown the host waits for."""
    device = ctrl.subsystem.device
    if device is not None:
        try:
            await device.flush()
        except DeviceError as exc:
            if ctrl.shutdowns != serial:
                return
            log.warning(
                "flush for the shutdown of controller %d of %s failed: %s; CSTS reports a "
                "controller fatal status, not a clean shutdown",
                ctrl.cntlid, ctrl.subsystem.nqn, exc,
            )  # fmt: skip
            ctrl.handle(ControllerEvent.SHUTDOWN_FAILED)
            return
    if ctrl.shutdowns == serial:
        ctrl.handle(ControllerEvent.SHUTDOWN_DONE)
