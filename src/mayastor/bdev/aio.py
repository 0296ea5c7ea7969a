"""The aio driver (``aio:///path`` or a bare path): a file or block device, via threads.

Each I/O is one blocking system call (`os.preadv`, `os.pwritev`, `os.fdatasync`,
fallocate) run on a pool of worker threads sized for the queue depth, so many I/Os
are in flight while the event loop goes on. The rules at the edges (O_DIRECT and its
fallback, O_EXCL, block size, capacity, errors) are `_backing`'s, shared with uring.
"""

from __future__ import annotations

import errno
import os
import uuid as uuid_mod

from mayastor.bdev._backing import Backing, fallocate, open_backing
from mayastor.bdev._file_device import FileBackedDevice, default_uuid
from mayastor.bdev._thread_pool import IoThreadPool

DEFAULT_AIO_THREADS = 32
"""Worker threads per aio device: the queue depth it can keep in flight."""


def _pread_all(fd: int, view: memoryview, offset: int) -> None:
    done, total = os.preadv(fd, [view], offset), view.nbytes
    while done < total:
        count = os.preadv(fd, [view[done:]], offset + done)
        if count == 0:
            raise OSError(errno.ENXIO, "the file or device ends before the range read")
        done += count


def _pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    done, total = os.pwritev(fd, [view], offset), view.nbytes
    while done < total:
        done += os.pwritev(fd, [view[done:]], offset + done)


class AioDevice(FileBackedDevice):
    """A file or block device served by a pool of worker threads.

    Use `AioDevice.open`; the constructor takes an already open `Backing`.
    """

    driver = "aio"
    product_name = "AIO disk"

    def __init__(self, name: str, uuid: uuid_mod.UUID, backing: Backing, *, threads: int) -> None:
        self._pool = IoThreadPool(threads, f"aio-{os.path.basename(backing.path)}")
        super().__init__(name, uuid, backing)

    @classmethod
    async def open(
        cls,
        path: str,
        *,
        name: str | None = None,
        block_size: int | None = None,
        uuid: uuid_mod.UUID | None = None,
        threads: int = DEFAULT_AIO_THREADS,
    ) -> AioDevice:
        """Open a file or block device.

        Args:
            path: absolute path of a regular file or a block device.
            name: the bdev name; Mayastor names aio bdevs by their path (the default).
            block_size: 512 or 4096; default the device's logical block size, 512 for
                a file. It may not be below a block device's logical block size.
            uuid: the device uuid; default one derived from the path, stable across opens.
            threads: worker threads, i.e. the I/Os that can be in flight at once.

        Raises:
            NotFound, InvalidArgument, FailedPrecondition: see `_backing.open_backing`.
        """
        backing = open_backing(path, block_size, device=name or path)
        try:
            return cls(name or path, uuid or default_uuid("aio", path), backing, threads=threads)
        except BaseException:
            backing.close()
            raise

    async def _transfer(
        self, write: bool, view: memoryview, address: int, pin: object, offset: int
    ) -> None:
        fn = _pwrite_all if write else _pread_all
        await self._pool.submit(fn, self.backing.fd, view, offset)

    async def _datasync(self) -> None:
        await self._pool.submit(os.fdatasync, self.backing.fd)

    async def _fallocate(self, mode: int, offset: int, length: int) -> None:
        await self._pool.submit(fallocate, self.backing.fd, mode, offset, length)

    async def _release(self) -> None:
        await self._pool.close()
