"""The C2HData PDU of a read: packed by the queue pair itself when the codec would add
nothing (no digests, no padding), by the codec otherwise. Both must carry the same."""

from __future__ import annotations

import os
import struct

from mayastor.nvmf.pdu import C2HData, PduFlags
from mayastor.nvmf.spec import Read, SglDescriptor, Write
from tests.unit.target.wire import Wire, admin_wire, make_registry

BS = 512
_C2H = struct.Struct("<BBBBIH2xII")


async def io_queue(*, hpda: int = 0, ddgst: bool = False, cattr: int = 0) -> Wire:
    registry = make_registry()
    admin = await admin_wire(registry)
    io = Wire(registry)
    io.ic(hpda=hpda, ddgst=ddgst)
    io.reader.configure(data_digest=ddgst, pda=hpda)
    answer = await io.connect(qid=1, cntlid=admin.cntlid, sqsize=127, cattr=cattr)
    assert answer.status.is_success
    return io


async def write_then_read_raw(io: Wire, data: bytes) -> bytes:
    """Write `data` at LBA 0, then read it back; the raw bytes the read sent."""
    sgl = SglDescriptor.in_capsule(len(data))
    cmd = Write(0, len(data) // BS - 1).to_command(io.next_cid(), 1, sgl)
    assert (await io.command(cmd, data)).status.is_success
    cid = io.next_cid()
    read = Read(0, len(data) // BS - 1).to_command(cid, 1, SglDescriptor.transport(len(data)))
    io.send(io.writer.encode_capsule_cmd(read.encode()))
    await io.link.run()
    raw = bytes(io.link.out)
    return raw


async def test_without_digests_a_read_sends_a_24_byte_header_then_the_data() -> None:
    io = await io_queue(cattr=0x04)
    data = os.urandom(8 * BS)
    raw = await write_then_read_raw(io, data)
    ptype, flags, hlen, pdo, plen, _cid, offset, length = _C2H.unpack_from(raw)
    assert (ptype, hlen, pdo, plen, offset, length) == (0x07, 24, 24, 24 + len(data), 0, len(data))
    assert flags == PduFlags.LAST_PDU | PduFlags.SUCCESS
    assert raw[24:] == data


async def test_a_read_pads_its_data_to_the_alignment_the_host_asked_for() -> None:
    io = await io_queue(hpda=7)  # data at a multiple of 32 bytes
    data = os.urandom(4 * BS)
    raw = await write_then_read_raw(io, data)
    pdo = raw[3]
    assert pdo == 32
    io.link.out[:] = raw
    pdus = io.received()
    assert isinstance(pdus[0], C2HData)
    assert bytes(pdus[0].data) == data


async def test_a_read_carries_a_data_digest_when_negotiated() -> None:
    io = await io_queue(ddgst=True)
    data = os.urandom(4 * BS)
    raw = await write_then_read_raw(io, data)
    assert raw[1] & PduFlags.DDGSTF
    io.link.out[:] = raw
    pdus = io.received()  # the reader checks the digest
    assert isinstance(pdus[0], C2HData)
    assert bytes(pdus[0].data) == data
