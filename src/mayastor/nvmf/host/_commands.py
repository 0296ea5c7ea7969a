"""What a host asks of a live controller: admin commands, NVM I/O, their errors.

`ControllerCommands` is the command half of `Controller` (a mixin): each command goes
to a queue the controller's session hands out (`_admin_queue`, `_admit`, the I/O queues
round robin) and a failed completion becomes the `DeviceError` its status names,
located on the range of the I/O. Bringing the controller up, keeping it alive and
reconnecting are `_controller`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from mayastor.errors import DeviceError, InvalidArgument, Unavailable
from mayastor.nvmf.host._connection import CommandDone, QueueConnection
from mayastor.nvmf.pdu import Buffer
from mayastor.nvmf.spec import (
    NO_DATA,
    AdminOpcode,
    Cns,
    Command,
    DsmRange,
    GetLogPage,
    Identify,
    IdentifyNamespace,
    IoOpcode,
    NamespaceIdDescriptor,
    NvmeStatus,
    SpecError,
    decode_namespace_id_descriptors,
    decode_namespace_list,
    encode_dsm_ranges,
)

_T = TypeVar("_T")

MAX_BLOCKS_PER_COMMAND = 0x10000
"""NLB is 16 bits, 0-based."""
MAX_DSM_RANGES = 256

_READ = int(IoOpcode.READ)
_WRITE = int(IoOpcode.WRITE)
_FLUSH = int(IoOpcode.FLUSH)
_WRITE_ZEROES = int(IoOpcode.WRITE_ZEROES)
_DSM = int(IoOpcode.DATASET_MANAGEMENT)
_U32 = 0xFFFF_FFFF
_DEAC = 1 << 25
_DSM_DEALLOCATE = 1 << 2


class ControllerCommands:
    """Admin and I/O commands as `Controller` methods (a mixin: the queues and the
    waiting for a live path are the controller's)."""

    name: str
    _io: list[QueueConnection]
    _rr: int

    async def _admit(self) -> list[QueueConnection]:
        """The live I/O queues, after waiting for a lost path as the state says."""
        raise NotImplementedError

    async def _admin_queue(self) -> QueueConnection:
        """The live admin queue, after waiting for a lost path as the state says."""
        raise NotImplementedError

    def _decoded(self, decode: Callable[[Buffer], _T], data: Buffer, what: str) -> _T:
        """`decode(data)`, or `Unavailable` when the controller sent malformed data."""
        try:
            return decode(data)
        except SpecError as exc:
            raise Unavailable(f"{self.name}: the controller sent malformed {what}: {exc}") from exc

    def _check(self, status: int, what: str) -> None:
        if status:
            nvme_status = NvmeStatus.from_field(status)
            raise DeviceError.from_status(
                nvme_status, f"{self.name}: {what} failed: {nvme_status.describe()}"
            )

    # ------------------------------------------------------------------ admin commands

    async def admin(
        self, cmd: Command, *, data_out: Buffer | None = None, read_length: int = 0
    ) -> tuple[int, int, Buffer | None]:
        """Send an admin command (built with `mayastor.nvmf.spec`).

        Returns:
            (DW0, DW1, data) of the completion.

        Raises:
            DeviceError: the command failed (the subclass its status names).
            PathLost, IoTimeout: as for I/O.
            FailedPrecondition: not connected.
        """
        admin = await self._admin_queue()
        status, dw0, dw1, data = await admin.execute_command(
            cmd, data_out=data_out, read_length=read_length
        )
        self._check(status, describe_command(cmd))
        return dw0, dw1, data

    async def identify_namespace(self, nsid: int) -> IdentifyNamespace:
        """Identify Namespace data of `nsid` (all zero for an inactive namespace).

        Raises:
            InvalidNamespace: `nsid` is beyond the controller's namespaces.
            Unavailable: the data does not decode.
            PathLost, IoTimeout, FailedPrecondition: as for `admin`.
        """
        _, _, data = await self.admin(
            Identify(Cns.NAMESPACE).to_command(0, nsid, NO_DATA), read_length=4096
        )
        assert data is not None
        return self._decoded(IdentifyNamespace.decode, data, f"Identify Namespace data of {nsid}")

    async def active_namespaces(self) -> list[int]:
        """The active namespace IDs (the first 1024)."""
        _, _, data = await self.admin(
            Identify(Cns.ACTIVE_NAMESPACES).to_command(0, 0, NO_DATA), read_length=4096
        )
        assert data is not None
        return self._decoded(decode_namespace_list, data, "active namespace list")

    async def namespace_id_descriptors(self, nsid: int) -> list[NamespaceIdDescriptor]:
        """The namespace identification descriptors of `nsid` (UUID, NGUID, EUI64)."""
        _, _, data = await self.admin(
            Identify(Cns.NAMESPACE_ID_DESCRIPTORS).to_command(0, nsid, NO_DATA), read_length=4096
        )
        assert data is not None
        return self._decoded(
            decode_namespace_id_descriptors, data, f"namespace descriptors of {nsid}"
        )

    async def get_log_page(self, lid: int, length: int, offset: int = 0, nsid: int = 0) -> Buffer:
        """`length` bytes (a multiple of 4) of log page `lid` from byte `offset`."""
        try:
            cmd = GetLogPage.for_bytes(lid, length, offset).to_command(0, nsid, NO_DATA)
        except SpecError as exc:
            raise InvalidArgument(f"{self.name}: {exc}") from exc
        _, _, data = await self.admin(cmd, read_length=length)
        assert data is not None
        return data

    # ------------------------------------------------------------------ NVM I/O

    async def read(self, nsid: int, slba: int, nblocks: int, length: int) -> Buffer:
        """Read `nblocks` blocks (`length` bytes, at most `max_transfer`) from `slba`.

        Raises:
            DeviceError: the status of a failed read (`LbaOutOfRange`, ...).
            PathLost: the path is gone (the read may not have happened).
            IoTimeout: no completion in time.
        """
        queues = self._io or await self._admit()
        self._rr += 1
        queue = queues[self._rr % len(queues)]
        try:
            status, _, _, data = await queue.execute(
                _READ, nsid, slba & _U32, slba >> 32, nblocks - 1, 0, None, length
            )
        except DeviceError as exc:
            _locate(exc, slba, nblocks)
            raise
        if status:
            raise self._io_error(status, "read", slba, nblocks)
        assert data is not None
        return data

    async def write(self, nsid: int, slba: int, nblocks: int, data: Buffer) -> None:
        """Write `nblocks` blocks of `data` (at most `max_transfer` bytes) at `slba`.

        Raises:
            DeviceError: the status of a failed write.
            PathLost: the path is gone (the write may or may not have happened).
            IoTimeout: no completion in time (the same).
        """
        queues = self._io or await self._admit()
        self._rr += 1
        queue = queues[self._rr % len(queues)]
        try:
            status, _, _, _ = await queue.execute(
                _WRITE, nsid, slba & _U32, slba >> 32, nblocks - 1, 0, data
            )
        except DeviceError as exc:
            _locate(exc, slba, nblocks)
            raise
        if status:
            raise self._io_error(status, "write", slba, nblocks)

    def submit_read(
        self, nsid: int, slba: int, nblocks: int, length: int, done: CommandDone, ctx: Any
    ) -> bool:
        """`read` by callback (`QueueConnection.submit`), when the path is up.

        Returns:
            False, with nothing sent, when the controller is not live (the caller
            then uses `read`, which waits for the path as the options say).
        """
        queues = self._io
        if not queues:
            return False
        self._rr += 1
        queues[self._rr % len(queues)].submit(
            _READ, nsid, slba & _U32, slba >> 32, nblocks - 1, None, length, done, ctx
        )
        return True

    def submit_write(
        self, nsid: int, slba: int, nblocks: int, data: Buffer, done: CommandDone, ctx: Any
    ) -> bool:
        """`write` by callback, when the path is up (see `submit_read`)."""
        queues = self._io
        if not queues:
            return False
        self._rr += 1
        queues[self._rr % len(queues)].submit(
            _WRITE, nsid, slba & _U32, slba >> 32, nblocks - 1, data, 0, done, ctx
        )
        return True

    def io_error(self, status: int, what: str, lba: int | None, nblocks: int | None) -> DeviceError:
        """The DeviceError a failed I/O command's status field names, with its range."""
        return self._io_error(status, what, lba, nblocks)

    async def flush(self, nsid: int) -> None:
        """Flush the namespace's volatile write cache."""
        await self._io_command("flush", _FLUSH, nsid)

    async def write_zeroes(
        self, nsid: int, slba: int, nblocks: int, *, deallocate: bool = False
    ) -> None:
        """Write Zeroes over at most 65536 blocks; `deallocate` sets DEAC."""
        if not 0 < nblocks <= MAX_BLOCKS_PER_COMMAND:
            raise InvalidArgument(f"{self.name}: Write Zeroes of {nblocks} blocks")
        await self._io_command(
            "write zeroes",
            _WRITE_ZEROES,
            nsid,
            slba & _U32,
            slba >> 32,
            (nblocks - 1) | (_DEAC if deallocate else 0),
            lba=slba,
            nblocks=nblocks,
        )

    async def deallocate(self, nsid: int, ranges: Sequence[DsmRange]) -> None:
        """Dataset Management with the Deallocate attribute over 1 to 256 ranges."""
        if not 1 <= len(ranges) <= MAX_DSM_RANGES:
            raise InvalidArgument(f"{self.name}: Dataset Management takes 1 to 256 ranges")
        try:
            data = encode_dsm_ranges(ranges)
        except SpecError as exc:
            raise InvalidArgument(f"{self.name}: {exc}") from exc
        await self._io_command(
            "deallocate",
            _DSM,
            nsid,
            len(ranges) - 1,
            _DSM_DEALLOCATE,
            data_out=data,
            lba=ranges[0].slba,
            nblocks=sum(r.nblocks for r in ranges),
        )

    async def _io_command(
        self,
        what: str,
        opcode: int,
        nsid: int,
        cdw10: int = 0,
        cdw11: int = 0,
        cdw12: int = 0,
        *,
        data_out: Buffer | None = None,
        read_length: int = 0,
        lba: int | None = None,
        nblocks: int | None = None,
    ) -> Buffer | None:
        queues = self._io or await self._admit()
        self._rr += 1
        queue = queues[self._rr % len(queues)]
        try:
            status, _, _, data = await queue.execute(
                opcode, nsid, cdw10, cdw11, cdw12, 0, data_out, read_length
            )
        except DeviceError as exc:
            _locate(exc, lba, nblocks)
            raise
        if status:
            raise self._io_error(status, what, lba, nblocks)
        return data

    def _io_error(
        self, status: int, what: str, lba: int | None, nblocks: int | None
    ) -> DeviceError:
        nvme_status = NvmeStatus.from_field(status)
        where = f" of {nblocks} blocks at {lba}" if lba is not None else ""
        return DeviceError.from_status(
            nvme_status,
            f"{self.name}: {what}{where} failed: {nvme_status.describe()}",
            device=self.name,
            lba=lba,
            nblocks=nblocks,
        )


def _locate(exc: DeviceError, lba: int | None, nblocks: int | None) -> None:
    """Give `exc` the range of the I/O it failed, for the caller's error handling."""
    if exc.lba is None:
        exc.lba = lba
        exc.nblocks = nblocks


def describe_command(cmd: Command) -> str:
    """An admin command's name for messages ("Identify", "Get Log Page", ...)."""
    try:
        return AdminOpcode(cmd.opcode).name.replace("_", " ").title()
    except ValueError:
        return f"admin command {cmd.opcode:#04x}"
