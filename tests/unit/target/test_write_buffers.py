"""The buffers write data asked for by R2T lands in: one of an ended write is reused
for the next (no allocation, no zero-filling), never one whose write the device has
not finished, and a queue pair keeps only a bounded amount of them."""

from __future__ import annotations

import os

from mayastor.target._transfer import SPARE_BUFFER_BYTES
from tests.unit.target.test_receive_batching import (
    BS,
    _ParkedDevice,
    io_queue,
    join,
    r2t_write,
    r2ts,
    statuses,
)
from tests.unit.target.wire import SUBNQN, Wire, make_registry

LENGTH = 64 * 1024


async def start_write(io: Wire, cid: int, lba: int, data: bytes) -> memoryview:
    """Send a write by R2T and the first bytes of its data; returns the sink (a view of
    the command's buffer) the rest would be received into."""
    io.feed(r2t_write(io, cid, lba, len(data)))
    (r2t,) = r2ts(io.received())
    pdu = join(io.writer.encode_h2c_data(cid, r2t.ttag, 0, data))
    io.feed(pdu[:100])
    sink = io.qp.sink
    assert sink is not None
    return sink


async def finish_write(io: Wire, cid: int, data: bytes) -> None:
    sink = io.qp.sink
    assert sink is not None
    rest = join(io.writer.encode_h2c_data(cid, 0, 0, data))[100:]  # the payload's tail
    sink[:] = rest
    io.qp.sunk(len(rest), io.now)


async def test_a_large_write_lands_in_the_buffer_of_an_ended_one() -> None:
    registry = make_registry()
    io = await io_queue(registry)
    first, second = os.urandom(LENGTH), os.urandom(LENGTH)
    buffer = (await start_write(io, 1, 0, first)).obj
    await finish_write(io, 1, first)
    assert statuses(await io.settle()) == {1: 0}
    assert (await start_write(io, 2, LENGTH // BS, second)).obj is buffer
    await finish_write(io, 2, second)
    assert statuses(await io.settle()) == {2: 0}
    device = registry.subsystems[SUBNQN].device
    assert device is not None
    assert bytes(await device.read(0, LENGTH // BS)) == first
    assert bytes(await device.read(LENGTH // BS, LENGTH // BS)) == second


async def test_the_buffer_of_a_write_still_on_the_device_is_not_reused() -> None:
    device = _ParkedDevice()
    io = await io_queue(make_registry(device))
    first, second = os.urandom(LENGTH), os.urandom(LENGTH)
    buffer = (await start_write(io, 1, 0, first)).obj
    await finish_write(io, 1, first)
    assert device.parked  # the first write is on the device, its buffer with it
    assert (await start_write(io, 2, LENGTH // BS, second)).obj is not buffer
    await finish_write(io, 2, second)
    device.finish_in([0, 1])
    assert statuses(await io.settle()) == {1: 0, 2: 0}
    assert bytes(await device.read(0, LENGTH // BS)) == first
    assert bytes(await device.read(LENGTH // BS, LENGTH // BS)) == second


async def test_a_queue_keeps_a_bounded_amount_of_spare_buffers() -> None:
    device = _ParkedDevice()
    io = await io_queue(make_registry(device))
    count = SPARE_BUFFER_BYTES // LENGTH + 4
    for cid in range(count):
        data = os.urandom(LENGTH)
        await start_write(io, cid, cid * LENGTH // BS, data)
        await finish_write(io, cid, data)
    device.finish_in(list(range(count)))
    assert statuses(await io.settle()) == dict.fromkeys(range(count), 0)
    assert io.qp._spare_bytes == SPARE_BUFFER_BYTES
