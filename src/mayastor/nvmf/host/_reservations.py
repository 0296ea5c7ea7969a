"""The reservation commands of our initiator: the `Controller` methods that register,
acquire, release and report NVMe reservations on a namespace.

The host identity they act as is the controller's: the host identifier sent in its
Fabrics Connect (`ControllerOptions.hostid`). A refused command raises the
`DeviceError` its status names: `ReservationConflict` when another host's
reservation or registration is in the way, `InvalidField` for a key of 0 or a type
the namespace does not hold.
"""

from __future__ import annotations

from mayastor.errors import InvalidArgument, Unavailable
from mayastor.nvmf.host._commands import ControllerCommands
from mayastor.nvmf.pdu import Buffer
from mayastor.nvmf.spec import (
    AcquireAction,
    AcquireData,
    ChangePtpl,
    RegisterAction,
    RegisterData,
    ReleaseAction,
    ReleaseData,
    ReservationAcquire,
    ReservationRegister,
    ReservationRelease,
    ReservationReport,
    ReservationStatus,
    ReservationType,
    SpecError,
)

REPORT_LENGTH = 4096
"""Bytes a report asks for by default: the header and 63 registrants."""


class ReservationCommands(ControllerCommands):
    """Reservations as `Controller` methods (a mixin over `ControllerCommands`, whose
    `_io_command` carries them)."""

    async def reservation_register(
        self,
        nsid: int,
        action: RegisterAction,
        *,
        current_key: int = 0,
        new_key: int = 0,
        ignore_key: bool = False,
        ptpl: ChangePtpl = ChangePtpl.NO_CHANGE,
    ) -> None:
        """Reservation Register: register `new_key`, unregister, or replace the key.

        Raises:
            ReservationConflict: registered with another key, or `current_key` is wrong.
            InvalidField: a key of 0, or a PTPL change the namespace cannot make.
            InvalidArgument: a key that does not fit 64 bits.
            PathLost, IoTimeout: as for I/O.
        """
        try:
            cmd = ReservationRegister(int(action), ignore_key, int(ptpl)).to_command(0, nsid)
            data = RegisterData(current_key, new_key).encode()
        except SpecError as exc:
            raise InvalidArgument(f"{self.name}: reservation register: {exc}") from exc
        await self._io_command(
            f"reservation register ({action.name.lower()})",
            cmd.opcode,
            nsid,
            cmd.cdw10,
            data_out=data,
        )

    async def reservation_acquire(
        self,
        nsid: int,
        action: AcquireAction,
        rtype: ReservationType,
        *,
        current_key: int,
        preempt_key: int = 0,
    ) -> None:
        """Reservation Acquire: acquire a reservation of `rtype`, or preempt the holder
        (or the registrants) whose key is `preempt_key`.

        Raises:
            ReservationConflict: another host holds it (Acquire), `current_key` is not
                ours, or `preempt_key` matches nobody.
            InvalidField, InvalidArgument, PathLost, IoTimeout: as for register.
        """
        try:
            cmd = ReservationAcquire(int(action), int(rtype)).to_command(0, nsid)
            data = AcquireData(current_key, preempt_key).encode()
        except SpecError as exc:
            raise InvalidArgument(f"{self.name}: reservation acquire: {exc}") from exc
        await self._io_command(
            f"reservation acquire ({action.name.lower()}, {rtype.name.lower()})",
            cmd.opcode,
            nsid,
            cmd.cdw10,
            data_out=data,
        )

    async def reservation_release(
        self, nsid: int, action: ReleaseAction, rtype: ReservationType, *, current_key: int
    ) -> None:
        """Reservation Release: release the reservation we hold of `rtype`, or clear every
        registration of the namespace.

        Raises:
            ReservationConflict: `current_key` is not ours.
            InvalidField: `rtype` is not the type held.
            InvalidArgument, PathLost, IoTimeout: as for register.
        """
        try:
            cmd = ReservationRelease(int(action), int(rtype)).to_command(0, nsid)
            data = ReleaseData(current_key).encode()
        except SpecError as exc:
            raise InvalidArgument(f"{self.name}: reservation release: {exc}") from exc
        await self._io_command(
            f"reservation release ({action.name.lower()})",
            cmd.opcode,
            nsid,
            cmd.cdw10,
            data_out=data,
        )

    async def reservation_report(
        self, nsid: int, *, length: int = REPORT_LENGTH
    ) -> ReservationStatus:
        """Reservation Report in the extended format (128-bit host identifiers).

        Args:
            nsid: the namespace.
            length: bytes to ask for (a multiple of 4, at least 64).

        Raises:
            InvalidArgument: a length that is not whole dwords or shorter than the header.
            Unavailable: the controller sent data that does not decode.
            DeviceError, PathLost, IoTimeout: as for register.
        """
        try:
            cmd = ReservationReport.for_bytes(length, eds=True).to_command(0, nsid)
        except SpecError as exc:
            raise InvalidArgument(f"{self.name}: reservation report: {exc}") from exc
        if length < 64:
            raise InvalidArgument(f"{self.name}: a report of {length} bytes cannot hold its header")
        data = await self._io_command(
            "reservation report", cmd.opcode, nsid, cmd.cdw10, cmd.cdw11, read_length=length
        )
        assert data is not None
        return self._decoded_report(data)

    def _decoded_report(self, data: Buffer) -> ReservationStatus:
        try:
            return ReservationStatus.decode(data, extended=True)
        except SpecError as exc:
            raise Unavailable(f"{self.name}: malformed reservation report: {exc}") from exc
