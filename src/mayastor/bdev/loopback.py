"""`bdev:///NAME`: a handle on a device this process already has, reached in-process.

A nexus opens its local replica this way. The handle forwards every I/O to the device
it stands for, without copying (submitted reads and writes by callback as well), but
closing it only tells its owner (`on_close`) that the user is gone: the device itself
stays open for its owner (the pool).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from mayastor.bdev.device import BlockDevice, Buffer, IoRequest
from mayastor.errors import DeviceError


class LoopbackDevice(BlockDevice):
    """A BlockDevice that forwards to `inner` and whose close leaves `inner` open.

    Args:
        inner: the device to reach.
        on_close: awaited once when the handle is closed (to release a claim).
    """

    driver = "bdev"
    product_name = "Loopback handle"

    def __init__(
        self, inner: BlockDevice, on_close: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        super().__init__(inner.name, inner.uuid, inner.block_size, inner.num_blocks)
        self.inner = inner
        self.inline_io = inner.inline_io
        self._on_close = on_close

    async def _read(self, lba: int, nblocks: int) -> Buffer:
        return await self.inner.read(lba, nblocks)

    async def _write(self, lba: int, data: Buffer) -> None:
        await self.inner.write(lba, data)

    def _submit_read(self, lba: int, nblocks: int, request: IoRequest) -> None:
        self.inner.submit_read(lba, nblocks, _relay, request)

    def _submit_write(self, lba: int, data: Buffer, request: IoRequest) -> None:
        self.inner.submit_write(lba, data, _relay, request)

    async def _flush(self) -> None:
        await self.inner.flush()

    async def _unmap(self, lba: int, nblocks: int) -> None:
        await self.inner.unmap(lba, nblocks)

    async def _write_zeroes(self, lba: int, nblocks: int) -> None:
        await self.inner.write_zeroes(lba, nblocks)

    async def refresh_size(self) -> int:
        """Take the capacity of the device it stands for (a replica that was resized)."""
        self.num_blocks = self.inner.num_blocks
        return self.num_blocks

    async def _close(self) -> None:
        if self._on_close is not None:
            await self._on_close()


def _relay(request: IoRequest, data: Buffer | None, error: DeviceError | None) -> None:
    request.finish(data, error)
