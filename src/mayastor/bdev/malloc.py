"""Malloc disk: a BlockDevice held in memory (`malloc:///name?size_mb=N&blk_size=B`).

Used for tests and for scratch volumes; its contents die with the process. Submitted
reads and writes complete inline, before `submit_read` / `submit_write` return, and
are counted and answered in that one call (no request object on their way).

A submitted read hands out a read-only view of the device's own memory, not a copy:
a target sends it to the host as it is. It shows the blocks as they are when it is
looked at, so it reflects a later write of the same blocks; a caller that keeps read
data past other I/O to those blocks copies it (`read` returns a copy).
"""

from __future__ import annotations

import uuid as uuid_mod
from time import perf_counter_ns
from typing import Any

from mayastor.bdev.device import BlockDevice, Buffer, IoDone, IoRequest


class MallocDevice(BlockDevice):
    """A zero-filled in-memory device of `num_blocks` blocks of `block_size` bytes."""

    driver = "malloc"
    product_name = "Malloc disk"
    inline_io = True

    def __init__(
        self,
        name: str,
        num_blocks: int,
        block_size: int = 512,
        uuid: uuid_mod.UUID | None = None,
    ) -> None:
        super().__init__(name, uuid or uuid_mod.uuid4(), block_size, num_blocks)
        self._size = num_blocks * block_size
        self._data = bytearray(self._size)
        self._view = memoryview(self._data)
        self._readonly = self._view.toreadonly()

    def submit_read(self, lba: int, nblocks: int, done: IoDone, ctx: Any) -> None:
        # A read in range of an open device, counted and answered in one call; the
        # general path for the rest (its checks and errors).
        if (
            type(self)._submit_read is not _SUBMIT_READ  # a subclass's hooks: general path
            or self._closed
            or lba < 0
            or nblocks <= 0
            or lba + nblocks > self.num_blocks
        ):
            super().submit_read(lba, nblocks, done, ctx)
            return
        start = perf_counter_ns()
        bs = self.block_size
        data = self._readonly[lba * bs : (lba + nblocks) * bs]
        self.stats.count_read(nblocks * bs, perf_counter_ns() - start)
        done(ctx, data, None)

    def submit_write(self, lba: int, data: Buffer, done: IoDone, ctx: Any) -> None:
        # As `submit_read`: whole blocks in range of an open device, in one call.
        if type(data) is memoryview and data.format != "B":
            data = data.cast("B")
        bs = self.block_size
        nbytes = len(data)
        offset = lba * bs
        end = offset + nbytes
        if (
            type(self)._submit_write is not _SUBMIT_WRITE
            or self._closed
            or lba < 0
            or not nbytes
            or nbytes % bs
            or end > self._size
        ):
            super().submit_write(lba, data, done, ctx)
            return
        start = perf_counter_ns()
        self._view[offset:end] = data
        self.stats.count_write(nbytes, perf_counter_ns() - start)
        done(ctx, None, None)

    async def _read(self, lba: int, nblocks: int) -> Buffer:
        bs = self.block_size
        return bytes(self._view[lba * bs : (lba + nblocks) * bs])

    async def _write(self, lba: int, data: Buffer) -> None:
        start = lba * self.block_size
        view = data if isinstance(data, memoryview) else memoryview(data)
        self._view[start : start + view.nbytes] = view.cast("B")

    def _submit_read(self, lba: int, nblocks: int, request: IoRequest) -> None:
        bs = self.block_size
        request.finish(self._readonly[lba * bs : (lba + nblocks) * bs], None)

    def _submit_write(self, lba: int, data: Buffer, request: IoRequest) -> None:
        start = lba * self.block_size
        if type(data) is memoryview and data.format != "B":
            data = data.cast("B")
        self._view[start : start + request.nbytes] = data
        request.finish(None, None)

    async def _flush(self) -> None:
        pass

    async def _unmap(self, lba: int, nblocks: int) -> None:
        await self._write_zeroes(lba, nblocks)

    async def _write_zeroes(self, lba: int, nblocks: int) -> None:
        bs = self.block_size
        self._view[lba * bs : (lba + nblocks) * bs] = bytes(nblocks * bs)

    async def _close(self) -> None:
        self._readonly.release()
        self._view.release()
        self._data = bytearray()
        self._size = 0


_SUBMIT_READ = MallocDevice._submit_read
_SUBMIT_WRITE = MallocDevice._submit_write
