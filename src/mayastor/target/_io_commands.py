"""The NVM I/O commands of a queue pair, and how commands are answered.

`IoCommands` is the part of `QueuePair` that runs Read, Write, Flush, Write Zeroes and
Dataset Management on the namespace's device and sends the answers (a mixin, as
`ReservationQueue` is; the attributes it names are the queue pair's). The hot path is
kept short: an I/O command arrives as its unpacked SQE fields, a read and an
in-capsule write to the write cache are checked and submitted from `_io_command`
itself, by callback (no coroutine, Task or future), and their answers are packed with
precompiled structs: one C2HData (with the SUCCESS flag when SQ flow control is off)
or one CapsuleResp. Read data goes from the device's buffer straight into the
C2HData parts. Commands that wait for the device otherwise (FUA writes, flushes,
unmaps) run as tasks the I/O shell keeps.
"""

from __future__ import annotations

import logging
import struct
import uuid as uuid_mod
from collections.abc import Callable, Coroutine
from typing import Any, Final

from mayastor.bdev import BlockDevice, Buffer, ReservationCell
from mayastor.bdev.device import IoDone
from mayastor.errors import DeviceError
from mayastor.nvmf.pdu import FatalErrorStatus, Parts, PduError, PduFlags, PduWriter
from mayastor.nvmf.spec import DSM_RANGE_SIZE, NSID_ALL, IoOpcode, decode_dsm_ranges
from mayastor.target._controller import Controller
from mayastor.target._reply import (
    COMMAND_ID_CONFLICT,
    INTERNAL_ERROR,
    INVALID_FIELD,
    INVALID_NAMESPACE,
    INVALID_OPCODE,
    LBA_OUT_OF_RANGE,
    SGL_LENGTH_INVALID,
    SGL_OFFSET_INVALID,
    SGL_TYPE_INVALID,
)
from mayastor.target._reservations import RESERVATION_CONFLICT, ReservationQueue
from mayastor.target._subsystem import NSID

log = logging.getLogger(__name__)

_IO_SQE: Final = struct.Struct("<BxHI16xQI3xBIII12x")
"""The fields of an I/O SQE: opcode, CID, NSID, SGL address, length and identifier,
CDW10-12."""
CQE: Final = struct.Struct("<IIHHHH")
"""A CQE: DW0, DW1, SQHD, SQID, CID, status field << 1."""
_RESP: Final = struct.Struct("<8sIIHHHH")
"""A whole CapsuleResp without header digest: its common header, then the CQE."""
C2H_HEADER: Final = struct.Struct("<BBBBIH2xII4x")
"""A C2HData header without digests or padding: type, flags, HLEN, PDO, PLEN, CID,
DATAO, DATAL."""
_C2H_PACK: Final = C2H_HEADER.pack
_C2H_SIZE: Final = C2H_HEADER.size
_C2H_TYPE: Final = 0x07
_C2H_LAST: Final = int(PduFlags.LAST_PDU)
_C2H_LAST_SUCCESS: Final = int(PduFlags.LAST_PDU | PduFlags.SUCCESS)
TRANSPORT_SGL: Final = 0x5A
"""SGL identifier of a Transport Data Block (data by R2T/H2CData or C2HData)."""
IN_CAPSULE_SGL: Final = 0x01
"""SGL identifier of a Data Block with the Offset subtype (in-capsule data)."""
_FUA: Final = 1 << 30
_DEAC: Final = 1 << 25
_DSM_DEALLOCATE: Final = 1 << 2
_DSM_MAX_RANGES: Final = 256
_READ_OPCODE: Final = int(IoOpcode.READ)
_WRITE_OPCODE: Final = int(IoOpcode.WRITE)
_DSM_OPCODE: Final = int(IoOpcode.DATASET_MANAGEMENT)
_FLUSH_OPCODE: Final = int(IoOpcode.FLUSH)
_NSID: Final = NSID
_NSID_ALL: Final = NSID_ALL

_INVALID_OPCODE: Final = INVALID_OPCODE.field
_INVALID_FIELD: Final = INVALID_FIELD.field
_INVALID_NAMESPACE: Final = INVALID_NAMESPACE.field
_LBA_OUT_OF_RANGE: Final = LBA_OUT_OF_RANGE.field
_SGL_LENGTH_INVALID: Final = SGL_LENGTH_INVALID.field
_SGL_TYPE_INVALID: Final = SGL_TYPE_INVALID.field
_SGL_OFFSET_INVALID: Final = SGL_OFFSET_INVALID.field
_INTERNAL_ERROR: Final = INTERNAL_ERROR.field
_RESERVATION_CONFLICT: Final = RESERVATION_CONFLICT.field
_CID_CONFLICT: Final = COMMAND_ID_CONFLICT.field


class IoCommands(ReservationQueue):
    """The I/O commands and the answers of a queue pair (a mixin of `QueuePair`; see
    the module docstring). The attributes below are the queue pair's."""

    qid: int
    controller: Controller | None
    when_idle: Callable[[], None] | None
    _device: BlockDevice | None
    _device_io: int
    _io_handlers: dict[int, Callable[..., None]]
    _queue_size: int
    _sq_flow_control: bool
    _sqhd: int
    _resp_header: bytes | None
    _plain_c2h: bool
    _writer: PduWriter
    _in_capsule_limit: int
    _on_read: IoDone
    _on_write: IoDone
    _lent: dict[int, memoryview]
    _inflight: dict[int, int]
    _send: Callable[[Parts], None]
    _spawn: Callable[[Coroutine[Any, Any, None]], None]
    _max_transfer: int
    _resv: ReservationCell
    _host: uuid_mod.UUID

    def _start_transfer(
        self, cid: int, length: int, on_data: Callable[[Buffer], None], pooled: bool = False
    ) -> None:
        raise NotImplementedError

    def _give_back(self, cid: int) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ completions

    def _respond(self, cid: int, status: int, dw0: int = 0, dw1: int = 0) -> None:
        self._send(self._capsule_resp(cid, status, dw0, dw1))

    def _capsule_resp(self, cid: int, status: int, dw0: int = 0, dw1: int = 0) -> Parts:
        header = self._resp_header
        if header is not None:
            return [_RESP.pack(header, dw0, dw1, self._sqhd, self.qid, cid, status << 1)]
        cqe = CQE.pack(dw0, dw1, self._sqhd, self.qid, cid, status << 1)
        return self._writer.encode_capsule_resp(cqe)

    def _complete(
        self, cid: int, status: int = 0, dw0: int = 0, dw1: int = 0, *, lba: int = 0, nsid: int = 0
    ) -> None:
        """Complete a command: it leaves the in-flight set; an error goes to the error log."""
        self._inflight.pop(cid, None)
        if self._lent:
            self._give_back(cid)
        self._respond(cid, status, dw0, dw1)
        if status:
            ctrl = self.controller
            if ctrl is not None:
                ctrl.record_error(self.qid, cid, status, lba=lba, nsid=nsid)

    # ------------------------------------------------------------------ I/O commands

    def _io_sqe(self, sqe: Buffer, data: Buffer) -> None:
        opcode, cid, nsid, sgl_addr, sgl_len, sgl_id, cdw10, cdw11, cdw12 = _IO_SQE.unpack(sqe)
        self._io_command(opcode, cid, nsid, sgl_addr, sgl_len, sgl_id, cdw10 | cdw11 << 32,
                         cdw12, data)  # fmt: skip

    def _io_command(
        self,
        opcode: int,
        cid: int,
        nsid: int,
        sgl_addr: int,
        sgl_len: int,
        sgl_id: int,
        cdws: int,
        cdw12: int,
        data: Buffer,
    ) -> None:
        """An I/O command's SQE fields (CDW10 | CDW11 << 32 as `cdws`) and capsule data."""
        if self._sq_flow_control:
            self._sqhd = (self._sqhd + 1) % self._queue_size
        inflight = self._inflight
        if cid in inflight:
            self._respond(cid, _CID_CONFLICT)
            return
        if len(inflight) >= self._queue_size:
            raise PduError(
                FatalErrorStatus.PDU_SEQUENCE_ERROR,
                f"more than {self._queue_size} commands outstanding on queue {self.qid}",
            )
        handler = self._io_handlers.get(opcode)
        if handler is None:
            self._complete(cid, _INVALID_OPCODE, nsid=nsid)
            return
        if nsid != _NSID and not (opcode == _FLUSH_OPCODE and nsid == _NSID_ALL):
            self._complete(cid, _INVALID_NAMESPACE, nsid=nsid)
            return
        resv = self._resv
        if resv.rtype and not resv.allows(self._host, opcode):
            self._complete(cid, _RESERVATION_CONFLICT, lba=cdws, nsid=nsid)
            return
        if opcode == _READ_OPCODE:
            # The read path inline: it is most of the traffic.
            device = self._device
            assert device is not None
            nblocks = (cdw12 & 0xFFFF) + 1
            length = nblocks * device.block_size
            if (
                sgl_id == TRANSPORT_SGL
                and not data
                and sgl_len == length
                and length <= self._max_transfer
                and cdws + nblocks <= device.num_blocks
            ):
                inflight[cid] = cdws
                self._device_io += 1
                device.submit_read(cdws, nblocks, self._on_read, cid)
                return
        elif opcode == _WRITE_OPCODE and sgl_id == IN_CAPSULE_SGL:
            # So is an in-capsule write to the write cache.
            device = self._device
            assert device is not None
            nblocks = (cdw12 & 0xFFFF) + 1
            length = nblocks * device.block_size
            ctrl = self.controller
            if (
                sgl_len == length
                and len(data) == length
                and not sgl_addr
                and length <= self._in_capsule_limit
                and length <= self._max_transfer
                and cdws + nblocks <= device.num_blocks
                and not cdw12 & _FUA
                and (ctrl is None or ctrl.write_cache)
            ):
                inflight[cid] = cdws
                self._device_io += 1
                device.submit_write(cdws, data, self._on_write, cid)
                return
        handler(cid, sgl_addr, sgl_len, sgl_id, cdws, cdw12, data)

    def _check_range(self, cid: int, slba: int, nblocks: int, device: BlockDevice) -> bool:
        if slba + nblocks > device.num_blocks:
            self._complete(cid, _LBA_OUT_OF_RANGE, lba=slba, nsid=NSID)
            return False
        return True

    def _read(
        self, cid: int, addr: int, sgl_len: int, sgl_id: int, slba: int, cdw12: int, data: Buffer
    ) -> None:
        device = self._device
        assert device is not None
        nblocks = (cdw12 & 0xFFFF) + 1
        length = nblocks * device.block_size
        if sgl_id != TRANSPORT_SGL or data:
            self._complete(cid, _SGL_TYPE_INVALID, nsid=NSID)
        elif sgl_len != length:
            self._complete(cid, _SGL_LENGTH_INVALID, nsid=NSID)
        elif length > self._max_transfer:
            self._complete(cid, _INVALID_FIELD, nsid=NSID)
        elif self._check_range(cid, slba, nblocks, device):
            self._inflight[cid] = slba
            self._device_io += 1
            device.submit_read(slba, nblocks, self._on_read, cid)

    def _device_io_ended(self) -> None:
        self._device_io -= 1
        if not self._device_io and self.when_idle is not None:
            self.when_idle()

    def _read_done(self, cid: int, data: Buffer | None, error: DeviceError | None) -> None:
        self._device_io -= 1
        if not self._device_io and self.when_idle is not None:
            self.when_idle()
        if error is not None:
            self._complete(cid, error.status.field, lba=self._inflight.get(cid, 0), nsid=NSID)
            return
        assert data is not None
        del self._inflight[cid]
        if self._sq_flow_control:
            parts = self._c2h_data(cid, data, _C2H_LAST)
            parts += self._capsule_resp(cid, 0)
            self._send(parts)
        elif self._plain_c2h:
            size = data.nbytes if type(data) is memoryview else len(data)
            self._send([_C2H_PACK(_C2H_TYPE, _C2H_LAST_SUCCESS, _C2H_SIZE, _C2H_SIZE,
                                  _C2H_SIZE + size, cid, 0, size), data])  # fmt: skip
        else:
            self._send(self._c2h_data(cid, data, _C2H_LAST_SUCCESS))

    def _c2h_data(self, cid: int, data: Buffer, flags: int) -> Parts:
        """The one C2HData PDU of a read: `flags` is LAST_PDU, maybe with SUCCESS."""
        if self._plain_c2h:
            size = data.nbytes if type(data) is memoryview else len(data)
            return [
                _C2H_PACK(_C2H_TYPE, flags, _C2H_SIZE, _C2H_SIZE, _C2H_SIZE + size, cid, 0, size),
                data,
            ]
        return self._writer.encode_c2h_data(cid, 0, data, success=flags == _C2H_LAST_SUCCESS)

    def _write(
        self, cid: int, addr: int, sgl_len: int, sgl_id: int, slba: int, cdw12: int, data: Buffer
    ) -> None:
        device = self._device
        assert device is not None
        nblocks = (cdw12 & 0xFFFF) + 1
        length = nblocks * device.block_size
        fua = bool(cdw12 & _FUA)
        if sgl_len != length:
            self._complete(cid, _SGL_LENGTH_INVALID, nsid=NSID)
        elif length > self._max_transfer:
            self._complete(cid, _INVALID_FIELD, nsid=NSID)
        elif not self._check_range(cid, slba, nblocks, device):
            pass
        elif sgl_id == IN_CAPSULE_SGL:
            if addr:
                self._complete(cid, _SGL_OFFSET_INVALID, nsid=NSID)
            elif len(data) != length:
                self._complete(cid, _SGL_LENGTH_INVALID, nsid=NSID)
            elif length > self._in_capsule_limit:
                raise PduError(
                    FatalErrorStatus.DATA_LIMIT_EXCEEDED,
                    f"{length} bytes of in-capsule data, limit {self._in_capsule_limit}",
                )
            else:
                self._inflight[cid] = slba
                self._start_write(cid, device, slba, data, fua)
        elif sgl_id == TRANSPORT_SGL and not data:
            self._inflight[cid] = slba
            self._start_transfer(
                cid,
                length,
                lambda payload: self._start_write(cid, device, slba, payload, fua),
                pooled=True,
            )
        else:
            self._complete(cid, _SGL_TYPE_INVALID, nsid=NSID)

    def _start_write(
        self, cid: int, device: BlockDevice, slba: int, data: Buffer, fua: bool
    ) -> None:
        resv = self._resv
        if resv.rtype and not resv.allows(self._host, _WRITE_OPCODE):
            # A reservation taken while the data was on its way.
            self._complete(cid, _RESERVATION_CONFLICT, lba=slba, nsid=NSID)
            return
        ctrl = self.controller
        if fua or (ctrl is not None and not ctrl.write_cache):
            self._spawn(self._run_write(cid, device, slba, data, fua))
            return
        self._device_io += 1
        device.submit_write(slba, data, self._on_write, cid)

    def _write_done(self, cid: int, data: Buffer | None, error: DeviceError | None) -> None:
        self._device_io -= 1
        if not self._device_io and self.when_idle is not None:
            self.when_idle()
        if error is not None:
            self._complete(cid, error.status.field, lba=self._inflight.get(cid, 0), nsid=NSID)
            return
        self._inflight.pop(cid, None)
        if self._lent:
            self._give_back(cid)
        header = self._resp_header
        if header is not None:
            self._send([_RESP.pack(header, 0, 0, self._sqhd, self.qid, cid, 0)])
        else:
            self._respond(cid, 0)

    async def _run_write(
        self, cid: int, device: BlockDevice, slba: int, data: Buffer, fua: bool
    ) -> None:
        try:
            await device.write(slba, data)
            ctrl = self.controller
            if fua or (ctrl is not None and not ctrl.write_cache):
                await device.flush()
        except DeviceError as exc:
            self._complete(cid, exc.status.field, lba=slba, nsid=NSID)
            return
        except Exception:
            log.exception("write of %d bytes at %d on %s failed", len(data), slba, device.name)
            self._complete(cid, _INTERNAL_ERROR, lba=slba, nsid=NSID)
            return
        self._complete(cid, 0)

    def _flush(
        self, cid: int, addr: int, sgl_len: int, sgl_id: int, slba: int, cdw12: int, data: Buffer
    ) -> None:
        device = self._device
        assert device is not None
        self._inflight[cid] = 0
        self._spawn(self._run(cid, device.flush()))

    def _write_zeroes(
        self, cid: int, addr: int, sgl_len: int, sgl_id: int, slba: int, cdw12: int, data: Buffer
    ) -> None:
        device = self._device
        assert device is not None
        nblocks = (cdw12 & 0xFFFF) + 1
        if data:
            self._complete(cid, _SGL_LENGTH_INVALID, nsid=NSID)
        elif self._check_range(cid, slba, nblocks, device):
            self._inflight[cid] = 0
            self._spawn(
                self._run_write_zeroes(cid, device, slba, nblocks, cdw12 & _DEAC, cdw12 & _FUA)
            )

    async def _run_write_zeroes(
        self, cid: int, device: BlockDevice, slba: int, nblocks: int, deac: int, fua: int
    ) -> None:
        if deac:
            await self._run(cid, device.unmap(slba, nblocks), slba, flush=bool(fua))
        else:
            await self._run(cid, device.write_zeroes(slba, nblocks), slba, flush=bool(fua))

    def _dataset_management(
        self, cid: int, addr: int, sgl_len: int, sgl_id: int, cdws: int, cdw12: int, data: Buffer
    ) -> None:
        # `cdws` is CDW10 | CDW11 << 32: NR in bits 7:0, the attributes from bit 32. The
        # buffer may be longer than NR + 1 ranges (Linux always sends room for 256).
        count = (cdws & 0xFF) + 1
        deallocate = bool((cdws >> 32) & _DSM_DEALLOCATE)
        self._host_data(
            cid,
            (sgl_id, addr, sgl_len),
            data,
            (count * DSM_RANGE_SIZE, _DSM_MAX_RANGES * DSM_RANGE_SIZE),
            lambda payload: self._deallocate(cid, payload, count, deallocate),
        )

    def _deallocate(self, cid: int, payload: Buffer, count: int, deallocate: bool) -> None:
        device = self._device
        assert device is not None
        self._inflight[cid] = 0
        resv = self._resv
        if resv.rtype and not resv.allows(self._host, _DSM_OPCODE):
            self._complete(cid, _RESERVATION_CONFLICT, nsid=NSID)
            return
        if not deallocate:
            self._complete(cid, 0)
            return
        ranges = [r for r in decode_dsm_ranges(payload, count) if r.nblocks]
        for r in ranges:
            if r.slba + r.nblocks > device.num_blocks:
                self._complete(cid, _LBA_OUT_OF_RANGE, lba=r.slba, nsid=NSID)
                return
        self._spawn(self._run_unmaps(cid, device, [(r.slba, r.nblocks) for r in ranges]))

    async def _run_unmaps(
        self, cid: int, device: BlockDevice, ranges: list[tuple[int, int]]
    ) -> None:
        for slba, nblocks in ranges:
            try:
                await device.unmap(slba, nblocks)
            except DeviceError as exc:
                self._complete(cid, exc.status.field, lba=slba, nsid=NSID)
                return
            except Exception:
                log.exception("unmap of %d blocks at %d on %s failed", nblocks, slba, device.name)
                self._complete(cid, _INTERNAL_ERROR, lba=slba, nsid=NSID)
                return
        self._complete(cid, 0)

    async def _run(
        self, cid: int, work: Coroutine[Any, Any, None], lba: int = 0, *, flush: bool = False
    ) -> None:
        device = self._device
        assert device is not None
        try:
            await work
            if flush:
                await device.flush()
        except DeviceError as exc:
            self._complete(cid, exc.status.field, lba=lba, nsid=NSID)
            return
        except Exception:
            log.exception("I/O command %d on %s failed", cid, device.name)
            self._complete(cid, _INTERNAL_ERROR, lba=lba, nsid=NSID)
            return
        self._complete(cid, 0)
