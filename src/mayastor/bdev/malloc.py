"""Malloc disk: a BlockDevice held in memory (`malloc:///name?size_mb=N&blk_size=B`).

Used for tests and for scratch volumes; its contents die with the process. Submitted
reads and writes complete inline, before `submit_read` / `submit_write` return.

A submitted read hands out a read-only view of the device's own memory, not a copy:
a target sends it to the host as it is. It shows the blocks as they are when it is
looked at, so it reflects a later write of the same blocks; a caller that keeps read
data past other I/O to those blocks copies it (`read` returns a copy).
"""

from __future__ import annotations

import uuid as uuid_mod

from mayastor.bdev.device import BlockDevice, Buffer, IoRequest


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
        self._data = bytearray(num_blocks * block_size)
        self._view = memoryview(self._data)
        self._readonly = self._view.toreadonly()

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
