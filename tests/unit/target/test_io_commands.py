"""NVM I/O commands through the sans-I/O queue pair: data in and out (in-capsule and
by R2T), the C2HData SUCCESS flag, and exact statuses for bad opcodes, namespaces,
fields, LBA ranges and failing devices; transport errors end only that connection."""

from __future__ import annotations

import asyncio
import os

import pytest

from mayastor.errors import UnrecoveredReadError, WriteFault
from mayastor.nvmf.pdu import C2HData, C2HTermReq, CapsuleResp, FatalErrorStatus
from mayastor.nvmf.spec import (
    NSID_ALL,
    Command,
    Completion,
    DatasetManagement,
    DsmRange,
    GenericStatus,
    IoOpcode,
    MediaStatus,
    Read,
    SglDescriptor,
    StatusCodeType,
    Write,
    WriteZeroes,
    encode_dsm_ranges,
)
from mayastor.target import TargetConfig
from mayastor.target._subsystem import SubsystemRegistry
from tests.unit.target.wire import (
    BLOCKS,
    SUBNQN,
    Answer,
    FailingDevice,
    Wire,
    admin_wire,
    io_wire,
    make_registry,
)

GEN = StatusCodeType.GENERIC
BS = 512


async def setup(
    config: TargetConfig | None = None, *, cattr: int = 0, sqsize: int = 127, maxr2t: int = 0
) -> tuple[SubsystemRegistry, Wire]:
    registry = make_registry(config=config)
    admin = await admin_wire(registry)
    io = Wire(registry)
    io.ic(maxr2t=maxr2t)
    answer = await io.connect(qid=1, cntlid=admin.cntlid, sqsize=sqsize, cattr=cattr)
    assert answer.status.is_success
    return registry, io


def device_of(registry: SubsystemRegistry) -> FailingDevice:
    device = registry.subsystems[SUBNQN].device
    assert device is not None
    return device  # type: ignore[return-value]


async def write(
    io: Wire, lba: int, data: bytes, *, fua: bool = False, capsule: bool = True
) -> Answer:
    nblocks = len(data) // BS
    if capsule:
        sgl = SglDescriptor.in_capsule(len(data))
        return await io.command(
            Write(lba, nblocks - 1, fua).to_command(io.next_cid(), 1, sgl), data
        )
    io.r2t_data = data
    sgl = SglDescriptor.transport(len(data))
    return await io.command(Write(lba, nblocks - 1, fua).to_command(io.next_cid(), 1, sgl))


async def read(io: Wire, lba: int, nblocks: int, *, nsid: int = 1) -> Answer:
    sgl = SglDescriptor.transport(nblocks * BS)
    return await io.command(Read(lba, nblocks - 1).to_command(io.next_cid(), nsid, sgl))


# ------------------------------------------------------------------ data


async def test_in_capsule_write_reads_back() -> None:
    _, io = await setup()
    data = os.urandom(8 * BS)
    assert (await write(io, 10, data)).status.is_success
    answer = await read(io, 10, 8)
    assert answer.status.is_success
    assert answer.data == data


async def test_a_read_ends_with_a_capsule_resp_while_sq_flow_control_is_on() -> None:
    _, io = await setup()
    answer = await read(io, 0, 1)
    assert answer.completion is not None
    assert not answer.success_flag


async def test_a_read_ends_with_c2hdata_success_when_sq_flow_control_is_off() -> None:
    _, io = await setup(cattr=0x04)
    data = os.urandom(4 * BS)
    await write(io, 0, data)
    cid = io.next_cid()
    io.send(
        io.writer.encode_capsule_cmd(
            Read(0, 3).to_command(cid, 1, SglDescriptor.transport(len(data))).encode()
        )
    )
    pdus = await io.settle()
    assert [type(p) for p in pdus] == [C2HData]
    (pdu,) = pdus
    assert isinstance(pdu, C2HData)
    assert (pdu.last, pdu.success, bytes(pdu.data)) == (True, True, data)


async def test_a_large_write_is_asked_for_by_r2ts_of_at_most_maxh2cdata() -> None:
    registry, io = await setup(TargetConfig(max_h2c_data=4096))
    data = os.urandom(16 * 1024)
    answer = await write(io, 0, data, capsule=False)
    assert answer.status.is_success
    assert [(r.offset, r.length) for r in answer.r2ts] == [
        (0, 4096),
        (4096, 4096),
        (8192, 4096),
        (12288, 4096),
    ]
    assert bytes(await device_of(registry).read(0, 32)) == data


async def test_no_more_r2ts_are_outstanding_than_the_host_allows() -> None:
    _, io = await setup(TargetConfig(max_h2c_data=4096), maxr2t=1)  # 2 outstanding
    cid = io.next_cid()
    sgl = SglDescriptor.transport(16 * 1024)
    io.send(io.writer.encode_capsule_cmd(Write(0, 31).to_command(cid, 1, sgl).encode()))
    answer = await io.collect(cid, answer_r2t=False)
    assert [(r.offset, r.length) for r in answer.r2ts] == [(0, 4096), (4096, 4096)]


async def test_r2t_data_may_come_in_several_h2cdata_pdus() -> None:
    registry, io = await setup()
    data = os.urandom(64 * 1024)
    cid = io.next_cid()
    sgl = SglDescriptor.transport(len(data))
    io.send(io.writer.encode_capsule_cmd(Write(0, 127).to_command(cid, 1, sgl).encode()))
    (r2t,) = (await io.collect(cid, answer_r2t=False)).r2ts
    for start in range(0, len(data), 4096):
        last = start + 4096 == len(data)
        io.send(
            io.writer.encode_h2c_data(cid, r2t.ttag, start, data[start : start + 4096], last=last)
        )
    answer = await io.collect(cid)
    assert answer.status.is_success
    assert bytes(await device_of(registry).read(0, 128)) == data


@pytest.mark.parametrize("nblocks", [1, 8, 255, 2048])
async def test_reads_and_writes_of_many_sizes_read_back(nblocks: int) -> None:
    _, io = await setup()
    data = os.urandom(nblocks * BS)
    assert (await write(io, 0, data, capsule=len(data) <= 8192)).status.is_success
    assert (await read(io, 0, nblocks)).data == data


async def test_reads_and_writes_with_digests_read_back() -> None:
    registry = make_registry()
    admin = await admin_wire(registry)
    io = Wire(registry)
    io.ic(hdgst=True, ddgst=True)
    assert (await io.connect(qid=1, cntlid=admin.cntlid, sqsize=127)).status.is_success
    data = os.urandom(64 * 1024)
    assert (await write(io, 0, data, capsule=False)).status.is_success
    assert (await read(io, 0, 128)).data == data


async def test_fua_write_flushes_the_device() -> None:
    registry, io = await setup()
    flushes = device_of(registry).stats.num_flush_ops
    assert (await write(io, 0, bytes(BS), fua=True)).status.is_success
    assert device_of(registry).stats.num_flush_ops == flushes + 1


async def test_with_the_write_cache_off_every_write_is_flushed() -> None:
    registry, io = await setup()
    ctrl = next(iter(registry.subsystems[SUBNQN].controllers.values()))
    ctrl.write_cache = False
    flushes = device_of(registry).stats.num_flush_ops
    await write(io, 0, bytes(BS))
    await write(io, 1, bytes(BS))
    assert device_of(registry).stats.num_flush_ops == flushes + 2


@pytest.mark.parametrize("nsid", [1, NSID_ALL])
async def test_flush_flushes_the_device(nsid: int) -> None:
    registry, io = await setup()
    flushes = device_of(registry).stats.num_flush_ops
    answer = await io.command(Command(IoOpcode.FLUSH, io.next_cid(), nsid))
    assert answer.status.is_success
    assert device_of(registry).stats.num_flush_ops == flushes + 1


@pytest.mark.parametrize("deac", [False, True])
async def test_write_zeroes_leaves_zeroes(deac: bool) -> None:
    registry, io = await setup()
    await write(io, 4, os.urandom(8 * BS))
    answer = await io.command(WriteZeroes(5, 3, deac=deac).to_command(io.next_cid(), 1))
    assert answer.status.is_success
    content = bytes(await device_of(registry).read(4, 8))
    assert content[BS : 5 * BS] == bytes(4 * BS)
    assert content[:BS] != bytes(BS)
    unmaps = device_of(registry).stats.num_unmap_ops
    assert unmaps == (1 if deac else 0)


async def test_deallocate_unmaps_every_range() -> None:
    registry, io = await setup()
    await write(io, 0, os.urandom(16 * BS))
    ranges = encode_dsm_ranges([DsmRange(2, 3), DsmRange(10, 2)])
    cmd = DatasetManagement(1, deallocate=True).to_command(
        io.next_cid(), 1, SglDescriptor.in_capsule(len(ranges))
    )
    assert (await io.command(cmd, ranges)).status.is_success
    content = bytes(await device_of(registry).read(0, 16))
    assert content[2 * BS : 5 * BS] == bytes(3 * BS)
    assert content[10 * BS : 12 * BS] == bytes(2 * BS)
    assert content[5 * BS : 6 * BS] != bytes(BS)


async def test_deallocate_takes_the_linux_buffer_of_256_ranges_with_one_used() -> None:
    registry, io = await setup()
    await write(io, 0, os.urandom(4 * BS))
    buffer = encode_dsm_ranges([DsmRange(0, 4)]).ljust(4096, b"\0")
    cmd = DatasetManagement(0, deallocate=True).to_command(
        io.next_cid(), 1, SglDescriptor.in_capsule(4096)
    )
    assert (await io.command(cmd, buffer)).status.is_success
    assert bytes(await device_of(registry).read(0, 4)) == bytes(4 * BS)


async def test_deallocate_with_a_range_out_of_bounds_unmaps_nothing() -> None:
    registry, io = await setup()
    data = os.urandom(4 * BS)
    await write(io, 0, data)
    ranges = encode_dsm_ranges([DsmRange(0, 4), DsmRange(BLOCKS - 1, 2)])
    cmd = DatasetManagement(1, deallocate=True).to_command(
        io.next_cid(), 1, SglDescriptor.in_capsule(len(ranges))
    )
    answer = await io.command(cmd, ranges)
    assert answer.sct_sc == (GEN, GenericStatus.LBA_OUT_OF_RANGE)
    assert bytes(await device_of(registry).read(0, 4)) == data


async def test_dataset_management_without_deallocate_changes_nothing() -> None:
    registry, io = await setup()
    data = os.urandom(4 * BS)
    await write(io, 0, data)
    ranges = encode_dsm_ranges([DsmRange(0, 4)])
    cmd = DatasetManagement(0).to_command(io.next_cid(), 1, SglDescriptor.in_capsule(16))
    assert (await io.command(cmd, ranges)).status.is_success
    assert bytes(await device_of(registry).read(0, 4)) == data


# ------------------------------------------------------------------ refusals


@pytest.mark.parametrize("opcode", [IoOpcode.COMPARE, IoOpcode.WRITE_UNCORRECTABLE, 0x55])
async def test_an_opcode_we_do_not_serve_is_invalid_opcode(opcode: int) -> None:
    _, io = await setup()
    answer = await io.command(Command(opcode, io.next_cid(), 1))
    assert answer.sct_sc == (GEN, GenericStatus.INVALID_OPCODE)
    assert answer.status.dnr


@pytest.mark.parametrize("nsid", [0, 2, NSID_ALL])
async def test_a_read_of_another_namespace_is_invalid_namespace(nsid: int) -> None:
    _, io = await setup()
    answer = await read(io, 0, 1, nsid=nsid)
    assert answer.sct_sc == (GEN, GenericStatus.INVALID_NAMESPACE_OR_FORMAT)


@pytest.mark.parametrize(("lba", "nblocks"), [(BLOCKS, 1), (BLOCKS - 1, 2), (1 << 40, 1)])
async def test_a_read_past_the_end_is_lba_out_of_range(lba: int, nblocks: int) -> None:
    _, io = await setup()
    answer = await read(io, lba, nblocks)
    assert answer.sct_sc == (GEN, GenericStatus.LBA_OUT_OF_RANGE)
    assert answer.status.dnr
    assert answer.data == b""


async def test_a_write_past_the_end_is_refused_without_asking_for_data() -> None:
    registry, io = await setup()
    answer = await write(io, BLOCKS - 1, os.urandom(64 * 1024), capsule=False)
    assert answer.sct_sc == (GEN, GenericStatus.LBA_OUT_OF_RANGE)
    assert answer.r2ts == []
    assert device_of(registry).stats.num_write_ops == 0


async def test_an_sgl_length_that_is_not_the_transfer_size_is_refused() -> None:
    _, io = await setup()
    cmd = Read(0, 7).to_command(io.next_cid(), 1, SglDescriptor.transport(512))
    answer = await io.command(cmd)
    assert answer.sct_sc == (GEN, GenericStatus.DATA_SGL_LENGTH_INVALID)


async def test_a_read_into_an_in_capsule_sgl_is_sgl_type_invalid() -> None:
    _, io = await setup()
    cmd = Read(0, 0).to_command(io.next_cid(), 1, SglDescriptor.in_capsule(512))
    answer = await io.command(cmd)
    assert answer.sct_sc == (GEN, GenericStatus.SGL_DESCRIPTOR_TYPE_INVALID)


async def test_in_capsule_data_at_an_offset_is_sgl_offset_invalid() -> None:
    _, io = await setup()
    cmd = Write(0, 0).to_command(io.next_cid(), 1, SglDescriptor.in_capsule(512, offset=16))
    answer = await io.command(cmd, bytes(512))
    assert answer.sct_sc == (GEN, GenericStatus.SGL_OFFSET_INVALID)


async def test_a_transfer_above_mdts_is_invalid_field() -> None:
    _, io = await setup(TargetConfig(max_data_transfer=64 * 1024))
    answer = await read(io, 0, 256)  # 128 KiB
    assert answer.sct_sc == (GEN, GenericStatus.INVALID_FIELD)


async def test_a_device_error_status_passes_through_on_write() -> None:
    registry, io = await setup()
    device_of(registry).__class__ = FailingDevice
    device_of(registry).fail_writes = WriteFault("medium gone")
    answer = await write(io, 0, bytes(BS))
    assert answer.sct_sc == (StatusCodeType.MEDIA, MediaStatus.WRITE_FAULT)


async def test_a_device_error_status_passes_through_on_read() -> None:
    registry, io = await setup()
    device = device_of(registry)
    device.__class__ = FailingDevice
    device.fail_writes = None
    device.fail_reads = UnrecoveredReadError("bad sector")
    answer = await read(io, 0, 1)
    assert answer.sct_sc == (StatusCodeType.MEDIA, MediaStatus.UNRECOVERED_READ_ERROR)
    assert answer.data == b""


def hold_reads(registry: SubsystemRegistry) -> asyncio.Event:
    """Make the device's reads wait until the returned event is set."""
    device = device_of(registry)
    device.__class__ = FailingDevice
    device.fail_writes = device.fail_reads = None
    device.held_reads = asyncio.Event()
    return device.held_reads


async def test_a_cid_already_in_flight_gets_command_id_conflict() -> None:
    registry, io = await setup()
    held = hold_reads(registry)
    cmd = Read(0, 0).to_command(7, 1, SglDescriptor.transport(BS)).encode()
    io.send(io.writer.encode_capsule_cmd(cmd))
    io.send(io.writer.encode_capsule_cmd(cmd))
    (resp,) = io.received()
    assert isinstance(resp, CapsuleResp)
    conflict = Completion.decode(resp.cqe)
    assert (conflict.cid, conflict.status.sc) == (7, GenericStatus.COMMAND_ID_CONFLICT)
    held.set()
    pdus = await io.settle()  # the first read still completes
    assert [type(p) for p in pdus] == [C2HData, CapsuleResp]


# ------------------------------------------------------------------ transport errors


async def test_more_commands_than_the_queue_holds_terminates_the_connection() -> None:
    registry, io = await setup(sqsize=1)  # two entries
    held = hold_reads(registry)
    for cid in (1, 2, 3):
        cmd = Read(0, 0).to_command(cid, 1, SglDescriptor.transport(BS)).encode()
        io.send(io.writer.encode_capsule_cmd(cmd))
    term = io.term()
    assert isinstance(term, C2HTermReq)
    assert term.fes == FatalErrorStatus.PDU_SEQUENCE_ERROR
    assert io.link.closed
    held.set()
    await io.settle()  # the two admitted reads still finish on the device


async def test_in_capsule_data_above_the_limit_terminates_with_data_limit_exceeded() -> None:
    _, io = await setup(TargetConfig(in_capsule_data_size=4096))
    data = bytes(8192)
    cmd = Write(0, 15).to_command(io.next_cid(), 1, SglDescriptor.in_capsule(len(data)))
    io.send(io.writer.encode_capsule_cmd(cmd.encode(), data))
    term = io.term()
    assert term is not None
    assert term.fes == FatalErrorStatus.DATA_LIMIT_EXCEEDED


async def test_h2cdata_with_an_unknown_ttag_terminates_pointing_at_ttag() -> None:
    _, io = await setup()
    io.send(io.writer.encode_h2c_data(1, 99, 0, bytes(512)))
    term = io.term()
    assert term is not None
    assert (term.fes, term.fei) == (FatalErrorStatus.INVALID_HEADER_FIELD, 10)
    assert io.link.closed


async def test_h2cdata_outside_the_r2t_window_terminates_with_data_out_of_range() -> None:
    _, io = await setup()
    cid = io.next_cid()
    sgl = SglDescriptor.transport(16 * 1024)
    io.send(io.writer.encode_capsule_cmd(Write(0, 31).to_command(cid, 1, sgl).encode()))
    (r2t,) = (await io.collect(cid, answer_r2t=False)).r2ts
    io.send(io.writer.encode_h2c_data(cid, r2t.ttag, 4096, bytes(4096)))
    term = io.term()
    assert term is not None
    assert term.fes == FatalErrorStatus.DATA_OUT_OF_RANGE


async def test_a_corrupt_in_capsule_write_is_a_transient_error_and_writes_nothing() -> None:
    registry, _ = await setup()
    admin_ctrl = next(iter(registry.subsystems[SUBNQN].controllers.values()))
    wire = Wire(registry)
    wire.ic(ddgst=True)
    await wire.connect(qid=2, cntlid=admin_ctrl.cntlid, sqsize=127)
    cmd = Write(0, 0).to_command(wire.next_cid(), 1, SglDescriptor.in_capsule(BS))
    parts = wire.writer.encode_capsule_cmd(cmd.encode(), bytes(BS))
    raw = bytearray(b"".join(bytes(p) for p in parts))
    raw[-1] ^= 0xFF  # break the data digest
    wire.feed(bytes(raw))
    answer = await wire.collect(cmd.cid)
    assert answer.sct_sc == (GEN, GenericStatus.TRANSIENT_TRANSPORT_ERROR)
    assert device_of(registry).stats.num_write_ops == 0
    assert not wire.link.closed


async def test_a_protocol_error_on_one_queue_leaves_the_others_alone() -> None:
    registry = make_registry()
    admin = await admin_wire(registry)
    first = await io_wire(registry, admin, qid=1)
    second = await io_wire(registry, admin, qid=2)
    first.feed(b"\xff" * 8)
    assert first.link.closed
    assert not second.link.closed
    assert not admin.link.closed
    assert (await read(second, 0, 1)).status.is_success
