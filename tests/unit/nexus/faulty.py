"""Test parts for the nexus: devices that fail on demand, an opener, an inspectable store.

`FaultyDevice` is a BlockDevice over another one that can fail the next N I/Os of a
kind with a given DeviceError, fail a range, hang until released, or be slowed. Its
close releases only itself, like a ``bdev:///`` handle on a replica: the disk behind
it (a MallocDevice on the `Shelf`) keeps its data and can be opened again.
"""

from __future__ import annotations

import asyncio
import uuid as uuid_mod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from mayastor.bdev import BlockDevice, Buffer, MallocDevice
from mayastor.errors import DeviceError, NotFound
from mayastor.nexus import MemoryNexusInfoStore, NexusInfo, is_local_uri

OPS = frozenset({"read", "write", "flush", "unmap", "write_zeroes"})
WRITES = frozenset({"write", "unmap", "write_zeroes"})


@dataclass
class Fault:
    """One rule of a FaultyDevice; the first rule that matches an I/O applies."""

    ops: frozenset[str]
    error: DeviceError | None = None
    times: int | None = None  # None: every matching I/O
    lba: int = 0
    nblocks: int | None = None  # None: the whole device
    gate: asyncio.Event | None = None  # hang until set
    delay: float | None = None
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    hits: int = 0

    def matches(self, op: str, lba: int, nblocks: int) -> bool:
        if op not in self.ops or self.times == 0:
            return False
        if self.nblocks is None:
            return True
        return lba < self.lba + self.nblocks and self.lba < lba + max(nblocks, 1)

    def release(self) -> None:
        """Let the I/O held by this rule go on (or fail), and let later ones through."""
        if self.gate is not None:
            self.gate.set()
        if self.error is None:
            self.times = 0


class FaultyDevice(BlockDevice):
    """A handle on `inner` that fails, hangs or slows I/O on demand."""

    driver = "faulty"
    product_name = "Fault-injecting test device"

    def __init__(self, inner: BlockDevice, uri: str = "") -> None:
        super().__init__(inner.name, inner.uuid, inner.block_size, inner.num_blocks)
        self.inner = inner
        self.uri = uri
        self.inline_io = is_local_uri(uri)  # as the real devices behind such URIs
        self.faults: list[Fault] = []
        self.calls: list[tuple[str, int, int]] = []
        self.buffers: list[Buffer] = []

    def fail(
        self,
        ops: Iterable[str] | str,
        error: DeviceError,
        *,
        times: int | None = 1,
        lba: int = 0,
        nblocks: int | None = None,
    ) -> Fault:
        """Fail the next `times` matching I/Os (None: all of them) with `error`."""
        fault = Fault(_ops(ops), error=error, times=times, lba=lba, nblocks=nblocks)
        self.faults.append(fault)
        return fault

    def hang(
        self,
        ops: Iterable[str] | str,
        *,
        lba: int = 0,
        nblocks: int | None = None,
        error: DeviceError | None = None,
    ) -> Fault:
        """Hold matching I/Os until the rule's `release` (then fail them with `error`).

        The rule's `reached` event says that an I/O has arrived.
        """
        fault = Fault(
            _ops(ops),
            error=error,
            times=1 if error is not None else None,
            gate=asyncio.Event(),
            lba=lba,
            nblocks=nblocks,
        )
        self.faults.append(fault)
        return fault

    def slow(self, ops: Iterable[str] | str, delay: float = 0.0) -> Fault:
        """Delay every matching I/O by `delay` seconds (0: yield to the loop once)."""
        fault = Fault(_ops(ops), delay=delay)
        self.faults.append(fault)
        return fault

    def count(self, op: str) -> int:
        return sum(1 for call in self.calls if call[0] == op)

    async def _inject(self, op: str, lba: int, nblocks: int) -> None:
        self.calls.append((op, lba, nblocks))
        for fault in self.faults:
            if not fault.matches(op, lba, nblocks):
                continue
            fault.hits += 1
            fault.reached.set()
            if fault.gate is not None:
                await fault.gate.wait()
            if fault.delay is not None:
                await asyncio.sleep(fault.delay)
            if fault.error is not None:
                if fault.times is not None and fault.times > 0:
                    fault.times -= 1
                raise fault.error
            return

    async def _read(self, lba: int, nblocks: int) -> Buffer:
        await self._inject("read", lba, nblocks)
        return await self.inner.read(lba, nblocks)

    async def _write(self, lba: int, data: Buffer) -> None:
        view = data if isinstance(data, memoryview) else memoryview(data)
        self.buffers.append(data)
        await self._inject("write", lba, view.nbytes // self.block_size)
        await self.inner.write(lba, data)

    async def _flush(self) -> None:
        await self._inject("flush", 0, 0)
        await self.inner.flush()

    async def _unmap(self, lba: int, nblocks: int) -> None:
        await self._inject("unmap", lba, nblocks)
        await self.inner.unmap(lba, nblocks)

    async def _write_zeroes(self, lba: int, nblocks: int) -> None:
        await self._inject("write_zeroes", lba, nblocks)
        await self.inner.write_zeroes(lba, nblocks)


def _ops(ops: Iterable[str] | str) -> frozenset[str]:
    chosen = frozenset({ops} if isinstance(ops, str) else ops)
    assert chosen <= OPS, chosen - OPS
    return chosen


class Shelf:
    """The tests' child opener: named malloc disks that outlive what is opened on them.

    ``malloc:///name?size_mb=N|num_blocks=N&blk_size=B&uuid=U`` makes the disk on first
    open; ``bdev:///name`` and ``nvmf://host/name`` open a disk made with `add`.
    Every open returns a fresh `FaultyDevice` handle.
    """

    def __init__(self) -> None:
        self.disks: dict[str, MallocDevice] = {}
        self.handles: dict[str, list[FaultyDevice]] = {}
        self.refuse: dict[str, Exception] = {}
        self.opened: list[str] = []
        self.prepare: dict[str, Callable[[FaultyDevice], object]] = {}

    def add(
        self,
        name: str,
        num_blocks: int = 4096,
        block_size: int = 512,
        uuid: uuid_mod.UUID | None = None,
    ) -> MallocDevice:
        disk = MallocDevice(name, num_blocks=num_blocks, block_size=block_size, uuid=uuid)
        self.disks[name] = disk
        return disk

    async def open(self, uri: str, *, hostid: uuid_mod.UUID | None = None) -> BlockDevice:
        self.opened.append(uri)
        if uri in self.refuse:
            raise self.refuse[uri]
        parts = urlsplit(uri)
        name = (parts.netloc + parts.path).strip("/").split("/")[-1]
        if name not in self.disks:
            if parts.scheme != "malloc":
                raise NotFound(f"test shelf: no disk {name!r} for {uri!r}")
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            block_size = int(query.get("blk_size", "512"))
            if "size_mb" in query:
                num_blocks = (int(query["size_mb"]) << 20) // block_size
            else:
                num_blocks = int(query["num_blocks"])
            uuid = uuid_mod.UUID(query["uuid"]) if "uuid" in query else None
            self.add(name, num_blocks, block_size, uuid)
        handle = FaultyDevice(self.disks[name], uri)
        self.handles.setdefault(uri, []).append(handle)
        if uri in self.prepare:
            self.prepare[uri](handle)
        return handle

    def handle(self, uri: str) -> FaultyDevice:
        """The latest device opened for `uri`."""
        return self.handles[uri][-1]

    def disk(self, uri: str) -> MallocDevice:
        return self.handle(uri).inner  # type: ignore[return-value]

    def open_handles(self) -> list[FaultyDevice]:
        return [h for hs in self.handles.values() for h in hs if not h.closed]

    async def close(self) -> None:
        for handles in self.handles.values():
            for handle in handles:
                for fault in handle.faults:
                    fault.release()
        for disk in self.disks.values():
            await disk.close()


class RecordingStore(MemoryNexusInfoStore):
    """A store that records what was put, in order, among the test's own notes."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, object]] = []
        self.puts = 0
        self.fail_with: Exception | None = None
        self.gate: asyncio.Event | None = None
        self.waiting = 0

    def note(self, what: str) -> None:
        self.events.append(("note", what))

    async def put(self, nexus_uuid: uuid_mod.UUID, info: NexusInfo) -> None:
        if self.gate is not None:
            self.waiting += 1
            await self.gate.wait()
            self.waiting -= 1
        if self.fail_with is not None:
            raise self.fail_with
        self.puts += 1
        await super().put(nexus_uuid, info)
        self.events.append(("put", info))

    def last(self, nexus_uuid: uuid_mod.UUID) -> NexusInfo:
        info = self._infos[nexus_uuid]
        return info

    def healthy(self, nexus_uuid: uuid_mod.UUID) -> dict[uuid_mod.UUID, bool]:
        return {c.uuid: c.healthy for c in self._infos[nexus_uuid].children}
