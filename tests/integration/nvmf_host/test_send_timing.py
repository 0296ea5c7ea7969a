"""When a submitted command leaves: a command to an idle queue is on the wire before
`submit` returns (no event-loop turn waited), unless a target connection of the loop
is handing out a receive (a nexus's fan-out: it then leaves at the end of the turn);
commands submitted while others are in flight share one write at the end of the loop
turn; one submitted by a completion callback goes out with that receive. The target is
a thread with a blocking socket, so the test can watch the wire while the event loop is
not given a turn."""

from __future__ import annotations

import asyncio
import queue
import socket
import threading
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mayastor.bdev import Buffer
from mayastor.errors import DeviceError
from mayastor.nvmf import poll
from mayastor.nvmf.host import QueueConnection
from mayastor.nvmf.pdu import CapsuleCmd, ICReq
from mayastor.nvmf.spec import Command, IoOpcode
from tests.unit.nvmf_host.peer import HOSTNQN, SUBNQN, TargetSide

FLUSH = int(IoOpcode.FLUSH)
CNTLID = 3
WAIT = 10.0


class ThreadTarget:
    """A controller on a blocking socket in a thread: answers ICReq and Connect, then
    hands every command it receives to `commands` and sends what `replies` gets."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.side = TargetSide()
        self.commands: queue.Queue[Command] = queue.Queue()
        self.replies: queue.Queue[bytes | None] = queue.Queue()
        self.conn: socket.socket | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        self.conn = conn
        reader = self.side.reader
        writer_thread = threading.Thread(target=self._reply, args=(conn,), daemon=True)
        writer_thread.start()
        while data := conn.recv(65536):
            reader.feed(data)
            while (pdu := reader.next_pdu()) is not None:
                if isinstance(pdu, ICReq):
                    conn.sendall(self.side.ic_resp())
                elif isinstance(pdu, CapsuleCmd):
                    cmd = Command.decode(pdu.sqe)
                    if cmd.opcode == 0x7F:  # Fabrics Connect
                        conn.sendall(self.side.completion(cmd.cid, dw0=CNTLID))
                    else:
                        self.commands.put(cmd)

    def _reply(self, conn: socket.socket) -> None:
        while (out := self.replies.get()) is not None:
            conn.sendall(out)

    def next_command(self, timeout: float = WAIT) -> Command:
        return self.commands.get(timeout=timeout)

    def close(self) -> None:
        self.replies.put(None)
        if self.conn is not None:
            self.conn.close()
        self.listener.close()


@pytest.fixture
async def link() -> AsyncIterator[tuple[ThreadTarget, QueueConnection]]:
    target = ThreadTarget()
    conn = await QueueConnection.open(
        "127.0.0.1",
        target.port,
        qid=1,
        queue_size=8,
        subnqn=SUBNQN,
        hostnqn=HOSTNQN,
        hostid=uuid.uuid4(),
        cntlid=CNTLID,
        in_capsule_size=4096,
        io_timeout=30.0,
        name="send-timing",
    )
    yield target, conn
    await conn.close(abort=True)
    target.close()


class Ends:
    def __init__(self) -> None:
        self.ended: list[int] = []
        self.then: list[Any] = []

    def __call__(
        self, ctx: int, status: int, data: Buffer | None, error: DeviceError | None
    ) -> None:
        assert (status, error) == (0, None)
        self.ended.append(ctx)
        for action in self.then:
            action(ctx)
        self.then = []


async def wait_ended(ends: Ends, count: int) -> None:
    async with asyncio.timeout(WAIT):
        while len(ends.ended) < count:
            await asyncio.sleep(0.001)


def flush(conn: QueueConnection, ends: Ends, ctx: int) -> None:
    """A Flush (no data either way), `ctx` in CDW10 to tell the commands apart."""
    conn.submit(FLUSH, 1, ctx, 0, 0, None, 0, ends, ctx)


async def test_a_command_to_an_idle_queue_is_on_the_wire_before_submit_returns(
    link: tuple[ThreadTarget, QueueConnection],
) -> None:
    target, conn = link
    flush(conn, Ends(), 1)
    # No await since the submit: the event loop has had no turn to write anything.
    assert target.next_command().cdw10 == 1


async def test_a_command_to_an_idle_queue_submitted_during_a_target_receive_leaves_after_it(
    link: tuple[ThreadTarget, QueueConnection],
) -> None:
    target, conn = link
    loop_poll = poll.for_loop(asyncio.get_running_loop())
    loop_poll.receiving += 1  # as a target connection does around a receive
    try:
        flush(conn, Ends(), 1)
        flush(conn, Ends(), 2)
    finally:
        loop_poll.receiving -= 1
    with pytest.raises(queue.Empty):
        target.next_command(timeout=0.2)
    await asyncio.sleep(0)
    assert [target.next_command().cdw10, target.next_command().cdw10] == [1, 2]


async def test_commands_submitted_while_one_is_in_flight_leave_together_after_the_turn(
    link: tuple[ThreadTarget, QueueConnection],
) -> None:
    target, conn = link
    ends = Ends()
    flush(conn, ends, 1)
    first = target.next_command()
    flush(conn, ends, 2)
    flush(conn, ends, 3)
    with pytest.raises(queue.Empty):
        target.next_command(timeout=0.2)
    await asyncio.sleep(0)
    later = [target.next_command(), target.next_command()]
    assert [cmd.cdw10 for cmd in later] == [2, 3]
    target.replies.put(b"".join(target.side.completion(c.cid) for c in [first, *later]))
    await wait_ended(ends, 3)
    assert sorted(ends.ended) == [1, 2, 3]


async def test_a_command_submitted_by_a_completion_callback_leaves_with_that_receive(
    link: tuple[ThreadTarget, QueueConnection],
) -> None:
    target, conn = link
    ends = Ends()
    flush(conn, ends, 1)
    flush(conn, ends, 2)
    await asyncio.sleep(0)
    first = target.next_command()
    second = target.next_command()
    ends.then.append(lambda _ctx: flush(conn, ends, 3))
    target.replies.put(target.side.completion(first.cid))
    await wait_ended(ends, 1)
    # The receive that ran the callback has written the new command already.
    assert target.next_command().cdw10 == 3
    target.replies.put(target.side.completion(second.cid))
    await wait_ended(ends, 2)
    assert ends.ended == [1, 2]
