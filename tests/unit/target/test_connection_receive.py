"""How the I/O shell (`Connection`) takes receives from its loop: the answers of a
receive that filled its buffer wait for the end of the loop turn (the loop reads again
at once) and go out with those of the receives after it; the rest of an H2CData
payload is received straight into the command's buffer only when it is not short.

The connection sits on one end of a real socket pair; the tests play the loop's part
of a receive (`get_buffer`, then `buffer_updated`) and read the answers at the other
end."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mayastor.bdev import Buffer, IoDone
from mayastor.bdev.device import BlockDevice
from mayastor.bdev.malloc import MallocDevice
from mayastor.nvmf import poll
from mayastor.nvmf.pdu import Parts, Pdu
from mayastor.target._connection import SINK_MIN, Connection
from tests.unit.target.test_receive_batching import (
    BS,
    capsule_write,
    join,
    r2t_write,
    r2ts,
    read,
    read_data,
    statuses,
)
from tests.unit.target.wire import BLOCKS, SUBNQN, Wire, make_registry


def receive(conn: Connection, data: bytes) -> None:
    """The loop's receive of `data`: into the buffer the connection names, as many
    times as it takes."""
    while data:
        buffer = conn.get_buffer(-1)
        count = min(len(buffer), len(data))
        buffer[:count] = data[:count]
        data = data[count:]
        conn.buffer_updated(count)


class SocketWire(Wire):
    """A test host whose bytes reach the queue pair of `conn` through its receives, and
    whose answers come from the other end of the socket pair."""

    def __init__(self, conn: Connection, host: socket.socket) -> None:
        super().__init__(make_registry())
        assert conn.queue_pair is not None
        self.qp = conn.queue_pair
        self.conn = conn
        self.host = host

    def feed(self, data: bytes) -> None:
        receive(self.conn, data)

    def send(self, parts: Parts) -> None:
        self.feed(join(parts))

    def received(self) -> list[Pdu]:
        while True:
            try:
                chunk = self.host.recv(1 << 20)
            except BlockingIOError:
                break
            if not chunk:
                break
            self.link.out += chunk
        return super().received()


@contextlib.asynccontextmanager
async def socket_wire(device: BlockDevice | None = None) -> AsyncIterator[SocketWire]:
    """A connected I/O queue whose connection serves `device` (a malloc device by
    default)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        theirs = socket.create_connection(("127.0.0.1", port))
        ours, _ = listener.accept()
    theirs.setblocking(False)
    registry = make_registry(device)
    registry.ports.add(port)
    registry.subsystems[SUBNQN].port = port
    admin = Wire(registry, port=port)
    admin.ic()
    assert (await admin.connect()).status.is_success
    assert (await admin.enable()).status.is_success
    conn = Connection(registry, lambda _: None, memoryview(bytearray(2 * (72 + BS))))
    transport, _ = await asyncio.get_running_loop().connect_accepted_socket(lambda: conn, ours)
    wire = SocketWire(conn, theirs)
    wire.registry = registry
    wire.ic()
    assert (await wire.connect(qid=1, cntlid=admin.cntlid)).status.is_success
    try:
        yield wire
    finally:
        transport.abort()
        theirs.close()
        await asyncio.sleep(0)


@pytest.fixture
async def io() -> AsyncIterator[SocketWire]:
    async with socket_wire() as wire:
        yield wire


async def test_answers_of_a_receive_that_filled_the_buffer_wait_for_the_end_of_the_turn(
    io: SocketWire,
) -> None:
    blocks = [os.urandom(BS) for _ in range(3)]
    two = capsule_write(io, 1, 0, blocks[0]) + capsule_write(io, 2, 1, blocks[1])
    receive(io.conn, two)  # exactly the buffer: the loop would read again at once
    assert io.received() == []
    await asyncio.sleep(0)
    assert statuses(io.received()) == {1: 0, 2: 0}


async def test_answers_of_a_receive_that_did_not_fill_the_buffer_go_out_at_once(
    io: SocketWire,
) -> None:
    block = os.urandom(BS)
    receive(io.conn, capsule_write(io, 1, 0, block) + read(io, 2, 0, 1))
    pdus = io.received()
    assert statuses(pdus) == {1: 0, 2: 0}
    assert read_data(pdus) == {2: block}


async def test_answers_held_for_the_turn_go_out_with_those_of_the_next_receive(
    io: SocketWire,
) -> None:
    blocks = [os.urandom(BS) for _ in range(2)]
    receive(io.conn, capsule_write(io, 1, 0, blocks[0]) + capsule_write(io, 2, 1, blocks[1]))
    receive(io.conn, read(io, 3, 0, 2))
    pdus = io.received()
    assert statuses(pdus) == {1: 0, 2: 0, 3: 0}
    assert read_data(pdus) == {3: blocks[0] + blocks[1]}


async def h2cdata_but_its_last(io: SocketWire, length: int, rest: int) -> tuple[bytes, bytes]:
    """Start a write of `length` bytes by R2T and receive its H2CData PDU but for the
    last `rest` bytes; returns the data written and those bytes."""
    receive(io.conn, r2t_write(io, 1, 0, length))
    (r2t,) = r2ts(io.received())
    data = os.urandom(length)
    pdu = join(io.writer.encode_h2c_data(1, r2t.ttag, 0, data))
    receive(io.conn, pdu[: len(pdu) - rest])
    return data, pdu[len(pdu) - rest :]


def assert_written(io: SocketWire, data: bytes) -> None:
    receive(io.conn, read(io, 2, 0, len(data) // BS))
    assert read_data(io.received()) == {2: data}


async def test_a_short_rest_of_a_payload_comes_with_the_next_receive_not_its_own(
    io: SocketWire,
) -> None:
    data, rest = await h2cdata_but_its_last(io, 64 * 1024, 100)
    sink = io.qp.sink
    assert sink is not None
    assert len(sink) == 100
    buffer = io.conn.get_buffer(-1)
    assert len(buffer) != 100  # the shared receive buffer, not the sink
    buffer[: len(rest)] = rest
    io.conn.buffer_updated(len(rest))
    assert io.qp.sink is None
    assert statuses(await io.settle()) == {1: 0}
    assert_written(io, data)


async def test_a_long_rest_of_a_payload_is_received_straight_into_the_command_buffer(
    io: SocketWire,
) -> None:
    data, rest = await h2cdata_but_its_last(io, 64 * 1024, SINK_MIN)
    sink = io.qp.sink
    assert sink is not None
    buffer = io.conn.get_buffer(-1)
    assert len(buffer) == SINK_MIN
    buffer[:] = rest
    io.conn.buffer_updated(SINK_MIN)  # a full buffer: the answer waits for the turn's end
    assert io.qp.sink is None
    await asyncio.sleep(0)
    assert statuses(await io.settle()) == {1: 0}
    assert_written(io, data)
    assert sink.obj is buffer.obj


class WatchingDevice(MallocDevice):
    """Notes the loop's count of target receives being handed out at each write; raises
    a bug (not a DeviceError) for a write to `BUG_LBA`."""

    BUG_LBA = 7

    def __init__(self) -> None:
        super().__init__("watching", BLOCKS, BS)
        self.seen: list[int] = []

    def submit_write(self, lba: int, data: Buffer, done: IoDone, ctx: Any) -> None:
        self.seen.append(poll.for_loop(asyncio.get_running_loop()).receiving)
        if lba == self.BUG_LBA:
            raise RuntimeError("a bug in a device")
        super().submit_write(lba, data, done, ctx)


async def test_the_loop_counts_a_receive_while_its_commands_go_to_the_device() -> None:
    device = WatchingDevice()
    loop_poll = poll.for_loop(asyncio.get_running_loop())
    async with socket_wire(device) as io:
        receive(io.conn, capsule_write(io, 1, 0, os.urandom(BS)))
        assert (device.seen, loop_poll.receiving) == ([1], 0)
        assert statuses(io.received()) == {1: 0}


async def test_a_receive_whose_handling_hit_a_bug_is_no_longer_counted() -> None:
    device = WatchingDevice()
    loop_poll = poll.for_loop(asyncio.get_running_loop())
    async with socket_wire(device) as io:
        receive(io.conn, capsule_write(io, 1, WatchingDevice.BUG_LBA, os.urandom(BS)))
        assert (device.seen, loop_poll.receiving) == ([1], 0)
