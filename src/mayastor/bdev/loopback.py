"""`bdev:///NAME`: a handle on a device this process already has, reached in-process.

A nexus opens its local replica this way. The handle forwards every I/O to the device
it stands for, without copying (submitted reads and writes by callback as well), but
closing it only tells its owner (`on_close`) that the user is gone: the device itself
stays open for its owner (the pool).

Reservations: a handle is a host of its own, with the host identifier it was opened
with (a nexus gives its own). When the device keeps reservation state (a replica),
the handle's I/O is checked against that same state, as the target checks its
hosts' I/O, so a nexus on the replica's own io-engine is fenced like a remote one;
and the handle runs the reservation commands on it. A handle opened without a host
identifier is a host that never registers.
"""

from __future__ import annotations

import asyncio
import functools
import uuid as uuid_mod
from collections.abc import Awaitable, Callable

from mayastor.bdev._io_request import relay
from mayastor.bdev.device import BlockDevice, Buffer, IoRequest
from mayastor.bdev.reservations import (
    Outcome,
    ReservationCell,
    acquire,
    register,
    release,
    report,
)
from mayastor.errors import DeviceError, ReservationConflict
from mayastor.nvmf.spec import (
    AcquireAction,
    ChangePtpl,
    IoOpcode,
    NvmeStatus,
    RegisterAction,
    ReleaseAction,
    ReservationStatus,
    ReservationType,
)

NO_HOST = uuid_mod.UUID(int=0)
"""The host identifier of a handle opened without one: it never registers."""
_QUIESCE_POLL = 0.001

_READ = int(IoOpcode.READ)
_WRITE = int(IoOpcode.WRITE)
_FLUSH = int(IoOpcode.FLUSH)
_WRITE_ZEROES = int(IoOpcode.WRITE_ZEROES)
_DEALLOCATE = int(IoOpcode.DATASET_MANAGEMENT)


class LoopbackDevice(BlockDevice):
    """A BlockDevice that forwards to `inner` and whose close leaves `inner` open.

    Args:
        inner: the device to reach.
        on_close: awaited once when the handle is closed (to release a claim).
        hostid: the host identifier reservations see the handle as.
    """

    driver = "bdev"
    product_name = "Loopback handle"

    def __init__(
        self,
        inner: BlockDevice,
        on_close: Callable[[], Awaitable[None]] | None = None,
        *,
        hostid: uuid_mod.UUID | None = None,
    ) -> None:
        super().__init__(inner.name, inner.uuid, inner.block_size, inner.num_blocks)
        self.inner = inner
        self.inline_io = inner.inline_io
        self._on_close = on_close
        self._host = hostid or NO_HOST
        self._cell: ReservationCell | None = inner.reservations
        if self._cell is not None:
            self._cell.attach(self)

    # ------------------------------------------------------------------ reservations

    @property
    def hostid(self) -> uuid_mod.UUID:
        """The host identifier the handle's I/O is checked as."""
        return self._host

    @property
    def supports_reservations(self) -> bool:
        return self._cell is not None and self._host != NO_HOST

    @property
    def reservation_host(self) -> uuid_mod.UUID | None:
        return self._host if self._host != NO_HOST else None

    async def quiesce(self) -> None:
        """Return once the I/O in flight through this handle has ended."""
        while self._inflight:
            await asyncio.sleep(_QUIESCE_POLL)

    def _conflict(self, opcode: int, lba: int | None = None) -> ReservationConflict | None:
        """The error for an I/O another host's reservation excludes, else None."""
        cell = self._cell
        if cell is None or not cell.rtype or cell.allows(self._host, opcode):
            return None
        return ReservationConflict(
            f"{self.name}: {IoOpcode(opcode).name.lower().replace('_', ' ')} refused: "
            f"another host holds a reservation on it that excludes host {self._host}",
            device=self.name,
            lba=lba,
        )

    async def _run(self, step: Callable[..., Outcome], what: str, **args: object) -> None:
        cell = self._cell
        if cell is None or self._host == NO_HOST:
            raise self._no_reservations()
        status = await cell.apply(functools.partial(step, host=self._host, **args))
        if not status.is_success:
            raise _refused(status, f"{self.name}: reservation {what} refused")

    async def reservation_register(
        self,
        action: RegisterAction,
        *,
        current_key: int = 0,
        new_key: int = 0,
        ignore_key: bool = False,
        ptpl: ChangePtpl = ChangePtpl.NO_CHANGE,
    ) -> None:
        cell = self._cell
        await self._run(
            register,
            f"register ({action.name.lower()})",
            rrega=int(action),
            crkey=current_key,
            nrkey=new_key,
            iekey=ignore_key,
            cptpl=int(ptpl),
            persistent=cell is not None and cell.persistent,
        )

    async def reservation_acquire(
        self,
        action: AcquireAction,
        rtype: ReservationType,
        *,
        current_key: int,
        preempt_key: int = 0,
    ) -> None:
        await self._run(
            acquire,
            f"acquire ({action.name.lower()})",
            racqa=int(action),
            rtype=int(rtype),
            crkey=current_key,
            prkey=preempt_key,
        )

    async def reservation_release(
        self, action: ReleaseAction, rtype: ReservationType, *, current_key: int
    ) -> None:
        await self._run(
            release,
            f"release ({action.name.lower()})",
            rrela=int(action),
            rtype=int(rtype),
            crkey=current_key,
        )

    async def reservation_report(self) -> ReservationStatus:
        cell = self._cell
        if cell is None:
            raise self._no_reservations()
        return report(cell.state)

    # ------------------------------------------------------------------ I/O

    async def _read(self, lba: int, nblocks: int) -> Buffer:
        if self._cell is not None and (error := self._conflict(_READ, lba)) is not None:
            raise error
        return await self.inner.read(lba, nblocks)

    async def _write(self, lba: int, data: Buffer) -> None:
        if self._cell is not None and (error := self._conflict(_WRITE, lba)) is not None:
            raise error
        await self.inner.write(lba, data)

    def _submit_read(self, lba: int, nblocks: int, request: IoRequest) -> None:
        cell = self._cell
        if cell is not None and cell.rtype and (error := self._conflict(_READ, lba)) is not None:
            request.finish(None, error)
            return
        self.inner.submit_read(lba, nblocks, relay, request)

    def _submit_write(self, lba: int, data: Buffer, request: IoRequest) -> None:
        cell = self._cell
        if cell is not None and cell.rtype and (error := self._conflict(_WRITE, lba)) is not None:
            request.finish(None, error)
            return
        self.inner.submit_write(lba, data, relay, request)

    async def _flush(self) -> None:
        if self._cell is not None and (error := self._conflict(_FLUSH)) is not None:
            raise error
        await self.inner.flush()

    async def _unmap(self, lba: int, nblocks: int) -> None:
        if self._cell is not None and (error := self._conflict(_DEALLOCATE, lba)) is not None:
            raise error
        await self.inner.unmap(lba, nblocks)

    async def _write_zeroes(self, lba: int, nblocks: int) -> None:
        if self._cell is not None and (error := self._conflict(_WRITE_ZEROES, lba)) is not None:
            raise error
        await self.inner.write_zeroes(lba, nblocks)

    async def refresh_size(self) -> int:
        """Take the capacity of the device it stands for (a replica that was resized)."""
        self.num_blocks = self.inner.num_blocks
        return self.num_blocks

    async def _close(self) -> None:
        if self._cell is not None:
            self._cell.detach(self)
        if self._on_close is not None:
            await self._on_close()


def _refused(status: NvmeStatus, message: str) -> DeviceError:
    return DeviceError.from_status(status, f"{message}: {status.describe()}")
