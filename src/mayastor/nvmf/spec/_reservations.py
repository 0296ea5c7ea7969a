"""Reservations (NVMe Base 1.4 sections 6.10-6.13 and 8.8): the four commands, their
data, and the Reservation Status data structure.

* Reservation Register (0Dh): CDW10 RREGA (bits 2:0), IEKEY (bit 3), CPTPL (bits
  31:30); data: CRKEY and NRKEY, 8 bytes each.
* Reservation Report (0Eh): CDW10 NUMD (dwords to return, 0-based), CDW11 EDS
  (bit 0: the extended data structure, with 128-bit host identifiers).
* Reservation Acquire (11h): CDW10 RACQA (bits 2:0), IEKEY (bit 3), RTYPE (bits
  15:8); data: CRKEY and PRKEY.
* Reservation Release (15h): CDW10 RRELA (bits 2:0), IEKEY (bit 3), RTYPE (bits
  15:8); data: CRKEY.

The command classes read their fields from any `Command` (they never refuse one: a
reserved action or type is for the controller to refuse) and build commands; the data
classes take exactly their bytes. `ReservationStatus` encodes both formats and decodes
a report however the host's NUMD cut it (whole registrant entries only).

Over NVMe-oF a host identifier is 128 bits (the Connect data's HOSTID), so only the
extended format (EDS=1) can describe registrants; a controller answers EDS=0 with Host
Identifier Inconsistent Format.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import ClassVar

from mayastor.nvmf.spec._command import NO_DATA, Command, SglDescriptor
from mayastor.nvmf.spec._errors import SpecError
from mayastor.nvmf.spec._layout import Buffer
from mayastor.nvmf.spec._opcodes import IoOpcode

_U64 = (1 << 64) - 1
_IEKEY = 1 << 3


class ReservationType(enum.IntEnum):
    """RTYPE: which hosts may read and write while the reservation is held."""

    WRITE_EXCLUSIVE = 1  # only the holder writes; everyone reads
    EXCLUSIVE_ACCESS = 2  # only the holder reads and writes
    WRITE_EXCLUSIVE_REGISTRANTS_ONLY = 3  # registrants write; everyone reads
    EXCLUSIVE_ACCESS_REGISTRANTS_ONLY = 4  # registrants read and write
    WRITE_EXCLUSIVE_ALL_REGISTRANTS = 5  # every registrant holds it; everyone reads
    EXCLUSIVE_ACCESS_ALL_REGISTRANTS = 6  # every registrant holds it; only they read

    @property
    def all_registrants(self) -> bool:
        """True for the types that every registrant holds (5 and 6)."""
        return self >= ReservationType.WRITE_EXCLUSIVE_ALL_REGISTRANTS


class RegisterAction(enum.IntEnum):
    """RREGA of Reservation Register (3-7 are reserved)."""

    REGISTER = 0  # register NRKEY for this host
    UNREGISTER = 1  # remove this host's registration (CRKEY must match unless IEKEY)
    REPLACE = 2  # change this host's key to NRKEY (CRKEY must match unless IEKEY)


class AcquireAction(enum.IntEnum):
    """RACQA of Reservation Acquire (3-7 are reserved)."""

    ACQUIRE = 0  # create the reservation; conflicts when another host holds one
    PREEMPT = 1  # take it from the holder whose key is PRKEY, or unregister PRKEY
    PREEMPT_AND_ABORT = 2  # as PREEMPT, and abort the preempted hosts' commands


class ReleaseAction(enum.IntEnum):
    """RRELA of Reservation Release (2-7 are reserved)."""

    RELEASE = 0  # the holder gives the reservation up; registrations stay
    CLEAR = 1  # release the reservation and unregister every host


class ChangePtpl(enum.IntEnum):
    """CPTPL of Reservation Register: what happens to the Persist Through Power Loss state."""

    NO_CHANGE = 0
    RESERVED = 1
    CLEAR = 2  # reservations and registrations are dropped on the next power on
    SET = 3  # reservations and registrations persist across a power loss


class ReservationCapabilities(enum.IntFlag):
    """RESCAP, byte 31 of Identify Namespace."""

    PERSIST_THROUGH_POWER_LOSS = 1 << 0
    WRITE_EXCLUSIVE = 1 << 1
    EXCLUSIVE_ACCESS = 1 << 2
    WRITE_EXCLUSIVE_REGISTRANTS_ONLY = 1 << 3
    EXCLUSIVE_ACCESS_REGISTRANTS_ONLY = 1 << 4
    WRITE_EXCLUSIVE_ALL_REGISTRANTS = 1 << 5
    EXCLUSIVE_ACCESS_ALL_REGISTRANTS = 1 << 6
    IGNORE_EXISTING_KEY = 1 << 7  # IEKEY behaves as NVMe 1.3 and later define it

    @classmethod
    def all_types(cls) -> ReservationCapabilities:
        """Every reservation type, with NVMe 1.3 IEKEY behaviour (no PTPL)."""
        return (
            cls.WRITE_EXCLUSIVE
            | cls.EXCLUSIVE_ACCESS
            | cls.WRITE_EXCLUSIVE_REGISTRANTS_ONLY
            | cls.EXCLUSIVE_ACCESS_REGISTRANTS_ONLY
            | cls.WRITE_EXCLUSIVE_ALL_REGISTRANTS
            | cls.EXCLUSIVE_ACCESS_ALL_REGISTRANTS
            | cls.IGNORE_EXISTING_KEY
        )


def _check_range(name: str, value: int, limit: int) -> None:
    if not 0 <= value <= limit:
        raise SpecError(f"{name} {value} is outside 0..{limit}")


# ------------------------------------------------------------------ commands


@dataclass(frozen=True, slots=True)
class ReservationRegister:
    """Reservation Register (0Dh).

    Attributes:
        rrega: the action (`RegisterAction`; 3-7 are reserved), CDW10 bits 2:0.
        iekey: Ignore Existing Key, CDW10 bit 3: skip the CRKEY check.
        cptpl: Change Persist Through Power Loss (`ChangePtpl`), CDW10 bits 31:30.
    """

    rrega: int
    iekey: bool = False
    cptpl: int = ChangePtpl.NO_CHANGE

    opcode: ClassVar[IoOpcode] = IoOpcode.RESERVATION_REGISTER
    data_length: ClassVar[int] = 16

    @classmethod
    def from_command(cls, cmd: Command) -> ReservationRegister:
        return cls(cmd.cdw10 & 0x7, bool(cmd.cdw10 & _IEKEY), cmd.cdw10 >> 30)

    def to_command(self, cid: int, nsid: int, sgl: SglDescriptor | None = None) -> Command:
        """The command; its 16 bytes of data in the capsule unless `sgl` says otherwise.

        Raises:
            SpecError: a field does not fit its bits.
        """
        _check_range("RREGA", self.rrega, 0x7)
        _check_range("CPTPL", self.cptpl, 0x3)
        cdw10 = self.rrega | (_IEKEY if self.iekey else 0) | self.cptpl << 30
        sgl = sgl or SglDescriptor.in_capsule(self.data_length)
        return Command(self.opcode, cid, nsid, sgl, cdw10=cdw10)


@dataclass(frozen=True, slots=True)
class ReservationAcquire:
    """Reservation Acquire (11h).

    Attributes:
        racqa: the action (`AcquireAction`; 3-7 are reserved), CDW10 bits 2:0.
        rtype: the reservation type (`ReservationType`; others reserved), bits 15:8.
        iekey: Ignore Existing Key, CDW10 bit 3 (a controller refuses it since 1.3).
    """

    racqa: int
    rtype: int
    iekey: bool = False

    opcode: ClassVar[IoOpcode] = IoOpcode.RESERVATION_ACQUIRE
    data_length: ClassVar[int] = 16

    @classmethod
    def from_command(cls, cmd: Command) -> ReservationAcquire:
        return cls(cmd.cdw10 & 0x7, (cmd.cdw10 >> 8) & 0xFF, bool(cmd.cdw10 & _IEKEY))

    def to_command(self, cid: int, nsid: int, sgl: SglDescriptor | None = None) -> Command:
        """The command; its 16 bytes of data in the capsule unless `sgl` says otherwise.

        Raises:
            SpecError: a field does not fit its bits.
        """
        _check_range("RACQA", self.racqa, 0x7)
        _check_range("RTYPE", self.rtype, 0xFF)
        cdw10 = self.racqa | (_IEKEY if self.iekey else 0) | self.rtype << 8
        sgl = sgl or SglDescriptor.in_capsule(self.data_length)
        return Command(self.opcode, cid, nsid, sgl, cdw10=cdw10)


@dataclass(frozen=True, slots=True)
class ReservationRelease:
    """Reservation Release (15h).

    Attributes:
        rrela: the action (`ReleaseAction`; 2-7 are reserved), CDW10 bits 2:0.
        rtype: the type of the reservation being released, CDW10 bits 15:8.
        iekey: Ignore Existing Key, CDW10 bit 3 (a controller refuses it since 1.3).
    """

    rrela: int
    rtype: int = 0
    iekey: bool = False

    opcode: ClassVar[IoOpcode] = IoOpcode.RESERVATION_RELEASE
    data_length: ClassVar[int] = 8

    @classmethod
    def from_command(cls, cmd: Command) -> ReservationRelease:
        return cls(cmd.cdw10 & 0x7, (cmd.cdw10 >> 8) & 0xFF, bool(cmd.cdw10 & _IEKEY))

    def to_command(self, cid: int, nsid: int, sgl: SglDescriptor | None = None) -> Command:
        """The command; its 8 bytes of data in the capsule unless `sgl` says otherwise.

        Raises:
            SpecError: a field does not fit its bits.
        """
        _check_range("RRELA", self.rrela, 0x7)
        _check_range("RTYPE", self.rtype, 0xFF)
        cdw10 = self.rrela | (_IEKEY if self.iekey else 0) | self.rtype << 8
        sgl = sgl or SglDescriptor.in_capsule(self.data_length)
        return Command(self.opcode, cid, nsid, sgl, cdw10=cdw10)


@dataclass(frozen=True, slots=True)
class ReservationReport:
    """Reservation Report (0Eh): `length` bytes of the Reservation Status data structure.

    Attributes:
        numd: dwords to return, 0-based, CDW10.
        eds: Extended Data Structure, CDW11 bit 0 (128-bit host identifiers).
    """

    numd: int
    eds: bool = True

    opcode: ClassVar[IoOpcode] = IoOpcode.RESERVATION_REPORT

    @property
    def length(self) -> int:
        """Bytes asked for: (NUMD + 1) dwords."""
        return (self.numd + 1) * 4

    @classmethod
    def for_bytes(cls, length: int, *, eds: bool = True) -> ReservationReport:
        """The command reading `length` bytes (a positive multiple of 4).

        Raises:
            SpecError: `length` is not a positive multiple of 4 that NUMD can hold.
        """
        if length <= 0 or length % 4 or length // 4 - 1 > 0xFFFF_FFFF:
            raise SpecError(f"a report reads a positive number of dwords, not {length} bytes")
        return cls(length // 4 - 1, eds)

    @classmethod
    def from_command(cls, cmd: Command) -> ReservationReport:
        return cls(cmd.cdw10, bool(cmd.cdw11 & 1))

    def to_command(self, cid: int, nsid: int, sgl: SglDescriptor = NO_DATA) -> Command:
        """The command; the data comes back as described by `sgl` (default: by C2HData
        of the whole length).

        Raises:
            SpecError: NUMD does not fit 32 bits.
        """
        _check_range("NUMD", self.numd, 0xFFFF_FFFF)
        if sgl is NO_DATA:
            sgl = SglDescriptor.transport(self.length)
        return Command(self.opcode, cid, nsid, sgl, cdw10=self.numd, cdw11=int(self.eds))


# ------------------------------------------------------------------ command data

_TWO_KEYS = struct.Struct("<QQ")
_ONE_KEY = struct.Struct("<Q")


def _keys(raw: Buffer, what: str, layout: struct.Struct) -> tuple[int, ...]:
    size = memoryview(raw).nbytes
    if size != layout.size:
        raise SpecError(f"{what} data is {layout.size} bytes, got {size}")
    return layout.unpack(raw)


def _pack_keys(what: str, layout: struct.Struct, *keys: int) -> bytes:
    for key in keys:
        _check_range(f"{what} key", key, _U64)
    return layout.pack(*keys)


@dataclass(frozen=True, slots=True)
class RegisterData:
    """Reservation Register data: CRKEY (bytes 7:0) and NRKEY (bytes 15:8)."""

    crkey: int = 0
    nrkey: int = 0

    def encode(self) -> bytes:
        """The 16 bytes (SpecError when a key does not fit 64 bits)."""
        return _pack_keys("register", _TWO_KEYS, self.crkey, self.nrkey)

    @classmethod
    def decode(cls, raw: Buffer) -> RegisterData:
        """Read exactly 16 bytes (SpecError otherwise)."""
        return cls(*_keys(raw, "Reservation Register", _TWO_KEYS))


@dataclass(frozen=True, slots=True)
class AcquireData:
    """Reservation Acquire data: CRKEY (bytes 7:0) and PRKEY (bytes 15:8)."""

    crkey: int = 0
    prkey: int = 0

    def encode(self) -> bytes:
        """The 16 bytes (SpecError when a key does not fit 64 bits)."""
        return _pack_keys("acquire", _TWO_KEYS, self.crkey, self.prkey)

    @classmethod
    def decode(cls, raw: Buffer) -> AcquireData:
        """Read exactly 16 bytes (SpecError otherwise)."""
        return cls(*_keys(raw, "Reservation Acquire", _TWO_KEYS))


@dataclass(frozen=True, slots=True)
class ReleaseData:
    """Reservation Release data: CRKEY (bytes 7:0)."""

    crkey: int = 0

    def encode(self) -> bytes:
        """The 8 bytes (SpecError when the key does not fit 64 bits)."""
        return _pack_keys("release", _ONE_KEY, self.crkey)

    @classmethod
    def decode(cls, raw: Buffer) -> ReleaseData:
        """Read exactly 8 bytes (SpecError otherwise)."""
        return cls(*_keys(raw, "Reservation Release", _ONE_KEY))


# ------------------------------------------------------------------ Reservation Status

RESERVATION_STATUS_HEADER_SIZE = 24
"""Bytes of the standard header (GEN, RTYPE, REGCTL, PTPLS, reserved)."""
RESERVATION_STATUS_EXT_HEADER_SIZE = 64
"""Bytes of the extended header (the standard one and 40 reserved bytes)."""
REGISTERED_CONTROLLER_SIZE = 24
"""Bytes of a Registered Controller data structure (64-bit host identifier)."""
REGISTERED_CONTROLLER_EXT_SIZE = 64
"""Bytes of a Registered Controller extended data structure (128-bit host identifier)."""
RCSTS_HOLDS_RESERVATION = 0x01
"""RCSTS bit 0: the host of this controller holds the reservation."""

_HEADER = struct.Struct("<IBH2xB")
"""GEN (3:0), RTYPE (4), REGCTL (6:5), reserved (8:7), PTPLS (9)."""
_REGCTL = struct.Struct("<HB5x8sQ")
"""CNTLID (1:0), RCSTS (2), reserved (7:3), HOSTID (15:8), RKEY (23:16)."""
_REGCTL_EXT = struct.Struct("<HB5xQ16s32x")
"""CNTLID (1:0), RCSTS (2), reserved (7:3), RKEY (15:8), HOSTID (31:16), reserved (63:32)."""


@dataclass(frozen=True, slots=True)
class RegisteredController:
    """One registrant of a Reservation Status data structure.

    Attributes:
        cntlid: a controller of the registrant's host (FFFFh with the dynamic model).
        holds: RCSTS bit 0: its host holds the reservation.
        hostid: the host identifier: 8 bytes (standard format) or 16 (extended).
        rkey: the host's reservation key.
    """

    cntlid: int
    holds: bool
    hostid: bytes
    rkey: int


@dataclass(frozen=True, slots=True)
class ReservationStatus:
    """The Reservation Status data structure a Reservation Report returns.

    Attributes:
        generation: GEN, a 32-bit counter of registrations, preemptions and clears.
        rtype: the type of the reservation held, 0 when none is.
        ptpls: PTPLS: the namespace persists reservations through a power loss.
        registrants: one entry per registered host (REGCTL counts them).
        regctl: the number of registrants the controller reported; more than
            ``len(registrants)`` when the host asked for too few bytes to hold them all
            (-1, the default, means ``len(registrants)``).
    """

    generation: int
    rtype: int
    ptpls: bool = False
    registrants: tuple[RegisteredController, ...] = ()
    regctl: int = -1

    def __post_init__(self) -> None:
        if self.regctl < 0:
            object.__setattr__(self, "regctl", len(self.registrants))

    @property
    def holders(self) -> tuple[RegisteredController, ...]:
        """The registrants that hold the reservation."""
        return tuple(r for r in self.registrants if r.holds)

    def encode(self, *, extended: bool = True) -> bytes:
        """The whole structure: header, then every registrant.

        Raises:
            SpecError: a field does not fit, or a host identifier is not 16 bytes
                (extended) or 8 bytes (standard).
        """
        size = 16 if extended else 8
        try:
            header = _HEADER.pack(self.generation, self.rtype, self.regctl, int(self.ptpls))
            parts = [
                header.ljust(
                    RESERVATION_STATUS_EXT_HEADER_SIZE
                    if extended
                    else RESERVATION_STATUS_HEADER_SIZE,
                    b"\x00",
                )
            ]
            for reg in self.registrants:
                if len(reg.hostid) != size:
                    raise SpecError(
                        f"a {'extended' if extended else 'standard'} report carries "
                        f"{size}-byte host identifiers, not {len(reg.hostid)}"
                    )
                rcsts = RCSTS_HOLDS_RESERVATION if reg.holds else 0
                if extended:
                    parts.append(_REGCTL_EXT.pack(reg.cntlid, rcsts, reg.rkey, reg.hostid))
                else:
                    parts.append(_REGCTL.pack(reg.cntlid, rcsts, reg.hostid, reg.rkey))
        except struct.error as exc:
            raise SpecError(f"Reservation Status field out of range: {exc}") from exc
        return b"".join(parts)

    @classmethod
    def decode(cls, raw: Buffer, *, extended: bool = True) -> ReservationStatus:
        """Read a report: the header and as many whole registrant entries as REGCTL
        names and the data holds (a host may ask for fewer bytes than all of them).

        Raises:
            SpecError: shorter than the header.
        """
        data = bytes(raw)
        header_size = (
            RESERVATION_STATUS_EXT_HEADER_SIZE if extended else RESERVATION_STATUS_HEADER_SIZE
        )
        entry_size = REGISTERED_CONTROLLER_EXT_SIZE if extended else REGISTERED_CONTROLLER_SIZE
        if len(data) < header_size:
            raise SpecError(
                f"a Reservation Status data structure starts with a {header_size}-byte header, "
                f"got {len(data)} bytes"
            )
        generation, rtype, regctl, ptpls = _HEADER.unpack_from(data, 0)
        room = (len(data) - header_size) // entry_size
        registrants = []
        for i in range(min(regctl, room)):
            at = header_size + i * entry_size
            if extended:
                cntlid, rcsts, rkey, hostid = _REGCTL_EXT.unpack_from(data, at)
            else:
                cntlid, rcsts, hostid, rkey = _REGCTL.unpack_from(data, at)
            registrants.append(
                RegisteredController(cntlid, bool(rcsts & RCSTS_HOLDS_RESERVATION), hostid, rkey)
            )
        return cls(generation, rtype, bool(ptpls & 1), tuple(registrants), regctl)
