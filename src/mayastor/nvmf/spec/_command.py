"""The 64-byte submission queue entry (NVMe Base 1.4 Figure 105) and its SGL descriptor.

Over NVMe/TCP every command uses SGLs (PSDT 01b) with one descriptor in DPTR
(bytes 24-39): a Data Block with the Offset subtype for in-capsule data, or a
Transport Data Block (transport-specific subtype) for data that moves by
R2T/H2CData or C2HData. Keyed SGL data blocks belong to RDMA and are not used.

`Command` is the generic entry: opcode, CID, NSID, DPTR and CDW10-15 (Fabrics
commands keep FCTYPE in byte 4, read with `fctype`). The command-specific classes in
`_nvm`, `_admin` and `_fabrics` read and build the CDWs.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mayastor.nvmf.spec._errors import SpecError
from mayastor.nvmf.spec._layout import Buffer
from mayastor.nvmf.spec._opcodes import AdminOpcode

SQE_SIZE = 64
_SQE = struct.Struct("<BBHIIIQQI3xBIIIIII")
_SGL = struct.Struct("<QI3xB")
SGL_OFFSET = 24
"""Byte offset of DPTR (SGL1) in the SQE."""


class SglDescriptorType(enum.IntEnum):
    """SGL descriptor type, bits 7:4 of the SGL identifier."""

    DATA_BLOCK = 0x0  # with subtype OFFSET: in-capsule data
    BIT_BUCKET = 0x1
    SEGMENT = 0x2
    LAST_SEGMENT = 0x3
    KEYED_DATA_BLOCK = 0x4  # RDMA only
    TRANSPORT_DATA_BLOCK = 0x5  # NVMe/TCP: data moves by R2T/H2CData or C2HData
    VENDOR_SPECIFIC = 0xF


class SglSubtype(enum.IntEnum):
    """SGL descriptor subtype, bits 3:0 of the SGL identifier."""

    ADDRESS = 0x0
    OFFSET = 0x1  # address is an offset into the capsule's data
    TRANSPORT_SPECIFIC = 0xA  # what NVMe/TCP uses with TRANSPORT_DATA_BLOCK


class Psdt(enum.IntEnum):
    """PRP or SGL for Data Transfer, bits 7:6 of CDW0 byte 1."""

    PRP = 0
    SGL_CONTIGUOUS_MPTR = 1  # what NVMe-oF uses
    SGL_MPTR_SGL = 2


@dataclass(frozen=True, slots=True)
class SglDescriptor:
    """One 16-byte SGL descriptor.

    Attributes:
        address: bytes 0-7: an address, or for an OFFSET subtype the offset of the
            data within the command capsule's data.
        length: bytes 8-11: length of the data in bytes.
        type: the descriptor type (`SglDescriptorType`).
        subtype: the descriptor subtype (`SglSubtype`).
    """

    address: int = 0
    length: int = 0
    type: int = SglDescriptorType.TRANSPORT_DATA_BLOCK
    subtype: int = SglSubtype.TRANSPORT_SPECIFIC

    @classmethod
    def in_capsule(cls, length: int, offset: int = 0) -> SglDescriptor:
        """Data carried in the CapsuleCmd itself, `offset` bytes into its data."""
        return cls(offset, length, SglDescriptorType.DATA_BLOCK, SglSubtype.OFFSET)

    @classmethod
    def transport(cls, length: int) -> SglDescriptor:
        """Data that moves by R2T/H2CData (writes) or C2HData (reads)."""
        return cls(0, length, SglDescriptorType.TRANSPORT_DATA_BLOCK, SglSubtype.TRANSPORT_SPECIFIC)

    @property
    def identifier(self) -> int:
        """Byte 15: type in bits 7:4, subtype in bits 3:0."""
        return (self.type & 0xF) << 4 | (self.subtype & 0xF)

    @property
    def is_in_capsule(self) -> bool:
        return self.type == SglDescriptorType.DATA_BLOCK and self.subtype == SglSubtype.OFFSET

    @property
    def is_transport(self) -> bool:
        return (
            self.type == SglDescriptorType.TRANSPORT_DATA_BLOCK
            and self.subtype == SglSubtype.TRANSPORT_SPECIFIC
        )

    def encode(self) -> bytes:
        """The 16 bytes of the descriptor.

        Raises:
            SpecError: a field does not fit.
        """
        try:
            return _SGL.pack(self.address, self.length, self.identifier)
        except struct.error as exc:
            raise SpecError(f"SGL descriptor field out of range: {exc}") from exc

    @classmethod
    def decode(cls, raw: Buffer) -> SglDescriptor:
        """Read 16 bytes.

        Raises:
            SpecError: not 16 bytes.
        """
        if memoryview(raw).nbytes != _SGL.size:
            raise SpecError(f"an SGL descriptor is 16 bytes, got {memoryview(raw).nbytes}")
        address, length, ident = _SGL.unpack(raw)
        return cls(address, length, ident >> 4, ident & 0xF)


NO_DATA = SglDescriptor.transport(0)
"""The DPTR of a command without data (what Linux sends: a zero-length transport block)."""


@dataclass(frozen=True, slots=True)
class Command:
    """A submission queue entry.

    Attributes:
        opcode: CDW0 byte 0 (`AdminOpcode`, `IoOpcode`; 7Fh for Fabrics).
        cid: command identifier, CDW0 bits 31:16.
        nsid: namespace ID (for a Fabrics command, byte 4 is FCTYPE instead).
        sgl: DPTR, the data's SGL descriptor.
        cdw10..cdw15: command-specific dwords.
        fuse: fused operation, CDW0 bits 9:8.
        psdt: PRP or SGL, CDW0 bits 15:14 (`Psdt`).
        cdw2, cdw3, mptr: rarely used (metadata pointer, command-specific).
    """

    opcode: int
    cid: int = 0
    nsid: int = 0
    sgl: SglDescriptor = NO_DATA
    cdw10: int = 0
    cdw11: int = 0
    cdw12: int = 0
    cdw13: int = 0
    cdw14: int = 0
    cdw15: int = 0
    fuse: int = 0
    psdt: int = Psdt.SGL_CONTIGUOUS_MPTR
    cdw2: int = 0
    cdw3: int = 0
    mptr: int = 0

    @property
    def is_fabrics(self) -> bool:
        return self.opcode == AdminOpcode.FABRICS

    @property
    def fctype(self) -> int:
        """FCTYPE of a Fabrics command (byte 4, the low byte of the NSID field)."""
        return self.nsid & 0xFF

    def encode(self) -> bytes:
        """The 64-byte SQE.

        Raises:
            SpecError: a field does not fit its bits.
        """
        sgl = self.sgl
        if not 0 <= self.fuse <= 3 or not 0 <= self.psdt <= 3:
            raise SpecError(f"FUSE {self.fuse} or PSDT {self.psdt} out of range", offset=1)
        try:
            return _SQE.pack(
                self.opcode,
                self.fuse | self.psdt << 6,
                self.cid,
                self.nsid,
                self.cdw2,
                self.cdw3,
                self.mptr,
                sgl.address,
                sgl.length,
                sgl.identifier,
                self.cdw10,
                self.cdw11,
                self.cdw12,
                self.cdw13,
                self.cdw14,
                self.cdw15,
            )
        except struct.error as exc:
            raise SpecError(f"command field out of range: {exc}") from exc

    @classmethod
    def decode(cls, raw: Buffer) -> Command:
        """Read a 64-byte SQE (any 64 bytes are a well-formed entry).

        Raises:
            SpecError: not 64 bytes.
        """
        try:
            (
                opcode,
                flags,
                cid,
                nsid,
                cdw2,
                cdw3,
                mptr,
                address,
                length,
                ident,
                cdw10,
                cdw11,
                cdw12,
                cdw13,
                cdw14,
                cdw15,
            ) = _SQE.unpack(raw)
        except struct.error as exc:
            raise SpecError(f"an SQE is {SQE_SIZE} bytes, got {memoryview(raw).nbytes}") from exc
        # A frozen dataclass's __init__ sets each field through object.__setattr__; on
        # the per-I/O path the slots are set directly instead.
        sgl = _new(SglDescriptor)
        _SGL_ADDRESS(sgl, address)
        _SGL_LENGTH(sgl, length)
        _SGL_TYPE(sgl, ident >> 4)
        _SGL_SUBTYPE(sgl, ident & 0xF)
        cmd = _new(cls)
        _OPCODE(cmd, opcode)
        _CID(cmd, cid)
        _NSID(cmd, nsid)
        _DPTR(cmd, sgl)
        _CDW10(cmd, cdw10)
        _CDW11(cmd, cdw11)
        _CDW12(cmd, cdw12)
        _CDW13(cmd, cdw13)
        _CDW14(cmd, cdw14)
        _CDW15(cmd, cdw15)
        _FUSE(cmd, flags & 0x3)
        _PSDT(cmd, flags >> 6)
        _CDW2(cmd, cdw2)
        _CDW3(cmd, cdw3)
        _MPTR(cmd, mptr)
        return cmd  # type: ignore[no-any-return]


_new: Callable[[type], Any] = object.__new__


def _setter(cls: type, name: str) -> Callable[[object, object], None]:
    setter: Callable[[object, object], None] = cls.__dict__[name].__set__
    return setter


_SGL_ADDRESS = _setter(SglDescriptor, "address")
_SGL_LENGTH = _setter(SglDescriptor, "length")
_SGL_TYPE = _setter(SglDescriptor, "type")
_SGL_SUBTYPE = _setter(SglDescriptor, "subtype")
_OPCODE = _setter(Command, "opcode")
_CID = _setter(Command, "cid")
_NSID = _setter(Command, "nsid")
_DPTR = _setter(Command, "sgl")
_CDW10 = _setter(Command, "cdw10")
_CDW11 = _setter(Command, "cdw11")
_CDW12 = _setter(Command, "cdw12")
_CDW13 = _setter(Command, "cdw13")
_CDW14 = _setter(Command, "cdw14")
_CDW15 = _setter(Command, "cdw15")
_FUSE = _setter(Command, "fuse")
_PSDT = _setter(Command, "psdt")
_CDW2 = _setter(Command, "cdw2")
_CDW3 = _setter(Command, "cdw3")
_MPTR = _setter(Command, "mptr")
