"""The uring driver (``uring:///path``): a file or block device through io_uring.

Every I/O is one SQE on the device's own ring (`_io_uring.IoUring`); submissions of one
event-loop iteration go to the kernel in one system call and completions come back
through an eventfd the loop watches, so no thread is involved. Reads and writes
submitted by callback (`submit_read`, `submit_write`) go to the ring by callback too:
no coroutine, Task or future on their way. The rules at the edges
(O_DIRECT and its fallback, O_EXCL, block size, capacity, errors) are `_backing`'s,
shared with aio.

Where io_uring cannot be used (disabled by sysctl, not permitted, a kernel without it
or without the operations needed), `UringDevice.open` raises `FailedPrecondition`
saying so; `uring_unavailable_reason` tells beforehand.
"""

from __future__ import annotations

import errno
import uuid as uuid_mod
from typing import Any

from mayastor.bdev._backing import Backing, open_backing
from mayastor.bdev._file_device import _SLAB_MAX_IO, FileBackedDevice, default_uuid
from mayastor.bdev._io_uring import (
    IORING_FSYNC_DATASYNC,
    IORING_OP_FALLOCATE,
    IORING_OP_FSYNC,
    IORING_OP_READ,
    IORING_OP_WRITE,
    IoUring,
    unavailable_reason,
)
from mayastor.bdev._uring_transfer import Transfer
from mayastor.bdev.device import Buffer, IoDone, IoRequest

DEFAULT_URING_ENTRIES = 128
"""Submission queue entries per uring device: the I/Os it keeps in flight."""


def uring_unavailable_reason() -> str | None:
    """Why io_uring cannot be used on this machine, or None when it can.

    Only the machine's reasons count: the `kernel.io_uring_disabled` sysctl, the
    io_uring_setup system call refused with ENOSYS or EPERM, an unsupported CPU
    architecture. A ring that can be set up but then fails is a bug, not a reason.
    """
    return unavailable_reason()


class UringDevice(FileBackedDevice):
    """A file or block device served by an io_uring instance of its own.

    Use `UringDevice.open`; the constructor takes an open `Backing` and a ring.
    """

    driver = "uring"
    product_name = "URING disk"
    needs_address = True

    def __init__(self, name: str, uuid: uuid_mod.UUID, backing: Backing, ring: IoUring) -> None:
        super().__init__(name, uuid, backing)
        self._ring = ring

    @classmethod
    async def open(
        cls,
        path: str,
        *,
        name: str | None = None,
        block_size: int | None = None,
        uuid: uuid_mod.UUID | None = None,
        entries: int = DEFAULT_URING_ENTRIES,
    ) -> UringDevice:
        """Open a file or block device.

        Args:
            path: absolute path of a regular file or a block device.
            name: the bdev name; Mayastor names uring bdevs by their path (the default).
            block_size: 512 or 4096; default the device's logical block size, 512 for
                a file. It may not be below a block device's logical block size.
            uuid: the device uuid; default one derived from the path, stable across opens.
            entries: the ring's submission queue size (I/Os in flight at once).

        Raises:
            UringUnavailable: io_uring is not available here (the message says why).
            FailedPrecondition: the disk or file is in use.
            NotFound, InvalidArgument: see `_backing.open_backing`.
        """
        ring = IoUring(entries)
        try:
            backing = open_backing(path, block_size, device=name or path)
        except BaseException:
            await ring.close()
            raise
        return cls(name or path, uuid or default_uuid("uring", path), backing, ring)

    async def _transfer(
        self, write: bool, view: memoryview, address: int, pin: object, offset: int
    ) -> None:
        opcode = IORING_OP_WRITE if write else IORING_OP_READ
        fd, total, done = self.backing.fd, view.nbytes, 0
        while done < total:  # more than one round only where a file ended early
            count = await self._ring.submit(
                opcode, fd, offset + done, address + done, total - done, 0, pin
            )
            if count == 0:
                raise OSError(errno.ENXIO, "the file or device ends before the range")
            done += count

    def submit_read(self, lba: int, nblocks: int, done: IoDone, ctx: Any) -> None:
        # A read in range of an open device goes to the ring in this one call; the
        # general path for the rest (its checks and errors) and for subclasses' hooks.
        if (
            self._closed
            or lba < 0
            or nblocks <= 0
            or lba + nblocks > self.num_blocks
            or type(self)._submit_read is not _SUBMIT_READ
        ):
            super().submit_read(lba, nblocks, done, ctx)
            return
        self._inflight += 1
        nbytes = nblocks * self.block_size
        view, address = (self._slab if nbytes <= _SLAB_MAX_IO else self._large).take(nbytes)
        Transfer(
            self, self._ring, self.backing.fd, done, ctx, lba, nbytes, False, view, address, view
        ).submit()

    def submit_write(self, lba: int, data: Buffer, done: IoDone, ctx: Any) -> None:
        # As `submit_read`. Received data (bytes, or a read-only view of them) of a small
        # write is copied into a slab buffer at once; other buffers go through
        # `_write_buffer`, which hands the kernel an aligned writable one in place.
        nbytes = len(data) if type(data) is not memoryview else data.nbytes
        if (
            self._closed
            or lba < 0
            or not nbytes
            or nbytes % self.block_size
            or lba + nbytes // self.block_size > self.num_blocks
            or type(self)._submit_write is not _SUBMIT_WRITE
        ):
            super().submit_write(lba, data, done, ctx)
            return
        self._inflight += 1
        pin: object
        if nbytes <= _SLAB_MAX_IO and (
            type(data) is bytes or (type(data) is memoryview and data.readonly)
        ):
            if isinstance(data, memoryview) and data.format != "B":
                data = data.cast("B")
            view, address = self._slab.take(nbytes)
            view[:] = data
            pin = view
        else:
            view, address, pin = self._write_buffer(data)
        Transfer(
            self, self._ring, self.backing.fd, done, ctx, lba, nbytes, True, view, address, pin
        ).submit()

    def _submit_read(self, lba: int, nblocks: int, request: IoRequest) -> None:
        view, address = self._read_buffer(request.nbytes)
        Transfer(
            self, self._ring, self.backing.fd, request.done, request.ctx, lba, request.nbytes,
            False, view, address, view,
        ).submit()  # fmt: skip

    def _submit_write(self, lba: int, data: Buffer, request: IoRequest) -> None:
        view, address, pin = self._write_buffer(data)
        Transfer(
            self, self._ring, self.backing.fd, request.done, request.ctx, lba, request.nbytes,
            True, view, address, pin,
        ).submit()  # fmt: skip

    async def _datasync(self) -> None:
        await self._ring.submit(
            IORING_OP_FSYNC, self.backing.fd, 0, 0, 0, IORING_FSYNC_DATASYNC, None
        )

    async def _fallocate(self, mode: int, offset: int, length: int) -> None:
        # IORING_OP_FALLOCATE: the mode goes in `len` and the length in `addr`
        await self._ring.submit(IORING_OP_FALLOCATE, self.backing.fd, offset, length, mode, 0, None)

    async def _release(self) -> None:
        await self._ring.close()


_SUBMIT_READ = UringDevice._submit_read
_SUBMIT_WRITE = UringDevice._submit_write
