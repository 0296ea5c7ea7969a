"""A host talking to one sans-I/O `QueuePair`, byte by byte, with no socket.

`RecordingLink` is the queue pair's I/O shell for tests: it keeps what is sent as
bytes, notes a close, and holds spawned device work until `run` awaits it in order.
`Wire` encodes host PDUs with our codec, feeds them to the queue pair, and decodes
what comes back into `Answer`s.
"""

from __future__ import annotations

import asyncio
import uuid as uuid_mod
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from mayastor.bdev import BlockDevice, Buffer, MallocDevice
from mayastor.errors import DeviceError
from mayastor.nvmf.pdu import (
    R2T,
    C2HData,
    C2HTermReq,
    CapsuleResp,
    ICResp,
    Parts,
    Pdu,
    PduReader,
    PduWriter,
    Role,
)
from mayastor.nvmf.spec import (
    DYNAMIC_CNTLID,
    Command,
    Completion,
    Connect,
    ConnectData,
    ControllerConfiguration,
    GetLogPage,
    Identify,
    NvmeStatus,
    PropertyGet,
    PropertyOffset,
    PropertySet,
    SglDescriptor,
    ShutdownNotification,
)
from mayastor.target import TargetConfig
from mayastor.target._queue_pair import QueuePair
from mayastor.target._subsystem import Subsystem, SubsystemRegistry

PORT = 8420
OTHER_PORT = 4421
SUBNQN = "nqn.2019-05.io.openebs:1b4e28ba-2fa1-11d2-883f-0016d3cca427"
HOSTNQN = "nqn.2014-08.org.nvmexpress:uuid:5a2f6c1e-0b3d-4e7a-9c8b-1d2e3f4a5b6c"
HOSTID = uuid_mod.UUID("5a2f6c1e-0b3d-4e7a-9c8b-1d2e3f4a5b6c")
OTHER_HOSTNQN = "nqn.2014-08.org.nvmexpress:uuid:00000000-1111-4222-8333-444444444444"
DEVICE_UUID = uuid_mod.UUID("1b4e28ba-2fa1-11d2-883f-0016d3cca427")
BLOCKS = 2048


class RecordingLink:
    """The I/O shell of a queue pair under test."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.closed = False
        self.work: list[Coroutine[Any, Any, None]] = []

    def send(self, parts: Parts) -> None:
        for part in parts:
            self.out += bytes(part)

    def close(self) -> None:
        self.closed = True

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        self.work.append(work)

    async def run(self) -> None:
        """Await every piece of spawned work (and work it spawns), in order."""
        while self.work:
            await self.work.pop(0)


class FailingDevice(MallocDevice):
    """A malloc device whose writes (or reads) fail with a chosen DeviceError, and whose
    reads can be held until `held_reads` is set."""

    held_reads: asyncio.Event | None = None

    def __init__(self, *args: Any, fail_writes: DeviceError | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.fail_writes = fail_writes
        self.fail_reads: DeviceError | None = None

    async def _write(self, lba: int, data: Buffer) -> None:
        if self.fail_writes is not None:
            raise self.fail_writes
        await super()._write(lba, data)

    async def _read(self, lba: int, nblocks: int) -> Buffer:
        if self.held_reads is not None:
            await self.held_reads.wait()
        if self.fail_reads is not None:
            raise self.fail_reads
        return await super()._read(lba, nblocks)


def make_registry(
    device: BlockDevice | None = None,
    *,
    config: TargetConfig | None = None,
    allowed_hosts: list[str] | None = None,
) -> SubsystemRegistry:
    """A registry listening on PORT and OTHER_PORT with SUBNQN served on PORT."""
    registry = SubsystemRegistry("127.0.0.1", config or TargetConfig(), discovery=True)
    registry.ports.update({PORT, OTHER_PORT})
    device = device or MallocDevice("m0", BLOCKS, 512, uuid=DEVICE_UUID)
    registry.subsystems[SUBNQN] = Subsystem(
        SUBNQN,
        device,
        port=PORT,
        allowed_hosts=allowed_hosts,
        serial="SN0123456789",
        model="Mayastor NVMe controller",
        cntlid_range=(1, 0xFFEF),
    )
    return registry


@dataclass
class Answer:
    """What the target sent back for one command."""

    completion: Completion | None
    data: bytes = b""
    success_flag: bool = False
    r2ts: list[R2T] = field(default_factory=list)

    @property
    def status(self) -> NvmeStatus:
        assert self.completion is not None, "no completion"
        return self.completion.status

    @property
    def sct_sc(self) -> tuple[int, int]:
        return self.status.sct, self.status.sc

    @property
    def dw0(self) -> int:
        assert self.completion is not None, "no completion"
        return self.completion.dw0


class Wire:
    """One connection from a test host into a queue pair."""

    def __init__(self, registry: SubsystemRegistry, *, port: int = PORT) -> None:
        self.registry = registry
        self.link = RecordingLink()
        self.qp = QueuePair(registry, self.link, port=port, peer="127.0.0.1:40000")
        self.writer = PduWriter(Role.HOST)
        self.reader = PduReader(Role.HOST, max_data_length=16 << 20)
        self.now = 0.0
        self._cid = 0
        self.cntlid = 0

    # ------------------------------------------------------------------ raw

    def feed(self, data: bytes) -> None:
        self.qp.receive(data, self.now)

    def send(self, parts: Parts) -> None:
        self.feed(b"".join(bytes(p) for p in parts))

    def received(self) -> list[Pdu]:
        """Every PDU the queue pair sent since the last call."""
        self.reader.feed(bytes(self.link.out))
        self.link.out.clear()
        found = []
        while (pdu := self.reader.next_pdu()) is not None:
            found.append(pdu)
        return found

    async def settle(self) -> list[Pdu]:
        """What the queue pair sent once its spawned work and its device I/O are done."""
        await self.link.run()
        while self.qp.device_io:
            await asyncio.sleep(0)
        return self.received()

    def term(self) -> C2HTermReq | None:
        """The C2HTermReq among what was sent, if any."""
        terms = [p for p in self.received() if isinstance(p, C2HTermReq)]
        return terms[0] if terms else None

    # ------------------------------------------------------------------ IC, commands

    def ic(
        self, *, hdgst: bool = False, ddgst: bool = False, hpda: int = 0, maxr2t: int = 0
    ) -> ICResp:
        self.send(
            self.writer.encode_ic_req(
                hpda=hpda, hdgst_enable=hdgst, ddgst_enable=ddgst, maxr2t=maxr2t
            )
        )
        (resp,) = self.received()
        assert isinstance(resp, ICResp)
        self.reader.configure(header_digest=resp.hdgst_enable, data_digest=resp.ddgst_enable)
        self.writer.configure(header_digest=resp.hdgst_enable, data_digest=resp.ddgst_enable)
        self.writer.max_h2c_data = resp.maxh2cdata
        return resp

    def next_cid(self) -> int:
        self._cid += 1
        return self._cid

    async def command(self, cmd: Command, data: Buffer = b"", *, answer_r2t: bool = True) -> Answer:
        """Send `cmd` with in-capsule `data` (when its SGL says so); collect the answer.

        R2Ts are answered from `r2t_data` when `answer_r2t`.
        """
        self.send(self.writer.encode_capsule_cmd(cmd.encode(), data))
        return await self.collect(cmd.cid, answer_r2t=answer_r2t)

    r2t_data: bytes = b""

    async def collect(self, cid: int, *, answer_r2t: bool = True) -> Answer:
        answer = Answer(None)
        parts: dict[int, bytes] = {}
        for _ in range(10_000):
            pdus = await self.settle()
            if not pdus:
                break
            for pdu in pdus:
                if isinstance(pdu, C2HData) and pdu.cccid == cid:
                    parts[pdu.offset] = bytes(pdu.data)
                    if pdu.success:
                        answer.success_flag = True
                        answer.completion = Completion(cid)
                elif isinstance(pdu, CapsuleResp):
                    completion = Completion.decode(pdu.cqe)
                    if completion.cid == cid:
                        answer.completion = completion
                elif isinstance(pdu, R2T) and pdu.cccid == cid:
                    answer.r2ts.append(pdu)
                    if answer_r2t:
                        chunk = self.r2t_data[pdu.offset : pdu.offset + pdu.length]
                        self.send(self.writer.encode_h2c_data(cid, pdu.ttag, pdu.offset, chunk))
            if answer.completion is not None:
                break
        answer.data = b"".join(parts[k] for k in sorted(parts))
        return answer

    # ------------------------------------------------------------------ helpers

    async def connect(
        self,
        subnqn: str = SUBNQN,
        *,
        qid: int = 0,
        hostnqn: str = HOSTNQN,
        hostid: uuid_mod.UUID = HOSTID,
        cntlid: int = DYNAMIC_CNTLID,
        sqsize: int = 31,
        kato: int = 0,
        cattr: int = 0,
        in_capsule: bool = True,
    ) -> Answer:
        data = ConnectData(hostid, cntlid, subnqn, hostnqn).encode()
        sgl = SglDescriptor.in_capsule(len(data)) if in_capsule else SglDescriptor.transport(1024)
        cmd = Connect(qid=qid, sqsize=sqsize, kato=kato, cattr=cattr).to_command(
            self.next_cid(), sgl
        )
        if in_capsule:
            answer = await self.command(cmd, data)
        else:
            self.r2t_data = data
            answer = await self.command(cmd)
        if answer.completion is not None and answer.status.is_success and qid == 0:
            self.cntlid = answer.completion.dw0 & 0xFFFF
        return answer

    async def property_get(self, offset: int, size: int = 4) -> Answer:
        return await self.command(PropertyGet(offset, size).to_command(self.next_cid()))

    async def property_set(self, offset: int, value: int, size: int = 4) -> Answer:
        return await self.command(PropertySet(offset, value, size).to_command(self.next_cid()))

    async def enable(self) -> Answer:
        cc = ControllerConfiguration(en=True, iosqes=6, iocqes=4).encode()
        return await self.property_set(PropertyOffset.CC, cc)

    async def shutdown(self) -> Answer:
        cc = ControllerConfiguration(
            en=True, iosqes=6, iocqes=4, shn=ShutdownNotification.NORMAL
        ).encode()
        return await self.property_set(PropertyOffset.CC, cc)

    async def admin(self, opcode: int, *, nsid: int = 0, length: int = 0, **cdws: int) -> Answer:
        cmd = Command(opcode, self.next_cid(), nsid, SglDescriptor.transport(length), **cdws)
        return await self.command(cmd)

    async def identify(self, cns: int, nsid: int = 0, *, csi: int = 0) -> Answer:
        cmd = Identify(cns, csi=csi).to_command(
            self.next_cid(), nsid, SglDescriptor.transport(4096)
        )
        return await self.command(cmd)

    async def log_page(
        self, lid: int, length: int, *, offset: int = 0, nsid: int = 0xFFFF_FFFF, **fields: int
    ) -> Answer:
        cmd = GetLogPage.for_bytes(lid, length, offset, **fields).to_command(
            self.next_cid(), nsid, SglDescriptor.transport(length)
        )
        return await self.command(cmd)


async def admin_wire(registry: SubsystemRegistry, subnqn: str = SUBNQN, **kw: Any) -> Wire:
    """A connected, enabled admin queue."""
    wire = Wire(registry)
    wire.ic()
    answer = await wire.connect(subnqn, **kw)
    assert answer.status.is_success, answer
    assert (await wire.enable()).status.is_success
    return wire


async def io_wire(
    registry: SubsystemRegistry, admin: Wire, *, qid: int = 1, sqsize: int = 127, cattr: int = 0
) -> Wire:
    """A connected I/O queue of `admin`'s controller."""
    wire = Wire(registry)
    wire.ic()
    answer = await wire.connect(qid=qid, cntlid=admin.cntlid, sqsize=sqsize, cattr=cattr)
    assert answer.status.is_success, answer
    wire.cntlid = admin.cntlid
    return wire
