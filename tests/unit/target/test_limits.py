"""The target's resource bounds through the sans-I/O queue pair, with time as a number:
ICReq and Connect deadlines, controllers per subsystem, queue depth and I/O queues,
and the write data a connection (and the whole target) may be owed by R2T."""

from __future__ import annotations

import pytest

from mayastor.nvmf.pdu import R2T, CapsuleResp
from mayastor.nvmf.spec import (
    CommandSpecificStatus,
    Completion,
    Connect,
    ControllerCapabilities,
    GenericStatus,
    PropertyOffset,
    SglDescriptor,
    StatusCodeType,
    Write,
)
from mayastor.target import TargetConfig
from mayastor.target._queue_state import QueueState
from mayastor.target._subsystem import SubsystemRegistry
from tests.unit.target.wire import Wire, admin_wire, make_registry

CMD = StatusCodeType.COMMAND_SPECIFIC
BS = 512
KIB = 1024

SMALL = TargetConfig(
    in_capsule_data_size=0,
    max_h2c_data=8 * KIB,
    max_data_transfer=16 * KIB,
    max_pending_write_bytes=32 * KIB,
    max_pending_write_bytes_total=48 * KIB,
    ic_timeout=5.0,
    connect_timeout=7.0,
    write_data_timeout=3.0,
)
"""Writes of 16 KiB go by R2T; a connection may owe two of them, the target three."""


async def io_queue(registry: SubsystemRegistry, admin: Wire, qid: int = 1) -> Wire:
    io = Wire(registry)
    io.ic()
    answer = await io.connect(qid=qid, cntlid=admin.cntlid, sqsize=127)
    assert answer.status.is_success
    return io


def announce_write(io: Wire, cid: int, lba: int = 0, size: int = 16 * KIB) -> None:
    """Send a Write whose data goes by R2T, and do not answer."""
    cmd = Write(lba, size // BS - 1).to_command(cid, 1, SglDescriptor.transport(size))
    io.send(io.writer.encode_capsule_cmd(cmd.encode()))


def r2ts(io: Wire) -> list[tuple[int, int, int]]:
    """(CID, offset, length) of every R2T sent since the last look."""
    return [(p.cccid, p.offset, p.length) for p in io.received() if isinstance(p, R2T)]


def send_data(io: Wire, cid: int, ttag: int, offset: int, size: int) -> None:
    io.send(io.writer.encode_h2c_data(cid, ttag, offset, bytes([cid]) * size))


async def completions(io: Wire) -> list[Completion]:
    return [Completion.decode(p.cqe) for p in await io.settle() if isinstance(p, CapsuleResp)]


# ------------------------------------------------------------------ deadlines


def test_a_connection_without_an_icreq_is_closed_at_the_ic_timeout() -> None:
    wire = Wire(make_registry(config=SMALL))
    wire.qp = type(wire.qp)(wire.registry, wire.link, port=8420, now=100.0)
    assert wire.qp.expire(104.9) == 105.0
    assert not wire.link.closed
    assert wire.qp.expire(105.0) is None
    assert wire.link.closed
    assert wire.qp.state is QueueState.CLOSED
    assert wire.received() == []


async def test_a_connection_without_a_connect_is_closed_at_the_connect_timeout() -> None:
    wire = Wire(make_registry(config=SMALL))
    wire.now = 4.0
    wire.ic()
    assert wire.qp.expire(10.9) == 11.0
    assert not wire.link.closed
    wire.qp.expire(11.0)
    assert wire.link.closed


async def test_a_failed_connect_does_not_stop_the_connect_timeout() -> None:
    wire = Wire(make_registry(config=SMALL))
    wire.ic()
    answer = await wire.connect("nqn.2019-05.io.openebs:not-served")
    assert not answer.status.is_success
    wire.qp.expire(7.0)
    assert wire.link.closed


async def test_a_connected_queue_has_no_deadline() -> None:
    wire = Wire(make_registry(config=SMALL))
    wire.ic()
    assert (await wire.connect()).status.is_success
    assert wire.qp.deadline() is None
    assert wire.qp.expire(1e9) is None
    assert not wire.link.closed


# ------------------------------------------------------------------ controllers and queues


async def test_a_connect_beyond_the_controllers_of_a_subsystem_is_controller_busy() -> None:
    registry = make_registry(config=TargetConfig(max_controllers=2))
    first = await admin_wire(registry)
    await admin_wire(registry)
    third = Wire(registry)
    third.ic()
    answer = await third.connect()
    assert answer.sct_sc == (CMD, CommandSpecificStatus.CONNECT_CONTROLLER_BUSY)
    assert len(registry.subsystems[next(iter(registry.subsystems))].controllers) == 2
    assert (await first.property_get(PropertyOffset.CSTS)).dw0 & 1  # still served


async def test_a_freed_controller_makes_room_for_a_new_one() -> None:
    registry = make_registry(config=TargetConfig(max_controllers=1))
    first = await admin_wire(registry)
    first.qp.transport_closed()
    await admin_wire(registry)


async def test_mqes_is_the_configured_queue_depth_and_a_deeper_queue_is_refused() -> None:
    registry = make_registry(config=TargetConfig(max_queue_entries=16))
    admin = await admin_wire(registry)
    cap = (await admin.property_get(PropertyOffset.CAP, 8)).completion
    assert cap is not None
    assert ControllerCapabilities.decode(cap.dw0 | cap.dw1 << 32).mqes == 15
    io = Wire(registry)
    io.ic()
    answer = await io.connect(qid=1, cntlid=admin.cntlid, sqsize=16)
    assert answer.sct_sc == (CMD, CommandSpecificStatus.CONNECT_INVALID_PARAMETERS)
    assert answer.dw0 & 0xFFFF == Connect.SQSIZE_OFFSET
    io = Wire(registry)
    io.ic()
    assert (await io.connect(qid=1, cntlid=admin.cntlid, sqsize=15)).status.is_success


async def test_an_io_queue_beyond_the_configured_number_is_refused() -> None:
    registry = make_registry(config=TargetConfig(max_io_queues=2))
    admin = await admin_wire(registry)
    await io_queue(registry, admin, qid=2)
    io = Wire(registry)
    io.ic()
    answer = await io.connect(qid=3, cntlid=admin.cntlid, sqsize=127)
    assert answer.sct_sc == (CMD, CommandSpecificStatus.CONNECT_INVALID_PARAMETERS)
    assert answer.dw0 & 0xFFFF == Connect.QID_OFFSET


# ------------------------------------------------------------------ owed write data


async def test_writes_beyond_the_connection_budget_wait_for_their_r2ts() -> None:
    registry = make_registry(config=SMALL)
    io = await io_queue(registry, await admin_wire(registry))
    for cid in (1, 2, 3):
        announce_write(io, cid, lba=cid * 32)
    assert r2ts(io) == [(1, 0, 8 * KIB), (2, 0, 8 * KIB)]
    assert io.qp.pending_write_bytes == 32 * KIB
    assert io.qp.waiting_transfers == 1
    assert registry.write_budget.reserved == 32 * KIB


async def test_a_waiting_write_gets_its_r2t_once_an_earlier_one_has_its_data() -> None:
    registry = make_registry(config=SMALL)
    io = await io_queue(registry, await admin_wire(registry))
    for cid in (1, 2, 3):
        announce_write(io, cid, lba=cid * 32)
    r2ts(io)
    send_data(io, 1, 0, 0, 8 * KIB)
    assert r2ts(io) == [(1, 8 * KIB, 8 * KIB)]  # the rest of command 1 first
    send_data(io, 1, 2, 8 * KIB, 8 * KIB)
    assert r2ts(io) == [(3, 0, 8 * KIB)]
    assert io.qp.waiting_transfers == 0
    assert io.qp.pending_write_bytes == 32 * KIB


async def test_a_write_whose_data_came_completes() -> None:
    registry = make_registry(config=SMALL)
    io = await io_queue(registry, await admin_wire(registry))
    announce_write(io, 7)
    r2ts(io)
    send_data(io, 7, 0, 0, 8 * KIB)
    send_data(io, 7, 1, 8 * KIB, 8 * KIB)
    (done,) = await completions(io)
    assert (done.cid, done.status.is_success) == (7, True)
    assert io.qp.pending_write_bytes == 0
    assert registry.write_budget.reserved == 0


async def test_the_target_budget_holds_other_connections_in_line_in_order() -> None:
    registry = make_registry(config=SMALL)
    admin = await admin_wire(registry)
    first, second, third = [await io_queue(registry, admin, qid) for qid in (1, 2, 3)]
    announce_write(first, 1)
    announce_write(first, 2, lba=32)
    announce_write(second, 1, lba=64)
    announce_write(third, 1, lba=96)
    announce_write(second, 2, lba=128)
    assert r2ts(first) == [(1, 0, 8 * KIB), (2, 0, 8 * KIB)]
    assert r2ts(second) == [(1, 0, 8 * KIB)]
    assert r2ts(third) == []
    assert registry.write_budget.reserved == 48 * KIB
    assert registry.write_budget.waiting == 2
    send_data(first, 1, 0, 0, 8 * KIB)
    r2ts(first)
    send_data(first, 1, 2, 8 * KIB, 8 * KIB)
    assert r2ts(third) == [(1, 0, 8 * KIB)]  # in line before second's next write
    assert r2ts(second) == []


async def test_a_connection_that_stops_sending_owed_data_is_closed_and_its_claim_released() -> None:
    registry = make_registry(config=SMALL)
    admin = await admin_wire(registry)
    stalled, waiting = await io_queue(registry, admin, 1), await io_queue(registry, admin, 2)
    announce_write(stalled, 1)
    announce_write(stalled, 2, lba=32)
    announce_write(waiting, 1, lba=64)
    announce_write(waiting, 2, lba=96)
    r2ts(waiting)
    registry.write_budget.check(10.0)  # the first check that sees the debts starts timers
    waiting.now = 11.0
    send_data(waiting, 1, 0, 0, 4 * KIB)
    registry.write_budget.check(12.9)
    assert not stalled.link.closed
    registry.write_budget.check(13.0)
    assert stalled.link.closed
    assert not waiting.link.closed
    assert stalled.qp.pending_write_bytes == 0
    assert r2ts(waiting) == [(2, 0, 8 * KIB)]
    assert registry.write_budget.reserved == 32 * KIB


async def test_owed_data_arriving_restarts_the_write_data_timer() -> None:
    registry = make_registry(config=SMALL)
    io = await io_queue(registry, await admin_wire(registry))
    announce_write(io, 1)
    r2ts(io)
    registry.write_budget.check(0.0)
    io.now = 2.5
    send_data(io, 1, 0, 0, 4 * KIB)
    registry.write_budget.check(5.0)
    assert not io.link.closed
    registry.write_budget.check(5.5)
    assert io.link.closed


async def test_a_closed_connection_gives_back_what_it_reserved() -> None:
    registry = make_registry(config=SMALL)
    io = await io_queue(registry, await admin_wire(registry))
    for cid in (1, 2, 3):
        announce_write(io, cid, lba=cid * 32)
    io.qp.transport_closed()
    assert registry.write_budget.reserved == 0
    assert registry.write_budget.owing == 0
    assert io.qp.inflight == 0


@pytest.mark.parametrize("size", [16 * KIB, 8 * KIB + 512])
async def test_a_write_of_the_largest_size_fits_an_empty_budget(size: int) -> None:
    registry = make_registry(config=SMALL)
    io = await io_queue(registry, await admin_wire(registry))
    announce_write(io, 1, size=size)
    assert r2ts(io) == [(1, 0, 8 * KIB)]


async def test_a_cid_reused_while_its_write_waits_for_budget_is_a_conflict() -> None:
    registry = make_registry(config=SMALL)
    io = await io_queue(registry, await admin_wire(registry))
    for cid in (1, 2, 3):
        announce_write(io, cid, lba=cid * 32)
    r2ts(io)
    announce_write(io, 3)
    (answer,) = await completions(io)
    assert (answer.cid, answer.status.sc) == (3, GenericStatus.COMMAND_ID_CONFLICT)


async def test_the_write_data_timer_starts_when_a_check_first_sees_the_debt() -> None:
    registry = make_registry(config=SMALL)
    io = await io_queue(registry, await admin_wire(registry))
    io.now = 100.0  # the connection's last input is long before the first check
    announce_write(io, 1)
    registry.write_budget.check(500.0)
    assert not io.link.closed
    registry.write_budget.check(502.9)
    assert not io.link.closed
    registry.write_budget.check(503.0)
    assert io.link.closed
