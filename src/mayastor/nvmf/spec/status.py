"""NVMe completion status: status code types, status codes and the 16-bit status field.

Values are from NVMe Base 1.4 (Figures 125-129) and NVMe over Fabrics 1.1 (Connect
command-specific statuses). This module is pure data: it knows nothing of devices,
sockets or our error classes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class StatusCodeType(enum.IntEnum):
    """The SCT field of a completion's status."""

    GENERIC = 0  # generic command status
    COMMAND_SPECIFIC = 1  # meaning depends on the opcode
    MEDIA = 2  # media and data integrity errors
    PATH = 3  # path-related status
    VENDOR = 7  # vendor specific


class GenericStatus(enum.IntEnum):
    """Status codes of SCT 0 (NVMe Base 1.4, Figure 128)."""

    SUCCESS = 0x00
    INVALID_OPCODE = 0x01
    INVALID_FIELD = 0x02
    COMMAND_ID_CONFLICT = 0x03
    DATA_TRANSFER_ERROR = 0x04
    ABORTED_POWER_LOSS = 0x05
    INTERNAL_ERROR = 0x06
    ABORT_REQUESTED = 0x07
    ABORTED_SQ_DELETION = 0x08
    INVALID_NAMESPACE_OR_FORMAT = 0x0B
    COMMAND_SEQUENCE_ERROR = 0x0C
    INVALID_SGL_DESCRIPTOR = 0x0D
    INVALID_NUMBER_OF_SGL_DESCRIPTORS = 0x0E
    DATA_SGL_LENGTH_INVALID = 0x0F
    SGL_DESCRIPTOR_TYPE_INVALID = 0x11
    OPERATION_DENIED = 0x15
    SGL_OFFSET_INVALID = 0x16
    HOST_ID_INCONSISTENT_FORMAT = 0x18
    KEEP_ALIVE_EXPIRED = 0x19
    KEEP_ALIVE_TIMEOUT_INVALID = 0x1A
    NAMESPACE_WRITE_PROTECTED = 0x20
    COMMAND_INTERRUPTED = 0x21
    TRANSIENT_TRANSPORT_ERROR = 0x22
    LBA_OUT_OF_RANGE = 0x80
    CAPACITY_EXCEEDED = 0x81
    NAMESPACE_NOT_READY = 0x82
    RESERVATION_CONFLICT = 0x83


class CommandSpecificStatus(enum.IntEnum):
    """Status codes of SCT 1 that we use (admin, I/O and Fabrics commands)."""

    INVALID_QUEUE_IDENTIFIER = 0x01
    INVALID_QUEUE_SIZE = 0x02
    ASYNC_EVENT_REQUEST_LIMIT_EXCEEDED = 0x05
    INVALID_LOG_PAGE = 0x09
    FEATURE_NOT_SAVEABLE = 0x0D
    FEATURE_NOT_CHANGEABLE = 0x0E
    # Fabrics Connect (NVMe-oF 1.1, Figure 21)
    CONNECT_INCOMPATIBLE_FORMAT = 0x80
    CONNECT_CONTROLLER_BUSY = 0x81
    CONNECT_INVALID_PARAMETERS = 0x82
    CONNECT_RESTART_DISCOVERY = 0x83
    CONNECT_INVALID_HOST = 0x84
    # Fabrics in-band authentication (NVMe Base 2.0)
    AUTHENTICATION_REQUIRED = 0x91


class MediaStatus(enum.IntEnum):
    """Status codes of SCT 2 (media and data integrity errors)."""

    WRITE_FAULT = 0x80
    UNRECOVERED_READ_ERROR = 0x81
    COMPARE_FAILURE = 0x85
    ACCESS_DENIED = 0x86
    DEALLOCATED_OR_UNWRITTEN = 0x87


class PathStatus(enum.IntEnum):
    """Status codes of SCT 3 (path-related status)."""

    INTERNAL_PATH_ERROR = 0x00
    ANA_PERSISTENT_LOSS = 0x01
    ANA_INACCESSIBLE = 0x02
    ANA_TRANSITION = 0x03
    CONTROLLER_PATHING_ERROR = 0x60
    HOST_PATHING_ERROR = 0x70
    COMMAND_ABORTED_BY_HOST = 0x71


_CODE_ENUMS: dict[int, type[enum.IntEnum]] = {
    StatusCodeType.GENERIC: GenericStatus,
    StatusCodeType.COMMAND_SPECIFIC: CommandSpecificStatus,
    StatusCodeType.MEDIA: MediaStatus,
    StatusCodeType.PATH: PathStatus,
}


@dataclass(frozen=True, slots=True)
class NvmeStatus:
    """One completion status: status code type, status code and the do-not-retry bit.

    `field` packs it as the upper 15 bits of CQE dword 3 (without the phase tag),
    the form used on the wire: SC in bits 0-7, SCT in bits 8-10, CRD in 11-12,
    More in 13 and DNR in 14.
    """

    sct: int
    sc: int
    dnr: bool = False
    more: bool = False
    crd: int = 0

    @property
    def field(self) -> int:
        return (
            (self.sc & 0xFF)
            | (self.sct & 0x7) << 8
            | (self.crd & 0x3) << 11
            | int(self.more) << 13
            | int(self.dnr) << 14
        )

    @classmethod
    def from_field(cls, field: int) -> NvmeStatus:
        """Decode the 15-bit status field (CQE dword 3 bits 31:17)."""
        return cls(
            sct=(field >> 8) & 0x7,
            sc=field & 0xFF,
            dnr=bool(field >> 14 & 1),
            more=bool(field >> 13 & 1),
            crd=(field >> 11) & 0x3,
        )

    @property
    def is_success(self) -> bool:
        return self.sct == StatusCodeType.GENERIC and self.sc == GenericStatus.SUCCESS

    def describe(self) -> str:
        """A short operator-readable name, e.g. ``generic LBA_OUT_OF_RANGE (0x80)``."""
        try:
            sct_name = StatusCodeType(self.sct).name.lower()
        except ValueError:
            sct_name = f"sct{self.sct}"
        codes = _CODE_ENUMS.get(self.sct)
        name = "UNKNOWN"
        if codes is not None:
            try:
                name = codes(self.sc).name
            except ValueError:
                pass
        dnr = ", do not retry" if self.dnr else ""
        return f"{sct_name} {name} (0x{self.sc:02x}{dnr})"


SUCCESS = NvmeStatus(StatusCodeType.GENERIC, GenericStatus.SUCCESS)
