"""Random and mutated PDUs (seeded random) thrown at a live target.

Each case is its own TCP connection: garbage instead of an ICReq, random bytes after
a valid ICReq, PDUs with random common headers, valid PDUs with bytes flipped or cut,
and well-framed capsules with random SQEs on admin and I/O queues. Whatever comes
back must be well-formed PDUs; a C2HTermReq must be the last thing sent before the
target closes that connection; garbage must be terminated. Meanwhile another host
keeps writing and reading back through its own controller, and the target logs no
error of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import struct
from dataclasses import dataclass

import pytest

from mayastor.nvmf.pdu import (
    C2HTermReq,
    ICResp,
    Pdu,
    PduError,
    PduReader,
    PduWriter,
    Role,
)
from mayastor.nvmf.spec import (
    Connect,
    ConnectData,
    ControllerConfiguration,
    PropertySet,
    Read,
    SglDescriptor,
)
from tests.integration.target.conftest import Served
from tests.integration.target.nvme_client import HOSTID, HOSTNQN, HostController

pytestmark = pytest.mark.slow

SEED = 20240611
CASES_PER_KIND = 40
BATCH = 20
IDLE = 0.3
BYSTANDER = "nqn.2014-08.org.nvmexpress:uuid:b0b0b0b0-1234-4567-89ab-cdef01234567"


@dataclass
class Outcome:
    kind: str
    pdus: list[Pdu]
    closed: bool
    decode_error: PduError | None

    @property
    def terminated(self) -> bool:
        return any(isinstance(p, C2HTermReq) for p in self.pdus)


def host_writer() -> PduWriter:
    return PduWriter(Role.HOST)


def wire(parts: list[bytes | bytearray | memoryview]) -> bytes:
    return b"".join(bytes(p) for p in parts)


def icreq() -> bytes:
    return wire(host_writer().encode_ic_req())


def connect_capsule(nqn: str, qid: int = 0, cntlid: int = 0xFFFF, hostnqn: str = HOSTNQN) -> bytes:
    data = ConnectData(HOSTID, cntlid, nqn, hostnqn).encode()
    sqsize = 31 if qid == 0 else 127
    cmd = Connect(qid=qid, sqsize=sqsize).to_command(1, SglDescriptor.in_capsule(len(data)))
    return wire(host_writer().encode_capsule_cmd(cmd.encode(), data))


def enable_capsule() -> bytes:
    cc = ControllerConfiguration(en=True, iosqes=6, iocqes=4).encode()
    return wire(host_writer().encode_capsule_cmd(PropertySet(0x14, cc).to_command(2).encode()))


async def probe(port: int, kind: str, payload: bytes) -> Outcome:
    """Send `payload` on a fresh connection; gather what comes back until idle or EOF."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = bytearray()
    closed = False
    try:
        writer.write(payload)
        while True:
            try:
                chunk = await asyncio.wait_for(reader.read(1 << 20), IDLE)
            except TimeoutError:
                break
            if not chunk:
                closed = True
                break
            received += chunk
    except ConnectionError:
        closed = True
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()
    pdus: list[Pdu] = []
    decode_error = None
    host = PduReader(Role.HOST, max_data_length=16 << 20)
    host.feed(bytes(received))
    try:
        while (pdu := host.next_pdu()) is not None:
            pdus.append(pdu)
            if isinstance(pdu, ICResp):
                host.configure(header_digest=pdu.hdgst_enable, data_digest=pdu.ddgst_enable)
    except PduError as err:
        decode_error = err
    return Outcome(kind, pdus, closed, decode_error)


def garbage(rng: random.Random) -> bytes:
    """Random bytes that cannot start an ICReq (the first PDU type byte is not 0)."""
    data = bytearray(rng.randbytes(rng.randint(8, 300)))
    data[0] = rng.randint(1, 255)
    return bytes(data)


def random_header(rng: random.Random) -> bytes:
    """After an ICReq: one PDU with a random common header and a little payload."""
    ptype = rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0x7F, 0xFF])
    hlen = rng.choice([0, 8, 24, 72, 128, rng.randint(0, 255)])
    pdo = rng.choice([0, hlen, hlen + 4, rng.randint(0, 255)]) & 0xFF
    body = rng.randbytes(rng.randint(0, 200))
    plen = rng.choice([8 + len(body), hlen, rng.randint(0, 1 << 16), 0xFFFF_FFFF])
    header = struct.pack("<BBBBI", ptype, rng.randint(0, 255), hlen, pdo, plen)
    return icreq() + header + body


def mutated(rng: random.Random, nqn: str) -> bytes:
    """A valid conversation (ICReq, Connect, enable, I/O-like capsules) with bytes
    flipped, inserted or cut somewhere after the ICReq."""
    writer = host_writer()
    tail = [connect_capsule(nqn), enable_capsule()]
    tail.append(
        wire(
            writer.encode_capsule_cmd(
                Read(0, 7).to_command(3, 1, SglDescriptor.transport(4096)).encode()
            )
        )
    )
    tail.append(wire(writer.encode_h2c_data(3, rng.randint(0, 3), 0, rng.randbytes(512))))
    body = bytearray(b"".join(tail))
    for _ in range(rng.randint(1, 6)):
        where = rng.randrange(len(body))
        choice = rng.random()
        if choice < 0.6:
            body[where] ^= 1 << rng.randrange(8)
        elif choice < 0.8:
            body[where:where] = rng.randbytes(rng.randint(1, 16))
        else:
            del body[where : where + rng.randint(1, 64)]
    return icreq() + bytes(body)


def random_commands(rng: random.Random, nqn: str, cntlid: int | None) -> bytes:
    """Well-framed capsules with random SQEs (and in-capsule data), on an admin queue
    (cntlid None) or an I/O queue of the bystander's controller."""
    writer = host_writer()
    parts = [icreq()]
    if cntlid is None:
        parts += [connect_capsule(nqn), enable_capsule()]
    else:
        qid = rng.randint(5, 8)
        parts.append(connect_capsule(nqn, qid=qid, cntlid=cntlid, hostnqn=BYSTANDER))
    for cid in range(10, 10 + rng.randint(1, 12)):
        sqe = bytearray(rng.randbytes(64))
        sqe[2:4] = cid.to_bytes(2, "little")
        if rng.random() < 0.5:
            sqe[0] = rng.choice([0x00, 0x01, 0x02, 0x06, 0x08, 0x09, 0x0A, 0x0C, 0x18, 0x7F])
        if rng.random() < 0.5:
            sqe[4:8] = (1).to_bytes(4, "little")
        data = rng.randbytes(rng.choice([0, 0, 16, 512, 4096]))
        parts.append(wire(writer.encode_capsule_cmd(bytes(sqe), data)))
    return b"".join(parts)


async def test_random_and_mutated_pdus_end_only_the_connection_that_sent_them(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mayastor.target")
    rng = random.Random(SEED)
    bystander = await HostController.connect(
        "127.0.0.1", served.port, served.nqn, hostnqn=BYSTANDER, io_queues=2
    )
    try:
        cases: list[tuple[str, bytes]] = []
        for _ in range(CASES_PER_KIND):
            cases.append(("garbage", garbage(rng)))
            cases.append(("random header", random_header(rng)))
            cases.append(("mutated", mutated(rng, served.nqn)))
            cases.append(("admin commands", random_commands(rng, served.nqn, None)))
            cases.append(("io commands", random_commands(rng, served.nqn, bystander.cntlid)))
        rng.shuffle(cases)
        outcomes: list[Outcome] = []
        for start in range(0, len(cases), BATCH):
            batch = cases[start : start + BATCH]
            outcomes += await asyncio.gather(
                *(probe(served.port, kind, payload) for kind, payload in batch)
            )
            block = rng.randrange(0, served.device.num_blocks - 16)
            data = os.urandom(8192)
            queue = bystander.io[start // BATCH % 2]
            assert (await queue.write(block, data, 512)).ok
            assert (await queue.read(block, 16, 512)).data == data
        for outcome in outcomes:
            assert outcome.decode_error is None, (outcome.kind, outcome.decode_error)
            if outcome.terminated:
                assert isinstance(outcome.pdus[-1], C2HTermReq), outcome.kind
                assert outcome.closed, outcome.kind
            if outcome.kind == "garbage":
                assert outcome.terminated, outcome.pdus
        terminated = sum(o.terminated for o in outcomes)
        assert terminated >= len(outcomes) // 4
        infos = served.target.controllers(served.nqn)
        assert [i.hostnqn for i in infos if i.cntlid == bystander.cntlid] == [BYSTANDER]
        assert not bystander.admin.closed.is_set()
    finally:
        await bystander.close()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


async def test_a_pdu_announcing_more_data_than_allowed_is_refused_before_it_is_buffered(
    served: Served,
) -> None:
    header = struct.pack("<BBBBI", 0x04, 0, 72, 72, 72 + (256 << 20))
    outcome = await probe(served.port, "huge", icreq() + header + bytes(64))
    assert outcome.terminated
    assert outcome.closed
