"""Fabrics commands (NVMe-oF 1.1 section 3): Connect with its 1024-byte data, Property
Get and Property Set.

A Fabrics command has opcode 7Fh and FCTYPE in byte 4; its own fields start at byte 40
(CDW10): Connect has RECFMT, QID, SQSIZE, CATTR and KATO there; the property commands
the attribute (size), offset and value; Authentication Send and Receive (NVMe Base 2.0)
the security protocol and its specific fields, and the transfer or allocation length.
"""

from __future__ import annotations

import uuid as uuid_mod
from dataclasses import dataclass
from typing import ClassVar

from mayastor.nvmf.spec._command import NO_DATA, Command, SglDescriptor
from mayastor.nvmf.spec._errors import SpecError
from mayastor.nvmf.spec._layout import Field, FixedStruct, Layout
from mayastor.nvmf.spec._opcodes import AdminOpcode, FabricsCommandType

CONNECT_DATA_SIZE = 1024
DYNAMIC_CNTLID = 0xFFFF
"""CNTLID in Connect data asking the subsystem to allocate any controller."""
RECFMT_1_0 = 0


def _check_range(name: str, value: int, limit: int) -> None:
    if not 0 <= value <= limit:
        raise SpecError(f"{name} {value} is outside 0..{limit}")


def _fabrics_command(
    fctype: FabricsCommandType, cid: int, sgl: SglDescriptor, **cdws: int
) -> Command:
    return Command(AdminOpcode.FABRICS, cid, int(fctype), sgl, **cdws)


@dataclass(frozen=True, slots=True)
class Connect:
    """Connect (FCTYPE 01h): create the admin queue (QID 0) or an I/O queue.

    Attributes:
        qid: queue identifier, CDW10 bits 31:16.
        sqsize: submission queue size, 0-based, CDW11 bits 15:0.
        kato: keep alive timeout in milliseconds (admin queue only), CDW12.
        cattr: connect attributes, CDW11 bits 23:16 (bit 2: disable SQ flow control).
        recfmt: record format, CDW10 bits 15:0 (0).
    """

    qid: int
    sqsize: int
    kato: int = 0
    cattr: int = 0
    recfmt: int = RECFMT_1_0

    fctype: ClassVar[FabricsCommandType] = FabricsCommandType.CONNECT
    data_length: ClassVar[int] = CONNECT_DATA_SIZE
    # Byte offsets in the SQE, for the IPO of an invalid-parameter response.
    RECFMT_OFFSET: ClassVar[int] = 40
    QID_OFFSET: ClassVar[int] = 42
    SQSIZE_OFFSET: ClassVar[int] = 44
    CATTR_OFFSET: ClassVar[int] = 46
    KATO_OFFSET: ClassVar[int] = 48

    @property
    def queue_depth(self) -> int:
        """Entries in the submission queue (SQSIZE is 0-based)."""
        return self.sqsize + 1

    @property
    def sq_flow_control_disabled(self) -> bool:
        return bool(self.cattr & 0x04)

    @classmethod
    def from_command(cls, cmd: Command) -> Connect:
        return cls(
            qid=cmd.cdw10 >> 16,
            sqsize=cmd.cdw11 & 0xFFFF,
            kato=cmd.cdw12,
            cattr=(cmd.cdw11 >> 16) & 0xFF,
            recfmt=cmd.cdw10 & 0xFFFF,
        )

    def to_command(self, cid: int, sgl: SglDescriptor | None = None) -> Command:
        """The command; its 1024 bytes of data go in-capsule unless `sgl` says otherwise.

        Raises:
            SpecError: a field does not fit.
        """
        _check_range("QID", self.qid, 0xFFFF)
        _check_range("SQSIZE", self.sqsize, 0xFFFF)
        _check_range("CATTR", self.cattr, 0xFF)
        _check_range("KATO", self.kato, 0xFFFF_FFFF)
        return _fabrics_command(
            self.fctype,
            cid,
            sgl or SglDescriptor.in_capsule(CONNECT_DATA_SIZE),
            cdw10=self.recfmt | self.qid << 16,
            cdw11=self.sqsize | self.cattr << 16,
            cdw12=self.kato,
        )


CONNECT_DATA_LAYOUT = Layout(
    "Connect data",
    CONNECT_DATA_SIZE,
    [
        Field("hostid", 0, "uuid"),
        Field("cntlid", 16, "H"),
        Field("subnqn", 256, "nqn", 256),
        Field("hostnqn", 512, "nqn", 256),
    ],
)


@dataclass(frozen=True, slots=True)
class ConnectData(FixedStruct):
    """The 1024-byte data of a Connect command (NVMe-oF 1.1 Figure 20).

    Attributes:
        hostid: the host identifier (a UUID).
        cntlid: the controller wanted: `DYNAMIC_CNTLID` for any (admin queue), or
            the one the admin queue's Connect returned (I/O queues).
        subnqn: the subsystem to connect to.
        hostnqn: the host's NQN.

    NQN fields are NUL-terminated; decoding also accepts trailing spaces.
    """

    hostid: uuid_mod.UUID
    cntlid: int
    subnqn: str
    hostnqn: str

    layout: ClassVar[Layout] = CONNECT_DATA_LAYOUT


CONNECT_AUTHREQ_ATR = 1 << 17
"""Connect completion DW0: authentication transaction required (AUTHREQ.ATR)."""
CONNECT_AUTHREQ_ASCR = 1 << 18
"""Connect completion DW0: authentication with secure channel required (AUTHREQ.ASCR)."""


def connect_success_dw0(cntlid: int, *, authenticate: bool = False) -> int:
    """Completion DW0 of a successful Connect: the controller ID in bits 15:0, and ATR
    when the host must authenticate before any other command."""
    return (cntlid & 0xFFFF) | (CONNECT_AUTHREQ_ATR if authenticate else 0)


@dataclass(frozen=True, slots=True)
class Authentication:
    """Authentication Send (FCTYPE 05h) or Receive (06h): one message of an in-band
    authentication protocol, as the command's data.

    Attributes:
        send: True for Authentication Send (host to controller data).
        length: TL (Send) or AL (Receive), CDW11: bytes of the message or of room for it.
        secp: SECP, CDW10 bits 31:24 (E9h: NVMe in-band authentication).
        spsp0: SPSP0, CDW10 bits 15:8.
        spsp1: SPSP1, CDW10 bits 23:16.
    """

    send: bool
    length: int
    secp: int = 0xE9
    spsp0: int = 0x01
    spsp1: int = 0x01

    @classmethod
    def from_command(cls, cmd: Command) -> Authentication:
        return cls(
            cmd.fctype == FabricsCommandType.AUTHENTICATION_SEND,
            cmd.cdw11,
            cmd.cdw10 >> 24,
            (cmd.cdw10 >> 8) & 0xFF,
            (cmd.cdw10 >> 16) & 0xFF,
        )

    def to_command(self, cid: int, sgl: SglDescriptor) -> Command:
        """The command (SpecError when a field does not fit)."""
        _check_range("length", self.length, 0xFFFF_FFFF)
        for name, value in (("SECP", self.secp), ("SPSP0", self.spsp0), ("SPSP1", self.spsp1)):
            _check_range(name, value, 0xFF)
        fctype = (
            FabricsCommandType.AUTHENTICATION_SEND
            if self.send
            else FabricsCommandType.AUTHENTICATION_RECEIVE
        )
        return _fabrics_command(
            fctype,
            cid,
            sgl,
            cdw10=self.spsp0 << 8 | self.spsp1 << 16 | self.secp << 24,
            cdw11=self.length,
        )


def connect_invalid_parameter_dw0(offset: int, *, in_data: bool) -> int:
    """Completion DW0 of a Connect refused with CONNECT_INVALID_PARAMETERS.

    Args:
        offset: IPO, the byte offset of the invalid parameter.
        in_data: IATTR: the offset is in the Connect data (True) or the SQE (False).
    """
    return (offset & 0xFFFF) | (1 << 16 if in_data else 0)


PROPERTY_SIZE_4 = 0
PROPERTY_SIZE_8 = 1


@dataclass(frozen=True, slots=True)
class PropertyGet:
    """Property Get (FCTYPE 04h): read a controller property; the value comes back in
    completion DW0 (and DW1 for 8-byte properties).

    Attributes:
        offset: OFST, the property's offset (`PropertyOffset`), CDW11.
        size: 4 or 8 bytes (ATTRIB bits 2:0 of byte 40: 0 means 4, 1 means 8).
    """

    offset: int
    size: int = 4

    fctype: ClassVar[FabricsCommandType] = FabricsCommandType.PROPERTY_GET

    @classmethod
    def from_command(cls, cmd: Command) -> PropertyGet:
        """Read the command.

        Raises:
            SpecError: ATTRIB names a size other than 4 or 8 bytes (offset 40).
        """
        return cls(cmd.cdw11, _attrib_size(cmd.cdw10))

    def to_command(self, cid: int) -> Command:
        """The command (SpecError when a field does not fit)."""
        _check_range("OFST", self.offset, 0xFFFF_FFFF)
        return _fabrics_command(
            self.fctype, cid, NO_DATA, cdw10=_attrib(self.size), cdw11=self.offset
        )


@dataclass(frozen=True, slots=True)
class PropertySet:
    """Property Set (FCTYPE 00h): write a controller property.

    Attributes:
        offset: OFST, the property's offset (`PropertyOffset`), CDW11.
        value: the value, CDW12-13.
        size: 4 or 8 bytes.
    """

    offset: int
    value: int
    size: int = 4

    fctype: ClassVar[FabricsCommandType] = FabricsCommandType.PROPERTY_SET

    @classmethod
    def from_command(cls, cmd: Command) -> PropertySet:
        """Read the command.

        Raises:
            SpecError: ATTRIB names a size other than 4 or 8 bytes (offset 40).
        """
        size = _attrib_size(cmd.cdw10)
        value = cmd.cdw12 | cmd.cdw13 << 32 if size == 8 else cmd.cdw12
        return cls(cmd.cdw11, value, size)

    def to_command(self, cid: int) -> Command:
        """The command (SpecError when a field does not fit)."""
        _check_range("OFST", self.offset, 0xFFFF_FFFF)
        _check_range("value", self.value, (1 << (8 * self.size)) - 1)
        return _fabrics_command(
            self.fctype,
            cid,
            NO_DATA,
            cdw10=_attrib(self.size),
            cdw11=self.offset,
            cdw12=self.value & 0xFFFF_FFFF,
            cdw13=self.value >> 32,
        )


def _attrib(size: int) -> int:
    if size == 4:
        return PROPERTY_SIZE_4
    if size == 8:
        return PROPERTY_SIZE_8
    raise SpecError(f"a property is 4 or 8 bytes, not {size}")


def _attrib_size(cdw10: int) -> int:
    code = cdw10 & 0x7
    if code == PROPERTY_SIZE_4:
        return 4
    if code == PROPERTY_SIZE_8:
        return 8
    raise SpecError(f"property ATTRIB size code {code} is reserved", offset=40)
