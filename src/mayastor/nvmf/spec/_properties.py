"""Controller properties (NVMe Base 1.4 section 3.1, NVMe-oF 1.1 section 3.4):
offsets, sizes and the bit fields a fabrics controller needs (CAP, VS, CC, CSTS, AQA).

Over Fabrics these registers are read and written with Property Get/Set. Each bit
field class turns the register value into named fields and back.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mayastor.nvmf.spec._errors import SpecError


class PropertyOffset(enum.IntEnum):
    """Offsets of the controller properties."""

    CAP = 0x00  # Controller Capabilities, 8 bytes
    VS = 0x08  # Version
    INTMS = 0x0C  # Interrupt Mask Set (not used over fabrics)
    INTMC = 0x10  # Interrupt Mask Clear (not used over fabrics)
    CC = 0x14  # Controller Configuration
    CSTS = 0x1C  # Controller Status
    NSSR = 0x20  # NVM Subsystem Reset
    AQA = 0x24  # Admin Queue Attributes (not used over fabrics)
    ASQ = 0x28  # Admin Submission Queue base, 8 bytes (not used over fabrics)
    ACQ = 0x30  # Admin Completion Queue base, 8 bytes (not used over fabrics)


PROPERTY_SIZES: dict[int, int] = {
    PropertyOffset.CAP: 8,
    PropertyOffset.VS: 4,
    PropertyOffset.INTMS: 4,
    PropertyOffset.INTMC: 4,
    PropertyOffset.CC: 4,
    PropertyOffset.CSTS: 4,
    PropertyOffset.NSSR: 4,
    PropertyOffset.AQA: 4,
    PropertyOffset.ASQ: 8,
    PropertyOffset.ACQ: 8,
}
"""Size in bytes of each property, by offset."""


def version(major: int, minor: int, tertiary: int = 0) -> int:
    """A VS value: major in bits 31:16, minor in 15:8, tertiary in 7:0."""
    return major << 16 | minor << 8 | tertiary


VS_1_4 = version(1, 4)
"""NVMe Base 1.4, the version this target reports."""


def _field(value: int, shift: int, width: int) -> int:
    return (value >> shift) & ((1 << width) - 1)


def _put(name: str, value: int, shift: int, width: int) -> int:
    if not 0 <= value < 1 << width:
        raise SpecError(f"{name} {value} does not fit in {width} bits")
    return value << shift


class CommandSets(enum.IntFlag):
    """CAP.CSS: command sets supported (bits 44:37)."""

    NVM = 1 << 0
    IO_COMMAND_SETS = 1 << 6
    ADMIN_ONLY = 1 << 7


@dataclass(frozen=True, slots=True)
class ControllerCapabilities:
    """CAP (offset 0, 8 bytes).

    Attributes:
        mqes: maximum queue entries supported, 0-based (bits 15:0).
        cqr: contiguous queues required (bit 16); fabrics controllers set it.
        ams: arbitration mechanisms supported (bits 18:17).
        to: worst-case time to become ready, in 500 ms units (bits 31:24).
        dstrd: doorbell stride (bits 35:32).
        nssrs: NVM subsystem reset supported (bit 36).
        css: command sets supported (bits 44:37, `CommandSets`).
        bps: boot partition support (bit 45).
        mpsmin: minimum memory page size, 2^(12 + MPSMIN) (bits 51:48).
        mpsmax: maximum memory page size, 2^(12 + MPSMAX) (bits 55:52).
    """

    mqes: int
    cqr: bool = True
    ams: int = 0
    to: int = 0
    dstrd: int = 0
    nssrs: bool = False
    css: int = CommandSets.NVM
    bps: bool = False
    mpsmin: int = 0
    mpsmax: int = 0

    def encode(self) -> int:
        """The 64-bit register value (SpecError when a field does not fit)."""
        return (
            _put("MQES", self.mqes, 0, 16)
            | _put("CQR", int(self.cqr), 16, 1)
            | _put("AMS", self.ams, 17, 2)
            | _put("TO", self.to, 24, 8)
            | _put("DSTRD", self.dstrd, 32, 4)
            | _put("NSSRS", int(self.nssrs), 36, 1)
            | _put("CSS", self.css, 37, 8)
            | _put("BPS", int(self.bps), 45, 1)
            | _put("MPSMIN", self.mpsmin, 48, 4)
            | _put("MPSMAX", self.mpsmax, 52, 4)
        )

    @classmethod
    def decode(cls, value: int) -> ControllerCapabilities:
        return cls(
            mqes=_field(value, 0, 16),
            cqr=bool(_field(value, 16, 1)),
            ams=_field(value, 17, 2),
            to=_field(value, 24, 8),
            dstrd=_field(value, 32, 4),
            nssrs=bool(_field(value, 36, 1)),
            css=_field(value, 37, 8),
            bps=bool(_field(value, 45, 1)),
            mpsmin=_field(value, 48, 4),
            mpsmax=_field(value, 52, 4),
        )


class ShutdownNotification(enum.IntEnum):
    """CC.SHN: what the host asks for."""

    NONE = 0
    NORMAL = 1
    ABRUPT = 2


class ShutdownStatus(enum.IntEnum):
    """CSTS.SHST: how far shutdown has got."""

    NORMAL = 0  # normal operation, no shutdown requested
    OCCURRING = 1
    COMPLETE = 2


@dataclass(frozen=True, slots=True)
class ControllerConfiguration:
    """CC (offset 14h).

    Attributes:
        en: enable (bit 0).
        css: I/O command set selected (bits 6:4); 0 is NVM.
        mps: memory page size, 2^(12 + MPS) (bits 10:7).
        ams: arbitration mechanism (bits 13:11).
        shn: shutdown notification (bits 15:14, `ShutdownNotification`).
        iosqes: I/O submission queue entry size, 2^n (bits 19:16); 6 for 64 bytes.
        iocqes: I/O completion queue entry size, 2^n (bits 23:20); 4 for 16 bytes.
    """

    en: bool = False
    css: int = 0
    mps: int = 0
    ams: int = 0
    shn: int = ShutdownNotification.NONE
    iosqes: int = 0
    iocqes: int = 0

    def encode(self) -> int:
        """The 32-bit register value (SpecError when a field does not fit)."""
        return (
            _put("EN", int(self.en), 0, 1)
            | _put("CSS", self.css, 4, 3)
            | _put("MPS", self.mps, 7, 4)
            | _put("AMS", self.ams, 11, 3)
            | _put("SHN", self.shn, 14, 2)
            | _put("IOSQES", self.iosqes, 16, 4)
            | _put("IOCQES", self.iocqes, 20, 4)
        )

    @classmethod
    def decode(cls, value: int) -> ControllerConfiguration:
        return cls(
            en=bool(_field(value, 0, 1)),
            css=_field(value, 4, 3),
            mps=_field(value, 7, 4),
            ams=_field(value, 11, 3),
            shn=_field(value, 14, 2),
            iosqes=_field(value, 16, 4),
            iocqes=_field(value, 20, 4),
        )


@dataclass(frozen=True, slots=True)
class ControllerStatus:
    """CSTS (offset 1Ch).

    Attributes:
        rdy: ready (bit 0).
        cfs: controller fatal status (bit 1).
        shst: shutdown status (bits 3:2, `ShutdownStatus`).
        nssro: NVM subsystem reset occurred (bit 4).
        pp: processing paused (bit 5).
    """

    rdy: bool = False
    cfs: bool = False
    shst: int = ShutdownStatus.NORMAL
    nssro: bool = False
    pp: bool = False

    def encode(self) -> int:
        """The 32-bit register value (SpecError when a field does not fit)."""
        return (
            _put("RDY", int(self.rdy), 0, 1)
            | _put("CFS", int(self.cfs), 1, 1)
            | _put("SHST", self.shst, 2, 2)
            | _put("NSSRO", int(self.nssro), 4, 1)
            | _put("PP", int(self.pp), 5, 1)
        )

    @classmethod
    def decode(cls, value: int) -> ControllerStatus:
        return cls(
            rdy=bool(_field(value, 0, 1)),
            cfs=bool(_field(value, 1, 1)),
            shst=_field(value, 2, 2),
            nssro=bool(_field(value, 4, 1)),
            pp=bool(_field(value, 5, 1)),
        )


@dataclass(frozen=True, slots=True)
class AdminQueueAttributes:
    """AQA (offset 24h): admin queue sizes, 0-based (ASQS bits 11:0, ACQS bits 27:16)."""

    asqs: int
    acqs: int

    def encode(self) -> int:
        """The 32-bit register value (SpecError when a field does not fit)."""
        return _put("ASQS", self.asqs, 0, 12) | _put("ACQS", self.acqs, 16, 12)

    @classmethod
    def decode(cls, value: int) -> AdminQueueAttributes:
        return cls(_field(value, 0, 12), _field(value, 16, 12))
