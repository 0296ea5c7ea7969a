"""A small NVMe/TCP host for the target's tests: asyncio sockets and our codec.

`HostQueue` is one connection (admin or I/O queue) with many commands in flight: a
reader task cuts the target's bytes into PDUs, collects C2HData per command, answers
R2Ts with H2CData (split at MAXH2CDATA) and completes each command on its CapsuleResp
or on C2HData with SUCCESS. `HostController` puts an admin queue and I/O queues
together the way the Linux host does (Connect, CC.EN, wait for CSTS.RDY, Identify).

Test support, not product code: it trusts the target a little more than a real
initiator would, and exposes raw PDU sending for the fuzz tests. Our real initiator
is `mayastor.nvmf.host`.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid as uuid_mod
from dataclasses import dataclass, field

from mayastor.nvmf.pdu import (
    R2T,
    Buffer,
    C2HData,
    C2HTermReq,
    CapsuleResp,
    DataDigestError,
    ICResp,
    PduError,
    PduReader,
    PduWriter,
    Role,
)
from mayastor.nvmf.spec import (
    DYNAMIC_CNTLID,
    Cns,
    Command,
    Completion,
    Connect,
    ConnectData,
    ControllerConfiguration,
    ControllerStatus,
    GetLogPage,
    Identify,
    IdentifyController,
    IoOpcode,
    PropertyGet,
    PropertyOffset,
    PropertySet,
    Read,
    SglDescriptor,
    ShutdownNotification,
    Write,
)

HOSTNQN = "nqn.2014-08.org.nvmexpress:uuid:0f2c2b8e-8d4c-4d4e-9a54-0c6d6a2f1b11"
HOSTID = uuid_mod.UUID("0f2c2b8e-8d4c-4d4e-9a54-0c6d6a2f1b11")
ADMIN_IN_CAPSULE = 8192


class TargetTerminated(Exception):
    """The target sent C2HTermReq or closed the connection."""

    def __init__(self, message: str, term: C2HTermReq | None = None) -> None:
        super().__init__(message)
        self.term = term


@dataclass
class Response:
    """A completed command: its completion and any data it returned."""

    completion: Completion
    data: bytes = b""

    @property
    def ok(self) -> bool:
        return self.completion.status.is_success

    @property
    def sct_sc(self) -> tuple[int, int]:
        return self.completion.status.sct, self.completion.status.sc


@dataclass
class _Pending:
    future: asyncio.Future[Response]
    write_data: memoryview | None = None
    read_parts: dict[int, bytes] = field(default_factory=dict)
    read_size: int = 0
    corrupt: bool = False


class HostQueue:
    """One NVMe/TCP connection to the target, host side."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._stream_reader = reader
        self._stream_writer = writer
        self.pdu_reader = PduReader(Role.HOST, max_data_length=16 << 20)
        self.pdu_writer = PduWriter(Role.HOST)
        self.icresp: ICResp | None = None
        self._icresp_ready: asyncio.Future[ICResp] = asyncio.get_running_loop().create_future()
        self._pending: dict[int, _Pending] = {}
        self._cids = itertools.cycle(range(0xFFFF))
        self.in_capsule_size = ADMIN_IN_CAPSULE
        self.terminated: C2HTermReq | None = None
        self.closed = asyncio.Event()
        self.r2ts: list[R2T] = []
        self.record_r2ts = False
        self.successes = 0  # reads completed by C2HData SUCCESS
        self._task = asyncio.get_running_loop().create_task(self._read_loop())

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        header_digest: bool = False,
        data_digest: bool = False,
        hpda: int = 0,
        maxr2t: int = 0,
    ) -> HostQueue:
        """Connect and do the IC exchange."""
        reader, writer = await asyncio.open_connection(host, port)
        queue = cls(reader, writer)
        try:
            queue.send(
                queue.pdu_writer.encode_ic_req(
                    hpda=hpda, hdgst_enable=header_digest, ddgst_enable=data_digest, maxr2t=maxr2t
                )
            )
            icresp = await asyncio.wait_for(asyncio.shield(queue._icresp_ready), 10)
        except BaseException:
            await queue.close()
            raise
        queue.pdu_writer.max_h2c_data = icresp.maxh2cdata
        return queue

    def send(self, parts: list[Buffer]) -> None:
        self._stream_writer.writelines(parts)

    def send_raw(self, data: bytes) -> None:
        self._stream_writer.write(data)

    async def close(self) -> None:
        self._stream_writer.close()
        try:
            await self._stream_writer.wait_closed()
        except (ConnectionError, OSError):
            pass
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._fail_all(TargetTerminated("connection closed by the host"))

    # ------------------------------------------------------------------ commands

    def next_cid(self) -> int:
        cid = next(self._cids)
        while cid in self._pending:
            cid = next(self._cids)
        return cid

    async def submit(
        self,
        cmd: Command,
        data: Buffer = b"",
        *,
        timeout: float = 30,
        in_capsule: bool | None = None,
    ) -> Response:
        """Send `cmd` (its CID is used as is) with host data, wait for its completion.

        Host data goes in the capsule when it fits (`in_capsule_size`), else by R2T;
        the SGL of `cmd` is filled in accordingly. For commands that read, set the
        SGL yourself (a transport data block of the expected length).
        """
        if self.terminated is not None or self.closed.is_set():
            raise TargetTerminated("connection already terminated", self.terminated)
        view = memoryview(data).cast("B")
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        pending = _Pending(future)
        if cmd.cid in self._pending:
            raise ValueError(f"CID {cmd.cid} already in flight")
        capsule_data: Buffer = b""
        if view.nbytes:
            use_capsule = view.nbytes <= self.in_capsule_size if in_capsule is None else in_capsule
            if use_capsule:
                cmd = _with_sgl(cmd, SglDescriptor.in_capsule(view.nbytes))
                capsule_data = view
            else:
                cmd = _with_sgl(cmd, SglDescriptor.transport(view.nbytes))
                pending.write_data = view
        self._pending[cmd.cid] = pending
        self.send(self.pdu_writer.encode_capsule_cmd(cmd.encode(), capsule_data))
        return await asyncio.wait_for(future, timeout)

    # ------------------------------------------------------------------ Fabrics/admin

    async def connect(
        self,
        subnqn: str,
        *,
        hostnqn: str = HOSTNQN,
        hostid: uuid_mod.UUID = HOSTID,
        qid: int = 0,
        sqsize: int = 31,
        kato: int = 0,
        cntlid: int = DYNAMIC_CNTLID,
        cattr: int = 0,
        in_capsule: bool | None = None,
    ) -> Response:
        data = ConnectData(hostid, cntlid, subnqn, hostnqn).encode()
        cmd = Connect(qid=qid, sqsize=sqsize, kato=kato, cattr=cattr).to_command(self.next_cid())
        return await self.submit(cmd, data, in_capsule=in_capsule)

    async def property_get(self, offset: int, size: int = 4) -> Response:
        return await self.submit(PropertyGet(offset, size).to_command(self.next_cid()))

    async def property_set(self, offset: int, value: int, size: int = 4) -> Response:
        return await self.submit(PropertySet(offset, value, size).to_command(self.next_cid()))

    async def admin(self, opcode: int, *, nsid: int = 0, length: int = 0, **cdws: int) -> Response:
        """An admin command returning `length` bytes of data (0: none)."""
        sgl = SglDescriptor.transport(length)
        return await self.submit(Command(opcode, self.next_cid(), nsid, sgl, **cdws))

    async def identify(self, cns: int, nsid: int = 0, *, csi: int = 0) -> Response:
        cmd = Identify(cns, csi=csi).to_command(
            self.next_cid(), nsid, SglDescriptor.transport(4096)
        )
        return await self.submit(cmd)

    async def get_log_page(
        self, lid: int, length: int, *, offset: int = 0, nsid: int = 0xFFFFFFFF, **fields: int
    ) -> Response:
        cmd = GetLogPage.for_bytes(lid, length, offset, **fields).to_command(
            self.next_cid(), nsid, SglDescriptor.transport(length)
        )
        return await self.submit(cmd)

    # ------------------------------------------------------------------ I/O

    async def read(self, lba: int, nblocks: int, block_size: int, *, nsid: int = 1) -> Response:
        cmd = Read(lba, nblocks - 1).to_command(
            self.next_cid(), nsid, SglDescriptor.transport(nblocks * block_size)
        )
        return await self.submit(cmd)

    async def write(
        self,
        lba: int,
        data: Buffer,
        block_size: int,
        *,
        nsid: int = 1,
        fua: bool = False,
        in_capsule: bool | None = None,
    ) -> Response:
        nblocks = memoryview(data).nbytes // block_size
        cmd = Write(lba, nblocks - 1, fua).to_command(self.next_cid(), nsid, SglDescriptor())
        return await self.submit(cmd, data, in_capsule=in_capsule)

    async def flush(self, *, nsid: int = 1) -> Response:
        return await self.submit(Command(IoOpcode.FLUSH, self.next_cid(), nsid))

    # ------------------------------------------------------------------ input

    async def _read_loop(self) -> None:
        try:
            while True:
                chunk = await self._stream_reader.read(1 << 20)
                if not chunk:
                    break
                self.pdu_reader.feed(chunk)
                while True:
                    try:
                        pdu = self.pdu_reader.next_pdu()
                    except DataDigestError as err:
                        self._on_corrupt(err)
                        continue
                    if pdu is None:
                        break
                    self._dispatch(pdu)
        except (ConnectionError, OSError, PduError) as exc:
            self._fail_all(TargetTerminated(f"connection failed: {exc!r}", self.terminated))
        finally:
            self.closed.set()
            self._fail_all(TargetTerminated("connection closed by the target", self.terminated))

    def _dispatch(self, pdu: object) -> None:
        if isinstance(pdu, ICResp):
            self.icresp = pdu
            hd, dd = pdu.hdgst_enable, pdu.ddgst_enable
            self.pdu_reader.configure(header_digest=hd, data_digest=dd)
            self.pdu_writer.configure(header_digest=hd, data_digest=dd, pda=pdu.cpda)
            if not self._icresp_ready.done():
                self._icresp_ready.set_result(pdu)
        elif isinstance(pdu, CapsuleResp):
            completion = Completion.decode(pdu.cqe)
            pending = self._pending.pop(completion.cid, None)
            if pending is not None and not pending.future.done():
                pending.future.set_result(Response(completion, _assemble(pending)))
        elif isinstance(pdu, C2HData):
            pending = self._pending.get(pdu.cccid)
            if pending is None:
                return
            pending.read_parts[pdu.offset] = bytes(pdu.data)
            pending.read_size += len(pdu.data)
            if pdu.success:
                self.successes += 1
                self._pending.pop(pdu.cccid)
                if not pending.future.done():
                    pending.future.set_result(Response(Completion(pdu.cccid), _assemble(pending)))
        elif isinstance(pdu, R2T):
            if self.record_r2ts:
                self.r2ts.append(pdu)
            pending = self._pending.get(pdu.cccid)
            if pending is None or pending.write_data is None:
                return
            limit = self.pdu_writer.max_h2c_data or pdu.length
            end = pdu.offset + pdu.length
            parts: list[Buffer] = []
            for start in range(pdu.offset, end, limit):
                stop = min(start + limit, end)
                parts += self.pdu_writer.encode_h2c_data(
                    pdu.cccid,
                    pdu.ttag,
                    start,
                    pending.write_data[start:stop],
                    last=stop == end,
                )
            self.send(parts)
        elif isinstance(pdu, C2HTermReq):
            self.terminated = pdu

    def _on_corrupt(self, err: DataDigestError) -> None:
        if isinstance(err.pdu, C2HData):
            pending = self._pending.get(err.pdu.cccid)
            if pending is not None:
                pending.corrupt = True

    def _fail_all(self, exc: Exception) -> None:
        pending, self._pending = self._pending, {}
        for item in pending.values():
            if not item.future.done():
                item.future.set_exception(exc)
        if not self._icresp_ready.done():
            self._icresp_ready.set_exception(exc)
        # The futures may never be awaited (a test that expects the failure).
        for item in pending.values():
            item.future.exception()
        if self._icresp_ready.done() and not self._icresp_ready.cancelled():
            self._icresp_ready.exception()


def _assemble(pending: _Pending) -> bytes:
    if not pending.read_parts:
        return b""
    out = bytearray(max(off + len(part) for off, part in pending.read_parts.items()))
    for off, part in pending.read_parts.items():
        out[off : off + len(part)] = part
    return bytes(out)


def _with_sgl(cmd: Command, sgl: SglDescriptor) -> Command:
    return Command(
        cmd.opcode,
        cmd.cid,
        cmd.nsid,
        sgl,
        cmd.cdw10,
        cmd.cdw11,
        cmd.cdw12,
        cmd.cdw13,
        cmd.cdw14,
        cmd.cdw15,
        cmd.fuse,
        cmd.psdt,
        cmd.cdw2,
        cmd.cdw3,
        cmd.mptr,
    )


class HostController:
    """An admin queue and I/O queues to one subsystem, set up as the Linux host does."""

    def __init__(self, admin: HostQueue, cntlid: int, identify: IdentifyController) -> None:
        self.admin = admin
        self.cntlid = cntlid
        self.identify = identify
        self.io: list[HostQueue] = []

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        subnqn: str,
        *,
        hostnqn: str = HOSTNQN,
        io_queues: int = 1,
        queue_size: int = 128,
        kato: int = 0,
        header_digest: bool = False,
        data_digest: bool = False,
        disable_sq_flow_control: bool = False,
    ) -> HostController:
        """Connect, enable, identify and open `io_queues` I/O queues.

        Raises:
            AssertionError: a step was refused (the completion is in the message).
        """
        digests = {"header_digest": header_digest, "data_digest": data_digest}
        admin = await HostQueue.open(host, port, **digests)
        try:
            resp = await admin.connect(subnqn, hostnqn=hostnqn, kato=kato)
            assert resp.ok, f"admin Connect refused: {resp.completion}"
            cntlid = resp.completion.dw0 & 0xFFFF
            cc = ControllerConfiguration(en=True, iosqes=6, iocqes=4).encode()
            assert (await admin.property_set(PropertyOffset.CC, cc)).ok
            for _ in range(100):
                csts = (await admin.property_get(PropertyOffset.CSTS)).completion.dw0
                if ControllerStatus.decode(csts).rdy:
                    break
                await asyncio.sleep(0.01)
            ident = await admin.identify(Cns.CONTROLLER)
            assert ident.ok, f"Identify refused: {ident.completion}"
            ctrl = cls(admin, cntlid, IdentifyController.decode(ident.data))
            for qid in range(1, io_queues + 1):
                queue = await HostQueue.open(host, port, **digests)
                ctrl.io.append(queue)
                queue.in_capsule_size = ctrl.identify.ioccsz * 16 - 64
                resp = await queue.connect(
                    subnqn,
                    hostnqn=hostnqn,
                    qid=qid,
                    sqsize=queue_size - 1,
                    cntlid=cntlid,
                    cattr=0x04 if disable_sq_flow_control else 0,
                )
                assert resp.ok, f"I/O queue {qid} Connect refused: {resp.completion}"
        except BaseException:
            await admin.close()
            raise
        return ctrl

    async def shutdown(self) -> None:
        """Close the I/O queues, then a normal shutdown (CC.SHN) and close the admin queue."""
        for queue in self.io:
            await queue.close()
        self.io = []
        if not self.admin.closed.is_set():
            cc = ControllerConfiguration(
                en=True, iosqes=6, iocqes=4, shn=ShutdownNotification.NORMAL
            ).encode()
            try:
                await self.admin.property_set(PropertyOffset.CC, cc)
            except TargetTerminated:
                pass
        await self.admin.close()

    async def close(self) -> None:
        """Drop every connection without a shutdown."""
        for queue in self.io:
            await queue.close()
        self.io = []
        await self.admin.close()
