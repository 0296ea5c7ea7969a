"""What backs an aio or uring device: a regular file or a block device, opened once.

Shared by both drivers, so they agree on every rule at the edges:

* a path that does not exist is `NotFound`; a directory, something that is neither a
  file nor a block device, or a file smaller than one block is `InvalidArgument`;
* block devices are opened with O_EXCL (the kernel refuses a second exclusive open, a
  mounted file system, a device-mapper holder) and regular files get an exclusive
  `flock`, so two pools can never claim one disk; either refusal is
  `FailedPrecondition`;
* O_DIRECT where the file system or device takes it; where it does not (ramfs, some
  FUSE file systems, a block size below the file system's direct-I/O granularity) the
  device falls back to buffered I/O and logs that once. Flush is an fdatasync either
  way, so durability does not depend on the mode;
* block size: a block device's logical block size by default, 512 for a file;
  `blk_size` may raise it but not lower it below the device's;
* capacity: file size or BLKGETSIZE64, rounded down to whole blocks.

OSErrors become DeviceErrors through one table (`device_error`).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import logging
import os
import stat
import struct
from dataclasses import dataclass
from typing import Final

from mayastor.bdev._buffers import PAGE_SIZE, aligned_buffer
from mayastor.errors import (
    DeviceError,
    FailedPrecondition,
    InternalDeviceError,
    InvalidArgument,
    NoSpace,
    NotFound,
    UnrecoveredReadError,
    WriteFault,
)

log = logging.getLogger(__name__)

# <linux/fs.h>: _IO(0x12, 104) and _IOR(0x12, 114, size_t)
BLKSSZGET: Final = 0x1268
BLKGETSIZE64: Final = 0x80081272
# <linux/falloc.h>
FALLOC_FL_KEEP_SIZE: Final = 0x01
FALLOC_FL_PUNCH_HOLE: Final = 0x02
FALLOC_FL_ZERO_RANGE: Final = 0x10
PUNCH_HOLE: Final = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
ZERO_RANGE: Final = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE

_STATX_DIOALIGN: Final = 0x2000
_AT_FDCWD: Final = -100
_STATX_MASK = struct.Struct("<I")
_STATX_DIO = struct.Struct("<II")  # stx_dio_mem_align, stx_dio_offset_align
_STATX_DIO_OFFSET: Final = 0x98
_STATX_SIZE: Final = 256

_U32 = struct.Struct("=I")
_U64 = struct.Struct("=Q")

_libc = ctypes.CDLL(None, use_errno=True)
_fallocate = _libc.fallocate64
_fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
_fallocate.restype = ctypes.c_int
_statx = getattr(_libc, "statx", None)

FALLOCATE_REFUSED: Final = frozenset({errno.EOPNOTSUPP, errno.ENOTTY, errno.ENODEV})
"""errnos that mean "this file or device cannot do that fallocate mode": try the next."""


def fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    """fallocate(2) with a mode (os.posix_fallocate has none).

    Raises:
        OSError: as the kernel reports it.
    """
    if _fallocate(fd, mode, offset, length) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def _dio_alignment(path: str) -> tuple[int, int] | None:
    """(memory alignment, offset alignment) for O_DIRECT, when the kernel tells (6.1+)."""
    if _statx is None:
        return None
    buf = ctypes.create_string_buffer(_STATX_SIZE)
    if _statx(_AT_FDCWD, os.fsencode(path), 0, _STATX_DIOALIGN, buf) != 0:
        return None
    if not _STATX_MASK.unpack_from(buf.raw)[0] & _STATX_DIOALIGN:
        return None
    mem, offset = _STATX_DIO.unpack_from(buf.raw, _STATX_DIO_OFFSET)
    return (mem, offset) if mem else None


# --------------------------------------------------------------------------- errors

_ERRORS: Final[dict[tuple[int, str | None], type[DeviceError]]] = {
    (errno.EIO, "read"): UnrecoveredReadError,
    (errno.EIO, None): WriteFault,
    (errno.ENOSPC, None): NoSpace,
    (errno.EDQUOT, None): NoSpace,
}


def device_error(
    exc: OSError, op: str, device: str, lba: int | None = None, nblocks: int | None = None
) -> DeviceError:
    """The DeviceError for an OSError of a backing file or block device.

    EIO is a media error (an unrecovered read, a write fault), ENOSPC and EDQUOT (a
    sparse backing file whose file system is full) are `NoSpace`, anything else is
    `InternalDeviceError`. Use as ``raise device_error(exc, ...) from exc``.

    Args:
        exc: what the system call raised.
        op: read, write, flush, unmap or write_zeroes.
        device: the device name, for the message.
        lba, nblocks: the range of the I/O, when it had one.
    """
    code = exc.errno or 0
    klass = _ERRORS.get((code, op)) or _ERRORS.get((code, None)) or InternalDeviceError
    where = f" of blocks {lba}..{lba + (nblocks or 0)}" if lba is not None else ""
    return klass(
        f"{device}: {op}{where} failed: {exc.strerror or exc}",
        device=device,
        lba=lba,
        nblocks=nblocks,
    )


# --------------------------------------------------------------------------- opening


@dataclass(slots=True)
class Backing:
    """An open file or block device.

    Attributes:
        path: as given.
        fd: open read-write; O_DIRECT when `direct`.
        block_device: a block device rather than a regular file.
        direct: O_DIRECT is in effect.
        block_size: the device's block size (512 or 4096).
        mem_align: the memory alignment I/O buffers need (1 for buffered I/O).
    """

    path: str
    fd: int
    block_device: bool
    direct: bool
    block_size: int
    mem_align: int

    def size_bytes(self) -> int:
        """Current size of the file or block device, in bytes."""
        if self.block_device:
            out = fcntl.ioctl(self.fd, BLKGETSIZE64, bytes(_U64.size))
            return int(_U64.unpack(out)[0])
        return os.fstat(self.fd).st_size

    def num_blocks(self) -> int:
        """Current capacity in whole blocks (a partial last block is left out)."""
        return self.size_bytes() // self.block_size

    def close(self) -> None:
        """Close the descriptor (which also drops the flock / exclusive claim)."""
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)


def _logical_block_size(fd: int) -> int:
    out = fcntl.ioctl(fd, BLKSSZGET, bytes(_U32.size))
    return int(_U32.unpack(out)[0])


def _check_path(path: str) -> os.stat_result:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise NotFound(f"{path}: no such file or block device") from None
    except PermissionError as exc:
        raise FailedPrecondition(f"{path}: permission denied ({exc.strerror})") from exc
    except OSError as exc:
        raise InvalidArgument(f"{path}: cannot be used as a disk: {exc.strerror}") from exc
    if stat.S_ISDIR(st.st_mode):
        raise InvalidArgument(f"{path}: is a directory, not a file or block device")
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        raise InvalidArgument(f"{path}: is neither a regular file nor a block device")
    return st


def _open_fd(path: str, block_device: bool, direct: bool) -> int:
    flags = os.O_RDWR | os.O_CLOEXEC
    if direct:
        flags |= os.O_DIRECT
    if block_device:
        flags |= os.O_EXCL
    try:
        return os.open(path, flags)
    except FileNotFoundError:
        raise NotFound(f"{path}: no such file or block device") from None
    except PermissionError as exc:
        raise FailedPrecondition(f"{path}: permission denied ({exc.strerror})") from exc
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            raise FailedPrecondition(
                f"{path}: the block device is in use (mounted, held by another device, "
                "or already opened by a pool or bdev)"
            ) from exc
        if exc.errno == errno.EINVAL and direct:
            raise
        raise InvalidArgument(f"{path}: cannot be opened read-write: {exc.strerror}") from exc


def _direct_io_works(fd: int, block_size: int, mem_align: int) -> bool:
    """Whether one block can be read with O_DIRECT at this block size.

    Only EINVAL says no; another error (a bad sector at block 0) is the I/O's to report.
    """
    buf, _ = aligned_buffer(block_size, max(mem_align, PAGE_SIZE))
    try:
        os.preadv(fd, [buf], 0)
    except OSError as exc:
        return exc.errno != errno.EINVAL
    return True


def open_backing(path: str, block_size: int | None, *, device: str) -> Backing:
    """Open a file or block device for a device driver; see the module docstring.

    Args:
        path: absolute path of a regular file or a block device.
        block_size: 512 or 4096, or None for the default.
        device: the device name, for log lines.

    Returns:
        the open backing store; the caller owns it and must `close` it.

    Raises:
        NotFound: the path does not exist.
        InvalidArgument: a directory, not a file or block device, smaller than one block,
            or a block size below the device's logical block size.
        FailedPrecondition: the disk or file is in use, or permission is denied.
    """
    st = _check_path(path)
    block_device = stat.S_ISBLK(st.st_mode)
    reason = ""
    try:
        fd = _open_fd(path, block_device, direct=True)
    except OSError:  # EINVAL: the file system takes no O_DIRECT
        fd = _open_fd(path, block_device, direct=False)
        reason = "the file system does not support O_DIRECT"
    try:
        backing = _configure(path, fd, block_device, block_size, reason, device)
    except BaseException:
        os.close(fd)
        raise
    return backing


def _configure(
    path: str, fd: int, block_device: bool, block_size: int | None, reason: str, device: str
) -> Backing:
    if not block_device:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FailedPrecondition(
                f"{path}: the file is in use (locked by another pool or bdev)"
            ) from None
    if block_device:
        logical = _logical_block_size(fd)
        if logical > 4096:
            raise InvalidArgument(f"{path}: logical block size {logical} is above 4096")
        if block_size is None:
            block_size = 512 if logical <= 512 else 4096
        if block_size < logical:
            raise InvalidArgument(
                f"{path}: blk_size {block_size} is smaller than the device's logical "
                f"block size {logical}"
            )
    elif block_size is None:
        block_size = 512
    backing = Backing(path, fd, block_device, False, block_size, 1)
    size = backing.size_bytes()
    if size < block_size:
        raise InvalidArgument(
            f"{path}: {size} bytes is smaller than one block of {block_size} bytes"
        )
    direct = not reason
    mem_align = 1
    if direct:
        dio = _dio_alignment(path)
        mem_align = dio[0] if dio else PAGE_SIZE
        if dio and block_size % dio[1]:
            reason = f"direct I/O needs {dio[1]}-byte blocks, the device has {block_size}"
        elif not _direct_io_works(fd, block_size, mem_align):
            reason = f"direct I/O of {block_size}-byte blocks is refused"
        if reason:
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_DIRECT)
            direct, mem_align = False, 1
    if reason:
        log.warning("%s: %s on %s; using buffered I/O (flush is fdatasync)", device, reason, path)
    backing.direct, backing.mem_align = direct, mem_align
    return backing
