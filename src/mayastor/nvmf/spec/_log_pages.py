"""Log pages a fabrics controller returns (NVMe Base 1.4 section 5.14.1, NVMe-oF 1.1
section 5.3): error information, SMART / health information, changed namespace
list, asymmetric namespace access (ANA) and the discovery log.

Each page is built whole as bytes; `log_page_window` then cuts the part a Get Log
Page asked for (LPO and NUMD may cut a page anywhere on a dword boundary).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from mayastor.nvmf.spec._errors import SpecError
from mayastor.nvmf.spec._layout import Buffer, Field, FixedStruct, Layout


class LogPageId(enum.IntEnum):
    """Log page identifiers (LID)."""

    ERROR_INFORMATION = 0x01
    SMART_HEALTH = 0x02
    FIRMWARE_SLOT = 0x03
    CHANGED_NAMESPACES = 0x04
    COMMANDS_EFFECTS = 0x05
    ANA = 0x0C
    DISCOVERY = 0x70


def log_page_window(page: Buffer, offset: int, length: int) -> bytes:
    """The `length` bytes of `page` from `offset`, zero-filled past the page's end.

    Args:
        page: the whole log page.
        offset: LPO in bytes; a multiple of 4, at most the page length.
        length: bytes requested ((NUMD + 1) * 4).

    Raises:
        SpecError: `offset` is not dword aligned or lies beyond the page.
    """
    size = memoryview(page).nbytes
    if offset % 4 or offset < 0:
        raise SpecError(f"log page offset {offset} is not a multiple of 4")
    if offset > size:
        raise SpecError(f"log page offset {offset} is beyond the {size}-byte page")
    return bytes(memoryview(page)[offset : offset + length]).ljust(length, b"\x00")


# ------------------------------------------------------------------ error information

ERROR_LOG_ENTRY_SIZE = 64


@dataclass(frozen=True, slots=True)
class ErrorLogEntry(FixedStruct):
    """One error information entry (LID 01h), 64 bytes (NVMe Base 1.4 Figure 194).

    Attributes:
        error_count: a unique, increasing number for the error (0: entry unused).
        sqid: submission queue of the failed command.
        cid: its command identifier.
        status_field: the completion's status field: bit 0 phase tag, bits 15:1
            `NvmeStatus.field`.
        parameter_error_location: byte (bits 7:0) and bit (10:8) of the faulty field.
        lba: first LBA that had the error.
        nsid: namespace of the error.
        vendor_specific: log page with more detail, 0 if none.
        trtype: transport type, for transport-specific information.
        command_specific: command-specific information.
        transport_info: transport type specific information.
    """

    error_count: int
    sqid: int = 0
    cid: int = 0
    status_field: int = 0
    parameter_error_location: int = 0xFFFF
    lba: int = 0
    nsid: int = 0
    vendor_specific: int = 0
    trtype: int = 0
    command_specific: int = 0
    transport_info: int = 0

    layout: ClassVar[Layout] = Layout(
        "Error information entry",
        ERROR_LOG_ENTRY_SIZE,
        [
            Field("error_count", 0, "Q"),
            Field("sqid", 8, "H"),
            Field("cid", 10, "H"),
            Field("status_field", 12, "H"),
            Field("parameter_error_location", 14, "H"),
            Field("lba", 16, "Q"),
            Field("nsid", 24, "I"),
            Field("vendor_specific", 28, "B"),
            Field("trtype", 29, "B"),
            Field("command_specific", 32, "Q"),
            Field("transport_info", 40, "H"),
        ],
    )


def encode_error_log(entries: Iterable[ErrorLogEntry], slots: int) -> bytes:
    """An error information log of `slots` entries, newest first, unused ones zero.

    Raises:
        SpecError: more entries than slots, or a field that does not fit.
    """
    data = b"".join(entry.encode() for entry in entries)
    if len(data) > slots * ERROR_LOG_ENTRY_SIZE:
        raise SpecError(f"more error entries than the {slots} slots")
    return data.ljust(slots * ERROR_LOG_ENTRY_SIZE, b"\x00")


# ------------------------------------------------------------------ SMART / health

SMART_LOG_SIZE = 512


def data_units(nbytes: int) -> int:
    """Bytes as SMART data units: thousands of 512-byte units, rounded up."""
    return -(-nbytes // 512_000)


class CriticalWarning(enum.IntFlag):
    """Critical warning bits of the SMART log."""

    SPARE_BELOW_THRESHOLD = 1 << 0
    TEMPERATURE = 1 << 1
    RELIABILITY_DEGRADED = 1 << 2
    READ_ONLY = 1 << 3
    VOLATILE_BACKUP_FAILED = 1 << 4
    PMR_READ_ONLY = 1 << 5


@dataclass(frozen=True, slots=True)
class SmartLog(FixedStruct):
    """SMART / Health Information (LID 02h), 512 bytes (NVMe Base 1.4 Figure 196).

    Attributes:
        critical_warning: `CriticalWarning` bits.
        temperature: composite temperature in kelvin.
        available_spare: percent of spare capacity left.
        available_spare_threshold: percent below which a warning is raised.
        percentage_used: estimate of life used, may exceed 100.
        endurance_group_critical_warning: summary of endurance group warnings.
        data_units_read, data_units_written: in `data_units` (1000 x 512 bytes).
        host_read_commands, host_write_commands: command counts.
        controller_busy_time: minutes busy with I/O.
        power_cycles, power_on_hours, unsafe_shutdowns, media_errors: counts.
        error_log_entries: number of error information entries over the life.
        warning_temperature_time, critical_temperature_time: minutes above.
    """

    critical_warning: int = 0
    temperature: int = 0
    available_spare: int = 100
    available_spare_threshold: int = 10
    percentage_used: int = 0
    endurance_group_critical_warning: int = 0
    data_units_read: int = 0
    data_units_written: int = 0
    host_read_commands: int = 0
    host_write_commands: int = 0
    controller_busy_time: int = 0
    power_cycles: int = 0
    power_on_hours: int = 0
    unsafe_shutdowns: int = 0
    media_errors: int = 0
    error_log_entries: int = 0
    warning_temperature_time: int = 0
    critical_temperature_time: int = 0

    layout: ClassVar[Layout] = Layout(
        "SMART / health information",
        SMART_LOG_SIZE,
        [
            Field("critical_warning", 0, "B"),
            Field("temperature", 1, "H"),
            Field("available_spare", 3, "B"),
            Field("available_spare_threshold", 4, "B"),
            Field("percentage_used", 5, "B"),
            Field("endurance_group_critical_warning", 6, "B"),
            Field("data_units_read", 32, "u128"),
            Field("data_units_written", 48, "u128"),
            Field("host_read_commands", 64, "u128"),
            Field("host_write_commands", 80, "u128"),
            Field("controller_busy_time", 96, "u128"),
            Field("power_cycles", 112, "u128"),
            Field("power_on_hours", 128, "u128"),
            Field("unsafe_shutdowns", 144, "u128"),
            Field("media_errors", 160, "u128"),
            Field("error_log_entries", 176, "u128"),
            Field("warning_temperature_time", 192, "I"),
            Field("critical_temperature_time", 196, "I"),
        ],
    )


# ------------------------------------------------------------------ changed namespaces

CHANGED_NAMESPACE_LIST_SIZE = 4096
_MAX_CHANGED = CHANGED_NAMESPACE_LIST_SIZE // 4


def encode_changed_namespace_list(nsids: Iterable[int]) -> bytes:
    """The Changed Namespace List (LID 04h): up to 1024 NSIDs, ascending; when more
    changed, only a first entry of FFFFFFFFh.

    Raises:
        SpecError: an NSID outside 1..FFFFFFFEh.
    """
    chosen = sorted(set(nsids))
    if chosen and (chosen[0] <= 0 or chosen[-1] > 0xFFFF_FFFE):
        raise SpecError(f"NSIDs run from 1 to FFFFFFFEh, got {chosen[0]}..{chosen[-1]}")
    if len(chosen) > _MAX_CHANGED:
        chosen = [0xFFFF_FFFF]
    return struct.pack(f"<{len(chosen)}I", *chosen).ljust(CHANGED_NAMESPACE_LIST_SIZE, b"\x00")


# ------------------------------------------------------------------ ANA


class AnaState(enum.IntEnum):
    """Asymmetric namespace access state of an ANA group."""

    OPTIMIZED = 0x01
    NON_OPTIMIZED = 0x02
    INACCESSIBLE = 0x03
    PERSISTENT_LOSS = 0x04
    CHANGE = 0x0F


ANA_RGO = 0x01
"""Get Log Page LSP bit 0 for the ANA log: return groups only (no NSID lists)."""
_ANA_HEADER = struct.Struct("<QH6x")
_ANA_GROUP = struct.Struct("<IIQB15x")


@dataclass(frozen=True, slots=True)
class AnaGroupDescriptor:
    """One ANA group descriptor: 32 bytes, then 4 bytes per NSID.

    Attributes:
        grpid: ANA group identifier (1-based).
        state: the group's `AnaState` on this controller.
        nsids: attached namespaces in the group, ascending.
        chgcnt: change count of this group's descriptor.
    """

    grpid: int
    state: int
    nsids: tuple[int, ...] = ()
    chgcnt: int = 0


@dataclass(frozen=True, slots=True)
class AnaLog:
    """The ANA log page (LID 0Ch, NVMe Base 1.4 Figure 207).

    Attributes:
        chgcnt: change count of the whole page.
        groups: one descriptor per ANA group, ascending by group ID.
    """

    chgcnt: int
    groups: tuple[AnaGroupDescriptor, ...] = ()

    def encode(self, *, groups_only: bool = False) -> bytes:
        """The page; with `groups_only` (LSP RGO) the NSID lists are left out.

        Raises:
            SpecError: a field does not fit.
        """
        try:
            parts = [_ANA_HEADER.pack(self.chgcnt, len(self.groups))]
            for group in self.groups:
                nsids = () if groups_only else group.nsids
                parts.append(
                    _ANA_GROUP.pack(group.grpid, len(nsids), group.chgcnt, group.state)
                    + struct.pack(f"<{len(nsids)}I", *nsids)
                )
        except struct.error as exc:
            raise SpecError(f"ANA log field out of range: {exc}") from exc
        return b"".join(parts)

    @classmethod
    def decode(cls, raw: Buffer) -> AnaLog:
        """Read an ANA log page.

        Raises:
            SpecError: the page is shorter than its header and descriptors say.
        """
        data = bytes(raw)
        try:
            chgcnt, ngrps = _ANA_HEADER.unpack_from(data, 0)
            at = _ANA_HEADER.size
            groups = []
            for _ in range(ngrps):
                grpid, nnsids, group_chgcnt, state = _ANA_GROUP.unpack_from(data, at)
                at += _ANA_GROUP.size
                nsids = struct.unpack_from(f"<{nnsids}I", data, at)
                at += 4 * nnsids
                groups.append(AnaGroupDescriptor(grpid, state, tuple(nsids), group_chgcnt))
        except struct.error as exc:
            raise SpecError(f"ANA log page is truncated: {exc}") from exc
        return cls(chgcnt, tuple(groups))


# ------------------------------------------------------------------ discovery


class TransportType(enum.IntEnum):
    """TRTYPE of a discovery log entry."""

    RDMA = 0x01
    FIBRE_CHANNEL = 0x02
    TCP = 0x03
    LOOP = 0xFE


class AddressFamily(enum.IntEnum):
    """ADRFAM of a discovery log entry."""

    IPV4 = 0x01
    IPV6 = 0x02
    INFINIBAND = 0x03
    FIBRE_CHANNEL = 0x04
    LOOP = 0xFE


class SubsystemType(enum.IntEnum):
    """SUBTYPE of a discovery log entry."""

    DISCOVERY_REFERRAL = 0x01  # another discovery subsystem
    NVME = 0x02  # an NVM subsystem with namespaces
    CURRENT_DISCOVERY = 0x03  # this discovery subsystem itself


class SecureChannel(enum.IntEnum):
    """TREQ bits 1:0: whether a secure channel is required."""

    NOT_SPECIFIED = 0
    REQUIRED = 1
    NOT_REQUIRED = 2


TREQ_SQ_FLOW_CONTROL_DISABLE = 0x04
"""TREQ bit 2: the controller supports disabling SQ flow control."""


class TcpSecurityType(enum.IntEnum):
    """SECTYPE, byte 0 of the TSAS of a TCP discovery entry."""

    NONE = 0x00
    TLS_1_2 = 0x01
    TLS_1_3 = 0x02


DISCOVERY_HEADER_SIZE = 1024
DISCOVERY_ENTRY_SIZE = 1024
_DISCOVERY_HEADER = struct.Struct("<QQH")


@dataclass(frozen=True, slots=True)
class DiscoveryLogEntry(FixedStruct):
    """One discovery log page entry, 1024 bytes (NVMe-oF 1.1 Figure 32).

    Attributes:
        trtype: transport type (`TransportType`).
        adrfam: address family (`AddressFamily`).
        subtype: subsystem type (`SubsystemType`).
        treq: transport requirements (`SecureChannel` in bits 1:0, bit 2 SQ flow
            control disable).
        portid: NVM subsystem port.
        cntlid: controller ID: FFFFh for the dynamic controller model.
        asqsz: maximum admin submission queue size (at least 32).
        eflags: entry flags.
        trsvcid: transport service ID: the TCP port, as text.
        subnqn: the subsystem NQN.
        traddr: transport address: the IP address, as text.
        sectype: TSAS byte 0 for TCP (`TcpSecurityType`).
    """

    trsvcid: str
    traddr: str
    subnqn: str
    trtype: int = TransportType.TCP
    adrfam: int = AddressFamily.IPV4
    subtype: int = SubsystemType.NVME
    treq: int = SecureChannel.NOT_REQUIRED
    portid: int = 0
    cntlid: int = 0xFFFF
    asqsz: int = 32
    eflags: int = 0
    sectype: int = TcpSecurityType.NONE

    layout: ClassVar[Layout] = Layout(
        "Discovery log entry",
        DISCOVERY_ENTRY_SIZE,
        [
            Field("trtype", 0, "B"),
            Field("adrfam", 1, "B"),
            Field("subtype", 2, "B"),
            Field("treq", 3, "B"),
            Field("portid", 4, "H"),
            Field("cntlid", 6, "H"),
            Field("asqsz", 8, "H"),
            Field("eflags", 10, "H"),
            Field("trsvcid", 32, "ascii", 32),
            Field("subnqn", 256, "nqn", 256),
            Field("traddr", 512, "ascii", 256),
            Field("sectype", 768, "B"),
        ],
    )


@dataclass(frozen=True, slots=True)
class DiscoveryLogPage:
    """The discovery log page (LID 70h): a 1024-byte header, then the entries.

    Attributes:
        genctr: generation counter, changed whenever the entries change.
        entries: the records (NUMREC is their count).
        recfmt: record format, 0.
    """

    genctr: int
    entries: tuple[DiscoveryLogEntry, ...] = ()
    recfmt: int = 0

    @property
    def numrec(self) -> int:
        return len(self.entries)

    def encode(self) -> bytes:
        """Header and entries (SpecError when a field does not fit)."""
        try:
            header = _DISCOVERY_HEADER.pack(self.genctr, self.numrec, self.recfmt)
        except struct.error as exc:
            raise SpecError(f"discovery log header field out of range: {exc}") from exc
        return b"".join(
            [header.ljust(DISCOVERY_HEADER_SIZE, b"\x00")] + [e.encode() for e in self.entries]
        )

    @staticmethod
    def decode_header(raw: Buffer) -> tuple[int, int, int]:
        """GENCTR, NUMREC and RECFMT from the first 1024 bytes of the page (or more).

        Raises:
            SpecError: fewer than 18 bytes.
        """
        try:
            genctr, numrec, recfmt = _DISCOVERY_HEADER.unpack_from(raw, 0)
        except struct.error as exc:
            raise SpecError("a discovery log header is 1024 bytes") from exc
        return genctr, numrec, recfmt

    @classmethod
    def decode(cls, raw: Buffer) -> DiscoveryLogPage:
        """Read a whole page.

        Raises:
            SpecError: shorter than its NUMREC entries, or an entry that does not read.
        """
        genctr, numrec, recfmt = cls.decode_header(raw)
        view = memoryview(raw)
        if view.nbytes < DISCOVERY_HEADER_SIZE + numrec * DISCOVERY_ENTRY_SIZE:
            raise SpecError(f"discovery log page too short for its {numrec} entries")
        entries = tuple(
            DiscoveryLogEntry.decode(view[start : start + DISCOVERY_ENTRY_SIZE])
            for start in range(
                DISCOVERY_HEADER_SIZE,
                DISCOVERY_HEADER_SIZE + numrec * DISCOVERY_ENTRY_SIZE,
                DISCOVERY_ENTRY_SIZE,
            )
        )
        return cls(genctr, entries, recfmt)
