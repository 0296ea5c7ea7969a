"""The BlockDevice contract (DESIGN.md section 5).

Malloc disks, files, block devices, lvols, remote NVMe namespaces and the nexus all
implement this one small async interface, so each layer can stand on any of them
and one conformance suite (`tests/conformance/block_device.py`) checks them all.

Contract, for every device:

* Addresses are logical blocks (`lba`, `nblocks`); `block_size` is 512 or 4096 and
  never changes; `num_blocks` may grow or shrink only through the owner's resize.
* `read` returns exactly ``nblocks * block_size`` bytes (a bytes-like object the
  caller may keep). `write` takes any bytes-like object whose length is a whole
  number of blocks; the device does not keep a reference after it returns.
* An I/O either completes entirely or raises a `DeviceError` that carries an NVMe
  status: never a partial success. A range past the end raises `LbaOutOfRange`, a
  length that is not a whole number of blocks `InvalidField`, I/O on a closed device
  `DeviceNotReady`.
* `write` is acknowledged when the data will be returned by a later `read`; it is
  durable against power loss only after a following `flush` has returned (the
  device behaves like a drive with a volatile write cache).
* `unmap` and `write_zeroes` both leave the range reading as zeroes. `unmap` may
  also give the space back (a hole in a file, an unallocated cluster of a thin lvol).
* If the task awaiting a `write`, `unmap` or `write_zeroes` is cancelled, each block
  of the range holds either its old or its new contents afterwards.
* `close` refuses new I/O, waits for the I/O in flight, then releases the device. It
  may be called more than once.
* `submit_read` and `submit_write` are the same reads and writes for callers that
  live in protocol callbacks (the target, the nexus's fan-out): they start the I/O and
  return; a callback hears how it ended, exactly once, maybe before they return (a
  device that needs no wait completes inline). No Task or future is made for an I/O
  whose driver completes by callback. Such an I/O cannot be cancelled: it runs to its
  end.

Reservations (NVMe reservations, `mayastor.bdev.reservations`), optional:

* `reservations` is the namespace's own reservation state when the device keeps one
  (a replica keeps it in its pool, so that it survives a restart); whoever serves or
  reaches the device checks I/O against it. None (the default): the device keeps
  none, and the NVMe/TCP target keeps an in-memory one for the hosts it serves.
* A device reached as a host (a remote namespace, an in-process handle on a replica)
  can take part in them: `supports_reservations` says so, and the four calls
  `reservation_register`, `reservation_acquire`, `reservation_release` and
  `reservation_report` run the NVMe commands under the device's host identifier
  (`reservation_host`). A refusal raises the DeviceError its status names:
  `ReservationConflict` when another host's reservation or registration is in the
  way. On other devices they raise `InvalidOpcode`: such devices are not fenced.
* Once another host holds a reservation that excludes this one, its I/O fails with
  `ReservationConflict` (a nexus takes that as the sign that it was superseded).

Subclasses implement the `_read`, `_write`, `_flush`, `_unmap`, `_write_zeroes` and
`_close` hooks, and may implement `_submit_read` and `_submit_write` to complete by
callback (the default runs `_read` or `_write` inline); the public methods check the
range, keep the counters and track I/O in flight, so every driver behaves the same at
the edges.
"""

from __future__ import annotations

import abc
import asyncio
import uuid as uuid_mod
from dataclasses import dataclass
from time import perf_counter_ns
from typing import TYPE_CHECKING, Any, ClassVar

from mayastor.bdev._inline import run_inline
from mayastor.bdev._io_request import Buffer as Buffer
from mayastor.bdev._io_request import IoDone as IoDone
from mayastor.bdev._io_request import IoRequest as IoRequest
from mayastor.bdev._io_request import IoStats as IoStats
from mayastor.errors import (
    DeviceError,
    DeviceNotReady,
    InvalidArgument,
    InvalidField,
    InvalidOpcode,
    LbaOutOfRange,
)
from mayastor.nvmf.spec import (
    AcquireAction,
    ChangePtpl,
    RegisterAction,
    ReleaseAction,
    ReservationStatus,
    ReservationType,
)

if TYPE_CHECKING:
    from mayastor.bdev.reservations import ReservationCell

BLOCK_SIZES = (512, 4096)


@dataclass(frozen=True, slots=True)
class SpaceBelow:
    """The room under a device backed by a file in a file system.

    Attributes:
        size: bytes of the device (the file's length).
        allocated: bytes the file takes in its file system now.
        free: bytes still free in that file system (for an unprivileged writer).
    """

    size: int
    allocated: int
    free: int

    @property
    def shortfall(self) -> int:
        """Bytes the device could not get if all of it were written now (0: none)."""
        return max(0, self.size - self.allocated - self.free)


class BlockDevice(abc.ABC):
    """An addressable array of equal blocks with async I/O; see the module docstring.

    Args:
        name: unique among the devices of one io-engine.
        uuid: stable identity (a replica's uuid, a file device's generated uuid, ...).
        block_size: 512 or 4096.
        num_blocks: capacity in blocks.

    Raises:
        InvalidArgument: for a block size or capacity the contract does not allow.
    """

    driver: ClassVar[str] = "abstract"
    """Short driver name shown in listings: malloc, aio, uring, lvol, nvmf, nexus."""
    product_name: ClassVar[str] = "Block device"
    """Human description, as SPDK's product_name ("Malloc disk", "Logical Volume", ...)."""
    uri: str = ""
    """The URI the device was opened from, for listings; set by `DeviceOpener.open`."""
    inline_io: bool = False
    """The driver's I/O coroutines may be started in the caller's frame: none of them
    ties itself to the current task (``asyncio.timeout``, ``current_task``) before its
    first wait. A submitted I/O that completes without waiting then needs no Task; for
    other drivers the default `_submit_read` / `_submit_write` start a Task at once."""
    reservations: ReservationCell | None = None
    """The namespace's own reservation state, when the device keeps one (see the module
    docstring); None for devices whose server keeps it."""

    def __init__(self, name: str, uuid: uuid_mod.UUID, block_size: int, num_blocks: int) -> None:
        if block_size not in BLOCK_SIZES:
            raise InvalidArgument(
                f"block device {name!r}: block size {block_size} is not one of {BLOCK_SIZES}"
            )
        if num_blocks < 0:
            raise InvalidArgument(f"block device {name!r}: negative capacity {num_blocks}")
        self.name = name
        self.uuid = uuid
        self.block_size = block_size
        self.num_blocks = num_blocks
        self.stats = IoStats()
        self._closed = False
        self._inflight = 0
        self._idle: asyncio.Event | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # A class that redefines `_read` (`_write`) without its own `_submit_read`
        # (`_submit_write`) gets the default one, which runs its `_read` (`_write`):
        # an inherited callback path must never bypass a new hook.
        super().__init_subclass__(**kwargs)
        for hook, submit in (("_read", "_submit_read"), ("_write", "_submit_write")):
            if hook in cls.__dict__ and submit not in cls.__dict__:
                setattr(cls, submit, getattr(BlockDevice, submit))

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.name!r} {self.num_blocks}x{self.block_size}"
            f"{' closed' if self._closed else ''}>"
        )

    @property
    def size(self) -> int:
        """Capacity in bytes."""
        return self.num_blocks * self.block_size

    @property
    def closed(self) -> bool:
        return self._closed

    # ------------------------------------------------------------------ public I/O

    async def read(self, lba: int, nblocks: int) -> Buffer:
        """Read `nblocks` blocks from `lba`.

        Returns:
            exactly ``nblocks * block_size`` bytes.

        Raises:
            LbaOutOfRange, DeviceNotReady, or the DeviceError of a failed read.
        """
        self._begin(lba, nblocks)
        start = perf_counter_ns()
        try:
            data = await self._read(lba, nblocks)
        except BaseException:
            self.stats.num_errors += 1
            raise
        finally:
            self._end()
        self.stats.count_read(nblocks * self.block_size, perf_counter_ns() - start)
        return data

    async def write(self, lba: int, data: Buffer) -> None:
        """Write `data` (a whole number of blocks) at `lba`.

        Raises:
            InvalidField (length not a whole number of blocks), LbaOutOfRange,
            DeviceNotReady, NoSpace (thin device, pool full), or another DeviceError.
        """
        length = len(data) if not isinstance(data, memoryview) else data.nbytes
        self._begin(lba, self._whole_blocks(lba, length))
        start = perf_counter_ns()
        try:
            await self._write(lba, data)
        except BaseException:
            self.stats.num_errors += 1
            raise
        finally:
            self._end()
        self.stats.count_write(length, perf_counter_ns() - start)

    def submit_read(self, lba: int, nblocks: int, done: IoDone, ctx: Any) -> None:
        """Start reading `nblocks` blocks from `lba`; `done(ctx, data, error)` hears the end.

        `done` is called exactly once, maybe before this returns; every error (a range
        outside the device, a closed device, a failed read) goes to it, never raised.
        """
        if not self._closed and lba >= 0 and nblocks >= 0 and lba + nblocks <= self.num_blocks:
            self._inflight += 1  # `_begin`, inline: layers without a shortcut of their own
            self._submit_read(
                lba, nblocks, IoRequest(self, done, ctx, lba, nblocks * self.block_size, False)
            )
            return
        try:
            self._begin(lba, nblocks)
        except DeviceError as exc:
            done(ctx, None, exc)
            return
        self._submit_read(
            lba, nblocks, IoRequest(self, done, ctx, lba, nblocks * self.block_size, False)
        )

    def submit_write(self, lba: int, data: Buffer, done: IoDone, ctx: Any) -> None:
        """Start writing `data` at `lba`; `done(ctx, None, error)` hears the end.

        As `submit_read`; the caller keeps `data` unchanged until `done` is called.
        """
        length = len(data) if type(data) is not memoryview else data.nbytes
        nblocks, rest = divmod(length, self.block_size)
        if not rest and not self._closed and lba >= 0 and lba + nblocks <= self.num_blocks:
            self._inflight += 1  # `_begin`, inline, as in `submit_read`
            self._submit_write(lba, data, IoRequest(self, done, ctx, lba, length, True))
            return
        try:
            self._begin(lba, self._whole_blocks(lba, length))
        except DeviceError as exc:
            done(ctx, None, exc)
            return
        self._submit_write(lba, data, IoRequest(self, done, ctx, lba, length, True))

    async def flush(self) -> None:
        """Make every write acknowledged so far durable."""
        self._begin(0, 0)
        try:
            await self._flush()
        except BaseException:
            self.stats.num_errors += 1
            raise
        finally:
            self._end()
        self.stats.num_flush_ops += 1

    async def unmap(self, lba: int, nblocks: int) -> None:
        """Deallocate a range: it reads as zeroes afterwards, and may free space."""
        self._begin(lba, nblocks)
        start = perf_counter_ns()
        try:
            await self._unmap(lba, nblocks)
        except BaseException:
            self.stats.num_errors += 1
            raise
        finally:
            self._end()
        self.stats.num_unmap_ops += 1
        self.stats.bytes_unmapped += nblocks * self.block_size
        self.stats.unmap_latency_ns += perf_counter_ns() - start

    async def write_zeroes(self, lba: int, nblocks: int) -> None:
        """Make a range read as zeroes."""
        self._begin(lba, nblocks)
        try:
            await self._write_zeroes(lba, nblocks)
        except BaseException:
            self.stats.num_errors += 1
            raise
        finally:
            self._end()
        self.stats.num_write_zeroes_ops += 1
        self.stats.bytes_zeroed += nblocks * self.block_size

    async def refresh_size(self) -> int:
        """Re-read the capacity from what backs the device (a disk or file that grew).

        The owner calls this (e.g. a pool asked to grow); `num_blocks` takes the new
        value. The default is for devices whose size only their owner changes.

        Returns:
            the number of blocks now.
        """
        return self.num_blocks

    async def reserve_space(self, lba: int, nblocks: int) -> bool:
        """Make sure writes to the range will not fail for want of space below the
        device (a sparse backing file gets its blocks allocated now); contents stay as
        they are.

        The default is for devices whose every block is already backed.

        Returns:
            True when space was reserved, False when the device had nothing to do.

        Raises:
            NoSpace: the space below the device ran out (part of the range may have
                been allocated; the contents are unchanged).
        """
        return False

    def space_below(self) -> SpaceBelow | None:
        """How much room the storage under the device has, when that can run out
        before the device is full (a sparse file); None for devices that cannot."""
        return None

    async def close(self) -> None:
        """Refuse new I/O, wait for the I/O in flight, then release the device."""
        if self._closed:
            return
        self._closed = True
        if self._inflight:
            self._idle = asyncio.Event()
            await self._idle.wait()
        await self._close()

    # ------------------------------------------------------------ reservations

    @property
    def supports_reservations(self) -> bool:
        """True when this handle takes part in NVMe reservations as a host (a remote
        namespace whose controller supports them, an in-process handle on a replica)."""
        return False

    @property
    def reservation_host(self) -> uuid_mod.UUID | None:
        """The host identifier reservations see this handle as (None: it has none)."""
        return None

    async def reservation_register(
        self,
        action: RegisterAction,
        *,
        current_key: int = 0,
        new_key: int = 0,
        ignore_key: bool = False,
        ptpl: ChangePtpl = ChangePtpl.NO_CHANGE,
    ) -> None:
        """Reservation Register: register, unregister or replace this host's key.

        Raises:
            ReservationConflict: registered with another key, or `current_key` is wrong.
            InvalidField: a key of 0, or a PTPL change the namespace cannot make.
            InvalidOpcode: the device does not support reservations.
            DeviceError: as for any command (PathLost, ...).
        """
        raise self._no_reservations()

    async def reservation_acquire(
        self,
        action: AcquireAction,
        rtype: ReservationType,
        *,
        current_key: int,
        preempt_key: int = 0,
    ) -> None:
        """Reservation Acquire: acquire (`AcquireAction.ACQUIRE`) a reservation of type
        `rtype`, or preempt the holder or registrants whose key is `preempt_key`.

        Raises:
            ReservationConflict: another host holds it (Acquire), `current_key` is not
                this host's key, or `preempt_key` matches nobody.
            InvalidField, InvalidOpcode, DeviceError: as for `reservation_register`.
        """
        raise self._no_reservations()

    async def reservation_release(
        self, action: ReleaseAction, rtype: ReservationType, *, current_key: int
    ) -> None:
        """Reservation Release: release the reservation this host holds, or clear every
        registration (`ReleaseAction.CLEAR`).

        Raises:
            ReservationConflict: `current_key` is not this host's key.
            InvalidField: `rtype` is not the type held.
            InvalidOpcode, DeviceError: as for `reservation_register`.
        """
        raise self._no_reservations()

    async def reservation_report(self) -> ReservationStatus:
        """Reservation Report: generation, type, holder and registrants (128-bit host
        identifiers).

        Raises:
            InvalidOpcode, DeviceError: as for `reservation_register`.
        """
        raise self._no_reservations()

    def _no_reservations(self) -> InvalidOpcode:
        return InvalidOpcode(
            f"{self.name}: a {self.driver} device does not take part in NVMe reservations",
            device=self.name,
        )

    # ------------------------------------------------------- byte-offset convenience

    async def read_at(self, offset: int, length: int) -> Buffer:
        """Read `length` bytes at byte `offset`; both must be block aligned."""
        lba, nblocks = self._to_blocks(offset, length)
        return await self.read(lba, nblocks)

    async def write_at(self, offset: int, data: Buffer) -> None:
        """Write `data` at byte `offset`; offset and length must be block aligned."""
        length = len(data) if not isinstance(data, memoryview) else data.nbytes
        lba, _ = self._to_blocks(offset, length)
        await self.write(lba, data)

    # ------------------------------------------------------------ driver hooks

    @abc.abstractmethod
    async def _read(self, lba: int, nblocks: int) -> Buffer: ...

    @abc.abstractmethod
    async def _write(self, lba: int, data: Buffer) -> None: ...

    @abc.abstractmethod
    async def _flush(self) -> None: ...

    @abc.abstractmethod
    async def _unmap(self, lba: int, nblocks: int) -> None: ...

    async def _write_zeroes(self, lba: int, nblocks: int) -> None:
        """Default: write zero-filled blocks, at most 1 MiB at a time."""
        step = max(1, (1 << 20) // self.block_size)
        zeroes = bytes(min(nblocks, step) * self.block_size)
        done = 0
        while done < nblocks:
            count = min(step, nblocks - done)
            await self._write(lba + done, memoryview(zeroes)[: count * self.block_size])
            done += count

    async def _close(self) -> None:  # noqa: B027 - optional hook
        """Release what the driver holds; called once, with no I/O in flight."""

    def _submit_read(self, lba: int, nblocks: int, request: IoRequest) -> None:
        """Start a checked, counted read that ends with `request.finish`.

        Default: `_read` run inline when `inline_io` says it may be, else in a Task of
        its own (see `mayastor.bdev._inline`). A driver that can complete by callback
        overrides this.
        """
        run_inline(self._read(lba, nblocks), request.finish, f"read on {self.name}", self.inline_io)

    def _submit_write(self, lba: int, data: Buffer, request: IoRequest) -> None:
        """Start a checked, counted write that ends with `request.finish` (see
        `_submit_read`)."""
        run_inline(self._write(lba, data), request.finish, f"write on {self.name}", self.inline_io)

    # ------------------------------------------------------------ internals

    def _begin(self, lba: int, nblocks: int) -> None:
        if self._closed:
            raise DeviceNotReady(f"{self.name}: device is closed", device=self.name)
        if lba < 0 or nblocks < 0 or lba + nblocks > self.num_blocks:
            raise LbaOutOfRange(
                f"{self.name}: blocks {lba}..{lba + nblocks} are outside the device "
                f"({self.num_blocks} blocks of {self.block_size} bytes)",
                device=self.name,
                lba=lba,
                nblocks=nblocks,
            )
        self._inflight += 1

    def _whole_blocks(self, lba: int, length: int) -> int:
        nblocks, rest = divmod(length, self.block_size)
        if rest:
            raise InvalidField(
                f"{self.name}: write of {length} bytes is not a whole number of "
                f"{self.block_size}-byte blocks",
                device=self.name,
                lba=lba,
            )
        return nblocks

    def _end(self) -> None:
        self._inflight -= 1
        if not self._inflight and self._idle is not None:
            self._idle.set()

    def _to_blocks(self, offset: int, length: int) -> tuple[int, int]:
        if offset % self.block_size or length % self.block_size:
            raise InvalidField(
                f"{self.name}: offset {offset} and length {length} must be multiples of "
                f"the block size {self.block_size}",
                device=self.name,
            )
        return offset // self.block_size, length // self.block_size
