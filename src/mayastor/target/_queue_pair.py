"""One NVMe/TCP connection of the target, without the socket (sans I/O).

Bytes from the host go into `QueuePair.receive`; they are cut into PDUs by the codec
(`PduReader`), and each PDU moves the connection through its state table
(`_queue_state`): the IC exchange (digests, data alignment, MAXH2CDATA), a Fabrics
Connect that creates a controller (admin queue) or joins one (I/O queue), then
commands. What goes back to the host leaves through `Link.send` as lists of buffers
for `transport.writelines`; work that waits for a device runs through `Link.spawn`.

The I/O path is kept short: on an I/O queue without digests, I/O capsules and
H2CData PDUs are decoded in place from each receive (the codec's checks for the
shapes hosts send; anything else goes through the codec), in-capsule write data and
single-PDU R2T data reach the device as read-only memoryviews of the received bytes
(no copy), and the part of a large H2CData payload not yet received is the `sink`
the I/O shell receives straight into; that input side is `DataTransfer`
(`_transfer`), and the I/O commands run in `IoCommands` (`_io_commands`).

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
from collections.abc import Coroutine
from typing import Any, Final, Protocol

from mayastor.bdev import Buffer, ReservationCell
from mayastor.errors import DeviceError, caused_by
from mayastor.nvmf.auth import (
    SECP_DHCHAP,
    SPSP_DHCHAP,
    ControllerAuthentication,
)
from mayastor.nvmf.pdu import (
    CapsuleCmd,
    FatalErrorStatus,
    H2CData,
    H2CTermReq,
    ICReq,
    Parts,
    PduError,
    PduReader,
    PduWriter,
    Role,
)
from mayastor.nvmf.spec import (
    DYNAMIC_CNTLID,
    Authentication,
    Command,
    Connect,
    ConnectData,
    FabricsCommandType,
    IoOpcode,
    SpecError,
    connect_invalid_parameter_dw0,
    connect_success_dw0,
    validate_nqn,
)
from mayastor.target._admin import execute_admin, execute_fabrics
from mayastor.target._config import ADMIN_IN_CAPSULE_DATA
from mayastor.target._controller import Controller, release_controller
from mayastor.target._controller_state import ControllerAction, ControllerEvent
from mayastor.target._io_commands import (
    C2H_HEADER,
    CQE,
)
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
    INVALID_FIELD,
    INVALID_OPCODE,
    SGL_LENGTH_INVALID,
    Reply,
)
from mayastor.target._reservations import (
    NO_HOST,
    RESERVATION_OPCODES,
)
from mayastor.target._subsystem import Subsystem, SubsystemRegistry
from mayastor.target._table import TransitionError
from mayastor.target._transfer import DataTransfer, Transfer

log = logging.getLogger(__name__)

_COMMON_HEADER_LEN: Final = 8
_FABRICS: Final = 0x7F
_AUTH_COMMANDS: Final = (
    FabricsCommandType.AUTHENTICATION_SEND,
    FabricsCommandType.AUTHENTICATION_RECEIVE,
)
_AUTHENTICATING: Final = (QueueState.AUTH_ADMIN, QueueState.AUTH_IO)
_MAX_AUTH_MESSAGE: Final = 4096
"""Largest DH-HMAC-CHAP message we take or hold room for (an FFDHE8192 reply is 1168)."""
_NO_RESERVATIONS: Final = ReservationCell()
"""The cell of a queue that serves no namespace (yet): never holds a reservation."""
_MAX_R2T: Final = 16
"""R2Ts we keep outstanding for one command at most, whatever more the host allows."""

_INVALID_FIELD: Final = INVALID_FIELD.field
_SGL_LENGTH_INVALID: Final = SGL_LENGTH_INVALID.field
_CID_CONFLICT: Final = COMMAND_ID_CONFLICT.field
_INVALID_PARAMETERS: Final = CONNECT_INVALID_PARAMETERS.field


class Link(Protocol):
    """What a queue pair needs from the I/O shell around it."""

    def send(self, parts: Parts) -> None:
        """Queue buffers for the host; the shell writes them out in batches, in order."""

    def close(self) -> None:
        """Write out what is queued, then close the connection."""

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` concurrently (device I/O); the shell waits for it before it goes."""


class QueuePair(DataTransfer):
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
        self.controller = None
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
        self._owed = OwedWrites[Transfer](
            config,
            registry.write_budget,
            registry.limits,
            peer=peer,
            start=self._send_r2ts,
            stalled=functools.partial(self._step, QueueEvent.TIMEOUT),
        )
        self._device = None
        self._queue_size = config.max_admin_queue_entries
        self._in_capsule_limit = max(config.in_capsule_data_size, ADMIN_IN_CAPSULE_DATA)
        self._max_transfer = config.max_data_transfer
        self._max_r2t = 1
        self._sqhd = 0
        self._sq_flow_control = True
        self._resp_header = None
        self._plain_c2h = False
        self._inflight = {}  # CID -> SLBA (0 without one)
        self._device_io = 0
        self.when_idle = None
        self._windows = {}
        self._next_ttag = 0
        self._no_digests = False
        self._sink = None
        self._sink_window = None
        self._sink_ttag = 0
        self._sink_size = 0
        self._batch = None
        self._lent = {}  # CID -> the buffer its write data came in
        self._spare = {}  # length -> buffers of ended writes, for the next ones
        self._spare_bytes = 0
        self._on_read = self._read_done  # bound once: not one method object per I/O
        self._on_write = self._write_done
        self._handlers = {
            ICReq: self._on_ic_req,
            CapsuleCmd: self._on_capsule,
            H2CData: self._on_h2c_data,
            H2CTermReq: self._on_term_req,
        }
        self._io_handlers = {
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

    # ------------------------------------------------------------------ lifetime

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
            error = PduError(
                FatalErrorStatus.PDU_SEQUENCE_ERROR, f"{event.value} in {self.state.value}"
            )
            raise caused_by(error, exc)
        if action is QueueAction.NONE or action is QueueAction.ANSWER_IC:
            return
        if action is QueueAction.TERMINATE and error is not None:
            self._send(self._writer.encode_term_req(error.fes, error.fei, error.header))
        for window in self._windows.values():
            self._inflight.pop(window.transfer.cid, None)  # their data will never come
        self._windows.clear()
        self._sink = self._sink_window = None
        for transfer in self._owed.end():
            self._inflight.pop(transfer.cid, None)
        self._leave_controller()
        if action is not QueueAction.DETACH:
            batch = self._batch
            if batch:  # closed inside `receive`: what it collected goes out first
                self._link.send(batch[:])
                batch.clear()
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
        self._no_digests = not hdgst and not ddgst
        self._resp_header = None
        if not hdgst:
            # Without a header digest every CapsuleResp is the same common header and
            # then the CQE: take the header from the codec once, pack the rest per I/O.
            (frame,) = self._writer.encode_capsule_resp(bytes(CQE.size))
            self._resp_header = bytes(frame[:_COMMON_HEADER_LEN])
        # Likewise a C2HData header is packed here when the codec would add no digest
        # and no padding (the host's alignment is met by the 24-byte header).
        header = self._writer.encode_c2h_data(0, 0, b"\0")[0]
        self._plain_c2h = not hdgst and not ddgst and len(header) == C2H_HEADER.size
        self._max_r2t = min(pdu.maxr2t + 1, _MAX_R2T)

    def _on_term_req(self, pdu: H2CTermReq) -> None:
        self._step(QueueEvent.TERMINATE)

    # ------------------------------------------------------------------ commands

    def _on_capsule(self, pdu: CapsuleCmd) -> None:
        if self.state is QueueState.IO:
            sqe = pdu.sqe
            if sqe[0] != _FABRICS:
                self._io_sqe(sqe, pdu.data)
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
