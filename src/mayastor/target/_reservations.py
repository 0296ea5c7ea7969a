"""Reservations at the target: the four commands, and what a queue pair adds for them.

`execute` runs one reservation command of a host on the namespace's `ReservationCell`
(the replica's own, or the subsystem's in-memory one) and returns the `Reply`:
Register, Acquire and Release change the state through the cell (durable before it
takes effect); Report describes it in the extended format (EDS=1, 128-bit host
identifiers; EDS=0 is Host Identifier Inconsistent Format, as over NVMe-oF every
host identifier is 128 bits).

`ReservationQueue` is the part of a queue pair that deals with reservations, kept
here so the hot queue-pair module only gains its hooks: the check of every I/O
command (one attribute read while no reservation is held), the commands themselves
(their data by the usual host-data path, run as a task, answered with C2HData for a
Report), and what the cell needs of an accessor: the host identifier and `quiesce`,
which returns once the commands that reached the device before a change have ended
(commands still waiting for their data are checked again when it comes).

Reservation notifications (the Reservation Notification log page, 80h, and its
asynchronous events) are not sent: hosts learn of a change by the conflicts they get
and by reading the report.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid as uuid_mod
from collections.abc import Callable, Coroutine
from typing import Any

from mayastor.bdev import Buffer
from mayastor.bdev.reservations import (
    ReservationCell,
    acquire,
    register,
    release,
    report,
)
from mayastor.errors import DeviceError
from mayastor.nvmf.pdu import Parts, PduFlags
from mayastor.nvmf.spec import (
    AcquireData,
    GenericStatus,
    IoOpcode,
    NvmeStatus,
    RegisterData,
    ReleaseData,
    ReservationAcquire,
    ReservationRegister,
    ReservationRelease,
    StatusCodeType,
)
from mayastor.target._reply import (
    INTERNAL_ERROR,
    INVALID_FIELD,
    SGL_TYPE_INVALID,
    Reply,
    failed,
)
from mayastor.target._subsystem import NSID

log = logging.getLogger(__name__)

_G = StatusCodeType.GENERIC
RESERVATION_CONFLICT = NvmeStatus(_G, GenericStatus.RESERVATION_CONFLICT, dnr=True)
HOST_ID_INCONSISTENT_FORMAT = NvmeStatus(_G, GenericStatus.HOST_ID_INCONSISTENT_FORMAT, dnr=True)
DATA_OUT: dict[int, int] = {
    IoOpcode.RESERVATION_REGISTER: ReservationRegister.data_length,
    IoOpcode.RESERVATION_ACQUIRE: ReservationAcquire.data_length,
    IoOpcode.RESERVATION_RELEASE: ReservationRelease.data_length,
}
"""Host data each data-out reservation command carries (Report carries none)."""
RESERVATION_OPCODES = (*DATA_OUT, IoOpcode.RESERVATION_REPORT)
NO_HOST = uuid_mod.UUID(int=0)
_MAX_DATA_OUT = 4096
"""Accept a larger buffer than the command's data (only its first bytes are read)."""
_QUIESCE_POLL = 0.001
_C2H_LAST = int(PduFlags.LAST_PDU)
_TRANSPORT_SGL = 0x5A
"""SGL identifier of a Transport Data Block: data by C2HData."""


async def execute(
    cell: ReservationCell,
    host: uuid_mod.UUID,
    opcode: int,
    cdw10: int,
    cdw11: int,
    data: Buffer,
    *,
    max_transfer: int,
) -> Reply:
    """Run a reservation command of `host` on the namespace's `cell`.

    Args:
        cell: the namespace's reservation state.
        host: the host identifier of the controller that sent it.
        opcode: Register, Acquire, Release or Report.
        cdw10, cdw11: the command's dwords.
        data: the host's data (at least the command's data length), empty for Report.
        max_transfer: the most bytes one command may return (MDTS).

    Raises:
        DeviceError: the new state could not be made durable (nothing changed).
    """
    if opcode == IoOpcode.RESERVATION_REPORT:
        return _report(cell, cdw10, cdw11, max_transfer)
    view = memoryview(data)
    if opcode == IoOpcode.RESERVATION_REGISTER:
        reg = ReservationRegister(cdw10 & 0x7, bool(cdw10 & 0x8), cdw10 >> 30)
        keys = RegisterData.decode(view[: ReservationRegister.data_length])
        step = functools.partial(
            register,
            host=host,
            rrega=reg.rrega,
            crkey=keys.crkey,
            nrkey=keys.nrkey,
            iekey=reg.iekey,
            cptpl=reg.cptpl,
            persistent=cell.persistent,
        )
    elif opcode == IoOpcode.RESERVATION_ACQUIRE:
        acq = ReservationAcquire(cdw10 & 0x7, (cdw10 >> 8) & 0xFF, bool(cdw10 & 0x8))
        akeys = AcquireData.decode(view[: ReservationAcquire.data_length])
        step = functools.partial(
            acquire,
            host=host,
            racqa=acq.racqa,
            rtype=acq.rtype,
            crkey=akeys.crkey,
            prkey=akeys.prkey,
            iekey=acq.iekey,
        )
    else:
        rel = ReservationRelease(cdw10 & 0x7, (cdw10 >> 8) & 0xFF, bool(cdw10 & 0x8))
        rkey = ReleaseData.decode(view[: ReservationRelease.data_length])
        step = functools.partial(
            release, host=host, rrela=rel.rrela, rtype=rel.rtype, crkey=rkey.crkey, iekey=rel.iekey
        )
    status = await cell.apply(step)
    return Reply(status)


def _report(cell: ReservationCell, cdw10: int, cdw11: int, max_transfer: int) -> Reply:
    length = (cdw10 + 1) * 4
    if not cdw11 & 1:
        return failed(HOST_ID_INCONSISTENT_FORMAT)
    if length > max_transfer:
        return failed(INVALID_FIELD)
    raw = report(cell.state).encode(extended=True)
    return Reply(data=raw[:length].ljust(length, b"\x00"))


class ReservationQueue:
    """What a queue pair adds for reservations (a mixin of `QueuePair`; see the module
    docstring). The attributes below are the queue pair's."""

    _inflight: dict[int, int]
    _windows: dict[int, Any]
    _spawn: Callable[[Coroutine[Any, Any, None]], None]
    _send: Callable[[Parts], None]
    _max_transfer: int
    _resv: ReservationCell
    _host: uuid_mod.UUID
    _resv_cids: set[int]

    def _complete(
        self, cid: int, status: int = 0, dw0: int = 0, dw1: int = 0, *, lba: int = 0, nsid: int = 0
    ) -> None:
        raise NotImplementedError

    def _capsule_resp(self, cid: int, status: int, dw0: int = 0, dw1: int = 0) -> Parts:
        raise NotImplementedError

    def _c2h_data(self, cid: int, data: Buffer, flags: int) -> Parts:
        raise NotImplementedError

    def _host_data(
        self,
        cid: int,
        sgl: tuple[int, int, int],
        data: Buffer,
        need: tuple[int, int],
        then: Callable[[Buffer], None],
    ) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ accessor

    @property
    def hostid(self) -> uuid_mod.UUID:
        """The host identifier of this queue's controller (its Connect data)."""
        return self._host

    async def quiesce(self) -> None:
        """Return once no command of this queue that reached the device is running."""
        while self._device_busy():
            await asyncio.sleep(_QUIESCE_POLL)

    def _device_busy(self) -> bool:
        inflight = self._inflight
        if not inflight:
            return False
        idle = {window.transfer.cid for window in self._windows.values()}
        idle.update(self._resv_cids)
        return any(cid not in idle for cid in inflight)

    # ------------------------------------------------------------------ commands

    def _reservation_command(
        self,
        opcode: int,
        cid: int,
        addr: int,
        sgl_len: int,
        sgl_id: int,
        cdws: int,
        cdw12: int,
        data: Buffer,
    ) -> None:
        need = DATA_OUT.get(opcode)
        if need is None:
            if sgl_id != _TRANSPORT_SGL or data:
                self._complete(cid, SGL_TYPE_INVALID.field, nsid=NSID)  # data goes to the host
                return
            self._start_reservation(cid, opcode, cdws, sgl_len, b"")
            return
        self._host_data(
            cid,
            (sgl_id, addr, sgl_len),
            data,
            (need, _MAX_DATA_OUT),
            lambda payload: self._start_reservation(cid, opcode, cdws, sgl_len, payload),
        )

    def _start_reservation(
        self, cid: int, opcode: int, cdws: int, sgl_len: int, payload: Buffer
    ) -> None:
        self._inflight[cid] = 0
        self._resv_cids.add(cid)
        self._spawn(self._run_reservation(cid, opcode, cdws, sgl_len, payload))

    async def _run_reservation(
        self, cid: int, opcode: int, cdws: int, sgl_len: int, payload: Buffer
    ) -> None:
        try:
            reply = await execute(
                self._resv,
                self._host,
                opcode,
                cdws & 0xFFFF_FFFF,
                cdws >> 32,
                payload,
                max_transfer=self._max_transfer,
            )
        except DeviceError as exc:
            log.warning("reservation command %#x of host %s failed: %s", opcode, self._host, exc)
            reply = failed(exc.status)
        except Exception:
            log.exception("reservation command %#x of host %s failed", opcode, self._host)
            reply = failed(INTERNAL_ERROR)
        finally:
            self._resv_cids.discard(cid)
        status = reply.status.field
        if reply.data is None or status:
            self._complete(cid, status, nsid=NSID)
            return
        size = min(len(reply.data), sgl_len)
        if not size:
            self._complete(cid, INVALID_FIELD.field, nsid=NSID)
            return
        self._inflight.pop(cid, None)
        self._send(
            self._c2h_data(cid, memoryview(reply.data)[:size], _C2H_LAST)
            + self._capsule_resp(cid, 0)
        )
