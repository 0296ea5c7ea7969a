"""NVM I/O commands: Read, Write, Write Zeroes, Dataset Management (NVMe Base 1.4
section 6), with their CDW10-15 fields.

Each class reads its fields from a `Command` (`from_command`) and builds one
(`to_command`). Block counts on the wire are 0-based (NLB 0 means one block);
`nblocks` gives the real count. Dataset Management ranges count blocks 1-based.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar, Self

from mayastor.nvmf.spec._command import NO_DATA, Command, SglDescriptor
from mayastor.nvmf.spec._errors import SpecError
from mayastor.nvmf.spec._layout import Buffer
from mayastor.nvmf.spec._opcodes import IoOpcode

_U64 = (1 << 64) - 1
_FUA = 1 << 30
_DEAC = 1 << 25


def _check_range(name: str, value: int, limit: int) -> None:
    if not 0 <= value <= limit:
        raise SpecError(f"{name} {value} is outside 0..{limit}")


@dataclass(frozen=True, slots=True)
class _BlockRange:
    """SLBA in CDW10-11; NLB (0-based) in CDW12 bits 15:0; FUA in CDW12 bit 30."""

    slba: int
    nlb: int
    fua: bool = False

    opcode: ClassVar[IoOpcode]

    @property
    def nblocks(self) -> int:
        """Number of blocks (NLB is 0-based)."""
        return self.nlb + 1

    @classmethod
    def from_command(cls, cmd: Command) -> Self:
        return cls(cmd.cdw10 | cmd.cdw11 << 32, cmd.cdw12 & 0xFFFF, bool(cmd.cdw12 & _FUA))

    def to_command(self, cid: int, nsid: int, sgl: SglDescriptor) -> Command:
        """The command, its data described by `sgl`.

        Raises:
            SpecError: SLBA or NLB does not fit.
        """
        _check_range("SLBA", self.slba, _U64)
        _check_range("NLB", self.nlb, 0xFFFF)
        return Command(
            self.opcode,
            cid,
            nsid,
            sgl,
            cdw10=self.slba & 0xFFFF_FFFF,
            cdw11=self.slba >> 32,
            cdw12=self.nlb | (_FUA if self.fua else 0),
        )


@dataclass(frozen=True, slots=True)
class Read(_BlockRange):
    """Read (02h): `nlb + 1` blocks from `slba`; FUA reads from non-volatile media."""

    opcode: ClassVar[IoOpcode] = IoOpcode.READ


@dataclass(frozen=True, slots=True)
class Write(_BlockRange):
    """Write (01h): `nlb + 1` blocks at `slba`; FUA makes them durable before completion."""

    opcode: ClassVar[IoOpcode] = IoOpcode.WRITE


@dataclass(frozen=True, slots=True)
class WriteZeroes:
    """Write Zeroes (08h): zero `nlb + 1` blocks from `slba`.

    Attributes:
        slba: first block.
        nlb: number of blocks, 0-based.
        deac: deallocate the blocks as well (they still read as zeroes).
        fua: durable before completion.
    """

    slba: int
    nlb: int
    deac: bool = False
    fua: bool = False

    opcode: ClassVar[IoOpcode] = IoOpcode.WRITE_ZEROES

    @property
    def nblocks(self) -> int:
        return self.nlb + 1

    @classmethod
    def from_command(cls, cmd: Command) -> WriteZeroes:
        return cls(
            cmd.cdw10 | cmd.cdw11 << 32,
            cmd.cdw12 & 0xFFFF,
            bool(cmd.cdw12 & _DEAC),
            bool(cmd.cdw12 & _FUA),
        )

    def to_command(self, cid: int, nsid: int) -> Command:
        """The Write Zeroes command (SpecError when a field does not fit)."""
        _check_range("SLBA", self.slba, _U64)
        _check_range("NLB", self.nlb, 0xFFFF)
        cdw12 = self.nlb | (_DEAC if self.deac else 0) | (_FUA if self.fua else 0)
        return Command(
            self.opcode,
            cid,
            nsid,
            cdw10=self.slba & 0xFFFF_FFFF,
            cdw11=self.slba >> 32,
            cdw12=cdw12,
        )


DSM_RANGE_SIZE = 16
_DSM_RANGE = struct.Struct("<IIQ")


@dataclass(frozen=True, slots=True)
class DsmRange:
    """One Dataset Management range (16 bytes: context attributes, length, SLBA).

    Attributes:
        slba: first block.
        nblocks: number of blocks (1-based, unlike NLB in commands).
        attributes: context attributes.
    """

    slba: int
    nblocks: int
    attributes: int = 0


def encode_dsm_ranges(ranges: Iterable[DsmRange]) -> bytes:
    """The data of a Dataset Management command.

    Raises:
        SpecError: a range field does not fit, or there are not 1 to 256 ranges.
    """
    try:
        out = [_DSM_RANGE.pack(r.attributes, r.nblocks, r.slba) for r in ranges]
    except struct.error as exc:
        raise SpecError(f"DSM range field out of range: {exc}") from exc
    if not 1 <= len(out) <= 256:
        raise SpecError(f"Dataset Management takes 1 to 256 ranges, not {len(out)}")
    return b"".join(out)


def decode_dsm_ranges(data: Buffer, count: int) -> list[DsmRange]:
    """The first `count` ranges of a Dataset Management command's data.

    Raises:
        SpecError: `data` is shorter than `count` ranges.
    """
    if memoryview(data).nbytes < count * DSM_RANGE_SIZE:
        raise SpecError(f"{count} DSM ranges need {count * DSM_RANGE_SIZE} bytes of data")
    ranges = []
    for i in range(count):
        attributes, nblocks, slba = _DSM_RANGE.unpack_from(data, i * DSM_RANGE_SIZE)
        ranges.append(DsmRange(slba, nblocks, attributes))
    return ranges


@dataclass(frozen=True, slots=True)
class DatasetManagement:
    """Dataset Management (09h): hints or deallocation for a list of ranges.

    Attributes:
        nr: number of ranges, 0-based (CDW10 bits 7:0).
        deallocate: AD, CDW11 bit 2: the ranges may be deallocated (our unmap).
        integral_read: IDR, CDW11 bit 0.
        integral_write: IDW, CDW11 bit 1.
    """

    nr: int
    deallocate: bool = False
    integral_read: bool = False
    integral_write: bool = False

    opcode: ClassVar[IoOpcode] = IoOpcode.DATASET_MANAGEMENT

    @property
    def nranges(self) -> int:
        return self.nr + 1

    @property
    def data_length(self) -> int:
        """Bytes of range data the command carries."""
        return self.nranges * DSM_RANGE_SIZE

    @classmethod
    def from_command(cls, cmd: Command) -> DatasetManagement:
        attrs = cmd.cdw11
        return cls(cmd.cdw10 & 0xFF, bool(attrs & 4), bool(attrs & 1), bool(attrs & 2))

    def to_command(self, cid: int, nsid: int, sgl: SglDescriptor = NO_DATA) -> Command:
        """The Dataset Management command (SpecError when a field does not fit)."""
        _check_range("NR", self.nr, 0xFF)
        attrs = (
            (4 if self.deallocate else 0)
            | (1 if self.integral_read else 0)
            | (2 if self.integral_write else 0)
        )
        return Command(self.opcode, cid, nsid, sgl, cdw10=self.nr, cdw11=attrs)
