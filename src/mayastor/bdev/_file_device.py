"""What the aio and uring devices share: a BlockDevice over a `Backing`.

A driver supplies four primitives (move bytes, fdatasync, fallocate, release); this
class turns them into the BlockDevice hooks with the same rules for both:

* reads land in a fresh aligned buffer that is returned as is (no copy); a write uses
  the caller's buffer where O_DIRECT can take it (aligned, or buffered I/O), else one
  copy into an aligned buffer. Buffers of small I/Os are cut one after the other from
  larger aligned allocations (`_AlignedSlab`), reused once nothing refers to any buffer
  cut from them; those of large I/Os are reused once nothing refers to them any more
  (`_ReusedBuffers`): no allocation, zero-filling or address lookup per I/O;
* `unmap` punches a hole (a file gets its space back; a block device is zeroed with
  discard allowed), `write_zeroes` asks for a zeroed range; where the kernel refuses a
  mode the next is tried (hole, zero range, then writing zeroes), and a refusal is
  remembered so it is not asked again;
* every OSError becomes the DeviceError of `_backing.device_error`.
"""

from __future__ import annotations

import abc
import ctypes
import os
import uuid as uuid_mod
from sys import getrefcount

from mayastor.bdev._backing import (
    FALLOC_FL_KEEP_SIZE,
    FALLOCATE_REFUSED,
    PUNCH_HOLE,
    ZERO_RANGE,
    Backing,
    device_error,
)
from mayastor.bdev._buffers import PAGE_SIZE, aligned_buffer, pinned_address
from mayastor.bdev.device import BlockDevice, Buffer, SpaceBelow

_ZERO_CHUNK = 1 << 20
_SLAB_BYTES = 256 << 10
"""Size of the allocation small I/O buffers are cut from."""
_SLABS_KEPT = 16
"""Slabs kept for reuse per device (4 MiB)."""
_SLAB_MAX_IO = 16 << 10
"""I/Os larger than this get a buffer of their own (`_ReusedBuffers`)."""
_REUSE_MAX_IO = 1 << 20
"""Buffers of I/Os up to this size are kept for reuse; larger ones are not."""
_REUSE_PER_SIZE = 32
"""Buffers kept for reuse per I/O size."""
_UNREFERENCED = 2
"""`getrefcount` of a kept bytearray no view refers to: the pool's entry and the call."""


class _AlignedSlab:
    """Aligned buffers for small I/Os, cut in turn from larger aligned bytearrays.

    Every buffer handed out is its own region of a slab (never handed out twice while
    anything refers to it), so a caller may keep it as long as it likes. A full slab is
    followed by one of up to `_SLABS_KEPT` kept ones that nothing refers to any more
    (the reference-count rule of `_ReusedBuffers`), else by a new one: no allocation,
    zero-filling or address lookup per I/O once the I/O in flight fits the kept slabs.
    A buffer kept for long keeps its slab (`_SLAB_BYTES`) from reuse: a bounded cost.
    Buffers are zero-filled only the first time their slab is used: a read fills all
    of its buffer or fails, a write copies all of its data in.

    Args:
        align: the memory alignment every buffer starts on (a power of two).
    """

    __slots__ = ("_address", "_align", "_kept", "_used", "_view")

    def __init__(self, align: int) -> None:
        self._align = align
        self._view = memoryview(b"")
        self._address = 0
        self._used = _SLAB_BYTES  # the first take allocates
        self._kept: list[tuple[bytearray, int, int]] = []

    def take(self, nbytes: int) -> tuple[memoryview, int]:
        """A buffer of `nbytes` (at most `_SLAB_MAX_IO`) on the alignment, and its
        address."""
        start = self._used
        if start + nbytes > _SLAB_BYTES:
            self._next_slab()
            start = 0
        end = start + nbytes
        self._used = -(-end // self._align) * self._align
        return self._view[start:end], self._address + start

    def _next_slab(self) -> None:
        self._view = memoryview(b"")  # the full slab's own view no longer holds it
        for entry in self._kept:
            if getrefcount(entry[0]) == _UNREFERENCED:
                raw, offset, self._address = entry
                self._view = memoryview(raw)[offset : offset + _SLAB_BYTES]
                return
        view, address = aligned_buffer(_SLAB_BYTES, max(self._align, PAGE_SIZE))
        owner = view.obj
        if len(self._kept) < _SLABS_KEPT and isinstance(owner, bytearray):
            base = ctypes.addressof(ctypes.c_char.from_buffer(owner))
            self._kept.append((owner, address - base, address))
        self._view, self._address = view, address


class _ReusedBuffers:
    """Aligned buffers for large I/Os, handed out again once nothing refers to them.

    Each buffer is a bytearray kept here, and each I/O gets a new memoryview of it. A
    memoryview, every slice made of it and its `obj` all hold a reference to the
    bytearray, so while a caller keeps any of them the bytearray's reference count is
    above what this pool holds, and it is not handed out again (CPython reference
    counting, which this project runs on). A reused buffer is not zeroed: a read fills
    all of it or fails, a write copies all of it in.

    Args:
        align: the memory alignment every buffer starts on (a power of two).
    """

    __slots__ = ("_align", "_pools")

    def __init__(self, align: int) -> None:
        self._align = align
        self._pools: dict[int, list[tuple[bytearray, int, int]]] = {}

    def take(self, nbytes: int) -> tuple[memoryview, int]:
        """A buffer of `nbytes` on the alignment (zero-filled only when new), and its
        address."""
        pool = self._pools.get(nbytes)
        if pool is None:
            if nbytes > _REUSE_MAX_IO:
                return aligned_buffer(nbytes, self._align)
            pool = self._pools[nbytes] = []
        for entry in pool:
            if getrefcount(entry[0]) == _UNREFERENCED:
                raw, start, address = entry
                return memoryview(raw)[start : start + nbytes], address
        view, address = aligned_buffer(nbytes, self._align)
        owner = view.obj
        if len(pool) < _REUSE_PER_SIZE and isinstance(owner, bytearray):
            base = ctypes.addressof(ctypes.c_char.from_buffer(owner))
            pool.append((owner, address - base, address))
        return view, address


def default_uuid(driver: str, path: str) -> uuid_mod.UUID:
    """A uuid that stays the same each time one path is opened by one driver."""
    return uuid_mod.uuid5(uuid_mod.NAMESPACE_URL, f"{driver}://{path}")


class FileBackedDevice(BlockDevice):
    """A BlockDevice over a file or block device; drivers fill in the primitives."""

    needs_address: bool = False
    inline_io = True
    """The driver hands buffers to the kernel by address (io_uring), not by object."""

    def __init__(self, name: str, uuid: uuid_mod.UUID, backing: Backing) -> None:
        super().__init__(name, uuid, backing.block_size, backing.num_blocks())
        self.backing = backing
        self.path = backing.path
        self._align = max(backing.mem_align, 1)
        self._slab = _AlignedSlab(self._align)
        self._large = _ReusedBuffers(self._align)
        self._fallocate_modes = {PUNCH_HOLE: True, ZERO_RANGE: True}
        self._zeroes: tuple[memoryview, int] | None = None

    @property
    def direct(self) -> bool:
        """O_DIRECT is in effect (False after the buffered fallback)."""
        return self.backing.direct

    # ------------------------------------------------------------ primitives

    @abc.abstractmethod
    async def _transfer(
        self, write: bool, view: memoryview, address: int, pin: object, offset: int
    ) -> None:
        """Move all of `view` to or from byte `offset`, or raise OSError.

        `address` is the address of `view` when `needs_address` (else 0); `pin` keeps the
        memory in place until the kernel is done with it, even if the caller is cancelled.
        """

    @abc.abstractmethod
    async def _datasync(self) -> None:
        """fdatasync the backing store, or raise OSError."""

    @abc.abstractmethod
    async def _fallocate(self, mode: int, offset: int, length: int) -> None:
        """fallocate(2) on the backing store, or raise OSError."""

    @abc.abstractmethod
    async def _release(self) -> None:
        """Stop the driver's machinery; called once, with nothing in flight."""

    # ------------------------------------------------------------ hooks

    async def _read(self, lba: int, nblocks: int) -> Buffer:
        view, address = self._read_buffer(nblocks * self.block_size)
        try:
            await self._transfer(False, view, address, view, lba * self.block_size)
        except OSError as exc:
            raise device_error(exc, "read", self.name, lba, nblocks) from exc
        return view

    async def _write(self, lba: int, data: Buffer) -> None:
        view, address, pin = self._write_buffer(data)
        try:
            await self._transfer(True, view, address, pin, lba * self.block_size)
        except OSError as exc:
            nblocks = view.nbytes // self.block_size
            raise device_error(exc, "write", self.name, lba, nblocks) from exc

    def _read_buffer(self, nbytes: int) -> tuple[memoryview, int]:
        """A fresh aligned buffer for a read of `nbytes`, and its address."""
        slab = self._slab if nbytes <= _SLAB_MAX_IO else self._large
        return slab.take(nbytes)

    def _write_buffer(self, data: Buffer) -> tuple[memoryview, int, object]:
        """What a write hands the kernel: (bytes, address when needed, pin).

        The caller's buffer where O_DIRECT and the driver can take it as it is, else
        one copy into an aligned buffer.
        """
        view = data if isinstance(data, memoryview) else memoryview(data)
        if not self.needs_address and self._align <= 1:
            return view, 0, view
        nbytes = view.nbytes
        # A read-only view (received data) cannot be pinned in place: copy it.
        pinned = None
        if not view.readonly or type(data) is bytes:
            pinned = pinned_address(data, nbytes)
        if pinned is not None and pinned[0] % self._align == 0:
            return view, pinned[0], pinned[1]
        slab = self._slab if nbytes <= _SLAB_MAX_IO else self._large
        copy, address = slab.take(nbytes)
        copy[:] = view.cast("B") if view.format != "B" else view
        return copy, address, copy

    async def _flush(self) -> None:
        try:
            await self._datasync()
        except OSError as exc:
            raise device_error(exc, "flush", self.name) from exc

    async def _unmap(self, lba: int, nblocks: int) -> None:
        await self._zero(lba, nblocks, (PUNCH_HOLE, ZERO_RANGE), "unmap")

    async def _write_zeroes(self, lba: int, nblocks: int) -> None:
        await self._zero(lba, nblocks, (ZERO_RANGE, PUNCH_HOLE), "write_zeroes")

    async def _close(self) -> None:
        try:
            await self._release()
        finally:
            self.backing.close()

    async def refresh_size(self) -> int:
        """Re-read the size of the file or block device (it may have grown).

        Returns:
            the number of whole blocks now.
        """
        self.num_blocks = self.backing.num_blocks()
        return self.num_blocks

    async def reserve_space(self, lba: int, nblocks: int) -> bool:
        """Allocate the range's blocks in the file (fallocate, keeping size and
        contents); a block device, or a file system that cannot, has nothing to do.

        Raises:
            NoSpace: the file system under the file is full.
            DeviceError: another error of the file system.
        """
        if self.backing.block_device or not nblocks:
            return False
        bs = self.block_size
        try:
            await self._fallocate(FALLOC_FL_KEEP_SIZE, lba * bs, nblocks * bs)
        except OSError as exc:
            if exc.errno in FALLOCATE_REFUSED:
                return False
            raise device_error(exc, "reserve", self.name, lba, nblocks) from exc
        return True

    def space_below(self) -> SpaceBelow | None:
        """The file's size, what it takes in its file system and what is free there;
        None for a block device."""
        if self.backing.block_device or self.backing.fd < 0:
            return None
        st = os.fstat(self.backing.fd)
        fs = os.fstatvfs(self.backing.fd)
        return SpaceBelow(st.st_size, st.st_blocks * 512, fs.f_bavail * fs.f_frsize)

    # ------------------------------------------------------------ internals

    async def _zero(self, lba: int, nblocks: int, modes: tuple[int, ...], op: str) -> None:
        if not nblocks:
            return
        bs = self.block_size
        for mode in modes:
            if not self._fallocate_modes[mode]:
                continue
            try:
                await self._fallocate(mode, lba * bs, nblocks * bs)
            except OSError as exc:
                if exc.errno in FALLOCATE_REFUSED:
                    self._fallocate_modes[mode] = False
                    continue
                raise device_error(exc, op, self.name, lba, nblocks) from exc
            return
        await self._write_zero_blocks(lba, nblocks, op)

    async def _write_zero_blocks(self, lba: int, nblocks: int, op: str) -> None:
        bs = self.block_size
        if self._zeroes is None:
            self._zeroes = aligned_buffer(_ZERO_CHUNK, max(self._align, bs))
        zeroes, address = self._zeroes
        step = _ZERO_CHUNK // bs
        done = 0
        while done < nblocks:
            count = min(step, nblocks - done)
            try:
                await self._transfer(True, zeroes[: count * bs], address, zeroes, (lba + done) * bs)
            except OSError as exc:
                raise device_error(exc, op, self.name, lba, nblocks) from exc
            done += count
