"""How the queue pair takes its input: I/O capsules and H2CData decoded in place, many
PDUs in one receive, PDUs split across receives at any byte, the rest of a large
H2CData payload received straight into the command's buffer (the `sink`), and device
completions that come back in another order than the commands went in."""

from __future__ import annotations

import os
import random

from mayastor.bdev import Buffer, IoRequest, MallocDevice
from mayastor.nvmf.pdu import R2T, C2HData, C2HTermReq, CapsuleResp, FatalErrorStatus, Parts, Pdu
from mayastor.nvmf.spec import Completion, Read, SglDescriptor, Write
from mayastor.target._subsystem import SubsystemRegistry
from tests.unit.target.wire import SUBNQN, RecordingLink, Wire, admin_wire, make_registry

BS = 512


async def io_queue(registry: SubsystemRegistry | None = None, *, cattr: int = 0) -> Wire:
    registry = registry or make_registry()
    admin = await admin_wire(registry)
    io = Wire(registry)
    io.ic()
    assert (await io.connect(qid=1, cntlid=admin.cntlid, cattr=cattr)).status.is_success
    return io


def capsule_write(io: Wire, cid: int, lba: int, data: bytes) -> bytes:
    sgl = SglDescriptor.in_capsule(len(data))
    cmd = Write(lba, len(data) // BS - 1).to_command(cid, 1, sgl)
    return join(io.writer.encode_capsule_cmd(cmd.encode(), data))


def r2t_write(io: Wire, cid: int, lba: int, length: int) -> bytes:
    sgl = SglDescriptor.transport(length)
    cmd = Write(lba, length // BS - 1).to_command(cid, 1, sgl)
    return join(io.writer.encode_capsule_cmd(cmd.encode()))


def read(io: Wire, cid: int, lba: int, nblocks: int) -> bytes:
    sgl = SglDescriptor.transport(nblocks * BS)
    return join(
        io.writer.encode_capsule_cmd(Read(lba, nblocks - 1).to_command(cid, 1, sgl).encode())
    )


def join(parts: Parts) -> bytes:
    return b"".join(bytes(p) for p in parts)


def statuses(pdus: list[Pdu]) -> dict[int, int]:
    found = {}
    for pdu in pdus:
        if isinstance(pdu, CapsuleResp):
            completion = Completion.decode(pdu.cqe)
            found[completion.cid] = completion.status.field
    return found


def read_data(pdus: list[Pdu]) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    for pdu in pdus:
        if isinstance(pdu, C2HData):
            found[pdu.cccid] = found.get(pdu.cccid, b"") + bytes(pdu.data)
    return found


def r2ts(pdus: list[Pdu]) -> list[R2T]:
    return [pdu for pdu in pdus if isinstance(pdu, R2T)]


async def test_a_capsule_stream_split_at_every_byte_gives_the_same_answers() -> None:
    io = await io_queue()
    rng = random.Random(1)
    for cut in range(72 + BS + 72 + 2 * BS + 72 + 1):
        data_a, data_b = rng.randbytes(BS), rng.randbytes(2 * BS)
        stream = (
            capsule_write(io, 1, 0, data_a) + capsule_write(io, 2, 1, data_b) + read(io, 3, 0, 3)
        )
        io.feed(stream[:cut])
        io.feed(stream[cut:])
        pdus = await io.settle()
        assert statuses(pdus) == {1: 0, 2: 0, 3: 0}, cut
        assert read_data(pdus) == {3: data_a + data_b}, cut


async def test_h2cdata_split_at_every_byte_lands_whole() -> None:
    io = await io_queue()
    rng = random.Random(2)
    length = 2 * BS
    for cut in range(24 + length + 72 + 1):
        io.feed(r2t_write(io, 1, 4, length))
        (r2t,) = r2ts(await io.settle())
        data = rng.randbytes(length)
        stream = join(io.writer.encode_h2c_data(1, r2t.ttag, 0, data)) + read(io, 2, 4, 2)
        io.feed(stream[:cut])
        io.feed(stream[cut:])
        pdus = await io.settle()
        assert statuses(pdus) == {1: 0, 2: 0}, cut
        assert read_data(pdus) == {2: data}, cut


async def test_a_stream_fed_a_byte_at_a_time_is_answered_in_full() -> None:
    io = await io_queue()
    data = os.urandom(4 * BS)
    io.feed(r2t_write(io, 1, 8, len(data)))
    (r2t,) = r2ts(await io.settle())
    stream = join(io.writer.encode_h2c_data(1, r2t.ttag, 0, data))
    stream += capsule_write(io, 2, 16, data) + read(io, 3, 8, 4) + read(io, 4, 16, 4)
    for i in range(len(stream)):
        io.feed(stream[i : i + 1])
    pdus = await io.settle()
    assert statuses(pdus) == {1: 0, 2: 0, 3: 0, 4: 0}
    assert read_data(pdus) == {3: data, 4: data}


async def test_many_commands_in_one_receive_are_all_answered() -> None:
    io = await io_queue()
    blocks = [os.urandom(BS) for _ in range(64)]
    io.feed(b"".join(capsule_write(io, cid, cid, blocks[cid]) for cid in range(64)))
    io.feed(b"".join(read(io, 64 + cid, cid, 1) for cid in range(64)))
    pdus = await io.settle()
    assert statuses(pdus) == dict.fromkeys(range(128), 0)
    assert read_data(pdus) == {64 + cid: blocks[cid] for cid in range(64)}


async def test_the_rest_of_a_large_h2cdata_payload_goes_into_the_sink() -> None:
    registry = make_registry()
    io = await io_queue(registry)
    data = os.urandom(64 * 1024)
    io.feed(r2t_write(io, 1, 0, len(data)))
    (r2t,) = r2ts(await io.settle())
    pdu = join(io.writer.encode_h2c_data(1, r2t.ttag, 0, data))
    io.feed(pdu[:1000])
    sink = io.qp.sink
    assert sink is not None
    assert len(sink) == len(pdu) - 1000
    rng = random.Random(3)
    at = 1000
    while at < len(pdu):
        sink = io.qp.sink
        assert sink is not None
        count = min(rng.randrange(1, 9000), len(sink))
        sink[:count] = pdu[at : at + count]
        io.qp.sunk(count, io.now)
        at += count
    assert io.qp.sink is None
    assert statuses(await io.settle()) == {1: 0}
    device = registry.subsystems[SUBNQN].device
    assert device is not None
    assert bytes(await device.read(0, len(data) // BS)) == data


async def test_commands_after_a_sunk_payload_in_the_same_receive_are_answered() -> None:
    io = await io_queue()
    data = os.urandom(16 * 1024)
    io.feed(r2t_write(io, 1, 0, len(data)))
    (r2t,) = r2ts(await io.settle())
    pdu = join(io.writer.encode_h2c_data(1, r2t.ttag, 0, data))
    io.feed(pdu[:100])
    assert io.qp.sink is not None
    io.feed(pdu[100:] + read(io, 2, 0, len(data) // BS))
    assert io.qp.sink is None
    pdus = await io.settle()
    assert statuses(pdus) == {1: 0, 2: 0}
    assert read_data(pdus) == {2: data}


async def test_h2cdata_beyond_its_window_terminates_before_anything_is_sunk() -> None:
    io = await io_queue()
    io.feed(r2t_write(io, 1, 0, 4 * BS))
    (r2t,) = r2ts(await io.settle())
    pdu = join(io.writer.encode_h2c_data(1, r2t.ttag, 0, os.urandom(8 * BS)))
    io.feed(pdu[:100])
    assert io.qp.sink is None
    assert io.qp.closed
    terms = [p for p in io.received() if isinstance(p, C2HTermReq)]
    assert [t.fes for t in terms] == [FatalErrorStatus.DATA_OUT_OF_RANGE]


class _ParkedDevice(MallocDevice):
    """Malloc memory whose submitted reads and writes end only when the test says so."""

    def __init__(self) -> None:
        super().__init__("parked", 2048, BS)
        self.parked: list[tuple[IoRequest, Buffer | None]] = []

    def _submit_read(self, lba: int, nblocks: int, request: IoRequest) -> None:
        data = bytes(self._readonly[lba * BS : (lba + nblocks) * BS])
        self.parked.append((request, data))

    def _submit_write(self, lba: int, data: Buffer, request: IoRequest) -> None:
        self._view[lba * BS : lba * BS + request.nbytes] = data
        self.parked.append((request, None))

    def finish_in(self, order: list[int]) -> None:
        parked, self.parked = self.parked, []
        for index in order:
            request, data = parked[index]
            request.finish(data, None)


async def test_completions_in_another_order_answer_each_command_with_its_own_data() -> None:
    device = _ParkedDevice()
    registry = make_registry(device=device)
    io = await io_queue(registry, cattr=0x04)
    blocks = [os.urandom(BS) for _ in range(8)]
    io.feed(b"".join(capsule_write(io, cid, cid, blocks[cid]) for cid in range(8)))
    device.finish_in([5, 2, 7, 0, 1, 6, 3, 4])
    assert statuses(await io.settle()) == dict.fromkeys(range(8), 0)
    io.feed(b"".join(read(io, 8 + cid, cid, 1) for cid in range(8)))
    device.finish_in([7, 6, 5, 4, 3, 2, 1, 0])
    pdus = await io.settle()
    assert [p.cccid for p in pdus if isinstance(p, C2HData)] == list(range(15, 7, -1))
    assert read_data(pdus) == {8 + cid: blocks[cid] for cid in range(8)}


class _CountingLink(RecordingLink):
    """The recording I/O shell, counting its `send` calls and noting the order of sends
    and the close."""

    def __init__(self) -> None:
        super().__init__()
        self.sends = 0
        self.events: list[str] = []

    def send(self, parts: Parts) -> None:
        self.sends += 1
        self.events.append("send")
        super().send(parts)

    def close(self) -> None:
        self.events.append("close")
        super().close()


def counting(io: Wire) -> _CountingLink:
    link = _CountingLink()
    io.link = io.qp._link = link
    io.qp._send = link.send
    return link


async def test_answers_of_commands_completed_within_one_receive_go_out_in_one_send() -> None:
    io = await io_queue()
    link = counting(io)
    blocks = [os.urandom(BS) for _ in range(8)]
    io.feed(b"".join(capsule_write(io, cid, cid, blocks[cid]) for cid in range(8)))
    io.feed(b"".join(read(io, 8 + cid, cid, 1) for cid in range(8)))
    assert link.sends == 2
    pdus = io.received()
    assert statuses(pdus) == dict.fromkeys(range(16), 0)
    assert read_data(pdus) == {8 + cid: blocks[cid] for cid in range(8)}


async def test_a_queue_closed_within_a_receive_sends_what_it_collected_before_it_closes() -> None:
    io = await io_queue()
    link = counting(io)
    bad_h2c = join(io.writer.encode_h2c_data(1, 99, 0, os.urandom(BS)))  # unknown TTAG
    io.feed(capsule_write(io, 1, 0, os.urandom(BS)) + bad_h2c)
    assert io.qp.closed
    assert link.events == ["send", "close"]
    pdus = io.received()
    assert statuses(pdus) == {1: 0}
    assert [p.fes for p in pdus if isinstance(p, C2HTermReq)] == [
        FatalErrorStatus.INVALID_HEADER_FIELD
    ]


async def test_answers_sent_after_a_receive_go_out_at_once() -> None:
    device = _ParkedDevice()
    io = await io_queue(make_registry(device))
    link = counting(io)
    io.feed(capsule_write(io, 1, 0, os.urandom(BS)))
    assert link.sends == 0
    device.finish_in([0])
    assert link.sends == 1
    assert statuses(io.received()) == {1: 0}
