"""Identify data (NVMe Base 1.4 section 5.15.2): Identify Controller, Identify
Namespace, the active namespace ID list (CNS 02h) and the namespace identification
descriptor list (CNS 03h). Every structure is 4096 bytes.
"""

from __future__ import annotations

import enum
import struct
import uuid as uuid_mod
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar

from mayastor.nvmf.spec._errors import SpecError
from mayastor.nvmf.spec._layout import Buffer, Field, FixedStruct, Layout

IDENTIFY_DATA_SIZE = 4096


class ControllerMultiPath(enum.IntFlag):
    """CMIC: multi-path I/O and namespace sharing capabilities."""

    MULTI_PORT = 1 << 0
    MULTI_CONTROLLER = 1 << 1
    SRIOV = 1 << 2
    ANA_REPORTING = 1 << 3


class AsyncEventsSupported(enum.IntFlag):
    """OAES: optional asynchronous events supported."""

    NAMESPACE_ATTRIBUTE = 1 << 8
    FIRMWARE_ACTIVATION = 1 << 9
    ANA_CHANGE = 1 << 11
    DISCOVERY_LOG_CHANGE = 1 << 31


class LogPageAttributes(enum.IntFlag):
    """LPA: log page attributes."""

    SMART_PER_NAMESPACE = 1 << 0
    COMMANDS_EFFECTS = 1 << 1
    EXTENDED_DATA = 1 << 2  # Get Log Page takes NUMDU and LPO
    TELEMETRY = 1 << 3


class OptionalNvmCommands(enum.IntFlag):
    """ONCS: optional NVM commands supported."""

    COMPARE = 1 << 0
    WRITE_UNCORRECTABLE = 1 << 1
    DATASET_MANAGEMENT = 1 << 2
    WRITE_ZEROES = 1 << 3
    SAVE_SELECT = 1 << 4
    RESERVATIONS = 1 << 5
    TIMESTAMP = 1 << 6


class SglSupport(enum.IntFlag):
    """SGLS: SGL support."""

    SUPPORTED = 1 << 0  # SGLs supported, no dword alignment needed
    KEYED_DATA_BLOCK = 1 << 2
    BIT_BUCKET = 1 << 16
    OFFSET = 1 << 20  # the address of a data block may be an offset (in-capsule data)
    TRANSPORT_DATA_BLOCK = 1 << 21


class AnaCapabilities(enum.IntFlag):
    """ANACAP: ANA states reported and group ID behaviour."""

    OPTIMIZED = 1 << 0
    NON_OPTIMIZED = 1 << 1
    INACCESSIBLE = 1 << 2
    PERSISTENT_LOSS = 1 << 3
    CHANGE = 1 << 4
    GROUP_ID_FIXED = 1 << 6  # ANAGRPID does not change while the namespace is attached
    NON_ZERO_GROUP_ID = 1 << 7


def _layout(name: str, spec: Iterable[tuple[str, int, str] | tuple[str, int, str, int]]) -> Layout:
    return Layout(name, IDENTIFY_DATA_SIZE, [Field(*entry) for entry in spec])


IDENTIFY_CONTROLLER_LAYOUT = _layout(
    "Identify Controller",
    [
        ("vid", 0, "H"),
        ("ssvid", 2, "H"),
        ("sn", 4, "ascii", 20),
        ("mn", 24, "ascii", 40),
        ("fr", 64, "ascii", 8),
        ("rab", 72, "B"),
        ("ieee", 73, "u24"),
        ("cmic", 76, "B"),
        ("mdts", 77, "B"),
        ("cntlid", 78, "H"),
        ("ver", 80, "I"),
        ("rtd3r", 84, "I"),
        ("rtd3e", 88, "I"),
        ("oaes", 92, "I"),
        ("ctratt", 96, "I"),
        ("rrls", 100, "H"),
        ("cntrltype", 111, "B"),
        ("fguid", 112, "bytes", 16),
        ("crdt1", 128, "H"),
        ("crdt2", 130, "H"),
        ("crdt3", 132, "H"),
        ("oacs", 256, "H"),
        ("acl", 258, "B"),
        ("aerl", 259, "B"),
        ("frmw", 260, "B"),
        ("lpa", 261, "B"),
        ("elpe", 262, "B"),
        ("npss", 263, "B"),
        ("avscc", 264, "B"),
        ("apsta", 265, "B"),
        ("wctemp", 266, "H"),
        ("cctemp", 268, "H"),
        ("kas", 320, "H"),
        ("anatt", 342, "B"),
        ("anacap", 343, "B"),
        ("anagrpmax", 344, "I"),
        ("nanagrpid", 348, "I"),
        ("sqes", 512, "B"),
        ("cqes", 513, "B"),
        ("maxcmd", 514, "H"),
        ("nn", 516, "I"),
        ("oncs", 520, "H"),
        ("fuses", 522, "H"),
        ("fna", 524, "B"),
        ("vwc", 525, "B"),
        ("awun", 526, "H"),
        ("awupf", 528, "H"),
        ("nvscc", 530, "B"),
        ("nwpc", 531, "B"),
        ("acwu", 532, "H"),
        ("sgls", 536, "I"),
        ("mnan", 540, "I"),
        ("subnqn", 768, "nqn", 256),
        ("ioccsz", 1792, "I"),
        ("iorcsz", 1796, "I"),
        ("icdoff", 1800, "H"),
        ("fcatt", 1802, "B"),
        ("msdbd", 1803, "B"),
        ("ofcs", 1804, "H"),
    ],
)


@dataclass(frozen=True, slots=True)
class IdentifyController(FixedStruct):
    """Identify Controller data (CNS 01h), 4096 bytes (NVMe Base 1.4 Figure 247,
    NVMe-oF 1.1 Figure 28 for the Fabrics fields at 1792).

    Field names are the spec's acronyms in lower case. Text fields (SN, MN, FR) are
    ASCII padded with spaces; SUBNQN is NUL-padded UTF-8. IEEE is the 24-bit OUI as
    an integer. Multi-byte capability fields are plain integers; the flag enums of
    this module name their bits.
    """

    vid: int = 0
    ssvid: int = 0
    sn: str = ""
    mn: str = ""
    fr: str = ""
    rab: int = 0
    ieee: int = 0
    cmic: int = 0
    mdts: int = 0
    cntlid: int = 0
    ver: int = 0
    rtd3r: int = 0
    rtd3e: int = 0
    oaes: int = 0
    ctratt: int = 0
    rrls: int = 0
    cntrltype: int = 0
    fguid: bytes = bytes(16)
    crdt1: int = 0
    crdt2: int = 0
    crdt3: int = 0
    oacs: int = 0
    acl: int = 0
    aerl: int = 0
    frmw: int = 0
    lpa: int = 0
    elpe: int = 0
    npss: int = 0
    avscc: int = 0
    apsta: int = 0
    wctemp: int = 0
    cctemp: int = 0
    kas: int = 0
    anatt: int = 0
    anacap: int = 0
    anagrpmax: int = 0
    nanagrpid: int = 0
    sqes: int = 0
    cqes: int = 0
    maxcmd: int = 0
    nn: int = 0
    oncs: int = 0
    fuses: int = 0
    fna: int = 0
    vwc: int = 0
    awun: int = 0
    awupf: int = 0
    nvscc: int = 0
    nwpc: int = 0
    acwu: int = 0
    sgls: int = 0
    mnan: int = 0
    subnqn: str = ""
    ioccsz: int = 0
    iorcsz: int = 0
    icdoff: int = 0
    fcatt: int = 0
    msdbd: int = 0
    ofcs: int = 0

    layout: ClassVar[Layout] = IDENTIFY_CONTROLLER_LAYOUT


@dataclass(frozen=True, slots=True)
class LbaFormat:
    """One LBA format of Identify Namespace (4 bytes).

    Attributes:
        lbads: LBA data size as a power of two (9 for 512 bytes, 12 for 4096).
        ms: metadata bytes per block.
        rp: relative performance (0 best .. 3 degraded).
    """

    lbads: int
    ms: int = 0
    rp: int = 0

    @classmethod
    def for_block_size(cls, block_size: int) -> LbaFormat:
        """The format of a power-of-two block size without metadata.

        Raises:
            SpecError: `block_size` is not a power of two of at least 512.
        """
        if block_size < 512 or block_size & (block_size - 1):
            raise SpecError(f"block size {block_size} is not a power of two >= 512")
        return cls(block_size.bit_length() - 1)

    @property
    def block_size(self) -> int:
        return 1 << self.lbads


_LBAF = struct.Struct("<HBB")
LBAF_OFFSET = 128
MAX_LBA_FORMATS = 16

IDENTIFY_NAMESPACE_LAYOUT = _layout(
    "Identify Namespace",
    [
        ("nsze", 0, "Q"),
        ("ncap", 8, "Q"),
        ("nuse", 16, "Q"),
        ("nsfeat", 24, "B"),
        ("nlbaf", 25, "B"),
        ("flbas", 26, "B"),
        ("mc", 27, "B"),
        ("dpc", 28, "B"),
        ("dps", 29, "B"),
        ("nmic", 30, "B"),
        ("rescap", 31, "B"),
        ("fpi", 32, "B"),
        ("dlfeat", 33, "B"),
        ("nawun", 34, "H"),
        ("nawupf", 36, "H"),
        ("nacwu", 38, "H"),
        ("nabsn", 40, "H"),
        ("nabo", 42, "H"),
        ("nabspf", 44, "H"),
        ("noiob", 46, "H"),
        ("nvmcap", 48, "u128"),
        ("npwg", 64, "H"),
        ("npwa", 66, "H"),
        ("npdg", 68, "H"),
        ("npda", 70, "H"),
        ("nows", 72, "H"),
        ("anagrpid", 92, "I"),
        ("nsattr", 99, "B"),
        ("nvmsetid", 100, "H"),
        ("endgid", 102, "H"),
        ("nguid", 104, "bytes", 16),
        ("eui64", 120, "bytes", 8),
    ],
)


class NamespaceFeatures(enum.IntFlag):
    """NSFEAT bits."""

    THIN_PROVISIONING = 1 << 0
    ATOMIC_FIELDS = 1 << 1  # NAWUN, NAWUPF, NACWU are valid
    DEALLOCATED_ERROR = 1 << 2
    UID_REUSE = 1 << 3
    OPTIMAL_PERFORMANCE = 1 << 4  # NPWG, NPWA, NPDG, NPDA, NOWS are valid


DLFEAT_READS_ZEROES = 0x01
"""DLFEAT bits 2:0 = 001b: deallocated blocks read as zeroes."""
DLFEAT_WRITE_ZEROES_DEALLOCATES = 0x08
"""DLFEAT bit 3: Write Zeroes with DEAC deallocates."""
NMIC_SHARED = 0x01
"""NMIC bit 0: the namespace may be attached to more than one controller."""


@dataclass(frozen=True, slots=True)
class IdentifyNamespace:
    """Identify Namespace data (CNS 00h), 4096 bytes (NVMe Base 1.4 Figure 245).

    Attributes are the spec's acronyms in lower case; `lbaf` holds the LBA formats
    (NLBAF is written as ``len(lbaf) - 1``), `flbas` bits 3:0 pick the one in use.
    NGUID (16 bytes) and EUI64 (8 bytes) are raw bytes, zero when not reported.
    """

    nsze: int
    ncap: int
    nuse: int
    lbaf: tuple[LbaFormat, ...] = (LbaFormat(9),)
    flbas: int = 0
    nsfeat: int = 0
    mc: int = 0
    dpc: int = 0
    dps: int = 0
    nmic: int = 0
    rescap: int = 0
    fpi: int = 0
    dlfeat: int = 0
    nawun: int = 0
    nawupf: int = 0
    nacwu: int = 0
    nabsn: int = 0
    nabo: int = 0
    nabspf: int = 0
    noiob: int = 0
    nvmcap: int = 0
    npwg: int = 0
    npwa: int = 0
    npdg: int = 0
    npda: int = 0
    nows: int = 0
    anagrpid: int = 0
    nsattr: int = 0
    nvmsetid: int = 0
    endgid: int = 0
    nguid: bytes = bytes(16)
    eui64: bytes = bytes(8)

    layout: ClassVar[Layout] = IDENTIFY_NAMESPACE_LAYOUT

    @property
    def nlbaf(self) -> int:
        """Number of LBA formats, 0-based."""
        return len(self.lbaf) - 1

    @property
    def block_size(self) -> int:
        """Bytes per block of the format in use."""
        return self.lbaf[self.flbas & 0xF].block_size

    def encode(self) -> bytes:
        """The 4096 bytes.

        Raises:
            SpecError: a field does not fit, no or more than 16 LBA formats, or FLBAS
                names a format that is not there.
        """
        if not 1 <= len(self.lbaf) <= MAX_LBA_FORMATS:
            raise SpecError(f"1 to {MAX_LBA_FORMATS} LBA formats, not {len(self.lbaf)}")
        if self.flbas & 0xF >= len(self.lbaf):
            raise SpecError(f"FLBAS {self.flbas} names a missing LBA format", offset=26)
        values = {f.name: getattr(self, f.name) for f in self.layout.fields if f.name != "nlbaf"}
        values["nlbaf"] = self.nlbaf
        out = self.layout.encode(values)
        for i, fmt in enumerate(self.lbaf):
            try:
                _LBAF.pack_into(out, LBAF_OFFSET + 4 * i, fmt.ms, fmt.lbads, fmt.rp)
            except struct.error as exc:
                raise SpecError(f"LBA format {i}: {exc}", offset=LBAF_OFFSET + 4 * i) from exc
        return bytes(out)

    @classmethod
    def decode(cls, raw: Buffer) -> IdentifyNamespace:
        """Read 4096 bytes.

        Raises:
            SpecError: not 4096 bytes or NLBAF above 15.
        """
        values = cls.layout.decode(raw)
        count = values.pop("nlbaf") + 1
        if count > MAX_LBA_FORMATS:
            raise SpecError(f"NLBAF {count - 1} is above {MAX_LBA_FORMATS - 1}", offset=25)
        lbaf = []
        for i in range(count):
            ms, lbads, rp = _LBAF.unpack_from(raw, LBAF_OFFSET + 4 * i)
            lbaf.append(LbaFormat(lbads, ms, rp & 0x3))
        return cls(lbaf=tuple(lbaf), **values)


MAX_NAMESPACE_IDS = IDENTIFY_DATA_SIZE // 4


def encode_namespace_list(nsids: Iterable[int], greater_than: int = 0) -> bytes:
    """An active namespace ID list (CNS 02h): ascending NSIDs above `greater_than`.

    At most 1024 fit; the rest are for the host to fetch with a higher starting NSID.

    Raises:
        SpecError: an NSID is 0 or does not fit in 32 bits.
    """
    chosen = sorted(n for n in set(nsids) if n > greater_than)[:MAX_NAMESPACE_IDS]
    if chosen and (chosen[0] <= 0 or chosen[-1] > 0xFFFF_FFFE):
        raise SpecError(f"NSIDs run from 1 to FFFFFFFEh, got {chosen[0]}..{chosen[-1]}")
    return struct.pack(f"<{len(chosen)}I", *chosen).ljust(IDENTIFY_DATA_SIZE, b"\x00")


def decode_namespace_list(raw: Buffer) -> list[int]:
    """The NSIDs of a namespace ID list (up to the first zero entry).

    Raises:
        SpecError: not 4096 bytes.
    """
    if memoryview(raw).nbytes != IDENTIFY_DATA_SIZE:
        raise SpecError(f"a namespace list is 4096 bytes, got {memoryview(raw).nbytes}")
    nsids = []
    for (nsid,) in struct.iter_unpack("<I", raw):
        if not nsid:
            break
        nsids.append(nsid)
    return nsids


class NamespaceIdType(enum.IntEnum):
    """NIDT of a namespace identification descriptor, with the length it implies."""

    EUI64 = 0x01  # 8 bytes
    NGUID = 0x02  # 16 bytes
    UUID = 0x03  # 16 bytes
    CSI = 0x04  # 1 byte: command set identifier


NID_LENGTHS: dict[int, int] = {
    NamespaceIdType.EUI64: 8,
    NamespaceIdType.NGUID: 16,
    NamespaceIdType.UUID: 16,
    NamespaceIdType.CSI: 1,
}


@dataclass(frozen=True, slots=True)
class NamespaceIdDescriptor:
    """One namespace identification descriptor: NIDT, NIDL, reserved, then NID."""

    nidt: int
    nid: bytes = field(default=b"")

    @classmethod
    def uuid(cls, value: uuid_mod.UUID) -> NamespaceIdDescriptor:
        return cls(NamespaceIdType.UUID, value.bytes)

    @classmethod
    def nguid(cls, value: bytes) -> NamespaceIdDescriptor:
        return cls(NamespaceIdType.NGUID, value)

    @classmethod
    def eui64(cls, value: bytes) -> NamespaceIdDescriptor:
        return cls(NamespaceIdType.EUI64, value)


def encode_namespace_id_descriptors(descriptors: Iterable[NamespaceIdDescriptor]) -> bytes:
    """The 4096-byte descriptor list (CNS 03h), zero-terminated.

    Raises:
        SpecError: an unknown type, a NID of the wrong length for its type, or a list
            that does not fit.
    """
    out = bytearray()
    for desc in descriptors:
        want = NID_LENGTHS.get(desc.nidt)
        if want is None or len(desc.nid) != want:
            raise SpecError(f"NIDT {desc.nidt} with a {len(desc.nid)}-byte NID")
        out += bytes([desc.nidt, want, 0, 0]) + desc.nid
    if len(out) > IDENTIFY_DATA_SIZE - 4:
        raise SpecError("namespace identification descriptors do not fit in 4096 bytes")
    return bytes(out.ljust(IDENTIFY_DATA_SIZE, b"\x00"))


def decode_namespace_id_descriptors(raw: Buffer) -> list[NamespaceIdDescriptor]:
    """The descriptors of a CNS 03h list, up to the first with NIDT 0.

    Unknown types are kept (with the length the list gives them).

    Raises:
        SpecError: not 4096 bytes, or a descriptor that runs past the end.
    """
    data = bytes(raw)
    if len(data) != IDENTIFY_DATA_SIZE:
        raise SpecError(f"a descriptor list is 4096 bytes, got {len(data)}")
    found = []
    at = 0
    while at + 4 <= len(data) and data[at]:
        nidt, nidl = data[at], data[at + 1]
        if at + 4 + nidl > len(data):
            raise SpecError(f"descriptor at byte {at} runs past the end", offset=at)
        found.append(NamespaceIdDescriptor(nidt, data[at + 4 : at + 4 + nidl]))
        at += 4 + nidl
    return found
