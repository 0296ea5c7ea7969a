"""Memory for direct I/O: aligned buffers and the addresses of caller buffers.

O_DIRECT needs the memory of an I/O aligned (to the device's DMA alignment, at most a
page), and io_uring needs a buffer's address. Both without copying where the caller's
buffer already fits.
"""

from __future__ import annotations

import ctypes
import mmap

PAGE_SIZE = mmap.PAGESIZE


def aligned_buffer(nbytes: int, alignment: int = PAGE_SIZE) -> tuple[memoryview, int]:
    """A zero-filled writable buffer whose first byte sits on an `alignment` boundary.

    It is a slice of a slightly larger bytearray, so the caller may keep it as long as
    it likes (it is what a read returns) and no memory is shared with anyone else.

    Args:
        nbytes: size of the buffer, at least 1.
        alignment: a power of two.

    Returns:
        the buffer and its address.
    """
    raw = bytearray(nbytes + alignment)
    base = ctypes.addressof(ctypes.c_char.from_buffer(raw))
    start = -base % alignment
    return memoryview(raw)[start : start + nbytes], base + start


def pinned_address(data: object, nbytes: int) -> tuple[int, object] | None:
    """The address of a caller's buffer and an object that keeps it in place.

    While the returned pin is alive the buffer's owner cannot resize or free it, so a
    kernel may read it after the caller's frame is gone (io_uring).

    Returns:
        (address, pin), or None for buffers whose address cannot be had without a copy
        (read-only views, non-contiguous ones).
    """
    if type(data) is bytes:
        pin = ctypes.c_char_p(data)
        return ctypes.cast(pin, ctypes.c_void_p).value or 0, pin
    try:
        array = (ctypes.c_char * nbytes).from_buffer(data)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return ctypes.addressof(array), array
