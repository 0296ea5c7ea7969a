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
import os
import uuid as uuid_mod

from mayastor.bdev._backing import Backing, device_error, open_backing
from mayastor.bdev._file_device import FileBackedDevice, default_uuid
from mayastor.bdev._io_uring import (
    IORING_FSYNC_DATASYNC,
    IORING_OP_FALLOCATE,
    IORING_OP_FSYNC,
    IORING_OP_READ,
    IORING_OP_WRITE,
    IoUring,
    unavailable_reason,
)
from mayastor.bdev.device import Buffer, IoRequest

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

    def _submit_read(self, lba: int, nblocks: int, request: IoRequest) -> None:
        view, address = self._read_buffer(request.nbytes)
        op = _Transfer(request, False, view, address, view, lba, nblocks)
        self._ring.submit_cb(
            IORING_OP_READ, self.backing.fd, lba * self.block_size, address, request.nbytes, 0,
            view, self._transferred, op,
        )  # fmt: skip

    def _submit_write(self, lba: int, data: Buffer, request: IoRequest) -> None:
        view, address, pin = self._write_buffer(data)
        op = _Transfer(request, True, view, address, pin, lba, request.nbytes // self.block_size)
        self._ring.submit_cb(
            IORING_OP_WRITE, self.backing.fd, lba * self.block_size, address, request.nbytes, 0,
            pin, self._transferred, op,
        )  # fmt: skip

    def _transferred(self, op: _Transfer, result: int) -> None:
        if result > 0:
            op.done += result
            total = op.view.nbytes
            if op.done >= total:
                op.request.finish(None if op.write else op.view, None)
                return
            # The file ended early (it shrank): ask for the rest.
            self._ring.submit_cb(
                IORING_OP_WRITE if op.write else IORING_OP_READ, self.backing.fd,
                op.lba * self.block_size + op.done, op.address + op.done, total - op.done, 0,
                op.pin, self._transferred, op,
            )  # fmt: skip
            return
        if result:
            error = OSError(-result, os.strerror(-result))
        else:
            error = OSError(errno.ENXIO, "the file or device ends before the range")
        what = "write" if op.write else "read"
        op.request.finish(None, device_error(error, what, self.name, op.lba, op.nblocks))

    async def _datasync(self) -> None:
        await self._ring.submit(
            IORING_OP_FSYNC, self.backing.fd, 0, 0, 0, IORING_FSYNC_DATASYNC, None
        )

    async def _fallocate(self, mode: int, offset: int, length: int) -> None:
        # IORING_OP_FALLOCATE: the mode goes in `len` and the length in `addr`
        await self._ring.submit(IORING_OP_FALLOCATE, self.backing.fd, offset, length, mode, 0, None)

    async def _release(self) -> None:
        await self._ring.close()


class _Transfer:
    """A read or write submitted to the ring by callback, until all of it is moved."""

    __slots__ = ("address", "done", "lba", "nblocks", "pin", "request", "view", "write")

    def __init__(
        self,
        request: IoRequest,
        write: bool,
        view: memoryview,
        address: int,
        pin: object,
        lba: int,
        nblocks: int,
    ) -> None:
        self.request = request
        self.write = write
        self.view = view
        self.address = address
        self.pin = pin
        self.lba = lba
        self.nblocks = nblocks
        self.done = 0
