"""Lvols: the replicas carved out of a pool, each a BlockDevice usable in-process.

An lvol's I/O costs a cluster-map lookup and one base-device I/O per cluster it
touches; I/O that crosses a cluster boundary is split and the pieces run together.
A submitted read or write within one allocated cluster (the common case) goes to the
base device by callback, without a coroutine of its own.
Reads of unallocated clusters of a thin lvol return zeroes without touching the disk.
A write to an unallocated cluster first asks the pool to allocate it (zero, flush,
commit the record, flush), so the allocation is durable before the write is
acknowledged. `unmap` and `write_zeroes` zero the allocated clusters of the range on
the base device (unmap with the base device's unmap, which may give the space back to
a file); they never free an lvol's clusters, so a cluster cannot change owner while
I/O to it is in flight.

A data I/O that fails on the base device marks the pool degraded and raises the
base device's DeviceError; once the pool is faulted every lvol I/O is refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from mayastor.bdev import BlockDevice, Buffer, IoRequest, ReservationCell, ReservationState
from mayastor.bdev.reservations import Registrant
from mayastor.errors import DeviceError, InternalDeviceError
from mayastor.lvs._catalog import LvolMeta
from mayastor.lvs._properties import LvolProperties
from mayastor.lvs.format import ReservationRecord

if TYPE_CHECKING:
    from mayastor.lvs._pool import Pool

T = TypeVar("T")


class DataPath:
    """What the I/O of a pool's lvols needs from the pool: the data area and two calls.

    Attributes:
        base: the pool's base device.
        data_lba: the first block of cluster 0 on the base device.
        bpc: blocks per cluster.
        faulted: why the pool is faulted, or None.
    """

    __slots__ = ("allocate", "base", "bpc", "data_lba", "faulted", "on_data_error")

    def __init__(
        self,
        base: BlockDevice,
        data_offset: int,
        cluster_size: int,
        allocate: Callable[[LvolMeta, Sequence[int]], Awaitable[list[int]]],
        on_data_error: Callable[[DeviceError], None],
    ) -> None:
        self.base = base
        self.data_lba = data_offset // base.block_size
        self.bpc = cluster_size // base.block_size
        self.allocate = allocate
        self.on_data_error = on_data_error
        self.faulted: str | None = None


_NEVER_RESERVED = ReservationState(ptpl=True)


def stored_reservation(record: ReservationRecord | None) -> ReservationState:
    """The reservation state an lvol starts with after its pool was opened.

    None stored: no registrant, PTPL on (a replica persists its reservations unless a
    host turned that off); PTPL off: only the generation is kept, as after a power on.
    """
    if record is None:
        return _NEVER_RESERVED
    if not record.ptpl:
        return ReservationState(generation=record.generation)
    return ReservationState(
        generation=record.generation,
        rtype=record.rtype,
        holder=record.holder,
        registrants=tuple(Registrant(host, key) for host, key in record.registrants),
        ptpl=True,
    )


class Lvol(BlockDevice):
    """A logical volume of a pool (a replica). Created by `Pool.create_lvol`, never directly.

    Its size is the requested size rounded up to the block size; clusters are
    allocated whole (all at creation for a thick lvol, on first write for a thin one).

    Its NVMe reservation state (`reservations`) is kept in the pool: a change is stored
    (`Pool.set_lvol_reservation`) before it takes effect, and it comes back with the
    pool, for the target's hosts and in-process handles alike.

    Attributes:
        pool: the pool it lives in.
    """

    driver = "lvol"
    product_name = "Logical Volume"
    inline_io = True

    def __init__(self, pool: Pool, meta: LvolMeta, data: DataPath) -> None:
        block_size = data.base.block_size
        super().__init__(meta.name, meta.uuid, block_size, meta.size // block_size)
        self.pool = pool
        self._meta = meta
        self._data = data
        self.reservations = ReservationCell(
            stored_reservation(meta.reservation), persist=self._store_reservation
        )

    async def _store_reservation(self, state: ReservationState) -> None:
        await self.pool.set_lvol_reservation(self, state)

    # ------------------------------------------------------------------ properties

    @property
    def thin(self) -> bool:
        return self._meta.thin

    @property
    def properties(self) -> LvolProperties:
        return self._meta.properties

    @property
    def num_clusters(self) -> int:
        """Clusters the lvol spans (its size rounded up to whole clusters)."""
        return self._meta.nclusters

    @property
    def num_allocated_clusters(self) -> int:
        return self._meta.allocated

    @property
    def allocated_bytes(self) -> int:
        return self._meta.allocated * self.pool.cluster_size

    @property
    def meta(self) -> LvolMeta:
        """The catalog entry (for the pool)."""
        return self._meta

    # ------------------------------------------------------------------ I/O hooks

    def _refuse_if_faulted(self) -> None:
        reason = self._data.faulted
        if reason is not None:
            raise InternalDeviceError(
                f"{self.name}: pool {self.pool.name!r} is faulted ({reason})", device=self.name
            )

    def _pieces(self, lba: int, nblocks: int) -> list[tuple[int, int, int, int]]:
        """``(lvol cluster, block offset in it, nblocks, offset in the I/O)`` per cluster."""
        bpc = self._data.bpc
        out = []
        done = 0
        while done < nblocks:
            cluster, offset = divmod(lba + done, bpc)
            count = min(bpc - offset, nblocks - done)
            out.append((cluster, offset, count, done))
            done += count
        return out

    async def _runs(self, lba: int, nblocks: int, allocate: bool) -> list[tuple[int, int, int]]:
        """Where a multi-cluster I/O goes: ``(base lba, nblocks, offset in the I/O)`` runs.

        Pieces on consecutive pool clusters merge into one run. Unallocated pieces are
        left out, or allocated first when `allocate` (all of them together, before any
        data moves: a write that cannot get all its clusters takes none and writes
        nothing).
        """
        path = self._data
        meta = self._meta
        pieces = self._pieces(lba, nblocks)
        pcs = [meta.lookup(piece[0]) for piece in pieces]
        if allocate:
            missing = [i for i, pc in enumerate(pcs) if pc < 0]
            if missing:
                got = await path.allocate(meta, [pieces[i][0] for i in missing])
                for i, pc in zip(missing, got, strict=True):
                    pcs[i] = pc
        runs: list[tuple[int, int, int]] = []
        for (_cluster, offset, count, at), pc in zip(pieces, pcs, strict=True):
            if pc < 0:
                continue
            start = path.data_lba + pc * path.bpc + offset
            if runs:
                last_start, last_count, last_at = runs[-1]
                if last_start + last_count == start and last_at + last_count == at:
                    runs[-1] = (last_start, last_count + count, last_at)
                    continue
            runs.append((start, count, at))
        return runs

    async def _read(self, lba: int, nblocks: int) -> Buffer:
        data = self._data
        if data.faulted is not None:
            self._refuse_if_faulted()
        bpc = data.bpc
        cluster, offset = divmod(lba, bpc)
        if offset + nblocks <= bpc:
            pc = self._meta.lookup(cluster)
            if pc < 0:
                return bytes(nblocks * self.block_size)
            try:
                return await data.base.read(data.data_lba + pc * bpc + offset, nblocks)
            except DeviceError as exc:
                data.on_data_error(exc)
                raise
        runs = await self._runs(lba, nblocks, allocate=False)
        if len(runs) == 1 and runs[0][1] == nblocks:
            return await self._base_io(data.base.read(runs[0][0], nblocks))
        bs = self.block_size
        out = bytearray(nblocks * bs)
        view = memoryview(out)

        async def piece(start: int, count: int, at: int) -> None:
            got = await self._base_io(data.base.read(start, count))
            view[at * bs : (at + count) * bs] = got

        await _gather([piece(*run) for run in runs])
        return out

    async def _write(self, lba: int, data: Buffer) -> None:
        path = self._data
        if path.faulted is not None:
            self._refuse_if_faulted()
        bs = self.block_size
        view = data if isinstance(data, memoryview) else memoryview(data)
        nblocks = view.nbytes // bs
        bpc = path.bpc
        cluster, offset = divmod(lba, bpc)
        if offset + nblocks <= bpc:
            pc = self._meta.lookup(cluster)
            if pc < 0:
                (pc,) = await path.allocate(self._meta, (cluster,))
            try:
                await path.base.write(path.data_lba + pc * bpc + offset, view)
            except DeviceError as exc:
                path.on_data_error(exc)
                raise
            return
        flat = view.cast("B") if view.format != "B" or view.ndim != 1 else view
        runs = await self._runs(lba, nblocks, allocate=True)
        await _gather(
            [
                self._base_io(path.base.write(start, flat[at * bs : (at + count) * bs]))
                for start, count, at in runs
            ]
        )

    def _submit_read(self, lba: int, nblocks: int, request: IoRequest) -> None:
        start = self._base_lba(lba, nblocks)
        if start is None:
            super()._submit_read(lba, nblocks, request)
        else:
            self._data.base.submit_read(start, nblocks, self._base_done, request)

    def _submit_write(self, lba: int, data: Buffer, request: IoRequest) -> None:
        start = self._base_lba(lba, request.nbytes // self.block_size)
        if start is None:
            super()._submit_write(lba, data, request)
        else:
            self._data.base.submit_write(start, data, self._base_done, request)

    def _base_lba(self, lba: int, nblocks: int) -> int | None:
        """Where an I/O within one allocated cluster starts on the base device; None for
        any other I/O (it takes the awaited way: several clusters, allocation, faults)."""
        path = self._data
        if path.faulted is not None:
            return None
        bpc = path.bpc
        cluster, offset = divmod(lba, bpc)
        if offset + nblocks > bpc:
            return None
        pc = self._meta.lookup(cluster)
        if pc < 0:
            return None
        return path.data_lba + pc * bpc + offset

    def _base_done(
        self, request: IoRequest, data: Buffer | None, error: DeviceError | None
    ) -> None:
        if error is not None:
            self._data.on_data_error(error)
        request.finish(data, error)

    async def _zero(self, lba: int, nblocks: int, unmap: bool) -> None:
        path = self._data
        if path.faulted is not None:
            self._refuse_if_faulted()
        base = path.base
        op = base.unmap if unmap else base.write_zeroes
        runs = await self._runs(lba, nblocks, allocate=False)  # unallocated: zeroes already
        await _gather([self._base_io(op(start, count)) for start, count, _at in runs])

    async def _unmap(self, lba: int, nblocks: int) -> None:
        await self._zero(lba, nblocks, unmap=True)

    async def _write_zeroes(self, lba: int, nblocks: int) -> None:
        await self._zero(lba, nblocks, unmap=False)

    async def _flush(self) -> None:
        path = self._data
        if path.faulted is not None:
            self._refuse_if_faulted()
        try:
            await path.base.flush()
        except DeviceError as exc:
            path.on_data_error(exc)
            raise

    async def _base_io(self, io: Awaitable[T]) -> T:
        """Await a base-device I/O; a failure degrades the pool and is raised as is."""
        try:
            return await io
        except DeviceError as exc:
            self._data.on_data_error(exc)
            raise


async def _gather(pieces: list[Awaitable[T]]) -> list[T]:
    """Run pieces of one I/O together; wait for all of them, then raise the first failure."""
    results = await asyncio.gather(*pieces, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results  # type: ignore[return-value]
