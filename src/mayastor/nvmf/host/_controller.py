"""A connection to one NVMe-oF controller: admin queue, I/O queues, keep alive, reconnect.

`Controller.connect` does what a host does to bring a fabrics controller up: connect
the admin queue (dynamic controller ID), read CAP and VS, set CC.EN and wait for
CSTS.RDY, identify the controller, ask for the I/O queues (Set Features, Number of
Queues) and connect them with the controller ID the admin queue got. A failed
connect undoes everything and leaves the controller idle.

While live, I/O goes round robin over the I/O queues and a Keep Alive goes out on the
admin queue every half KATO. When a queue connection drops or a Keep Alive is not
answered, the path is lost: every command in flight fails at once with `PathLost`
(it may or may not have been carried out), and a background task reconnects every
`reconnect_delay` seconds until `ctrl_loss_timeout`; then the controller fails for
good and every call fails with `PathGone` (a `PathLost` that says it is final). Calls
made meanwhile wait up to `fast_io_fail_timeout` for the path, or fail at once. `close`
shuts the controller down (CC.SHN) and closes every connection.

The run state and what each state allows are the tables of `_controller_state`; the
commands a live controller carries (admin, NVM I/O, reservations) are its mixins'
(`_commands`, `_reservations`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from mayastor.errors import (
    DeviceError,
    DeviceNotReady,
    FailedPrecondition,
    InvalidArgument,
    MayastorError,
    PathError,
    PathGone,
    PathLost,
    Unavailable,
)
from mayastor.nvmf.host._commands import describe_command
from mayastor.nvmf.host._connection import QueueConnection
from mayastor.nvmf.host._controller_state import (
    ADMISSION,
    Admission,
    ControllerEvent,
    ControllerState,
    ReconnectClock,
    next_state,
)
from mayastor.nvmf.host._errors import KeepAliveFailed, TransportError
from mayastor.nvmf.host._options import ADMIN_QUEUE_SIZE, ControllerOptions
from mayastor.nvmf.host._queue import ADMIN_IN_CAPSULE_SIZE
from mayastor.nvmf.host._reservations import ReservationCommands
from mayastor.nvmf.pdu import Buffer
from mayastor.nvmf.spec import (
    DISCOVERY_NQN,
    DYNAMIC_CNTLID,
    NO_DATA,
    AdminOpcode,
    Cns,
    Command,
    ControllerCapabilities,
    ControllerConfiguration,
    ControllerStatus,
    FeatureId,
    Identify,
    IdentifyController,
    NumberOfQueues,
    NvmeStatus,
    PropertyGet,
    PropertyOffset,
    PropertySet,
    SetFeatures,
    SglSupport,
    ShutdownNotification,
    ShutdownStatus,
    SpecError,
    validate_nqn,
)

log = logging.getLogger(__name__)

MAX_TRANSFER = 1 << 20
"""Largest transfer of one command we ask for (the controller's MDTS may make it less)."""
SHUTDOWN_TIMEOUT = 5.0
"""Seconds `close` waits for CSTS.SHST to say the shutdown is complete."""

_KEEP_ALIVE = int(AdminOpcode.KEEP_ALIVE)
_LIVE = ControllerState.LIVE


@dataclass(slots=True)
class _Session:
    """What one successful connect made: the queues and what the controller told us."""

    admin: QueueConnection
    io: list[QueueConnection]
    cap: ControllerCapabilities
    version: int
    identify: IdentifyController
    cntlid: int
    max_transfer: int
    queue_size: int


class Controller(ReservationCommands):
    """Our host's connection to one controller of a remote NVMe-oF subsystem.

    Args:
        host, port: the target's address.
        subnqn: the subsystem (`DISCOVERY_NQN` for a discovery controller, which has
            no I/O queues).
        options: names, queues, digests and timeouts.
        name: for messages and errors; default ``host:port/subnqn``.

    Raises:
        InvalidArgument: `subnqn` is not an NQN, or a port outside 1..65535.
    """

    def __init__(
        self,
        host: str,
        port: int,
        subnqn: str,
        options: ControllerOptions | None = None,
        *,
        name: str | None = None,
    ) -> None:
        try:
            validate_nqn(subnqn)
        except SpecError as exc:
            raise InvalidArgument(f"subsystem NQN {subnqn!r} is not valid: {exc}") from exc
        if not 0 < port < 65536:
            raise InvalidArgument(f"port {port} is outside 1..65535")
        self.host = host
        self.port = port
        self.subnqn = subnqn
        self.options = options or ControllerOptions()
        self.name = name or f"{host}:{port}/{subnqn}"
        self.is_discovery = subnqn == DISCOVERY_NQN
        self._state = ControllerState.IDLE
        self._session: _Session | None = None
        self._io: list[QueueConnection] = []
        self._rr = 0
        self._changed: asyncio.Event | None = None
        self._clock: ReconnectClock | None = None
        self._keep_alive_task: asyncio.Task[None] | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._connect_task: asyncio.Task[_Session] | None = None
        self._closed: asyncio.Event | None = None
        self.last_error: BaseException | None = None
        """What ended the path most recently (the cause of the `PathLost` errors)."""
        self.reconnects = 0
        """How many times the path was lost and came back."""

    def __repr__(self) -> str:
        return f"<Controller {self.name} {self._state.value}>"

    # ------------------------------------------------------------------ state

    @property
    def state(self) -> ControllerState:
        return self._state

    @property
    def identify(self) -> IdentifyController:
        """Identify Controller data of the current (or last) connection.

        Raises:
            FailedPrecondition: the controller was never connected.
        """
        return self._known().identify

    @property
    def cntlid(self) -> int:
        """The controller ID of the current (or last) connection."""
        return self._known().cntlid

    @property
    def capabilities(self) -> ControllerCapabilities:
        """CAP of the current (or last) connection."""
        return self._known().cap

    @property
    def version(self) -> int:
        """VS of the current (or last) connection."""
        return self._known().version

    @property
    def max_transfer(self) -> int:
        """Most bytes one command moves (1 MiB, or less when MDTS says so)."""
        return self._known().max_transfer

    @property
    def io_queue_count(self) -> int:
        """I/O queues connected now (0 while the path is down)."""
        return len(self._io)

    @property
    def io_queues(self) -> tuple[QueueConnection, ...]:
        """The I/O queue connections now (none while the path is down)."""
        return tuple(self._io)

    @property
    def queue_size(self) -> int:
        """Commands in flight per I/O queue at most."""
        return self._known().queue_size

    def _known(self) -> _Session:
        if self._session is None:
            raise FailedPrecondition(f"{self.name}: the controller was never connected")
        return self._session

    def _move(self, event: ControllerEvent) -> None:
        nxt = next_state(self._state, event)
        if nxt is None:
            raise FailedPrecondition(
                f"{self.name}: cannot {event.value} while the controller is {self._state.value}"
            )
        self._state = nxt
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()

    async def _state_change(self, until: float | None) -> None:
        """Wait for the next change of state, or until the loop time `until`."""
        if self._changed is None:
            self._changed = asyncio.Event()
        event = self._changed
        if until is None:
            await event.wait()
            return
        try:
            async with asyncio.timeout_at(until):
                await event.wait()
        except TimeoutError:
            pass

    # ------------------------------------------------------------------ connect

    async def connect(self) -> None:
        """Connect the admin and I/O queues and enable the controller.

        Raises:
            FailedPrecondition: the controller is not idle (connected, or closed).
            Unavailable: the target cannot be reached, or it broke off, within
                `connect_timeout`.
            ConnectRefused: the subsystem does not allow our host NQN.
            ConnectInvalidParameters: no such subsystem (or controller).
            DeviceError: another admin command failed during the bring-up.
        """
        self._move(ControllerEvent.CONNECT)
        task = asyncio.ensure_future(self._establish(self.options.connect_timeout))
        self._connect_task = task
        try:
            session = await task
        except asyncio.CancelledError:
            if self._state is ControllerState.CONNECTING:
                self._move(ControllerEvent.CONNECT_FAILED)
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            raise FailedPrecondition(f"{self.name}: closed while connecting") from None
        except BaseException:
            if self._state is ControllerState.CONNECTING:
                self._move(ControllerEvent.CONNECT_FAILED)
            raise
        finally:
            self._connect_task = None
        if self._state is not ControllerState.CONNECTING:
            await self._drop_session(session)
            raise FailedPrecondition(f"{self.name}: closed while connecting")
        self._go_live(session)

    def _go_live(self, session: _Session) -> None:
        self._session = session
        for conn in (session.admin, *session.io):
            conn.on_lost = self._on_queue_lost
        self._io = list(session.io)
        self._move(ControllerEvent.ESTABLISHED)
        if self.options.keep_alive_timeout and not self.is_discovery:
            self._keep_alive_task = asyncio.ensure_future(self._keep_alive(session.admin))

    async def _establish(self, timeout: float) -> _Session:
        """One complete bring-up; on any failure, everything it opened is closed."""
        opened: list[QueueConnection] = []
        try:
            async with asyncio.timeout(timeout):
                return await self._bring_up(opened)
        except TimeoutError as exc:
            await _close_all(opened)
            raise Unavailable(
                f"{self.name}: connecting took longer than {timeout} s"
                + (f" ({exc})" if str(exc) else "")
            ) from exc
        except BaseException:
            await _close_all(opened)
            raise

    async def _bring_up(self, opened: list[QueueConnection]) -> _Session:
        opts = self.options
        admin = await QueueConnection.open(
            self.host,
            self.port,
            qid=0,
            queue_size=ADMIN_QUEUE_SIZE,
            subnqn=self.subnqn,
            hostnqn=opts.hostnqn,
            hostid=opts.host_identifier,
            cntlid=DYNAMIC_CNTLID,
            kato_ms=0 if self.is_discovery else opts.kato_ms,
            disable_sq_flow_control=opts.disable_sq_flow_control,
            header_digest=opts.header_digest,
            data_digest=opts.data_digest,
            in_capsule_size=ADMIN_IN_CAPSULE_SIZE,
            io_timeout=opts.io_timeout,
            name=f"{self.name} q0",
            secrets=opts.secrets,
        )
        opened.append(admin)
        cntlid = admin.cntlid
        assert cntlid is not None
        cap = ControllerCapabilities.decode(await self._get_property(admin, PropertyOffset.CAP, 8))
        version = await self._get_property(admin, PropertyOffset.VS, 4)
        await self._enable(admin, cap)
        raw = await self._admin_read(
            admin, Identify(Cns.CONTROLLER).to_command(0, 0, NO_DATA), 4096
        )
        identify = self._decoded(IdentifyController.decode, raw, "Identify Controller data")
        max_transfer = MAX_TRANSFER
        if identify.mdts:
            max_transfer = min(max_transfer, (1 << identify.mdts) * (4096 << cap.mpsmin))
        queue_size = min(opts.queue_size, cap.mqes + 1)
        if identify.maxcmd:
            queue_size = min(queue_size, identify.maxcmd)
        io: list[QueueConnection] = []
        wanted = 0 if self.is_discovery else opts.io_queues
        if wanted:
            granted = await self._set_queue_count(admin, wanted)
            in_capsule = 0
            if identify.sgls & SglSupport.OFFSET and not identify.icdoff:
                in_capsule = max(0, identify.ioccsz * 16 - 64)
            tasks = [
                asyncio.ensure_future(
                    QueueConnection.open(
                        self.host,
                        self.port,
                        qid=qid,
                        queue_size=queue_size,
                        subnqn=self.subnqn,
                        hostnqn=opts.hostnqn,
                        hostid=opts.host_identifier,
                        cntlid=cntlid,
                        disable_sq_flow_control=opts.disable_sq_flow_control,
                        header_digest=opts.header_digest,
                        data_digest=opts.data_digest,
                        in_capsule_size=in_capsule,
                        io_timeout=opts.io_timeout,
                        name=f"{self.name} q{qid}",
                        secrets=opts.secrets,
                    )
                )
                for qid in range(1, min(wanted, granted) + 1)
            ]
            try:
                await asyncio.gather(*tasks)
            finally:
                pending = [task for task in tasks if not task.done()]
                for task in pending:
                    task.cancel()
                if pending:
                    await asyncio.wait(pending)
                opened.extend(
                    task.result()
                    for task in tasks
                    if not task.cancelled() and task.exception() is None
                )
            io = [task.result() for task in tasks]
        return _Session(admin, io, cap, version, identify, cntlid, max_transfer, queue_size)

    async def _get_property(self, admin: QueueConnection, offset: int, size: int) -> int:
        cmd = PropertyGet(offset, size).to_command(0)
        status, dw0, dw1, _ = await admin.execute_command(cmd)
        self._check(status, f"Property Get {PropertyOffset(offset).name}")
        return dw0 | dw1 << 32 if size == 8 else dw0

    async def _set_property(self, admin: QueueConnection, offset: int, value: int) -> None:
        status, _, _, _ = await admin.execute_command(PropertySet(offset, value).to_command(0))
        self._check(status, f"Property Set {PropertyOffset(offset).name}")

    async def _enable(self, admin: QueueConnection, cap: ControllerCapabilities) -> None:
        cc = ControllerConfiguration(en=True, iosqes=6, iocqes=4)
        await self._set_property(admin, PropertyOffset.CC, cc.encode())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(cap.to, 1) * 0.5
        pause = 0.001
        while True:
            csts = ControllerStatus.decode(await self._get_property(admin, PropertyOffset.CSTS, 4))
            if csts.cfs:
                raise Unavailable(f"{self.name}: the controller reports a fatal status (CSTS.CFS)")
            if csts.rdy:
                return
            if loop.time() >= deadline:
                raise Unavailable(
                    f"{self.name}: the controller did not become ready within "
                    f"{max(cap.to, 1) * 0.5} s (CAP.TO)"
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)

    async def _set_queue_count(self, admin: QueueConnection, wanted: int) -> int:
        value = NumberOfQueues(wanted - 1, wanted - 1).encode()
        cmd = SetFeatures(FeatureId.NUMBER_OF_QUEUES, value).to_command(0)
        status, dw0, _, _ = await admin.execute_command(cmd)
        self._check(status, "Set Features (Number of Queues)")
        granted = NumberOfQueues.decode(dw0)
        count = min(granted.submission_queues, granted.completion_queues)
        if count < 1:
            raise Unavailable(f"{self.name}: the controller grants no I/O queue")
        return count

    async def _admin_read(self, admin: QueueConnection, cmd: Command, length: int) -> Buffer:
        status, _, _, data = await admin.execute_command(cmd, read_length=length)
        self._check(status, describe_command(cmd))
        assert data is not None
        return data

    # ------------------------------------------------------------------ keep alive

    async def _keep_alive(self, admin: QueueConnection) -> None:
        kato = self.options.keep_alive_timeout
        while True:
            await asyncio.sleep(kato / 2)
            if (
                self._state is not _LIVE
                or self._session is None
                or self._session.admin is not admin
            ):
                return
            try:
                status, _, _, _ = await admin.execute(_KEEP_ALIVE, 0, timeout=kato)
            except PathLost:
                return
            except PathError as exc:
                self._path_lost(KeepAliveFailed(f"{self.name}: Keep Alive not answered: {exc}"))
                return
            if status:
                described = NvmeStatus.from_field(status).describe()
                self._path_lost(KeepAliveFailed(f"{self.name}: Keep Alive refused: {described}"))
                return

    # ------------------------------------------------------------------ path loss

    def _on_queue_lost(self, conn: QueueConnection, cause: TransportError) -> None:
        session = self._session
        if (
            self._state is _LIVE
            and session is not None
            and (conn is session.admin or conn in session.io)
        ):
            self._path_lost(cause)

    def _path_lost(self, cause: TransportError) -> None:
        """Fail every command in flight and start reconnecting in the background."""
        if self._state is not _LIVE:
            return
        session = self._session
        assert session is not None
        self.last_error = cause
        log.warning("%s: path lost: %s", self.name, cause)
        loop = asyncio.get_running_loop()
        opts = self.options
        self._clock = ReconnectClock(
            loop.time(), opts.reconnect_delay, opts.ctrl_loss_timeout, opts.fast_io_fail_timeout
        )
        self._io = []
        self._move(ControllerEvent.PATH_LOST)
        for conn in (*session.io, session.admin):
            conn.abort(cause)
        self._stop_keep_alive()
        self._reconnect_task = asyncio.ensure_future(self._reconnect(session))

    def _stop_keep_alive(self) -> None:
        task, self._keep_alive_task = self._keep_alive_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _reconnect(self, lost: _Session) -> None:
        clock = self._clock
        assert clock is not None
        loop = asyncio.get_running_loop()
        await _close_all([lost.admin, *lost.io])
        while self._state is ControllerState.RECONNECTING:
            delay = clock.delay_before_next_attempt(loop.time())
            if delay is None:
                log.warning(
                    "%s: giving up after %d reconnect attempts (ctrl_loss_timeout %s s)",
                    self.name,
                    clock.attempts,
                    self.options.ctrl_loss_timeout,
                )
                self._move(ControllerEvent.LOSS_TIMEOUT)
                return
            await asyncio.sleep(delay)
            if self._state is not ControllerState.RECONNECTING:
                return
            now = loop.time()
            clock.attempt_started(now)
            timeout = clock.attempt_deadline(now, self.options.connect_timeout) - now
            try:
                session = await self._establish(max(timeout, 0.001))
            except (MayastorError, OSError) as exc:
                log.info("%s: reconnect attempt %d failed: %s", self.name, clock.attempts, exc)
                continue
            if self._state is not ControllerState.RECONNECTING:
                await self._drop_session(session)
                return
            self.reconnects += 1
            log.warning("%s: reconnected after %d attempts", self.name, clock.attempts)
            self._clock = None
            self._go_live(session)
            return

    # ------------------------------------------------------------------ admission

    async def _admit(self) -> list[QueueConnection]:
        """The live I/O queues, after waiting for a lost path if the state says so."""
        await self._wait_live()
        if not self._io:
            raise FailedPrecondition(f"{self.name}: a discovery controller has no I/O queues")
        return self._io

    async def _wait_live(self) -> None:
        """Return when the controller is live; wait or refuse as `ADMISSION` says."""
        loop = asyncio.get_running_loop()
        while True:
            admission = ADMISSION[self._state]
            if admission is Admission.GO:
                return
            if admission is not Admission.WAIT:
                raise self._refusal(admission)
            clock = self._clock
            assert clock is not None
            if clock.io_fails_at_once(loop.time()):
                raise self._lost("the path is down and calls do not wait for it")
            await self._state_change(clock.io_wait_until())
            if self._state is ControllerState.RECONNECTING and clock.io_fails_at_once(loop.time()):
                raise self._lost("the path did not come back in time")

    async def _admin_queue(self) -> QueueConnection:
        if self._state is not _LIVE:
            await self._wait_live()
        session = self._session
        assert session is not None
        return session.admin

    def _refusal(self, admission: Admission) -> Exception:
        if admission is Admission.NOT_CONNECTED:
            return FailedPrecondition(
                f"{self.name}: the controller is {self._state.value}; connect() first"
            )
        if admission is Admission.PATH_LOST:
            gone = PathGone(
                f"{self.name}: path lost: gave up reconnecting after "
                f"{self.options.ctrl_loss_timeout} s",
                device=self.name,
            )
            gone.__cause__ = self.last_error
            return gone
        return DeviceNotReady(f"{self.name}: the controller is closed", device=self.name)

    def _lost(self, why: str) -> PathLost:
        exc = PathLost(f"{self.name}: path lost: {why}", device=self.name)
        exc.__cause__ = self.last_error
        return exc

    # ------------------------------------------------------------------ closing

    async def close(self) -> None:
        """Shut the controller down (CC.SHN) and close every connection.

        Waits for nothing in flight (the caller does that); commands still out fail
        with `AbortRequested`. May be called more than once, in any state.
        """
        if self._state is ControllerState.CLOSED:
            return
        if self._state is ControllerState.CLOSING:
            if self._closed is None:
                self._closed = asyncio.Event()
            await self._closed.wait()
            return
        was_live = self._state is _LIVE
        self._closed = asyncio.Event()
        self._move(ControllerEvent.CLOSE)
        self._io = []
        tasks = [
            task
            for task in (self._reconnect_task, self._keep_alive_task, self._connect_task)
            if task is not None and task is not asyncio.current_task()
        ]
        self._reconnect_task = self._keep_alive_task = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        session = self._session
        if session is not None:
            if was_live:
                await self._shutdown(session.admin)
            await self._drop_session(session)
        self._move(ControllerEvent.CLOSED)
        self._closed.set()

    async def _shutdown(self, admin: QueueConnection) -> None:
        """CC.SHN = normal, then wait (a bounded time) for CSTS.SHST = complete."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(SHUTDOWN_TIMEOUT):
                cc = ControllerConfiguration(
                    en=True, iosqes=6, iocqes=4, shn=ShutdownNotification.NORMAL
                )
                await self._set_property(admin, PropertyOffset.CC, cc.encode())
                pause = 0.001
                while True:
                    csts = ControllerStatus.decode(
                        await self._get_property(admin, PropertyOffset.CSTS, 4)
                    )
                    if csts.shst == ShutdownStatus.COMPLETE:
                        return
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 0.05)
        except (TimeoutError, DeviceError, TransportError) as exc:
            log.info("%s: shutdown not confirmed: %s (at %.3f)", self.name, exc, loop.time())

    async def _drop_session(self, session: _Session) -> None:
        await _close_all([*session.io, session.admin])


async def _close_all(conns: Sequence[QueueConnection]) -> None:
    await asyncio.gather(*(conn.close() for conn in conns), return_exceptions=True)
