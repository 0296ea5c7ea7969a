"""The end of a host's session, byte by byte through the sans-I/O queue pair.

SPDK's NVMe/TCP host, when it detaches a controller (`nvme_ctrlr_destruct_async`),
first completes its own Asynchronous Event Requests locally (it never tells the
target), frees its I/O queues, then reads CC, writes CC with SHN = 01b, and polls CSTS
until SHST = 10b, with command IDs freed by the dropped requests. The target must
serve those commands (retiring the held requests silently: an answer to the old one
would complete the new one in the host's eyes) and still refuse a command ID in
flight on an I/O queue. A shutdown whose flush fails must not report SHST complete.
"""

from __future__ import annotations

import struct

import pytest

from mayastor.bdev import MallocDevice
from mayastor.errors import InternalDeviceError
from mayastor.nvmf.pdu import CapsuleResp
from mayastor.nvmf.spec import (
    DYNAMIC_CNTLID,
    AdminOpcode,
    AnaState,
    AsyncEvent,
    AsyncEventConfig,
    Command,
    Completion,
    Connect,
    ConnectData,
    ControllerStatus,
    FeatureId,
    GenericStatus,
    SglDescriptor,
    ShutdownStatus,
    Write,
)
from mayastor.target._subsystem import SubsystemRegistry
from tests.unit.target.wire import (
    BLOCKS,
    DEVICE_UUID,
    HOSTID,
    HOSTNQN,
    SUBNQN,
    Wire,
    admin_wire,
    io_wire,
    make_registry,
)

FABRICS = 0x7F
PROPERTY_SET, PROPERTY_GET = 0x00, 0x04
CC, CSTS = 0x14, 0x1C
PSDT_SGL = 0x40  # byte 1 of every SQE SPDK's TCP transport sends: SGLs
TRANSPORT_SGL = 0x5A
ENABLED_CC = 1 | 6 << 16 | 4 << 20  # EN, IOSQES 6, IOCQES 4, as Wire.enable writes it
SHN_NORMAL = 1 << 14
AER_CIDS = (20, 21, 22, 23)  # AERL is 3: SPDK sends four


def property_sqe(cid: int, fctype: int, offset: int, value: int = 0, size: int = 4) -> bytes:
    """A Property Get/Set SQE laid out by hand (Fabrics 1.1, 3.4 and 3.5): opcode 7Fh,
    PSDT, CID, FCTYPE, an empty transport SGL, ATTRIB (size), OFST, VALUE."""
    sqe = bytearray(64)
    struct.pack_into("<BBHB", sqe, 0, FABRICS, PSDT_SGL, cid, fctype)
    sqe[39] = TRANSPORT_SGL
    struct.pack_into("<BxxxI", sqe, 40, 0 if size == 4 else 1, offset)
    struct.pack_into("<Q", sqe, 48, value)
    return bytes(sqe)


def capsule_resp(cid: int, sqhd: int, dw0: int = 0, status: int = 0) -> bytes:
    """A CapsuleResp PDU without digests: its common header (type 5, HLEN = PLEN = 24),
    then the CQE (DW0, DW1, SQHD, SQID 0, CID, status)."""
    return struct.pack("<BBBBI", 0x05, 0, 24, 0, 24) + struct.pack(
        "<IIHHHH", dw0, 0, sqhd, 0, cid, status << 1
    )


async def send_sqe(wire: Wire, sqe: bytes) -> bytes:
    """Send one capsule; the bytes the target sent back once its work settled."""
    wire.send(wire.writer.encode_capsule_cmd(sqe))
    await wire.link.run()
    out = bytes(wire.link.out)
    wire.link.out.clear()
    return out


async def holding_aers(registry: SubsystemRegistry) -> Wire:
    """An enabled admin queue with Async Event Configuration set and four AERs held.

    Commands so far: Connect, Property Set (enable), Set Features, four AERs: seven,
    so the next command is answered with SQHD 8 (the admin queue has 32 entries)."""
    wire = await admin_wire(registry)
    events = int(AsyncEventConfig.NAMESPACE_ATTRIBUTE | AsyncEventConfig.ANA_CHANGE)
    answer = await wire.admin(
        AdminOpcode.SET_FEATURES, cdw10=FeatureId.ASYNC_EVENT_CONFIGURATION, cdw11=events
    )
    assert answer.status.is_success
    for cid in AER_CIDS:
        wire.send(
            wire.writer.encode_capsule_cmd(Command(AdminOpcode.ASYNC_EVENT_REQUEST, cid).encode())
        )
    assert wire.received() == []
    return wire


async def test_spdk_detach_reads_cc_sets_shn_and_polls_csts_with_freed_aer_ids() -> None:
    wire = await holding_aers(make_registry())
    last = AER_CIDS[-1]
    assert await send_sqe(wire, property_sqe(last, PROPERTY_GET, CC)) == capsule_resp(
        last, sqhd=8, dw0=ENABLED_CC
    )
    assert await send_sqe(
        wire, property_sqe(last, PROPERTY_SET, CC, ENABLED_CC | SHN_NORMAL)
    ) == capsule_resp(last, sqhd=9)
    other = AER_CIDS[-2]
    shut_down = ShutdownStatus.COMPLETE << 2
    assert await send_sqe(wire, property_sqe(other, PROPERTY_GET, CSTS)) == capsule_resp(
        other, sqhd=10, dw0=shut_down
    )
    assert not wire.link.closed


async def test_a_reused_aer_id_is_retired_and_an_event_goes_to_the_next_held_request() -> None:
    registry = make_registry()
    wire = await holding_aers(registry)
    await send_sqe(wire, property_sqe(AER_CIDS[0], PROPERTY_GET, CC))
    registry.subsystems[SUBNQN].set_ana_state(AnaState.INACCESSIBLE)
    (resp,) = wire.received()
    assert isinstance(resp, CapsuleResp)
    completion = Completion.decode(resp.cqe)
    assert completion.cid == AER_CIDS[1]
    assert AsyncEvent.decode(completion.dw0) == AsyncEvent.ana_change()


async def test_a_reused_aer_id_leaves_the_other_held_requests_in_flight() -> None:
    wire = await holding_aers(make_registry())
    await send_sqe(wire, property_sqe(AER_CIDS[0], PROPERTY_GET, CC))
    assert wire.qp.inflight == len(AER_CIDS) - 1


async def test_a_command_id_in_flight_on_an_io_queue_is_still_a_conflict() -> None:
    registry = make_registry()
    admin = await admin_wire(registry)
    io = await io_wire(registry, admin)
    size = 16 * 1024
    write = Write(0, size // 512 - 1).to_command(9, 1, SglDescriptor.transport(size))
    io.send(io.writer.encode_capsule_cmd(write.encode()))
    io.received()  # its R2T: the write waits for data
    answer = await io.command(Command(0x00, 9, 1))  # a Flush with the same ID
    assert answer.status.sc == GenericStatus.COMMAND_ID_CONFLICT
    assert answer.status.dnr
    assert io.qp.inflight == 1


async def test_an_admin_command_id_in_flight_that_is_no_held_aer_is_a_conflict() -> None:
    wire = Wire(make_registry())
    wire.ic()
    # A Connect whose data goes by R2T stays in flight while its data is awaited.
    data = ConnectData(HOSTID, DYNAMIC_CNTLID, SUBNQN, HOSTNQN).encode()
    cmd = Connect(qid=0, sqsize=31).to_command(5, SglDescriptor.transport(len(data)))
    wire.send(wire.writer.encode_capsule_cmd(cmd.encode()))
    wire.received()
    conflict = GenericStatus.COMMAND_ID_CONFLICT | 1 << 14  # DNR
    assert await send_sqe(wire, property_sqe(5, PROPERTY_GET, CC)) == capsule_resp(
        5, sqhd=2, status=conflict
    )


# ------------------------------------------------------------------ shutdown flush


class FlushFails(MallocDevice):
    """A malloc device whose flush fails as a disk's would (an internal error)."""

    async def _flush(self) -> None:
        raise InternalDeviceError("flush failed (injected)")


async def csts_of(wire: Wire) -> ControllerStatus:
    completion = (await wire.property_get(CSTS)).completion
    assert completion is not None
    return ControllerStatus.decode(completion.dw0)


async def test_a_shutdown_whose_flush_fails_reports_a_fatal_status_not_a_clean_shutdown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    device = FlushFails("failing", BLOCKS, 512, uuid=DEVICE_UUID)
    wire = await admin_wire(make_registry(device))
    assert (await wire.shutdown()).status.is_success
    await wire.link.run()
    csts = await csts_of(wire)
    assert csts.cfs
    assert csts.shst != ShutdownStatus.COMPLETE
    assert any("not a clean shutdown" in r.getMessage() for r in caplog.records)


async def test_a_shutdown_whose_flush_succeeds_reports_shutdown_complete() -> None:
    wire = await admin_wire(make_registry())
    assert (await wire.shutdown()).status.is_success
    await wire.link.run()
    csts = await csts_of(wire)
    assert (csts.cfs, csts.shst) == (False, ShutdownStatus.COMPLETE)


async def test_the_flush_of_a_shutdown_overtaken_by_a_reset_and_a_new_one_reports_nothing() -> None:
    wire = await admin_wire(make_registry())
    # Written without running the spawned flushes, so that both are still to come.
    for cid, value in (
        (40, ENABLED_CC | SHN_NORMAL),
        (41, 0),
        (42, ENABLED_CC),
        (43, ENABLED_CC | SHN_NORMAL),
    ):
        wire.send(wire.writer.encode_capsule_cmd(property_sqe(cid, PROPERTY_SET, CC, value)))
    assert len(wire.received()) == 4
    first, second = wire.link.work
    wire.link.work.clear()
    await first
    assert (await csts_of(wire)).shst == ShutdownStatus.OCCURRING
    await second
    assert (await csts_of(wire)).shst == ShutdownStatus.COMPLETE
