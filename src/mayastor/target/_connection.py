"""The I/O shell of one NVMe/TCP connection: an asyncio protocol around a `QueuePair`.

The connection is a buffered protocol: the loop receives into a buffer the connection
names. Usually that is the receive buffer its target shares among its connections
(bytes are taken out of it before the next receive, so one per event loop does); while
the queue pair has a `sink` (the rest of a large H2CData payload), the loop receives
straight into the command's own data buffer, so write data is copied once, by the
kernel (unless that rest is shorter than `SINK_MIN`: then it comes with the next
receive, saving a system call for a short copy). The queue pair gets the bytes with
the loop's time; what it sends is collected and written with one
`transport.writelines` per event loop iteration (at the end of `buffer_updated`, or
from a callback scheduled by the first completion of an iteration), so completions of
many I/Os share one system call. A receive that filled its buffer is followed by
another in the same iteration (uvloop reads until a read comes up short): its answers
wait for a callback at the iteration's end, so a stream of large writes costs one
send per iteration, not one per receive. Device work runs as
callbacks the queue pair counts, or as tasks the connection keeps (finished ones are
dropped in batches), so that closing waits for it. When the kernel's send buffer is
full, reading pauses: a host cannot pile up commands faster than it takes their
answers. Until the host has connected, one timer asks the queue pair whether its
ICReq or Connect deadline has passed. Having answered, the connection asks its
loop's bounded poll (`mayastor.nvmf.poll`) to keep the loop awake a little: a host's
next command usually follows its answer, and is then read without the loop's sleep
and wake-up; bytes received end the spin.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Coroutine
from typing import Any, cast

from mayastor.nvmf import poll
from mayastor.nvmf.pdu import Parts
from mayastor.target._queue_pair import QueuePair
from mayastor.target._subsystem import SubsystemRegistry

log = logging.getLogger(__name__)

_PRUNE_AT = 256
"""Tasks kept (finished ones included) before the finished are dropped."""
RECEIVE_BUFFER_SIZE = 256 * 1024
"""Bytes one receive may bring (as much as uvloop's own buffer)."""
SINK_MIN = 16 * 1024
"""The least rest of an H2CData payload received straight into the command's buffer: a
smaller rest is copied from the next receive into the shared buffer, which also brings
the PDUs after it (a receive of its own would cost a system call to save a short copy)."""


SEND_BUFFER_SIZE = 4 << 20
"""SO_SNDBUF of a connection: room for many 128 KiB reads in the kernel, so a send
seldom finds the buffer full (fewer partial writes and wake-ups: on this machine a
bare 128 KiB `sendmsg` over loopback cost 28-34 us of CPU with it, 37-61 us with the
kernel's autotuning). It is a limit, not an allocation: an idle connection holds
nothing."""


def new_receive_buffer() -> memoryview:
    """A receive buffer for the connections of one event loop."""
    return memoryview(bytearray(RECEIVE_BUFFER_SIZE))


class Connection(asyncio.BufferedProtocol):
    """One accepted TCP connection.

    Args:
        registry: the target's subsystems, for the queue pair.
        on_close: called once the connection is gone, with the connection.
        receive_buffer: where the loop receives (a connection's own one by default);
            connections of one event loop may share it.
    """

    def __init__(
        self,
        registry: SubsystemRegistry,
        on_close: Callable[[Connection], None],
        receive_buffer: memoryview | None = None,
    ) -> None:
        self._buffer = receive_buffer if receive_buffer is not None else new_receive_buffer()
        self._sinking = False
        self._given = 0
        self._registry = registry
        self._timer: asyncio.TimerHandle | None = None
        self._refused = False
        self._on_close = on_close
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._out: Parts = []
        self._receiving = False
        self._flush_scheduled = False
        self._closing = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._prune_at = _PRUNE_AT
        self._lost = asyncio.Event()
        self._loop_poll = poll.for_loop(self._loop)
        self._answer_poll = self._loop_poll.waiter()
        self.queue_pair: QueuePair | None = None

    def __repr__(self) -> str:
        return f"<Connection {self.queue_pair!r}>"

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        if self._refused:
            self._closing = True
            self._transport.abort()
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_SIZE)
        local = transport.get_extra_info("sockname")
        peer = transport.get_extra_info("peername")
        self.queue_pair = QueuePair(
            self._registry,
            self,
            port=local[1] if local else 0,
            peer=f"{peer[0]}:{peer[1]}" if peer else "",
            now=self._loop.time(),
        )
        self._watch_deadline()

    def get_buffer(self, sizehint: int) -> memoryview:
        queue_pair = self.queue_pair
        if queue_pair is not None:
            sink = queue_pair.sink
            if sink is not None and len(sink) >= SINK_MIN:
                self._sinking = True
                self._given = len(sink)
                return sink
        self._sinking = False
        self._given = len(self._buffer)
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        queue_pair = self.queue_pair
        if queue_pair is None or self._closing:
            return
        self._answer_poll.arrived()
        self._receiving = True
        loop_poll = self._loop_poll
        loop_poll.receiving += 1
        try:
            if self._sinking:
                queue_pair.sunk(nbytes, self._loop.time())
            else:
                queue_pair.receive(self._buffer[:nbytes].tobytes(), self._loop.time())
        except Exception:
            log.exception("connection %s: bug while handling input; closing it", queue_pair.peer)
            queue_pair.transport_closed()
            self.close()
        finally:
            self._receiving = False
            loop_poll.receiving -= 1
        if nbytes < self._given:
            self._flush()
        elif self._out and not self._flush_scheduled:
            # A full buffer: the loop reads again in this turn (uvloop up to 32 times),
            # and the answers of all its receives go in one write.
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def eof_received(self) -> bool | None:
        return False  # close our side as well

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._answer_poll.close()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._out.clear()
        if self.queue_pair is not None:
            self.queue_pair.transport_closed()
        self._lost.set()
        self._on_close(self)

    def pause_writing(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    # ------------------------------------------------------------------ Link

    def send(self, parts: Parts) -> None:
        if self._closing:
            return
        self._out += parts
        if not self._receiving and not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def close(self) -> None:
        if self._closing:
            return
        self._flush()
        self._closing = True
        if self._transport is not None:
            self._transport.close()

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        # Finished tasks are dropped in batches, not by a done callback each: that
        # would cost one more callback per I/O.
        tasks = self._tasks
        tasks.add(self._loop.create_task(work))
        if len(tasks) >= self._prune_at:
            self._tasks = {task for task in tasks if not task.done()}
            self._prune_at = max(_PRUNE_AT, 2 * len(self._tasks))

    # ------------------------------------------------------------------ limits

    @property
    def associated(self) -> bool:
        """True once the host's Connect succeeded (or the connection is closing)."""
        queue_pair = self.queue_pair
        return self._closing or (queue_pair is not None and queue_pair.deadline() is None)

    def refuse(self) -> None:
        """Close the connection as soon as it is made (a limit was hit)."""
        self._refused = True
        if self._transport is not None:
            self.close()

    def _watch_deadline(self) -> None:
        queue_pair = self.queue_pair
        if queue_pair is None:
            return
        deadline = queue_pair.expire(self._loop.time())
        if deadline is None:
            self._timer = None
        else:
            self._timer = self._loop.call_at(deadline, self._watch_deadline)

    # ------------------------------------------------------------------ internals

    def _flush(self) -> None:
        self._flush_scheduled = False
        out = self._out
        if out and self._transport is not None and not self._closing:
            self._out = []
            self._transport.writelines(out)
            self._answer_poll.expect()

    async def wait_closed(self, timeout: float) -> None:
        """Wait for the device work of this connection, then for the socket to close.

        Work still running after `timeout` seconds is cancelled; a socket that does
        not close in that time (a host that stopped reading) is aborted.
        """
        running = {task for task in self._tasks if not task.done()}
        if running:
            _, pending = await asyncio.wait(running, timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        queue_pair = self.queue_pair
        if queue_pair is not None and queue_pair.device_io:
            # Reads and writes submitted by callback cannot be cancelled: wait for them.
            idle = self._loop.create_future()
            queue_pair.when_idle = lambda: None if idle.done() else idle.set_result(None)
            try:
                await asyncio.wait_for(idle, timeout)
            except TimeoutError:
                log.warning(
                    "connection %s: %d device I/Os still running after %s s",
                    queue_pair.peer, queue_pair.device_io, timeout,
                )  # fmt: skip
            finally:
                queue_pair.when_idle = None
        try:
            await asyncio.wait_for(self._lost.wait(), timeout)
        except TimeoutError:
            if self._transport is not None:
                self._transport.abort()
            await self._lost.wait()
