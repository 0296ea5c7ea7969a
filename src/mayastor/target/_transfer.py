"""The input side of a queue pair: bytes in, PDUs decoded, host data fetched by R2T.

`DataTransfer` is the part of `QueuePair` (a mixin, as `IoCommands` is; the
attributes it names are the queue pair's) that takes the host's bytes. On an I/O
queue without digests, I/O capsules and H2CData PDUs are decoded in place from each
receive with the codec's checks for the shapes hosts send (anything else goes through
the codec, `PduReader`); many PDUs of one receive are handled in one pass, and a PDU
split across receives is finished through the codec before decoding goes on in the
chunk. The part of a large H2CData payload not received yet becomes the `sink`: the
I/O shell receives straight into the command's page-aligned buffer and reports with
`sunk`, so write data is copied once, by the kernel.

Write data that does not fit in the capsule is asked for with R2Ts of at most
MAXH2CDATA bytes, never more outstanding for one command than the host's MAXR2T
allows; an H2CData PDU outside its R2T window, or with an unknown TTAG, is a fatal
transport error.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, Final

from mayastor.bdev import Buffer
from mayastor.bdev._buffers import aligned_buffer
from mayastor.nvmf.pdu import (
    CapsuleCmd,
    DataDigestError,
    FatalErrorStatus,
    H2CData,
    Parts,
    PduError,
    PduFlags,
    PduReader,
)
from mayastor.target._config import TargetConfig
from mayastor.target._io_commands import IN_CAPSULE_SGL, TRANSPORT_SGL, IoCommands
from mayastor.target._owed_writes import OwedWrites
from mayastor.target._queue_state import QueueEvent, QueueState
from mayastor.target._reply import (
    SGL_LENGTH_INVALID,
    SGL_OFFSET_INVALID,
    SGL_TYPE_INVALID,
    TRANSIENT_TRANSPORT_ERROR,
)
from mayastor.target._subsystem import NSID

_CAPSULE: Final = struct.Struct("<BBBBIBxHI16xQI3xBIII")
"""A CapsuleCmd's common header (type, flags, HLEN, PDO, PLEN), then the I/O SQE fields."""
_H2C: Final = struct.Struct("<BBBBIHHII")
"""An H2CData header without digests: type, flags, HLEN, PDO, PLEN, CCCID, TTAG, DATAO,
DATAL."""
_CAPSULE_TYPE: Final = 0x04
_CAPSULE_HLEN: Final = 72
_H2C_TYPE: Final = 0x06
_H2C_HLEN: Final = 24
_H2C_LAST: Final = int(PduFlags.LAST_PDU)
_EMPTY: Final = memoryview(b"")
_FABRICS: Final = 0x7F
_CLOSED: Final[QueueState] = QueueState.CLOSED
_IO: Final[QueueState] = QueueState.IO
_FEI_TTAG: Final = 10
"""Byte offset of TTAG in an H2CData header, for a termination's FEI."""
_SGL_LENGTH_INVALID: Final = SGL_LENGTH_INVALID.field
_SGL_TYPE_INVALID: Final = SGL_TYPE_INVALID.field
_SGL_OFFSET_INVALID: Final = SGL_OFFSET_INVALID.field
_TRANSIENT: Final = TRANSIENT_TRANSPORT_ERROR.field
SPARE_BUFFER_BYTES: Final = 512 * 1024
"""Write-data buffers a queue pair keeps for reuse once their commands ended, in bytes
(at most: one busy queue's large writes then seldom allocate and zero-fill one)."""


class Transfer:
    """Host data a command is waiting for, asked for with R2Ts.

    The data goes into one buffer, unless a single H2CData PDU carries all of it, whose
    payload is then used as it is.
    """

    __slots__ = (
        "buffer",
        "cid",
        "corrupt",
        "length",
        "offered",
        "on_data",
        "pooled",
        "received",
        "whole",
    )

    def __init__(
        self, cid: int, length: int, on_data: Callable[[Buffer], None], pooled: bool = False
    ) -> None:
        self.cid = cid
        self.pooled = pooled  # the buffer goes back to the queue's spares when the command ends
        self.length = length
        self.on_data = on_data
        self.offered = 0  # bytes asked for by R2Ts so far
        self.received = 0
        self.buffer: memoryview | None = None  # page-aligned: O_DIRECT takes it as it is
        self.whole: Buffer | None = None
        self.corrupt = False  # a data digest failed: the command ends in an error


class Window:
    """One outstanding R2T: where its data goes and how much has come."""

    __slots__ = ("end", "next", "transfer")

    def __init__(self, transfer: Transfer, start: int, end: int) -> None:
        self.transfer = transfer
        self.next = start
        self.end = end


class DataTransfer(IoCommands):
    """The input side of a queue pair (a mixin of `QueuePair`; see the module
    docstring). The attributes below are the queue pair's."""

    state: QueueState
    _config: TargetConfig
    _reader: PduReader
    _handlers: dict[type, Callable[[Any], None]]
    _now: float
    _no_digests: bool
    _owed: OwedWrites[Transfer]
    _windows: dict[int, Window]
    _next_ttag: int
    _max_r2t: int
    _sink: memoryview | None
    _sink_window: Window | None
    _sink_ttag: int
    _sink_size: int
    _batch: Parts | None
    _spare: dict[int, list[memoryview]]
    _spare_bytes: int

    def _step(self, event: QueueEvent, error: PduError | None = None) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ input

    def receive(self, data: bytes, now: float) -> None:
        """Take bytes from the host and act on every whole PDU in them.

        On an I/O queue without digests, I/O capsules and H2CData PDUs are decoded
        straight from `data` (the codec's checks, for the shapes a host sends; any
        other PDU goes through the codec), and the part of a large H2CData payload
        still to come becomes the `sink`. A PDU split across receives is finished
        through the codec, and decoding goes on in place after it.

        Args:
            data: the next bytes of the stream.
            now: the time, in seconds (keep-alive).
        """
        if self.state is _CLOSED:
            return
        # What is sent meanwhile (the answers of commands the device completes inline)
        # is collected and handed to the link in one call at the end.
        send = self._send
        batch: Parts = []
        self._send = batch.extend
        self._batch = batch
        try:
            self._receive(data, now)
        finally:
            self._send = send
            self._batch = None
            if batch:
                send(batch)

    def _receive(self, data: bytes, now: float) -> None:
        ctrl = self.controller
        if ctrl is not None:
            ctrl.keep_alive.traffic = True
        self._now = now
        start = 0
        if self._sink is not None:
            start = self._fill_sink(data)
            if self._sink is not None or start == len(data):
                return
        reader = self._reader
        if self.state is _IO and self._no_digests:
            while reader.buffered and start < len(data):
                need = reader.needed
                if not need:
                    break
                end = min(start + need, len(data))
                reader.feed(data[start:end])
                start = end
                if not self._drain_reader():
                    return
            if start == len(data):
                return
            if not reader.buffered and self.state is _IO:
                start = self._take_io(data, start)
                if start == len(data) or self.state is _CLOSED:
                    return
        reader.feed(data, start)
        self._drain_reader()

    @property
    def sink(self) -> memoryview | None:
        """Where the next bytes of the stream belong (the rest of an H2CData payload
        being received), or None: the I/O shell may receive straight into it and
        report with `sunk`, instead of passing the bytes to `receive`."""
        return self._sink

    def sunk(self, count: int, now: float) -> None:
        """`count` bytes were received into the start of `sink`."""
        sink = self._sink
        if sink is None or self.state is _CLOSED:
            return
        self._now = now
        ctrl = self.controller
        if ctrl is not None:
            ctrl.keep_alive.traffic = True
        try:
            self._sunk(sink, count)
        except PduError as err:
            self._step(QueueEvent.PROTOCOL_ERROR, err)

    def _fill_sink(self, data: bytes) -> int:
        """Copy the start of `data` into the sink; returns the bytes taken."""
        sink = self._sink
        assert sink is not None
        count = min(len(sink), len(data))
        sink[:count] = memoryview(data)[:count]
        try:
            self._sunk(sink, count)
        except PduError as err:
            self._step(QueueEvent.PROTOCOL_ERROR, err)
            return len(data)
        return count

    def _sunk(self, sink: memoryview, count: int) -> None:
        self._owed.arrived(self._now)
        if count < len(sink):
            self._sink = sink[count:]
            return
        window = self._sink_window
        assert window is not None
        self._sink = self._sink_window = None
        self._h2c_landed(window, self._sink_ttag, self._sink_size)

    def _take_io(self, data: bytes, pos: int) -> int:
        """Act on the I/O capsules and H2CData PDUs at `data[pos:]`, decoded in place.

        Stops at anything else, at a PDU not wholly in `data` (but an H2CData whose
        header is in: its payload goes to the sink) and when the queue closes.

        Returns:
            the offset of the first byte not consumed.
        """
        end = len(data)
        view = memoryview(data)
        max_data = self._reader.max_data_length
        unpack_capsule = _CAPSULE.unpack_from
        try:
            while end - pos >= _H2C_HLEN and self.state is _IO:
                ptype = data[pos]
                if ptype == _CAPSULE_TYPE:
                    if end - pos < _CAPSULE_HLEN:
                        break
                    _, flags, hlen, pdo, plen, opcode, cid, nsid, addr, sgl_len, sgl_id, cdw10, \
                        cdw11, cdw12 = unpack_capsule(data, pos)  # fmt: skip
                    if flags or hlen != _CAPSULE_HLEN or opcode == _FABRICS:
                        break
                    if plen == _CAPSULE_HLEN and not pdo:
                        payload = _EMPTY
                    elif pdo == _CAPSULE_HLEN and _CAPSULE_HLEN < plen <= _CAPSULE_HLEN + max_data:
                        if end - pos < plen:
                            break
                        payload = view[pos + _CAPSULE_HLEN : pos + plen]
                    else:
                        break
                    pos += plen
                    self._io_command(opcode, cid, nsid, addr, sgl_len, sgl_id,
                                     cdw10 | cdw11 << 32, cdw12, payload)  # fmt: skip
                elif ptype == _H2C_TYPE:
                    _, flags, hlen, pdo, plen, cccid, ttag, offset, size = _H2C.unpack_from(
                        data, pos
                    )
                    if (
                        flags & ~_H2C_LAST
                        or hlen != _H2C_HLEN
                        or pdo != _H2C_HLEN
                        or plen != _H2C_HLEN + size
                        or not 0 < size <= max_data
                    ):
                        break
                    pos += _H2C_HLEN
                    if end - pos >= size:
                        self._h2c(cccid, ttag, offset, view[pos : pos + size], False)
                        pos += size
                    else:
                        self._h2c_sink(cccid, ttag, offset, size, view[pos:])
                        return end
                else:
                    break
        except PduError as err:
            self._step(QueueEvent.PROTOCOL_ERROR, err)
            return end
        return pos

    def _drain_reader(self) -> bool:
        """Act on every whole PDU the codec holds; False once the queue closed."""
        reader = self._reader
        handlers = self._handlers
        while True:
            try:
                pdu = reader.next_pdu()
                if pdu is None:
                    return True
                if type(pdu) is CapsuleCmd and self.state is _IO:
                    sqe = pdu.sqe
                    if sqe[0] != _FABRICS:
                        self._io_sqe(sqe, pdu.data)
                        continue
                handlers[type(pdu)](pdu)
            except PduError as err:
                self._step(QueueEvent.PROTOCOL_ERROR, err)
                return False
            except DataDigestError as digest_error:
                self._data_digest_error(digest_error)
            if self.state is _CLOSED:
                return False

    # ------------------------------------------------------------------ host data

    def _host_data(
        self,
        cid: int,
        sgl: tuple[int, int, int],
        data: Buffer,
        need: tuple[int, int],
        then: Callable[[Buffer], None],
    ) -> None:
        """Get a command's host data, in the capsule or by R2T.

        Args:
            cid: the command.
            sgl: its SGL descriptor's identifier, address and length.
            data: the capsule's data.
            need: the least and the most bytes the SGL may describe (all of them are
                fetched).
            then: called with the data once it is all there.
        """
        sgl_id, address, sgl_len = sgl
        if not need[0] <= sgl_len <= need[1]:
            self._complete(cid, _SGL_LENGTH_INVALID)
        elif sgl_id == IN_CAPSULE_SGL:
            if address:
                self._complete(cid, _SGL_OFFSET_INVALID)
            elif len(data) != sgl_len:
                self._complete(cid, _SGL_LENGTH_INVALID)
            else:
                then(data)
        elif sgl_id == TRANSPORT_SGL and not data:
            self._inflight[cid] = 0
            self._start_transfer(cid, sgl_len, then)
        else:
            self._complete(cid, _SGL_TYPE_INVALID)

    def _start_transfer(
        self, cid: int, length: int, on_data: Callable[[Buffer], None], pooled: bool = False
    ) -> None:
        self._owed.begin(Transfer(cid, length, on_data, pooled), self._now)

    def _take_buffer(self, length: int) -> memoryview:
        """A page-aligned buffer for `length` bytes of host data: a spare one when there
        is one (not zero-filled: the host's data overwrites all of it before use)."""
        spares = self._spare.get(length)
        if spares:
            self._spare_bytes -= length
            return spares.pop()
        return aligned_buffer(length)[0]

    def _give_back(self, cid: int) -> None:
        """Command `cid` ended: the buffer lent for its data (if any) becomes a spare,
        while the spares stay within `SPARE_BUFFER_BYTES`."""
        buffer = self._lent.pop(cid, None)
        if buffer is not None:
            self._spare_buffer(buffer)

    def _spare_buffer(self, buffer: memoryview) -> None:
        length = len(buffer)
        if self._spare_bytes + length <= SPARE_BUFFER_BYTES:
            self._spare.setdefault(length, []).append(buffer)
            self._spare_bytes += length

    def _send_r2ts(self, transfer: Transfer) -> None:
        for _ in range(self._max_r2t):
            if not self._ask_for_data(transfer):
                break

    def _ask_for_data(self, transfer: Transfer) -> bool:
        """Send the next R2T of `transfer`; False when all of it has been asked for."""
        start = transfer.offered
        if start >= transfer.length:
            return False
        size = min(transfer.length - start, self._config.max_h2c_data)
        ttag = self._next_ttag
        while ttag in self._windows:
            ttag = (ttag + 1) & 0xFFFF
        self._next_ttag = (ttag + 1) & 0xFFFF
        self._windows[ttag] = Window(transfer, start, start + size)
        transfer.offered = start + size
        self._send(self._writer.encode_r2t(transfer.cid, ttag, start, size))
        return True

    def _on_h2c_data(self, pdu: H2CData, corrupt: bool = False) -> None:
        if self.state is not QueueState.IO:
            self._step(QueueEvent.DATA)
        self._h2c(pdu.cccid, pdu.ttag, pdu.offset, pdu.data, corrupt)

    def _h2c_window(self, cccid: int, ttag: int, offset: int, size: int) -> Window:
        """The R2T window an H2CData PDU's data belongs to, checked."""
        window = self._windows.get(ttag)
        if window is None or window.transfer.cid != cccid:
            raise PduError(
                FatalErrorStatus.INVALID_HEADER_FIELD,
                f"H2CData for CID {cccid} with unknown TTAG {ttag}",
                fei=_FEI_TTAG,
            )
        self._owed.arrived(self._now)
        if offset != window.next or offset + size > window.end:
            raise PduError(
                FatalErrorStatus.DATA_OUT_OF_RANGE,
                f"H2CData bytes {offset}..{offset + size} outside the R2T window "
                f"{window.next}..{window.end}",
            )
        return window

    def _h2c(self, cccid: int, ttag: int, offset: int, payload: Buffer, corrupt: bool) -> None:
        """An H2CData PDU with all its data."""
        size = len(payload)
        window = self._h2c_window(cccid, ttag, offset, size)
        transfer = window.transfer
        transfer.corrupt |= corrupt
        if size == transfer.length:
            transfer.whole = payload
        else:
            buffer = transfer.buffer
            if buffer is None:
                buffer = transfer.buffer = self._take_buffer(transfer.length)
            buffer[offset : offset + size] = payload
        self._h2c_landed(window, ttag, size)

    def _h2c_sink(self, cccid: int, ttag: int, offset: int, size: int, head: memoryview) -> None:
        """An H2CData PDU whose data has come up to `head`: the rest becomes the sink."""
        window = self._h2c_window(cccid, ttag, offset, size)
        transfer = window.transfer
        buffer = transfer.buffer
        if buffer is None:
            buffer = transfer.buffer = self._take_buffer(transfer.length)
        have = len(head)
        buffer[offset : offset + have] = head
        self._sink = buffer[offset + have : offset + size]
        self._sink_window = window
        self._sink_ttag = ttag
        self._sink_size = size

    def _h2c_landed(self, window: Window, ttag: int, size: int) -> None:
        """`size` bytes of data are in their place for `window`."""
        transfer = window.transfer
        window.next += size
        transfer.received += size
        if window.next == window.end:
            del self._windows[ttag]
            self._ask_for_data(transfer)
        if transfer.received == transfer.length:
            self._owed.received(transfer.length)
            buffer = transfer.buffer
            if transfer.corrupt:
                self._complete(transfer.cid, _TRANSIENT, nsid=NSID)
                if buffer is not None and transfer.pooled:
                    self._spare_buffer(buffer)
            elif transfer.whole is not None:
                transfer.on_data(transfer.whole)
            else:
                assert buffer is not None
                if transfer.pooled:
                    self._lent[transfer.cid] = buffer
                transfer.on_data(buffer)

    def _data_digest_error(self, err: DataDigestError) -> None:
        pdu = err.pdu
        if isinstance(pdu, H2CData):
            self._on_h2c_data(pdu, corrupt=True)
        elif isinstance(pdu, CapsuleCmd):
            cid = int.from_bytes(pdu.sqe[2:4], "little")
            self._complete(cid, _TRANSIENT)
