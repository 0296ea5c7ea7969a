"""A read or write of the uring driver on its way through the ring, and its completion.

Apart from `uring` so that the build compiles it (`mayastor.compiled`) beside the ring
itself: the completion runs once per I/O, called by the ring's reaping loop.
"""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING, Any

from mayastor.bdev._backing import device_error
from mayastor.bdev._io_request import IoDone, IoRequest
from mayastor.bdev._io_uring import IORING_OP_READ, IORING_OP_WRITE, IoUring

if TYPE_CHECKING:
    from mayastor.bdev.uring import UringDevice


class Transfer(IoRequest):
    """A read or write on the ring, until all of it is moved: the request itself (one
    object per I/O) with its ring and file descriptor, its buffer, the buffer's
    address, what keeps the memory in place (`pin`) and the bytes moved so far."""

    __slots__ = ("address", "fd", "moved", "pin", "ring", "view")

    def __init__(
        self,
        device: UringDevice,
        ring: IoUring,
        fd: int,
        done: IoDone,
        ctx: Any,
        lba: int,
        nbytes: int,
        write: bool,
        view: memoryview,
        address: int,
        pin: object,
    ) -> None:
        super().__init__(device, done, ctx, lba, nbytes, write)
        self.ring = ring
        self.fd = fd
        self.view = view
        self.address = address
        self.pin = pin
        self.moved = 0

    def submit(self) -> None:
        """Put what is still to move of the read or write on the ring."""
        moved = self.moved
        self.ring.submit_cb(
            IORING_OP_WRITE if self.write else IORING_OP_READ, self.fd,
            self.lba * self.device.block_size + moved, self.address + moved,
            self.nbytes - moved, 0, None, transferred, self,
        )  # fmt: skip


def transferred(op: Transfer, result: int) -> None:
    """The ring's completion of a `Transfer`: finish it, ask for the rest of a range
    a file ended early in (it shrank), or fail it with the DeviceError of its errno."""
    if result > 0:
        op.moved = moved = op.moved + result
        if moved >= op.nbytes:
            op.finish(None if op.write else op.view, None)
            return
        op.submit()
        return
    if result:
        error = OSError(-result, os.strerror(-result))
    else:
        error = OSError(errno.ENXIO, "the file or device ends before the range")
    device = op.device
    op.finish(
        None,
        device_error(
            error, "write" if op.write else "read", device.name, op.lba,
            op.nbytes // device.block_size,
        ),
    )  # fmt: skip
