"""One queue connection over asyncio: the thin shell around `HostQueue`.

`QueueConnection` is an `asyncio.Protocol`: bytes from `data_received` go to the
sans-I/O core, completions resolve the callers' futures (`execute`) or call their
callbacks (`submit`: no future, no Task), and what the core has to send goes out with
one `transport.writelines` per batch: a command submitted while the connection is
handing out completions goes out with the others at the end of that receive; one
submitted to an idle queue goes out at once (the QD1 case: no loop turn waited) unless
a target connection of the loop is handing out a receive (`poll.BoundedPoll.receiving`:
a nexus fanning out the commands of that receive); the rest are written once per
event-loop turn (commands submitted in the same turn share a write). A timer calls the
core's `expire` with the loop's clock, so a command that takes longer than its timeout
fails with `IoTimeout`. While commands are in flight the connection asks its loop's
bounded poll (`mayastor.nvmf.poll`) to keep the loop awake for a short budget, so that
an answer that comes quickly is read without the loop's sleep and wake-up.

Run state: `open` connects and binds the queue (TCP, ICReq/ICResp, Fabrics Connect),
or undoes everything and raises; a live connection fails exactly once, with the first
error that ended it (the target hung up, broke the protocol, terminated): every
command waiting on it fails with `PathLost` carrying that error as its cause, and
the owner's `on_lost` callback hears of it.
"""

from __future__ import annotations

import asyncio
import collections
import uuid as uuid_mod
from collections.abc import Callable
from typing import Any, cast

from mayastor.errors import (
    AbortRequested,
    DeviceError,
    IoTimeout,
    PathError,
    PathLost,
    Unavailable,
    caused_by,
)
from mayastor.nvmf import poll
from mayastor.nvmf.host._authenticate import HostSecrets, authenticate
from mayastor.nvmf.host._errors import ConnectionClosed, TransportError
from mayastor.nvmf.host._queue import HostQueue, QueueState
from mayastor.nvmf.pdu import Buffer
from mayastor.nvmf.spec import CONNECT_AUTHREQ_ATR, Command, NvmeStatus

Result = tuple[int, int, int, Buffer | None]
"""What a command gives back: (status field, 0 for success; DW0; DW1; read data)."""
CommandDone = Callable[[Any, int, Buffer | None, DeviceError | None], None]
"""``done(ctx, status, data, error)``: a submitted command ended with a status field (0
for success) and its read data, or without one: `error` is then `PathLost` or
`IoTimeout` (the command may or may not have been carried out)."""
LostCallback = Callable[["QueueConnection", TransportError], None]
_Pending = tuple[int, int, int, int, int, "Buffer | None", int, CommandDone, Any]

_LIVE = QueueState.LIVE
_TICKS_PER_TIMEOUT = 8
_MIN_TICK = 0.005
_MAX_TICK = 1.0


class QueueConnection(asyncio.Protocol):
    """One NVMe/TCP queue over one TCP connection; made by `open`.

    Attributes:
        name: for messages (``host:port/nqn qN``).
        on_lost: called once when a live connection fails (not when it is closed).
    """

    def __init__(self, core: HostQueue, *, name: str, io_timeout: float) -> None:
        self._core = core
        self.name = name
        self.io_timeout = io_timeout
        self.on_lost: LostCallback | None = None
        self.submitted = 0
        """Commands sent on this connection so far."""
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._flush_pending = False
        self._receiving = False
        self._slot_waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._backlog: collections.deque[_Pending] = collections.deque()
        self._error: TransportError | None = None
        self._closing = False
        self._closed: asyncio.Future[None] = self._loop.create_future()
        self._tick_interval = min(_MAX_TICK, max(_MIN_TICK, io_timeout / _TICKS_PER_TIMEOUT))
        self._timer: asyncio.TimerHandle | None = None
        self._loop_poll = poll.for_loop(self._loop)
        self._answer_poll = self._loop_poll.waiter()

    def __repr__(self) -> str:
        return f"<QueueConnection {self.name} {self._core.state.value}>"

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        qid: int,
        queue_size: int,
        subnqn: str,
        hostnqn: str,
        hostid: uuid_mod.UUID,
        cntlid: int,
        kato_ms: int = 0,
        disable_sq_flow_control: bool = False,
        header_digest: bool = False,
        data_digest: bool = False,
        in_capsule_size: int,
        io_timeout: float,
        name: str,
        secrets: HostSecrets | None = None,
    ) -> QueueConnection:
        """Connect queue `qid` of a controller: TCP, ICReq/ICResp, Fabrics Connect, and
        DH-HMAC-CHAP when the controller asks for it.

        The caller bounds the time this takes (``asyncio.timeout``); whatever fails
        or is cancelled, nothing is left open.

        Args:
            host, port: where the target listens.
            qid: 0 for the admin queue, 1.. for I/O queues.
            queue_size: commands in flight at most.
            subnqn, hostnqn, hostid: the Connect's names.
            cntlid: 0xFFFF for the admin queue, else the admin queue's controller ID.
            kato_ms: keep alive timeout (admin queue).
            disable_sq_flow_control: ask the target not to track the SQ head.
            header_digest, data_digest: digests to ask for.
            in_capsule_size: write data up to this size goes in the capsule.
            io_timeout: seconds a command may take.
            name: for messages.
            secrets: our DH-HMAC-CHAP secrets for this subsystem, if any.

        Returns:
            the live connection (`cntlid` holds the controller ID).

        Raises:
            Unavailable: the target cannot be reached, hangs up or breaks the protocol.
            ConnectRefused, ConnectInvalidParameters, DeviceError: the Fabrics Connect
                failed with that status.
            AuthenticationFailed: authentication was needed and did not admit us.
        """
        core = HostQueue(
            qid,
            queue_size=queue_size,
            header_digest=header_digest,
            data_digest=data_digest,
            in_capsule_size=in_capsule_size,
        )
        conn = cls(core, name=name, io_timeout=io_timeout)
        loop = conn._loop
        try:
            await loop.create_connection(lambda: conn, host, port)
            ic: asyncio.Future[Result] = loop.create_future()
            core.start(ic)
            conn._flush()
            await ic
            done: asyncio.Future[Result] = loop.create_future()
            core.connect(
                hostid=hostid,
                cntlid=cntlid,
                subnqn=subnqn,
                hostnqn=hostnqn,
                kato_ms=kato_ms,
                disable_sq_flow_control=disable_sq_flow_control,
                token=done,
            )
            conn._flush()
            status, dw0, _, _ = await done
            if status:
                nvme_status = NvmeStatus.from_field(status)
                raise DeviceError.from_status(
                    nvme_status,
                    f"{name}: Fabrics Connect to {subnqn} refused: {nvme_status.describe()}",
                    device=name,
                )
            await authenticate(
                conn,
                secrets,
                required=bool(dw0 & CONNECT_AUTHREQ_ATR),
                hostnqn=hostnqn,
                subnqn=subnqn,
                name=name,
            )
        except BaseException as exc:
            await conn.close(abort=True)
            if isinstance(exc, OSError | PathError):
                error = Unavailable(f"{name}: cannot connect to {host}:{port}: {exc}")
                raise caused_by(error, exc)
            raise
        return conn

    # ------------------------------------------------------------------ state

    @property
    def state(self) -> QueueState:
        return self._core.state

    @property
    def cntlid(self) -> int | None:
        """The controller ID the Fabrics Connect returned."""
        return self._core.cntlid

    @property
    def maxh2cdata(self) -> int:
        return self._core.maxh2cdata

    @property
    def in_flight(self) -> int:
        return self._core.in_flight

    @property
    def polling(self) -> bool:
        """True from sending a command until bytes come back (the loop's bounded poll
        may keep the loop awake meanwhile; see `mayastor.nvmf.poll`)."""
        return self._answer_poll.waiting

    @property
    def error(self) -> TransportError | None:
        """The first error that ended the connection, if one did."""
        return self._error

    # ------------------------------------------------------------------ commands

    async def execute(
        self,
        opcode: int,
        nsid: int,
        cdw10: int = 0,
        cdw11: int = 0,
        cdw12: int = 0,
        cdw13: int = 0,
        data_out: Buffer | None = None,
        read_length: int = 0,
        timeout: float | None = None,
    ) -> Result:
        """Send one command and wait for its completion.

        A status other than success is returned, not raised: the caller knows what
        the command was for and makes the error.

        Args:
            opcode, nsid, cdw10..cdw13: the command.
            data_out: a write's data; the caller keeps it unchanged until this returns.
            read_length: bytes a read returns.
            timeout: seconds instead of the connection's `io_timeout`.

        Raises:
            PathLost: the connection is gone (or went while the command was out).
            IoTimeout: no completion within the timeout.
        """
        core = self._core
        if core.state is not _LIVE:
            raise self._refusal()
        while not core.free_slots:
            await self._wait_for_slot()
        loop = self._loop
        fut: asyncio.Future[Result] = loop.create_future()
        cid = core.submit(
            opcode,
            nsid,
            cdw10,
            cdw11,
            cdw12,
            cdw13,
            data_out=data_out,
            read_length=read_length,
            token=fut,
            deadline=loop.time() + (self.io_timeout if timeout is None else timeout),
        )
        self.submitted += 1
        self._send_soon()
        try:
            return await fut
        except asyncio.CancelledError:
            core.abandon(cid, fut)
            raise

    def submit(
        self,
        opcode: int,
        nsid: int,
        cdw10: int,
        cdw11: int,
        cdw12: int,
        data_out: Buffer | None,
        read_length: int,
        done: CommandDone,
        ctx: Any,
    ) -> None:
        """Send one command; ``done(ctx, status, data, error)`` hears how it ended.

        As `execute`, without a future: `done` is called exactly once, never before
        this returns. A command that finds every command identifier in use waits its
        turn in a backlog (in order). It cannot be cancelled.

        Args:
            opcode, nsid, cdw10..cdw12: the command.
            data_out: a write's data; the caller keeps it unchanged until `done`.
            read_length: bytes a read returns.
            done, ctx: the completion.
        """
        core = self._core
        if not core.submit_io(
            opcode, nsid, cdw10, cdw11, cdw12, data_out, read_length, (done, ctx),
            self._loop.time() + self.io_timeout, not self._backlog,
        ):  # fmt: skip
            if core.state is not _LIVE:
                self._loop.call_soon(done, ctx, 0, None, self._refusal())
                return
            self._backlog.append(
                (opcode, nsid, cdw10, cdw11, cdw12, data_out, read_length, done, ctx)
            )
            return
        self.submitted += 1
        if not self._receiving and not self._flush_pending:
            self._send_soon()

    def _send(
        self,
        opcode: int,
        nsid: int,
        cdw10: int,
        cdw11: int,
        cdw12: int,
        data_out: Buffer | None,
        read_length: int,
        done: CommandDone,
        ctx: Any,
    ) -> None:
        loop = self._loop
        self._core.submit(
            opcode, nsid, cdw10, cdw11, cdw12,
            data_out=data_out, read_length=read_length, token=(done, ctx),
            deadline=loop.time() + self.io_timeout,
        )  # fmt: skip
        self.submitted += 1
        if not self._receiving and not self._flush_pending:
            self._send_soon()

    def _send_soon(self) -> None:
        """Write what the core has to send: now if the queue was idle (nothing else can
        join the write) and no target connection of the loop is handing out a receive
        (a nexus's fan-out: the commands of that receive join it), at the end of the
        receive that is handing out completions, or once per loop turn."""
        if self._receiving or self._flush_pending:
            return
        if self._core.in_flight == 1 and not self._loop_poll.receiving:
            self._flush()
            return
        self._flush_pending = True
        self._loop.call_soon(self._flush)

    async def execute_command(
        self,
        cmd: Command,
        *,
        data_out: Buffer | None = None,
        read_length: int = 0,
        timeout: float | None = None,
    ) -> Result:
        """`execute` for a command built with `mayastor.nvmf.spec` (CDW14-15 must be 0)."""
        return await self.execute(
            cmd.opcode,
            cmd.nsid,
            cmd.cdw10,
            cmd.cdw11,
            cmd.cdw12,
            cmd.cdw13,
            data_out,
            read_length,
            timeout,
        )

    def _refusal(self) -> DeviceError:
        if self._error is not None:
            exc = PathLost(f"{self.name}: connection lost: {self._error}", device=self.name)
            exc.__cause__ = self._error
            return exc
        return PathLost(
            f"{self.name}: the queue is {self._core.state.value}, not live", device=self.name
        )

    async def _wait_for_slot(self) -> None:
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._slot_waiters.append(waiter)
        try:
            await waiter
        finally:
            if not waiter.done():
                waiter.cancel()
        if self._core.state is not QueueState.LIVE:
            raise self._refusal()

    def _wake_slot_waiters(self) -> None:
        backlog = self._backlog
        core = self._core
        while backlog and core.free_slots and core.state is _LIVE:
            self._send(*backlog.popleft())
        waiters = self._slot_waiters
        free = core.free_slots
        while waiters and free:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                free -= 1

    def _flush(self) -> None:
        self._flush_pending = False
        out = self._core.data_to_send()
        if out and self._transport is not None:
            self._transport.writelines(out)
            if self._core.in_flight:
                self._answer_poll.expect()

    # ------------------------------------------------------------------ protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._timer = self._loop.call_later(self._tick_interval, self._tick)

    def data_received(self, data: bytes) -> None:
        core = self._core
        self._answer_poll.arrived()
        done = core.receive_data(data)
        self._receiving = True
        try:
            for token, status, dw0, dw1, payload in done:
                if type(token) is tuple:
                    token[0](token[1], status, payload, None)
                else:
                    fut = cast("asyncio.Future[Result]", token)
                    if not fut.done():
                        fut.set_result((status, dw0, dw1, payload))
            if core.error is not None:
                self._fail(core.error)
                return
            if self._slot_waiters or self._backlog:
                self._wake_slot_waiters()
        finally:
            self._receiving = False
        out = core.data_to_send()
        if out and self._transport is not None:
            self._transport.writelines(out)
        if core.in_flight:
            self._answer_poll.expect()

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._answer_poll.close()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._closing:
            cause = ConnectionClosed(
                f"{self.name}: the target closed the connection"
                + (f" ({exc})" if exc is not None else "")
            )
            if exc is not None:
                cause.__cause__ = exc
            self._fail(cause)
        self._transport = None
        if not self._closed.done():
            self._closed.set_result(None)

    def _tick(self) -> None:
        self._timer = None
        core = self._core
        if core.state is QueueState.FAILED or core.state is QueueState.CLOSED:
            return
        expired = core.expire(self._loop.time())
        for token in expired:
            error = IoTimeout(
                f"{self.name}: no completion within {self.io_timeout} s", device=self.name
            )
            if type(token) is tuple:
                token[0](token[1], 0, None, error)
                continue
            fut = cast("asyncio.Future[Result]", token)
            if not fut.done():
                fut.set_exception(error)
        if core.zombies and core.zombies >= max(1, core.queue_size // 2):
            self._fail(
                TransportError(
                    f"{self.name}: {core.zombies} commands timed out and were never "
                    "completed; giving the connection up"
                )
            )
            return
        self._timer = self._loop.call_later(self._tick_interval, self._tick)

    # ------------------------------------------------------------------ ending

    def _fail(self, cause: TransportError) -> None:
        """End the connection because of `cause` (the first error wins)."""
        if self._error is not None or self._closing:
            return
        self._error = cause
        transport = self._transport
        if transport is not None:
            out = self._core.data_to_send()
            if out:
                transport.writelines(out)
        self._fail_waiters(
            lambda: PathLost(f"{self.name}: connection lost: {cause}", device=self.name), cause
        )
        if transport is not None:
            transport.close()
        callback, self.on_lost = self.on_lost, None
        if callback is not None:
            callback(self, cause)

    def _fail_waiters(self, make: Callable[[], DeviceError], cause: BaseException | None) -> None:
        lost = self._core.close()
        lost += [(entry[7], entry[8]) for entry in self._backlog]
        self._backlog.clear()
        for token in lost:
            exc = make()
            exc.__cause__ = cause
            if type(token) is tuple:
                # Later, not from inside the failing connection's own call stack.
                self._loop.call_soon(token[0], token[1], 0, None, exc)
                continue
            fut = cast("asyncio.Future[Any]", token)
            if not fut.done():
                fut.set_exception(exc)
        while self._slot_waiters:
            waiter = self._slot_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def abort(self, cause: TransportError) -> None:
        """Drop the connection now because of `cause` (e.g. another queue of the same
        controller failed): commands waiting fail with `PathLost`. `on_lost` is not
        called."""
        self.on_lost = None
        self._fail(cause)
        transport = self._transport
        if transport is not None:
            transport.abort()

    async def close(self, *, abort: bool = False) -> None:
        """Close the connection; commands still waiting fail with `AbortRequested`.

        Args:
            abort: drop the connection without flushing what is queued for sending.
        """
        self.on_lost = None
        if not self._closing:
            self._closing = True
            if self._error is None:
                self._fail_waiters(
                    lambda: AbortRequested(f"{self.name}: connection closed", device=self.name),
                    None,
                )
            else:
                self._core.close()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            transport = self._transport
            if transport is None:
                if not self._closed.done():
                    self._closed.set_result(None)
            elif abort:
                transport.abort()
            else:
                self._flush()
                transport.close()
        if not self._closed.done():
            try:
                async with asyncio.timeout(1.0):
                    await asyncio.shield(self._closed)
            except TimeoutError:
                if self._transport is not None:
                    self._transport.abort()
                await asyncio.shield(self._closed)
