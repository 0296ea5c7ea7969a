"""Admin commands a fabrics controller serves, with their CDW fields (NVMe Base 1.4
section 5): Get Log Page, Identify, Get/Set Features, Abort. Keep Alive and
Asynchronous Event Request have no fields of their own.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar

from mayastor.nvmf.spec._command import NO_DATA, Command, SglDescriptor
from mayastor.nvmf.spec._errors import SpecError
from mayastor.nvmf.spec._opcodes import AdminOpcode

NSID_ALL = 0xFFFF_FFFF
"""The broadcast namespace ID (all namespaces / the controller as a whole)."""


def _check_range(name: str, value: int, limit: int) -> None:
    if not 0 <= value <= limit:
        raise SpecError(f"{name} {value} is outside 0..{limit}")


@dataclass(frozen=True, slots=True)
class GetLogPage:
    """Get Log Page (02h): `length` bytes of log page `lid` from byte `offset`.

    Attributes:
        lid: log page identifier (CDW10 bits 7:0, `LogPageId`).
        numd: number of dwords to return, 0-based (NUMDL in CDW10 bits 31:16, NUMDU
            in CDW11 bits 15:0).
        offset: LPO, byte offset into the page (CDW12-13), a multiple of 4.
        lsp: log specific field (CDW10 bits 14:8; for ANA, bit 0 is RGO).
        rae: retain asynchronous event (CDW10 bit 15).
        lsi: log specific identifier (CDW11 bits 31:16).
    """

    lid: int
    numd: int
    offset: int = 0
    lsp: int = 0
    rae: bool = False
    lsi: int = 0

    opcode: ClassVar[AdminOpcode] = AdminOpcode.GET_LOG_PAGE

    @property
    def length(self) -> int:
        """Bytes requested: (NUMD + 1) dwords."""
        return (self.numd + 1) * 4

    @classmethod
    def for_bytes(cls, lid: int, length: int, offset: int = 0, **fields: int) -> GetLogPage:
        """The command reading `length` bytes (a positive multiple of 4) at `offset`.

        Raises:
            SpecError: `length` is not a positive multiple of 4.
        """
        if length <= 0 or length % 4:
            raise SpecError(f"a log page read is a positive number of dwords, not {length} bytes")
        return cls(lid, length // 4 - 1, offset, **fields)  # type: ignore[arg-type]

    @classmethod
    def from_command(cls, cmd: Command) -> GetLogPage:
        numd = cmd.cdw10 >> 16 | (cmd.cdw11 & 0xFFFF) << 16
        return cls(
            lid=cmd.cdw10 & 0xFF,
            numd=numd,
            offset=cmd.cdw12 | cmd.cdw13 << 32,
            lsp=(cmd.cdw10 >> 8) & 0x7F,
            rae=bool(cmd.cdw10 & 1 << 15),
            lsi=cmd.cdw11 >> 16,
        )

    def to_command(self, cid: int, nsid: int, sgl: SglDescriptor) -> Command:
        """The command (SpecError when a field does not fit)."""
        _check_range("LID", self.lid, 0xFF)
        _check_range("NUMD", self.numd, 0xFFFF_FFFF)
        _check_range("LSP", self.lsp, 0x7F)
        _check_range("LSI", self.lsi, 0xFFFF)
        _check_range("LPO", self.offset, (1 << 64) - 1)
        cdw10 = self.lid | self.lsp << 8 | (1 << 15 if self.rae else 0) | (self.numd & 0xFFFF) << 16
        return Command(
            self.opcode,
            cid,
            nsid,
            sgl,
            cdw10=cdw10,
            cdw11=self.numd >> 16 | self.lsi << 16,
            cdw12=self.offset & 0xFFFF_FFFF,
            cdw13=self.offset >> 32,
        )


class Cns(enum.IntEnum):
    """Controller or Namespace Structure: what an Identify command returns."""

    NAMESPACE = 0x00  # Identify Namespace for the NSID
    CONTROLLER = 0x01  # Identify Controller
    ACTIVE_NAMESPACES = 0x02  # active NSIDs greater than the NSID, ascending
    NAMESPACE_ID_DESCRIPTORS = 0x03  # EUI64 / NGUID / UUID of the NSID
    NVM_SET_LIST = 0x04
    IO_COMMAND_SET_NAMESPACE = 0x05
    IO_COMMAND_SET_CONTROLLER = 0x06


@dataclass(frozen=True, slots=True)
class Identify:
    """Identify (06h): 4096 bytes of the structure `cns` names.

    Attributes:
        cns: CDW10 bits 7:0 (`Cns`).
        cntid: controller identifier, CDW10 bits 31:16.
        nvmsetid: NVM set identifier, CDW11 bits 15:0.
        csi: command set identifier, CDW11 bits 31:24.
    """

    cns: int
    cntid: int = 0
    nvmsetid: int = 0
    csi: int = 0

    opcode: ClassVar[AdminOpcode] = AdminOpcode.IDENTIFY
    data_length: ClassVar[int] = 4096

    @classmethod
    def from_command(cls, cmd: Command) -> Identify:
        return cls(cmd.cdw10 & 0xFF, cmd.cdw10 >> 16, cmd.cdw11 & 0xFFFF, cmd.cdw11 >> 24)

    def to_command(self, cid: int, nsid: int, sgl: SglDescriptor) -> Command:
        """The command (SpecError when a field does not fit)."""
        _check_range("CNS", self.cns, 0xFF)
        _check_range("CNTID", self.cntid, 0xFFFF)
        _check_range("NVMSETID", self.nvmsetid, 0xFFFF)
        _check_range("CSI", self.csi, 0xFF)
        return Command(
            self.opcode,
            cid,
            nsid,
            sgl,
            cdw10=self.cns | self.cntid << 16,
            cdw11=self.nvmsetid | self.csi << 24,
        )


class FeatureSelect(enum.IntEnum):
    """SEL of Get Features (CDW10 bits 10:8): which value to return."""

    CURRENT = 0
    DEFAULT = 1
    SAVED = 2
    SUPPORTED_CAPABILITIES = 3


@dataclass(frozen=True, slots=True)
class GetFeatures:
    """Get Features (0Ah): the value of feature `fid` (returned in completion DW0).

    Attributes:
        fid: feature identifier, CDW10 bits 7:0 (`FeatureId`).
        sel: CDW10 bits 10:8 (`FeatureSelect`).
        cdw11: feature-specific argument.
    """

    fid: int
    sel: int = FeatureSelect.CURRENT
    cdw11: int = 0

    opcode: ClassVar[AdminOpcode] = AdminOpcode.GET_FEATURES

    @classmethod
    def from_command(cls, cmd: Command) -> GetFeatures:
        return cls(cmd.cdw10 & 0xFF, (cmd.cdw10 >> 8) & 0x7, cmd.cdw11)

    def to_command(self, cid: int, nsid: int = 0, sgl: SglDescriptor = NO_DATA) -> Command:
        """The command (SpecError when a field does not fit)."""
        _check_range("FID", self.fid, 0xFF)
        _check_range("SEL", self.sel, 0x7)
        return Command(
            self.opcode, cid, nsid, sgl, cdw10=self.fid | self.sel << 8, cdw11=self.cdw11
        )


@dataclass(frozen=True, slots=True)
class SetFeatures:
    """Set Features (09h): set feature `fid` to `value`.

    Attributes:
        fid: feature identifier, CDW10 bits 7:0 (`FeatureId`).
        value: CDW11, the feature's value (see the feature classes).
        save: SV, CDW10 bit 31: keep across power cycles.
        cdw12: a second feature-specific dword (rarely used).
    """

    fid: int
    value: int = 0
    save: bool = False
    cdw12: int = 0

    opcode: ClassVar[AdminOpcode] = AdminOpcode.SET_FEATURES

    @classmethod
    def from_command(cls, cmd: Command) -> SetFeatures:
        return cls(cmd.cdw10 & 0xFF, cmd.cdw11, bool(cmd.cdw10 >> 31), cmd.cdw12)

    def to_command(self, cid: int, nsid: int = 0, sgl: SglDescriptor = NO_DATA) -> Command:
        """The command (SpecError when a field does not fit)."""
        _check_range("FID", self.fid, 0xFF)
        return Command(
            self.opcode,
            cid,
            nsid,
            sgl,
            cdw10=self.fid | (1 << 31 if self.save else 0),
            cdw11=self.value,
            cdw12=self.cdw12,
        )


@dataclass(frozen=True, slots=True)
class Abort:
    """Abort (08h): abort command `cid` of submission queue `sqid`.

    Completion DW0 bit 0 is 1 when the command was not aborted.
    """

    sqid: int
    cid: int

    opcode: ClassVar[AdminOpcode] = AdminOpcode.ABORT

    @classmethod
    def from_command(cls, cmd: Command) -> Abort:
        return cls(cmd.cdw10 & 0xFFFF, cmd.cdw10 >> 16)

    def to_command(self, cid: int) -> Command:
        """The command (SpecError when a field does not fit)."""
        _check_range("SQID", self.sqid, 0xFFFF)
        _check_range("CID", self.cid, 0xFFFF)
        return Command(self.opcode, cid, cdw10=self.sqid | self.cid << 16)
